//! The extractors over real HTTP: the scenarios of `dbinstance_web::scenarios`, shared
//! with the axum adapter, against their app written for actix-web, served (two
//! workers, on a thread of its own) on an ephemeral port.

use actix_web::dev::ServerHandle;
use actix_web::middleware::Condition;
use actix_web::{web, App, FromRequest, HttpResponse, HttpServer};
use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
use dbinstance_actix::{
    BufferBody, DbRead, DbRejection, DbTx, DbTxMiddleware, DbWrite, RejectionKind,
};
use dbinstance_web::scenarios::{self, items};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::time::Duration;

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
        .route("/write/{commit}", web::post().to(write))
        .route("/tx-then-json", web::post().to(tx_then_json))
        .route("/count", web::get().to(count))
        .route("/health", web::get().to(dbinstance_actix::health::<Sqlite>));
}

/// The scenarios' app on `db`, served on 127.0.0.1 on a free port from a thread of
/// its own; stopped when dropped.
struct Served {
    base: String,
    handle: ServerHandle,
}

impl Drop for Served {
    fn drop(&mut self) {
        // Sends the stop command at once; nothing needs to wait for it.
        drop(self.handle.stop(false));
    }
}

fn serve(db: DatabaseInstance<Sqlite>, with_middleware: bool) -> Served {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(db.clone()))
                    .configure(dbinstance_actix::extractor_errors)
                    .wrap(Condition::new(
                        with_middleware,
                        DbTxMiddleware::<Sqlite>::new(),
                    ))
                    .wrap(BufferBody::new())
                    .wrap(dbinstance_actix::json_errors())
                    .configure(routes)
            })
            .workers(2)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    Served {
        base,
        handle: receiver.recv().unwrap(),
    }
}

fn memory() -> DatabaseConfig {
    DatabaseConfig::from_url(":memory:")
}

#[tokio::test]
async fn db_tx_commits_on_success_and_rolls_back_on_any_other_outcome() {
    let db = scenarios::instance(memory()).await;
    let served = serve(db.clone(), true);
    scenarios::db_tx_commits_on_success_and_rolls_back_otherwise(&served.base, &db).await;
}

#[tokio::test]
async fn db_write_keeps_only_what_is_committed() {
    let db = scenarios::instance(memory()).await;
    let served = serve(db.clone(), true);
    scenarios::db_write_keeps_only_what_is_committed(&served.base, &db).await;
}

#[tokio::test]
async fn a_malformed_body_next_to_db_tx_keeps_nothing() {
    let db = scenarios::instance(memory()).await;
    let served = serve(db.clone(), true);
    scenarios::a_malformed_body_next_to_db_tx_keeps_nothing(&served.base, &db).await;
}

#[tokio::test]
async fn a_pool_timeout_is_a_503_with_retry_after() {
    let config = memory()
        .pool_size(1)
        .pool_timeout(Duration::from_millis(200));
    let db = scenarios::instance(config).await;
    let served = serve(db.clone(), true);
    scenarios::a_pool_timeout_is_a_503_with_retry_after(&served.base, &db).await;
}

#[tokio::test]
async fn health_is_200_then_503_once_closed() {
    let db = scenarios::instance(memory()).await;
    let served = serve(db.clone(), true);
    scenarios::health_is_200_then_503_once_closed(&served.base, &db).await;
}

#[tokio::test]
async fn db_tx_without_its_middleware_is_a_500() {
    let db = scenarios::instance(memory()).await;
    let served = serve(db.clone(), false);
    scenarios::db_tx_without_its_layer_is_a_500(&served.base, &db).await;
}

#[actix_web::test]
async fn db_tx_without_its_middleware_is_a_typed_rejection() {
    let db = scenarios::instance(memory()).await;
    let request = actix_web::test::TestRequest::default()
        .app_data(web::Data::new(db))
        .to_http_request();
    let rejection = DbTx::<Sqlite>::extract(&request).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::MissingTxLayer);
    let request = actix_web::test::TestRequest::default().to_http_request();
    let rejection = DbRead::<Sqlite>::extract(&request).await.unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::MissingInstance);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let db = scenarios::instance(memory()).await;
    let served = serve(db.clone(), true);
    scenarios::a_body_over_the_limit_is_a_413(
        &served.base,
        "/tx-then-json",
        dbinstance_web::DEFAULT_BODY_LIMIT,
    )
    .await;
}

#[tokio::test]
async fn a_slow_body_holds_no_writer() {
    let config = memory().pool_size(1).pool_timeout(Duration::from_secs(5));
    let db = scenarios::instance(config).await;
    let served = serve(db.clone(), true);
    let fast = served.base.clone();
    scenarios::a_slow_body_holds_no_writer(
        &served.base,
        "/tx-then-json",
        "slow".into(),
        |http, _| http.post(format!("{fast}/ok")),
    )
    .await;
}

mod named {
    use super::*;
    use dbinstance::DatabaseManager;
    use dbinstance_actix::{DbNamed, DbReadFrom, DbWriteTo};
    use dbinstance_web::scenarios::named::{self, Audit, Billing, Main};

    async fn write_audit(
        DbWriteTo(mut tx, _): DbWriteTo<Sqlite, Audit>,
        DbNamed(audit, _): DbNamed<Sqlite, Audit>,
    ) -> Result<HttpResponse, DbRejection> {
        diesel::insert_into(items::table)
            .values(items::name.eq("audit"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut conn = audit.async_get_db_cm_read().await?;
        let count: i64 = items::table.count().get_result(&mut *conn).await?;
        Ok(HttpResponse::Created().json(count))
    }

    async fn count_main(
        DbReadFrom(mut conn, _): DbReadFrom<Sqlite, Main>,
    ) -> Result<HttpResponse, DbRejection> {
        let count: i64 = items::table.count().get_result(&mut *conn).await?;
        Ok(HttpResponse::Ok().json(count))
    }

    async fn count_audit(
        DbReadFrom(mut conn, _): DbReadFrom<Sqlite, Audit>,
    ) -> Result<HttpResponse, DbRejection> {
        let count: i64 = items::table.count().get_result(&mut *conn).await?;
        Ok(HttpResponse::Ok().json(count))
    }

    async fn count_billing(
        DbReadFrom(mut conn, _): DbReadFrom<Sqlite, Billing>,
    ) -> Result<HttpResponse, DbRejection> {
        let count: i64 = items::table.count().get_result(&mut *conn).await?;
        Ok(HttpResponse::Ok().json(count))
    }

    fn serve(manager: DatabaseManager) -> Served {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(manager.clone()))
                        .wrap(dbinstance_actix::json_errors())
                        .route("/named/audit", web::post().to(write_audit))
                        .route("/named/audit/count", web::get().to(count_audit))
                        .route("/named/main/count", web::get().to(count_main))
                        .route("/named/billing/count", web::get().to(count_billing))
                })
                .workers(2)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                sender.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        Served {
            base,
            handle: receiver.recv().unwrap(),
        }
    }

    #[tokio::test]
    async fn databases_by_name() {
        let served = serve(named::manager().await);
        named::databases_by_name(&served.base).await;
    }
}
