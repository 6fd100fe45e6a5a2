//! The extractors over real HTTP: the scenarios of `dbinstance_web::scenarios`, shared
//! with the actix-web adapter, against their app written for axum and served on an
//! ephemeral port.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use dbinstance_axum::{
    BufferBodyLayer, DbRead, DbRejection, DbTx, DbTxLayer, DbWrite, JsonErrorsLayer, RejectionKind,
};
use dbinstance_web::scenarios::{self, items};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;

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

async fn tx_then_json(
    mut tx: DbTx<Sqlite>,
    Json(name): Json<String>,
) -> Result<StatusCode, DbRejection> {
    insert(&mut tx, &name).await?;
    Ok(StatusCode::CREATED)
}

async fn count(DbRead(mut conn): DbRead<Sqlite>) -> Result<Json<i64>, DbRejection> {
    Ok(Json(items::table.count().get_result(&mut *conn).await?))
}

fn routes() -> Router<DatabaseInstance<Sqlite>> {
    Router::new()
        .route("/ok", post(ok))
        .route("/not-found", post(not_found))
        .route("/db-error", post(db_error))
        .route("/panic", post(panics))
        .route("/write/{commit}", post(write))
        .route("/tx-then-json", post(tx_then_json))
        .route("/count", get(count))
        .route("/health", get(dbinstance_axum::health::<Sqlite>))
}

/// Serves the scenarios' app on `db` on a free port; returns its base URL.
async fn serve(db: DatabaseInstance<Sqlite>, with_layer: bool) -> String {
    let mut router = routes();
    if with_layer {
        router = router.layer(DbTxLayer::<Sqlite>::new());
    }
    let router = router
        .layer(BufferBodyLayer::new())
        .layer(CatchPanicLayer::new())
        .layer(JsonErrorsLayer::new())
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn memory() -> DatabaseConfig {
    DatabaseConfig::from_url(":memory:")
}

#[tokio::test]
async fn db_tx_commits_on_success_and_rolls_back_on_any_other_outcome() {
    let db = scenarios::instance(memory()).await;
    let base = serve(db.clone(), true).await;
    scenarios::db_tx_commits_on_success_and_rolls_back_otherwise(&base, &db).await;
}

#[tokio::test]
async fn db_write_keeps_only_what_is_committed() {
    let db = scenarios::instance(memory()).await;
    let base = serve(db.clone(), true).await;
    scenarios::db_write_keeps_only_what_is_committed(&base, &db).await;
}

#[tokio::test]
async fn a_malformed_body_next_to_db_tx_keeps_nothing() {
    let db = scenarios::instance(memory()).await;
    let base = serve(db.clone(), true).await;
    scenarios::a_malformed_body_next_to_db_tx_keeps_nothing(&base, &db).await;
}

#[tokio::test]
async fn a_pool_timeout_is_a_503_with_retry_after() {
    let config = memory()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let db = scenarios::instance(config).await;
    let base = serve(db.clone(), true).await;
    scenarios::a_pool_timeout_is_a_503_with_retry_after(&base, &db).await;
}

#[tokio::test]
async fn health_is_200_then_503_once_closed() {
    let db = scenarios::instance(memory()).await;
    let base = serve(db.clone(), true).await;
    scenarios::health_is_200_then_503_once_closed(&base, &db).await;
}

#[tokio::test]
async fn db_tx_without_its_layer_is_a_500() {
    let db = scenarios::instance(memory()).await;
    let base = serve(db.clone(), false).await;
    scenarios::db_tx_without_its_layer_is_a_500(&base, &db).await;
}

#[tokio::test]
async fn db_tx_without_its_layer_is_a_typed_rejection() {
    use axum::extract::FromRequestParts;
    let db = scenarios::instance(memory()).await;
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    let rejection = DbTx::<Sqlite>::from_request_parts(&mut parts, &db)
        .await
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::MissingTxLayer);
    assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let db = scenarios::instance(memory()).await;
    let base = serve(db.clone(), true).await;
    scenarios::a_body_over_the_limit_is_a_413(
        &base,
        "/tx-then-json",
        dbinstance_web::DEFAULT_BODY_LIMIT,
    )
    .await;
}

#[tokio::test]
async fn a_slow_body_holds_no_writer() {
    let config = memory().pool_size(1).pool_timeout(Duration::from_secs(5));
    let db = scenarios::instance(config).await;
    let base = serve(db.clone(), true).await;
    let fast = base.clone();
    scenarios::a_slow_body_holds_no_writer(&base, "/tx-then-json", "slow".into(), |http, _| {
        http.post(format!("{fast}/ok"))
    })
    .await;
}

mod named {
    use super::*;
    use dbinstance::DatabaseManager;
    use dbinstance_axum::{DbNamed, DbReadFrom, DbWriteTo};
    use dbinstance_web::scenarios::named::{self, Audit, Billing, Main};

    async fn write_audit(
        DbWriteTo(mut tx, _): DbWriteTo<Sqlite, Audit>,
        DbNamed(audit, _): DbNamed<Sqlite, Audit>,
    ) -> Result<(StatusCode, Json<i64>), DbRejection> {
        diesel::insert_into(items::table)
            .values(items::name.eq("audit"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut conn = audit.async_get_db_cm_read().await?;
        let count = items::table.count().get_result(&mut *conn).await?;
        Ok((StatusCode::CREATED, Json(count)))
    }

    async fn count_main(
        DbReadFrom(mut conn, _): DbReadFrom<Sqlite, Main>,
    ) -> Result<Json<i64>, DbRejection> {
        Ok(Json(items::table.count().get_result(&mut *conn).await?))
    }

    async fn count_audit(
        DbReadFrom(mut conn, _): DbReadFrom<Sqlite, Audit>,
    ) -> Result<Json<i64>, DbRejection> {
        Ok(Json(items::table.count().get_result(&mut *conn).await?))
    }

    async fn count_billing(
        DbReadFrom(mut conn, _): DbReadFrom<Sqlite, Billing>,
    ) -> Result<Json<i64>, DbRejection> {
        Ok(Json(items::table.count().get_result(&mut *conn).await?))
    }

    #[tokio::test]
    async fn databases_by_name() {
        let manager = named::manager().await;
        let router: Router = Router::<DatabaseManager>::new()
            .route("/named/audit", post(write_audit))
            .route("/named/audit/count", get(count_audit))
            .route("/named/main/count", get(count_main))
            .route("/named/billing/count", get(count_billing))
            .layer(JsonErrorsLayer::new())
            .with_state(manager);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        named::databases_by_name(&format!("http://{addr}")).await;
    }
}
