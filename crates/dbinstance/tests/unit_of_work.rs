//! One unit of work over several databases: two PostgreSQL databases (the
//! machine's server and the test bed's own cluster) and a MariaDB one. A commit
//! that fails in the middle leaves exactly what the error says; a unit dropped
//! uncommitted leaves nothing; PostgreSQL's prepared transactions commit all or
//! nothing, where the server allows them (the test bed's cluster does, the
//! machine's server does not).

mod common;

use dbinstance::{DatabaseConfig, DatabaseManager, Error, ManagerConfig, Mysql, Postgres};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

/// The test bed's own PostgreSQL cluster, which allows prepared transactions.
fn victim() -> Option<String> {
    common::server_url("DBI_PG_VICTIM_URL")
}

fn count_pg(url: &str, table: &str) -> i64 {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(&format!(
        "count(*) FROM {table}"
    )))
    .get_result(&mut conn)
    .unwrap()
}

fn count_mysql(url: &str, table: &str) -> i64 {
    let mut conn = MysqlConnection::establish(url).unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(&format!(
        "CAST(count(*) AS SIGNED) FROM {table}"
    )))
    .get_result(&mut conn)
    .unwrap()
}

/// Transactions left prepared by this crate on the server of `url`.
fn prepared_left(url: &str) -> i64 {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(
        "count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dbinstance-%'",
    ))
    .get_result(&mut conn)
    .unwrap()
}

/// A plain table, and one whose foreign key is checked only at commit: a row
/// that breaks it makes that database's COMMIT (or PREPARE) fail.
struct Tables {
    plain: String,
    deferred: String,
}

fn pg_tables(url: &str) -> Tables {
    let plain = common::unique_table("uow_plain");
    let deferred = common::unique_table("uow_deferred");
    PgConnection::establish(url)
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE {plain} (x INT);
             CREATE TABLE {deferred}_parent (id INT PRIMARY KEY);
             CREATE TABLE {deferred} (x INT, parent INT REFERENCES {deferred}_parent (id)
                 DEFERRABLE INITIALLY DEFERRED);"
        ))
        .unwrap();
    Tables { plain, deferred }
}

fn mysql_table(url: &str) -> String {
    let table = common::unique_table("uow_my");
    MysqlConnection::establish(url)
        .unwrap()
        .batch_execute(&format!("CREATE TABLE {table} (x INT) ENGINE=InnoDB"))
        .unwrap();
    table
}

fn manager(databases: &[(&str, &str)]) -> DatabaseManager {
    let mut config = ManagerConfig::new().default_database(databases[0].0);
    for (name, url) in databases {
        config = config.database(*name, DatabaseConfig::from_url(*url).pool_size(2));
    }
    DatabaseManager::new_lazy(config).unwrap()
}

#[test]
fn a_commit_that_fails_in_the_middle_leaves_what_the_error_says() {
    let (Some(pg), Some(second), Some(my)) = (common::pg(), victim(), common::mysql()) else {
        return;
    };
    let a = pg_tables(&pg);
    let b = pg_tables(&second);
    let c = mysql_table(&my);
    let manager = manager(&[("a", &pg), ("b", &second), ("c", &my)]);

    // `b`'s row breaks its deferred foreign key: its COMMIT fails, after `a`'s.
    let mut work = manager.unit_of_work(["a", "b", "c"]).unwrap();
    work.session::<Postgres>("a")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (1)", a.plain))
        .unwrap();
    work.session::<Postgres>("b")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (1, 42)", b.deferred))
        .unwrap();
    work.session::<Mysql>("c")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {c} VALUES (1)"))
        .unwrap();
    let err = work.commit().unwrap_err();
    let Error::UnitOfWork {
        committed,
        failed,
        rolled_back,
        source,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (committed, failed, rolled_back),
        (
            &vec!["a".to_owned()],
            &"b".to_owned(),
            &vec!["c".to_owned()]
        )
    );
    assert!(matches!(**source, Error::Session { .. }), "{source:?}");
    assert_eq!(count_pg(&pg, &a.plain), 1, "a committed");
    assert_eq!(count_pg(&second, &b.deferred), 0, "b failed");
    assert_eq!(count_mysql(&my, &c), 0, "c was rolled back");

    // Asking for a session by the wrong backend or an unknown name is typed.
    let mut work = manager.unit_of_work(["a", "c"]).unwrap();
    assert!(matches!(
        work.session::<Mysql>("a"),
        Err(Error::DatabaseBackend { .. })
    ));
    assert!(matches!(
        work.session::<Mysql>("b"),
        Err(Error::UnknownDatabase { .. })
    ));
    // Dropped without a commit: nothing stays.
    work.session::<Postgres>("a")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (2)", a.plain))
        .unwrap();
    drop(work);
    assert_eq!(count_pg(&pg, &a.plain), 1);
    assert!(matches!(
        manager.unit_of_work(["a", "a"]),
        Err(Error::Config { .. })
    ));

    // All three commit.
    let mut work = manager.unit_of_work(["a", "b", "c"]).unwrap();
    work.session::<Postgres>("a")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (3)", a.plain))
        .unwrap();
    work.session::<Postgres>("b")
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO {0}_parent VALUES (7); INSERT INTO {0} VALUES (1, 7)",
            b.deferred
        ))
        .unwrap();
    work.session::<Mysql>("c")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {c} VALUES (3)"))
        .unwrap();
    work.commit().unwrap();
    assert_eq!(count_pg(&pg, &a.plain), 2);
    assert_eq!(count_pg(&second, &b.deferred), 1);
    assert_eq!(count_mysql(&my, &c), 1);
}

#[test]
fn the_async_unit_of_work_fails_in_the_middle_the_same_way() {
    let (Some(pg), Some(second), Some(my)) = (common::pg(), victim(), common::mysql()) else {
        return;
    };
    let a = pg_tables(&pg);
    let b = pg_tables(&second);
    let c = mysql_table(&my);
    let manager = manager(&[("a", &pg), ("b", &second), ("c", &my)]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use diesel_async::SimpleAsyncConnection;
        let mut work = manager.async_unit_of_work(["a", "b", "c"]).await.unwrap();
        work.session::<Postgres>("a")
            .unwrap()
            .batch_execute(&format!("INSERT INTO {} VALUES (1)", a.plain))
            .await
            .unwrap();
        work.session::<Postgres>("b")
            .unwrap()
            .batch_execute(&format!("INSERT INTO {} VALUES (1, 42)", b.deferred))
            .await
            .unwrap();
        work.session::<Mysql>("c")
            .unwrap()
            .batch_execute(&format!("INSERT INTO {c} VALUES (1)"))
            .await
            .unwrap();
        let err = work.commit().await.unwrap_err();
        assert!(
            matches!(&err, Error::UnitOfWork { committed, failed, rolled_back, .. }
                if committed == &["a"] && failed == "b" && rolled_back == &["c"]),
            "{err:?}"
        );
    });
    assert_eq!(count_pg(&pg, &a.plain), 1);
    assert_eq!(count_pg(&second, &b.deferred), 0);
    assert_eq!(count_mysql(&my, &c), 0);
}

/// Two databases of the test bed's cluster, which allows prepared transactions:
/// both commit, or, when one fails to prepare, neither; nothing stays prepared.
/// A MariaDB database, or a server that does not allow prepared transactions,
/// makes the unit fail and roll back everything.
#[test]
fn prepared_transactions_commit_all_or_nothing() {
    let (Some(pg), Some(second), Some(my)) = (common::pg(), victim(), common::mysql()) else {
        return;
    };
    let p = pg_tables(&second);
    let q = pg_tables(&second);
    let no_prepared = pg_tables(&pg);
    let c = mysql_table(&my);
    let manager = manager(&[("p", &second), ("q", &second), ("sys", &pg), ("c", &my)]);
    let before = prepared_left(&second);

    // `q` breaks its deferred key: its PREPARE fails after `p` prepared.
    let mut work = manager.unit_of_work(["p", "q"]).unwrap().two_phase();
    work.session::<Postgres>("p")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (1)", p.plain))
        .unwrap();
    work.session::<Postgres>("q")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (1, 42)", q.deferred))
        .unwrap();
    let err = work.commit().unwrap_err();
    assert!(
        matches!(&err, Error::UnitOfWork { committed, failed, rolled_back, .. }
            if committed.is_empty() && failed == "q" && rolled_back == &["p"]),
        "{err:?}"
    );
    assert_eq!(
        count_pg(&second, &p.plain),
        0,
        "p's prepared transaction was rolled back"
    );
    assert_eq!(prepared_left(&second), before);

    // Both prepare, then both commit.
    let mut work = manager.unit_of_work(["p", "q"]).unwrap().two_phase();
    work.session::<Postgres>("p")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (2)", p.plain))
        .unwrap();
    work.session::<Postgres>("q")
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO {0}_parent VALUES (7); INSERT INTO {0} VALUES (1, 7)",
            q.deferred
        ))
        .unwrap();
    work.commit().unwrap();
    assert_eq!(count_pg(&second, &p.plain), 1);
    assert_eq!(count_pg(&second, &q.deferred), 1);
    assert_eq!(prepared_left(&second), before);

    // The machine's server has max_prepared_transactions = 0: its PREPARE fails,
    // and `p`, prepared before it, is rolled back.
    let mut work = manager.unit_of_work(["p", "sys"]).unwrap().two_phase();
    work.session::<Postgres>("p")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (3)", p.plain))
        .unwrap();
    work.session::<Postgres>("sys")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (3)", no_prepared.plain))
        .unwrap();
    let err = work.commit().unwrap_err();
    assert!(
        matches!(&err, Error::UnitOfWork { failed, rolled_back, .. } if failed == "sys" && rolled_back == &["p"]),
        "{err:?}"
    );
    assert_eq!(count_pg(&second, &p.plain), 1);
    assert_eq!(count_pg(&pg, &no_prepared.plain), 0);
    assert_eq!(prepared_left(&second), before);

    // MariaDB takes no part in PostgreSQL's prepared transactions.
    let mut work = manager.unit_of_work(["p", "c"]).unwrap().two_phase();
    work.session::<Postgres>("p")
        .unwrap()
        .batch_execute(&format!("INSERT INTO {} VALUES (4)", p.plain))
        .unwrap();
    let err = work.commit().unwrap_err();
    assert!(
        matches!(&err, Error::UnitOfWork { committed, failed, .. } if committed.is_empty() && failed == "c"),
        "{err:?}"
    );
    assert_eq!(count_pg(&second, &p.plain), 1);
    assert_eq!(count_mysql(&my, &c), 0);

    // The async twin, both committing.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use diesel_async::SimpleAsyncConnection;
        let mut work = manager
            .async_unit_of_work(["p", "q"])
            .await
            .unwrap()
            .two_phase();
        work.session::<Postgres>("p")
            .unwrap()
            .batch_execute(&format!("INSERT INTO {} VALUES (5)", p.plain))
            .await
            .unwrap();
        work.session::<Postgres>("q")
            .unwrap()
            .batch_execute(&format!("INSERT INTO {} VALUES (5)", q.plain))
            .await
            .unwrap();
        work.commit().await.unwrap();
    });
    assert_eq!(count_pg(&second, &p.plain), 2);
    assert_eq!(count_pg(&second, &q.plain), 1);
    assert_eq!(prepared_left(&second), before);
}
