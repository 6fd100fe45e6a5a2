//! SQLite as the embedded default: WAL on a file, readers beside a writer, one
//! shared database for `:memory:`, foreign keys on, config from a file.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Sqlite};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::RunQueryDsl;
use std::time::Duration;

fn journal_mode(conn: &mut diesel::SqliteConnection) -> String {
    diesel::select(diesel::dsl::sql::<Text>(
        "(SELECT journal_mode FROM pragma_journal_mode)",
    ))
    .get_result(conn)
    .unwrap()
}

#[test]
fn a_file_database_runs_in_wal_with_readers_beside_the_writer() {
    let file = common::TempDb::new("wal");
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();
    let mut read = db.get_db_cm_read().unwrap();
    assert_eq!(journal_mode(&mut read), "wal");
    drop(read);

    db.write(|conn| {
        conn.batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
            .map_err(Error::from)
    })
    .unwrap();
    // A write transaction is open and has written...
    let mut writer = db.get_db_cm_write().unwrap();
    writer.batch_execute("INSERT INTO t VALUES (2)").unwrap();
    // ...and readers still read, at once, the last committed state.
    let started = std::time::Instant::now();
    let mut read = db.get_db_cm_read().unwrap();
    let n: i64 = diesel::select(diesel::dsl::sql::<BigInt>("(SELECT COUNT(*) FROM t)"))
        .get_result(&mut *read)
        .unwrap();
    assert_eq!(n, 1);
    assert!(started.elapsed() < Duration::from_secs(1));
    writer.commit().unwrap();
    let n: i64 = diesel::select(diesel::dsl::sql::<BigInt>("(SELECT COUNT(*) FROM t)"))
        .get_result(&mut *read)
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn memory_databases_are_shared_by_the_pools_and_kept_apart_by_instance() {
    let a = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:")).unwrap();
    let b = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url("sqlite::memory:")).unwrap();
    a.write(|conn| {
        conn.batch_execute("CREATE TABLE only_in_a (x INTEGER)")
            .map_err(Error::from)
    })
    .unwrap();
    let mut read = a.get_db_cm_read().unwrap();
    read.batch_execute("SELECT * FROM only_in_a").unwrap();
    let mut other = b.get_db_cm_read().unwrap();
    assert!(other.batch_execute("SELECT * FROM only_in_a").is_err());
}

fn count(conn: &mut diesel::SqliteConnection) -> Result<i64, diesel::result::Error> {
    diesel::select(diesel::dsl::sql::<BigInt>("(SELECT COUNT(*) FROM t)")).get_result(conn)
}

/// A `:memory:` database with a table of one row and a short busy timeout.
fn memory_with_a_row(busy: Duration) -> DatabaseInstance<Sqlite> {
    let config = DatabaseConfig::from_url(":memory:").sqlite_busy_timeout(busy);
    let db = DatabaseInstance::<Sqlite>::new(config).unwrap();
    db.write(|conn| {
        conn.batch_execute("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
            .map_err(Error::from)
    })
    .unwrap();
    db
}

#[test]
fn memory_readers_beside_a_writer_that_has_written_give_up_busy_after_the_busy_timeout() {
    let db = memory_with_a_row(Duration::from_millis(200));
    let mut warm = db.get_db_cm_read().unwrap();
    assert_eq!(count(&mut warm), Ok(1));
    let mut writer = db.get_db_cm_write().unwrap();
    writer.batch_execute("INSERT INTO t VALUES (2)").unwrap();

    // A pooled reader's query: diesel's error, recognised as busy, a 503 for web
    // services.
    let err = count(&mut warm).unwrap_err();
    assert!(dbinstance::is_sqlite_busy(&err), "{err}");
    assert!(Error::from(err).is_unavailable());
    drop(warm);

    // A reader that needs a new connection: the typed error naming its pool,
    // never "no such table".
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(db.async_get_db_cm_read())
        .map(drop)
        .unwrap_err();
    match &err {
        Error::Busy { pool, .. } => {
            assert_eq!(
                (pool.role, pool.kind),
                (dbinstance::Role::Read, dbinstance::PoolKind::Async)
            );
        }
        other => panic!("expected Error::Busy, got {other:?}"),
    }
    assert!(err.is_unavailable());
    assert!(err.to_string().contains("locked"), "{err}");
    writer.commit().unwrap();
    let mut read = db.get_db_cm_read().unwrap();
    assert_eq!(count(&mut read), Ok(2));
}

#[test]
fn a_memory_reader_waits_for_the_writer_and_sees_its_commit() {
    let db = memory_with_a_row(Duration::from_secs(30));
    let mut writer = db.get_db_cm_write().unwrap();
    writer.batch_execute("INSERT INTO t VALUES (2)").unwrap();
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut read = db.get_db_cm_read().unwrap();
            count(&mut read)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    writer.commit().unwrap();
    assert_eq!(reader.join().unwrap(), Ok(2));
}

#[test]
fn foreign_keys_are_enforced_on_every_connection() {
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:")).unwrap();
    db.write(|conn| {
        conn.batch_execute(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id))",
        )
        .map_err(Error::from)
    })
    .unwrap();
    let err = db
        .write(|conn| {
            conn.batch_execute("INSERT INTO child VALUES (1, 42)")
                .map_err(Error::from)
        })
        .unwrap_err();
    assert!(err.to_string().contains("query failed"), "{err}");
}

#[test]
fn config_loads_from_toml_and_json_files() {
    let dir = std::env::temp_dir().join(common::unique_table("dbi_config"));
    std::fs::create_dir_all(&dir).unwrap();
    let toml_path = dir.join("db.toml");
    std::fs::write(
        &toml_path,
        "url = \":memory:\"\npool_size = 2\nhealth_timeout = 0.5\n",
    )
    .unwrap();
    let db =
        DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_file(&toml_path).unwrap()).unwrap();
    assert!(db.check_database_health());
    let json_path = dir.join("db.json");
    std::fs::write(&json_path, r#"{"url": ":memory:", "pool_sise": 2}"#).unwrap();
    let err = DatabaseConfig::from_file(&json_path).unwrap_err();
    assert!(err.to_string().contains("pool_sise"), "{err}");
    let err = DatabaseConfig::from_file(dir.join("db.yaml")).unwrap_err();
    assert!(err.to_string().contains("db.yaml"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn pragma(conn: &mut diesel::SqliteConnection, name: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(&format!(
        "(SELECT * FROM pragma_{name})"
    )))
    .get_result(conn)
    .unwrap()
}

#[derive(diesel::QueryableByName)]
struct WalAutocheckpoint {
    #[diesel(sql_type = BigInt)]
    wal_autocheckpoint: i64,
}

/// Not a table-valued pragma: asked on a write connection, whose statements are
/// not watched for changes of session state.
fn wal_autocheckpoint(conn: &mut diesel::SqliteConnection) -> i64 {
    diesel::sql_query("PRAGMA wal_autocheckpoint")
        .get_result::<WalAutocheckpoint>(conn)
        .unwrap()
        .wal_autocheckpoint
}

/// `synchronous` is NORMAL unless set, on every connection of both families;
/// the WAL's checkpoint size is SQLite's own unless set; both come from the
/// environment too (a server backend refuses them: `tests/config_edges.rs`).
#[test]
fn synchronous_and_the_wal_checkpoint_are_settings() {
    let file = common::TempDb::new("synchronous");
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url())).unwrap();
    assert_eq!(pragma(&mut db.get_db_cm_read().unwrap(), "synchronous"), 1);
    assert_eq!(wal_autocheckpoint(&mut db.get_db_cm_write().unwrap()), 1000);
    db.close_all_connections();

    let config = DatabaseConfig::from_vars(
        "",
        [
            ("DATABASE_URL", file.url().as_str()),
            ("DATABASE_SQLITE_SYNCHRONOUS", "full"),
            ("DATABASE_SQLITE_WAL_AUTOCHECKPOINT", "200"),
        ],
    )
    .unwrap();
    let db = DatabaseInstance::<Sqlite>::new(config).unwrap();
    assert_eq!(pragma(&mut db.get_db_cm_read().unwrap(), "synchronous"), 2);
    let mut write = db.get_db_cm_write().unwrap();
    assert_eq!(pragma(&mut write, "synchronous"), 2);
    assert_eq!(wal_autocheckpoint(&mut write), 200);
    drop(write);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut session = db.async_get_db_cm_write().await.unwrap();
        let synchronous: i64 = diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<BigInt>(
                "(SELECT * FROM pragma_synchronous)",
            )),
            &mut *session,
        )
        .await
        .unwrap();
        assert_eq!(synchronous, 2);
    });

    let err = DatabaseConfig::from_vars(
        "",
        [
            ("DATABASE_URL", file.url().as_str()),
            ("DATABASE_SQLITE_SYNCHRONOUS", "sometimes"),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "DATABASE_SQLITE_SYNCHRONOUS"),
        "{err:?}"
    );
}
