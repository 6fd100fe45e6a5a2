//! `write_with_retry` and `async_write_with_retry` against real conflicts:
//! serialization failures on PostgreSQL (from statements and from `COMMIT`),
//! deadlocks on MariaDB. Every unit of work commits exactly once: the counters end
//! at the number of units, and each unit's row is in a table keyed by the unit.
//! Errors that are not conflicts come back after one run, the attempt and time
//! bounds stop a closure that always conflicts, and a `COMMIT` cut off by a lost
//! connection is run again only for idempotent work.

mod common;

use dbinstance::testing::{MysqlDatabase, PgSchema};
use dbinstance::{DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres, RetryPolicy, Sqlite};
use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Integer};
use diesel::{QueryableByName, RunQueryDsl};
use diesel_async::SimpleAsyncConnection;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = Integer)]
    n: i32,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const THREADS: i32 = 6;
const UNITS_PER_THREAD: i32 = 8;
const UNITS: i32 = THREADS * UNITS_PER_THREAD;

/// Generous bounds: under this much contention a unit may lose many rounds.
fn patient() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(500)
        .max_elapsed(Duration::from_secs(60))
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(40))
}

fn tables_sql() -> &'static str {
    "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
     INSERT INTO counter VALUES (1, 0), (2, 0);
     CREATE TABLE units (unit INTEGER PRIMARY KEY)"
}

fn setup<B: dbinstance::Backend>(db: &DatabaseInstance<B>) {
    db.write(|conn| conn.batch_execute(tables_sql()).map_err(Error::from))
        .expect("tables");
}

/// The counters and the number of units logged, read on the primary.
macro_rules! totals {
    ($backend:ty) => {
        |db: &DatabaseInstance<$backend>| -> (i32, i32, i64) {
            db.write(|conn| {
                let first = diesel::sql_query("SELECT n FROM counter WHERE id = 1")
                    .get_result::<N>(conn)?;
                let second = diesel::sql_query("SELECT n FROM counter WHERE id = 2")
                    .get_result::<N>(conn)?;
                let units = diesel::sql_query("SELECT COUNT(DISTINCT unit) AS n FROM units")
                    .get_result::<Count>(conn)?;
                Ok::<_, Error>((first.n, second.n, units.n))
            })
            .expect("totals")
        }
    };
}

fn pg_schema() -> Option<PgSchema> {
    Some(PgSchema::create(&common::pg()?).expect("schema"))
}

fn mysql_database() -> Option<MysqlDatabase> {
    Some(MysqlDatabase::create(&common::mysql()?).expect("database"))
}

fn pool_size(config: DatabaseConfig) -> DatabaseConfig {
    config.pool_size(THREADS as u32 + 2)
}

// ---------------------------------------------------------------- PostgreSQL

/// Reads the counter, writes it back plus one, logs the unit: under SERIALIZABLE,
/// two of these at once cannot both commit.
fn pg_increment(conn: &mut diesel::PgConnection, unit: i32) -> Result<(), Error> {
    conn.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")?;
    let n = diesel::sql_query("SELECT n FROM counter WHERE id = 1").get_result::<N>(conn)?;
    conn.batch_execute(&format!(
        "UPDATE counter SET n = {} WHERE id = 1; INSERT INTO units VALUES ({unit})",
        n.n + 1
    ))?;
    Ok(())
}

#[test]
fn pg_serialization_failures_are_retried_until_each_unit_commits_once() {
    let Some(schema) = pg_schema() else { return };
    let db = DatabaseInstance::<Postgres>::new(pool_size(schema.config())).expect("instance");
    setup(&db);
    let runs = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (db, runs) = (db.clone(), runs.clone());
            std::thread::spawn(move || {
                for unit in thread * UNITS_PER_THREAD..(thread + 1) * UNITS_PER_THREAD {
                    db.write_with_retry(patient(), |conn| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        pg_increment(conn, unit)
                    })
                    .unwrap_or_else(|e| panic!("unit {unit}: {e:?}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(totals!(Postgres)(&db), (UNITS, 0, i64::from(UNITS)));
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("PostgreSQL, blocking: {UNITS} units in {runs} runs");
    assert!(runs > UNITS as u32, "no conflict was provoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_async_serialization_failures_are_retried_until_each_unit_commits_once() {
    let Some(schema) = pg_schema() else { return };
    let db = DatabaseInstance::<Postgres>::builder(pool_size(schema.config()))
        .build_async()
        .await
        .expect("instance");
    db.async_write(async |conn| conn.batch_execute(tables_sql()).await.map_err(Error::from))
        .await
        .expect("tables");
    let runs = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..THREADS)
        .map(|task| {
            let (db, runs) = (db.clone(), runs.clone());
            tokio::spawn(async move {
                for unit in task * UNITS_PER_THREAD..(task + 1) * UNITS_PER_THREAD {
                    let runs = &runs;
                    db.async_write_with_retry(patient(), async |conn| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                            .await?;
                        let n = diesel_async::RunQueryDsl::get_result::<N>(
                            diesel::sql_query("SELECT n FROM counter WHERE id = 1"),
                            conn,
                        )
                        .await?;
                        conn.batch_execute(&format!(
                            "UPDATE counter SET n = {} WHERE id = 1; INSERT INTO units VALUES ({unit})",
                            n.n + 1
                        ))
                        .await?;
                        Ok::<_, Error>(())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("unit {unit}: {e:?}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let db2 = db.clone();
    let totals = tokio::task::spawn_blocking(move || totals!(Postgres)(&db2))
        .await
        .unwrap();
    assert_eq!(totals, (UNITS, 0, i64::from(UNITS)));
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("PostgreSQL, async: {UNITS} units in {runs} runs");
    assert!(runs > UNITS as u32, "no conflict was provoked");
}

/// Write skew under SERIALIZABLE: the other transaction reads `a` and writes `b`,
/// the retried one reads `b` and writes `a`; the other commits first, so the
/// retried one's COMMIT fails with 40001 ("during commit attempt").
#[test]
fn pg_a_serialization_failure_at_commit_is_retried_and_keeps_the_connection() {
    let Some(schema) = pg_schema() else { return };
    let db = DatabaseInstance::<Postgres>::new(schema.config().pool_size(2)).expect("instance");
    db.write(|conn| {
        conn.batch_execute("CREATE TABLE a (x INTEGER); CREATE TABLE b (x INTEGER)")
            .map_err(Error::from)
    })
    .unwrap();
    let mut other = Some(db.get_db_cm_write().unwrap());
    other
        .as_mut()
        .unwrap()
        .batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT COUNT(*) FROM a")
        .unwrap();
    let runs = AtomicU32::new(0);
    let returned_ok = AtomicU32::new(0);
    db.write_with_retry(patient(), |conn| {
        runs.fetch_add(1, Ordering::Relaxed);
        conn.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT COUNT(*) FROM b")?;
        match other.take() {
            Some(mut other) => {
                other.batch_execute("INSERT INTO b VALUES (1)").unwrap();
                conn.batch_execute("INSERT INTO a VALUES (1)")?;
                other.commit().unwrap();
            }
            None => conn.batch_execute("INSERT INTO a VALUES (1)")?,
        }
        returned_ok.fetch_add(1, Ordering::Relaxed);
        Ok::<_, Error>(())
    })
    .unwrap();
    // Both runs returned Ok: the first one failed at its COMMIT.
    assert_eq!(runs.load(Ordering::Relaxed), 2);
    assert_eq!(returned_ok.load(Ordering::Relaxed), 2);
    // The failed COMMIT left a healthy connection, which went back to the pool.
    let stats = db.pool_stats();
    let write = stats
        .iter()
        .find(|s| {
            s.pool.role == dbinstance::Role::Write && s.pool.kind == dbinstance::PoolKind::Sync
        })
        .unwrap();
    assert_eq!(write.counts.broken_discarded, 0, "{:?}", write.counts);
}

#[test]
fn pg_an_error_that_is_no_conflict_returns_after_one_run() {
    let Some(schema) = pg_schema() else { return };
    let db = DatabaseInstance::<Postgres>::new(schema.config()).expect("instance");
    setup(&db);
    let runs = AtomicU32::new(0);
    let result = db.write_with_retry(patient(), |conn| {
        runs.fetch_add(1, Ordering::Relaxed);
        conn.batch_execute("INSERT INTO units VALUES (1); INSERT INTO units VALUES (1)")?;
        Ok::<_, Error>(())
    });
    assert!(
        matches!(
            result,
            Err(Error::Query {
                source: DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
            })
        ),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_async_an_error_that_is_no_conflict_returns_after_one_run() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.expect("instance");
    let runs = AtomicU32::new(0);
    let result = db
        .async_write_with_retry(patient(), async |conn| {
            runs.fetch_add(1, Ordering::Relaxed);
            conn.batch_execute(
                "CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (1)",
            )
            .await?;
            Ok::<_, Error>(())
        })
        .await;
    assert!(
        matches!(
            result,
            Err(Error::Query {
                source: DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
            })
        ),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::Relaxed), 1);
}

/// A deferred trigger that sleeps holds `COMMIT` open; another connection then
/// terminates the committing backend, so the client loses its connection during
/// COMMIT and cannot know whether it committed.
const SLOW_COMMIT: &str = "
    CREATE TABLE slow (x INTEGER);
    CREATE TABLE done (x INTEGER);
    CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()";

/// Terminates the backend `pid` names (once it is set) while it runs COMMIT.
fn terminate_during_commit(url: String, pid: Arc<AtomicI32>) -> std::thread::JoinHandle<bool> {
    use diesel::Connection;
    std::thread::spawn(move || {
        let mut conn = diesel::PgConnection::establish(&url).expect("connect");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let target = pid.load(Ordering::Relaxed);
            if target != 0 {
                let killed = diesel::sql_query(format!(
                    "SELECT COUNT(pg_terminate_backend(pid))::INTEGER AS n FROM pg_stat_activity
                     WHERE pid = {target} AND state = 'active' AND query = 'COMMIT'"
                ))
                .get_result::<N>(&mut conn)
                .expect("terminate");
                if killed.n == 1 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    })
}

fn pg_cut_commit(idempotent: bool) -> Option<(Result<(), Error>, u32, i64)> {
    let schema = pg_schema()?;
    let db = DatabaseInstance::<Postgres>::new(schema.config()).expect("instance");
    db.write(|conn| conn.batch_execute(SLOW_COMMIT).map_err(Error::from))
        .unwrap();
    let pid = Arc::new(AtomicI32::new(0));
    let killer = terminate_during_commit(common::pg()?, pid.clone());
    let runs = AtomicU32::new(0);
    let result = db.write_with_retry(patient().idempotent(idempotent), |conn| {
        if runs.fetch_add(1, Ordering::Relaxed) == 0 {
            let backend =
                diesel::sql_query("SELECT pg_backend_pid() AS n").get_result::<N>(conn)?;
            conn.batch_execute("INSERT INTO slow VALUES (1)")?;
            pid.store(backend.n, Ordering::Relaxed);
        } else {
            conn.batch_execute("INSERT INTO done VALUES (1)")?;
        }
        Ok::<_, Error>(())
    });
    assert!(killer.join().unwrap(), "the COMMIT was not cut off");
    let kept = db
        .write(|conn| {
            diesel::sql_query(
                "SELECT (SELECT COUNT(*) FROM slow) + (SELECT COUNT(*) FROM done) AS n",
            )
            .get_result::<Count>(conn)
            .map_err(Error::from)
        })
        .unwrap();
    Some((result, runs.load(Ordering::Relaxed), kept.n))
}

#[test]
fn pg_a_commit_cut_off_is_not_run_again_unless_idempotent() {
    let Some((result, runs, kept)) = pg_cut_commit(false) else {
        return;
    };
    assert!(
        matches!(result, Err(Error::CommitOutcomeUnknown { .. })),
        "{result:?}"
    );
    assert_eq!(runs, 1);
    // The server had not committed; the client could not know.
    assert_eq!(kept, 0);
}

#[test]
fn pg_a_commit_cut_off_is_run_again_when_idempotent() {
    let Some((result, runs, kept)) = pg_cut_commit(true) else {
        return;
    };
    result.unwrap();
    assert_eq!(runs, 2);
    assert_eq!(kept, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_async_a_commit_cut_off_is_not_run_again_unless_idempotent() {
    let Some(schema) = pg_schema() else { return };
    let db = schema.instance().await.expect("instance");
    db.async_write(async |conn| conn.batch_execute(SLOW_COMMIT).await.map_err(Error::from))
        .await
        .unwrap();
    let pid = Arc::new(AtomicI32::new(0));
    let killer = terminate_during_commit(common::pg().unwrap(), pid.clone());
    let runs = AtomicU32::new(0);
    let result = db
        .async_write_with_retry(patient(), async |conn| {
            runs.fetch_add(1, Ordering::Relaxed);
            let backend = diesel_async::RunQueryDsl::get_result::<N>(
                diesel::sql_query("SELECT pg_backend_pid() AS n"),
                conn,
            )
            .await?;
            conn.batch_execute("INSERT INTO slow VALUES (1)").await?;
            pid.store(backend.n, Ordering::Relaxed);
            Ok::<_, Error>(())
        })
        .await;
    let killed = tokio::task::spawn_blocking(move || killer.join().unwrap())
        .await
        .unwrap();
    assert!(killed, "the COMMIT was not cut off");
    assert!(
        matches!(result, Err(Error::CommitOutcomeUnknown { .. })),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::Relaxed), 1);
}

// ---------------------------------------------------------------- MariaDB

/// Adds one to both counters, in an order that depends on the unit: two units of
/// opposite parity at once each hold one row and wait for the other's.
fn lock_order(unit: i32) -> [i32; 2] {
    if unit % 2 == 0 {
        [1, 2]
    } else {
        [2, 1]
    }
}

#[test]
fn mysql_deadlocks_are_retried_until_each_unit_commits_once() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = DatabaseInstance::<Mysql>::new(pool_size(database.config())).expect("instance");
    setup(&db);
    let runs = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (db, runs) = (db.clone(), runs.clone());
            std::thread::spawn(move || {
                for unit in thread * UNITS_PER_THREAD..(thread + 1) * UNITS_PER_THREAD {
                    let [first, second] = lock_order(unit);
                    db.write_with_retry(patient(), |conn| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        conn.batch_execute(&format!(
                            "UPDATE counter SET n = n + 1 WHERE id = {first}"
                        ))?;
                        // Long enough for a unit of the other order to take its first row.
                        std::thread::sleep(Duration::from_millis(5));
                        conn.batch_execute(&format!(
                            "UPDATE counter SET n = n + 1 WHERE id = {second}; INSERT INTO units VALUES ({unit})"
                        ))?;
                        Ok::<_, Error>(())
                    })
                    .unwrap_or_else(|e| panic!("unit {unit}: {e:?}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(totals!(Mysql)(&db), (UNITS, UNITS, i64::from(UNITS)));
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("MariaDB, blocking: {UNITS} units in {runs} runs");
    assert!(runs > UNITS as u32, "no deadlock was provoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_async_deadlocks_are_retried_until_each_unit_commits_once() {
    let Some(database) = mysql_database() else {
        return;
    };
    let db = DatabaseInstance::<Mysql>::builder(pool_size(database.config()))
        .build_async()
        .await
        .expect("instance");
    db.async_write(async |conn| conn.batch_execute(tables_sql()).await.map_err(Error::from))
        .await
        .expect("tables");
    let runs = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..THREADS)
        .map(|task| {
            let (db, runs) = (db.clone(), runs.clone());
            tokio::spawn(async move {
                for unit in task * UNITS_PER_THREAD..(task + 1) * UNITS_PER_THREAD {
                    let [first, second] = lock_order(unit);
                    let runs = &runs;
                    db.async_write_with_retry(patient(), async |conn| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        conn.batch_execute(&format!(
                            "UPDATE counter SET n = n + 1 WHERE id = {first}"
                        ))
                        .await?;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        conn.batch_execute(&format!(
                            "UPDATE counter SET n = n + 1 WHERE id = {second}; INSERT INTO units VALUES ({unit})"
                        ))
                        .await?;
                        Ok::<_, Error>(())
                    })
                    .await
                    .unwrap_or_else(|e| panic!("unit {unit}: {e:?}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let db2 = db.clone();
    let totals = tokio::task::spawn_blocking(move || totals!(Mysql)(&db2))
        .await
        .unwrap();
    assert_eq!(totals, (UNITS, UNITS, i64::from(UNITS)));
    let runs = runs.load(Ordering::Relaxed);
    eprintln!("MariaDB, async: {UNITS} units in {runs} runs");
    assert!(runs > UNITS as u32, "no deadlock was provoked");
}

// ---------------------------------------------------------------- SQLite

/// The blocking write connection holds the write lock; the async one reads, then
/// writes: SQLite answers SQLITE_BUSY at once (waiting could deadlock, so the busy
/// timeout does not apply), and the retry gets through once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_locked_database_is_retried() {
    let file = common::TempDb::new("retry_busy");
    let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(file.url()))
        .build_async()
        .await
        .expect("instance");
    db.async_write(async |conn| {
        conn.batch_execute("CREATE TABLE t (x INTEGER)")
            .await
            .map_err(Error::from)
    })
    .await
    .unwrap();
    let (locked, is_locked) = tokio::sync::oneshot::channel();
    let db2 = db.clone();
    let holder = tokio::task::spawn_blocking(move || {
        let mut session = db2.get_db_cm_write().unwrap();
        session.batch_execute("INSERT INTO t VALUES (1)").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        session.commit().unwrap();
    });
    is_locked.await.unwrap();
    let runs = AtomicU32::new(0);
    let policy = RetryPolicy::new()
        .max_attempts(100)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20));
    db.async_write_with_retry(policy, async |conn| {
        runs.fetch_add(1, Ordering::Relaxed);
        diesel_async::RunQueryDsl::get_result::<Count>(
            diesel::sql_query("SELECT COUNT(*) AS n FROM t"),
            conn,
        )
        .await?;
        conn.batch_execute("INSERT INTO t VALUES (2)").await?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    holder.await.unwrap();
    assert!(
        runs.load(Ordering::Relaxed) > 1,
        "the database was not locked"
    );
    let n = db
        .async_write(async |conn| {
            diesel_async::RunQueryDsl::get_result::<Count>(
                diesel::sql_query("SELECT COUNT(*) AS n FROM t"),
                conn,
            )
            .await
            .map_err(Error::from)
        })
        .await
        .unwrap();
    assert_eq!(n.n, 2);
}

// ---------------------------------------------------------------- the bounds

fn serialization_failure() -> Error {
    Error::from(DieselError::DatabaseError(
        DatabaseErrorKind::SerializationFailure,
        Box::new("could not serialize access".to_owned()),
    ))
}

fn sqlite() -> DatabaseInstance<Sqlite> {
    DatabaseInstance::new(DatabaseConfig::from_url(":memory:")).expect("instance")
}

#[test]
fn the_attempt_bound_stops_a_closure_that_always_conflicts() {
    let db = sqlite();
    let runs = AtomicU32::new(0);
    let policy = RetryPolicy::new()
        .max_attempts(4)
        .base_delay(Duration::from_millis(1));
    let result: Result<(), Error> = db.write_with_retry(policy, |_| {
        runs.fetch_add(1, Ordering::Relaxed);
        Err(serialization_failure())
    });
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Query { source } if dbinstance::is_transaction_conflict(source)),
        "{error:?}"
    );
    assert_eq!(runs.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn the_async_attempt_bound_stops_a_closure_that_always_conflicts() {
    let db = dbinstance::testing::sqlite_memory()
        .await
        .expect("instance");
    let runs = AtomicU32::new(0);
    let policy = RetryPolicy::new()
        .max_attempts(3)
        .base_delay(Duration::from_millis(1));
    let result: Result<(), Error> = db
        .async_write_with_retry(policy, async |_| {
            runs.fetch_add(1, Ordering::Relaxed);
            Err(serialization_failure())
        })
        .await;
    assert!(result.is_err());
    assert_eq!(runs.load(Ordering::Relaxed), 3);
}

#[test]
fn the_time_bound_stops_a_closure_that_always_conflicts() {
    let db = sqlite();
    let runs = AtomicU32::new(0);
    let policy = RetryPolicy::new()
        .max_attempts(10_000)
        .max_elapsed(Duration::from_millis(300))
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(20));
    let started = Instant::now();
    let result: Result<(), Error> = db.write_with_retry(policy, |_| {
        runs.fetch_add(1, Ordering::Relaxed);
        Err(serialization_failure())
    });
    assert!(result.is_err());
    let runs = runs.load(Ordering::Relaxed);
    // 5 to 20 ms between runs within 300 ms: more than one run, far from the
    // attempt bound (loose, for a loaded machine).
    assert!((2..=70).contains(&runs), "{runs} runs");
    assert!(started.elapsed() < Duration::from_secs(2));
}
