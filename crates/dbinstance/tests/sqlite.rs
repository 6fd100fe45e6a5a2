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
