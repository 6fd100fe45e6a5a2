//! The extractors over real HTTP: a small app on an in-memory SQLite database, served
//! on an ephemeral port and driven with an HTTP client.

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite, TableOptions};
use dbinstance_axum::{DbRead, DbRejection, DbTx, DbTxLayer, DbWrite};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;

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

#[derive(Clone)]
struct AppState {
    db: DatabaseInstance<Sqlite>,
    /// `/hold` says when it holds its transaction, then waits for `release`.
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

impl FromRef<AppState> for DatabaseInstance<Sqlite> {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

async fn insert(tx: &mut DbTx<Sqlite>, name: &str) -> Result<(), DbRejection> {
    diesel::insert_into(items::table)
        .values(items::name.eq(name))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn ok(mut tx: DbTx<Sqlite>) -> Result<StatusCode, DbRejection> {
    insert(&mut tx, "ok").await?;
    Ok(StatusCode::CREATED)
}

async fn not_found(mut tx: DbTx<Sqlite>) -> Result<StatusCode, DbRejection> {
    insert(&mut tx, "not found").await?;
    Ok(StatusCode::NOT_FOUND)
}

/// Inserts a row, then fails on a duplicate key: a real database error through `?`.
async fn db_error(mut tx: DbTx<Sqlite>) -> Result<StatusCode, DbRejection> {
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
    Ok(StatusCode::CREATED)
}

async fn panics(mut tx: DbTx<Sqlite>) -> StatusCode {
    insert(&mut tx, "panic").await.unwrap();
    panic!("the handler panics after its insert");
}

async fn hold(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut tx: DbTx<Sqlite>,
) -> Result<StatusCode, DbRejection> {
    insert(&mut tx, "held").await?;
    state.entered.notify_one();
    state.release.notified().await;
    Ok(StatusCode::CREATED)
}

/// A `DbWrite` commits only when asked: `/write/false` drops it.
async fn write(
    axum::extract::Path(commit): axum::extract::Path<bool>,
    DbWrite(mut tx): DbWrite<Sqlite>,
) -> Result<StatusCode, DbRejection> {
    diesel::insert_into(items::table)
        .values(items::name.eq("write"))
        .execute(&mut *tx)
        .await?;
    if commit {
        tx.commit().await?;
    }
    Ok(StatusCode::OK)
}

async fn count(DbRead(mut conn): DbRead<Sqlite>) -> Result<Json<i64>, DbRejection> {
    Ok(Json(items::table.count().get_result(&mut *conn).await?))
}

async fn app(config: DatabaseConfig) -> (AppState, Router) {
    let db = DatabaseInstance::<Sqlite>::builder(config)
        .build_async()
        .await
        .unwrap();
    db.schema()
        .register::<items::table>(TableOptions::new().auto_increment("id"))
        .unwrap();
    db.async_create_tables().await.unwrap();
    let state = AppState {
        db,
        entered: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
    };
    let router = Router::new()
        .route("/ok", post(ok))
        .route("/not-found", post(not_found))
        .route("/db-error", post(db_error))
        .route("/panic", post(panics))
        .route("/hold", post(hold))
        .route("/write/{commit}", post(write))
        .route("/count", get(count))
        .route("/health", get(dbinstance_axum::health::<Sqlite>))
        .layer(DbTxLayer::<Sqlite>::new())
        .layer(CatchPanicLayer::new())
        .with_state(state.clone());
    (state, router)
}

/// Serves `router` on 127.0.0.1 on a free port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
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
    let (state, router) = app(memory()).await;
    let base = serve(router).await;
    let http = reqwest::Client::new();

    let response = http.post(format!("{base}/ok")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(rows(&state.db).await, ["ok"]);

    // A non-2xx answer from the handler.
    let response = http.post(format!("{base}/not-found")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A database error after a successful insert: 500, a JSON body with no SQL.
    let response = http.post(format!("{base}/db-error")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal_error", "{body}");
    assert!(!body.to_string().contains("items"), "{body}");

    // A panic after an insert: CatchPanicLayer answers 500, the layer rolled back.
    let response = http.post(format!("{base}/panic")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

    assert_eq!(
        rows(&state.db).await,
        ["ok"],
        "only the committed row is left"
    );
    let count: i64 = http
        .get(format!("{base}/count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn db_write_keeps_only_what_is_committed() {
    let (state, router) = app(memory()).await;
    let base = serve(router).await;
    let http = reqwest::Client::new();
    for commit in ["false", "true"] {
        let response = http
            .post(format!("{base}/write/{commit}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(rows(&state.db).await, ["write"]);
}

#[tokio::test]
async fn a_pool_timeout_is_a_503_with_a_json_body() {
    let config = memory()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let (state, router) = app(config).await;
    let base = serve(router).await;
    let http = reqwest::Client::new();

    // One request holds the only write connection inside its transaction...
    let holder = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/hold");
        async move { http.post(url).send().await.unwrap().status() }
    });
    state.entered.notified().await;

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
    let held = state.db.async_get_db_cm_read().await.unwrap();
    let response = http.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);

    state.release.notify_one();
    assert_eq!(holder.await.unwrap(), StatusCode::CREATED);
    assert_eq!(rows(&state.db).await, ["held"]);
}

#[tokio::test]
async fn health_is_200_with_the_report_and_503_when_unhealthy() {
    let (state, router) = app(memory()).await;
    let base = serve(router).await;
    let http = reqwest::Client::new();

    let response = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["status"], "healthy", "{report}");
    assert!(report["pools"].as_array().is_some_and(|p| !p.is_empty()));

    state.db.close_all_connections();
    let response = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!(report["status"], "unhealthy", "{report}");

    // A closed instance is "unavailable" for the session extractors as well.
    let response = http.get(format!("{base}/count")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn db_tx_without_its_layer_is_a_500() {
    let db = DatabaseInstance::<Sqlite>::builder(memory())
        .build_async()
        .await
        .unwrap();
    let router = Router::new().route("/ok", post(ok_plain)).with_state(db);
    let base = serve(router).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "internal_error");
}

async fn ok_plain(_tx: DbTx<Sqlite>) -> StatusCode {
    StatusCode::OK
}
