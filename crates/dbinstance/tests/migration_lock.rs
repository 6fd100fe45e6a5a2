//! Migrations that every replica of a service runs at boot: racing runners (each
//! its own instance, so its own server session, as separate processes have) take
//! the server's migration lock in turn, so exactly one applies the migrations and
//! the others find nothing pending. Then status and revert.

mod common;

use dbinstance::{Backend, DatabaseConfig, DatabaseInstance, MigrationInfo, Mysql, Postgres};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use std::sync::{Arc, Barrier};

const POSTGRES: EmbeddedMigrations = embed_migrations!("tests/migrations_race/postgres");
const MYSQL: EmbeddedMigrations = embed_migrations!("tests/migrations_race/mysql");
const RUNNERS: usize = 4;

/// `RUNNERS` instances on `url` run the pending migrations at the same moment.
fn race<B: Backend>(url: &str, migrations: &'static EmbeddedMigrations) -> Vec<Vec<MigrationInfo>> {
    let start = Arc::new(Barrier::new(RUNNERS));
    let runners: Vec<_> = (0..RUNNERS)
        .map(|_| {
            let (url, start) = (url.to_owned(), start.clone());
            std::thread::spawn(move || {
                let db = DatabaseInstance::<B>::new(DatabaseConfig::from_url(url)).unwrap();
                start.wait();
                db.run_pending_migrations(migrations).unwrap()
            })
        })
        .collect();
    runners.into_iter().map(|r| r.join().unwrap()).collect()
}

fn check_race_then_status_and_revert<B: Backend>(
    url: &str,
    migrations: &'static EmbeddedMigrations,
) {
    let runs = race::<B>(url, migrations);
    let applied: Vec<&Vec<MigrationInfo>> = runs.iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(applied.len(), 1, "runs: {runs:?}");
    assert_eq!(applied[0].len(), 2, "runs: {runs:?}");

    let db = DatabaseInstance::<B>::new(DatabaseConfig::from_url(url)).unwrap();
    let status = db.migration_status(migrations).unwrap();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|s| s.applied), "{status:?}");

    let reverted = db.revert_last_migration(migrations).unwrap().unwrap();
    assert_eq!(reverted.name, "2024-02-02-000000_seed_widgets");
    let status = db.migration_status(migrations).unwrap();
    assert_eq!(
        status.iter().map(|s| s.applied).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(db.pending_migrations(migrations).unwrap().len(), 1);
    assert_eq!(db.run_pending_migrations(migrations).unwrap().len(), 1);
    db.revert_last_migration(migrations).unwrap();
    db.revert_last_migration(migrations).unwrap();
    assert_eq!(db.revert_last_migration(migrations).unwrap(), None);
}

/// `base` with its database replaced by `database`.
fn with_database(base: &str, database: &str) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.set_path(database);
    url.to_string()
}

#[test]
fn racing_postgres_runners_migrate_once() {
    let Some(admin_url) = common::pg() else {
        return;
    };
    let database = common::unique_table("migrate_pg");
    let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    check_race_then_status_and_revert::<Postgres>(&with_database(&admin_url, &database), &POSTGRES);
    admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .unwrap();
}

#[test]
fn racing_mariadb_runners_migrate_once() {
    let Some(admin_url) = common::mysql() else {
        return;
    };
    let database = common::unique_table("migrate_my");
    let mut admin = diesel::MysqlConnection::establish(&admin_url).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .unwrap();
    check_race_then_status_and_revert::<Mysql>(&with_database(&admin_url, &database), &MYSQL);
    admin
        .batch_execute(&format!("DROP DATABASE {database}"))
        .unwrap();
}
