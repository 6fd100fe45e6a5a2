//! Read-your-writes over HTTP with a lagging replica: the shared scenario, served
//! by axum.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use dbinstance::{DatabaseInstance, Postgres};
use dbinstance_axum::{Db, DbPositionLayer, DbRead, DbRejection, DbTx, DbTxLayer, DbWrite};
use dbinstance_web::scenarios::read_your_writes::{self as scenario, has_note, insert_note};

async fn create(Path(id): Path<i64>, mut tx: DbTx<Postgres>) -> Result<StatusCode, DbRejection> {
    insert_note(&mut tx, id).await?;
    Ok(StatusCode::CREATED)
}

async fn write(
    Path(id): Path<i64>,
    DbWrite(mut tx): DbWrite<Postgres>,
) -> Result<StatusCode, DbRejection> {
    insert_note(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::CREATED)
}

async fn then_read(Path(id): Path<i64>, Db(db): Db<Postgres>) -> Result<StatusCode, DbRejection> {
    db.async_write(async |conn| insert_note(conn, id).await.map_err(DbRejection::from))
        .await?;
    let seen = db
        .async_read(async |conn| has_note(conn, id).await.map_err(DbRejection::from))
        .await?;
    Ok(if seen {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

async fn read(
    Path(id): Path<i64>,
    DbRead(mut conn): DbRead<Postgres>,
) -> Result<StatusCode, DbRejection> {
    let seen = has_note(&mut conn, id).await?;
    Ok(if seen {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    })
}

async fn serve(db: DatabaseInstance<Postgres>) -> String {
    let router = Router::new()
        .route("/notes/{id}", post(create).get(read))
        .route("/notes/{id}/write", post(write))
        .route("/notes/{id}/then-read", post(then_read))
        .layer(DbTxLayer::<Postgres>::new())
        .layer(DbPositionLayer::<Postgres>::new())
        .layer(dbinstance_axum::JsonErrorsLayer::new())
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_reads_its_writes_across_requests() {
    let Some((schema, db, replica)) = scenario::notes_instance().await else {
        return;
    };
    let base = serve(db).await;
    scenario::a_client_reads_its_writes_across_requests(&base, schema.name(), &replica).await;
}

/// The same behind PgBouncer in transaction mode, with `transaction_pooling`.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_reads_its_writes_across_requests_through_pgbouncer() {
    let Some((db, replica)) = scenario::notes_instance_through_pgbouncer().await else {
        return;
    };
    let base = serve(db).await;
    scenario::a_client_reads_its_writes_across_requests(
        &base,
        scenario::PGBOUNCER_SCHEMA,
        &replica,
    )
    .await;
}
