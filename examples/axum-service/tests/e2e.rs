//! The service over real HTTP: started in-process on an ephemeral port, driven with
//! an HTTP client. SQLite always; PostgreSQL with its streaming replica when
//! `DBI_PG_URL` and `DBI_PG_REPLICA_URL` are set, MariaDB with its replica when
//! `DBI_MYSQL_PRIMARY_URL` and `DBI_MYSQL_REPLICA_URL` are (required under `CI=true`).

use axum_service::store::scenarios::metrics::metrics_agree_with_pool_stats;
use axum_service::store::scenarios::{crud, edges, Client};
use axum_service::store::Store;
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use dbinstance_axum::testing::sqlite_memory;
#[cfg(feature = "mysql")]
use dbinstance_axum::testing::MysqlDatabase;
#[cfg(feature = "postgres")]
use dbinstance_axum::testing::PgSchema;
use dbinstance_web::scenarios;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

#[cfg(any(feature = "postgres", feature = "mysql"))]
/// The URL in `var`, or `None` (after saying so loudly) when it is unset outside CI.
fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set and CI=true: run `eval \"$(scripts/testbed.sh up)\"` first")
        }
        _ => {
            eprintln!("\n!!! SKIPPED: {var} is not set; run `eval \"$(scripts/testbed.sh up)\"` to test against the real server\n");
            None
        }
    }
}

#[cfg(feature = "postgres")]
/// A fresh schema on the PostgreSQL primary, read through its replica.
fn pg_schema() -> Option<PgSchema> {
    let primary = server_url("DBI_PG_URL")?;
    let replica = server_url("DBI_PG_REPLICA_URL")?;
    Some(PgSchema::create(&primary).unwrap().with_replica(&replica))
}

#[cfg(feature = "mysql")]
/// A fresh database on the MariaDB primary, read through its replica.
fn mysql_database() -> Option<MysqlDatabase> {
    let primary = server_url("DBI_MYSQL_PRIMARY_URL")?;
    let replica = server_url("DBI_MYSQL_REPLICA_URL")?;
    Some(
        MysqlDatabase::create(&primary)
            .unwrap()
            .with_replica(&replica),
    )
}

struct Server {
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `axum_service::app` on `db` on a free port.
async fn start<B: Store>(db: DatabaseInstance<B>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum_service::app(db);
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        client: Client::new(base),
        task,
    }
}

/// With the only connections held by the test, a 503 (see the shared scenario).
async fn unavailable<B: Store>(db: DatabaseInstance<B>) {
    let s = start(db.clone()).await;
    axum_service::store::scenarios::unavailable(&s.client.base, &db).await;
}

/// A directory of its own for a test's SQLite file, removed with it on drop. A
/// whole directory, so that a pool connection still opening in the background when
/// the instance is dropped cannot re-create the file: it finds no directory.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("axum-service-e2e-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sqlite_url(&self) -> String {
        self.0
            .join("service.sqlite3")
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary's path: `serve` opens a SQLite file, creates the tables, serves.
#[tokio::test]
async fn sqlite_file_crud_through_serve() {
    let dir = TempDir::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = DatabaseConfig::from_url(dir.sqlite_url());
    let task = tokio::spawn(async move {
        axum_service::serve(
            listener,
            config,
            std::future::pending(),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    });
    let s = Server {
        client: Client::new(base),
        task,
    };
    // `serve` opens the database before it accepts: wait for the health route.
    let (status, _) = s
        .client
        .get_until("/health", |s, _| s == StatusCode::OK)
        .await;
    assert_eq!(status, StatusCode::OK);
    crud(&s.client).await;
    drop(s);
    drop(dir);
}

#[tokio::test]
async fn sqlite_memory_crud() {
    let db = sqlite_memory().await.unwrap();
    axum_service::prepare(&db).await.unwrap();
    crud(&start(db).await.client).await;
}

#[tokio::test]
async fn sqlite_pool_timeout_is_503() {
    let config = DatabaseConfig::from_url(":memory:")
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let db = axum_service::open::<Sqlite>(config).await.unwrap();
    unavailable(db).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_with_replica_crud() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    axum_service::prepare(&db).await.unwrap();
    crud(&start(db.clone()).await.client).await;
    db.close_all_connections();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_pool_timeout_is_503() {
    let Some(schema) = pg_schema() else { return };
    let config = schema
        .config()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(300));
    let db = axum_service::open::<dbinstance::Postgres>(config)
        .await
        .unwrap();
    unavailable(db.clone()).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_with_replica_crud() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = database.instance().await.unwrap();
    axum_service::prepare(&db).await.unwrap();
    crud(&start(db.clone()).await.client).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_pool_timeout_is_503() {
    let Some(database) = mysql_database() else {
        return;
    };
    let config = database
        .config()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(300));
    let db = axum_service::open::<dbinstance::Mysql>(config)
        .await
        .unwrap();
    unavailable(db.clone()).await;
    db.close_all_connections();
}

/// A post for a user that a committed delete removed after the handler looked
/// (two requests racing): the insert's foreign key refuses it, and the store says
/// "not found", which the service answers with 404 rather than 500.
async fn a_post_for_a_deleted_user_is_not_found<B: Store>(db: &DatabaseInstance<B>) {
    axum_service::prepare(db).await.unwrap();
    let mut session = db.async_get_db_cm_write().await.unwrap();
    let post = axum_service::store::NewPost {
        title: "t".into(),
        body: "b".into(),
    };
    let inserted = B::insert_post(&mut session, 424_242, &post).await;
    assert!(
        matches!(inserted, Err(diesel::result::Error::NotFound)),
        "{inserted:?}"
    );
    // Explicitly: a current-thread test runtime would not get to run the
    // rollback a dropped session leaves to a task before the schema is dropped.
    session.rollback().await.unwrap();
}

#[tokio::test]
async fn sqlite_post_for_a_deleted_user_is_not_found() {
    let db = sqlite_memory().await.unwrap();
    a_post_for_a_deleted_user_is_not_found(&db).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_post_for_a_deleted_user_is_not_found() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    a_post_for_a_deleted_user_is_not_found(&db).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_post_for_a_deleted_user_is_not_found() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = database.instance().await.unwrap();
    a_post_for_a_deleted_user_is_not_found(&db).await;
    db.close_all_connections();
}

#[tokio::test]
async fn sqlite_every_error_is_json() {
    let db = sqlite_memory().await.unwrap();
    axum_service::prepare(&db).await.unwrap();
    edges(&start(db).await.client).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_every_error_is_json() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    axum_service::prepare(&db).await.unwrap();
    edges(&start(db.clone()).await.client).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_every_error_is_json() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = database.instance().await.unwrap();
    axum_service::prepare(&db).await.unwrap();
    edges(&start(db.clone()).await.client).await;
    db.close_all_connections();
}

/// On SQLite with one write connection, a client that takes two seconds to send its
/// body does not hold the writer: other writes go through meanwhile.
#[tokio::test]
async fn sqlite_a_slow_body_holds_no_writer() {
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url())
        .pool_size(1)
        .pool_timeout(Duration::from_secs(5));
    let db = axum_service::open::<Sqlite>(config).await.unwrap();
    let s = start(db.clone()).await;
    let base = s.client.base.clone();
    let report = scenarios::a_slow_body_holds_no_writer(
        &s.client.base,
        "/users",
        json!({"name": "Slow", "email": "slow@example.com"}),
        |http, i| {
            http.post(format!("{base}/users")).json(
                &json!({"name": format!("Fast {i}"), "email": format!("fast{i}@example.com")}),
            )
        },
    )
    .await;
    eprintln!("slow client: {report:?}");
    drop(s);
    db.close_all_connections();
}

/// Builds the service's instance on `config` after the service's recorder is
/// installed, its pools named after `prefix` so that no other test's share them.
async fn metered<B: Store>(config: DatabaseConfig, prefix: &str) -> DatabaseInstance<B> {
    axum_service::store::metrics::prometheus();
    let db = DatabaseInstance::<B>::builder(config)
        .pool_name_prefix(prefix)
        .build_async()
        .await
        .unwrap();
    axum_service::prepare(&db).await.unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_metrics_under_load_agree_with_pool_stats() {
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url());
    let db = metered::<Sqlite>(config, "sqlite-metrics").await;
    let s = start(db.clone()).await;
    metrics_agree_with_pool_stats(&s.client, &db).await;
    drop(s);
    db.close_all_connections();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_metrics_under_load_agree_with_pool_stats() {
    let Some(schema) = pg_schema() else { return };
    let config = schema.config().pool_size(4);
    let db = metered::<dbinstance::Postgres>(config, "pg-metrics").await;
    let s = start(db.clone()).await;
    metrics_agree_with_pool_stats(&s.client, &db).await;
    drop(s);
    db.close_all_connections();
}
