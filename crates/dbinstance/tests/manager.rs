//! Several databases in one manager: two PostgreSQL databases and a MariaDB one
//! (and SQLite), from one TOML file and from the environment's variables, looked
//! up by name and by backend, with sessions, health, statistics, warm-up and
//! close over them all.

mod common;

use dbinstance::{
    BackendKind, DatabaseConfig, DatabaseManager, Error, ManagerConfig, Mysql, Postgres, Sqlite,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

fn current_database(conn: &mut PgConnection) -> String {
    diesel::select(diesel::dsl::sql::<Text>("current_database()"))
        .get_result(conn)
        .unwrap()
}

/// Makes the database `name` on the PostgreSQL server of `admin_url`, once.
fn pg_database(admin_url: &str, name: &str) -> String {
    let mut admin = PgConnection::establish(admin_url).unwrap();
    let exists: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "count(*) FROM pg_database WHERE datname = '{name}'"
    )))
    .get_result(&mut admin)
    .unwrap();
    if exists == 0 {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    }
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(name);
    url.to_string()
}

#[test]
fn three_servers_in_one_manager_from_a_toml_file() {
    let (Some(pg), Some(mysql)) = (common::pg(), common::mysql()) else {
        return;
    };
    let analytics = pg_database(&pg, "dbi_manager_analytics");
    let dir = std::env::temp_dir().join(format!("dbi-manager-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("databases.toml");
    std::fs::write(
        &file,
        format!(
            "default = \"main\"\n\
             [databases.main]\nurl = \"{pg}\"\npool_size = 4\n\
             [databases.analytics]\nurl = \"{analytics}\"\n\
             [databases.legacy]\nurl = \"{mysql}\"\n\
             [databases.cache]\nurl = \":memory:\"\n"
        ),
    )
    .unwrap();
    let manager = DatabaseManager::new(ManagerConfig::from_file(&file).unwrap()).unwrap();
    assert_eq!(manager.default_name(), "main");
    assert_eq!(
        manager.names().collect::<Vec<_>>(),
        ["analytics", "cache", "legacy", "main"]
    );

    // Sessions by name, blocking and async, each on its own database.
    let mut main = manager.get_db_cm_read::<Postgres>("main").unwrap();
    assert_eq!(current_database(&mut main), "test");
    let mut other = manager.get_db_cm_read::<Postgres>("analytics").unwrap();
    assert_eq!(current_database(&mut other), "dbi_manager_analytics");
    drop((main, other));
    let mut legacy = manager.get_db_cm_write::<Mysql>("legacy").unwrap();
    legacy.batch_execute("SELECT 1").unwrap();
    drop(legacy);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut session = manager
            .async_get_db_cm_read::<Postgres>("analytics")
            .await
            .unwrap();
        let name: String = diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<Text>("current_database()")),
            &mut *session,
        )
        .await
        .unwrap();
        assert_eq!(name, "dbi_manager_analytics");
        assert!(manager.async_check_health().await);
        let reports = manager.async_health_reports().await;
        assert_eq!(reports.len(), 4);
    });
    assert!(manager.default_database::<Postgres>().is_ok());
    assert_eq!(
        manager.database("legacy").unwrap().backend(),
        BackendKind::Mysql
    );

    // A name it does not know, and a backend the database is not.
    match manager.get::<Postgres>("billing") {
        Err(Error::UnknownDatabase { name, known }) => {
            assert_eq!(name, "billing");
            assert_eq!(known, ["analytics", "cache", "legacy", "main"]);
        }
        other => panic!("expected UnknownDatabase, got {other:?}"),
    }
    let err = manager.get::<Sqlite>("legacy").unwrap_err();
    assert!(
        matches!(
            err,
            Error::DatabaseBackend {
                configured: BackendKind::Mysql,
                requested: BackendKind::Sqlite,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "database `legacy` is mysql, not sqlite");

    // Health, statistics, warm-up and close of all.
    assert!(manager.check_health());
    manager.warmup().unwrap();
    let stats = manager.pool_stats();
    assert_eq!(stats.len(), 4);
    assert!(stats["main"].iter().all(|s| s.state.max == 4));
    manager.close_all();
    assert!(matches!(
        manager.get_db_cm_read::<Postgres>("main"),
        Err(Error::Closed { .. })
    ));
    assert!(matches!(
        manager.get_db_cm_read::<Mysql>("legacy"),
        Err(Error::Closed { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_environment_names_the_databases_and_their_settings() {
    let config = ManagerConfig::from_vars([
        ("DATABASES", "main, reports"),
        ("DEFAULT_DATABASE", "main"),
        ("MAIN_DATABASE_URL", ":memory:"),
        ("MAIN_DATABASE_POOL_SIZE", "3"),
        ("REPORTS_DATABASE_URL", ":memory:"),
    ])
    .unwrap();
    assert_eq!(config.databases["main"].pool_size, Some(3));
    let manager = DatabaseManager::new(config).unwrap();
    assert_eq!(manager.default_name(), "main");
    drop(manager.get_db_cm_read::<Sqlite>("reports").unwrap());

    let err = ManagerConfig::from_vars([("DATABASES", "main"), ("MAIN_DATABASE_POOL_SIZE", "3")])
        .unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "MAIN_DATABASE_URL"),
        "{err}"
    );
}

#[test]
fn a_bad_database_config_is_refused_naming_the_database_and_its_field() {
    let refused = |config: ManagerConfig| DatabaseManager::new_lazy(config).unwrap_err();
    let err = refused(
        ManagerConfig::new()
            .database("main", DatabaseConfig::from_url(":memory:"))
            .database("reports", DatabaseConfig::from_url(":memory:").pool_size(0))
            .default_database("main"),
    );
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "databases.reports.pool_size"),
        "{err}"
    );
    let err = refused(
        ManagerConfig::new()
            .database("a", DatabaseConfig::from_url(":memory:"))
            .database("b", DatabaseConfig::from_url(":memory:")),
    );
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "default"),
        "{err}"
    );
    let err =
        refused(ManagerConfig::new().database("bad name", DatabaseConfig::from_url(":memory:")));
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "databases.bad name"),
        "{err}"
    );
    let err = refused(ManagerConfig::new());
    assert!(
        matches!(err, Error::Config { ref field, .. } if field == "databases"),
        "{err}"
    );
    // The only database is the default; so is one named `default`.
    let only = DatabaseManager::new_lazy(
        ManagerConfig::new().database("solo", DatabaseConfig::from_url(":memory:")),
    )
    .unwrap();
    assert_eq!(only.default_name(), "solo");
}

mod tables {
    diesel::table! {
        users (id) {
            id -> Integer,
        }
    }

    diesel::table! {
        events (id) {
            id -> Integer,
        }
    }
}
use tables::{events, users};

/// The database a session is on: each `:memory:` database here holds a table
/// named after it.
fn which(session: &mut diesel::SqliteConnection) -> String {
    diesel::select(diesel::dsl::sql::<Text>(
        "(SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'db_%')",
    ))
    .get_result(session)
    .unwrap()
}

#[test]
fn an_entity_gets_the_database_it_is_routed_to_and_an_unrouted_one_an_error() {
    let config = ManagerConfig::new()
        .database("main", DatabaseConfig::from_url(":memory:"))
        .database("analytics", DatabaseConfig::from_url(":memory:"))
        .default_database("main")
        .route::<users::table>("main")
        .route_reads::<events::table>("analytics")
        .route_writes::<events::table>("main");
    let manager = DatabaseManager::new(config).unwrap();
    for name in ["main", "analytics"] {
        let mut session = manager.get_db_cm_write::<Sqlite>(name).unwrap();
        session
            .batch_execute(&format!("CREATE TABLE db_{name} (x INTEGER)"))
            .unwrap();
        session.commit().unwrap();
    }
    let mut users_read = manager
        .get_db_cm_read_for::<Sqlite, users::table>()
        .unwrap();
    assert_eq!(which(&mut users_read), "db_main");
    let mut events_read = manager
        .get_db_cm_read_for::<Sqlite, events::table>()
        .unwrap();
    assert_eq!(which(&mut events_read), "db_analytics");
    let mut events_write = manager
        .get_db_cm_write_for::<Sqlite, events::table>()
        .unwrap();
    assert_eq!(which(&mut events_write), "db_main");

    // Mapped nowhere: an error naming the entity, not the default database.
    struct Invoices;
    let err = manager
        .get_db_cm_read_for::<Sqlite, Invoices>()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnroutedEntity { entity, role: dbinstance::Role::Read } if entity.ends_with("Invoices")),
        "{err}"
    );
    assert!(err.to_string().contains("reads"), "{err}");
    let err = manager
        .get_db_cm_read_for::<Postgres, users::table>()
        .unwrap_err();
    assert!(matches!(err, Error::DatabaseBackend { .. }), "{err}");

    // A route to a database that does not exist is refused at build.
    let err = DatabaseManager::new_lazy(
        ManagerConfig::new()
            .database("main", DatabaseConfig::from_url(":memory:"))
            .route::<users::table>("archive"),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Config { ref field, .. } if field.starts_with("routes.") && field.ends_with("users::table")),
        "{err}"
    );
}
