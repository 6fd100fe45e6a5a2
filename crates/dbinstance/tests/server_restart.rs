//! A primary killed under load (SIGKILL, as a crash would) and started again, on
//! servers the test bed keeps for this: a PostgreSQL cluster of its own and the
//! dedicated MariaDB primary, never the system servers. Blocking threads and async
//! tasks write all along. Checked: no call waits past its bound, no acknowledged
//! commit is lost, every writer succeeds again within 2 s of the server accepting
//! connections, the pools are back to full size, and once the instance is closed no
//! connection is left on the server and none sits idle in a transaction.
//!
//! `soak` (ignored here, `just soak` runs it) mixes reads, writes and cancelled
//! sessions for `DBI_SOAK_SECS` (60) while connections are killed at random on the
//! server.

mod common;

use dbinstance::{Backend, DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres, Role};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::SimpleAsyncConnection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POOL: u32 = 4;
const WRITERS: u64 = 6;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const POOL_TIMEOUT: Duration = Duration::from_secs(4);
/// Every call ends within the checkout bound plus its statements, which fail at
/// once on a reset connection; the margin is for a loaded machine.
const CALL_BOUND: Duration = Duration::from_secs(6);
/// Kill one server at a time: the tests of this file share them.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn testbed(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/testbed.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("testbed script runs");
    assert!(status.success(), "testbed.sh {args:?} failed");
}

fn config(url: String, app: &str) -> DatabaseConfig {
    DatabaseConfig::from_url(url)
        .pool_size(POOL)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_timeout(POOL_TIMEOUT)
        .application_name(app)
}

/// How one call ended.
enum Outcome {
    Committed,
    Failed,
    /// Cut by the caller: it may or may not have committed, so it is not counted.
    Cut,
}

impl From<Result<(), Error>> for Outcome {
    fn from(result: Result<(), Error>) -> Self {
        match result {
            Ok(()) => Outcome::Committed,
            Err(_) => Outcome::Failed,
        }
    }
}

/// One writer's record.
#[derive(Debug, Default)]
struct Writer {
    acked: Vec<u64>,
    errors: u64,
    longest: Duration,
    /// Its first success after the server accepted connections again.
    back_at: Option<Instant>,
}

/// What every writer shares.
struct Run {
    stop: AtomicBool,
    next_id: AtomicU64,
    restarted_at: Mutex<Option<Instant>>,
}

impl Run {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            restarted_at: Mutex::new(None),
        })
    }

    /// Writes until told to stop, one unique id per call.
    fn write_loop(&self, mut write: impl FnMut(u64) -> Outcome) -> Writer {
        let mut writer = Writer::default();
        while !self.stop.load(Ordering::Relaxed) {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = write(id);
            writer.longest = writer.longest.max(started.elapsed());
            match result {
                Outcome::Committed => {
                    writer.acked.push(id);
                    let restarted = *self.restarted_at.lock().unwrap();
                    if writer.back_at.is_none() && restarted.is_some_and(|at| started >= at) {
                        writer.back_at = Some(Instant::now());
                    }
                }
                Outcome::Cut => {}
                Outcome::Failed => {
                    writer.errors += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        writer
    }
}

fn insert_sql(table: &str, id: u64) -> String {
    format!("INSERT INTO {table} (id) VALUES ({id})")
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    /// Each writer inserts one row per call.
    Writes,
    /// The blocking writers read before each write; one async write in four is
    /// cut within 2 ms.
    Mixed,
}

/// `WRITERS` blocking threads and as many threads that drive async writes.
fn spawn_writers<B: Backend>(
    db: &DatabaseInstance<B>,
    run: &Arc<Run>,
    runtime: &tokio::runtime::Handle,
    table: &str,
    load: Load,
) -> Vec<std::thread::JoinHandle<Writer>>
where
    B::Connection: SimpleConnection,
    B::AsyncConnection: SimpleAsyncConnection,
{
    use rand::Rng;
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (db, run, table) = (db.clone(), run.clone(), table.to_owned());
        writers.push(std::thread::spawn(move || {
            run.write_loop(|id| {
                if load == Load::Mixed
                    && db
                        .read(|conn| conn.batch_execute("SELECT 1").map_err(Error::from))
                        .is_err()
                {
                    return Outcome::Failed;
                }
                db.write(|conn| {
                    conn.batch_execute(&insert_sql(&table, id))
                        .map_err(Error::from)
                })
                .into()
            })
        }));
    }
    for _ in 0..WRITERS {
        let (db, run, table) = (db.clone(), run.clone(), table.to_owned());
        let handle = runtime.clone();
        writers.push(std::thread::spawn(move || {
            run.write_loop(|id| {
                let sql = insert_sql(&table, id);
                let write = db
                    .async_write(async |conn| conn.batch_execute(&sql).await.map_err(Error::from));
                let cut_within = (load == Load::Mixed && rand::rng().random_ratio(1, 4))
                    .then(|| Duration::from_micros(rand::rng().random_range(0..2000)));
                handle.block_on(async {
                    match cut_within {
                        Some(within) => match tokio::time::timeout(within, write).await {
                            Ok(result) => result.into(),
                            Err(_) => Outcome::Cut,
                        },
                        None => write.await.into(),
                    }
                })
            })
        }));
    }
    writers
}

/// Runs blocking and async writers against `db`, kills the server after a second,
/// starts it again a second later, and checks what the file's header says.
/// `in_transaction` counts the instance's sessions idle in a transaction on the
/// server.
fn kill_and_restart<B: Backend>(
    db: DatabaseInstance<B>,
    victim: &str,
    table: &str,
    in_transaction: impl Fn() -> i64,
) where
    B::Connection: SimpleConnection,
    B::AsyncConnection: SimpleAsyncConnection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<B::Connection>,
{
    let run = Run::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writers = spawn_writers(&db, &run, runtime.handle(), table, Load::Writes);
    std::thread::sleep(Duration::from_secs(1));
    testbed(&["kill-victim", victim]);
    std::thread::sleep(Duration::from_secs(1));
    testbed(&["restart-victim", victim]);
    *run.restarted_at.lock().unwrap() = Some(Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    run.stop.store(true, Ordering::Relaxed);
    let writers: Vec<Writer> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let restarted = run.restarted_at.lock().unwrap().unwrap();

    let longest = writers.iter().map(|w| w.longest).max().unwrap();
    let errors: u64 = writers.iter().map(|w| w.errors).sum();
    let acked: Vec<u64> = writers.iter().flat_map(|w| w.acked.clone()).collect();
    let back: Vec<Duration> = writers
        .iter()
        .map(|w| w.back_at.map_or(Duration::MAX, |at| at - restarted))
        .collect();
    eprintln!(
        "{victim}: {} commits acknowledged, {errors} calls failed, longest call {longest:?}, \
         writers back after {:?}",
        acked.len(),
        back.iter().max().unwrap()
    );
    assert!(longest <= CALL_BOUND, "a call waited {longest:?}");
    assert!(
        back.iter().all(|b| *b <= Duration::from_secs(2)),
        "writers back after {back:?}"
    );
    assert!(
        common::eventually(Duration::from_secs(5), || {
            db.pool_stats()
                .iter()
                .filter(|s| s.pool.role == Role::Write)
                .all(|s| s.state.size == s.state.max)
        }),
        "pools not back to full size: {:?}",
        db.pool_stats()
    );
    // Every acknowledged id is in the table: deleting them finds each one.
    let mut found = 0;
    for chunk in acked.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let sql = format!("DELETE FROM {table} WHERE id IN ({})", ids.join(","));
        found += db
            .write(|conn| diesel::sql_query(&sql).execute(conn).map_err(Error::from))
            .unwrap();
    }
    assert_eq!(found, acked.len(), "acknowledged commits lost");
    assert_eq!(in_transaction(), 0, "sessions left idle in a transaction");
    db.close_all_connections();
}

fn pg_count(url: &str, expression: &str) -> i64 {
    let mut admin = PgConnection::establish(url).unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(expression))
        .get_result(&mut admin)
        .unwrap()
}

fn mysql_count(url: &str, expression: &str) -> i64 {
    let mut admin = MysqlConnection::establish(url).unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(expression))
        .get_result(&mut admin)
        .unwrap()
}

#[test]
fn postgres_killed_under_load_and_restarted() {
    let Some(url) = common::server_url("DBI_PG_VICTIM_URL") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let app = common::unique_table("restart_pg");
    let table = app.clone();
    let db = DatabaseInstance::<Postgres>::new(config(url.clone(), &app)).unwrap();
    db.write(|conn| {
        conn.batch_execute(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"))
            .map_err(Error::from)
    })
    .unwrap();
    let of_app = format!("FROM pg_stat_activity WHERE application_name = '{app}'");
    kill_and_restart(db, "pg", &table, || {
        pg_count(
            &url,
            &format!("count(*) {of_app} AND state LIKE 'idle in transaction%'"),
        )
    });

    assert!(
        common::eventually(Duration::from_secs(5), || {
            pg_count(&url, &format!("count(*) {of_app}")) == 0
        }),
        "connections left on the server"
    );
    let mut admin = PgConnection::establish(&url).unwrap();
    admin.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

#[test]
fn mariadb_killed_under_load_and_restarted() {
    let Some(url) = common::mysql_primary() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let table = common::unique_table("restart_my");
    let db = DatabaseInstance::<Mysql>::new(config(url.clone(), &table)).unwrap();
    db.write(|conn| {
        conn.batch_execute(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"))
            .map_err(Error::from)
    })
    .unwrap();
    // MariaDB has no application name: count the client sessions on `test`.
    let clients = "FROM information_schema.processlist \
                   WHERE db = 'test' AND id <> CONNECTION_ID() AND command <> 'Binlog Dump'";
    kill_and_restart(db, "mysql", &table, || {
        mysql_count(
            &url,
            "count(*) FROM information_schema.innodb_trx t \
             JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id \
             WHERE p.command = 'Sleep'",
        )
    });
    assert!(
        common::eventually(Duration::from_secs(5), || {
            mysql_count(&url, &format!("count(*) {clients}")) == 0
        }),
        "connections left on the server"
    );
    let mut admin = MysqlConnection::establish(&url).unwrap();
    admin.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

fn soak_secs() -> u64 {
    std::env::var("DBI_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// Mixed load for `soak_secs()`: blocking writes and reads, async writes of which
/// some are cut at random, while `kill_one` kills a connection on the server every
/// few hundred milliseconds.
fn soak<B: Backend>(
    db: DatabaseInstance<B>,
    table: &str,
    kill_one: impl Fn(),
    in_transaction: impl Fn() -> i64,
) where
    B::Connection: SimpleConnection,
    B::AsyncConnection: SimpleAsyncConnection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<B::Connection>,
{
    use rand::Rng;
    let run = Run::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let writers = spawn_writers(&db, &run, runtime.handle(), table, Load::Mixed);
    let deadline = Instant::now() + Duration::from_secs(soak_secs());
    let mut kills = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(100..400)));
        kill_one();
        kills += 1;
    }
    run.stop.store(true, Ordering::Relaxed);
    let writers: Vec<Writer> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let acked: Vec<u64> = writers.iter().flat_map(|w| w.acked.clone()).collect();
    let errors: u64 = writers.iter().map(|w| w.errors).sum();
    eprintln!(
        "soak: {} commits acknowledged, {errors} calls failed, {kills} connections killed",
        acked.len()
    );
    let mut found = 0;
    for chunk in acked.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(u64::to_string).collect();
        let sql = format!("DELETE FROM {table} WHERE id IN ({})", ids.join(","));
        found += db
            .write(|conn| diesel::sql_query(&sql).execute(conn).map_err(Error::from))
            .unwrap();
    }
    assert_eq!(found, acked.len(), "acknowledged commits lost");
    assert!(
        common::eventually(Duration::from_secs(5), || in_transaction() == 0),
        "sessions left idle in a transaction"
    );
    db.close_all_connections();
}

#[test]
#[ignore = "a soak run of a minute a backend: `just soak`"]
fn soak_postgres_with_connections_killed_at_random() {
    let Some(url) = common::server_url("DBI_PG_VICTIM_URL") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let app = common::unique_table("soak_pg");
    let table = app.clone();
    let db = DatabaseInstance::<Postgres>::new(config(url.clone(), &app)).unwrap();
    db.write(|conn| {
        conn.batch_execute(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"))
            .map_err(Error::from)
    })
    .unwrap();
    let of_app = format!("FROM pg_stat_activity WHERE application_name = '{app}'");
    soak(
        db,
        &table,
        || {
            pg_count(
                &url,
                &format!(
                    "count(pg_terminate_backend(pid)) FROM (SELECT pid {of_app} ORDER BY random() LIMIT 1) AS victim"
                ),
            );
        },
        || {
            pg_count(
                &url,
                &format!("count(*) {of_app} AND state LIKE 'idle in transaction%'"),
            )
        },
    );
    assert!(
        common::eventually(Duration::from_secs(5), || {
            pg_count(&url, &format!("count(*) {of_app}")) == 0
        }),
        "connections left on the server"
    );
    let mut admin = PgConnection::establish(&url).unwrap();
    admin.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

#[test]
#[ignore = "a soak run of a minute a backend: `just soak`"]
fn soak_mariadb_with_connections_killed_at_random() {
    let Some(url) = common::mysql_primary() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let table = common::unique_table("soak_my");
    let db = DatabaseInstance::<Mysql>::new(config(url.clone(), &table)).unwrap();
    db.write(|conn| {
        conn.batch_execute(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"))
            .map_err(Error::from)
    })
    .unwrap();
    let clients = "FROM information_schema.processlist \
                   WHERE db = 'test' AND id <> CONNECTION_ID() AND command <> 'Binlog Dump'";
    soak(
        db,
        &table,
        || {
            let victim = mysql_count(
                &url,
                &format!("COALESCE((SELECT id {clients} ORDER BY rand() LIMIT 1), 0)"),
            );
            if victim != 0 {
                let mut admin = MysqlConnection::establish(&url).unwrap();
                // The session may have ended by now: that is not an error here.
                let _ = admin.batch_execute(&format!("KILL {victim}"));
            }
        },
        || {
            mysql_count(
                &url,
                "count(*) FROM information_schema.innodb_trx t \
                 JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id \
                 WHERE p.command = 'Sleep'",
            )
        },
    );
    assert!(
        common::eventually(Duration::from_secs(5), || {
            mysql_count(&url, &format!("count(*) {clients}")) == 0
        }),
        "connections left on the server"
    );
    let mut admin = MysqlConnection::establish(&url).unwrap();
    admin.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}
