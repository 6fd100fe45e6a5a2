//! Handlers cut mid-query on SQLite: by a timeout of their own, and by clients that
//! go away. actix-web's workers run current-thread runtimes, where diesel-async's
//! own SQLite wrapper panicked when a query future was dropped before it ended.
//! No panic, and the service keeps answering.

use actix_web::{web, App, HttpResponse, HttpServer};
use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Sqlite};
use dbinstance_actix::{DbRead, DbRejection};
use diesel_async::SimpleAsyncConnection;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A query that keeps SQLite busy for a fifth of a second or so.
const SLOW: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT count(*) FROM c";

async fn slow(DbRead(mut conn): DbRead<Sqlite>) -> Result<HttpResponse, DbRejection> {
    conn.batch_execute(SLOW).await?;
    Ok(HttpResponse::Ok().finish())
}

/// Gives the slow query 20 ms, then answers 504: the query's future is dropped
/// while SQLite runs it.
async fn bounded(DbRead(mut conn): DbRead<Sqlite>) -> Result<HttpResponse, DbRejection> {
    match tokio::time::timeout(Duration::from_millis(20), conn.batch_execute(SLOW)).await {
        Ok(done) => {
            done?;
            Ok(HttpResponse::Ok().finish())
        }
        Err(_) => Ok(HttpResponse::GatewayTimeout().finish()),
    }
}

async fn quick(DbRead(mut conn): DbRead<Sqlite>) -> Result<HttpResponse, DbRejection> {
    conn.batch_execute("SELECT 1").await?;
    Ok(HttpResponse::Ok().finish())
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Sends a GET for `path` and returns the status line, or `None` if `cut_after` is
/// set: the client then goes away after that long without reading.
fn get(address: &str, path: &str, cut_after: Option<Duration>) -> Option<String> {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    if let Some(after) = cut_after {
        std::thread::sleep(after);
        return None;
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().map(str::to_owned)
}

#[test]
fn handlers_cut_mid_query_on_sqlite_do_not_panic() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        eprintln!("panic: {info}");
    }));
    let file = std::env::temp_dir().join(format!("dbinstance-cut-{}.sqlite3", std::process::id()));
    let url = file.display().to_string();
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(&url).pool_size(2)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (sender, receiver) = std::sync::mpsc::channel();
    let served = db.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(served.clone()))
                    .route("/slow", web::get().to(slow))
                    .route("/bounded", web::get().to(bounded))
                    .route("/quick", web::get().to(quick))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        });
    });
    let handle = receiver.recv().unwrap();

    for _ in 0..5 {
        assert_eq!(
            get(&address, "/bounded", None).as_deref(),
            Some("HTTP/1.1 504 Gateway Timeout")
        );
        get(&address, "/slow", Some(Duration::from_millis(30)));
    }
    for _ in 0..20 {
        assert_eq!(
            get(&address, "/quick", None).as_deref(),
            Some("HTTP/1.1 200 OK")
        );
    }
    assert_eq!(PANICS.load(Ordering::Relaxed), 0, "a worker panicked");
    // Nothing holds SQLite's write lock either.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        db.async_write(async |conn| {
            conn.batch_execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
                .await
                .map_err(Error::from)
        })
        .await
        .unwrap();
        drop(handle.stop(false));
    });
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{url}{suffix}"));
    }
}
