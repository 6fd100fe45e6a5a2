//! Read-your-writes over HTTP with a lagging replica: the shared scenario, served
//! by actix-web.

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use dbinstance::{DatabaseInstance, Postgres};
use dbinstance_actix::{Db, DbPosition, DbRead, DbRejection, DbTx, DbTxMiddleware, DbWrite};
use dbinstance_web::scenarios::read_your_writes::{self as scenario, has_note, insert_note};

fn found(seen: bool) -> HttpResponse {
    if seen {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().finish()
    }
}

async fn create(id: web::Path<i64>, mut tx: DbTx<Postgres>) -> Result<HttpResponse, DbRejection> {
    insert_note(&mut tx, *id).await?;
    Ok(HttpResponse::Created().finish())
}

async fn write(
    id: web::Path<i64>,
    DbWrite(mut tx): DbWrite<Postgres>,
) -> Result<HttpResponse, DbRejection> {
    insert_note(&mut tx, *id).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().finish())
}

async fn then_read(id: web::Path<i64>, Db(db): Db<Postgres>) -> Result<HttpResponse, DbRejection> {
    let id = *id;
    db.async_write(async |conn| insert_note(conn, id).await.map_err(DbRejection::from))
        .await?;
    let seen = db
        .async_read(async |conn| has_note(conn, id).await.map_err(DbRejection::from))
        .await?;
    Ok(found(seen))
}

async fn read(
    id: web::Path<i64>,
    DbRead(mut conn): DbRead<Postgres>,
) -> Result<HttpResponse, DbRejection> {
    Ok(found(has_note(&mut conn, *id).await?))
}

/// The app on `db`, served from a thread of its own; stopped when dropped.
struct Served {
    base: String,
    handle: ServerHandle,
}

impl Drop for Served {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn serve(db: DatabaseInstance<Postgres>) -> Served {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(db.clone()))
                    .wrap(DbTxMiddleware::<Postgres>::new())
                    .wrap(DbPosition::<Postgres>::new())
                    .route("/notes/{id}", web::post().to(create))
                    .route("/notes/{id}", web::get().to(read))
                    .route("/notes/{id}/write", web::post().to(write))
                    .route("/notes/{id}/then-read", web::post().to(then_read))
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

#[tokio::test(flavor = "multi_thread")]
async fn a_client_reads_its_writes_across_requests() {
    let Some((schema, db, replica)) = scenario::notes_instance().await else {
        return;
    };
    let served = serve(db);
    scenario::a_client_reads_its_writes_across_requests(&served.base, schema.name(), &replica)
        .await;
}

/// The same behind PgBouncer in transaction mode, with `transaction_pooling`.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_reads_its_writes_across_requests_through_pgbouncer() {
    let Some((db, replica)) = scenario::notes_instance_through_pgbouncer().await else {
        return;
    };
    let served = serve(db);
    scenario::a_client_reads_its_writes_across_requests(
        &served.base,
        scenario::PGBOUNCER_SCHEMA,
        &replica,
    )
    .await;
}
