//! The service over real HTTP: started in-process on an ephemeral port, driven with
//! an HTTP client. SQLite always; PostgreSQL with its streaming replica when
//! `DBI_PG_URL` and `DBI_PG_REPLICA_URL` are set, MariaDB with its replica when
//! `DBI_MYSQL_PRIMARY_URL` and `DBI_MYSQL_REPLICA_URL` are (required under `CI=true`).

use actix_web::dev::ServerHandle;
use actix_web_service::store::scenarios::metrics::metrics_agree_with_pool_stats;
use actix_web_service::store::scenarios::{crud, edges, Client};
use actix_web_service::store::Store;
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use dbinstance_actix::testing::sqlite_memory;
#[cfg(feature = "mysql")]
use dbinstance_actix::testing::MysqlDatabase;
#[cfg(feature = "postgres")]
use dbinstance_actix::testing::PgSchema;
use dbinstance_web::scenarios;
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
    handle: ServerHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Sends the stop command at once; nothing needs to wait for it.
        drop(self.handle.stop(false));
    }
}

/// Serves `actix_web_service::app` on `db` on a free port, from an actix system on a
/// thread of its own (two workers sharing the pools).
fn start<B: Store>(db: DatabaseInstance<B>) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web_service::app(db.clone()))
                .workers(2)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    Server {
        client: Client::new(base),
        handle: receiver.recv().unwrap(),
    }
}

/// With the only connections held by the test, a 503 (see the shared scenario).
async fn unavailable<B: Store>(db: DatabaseInstance<B>) {
    let s = start(db.clone());
    actix_web_service::store::scenarios::unavailable(&s.client.base, &db).await;
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
        let dir = std::env::temp_dir().join(format!(
            "actix-web-service-e2e-{}-{nanos}",
            std::process::id()
        ));
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

/// The binary's path: `open` on a SQLite file creates the tables, `server` serves.
#[tokio::test]
async fn sqlite_file_crud_through_server() {
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url());
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web_service::server(listener, db, Duration::from_secs(1)).unwrap();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    let s = Server {
        client: Client::new(base),
        handle: receiver.recv().unwrap(),
    };
    crud(&s.client).await;
    s.handle.stop(true).await;
    drop(s);
    drop(dir);
}

/// A client that sends a request and goes away before the answer: its handler is
/// dropped, not run when the connection it waits for frees up (without
/// `h1_allow_half_closed(false)`, actix-web runs it to the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_is_dropped_not_run() {
    use std::io::Write as _;
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url());
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let served = db.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server =
                actix_web_service::server(listener, served, Duration::from_secs(1)).unwrap();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    let s = Server {
        client: Client::new(format!("http://{address}")),
        handle: receiver.recv().unwrap(),
    };
    // The writer is the test's: the request's transaction waits for it.
    let held = db.async_get_db_cm_write().await.unwrap();
    let body = json!({"name": "Gone", "email": "gone@example.com"}).to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.commit().await.unwrap();
    // Checkouts of the writer are served in order: a handler still waiting for it
    // would have run by the time this one is served.
    db.async_get_db_cm_write()
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let (status, users) = s.client.get("/users").await;
    assert_eq!(status, 200);
    assert_eq!(users["items"], json!([]), "{users}");
    s.handle.stop(true).await;
    drop(s);
    drop(dir);
}

#[tokio::test]
async fn sqlite_memory_crud() {
    let db = sqlite_memory().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    crud(&start(db).client).await;
}

#[tokio::test]
async fn sqlite_pool_timeout_is_503() {
    let config = DatabaseConfig::from_url(":memory:")
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    unavailable(db).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_with_replica_crud() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    crud(&start(db.clone()).client).await;
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
    let db = actix_web_service::open::<dbinstance::Postgres>(config)
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
    actix_web_service::prepare(&db).await.unwrap();
    crud(&start(db.clone()).client).await;
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
    let db = actix_web_service::open::<dbinstance::Mysql>(config)
        .await
        .unwrap();
    unavailable(db.clone()).await;
    db.close_all_connections();
}

#[tokio::test]
async fn sqlite_every_error_is_json() {
    let db = sqlite_memory().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    edges(&start(db).client).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_every_error_is_json() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    edges(&start(db.clone()).client).await;
    db.close_all_connections();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mariadb_every_error_is_json() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = database.instance().await.unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    edges(&start(db.clone()).client).await;
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
    let db = actix_web_service::open::<Sqlite>(config).await.unwrap();
    let s = start(db.clone());
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
    actix_web_service::store::metrics::prometheus();
    let db = DatabaseInstance::<B>::builder(config)
        .pool_name_prefix(prefix)
        .build_async()
        .await
        .unwrap();
    actix_web_service::prepare(&db).await.unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_metrics_under_load_agree_with_pool_stats() {
    let dir = TempDir::new();
    let config = DatabaseConfig::from_url(dir.sqlite_url());
    let db = metered::<Sqlite>(config, "sqlite-metrics").await;
    let s = start(db.clone());
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
    let s = start(db.clone());
    metrics_agree_with_pool_stats(&s.client, &db).await;
    drop(s);
    db.close_all_connections();
}
