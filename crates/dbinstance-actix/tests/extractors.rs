//! The extractors over real HTTP: a small app on an in-memory SQLite database, served
//! by an actix-web server (two workers, on its own thread) on an ephemeral port and
//! driven with an HTTP client.

use actix_web::dev::ServerHandle;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpResponse, HttpServer};
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite, TableOptions};
use dbinstance_actix::{DbRead, DbRejection, DbTx, DbTxMiddleware, DbWrite};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

mod schema {
    #![allow(missing_docs)]
    diesel::table! {
        items (id) {
            id -> Integer,
            name -> Text,
        }
    }
}
use schema::items;

/// `/hold` says when it holds its transaction, then waits for `release`.
#[derive(Clone, Default)]
struct Signals {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

async fn insert(tx: &mut DbTx<Sqlite>, name: &str) -> Result<(), DbRejection> {
    diesel::insert_into(items::table)
        .values(items::name.eq(name))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn ok(mut tx: DbTx<Sqlite>) -> Result<HttpResponse, DbRejection> {
    insert(&mut tx, "ok").await?;
    Ok(HttpResponse::Created().finish())
}

async fn not_found(mut tx: DbTx<Sqlite>) -> Result<HttpResponse, DbRejection> {
    insert(&mut tx, "not found").await?;
    Ok(HttpResponse::NotFound().finish())
}

/// Inserts a row, then fails on a duplicate key: a real database error through `?`.
async fn db_error(mut tx: DbTx<Sqlite>) -> Result<HttpResponse, DbRejection> {
    insert(&mut tx, "first").await?;
    let id: i32 = items::table
        .select(items::id)
        .order(items::id.desc())
        .first(&mut *tx)
        .await?;
    diesel::insert_into(items::table)
        .values((items::id.eq(id), items::name.eq("duplicate")))
        .execute(&mut *tx)
        .await?;
    Ok(HttpResponse::Created().finish())
}

async fn panics(mut tx: DbTx<Sqlite>) -> HttpResponse {
    insert(&mut tx, "panic").await.unwrap();
    panic!("the handler panics after its insert");
}

async fn hold(
    signals: web::Data<Signals>,
    mut tx: DbTx<Sqlite>,
) -> Result<HttpResponse, DbRejection> {
    insert(&mut tx, "held").await?;
    signals.entered.notify_one();
    signals.release.notified().await;
    Ok(HttpResponse::Created().finish())
}

/// A `DbWrite` commits only when asked: `/write/false` drops it.
async fn write(
    commit: web::Path<bool>,
    DbWrite(mut tx): DbWrite<Sqlite>,
) -> Result<HttpResponse, DbRejection> {
    diesel::insert_into(items::table)
        .values(items::name.eq("write"))
        .execute(&mut *tx)
        .await?;
    if *commit {
        tx.commit().await?;
    }
    Ok(HttpResponse::Ok().finish())
}

/// `DbTx` before a body extractor: actix-web polls both, and drops the `DbTx` when the
/// body turns out malformed.
async fn tx_then_json(
    mut tx: DbTx<Sqlite>,
    name: web::Json<String>,
) -> Result<HttpResponse, DbRejection> {
    insert(&mut tx, &name).await?;
    Ok(HttpResponse::Created().finish())
}

async fn count(DbRead(mut conn): DbRead<Sqlite>) -> Result<HttpResponse, DbRejection> {
    let n: i64 = items::table.count().get_result(&mut *conn).await?;
    Ok(HttpResponse::Ok().json(n))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ok", web::post().to(ok))
        .route("/not-found", web::post().to(not_found))
        .route("/db-error", web::post().to(db_error))
        .route("/panic", web::post().to(panics))
        .route("/hold", web::post().to(hold))
        .route("/write/{commit}", web::post().to(write))
        .route("/tx-then-json", web::post().to(tx_then_json))
        .route("/count", web::get().to(count))
        .route("/health", web::get().to(dbinstance_actix::health::<Sqlite>));
}

async fn instance(config: DatabaseConfig) -> DatabaseInstance<Sqlite> {
    let db = DatabaseInstance::<Sqlite>::builder(config)
        .build_async()
        .await
        .unwrap();
    db.schema()
        .register::<items::table>(TableOptions::new().auto_increment("id"))
        .unwrap();
    db.async_create_tables().await.unwrap();
    db
}

/// Serves the app on 127.0.0.1 on a free port from a thread of its own; returns the
/// base URL and the handle that stops it.
fn serve(
    db: DatabaseInstance<Sqlite>,
    signals: Signals,
    with_middleware: bool,
) -> (String, ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(db.clone()))
                    .app_data(web::Data::new(signals.clone()))
                    .wrap(Condition::new(
                        with_middleware,
                        DbTxMiddleware::<Sqlite>::new(),
                    ))
                    .configure(routes)
            })
            .workers(2)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            sender.send(server.handle()).unwrap();
            server.await.unwrap();
        });
    });
    (base, receiver.recv().unwrap())
}

async fn rows(db: &DatabaseInstance<Sqlite>) -> Vec<String> {
    let mut conn = db.async_get_db_cm_read().await.unwrap();
    items::table
        .select(items::name)
        .order(items::id)
        .load(&mut *conn)
        .await
        .unwrap()
}

fn memory() -> DatabaseConfig {
    DatabaseConfig::from_url(":memory:")
}

#[tokio::test]
async fn db_tx_commits_on_success_and_rolls_back_on_any_other_outcome() {
    let db = instance(memory()).await;
    let (base, server) = serve(db.clone(), Signals::default(), true);
    let http = reqwest::Client::new();

    let response = http.post(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(rows(&db).await, ["ok"]);

    // A non-2xx answer from the handler.
    let response = http.post(format!("{base}/not-found")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A database error after a successful insert: 500, a JSON body with no SQL.
    let response = http.post(format!("{base}/db-error")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal_error", "{body}");
    assert!(!body.to_string().contains("items"), "{body}");

    // A panic after an insert: actix-web drops the connection (or answers 500); the
    // middleware rolled back either way.
    let outcome = http.post(format!("{base}/panic")).send().await;
    if let Ok(response) = outcome {
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    assert_eq!(rows(&db).await, ["ok"], "only the committed row is left");
    let count: i64 = http
        .get(format!("{base}/count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count, 1);
    server.stop(false).await;
}

#[tokio::test]
async fn a_malformed_body_next_to_db_tx_is_a_400_and_opens_nothing_for_good() {
    let db = instance(memory()).await;
    let (base, server) = serve(db.clone(), Signals::default(), true);
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let response = http
            .post(format!("{base}/tx-then-json"))
            .header("content-type", "application/json")
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let response = http
        .post(format!("{base}/tx-then-json"))
        .json("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(rows(&db).await, ["kept"]);
    server.stop(false).await;
}

#[tokio::test]
async fn db_write_keeps_only_what_is_committed() {
    let db = instance(memory()).await;
    let (base, server) = serve(db.clone(), Signals::default(), true);
    let http = reqwest::Client::new();
    for commit in ["false", "true"] {
        let response = http
            .post(format!("{base}/write/{commit}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(rows(&db).await, ["write"]);
    server.stop(false).await;
}

#[tokio::test]
async fn a_pool_timeout_is_a_503_with_a_json_body() {
    let config = memory()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let db = instance(config).await;
    let signals = Signals::default();
    let (base, server) = serve(db.clone(), signals.clone(), true);
    let http = reqwest::Client::new();

    // One request holds the only write connection inside its transaction...
    let holder = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/hold");
        async move { http.post(url).send().await.unwrap().status() }
    });
    signals.entered.notified().await;

    // ...so the next one waits pool_timeout for it and gets a 503.
    let response = http.post(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "error": "service_unavailable",
            "message": "the database is unavailable, try again later",
        })
    );

    // The read side too: the test holds the only read connection.
    let held = db.async_get_db_cm_read().await.unwrap();
    let response = http.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);

    signals.release.notify_one();
    assert_eq!(holder.await.unwrap(), StatusCode::CREATED);
    assert_eq!(rows(&db).await, ["held"]);
    server.stop(false).await;
}

#[tokio::test]
async fn health_is_200_with_the_report_and_503_when_unhealthy() {
    let db = instance(memory()).await;
    let (base, server) = serve(db.clone(), Signals::default(), true);
    let http = reqwest::Client::new();

    let response = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["status"], "healthy", "{report}");
    assert!(report["pools"].as_array().is_some_and(|p| !p.is_empty()));

    db.close_all_connections();
    let response = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["status"], "unhealthy", "{report}");

    // A closed instance is "unavailable" for the session extractors as well.
    let response = http.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    server.stop(false).await;
}

#[tokio::test]
async fn db_tx_without_its_middleware_is_a_500() {
    let db = instance(memory()).await;
    let (base, server) = serve(db.clone(), Signals::default(), false);
    let response = reqwest::Client::new()
        .post(format!("{base}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal_error");
    assert!(rows(&db).await.is_empty());
    server.stop(false).await;
}
