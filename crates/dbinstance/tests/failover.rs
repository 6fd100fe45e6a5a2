//! Failover: a write pool whose server is no longer the primary (a write refused
//! as read-only) closes every write connection it opened to it, idle ones
//! included, blocking and async; and a primary given as several PostgreSQL hosts
//! takes, for writes, the one that accepts writes.
//!
//! The demotion is played on servers of the test bed's own: on MariaDB, the
//! dedicated primary is set `read_only` under connections opened before (and set
//! back after); on PostgreSQL, whose demotion needs a restart, the write pool is
//! pointed at the streaming standby, as a service whose primary became one would be.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres, Role, Session};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Integer;
use diesel::{Connection, RunQueryDsl};

/// The write pool of `kind`'s counters.
fn write_counts<B: dbinstance::Backend>(
    db: &DatabaseInstance<B>,
    kind: dbinstance::PoolKind,
) -> dbinstance::PoolCounts {
    db.pool_stats()
        .into_iter()
        .find(|s| s.pool.role == Role::Write && s.pool.kind == kind)
        .map(|s| s.counts)
        .expect("a write pool")
}

/// Three write connections opened and pooled, then a write refused as
/// read-only: the next checkout closes the two others instead of reusing them.
fn blocking_demotion<B: dbinstance::Backend>(db: &DatabaseInstance<B>, insert: &str) {
    let held: Vec<Session<B>> = (0..3).map(|_| db.get_db_cm_write().unwrap()).collect();
    drop(held);
    let before = write_counts(db, dbinstance::PoolKind::Sync);
    let mut session = db.get_db_cm_write().unwrap();
    let err = session.batch_execute(insert).unwrap_err();
    assert!(dbinstance::is_read_only_violation(&err), "{err:?}");
    drop(session);
    drop(db.get_db_cm_write().unwrap());
    let after = write_counts(db, dbinstance::PoolKind::Sync);
    assert_eq!(
        after.broken_discarded - before.broken_discarded,
        3,
        "before {before:?}, after {after:?}"
    );
    assert!(after.opened > before.opened, "no new connection: {after:?}");
}

/// The async twin of [`blocking_demotion`].
async fn async_demotion<B: dbinstance::Backend>(db: &DatabaseInstance<B>, insert: &str) {
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(db.async_get_db_cm_write().await.unwrap());
    }
    for session in held {
        session.rollback().await.unwrap();
    }
    let before = write_counts(db, dbinstance::PoolKind::Async);
    let mut session = db.async_get_db_cm_write().await.unwrap();
    let err = diesel_async::SimpleAsyncConnection::batch_execute(&mut *session, insert)
        .await
        .unwrap_err();
    assert!(dbinstance::is_read_only_violation(&err), "{err:?}");
    drop(session);
    // The dropped session's rollback runs on the runtime, and deadpool looks at a
    // connection when it hands it out: check out until all three were looked at.
    for _ in 0..50 {
        session_round_trip(db).await;
        let after = write_counts(db, dbinstance::PoolKind::Async);
        if after.broken_discarded - before.broken_discarded >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = write_counts(db, dbinstance::PoolKind::Async);
    assert_eq!(
        after.broken_discarded - before.broken_discarded,
        3,
        "before {before:?}, after {after:?}"
    );
}

async fn session_round_trip<B: dbinstance::Backend>(db: &DatabaseInstance<B>) {
    db.async_get_db_cm_write()
        .await
        .unwrap()
        .rollback()
        .await
        .unwrap();
}

#[test]
fn postgres_write_connections_to_a_standby_are_closed_after_a_refused_write() {
    let Some(standby) = common::pg_replica() else {
        return;
    };
    let config = DatabaseConfig::from_url(&standby).min_idle(0);
    let db = DatabaseInstance::<Postgres>::new(config).unwrap();
    let insert = "CREATE TABLE failover_never (id INTEGER)";
    blocking_demotion(&db, insert);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async_demotion(&db, insert));
}

/// Sets the dedicated MariaDB primary `read_only` and back when dropped.
struct ReadOnlyServer(diesel::MysqlConnection);

impl Drop for ReadOnlyServer {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("SET GLOBAL read_only = 0");
    }
}

#[test]
fn mariadb_write_connections_are_closed_once_the_primary_turns_read_only() {
    let Some(primary) = common::mysql_primary() else {
        return;
    };
    // `read_only` does not hold back a user with SUPER, such as root.
    let mut root = diesel::MysqlConnection::establish(&primary).unwrap();
    let table = common::unique_table("failover");
    root.batch_execute(&format!(
        "CREATE USER IF NOT EXISTS 'dbi_failover'@'%'; \
         GRANT ALL ON test.* TO 'dbi_failover'@'%'; \
         CREATE TABLE {table} (id INTEGER)"
    ))
    .unwrap();
    let url = primary.replacen("root@", "dbi_failover@", 1);
    let db = DatabaseInstance::<Mysql>::new(DatabaseConfig::from_url(&url).min_idle(0)).unwrap();
    // Connections opened while the server is the primary.
    drop(db.get_db_cm_write().unwrap());

    root.batch_execute("SET GLOBAL read_only = 1").unwrap();
    let read_only = ReadOnlyServer(root);
    let insert = format!("INSERT INTO {table} VALUES (1)");
    blocking_demotion(&db, &insert);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async_demotion(&db, &insert));

    // Back to a primary: writes go through on new connections.
    drop(read_only);
    db.write(|conn| conn.batch_execute(&insert).map_err(Error::from))
        .unwrap();
    let mut root = diesel::MysqlConnection::establish(&primary).unwrap();
    root.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

#[test]
fn postgres_a_primary_given_as_several_hosts_writes_on_the_one_that_accepts_writes() {
    let (Some(primary), Some(standby)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    // The standby first: a write pool must pass it by.
    let host = |url: &str| {
        let start = url.find('@').unwrap() + 1;
        let end = start + url[start..].find('/').unwrap();
        url[start..end].to_owned()
    };
    let both = standby.replacen(
        &host(&standby),
        &format!("{},{}", host(&standby), host(&primary)),
        1,
    );
    let db = DatabaseInstance::<Postgres>::new(DatabaseConfig::from_url(&both)).unwrap();
    let port = |session: &mut Session<Postgres>| -> i32 {
        diesel::select(diesel::dsl::sql::<Integer>("inet_server_port()"))
            .get_result(&mut **session)
            .unwrap()
    };
    let primary_port: i32 = host(&primary).rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(port(&mut db.get_db_cm_write().unwrap()), primary_port);
    let async_port: i32 = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut session = db.async_get_db_cm_write().await.unwrap();
        diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<Integer>("inet_server_port()")),
            &mut *session,
        )
        .await
        .unwrap()
    });
    assert_eq!(async_port, primary_port);
    // Reads take any host of the list.
    drop(db.get_db_cm_read().unwrap());
}

#[test]
fn mariadb_refuses_a_list_of_hosts_naming_the_field() {
    let err =
        DatabaseInstance::<Mysql>::new(DatabaseConfig::from_url("mysql://u:pw@a:3306,b:3306/db"))
            .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "url"),
        "{err}"
    );
    assert!(!err.to_string().contains("pw"), "{err}");
}
