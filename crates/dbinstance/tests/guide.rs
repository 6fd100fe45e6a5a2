//! What docs/guide.md promises, checked: which health checks are bounded by
//! `health_timeout`, which counters each pool family keeps, who reports waiting
//! callers, and what `ssl_mode` does on PostgreSQL.

mod common;

use dbinstance::{
    AsyncPoolKind, DatabaseConfig, DatabaseInstance, Error, PoolCounts, PoolKind, PoolStats, Role,
    SslMode,
};
use diesel::connection::SimpleConnection;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(1500);

/// A server that accepts connections and never says a word; the connections are
/// held open for the rest of the test binary.
fn hung_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

/// A byte-for-byte relay to `target` that can be frozen: once frozen it keeps every
/// connection open and forwards nothing, as a server that hangs would.
struct Relay {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
}

impl Relay {
    fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                for (from, to) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || pipe(from, to, &flag));
                }
            }
        });
        Relay { addr, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the relay's.
    fn url(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).unwrap();
        parsed.set_host(Some("127.0.0.1")).unwrap();
        parsed.set_port(Some(self.addr.port())).unwrap();
        parsed.into()
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen: swallow the bytes and keep both sockets open.
        while frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn target_of(url: &str) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap();
    format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap())
        .parse()
        .unwrap()
}

fn at(addr: SocketAddr, scheme: &str) -> String {
    format!("{scheme}://user:pw@{addr}/db")
}

fn hung_config(url: String, kind: AsyncPoolKind) -> DatabaseConfig {
    DatabaseConfig::from_url(url)
        .health_timeout(HEALTH_TIMEOUT)
        .async_pool(kind)
}

fn assert_bounded(what: &str, started: Instant, healthy: bool) {
    let took = started.elapsed();
    assert!(!healthy, "{what}: a server that never answers was healthy");
    assert!(
        took <= HEALTH_TIMEOUT + SLACK,
        "{what}: took {took:?} with a health_timeout of {HEALTH_TIMEOUT:?}"
    );
}

#[test]
fn the_blocking_health_check_of_a_server_that_never_answers_returns_within_health_timeout() {
    let addr = hung_server();
    let pg = DatabaseInstance::<dbinstance::Postgres>::builder(hung_config(
        at(addr, "postgres"),
        AsyncPoolKind::Deadpool,
    ))
    .build_lazy()
    .unwrap();
    let started = Instant::now();
    assert_bounded("postgres r2d2", started, pg.check_database_health());

    let mysql = DatabaseInstance::<dbinstance::Mysql>::builder(hung_config(
        at(addr, "mysql"),
        AsyncPoolKind::Deadpool,
    ))
    .build_lazy()
    .unwrap();
    let started = Instant::now();
    assert_bounded("mysql r2d2", started, mysql.check_database_health());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_health_check_of_a_server_that_never_answers_returns_within_health_timeout() {
    let addr = hung_server();
    for kind in [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8] {
        let pg = DatabaseInstance::<dbinstance::Postgres>::builder(hung_config(
            at(addr, "postgres"),
            kind,
        ))
        .build_lazy()
        .unwrap();
        let started = Instant::now();
        let healthy = pg.async_check_database_health().await;
        assert_bounded(&format!("postgres {kind:?}"), started, healthy);

        let mysql =
            DatabaseInstance::<dbinstance::Mysql>::builder(hung_config(at(addr, "mysql"), kind))
                .build_lazy()
                .unwrap();
        let started = Instant::now();
        let healthy = mysql.async_check_database_health().await;
        assert_bounded(&format!("mysql {kind:?}"), started, healthy);
    }
}

/// Connects every async pool through a relay, freezes the relay, and checks health.
async fn async_health_of_a_server_that_hangs_after_connecting<B: dbinstance::Backend>(url: &str) {
    for kind in [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8] {
        let relay = Relay::to(target_of(url));
        let mut through = relay.url(url);
        if B::KIND == dbinstance::BackendKind::Mysql {
            // mysql_async moves a connection to 127.0.0.1 onto the server's Unix
            // socket, which would bypass the relay.
            through.push_str("?prefer_socket=false");
        }
        let db = DatabaseInstance::<B>::builder(hung_config(through, kind))
            .build_async()
            .await
            .unwrap();
        assert!(db.async_check_database_health().await, "{kind:?}");
        relay.freeze();
        let started = Instant::now();
        let healthy = db.async_check_database_health().await;
        assert_bounded(&format!("{:?} {kind:?}", B::KIND), started, healthy);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_health_check_of_a_postgres_server_that_hangs_after_connecting_returns_within_health_timeout(
) {
    let Some(url) = common::pg() else { return };
    async_health_of_a_server_that_hangs_after_connecting::<dbinstance::Postgres>(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_health_check_of_a_mysql_server_that_hangs_after_connecting_returns_within_health_timeout(
) {
    let Some(url) = common::mysql() else { return };
    async_health_of_a_server_that_hangs_after_connecting::<dbinstance::Mysql>(&url).await;
}

fn stats<B: dbinstance::Backend>(db: &DatabaseInstance<B>, kind: PoolKind) -> PoolStats {
    db.pool_stats()
        .into_iter()
        .find(|s| s.pool.role == Role::Write && s.pool.kind == kind)
        .unwrap()
}

fn counts<B: dbinstance::Backend>(db: &DatabaseInstance<B>, kind: PoolKind) -> PoolCounts {
    stats(db, kind).counts
}

fn sqlite(file: &common::TempDb, kind: AsyncPoolKind) -> DatabaseInstance<dbinstance::Sqlite> {
    DatabaseInstance::builder(
        DatabaseConfig::from_url(file.url())
            .async_pool(kind)
            .pool_timeout(Duration::from_millis(200)),
    )
    .build()
    .unwrap()
}

#[test]
fn the_blocking_pools_count_opened_connections_checkout_timeouts_and_connect_failures() {
    let file = common::TempDb::new("counts_sync");
    let db = sqlite(&file, AsyncPoolKind::Deadpool);
    let held = db.get_db_cm_write().unwrap();
    assert!(counts(&db, PoolKind::Sync).opened >= 1);
    // The SQLite write pool holds one connection: a second checkout waits and gives up.
    assert!(matches!(db.get_db_cm_write(), Err(Error::Timeout { .. })));
    assert_eq!(counts(&db, PoolKind::Sync).checkout_timeouts, 1);
    assert_eq!(counts(&db, PoolKind::Sync).sessions_ended, 0);
    held.commit().unwrap();
    assert_eq!(counts(&db, PoolKind::Sync).sessions_ended, 1);

    let nowhere = DatabaseInstance::<dbinstance::Sqlite>::builder(
        DatabaseConfig::from_url("/nonexistent-dbinstance-dir/db.sqlite3")
            .min_idle(0)
            .connect_timeout(Duration::from_secs(1)),
    )
    .build_lazy()
    .unwrap();
    assert!(nowhere.get_db_cm_write().is_err());
    assert!(counts(&nowhere, PoolKind::Sync).connect_failures >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_pools_count_opened_connections_connect_failures_and_aborted_transactions() {
    for kind in [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8] {
        let file = common::TempDb::new("counts_async");
        let db = sqlite(&file, kind);
        let session = db.async_get_db_cm_write().await.unwrap();
        assert_eq!(counts(&db, PoolKind::Async).sessions_ended, 0, "{kind:?}");
        session.commit().await.unwrap();
        assert_eq!(counts(&db, PoolKind::Async).sessions_ended, 1, "{kind:?}");
        let session = db.async_get_db_cm_write().await.unwrap();
        assert!(counts(&db, PoolKind::Async).opened >= 1, "{kind:?}");
        drop(session);
        assert_eq!(
            counts(&db, PoolKind::Async).aborted_transactions,
            1,
            "{kind:?}"
        );

        let nowhere = DatabaseInstance::<dbinstance::Sqlite>::builder(
            // No background connect: the checkout's own connect is the one that
            // fails (a failure opens the breaker every pool on the file shares).
            DatabaseConfig::from_url("/nonexistent-dbinstance-dir/db.sqlite3")
                .async_pool(kind)
                .min_idle(0)
                .pool_timeout(Duration::from_secs(1)),
        )
        .build_lazy()
        .unwrap();
        assert!(nowhere.async_get_db_cm_write().await.is_err(), "{kind:?}");
        assert!(
            counts(&nowhere, PoolKind::Async).connect_failures >= 1,
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_pools_count_checkout_timeouts_as_the_blocking_ones_do() {
    for kind in [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8] {
        let file = common::TempDb::new("timeouts_async");
        let db = sqlite(&file, kind);
        let held = db.async_get_db_cm_write().await.unwrap();
        // The SQLite write pool holds one connection: a second checkout waits and gives up.
        let second = db.async_get_db_cm_write().await;
        assert!(matches!(second, Err(Error::Timeout { .. })), "{kind:?}");
        assert_eq!(
            counts(&db, PoolKind::Async).checkout_timeouts,
            1,
            "{kind:?}"
        );
        held.commit().await.unwrap();
    }
}

/// Kills the server side of every connection named `app`.
fn terminate(admin: &mut diesel::PgConnection, app: &str) {
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pool_family_counts_the_broken_connections_it_discards() {
    let Some(url) = common::pg() else { return };
    let mut admin = <diesel::PgConnection as diesel::Connection>::establish(&url).unwrap();
    for kind in [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8] {
        let app = common::unique_table("broken");
        let db = DatabaseInstance::<dbinstance::Postgres>::builder(
            DatabaseConfig::from_url(&url)
                .application_name(&app)
                .async_pool(kind)
                .pool_size(1)
                .min_idle(0),
        )
        .build_async()
        .await
        .unwrap();
        drop(db.get_db_cm_write().unwrap());
        db.async_get_db_cm_write()
            .await
            .unwrap()
            .rollback()
            .await
            .unwrap();
        terminate(&mut admin, &app);
        // The blocking connection fails its next statement (the write session's
        // BEGIN) and is dropped when it comes back; the next checkout connects anew.
        assert!(matches!(db.get_db_cm_write(), Err(Error::Session { .. })));
        assert_eq!(counts(&db, PoolKind::Sync).broken_discarded, 1, "r2d2");
        db.get_db_cm_write().unwrap().commit().unwrap();
        // The async connection, opened by the first async session, notices its closed socket at
        // the next checkout, which then opens a new one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let session = db.async_get_db_cm_write().await.unwrap();
        session.rollback().await.unwrap();
        let async_counts = counts(&db, PoolKind::Async);
        match kind {
            AsyncPoolKind::Deadpool => assert_eq!(async_counts.broken_discarded, 1),
            // bb8 counts it twice today: once at the checkout that finds it broken
            // and once more when bb8 asks whether it is broken as it throws it away.
            AsyncPoolKind::Bb8 => assert!(async_counts.broken_discarded >= 1),
        }
        assert_eq!(async_counts.opened, 2, "{kind:?}: {async_counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_reports_waiting_callers() {
    let file = common::TempDb::new("waiting");
    let db = DatabaseInstance::<dbinstance::Sqlite>::builder(
        DatabaseConfig::from_url(file.url()).pool_timeout(Duration::from_secs(5)),
    )
    .build_async()
    .await
    .unwrap();
    let held = db.async_get_db_cm_write().await.unwrap();
    let waiter = tokio::spawn({
        let db = db.clone();
        async move { db.async_get_db_cm_write().await.map(drop) }
    });
    let seen = {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let state = stats(&db, PoolKind::Async);
            if state.state.waiting == 1 || Instant::now() > deadline {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(seen.state.waiting, 1, "{:?}", seen.state);
    assert_eq!(seen.utilization, dbinstance::Utilization::Critical);
    held.rollback().await.unwrap();
    waiter.await.unwrap().unwrap();
}

/// Whether the connection a session holds runs over TLS.
fn pg_ssl_in_use(conn: &mut diesel::PgConnection) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    diesel::RunQueryDsl::get_result::<Ssl>(
        diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        conn,
    )
    .unwrap()
    .ssl
}

async fn async_pg_ssl_in_use(conn: &mut diesel_async::AsyncPgConnection) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    diesel_async::RunQueryDsl::get_result::<Ssl>(
        diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        conn,
    )
    .await
    .unwrap()
    .ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ssl_modes_hold_on_the_blocking_and_the_async_pools() {
    let Some(url) = common::pg() else { return };
    let config = |mode| DatabaseConfig::from_url(&url).ssl_mode(mode);
    for (mode, tls) in [(SslMode::Disable, false), (SslMode::Require, true)] {
        let db = DatabaseInstance::<dbinstance::Postgres>::builder(config(mode))
            .build_async()
            .await
            .unwrap();
        let mut session = db.get_db_cm_write().unwrap();
        assert_eq!(pg_ssl_in_use(&mut session), tls, "r2d2 {mode:?}");
        let mut session = db.async_get_db_cm_write().await.unwrap();
        assert_eq!(
            async_pg_ssl_in_use(&mut session).await,
            tls,
            "async {mode:?}"
        );
    }
    // The test server's certificate names localhost, not 127.0.0.1, and libpq is
    // given no root certificate: verify-full refuses the server on both families.
    let db = DatabaseInstance::<dbinstance::Postgres>::builder(config(SslMode::VerifyFull))
        .build_lazy()
        .unwrap();
    assert!(matches!(
        db.get_db_cm_write(),
        Err(Error::Connect { .. } | Error::Unavailable { .. })
    ));
    // The failed connect opened the server's breaker: the async pool turns the
    // call away with the TLS failure as its cause.
    assert!(matches!(
        db.async_get_db_cm_write().await,
        Err(Error::Unavailable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_checkin_hooks_see_every_family_and_a_refusal_costs_a_new_connection() {
    use std::sync::atomic::AtomicUsize;
    for kind in [AsyncPoolKind::Deadpool, AsyncPoolKind::Bb8] {
        let file = common::TempDb::new("hooks");
        let refuse = Arc::new(AtomicBool::new(false));
        let checkins = Arc::new(AtomicUsize::new(0));
        let (refusing, counting) = (refuse.clone(), checkins.clone());
        let db = DatabaseInstance::<dbinstance::Sqlite>::builder(
            DatabaseConfig::from_url(file.url()).async_pool(kind),
        )
        .before_checkout(move |_info| {
            // Refuses one checkout each time the flag is raised.
            !refusing.swap(false, Ordering::SeqCst)
        })
        .after_checkin(move |_info| {
            counting.fetch_add(1, Ordering::SeqCst);
        })
        .build_async()
        .await
        .unwrap();
        db.get_db_cm_write().unwrap().commit().unwrap();
        db.async_get_db_cm_write()
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        assert_eq!(checkins.load(Ordering::SeqCst), 2, "{kind:?}");

        // A refused connection is dropped and the checkout opens a new one.
        let opened = |kind| counts(&db, kind).opened;
        let (sync_before, async_before) = (opened(PoolKind::Sync), opened(PoolKind::Async));
        refuse.store(true, Ordering::SeqCst);
        db.get_db_cm_write().unwrap().commit().unwrap();
        refuse.store(true, Ordering::SeqCst);
        db.async_get_db_cm_write()
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        assert!(opened(PoolKind::Sync) > sync_before, "r2d2");
        assert!(opened(PoolKind::Async) > async_before, "{kind:?}");
    }
}
