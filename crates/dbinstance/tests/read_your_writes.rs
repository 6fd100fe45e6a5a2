//! Read-your-writes: a handle given a `ReadYourWrites` reads its own commits even
//! while its replica has stopped applying them (WAL replay paused on PostgreSQL,
//! the SQL thread stopped on MariaDB), by using a replica that has replayed them
//! or the primary; a plain handle in the same state reads stale data, which shows
//! the scenario bites. Blocking and async, on both servers.

mod common;

use dbinstance::{
    Backend, CommitPosition, DatabaseConfig, DatabaseInstance, Error, Mysql, Postgres,
    ReadYourWrites, Sqlite,
};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use std::sync::Mutex;
use std::time::Duration;

/// Tests that pause replication must not overlap with the others of this binary.
static REPLICATION: Mutex<()> = Mutex::new(());

/// Runs `sql` on the connection when dropped, so that a failing test still
/// resumes replication for the tests after it.
struct OnDrop<C: Connection>(C, &'static str);

impl<C: Connection> Drop for OnDrop<C> {
    fn drop(&mut self) {
        let _ = self.0.batch_execute(self.1);
    }
}

/// What the scenario needs of a backend: how to stop and restart replay on the
/// replica, and one query that says whether a row is visible and which server
/// answered.
trait Replicated: Backend {
    type Admin: Connection;
    const PAUSE: &'static str;
    const RESUME: &'static str;
    /// `COUNT(*) * 10 + 1 if on the replica`, as a SQL expression over `table`.
    const ON_REPLICA: &'static str;

    fn probe(conn: &mut Self::Connection, table: &str, id: i64) -> Seen;
    async fn async_probe(conn: &mut Self::AsyncConnection, table: &str, id: i64) -> Seen;
}

/// What a read saw.
#[derive(Debug, Clone, Copy)]
struct Seen {
    row: bool,
    on_replica: bool,
}

fn probe_sql(table: &str, id: i64, on_replica: &str) -> String {
    format!("(SELECT COUNT(*) FROM {table} WHERE id = {id}) * 10 + {on_replica}")
}

fn seen(n: i64) -> Seen {
    Seen {
        row: n >= 10,
        on_replica: n % 10 == 1,
    }
}

macro_rules! probes {
    () => {
        fn probe(conn: &mut Self::Connection, table: &str, id: i64) -> Seen {
            let query = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&probe_sql(
                table,
                id,
                Self::ON_REPLICA,
            )));
            seen(diesel::RunQueryDsl::get_result(query, conn).unwrap())
        }

        async fn async_probe(conn: &mut Self::AsyncConnection, table: &str, id: i64) -> Seen {
            let query = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&probe_sql(
                table,
                id,
                Self::ON_REPLICA,
            )));
            seen(
                diesel_async::RunQueryDsl::get_result(query, conn)
                    .await
                    .unwrap(),
            )
        }
    };
}

impl Replicated for Postgres {
    type Admin = diesel::PgConnection;
    const PAUSE: &'static str = "SELECT pg_wal_replay_pause()";
    const RESUME: &'static str = "SELECT pg_wal_replay_resume()";
    const ON_REPLICA: &'static str = "pg_is_in_recovery()::int::int8";
    probes!();
}

impl Replicated for Mysql {
    type Admin = diesel::MysqlConnection;
    const PAUSE: &'static str = "STOP SLAVE SQL_THREAD";
    const RESUME: &'static str = "START SLAVE SQL_THREAD";
    const ON_REPLICA: &'static str = "CAST(@@read_only AS SIGNED)";
    probes!();
}

fn servers<B: Replicated>() -> Option<(String, String)> {
    if B::KIND == dbinstance::BackendKind::Postgres {
        Some((common::pg()?, common::pg_replica()?))
    } else {
        Some((common::mysql_primary()?, common::mysql_replica()?))
    }
}

fn config(primary: &str, replica: &str) -> DatabaseConfig {
    // A short wait: the paused phase sends every read to the primary after it.
    DatabaseConfig::from_url(primary)
        .read_url(replica)
        .read_your_writes_wait(Duration::from_millis(20))
}

/// How many of the reads were stale, and how many the replica served.
#[derive(Debug, Default)]
struct Tally {
    stale: u32,
    on_replica: u32,
}

impl Tally {
    fn add(&mut self, seen: Seen) {
        self.stale += u32::from(!seen.row);
        self.on_replica += u32::from(seen.on_replica);
    }
}

const CYCLES: i64 = 1000;
/// The cycles during which the replica applies nothing.
const PAUSED: std::ops::Range<i64> = 400..600;

/// 1,000 write-then-read cycles through one tracked handle, with replay paused
/// for 200 of them; then the same write-then-read once through a plain handle
/// while paused, which must read stale.
fn cycles<B: Replicated>(blocking: bool) {
    let Some((primary, replica)) = servers::<B>() else {
        return;
    };
    let _serial = REPLICATION.lock().unwrap_or_else(|e| e.into_inner());
    let db = DatabaseInstance::<B>::new(config(&primary, &replica)).unwrap();
    let table = common::unique_table("ryw");
    let mut admin = B::Admin::establish(&primary).unwrap();
    admin
        .batch_execute(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"))
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tracker = ReadYourWrites::new();
    let tracked = db.with_read_your_writes(&tracker);
    let mut paused_replica: Option<OnDrop<B::Admin>> = None;
    let mut tally = Tally::default();
    let mut paused_tally = Tally::default();
    for id in 0..CYCLES {
        if id == PAUSED.start {
            let mut conn = B::Admin::establish(&replica).unwrap();
            conn.batch_execute(B::PAUSE).unwrap();
            paused_replica = Some(OnDrop(conn, B::RESUME));
        }
        if id == PAUSED.end {
            // The plain handle, while paused: its read after a write is stale
            // whenever the replica serves it.
            let stale_seen = (0..20).any(|n| {
                let id = CYCLES + n;
                let insert = format!("INSERT INTO {table} VALUES ({id})");
                db.write(|conn| conn.batch_execute(&insert).map_err(Error::from))
                    .unwrap();
                let seen = B::probe(&mut db.get_db_cm_read().unwrap(), &table, id);
                seen.on_replica && !seen.row
            });
            assert!(
                stale_seen,
                "a plain handle never read stale from the paused replica"
            );
            paused_replica = None;
        }
        let insert = format!("INSERT INTO {table} VALUES ({id})");
        let seen = if blocking {
            tracked
                .write(|conn| conn.batch_execute(&insert).map_err(Error::from))
                .unwrap();
            B::probe(&mut tracked.get_db_cm_read().unwrap(), &table, id)
        } else {
            runtime.block_on(async {
                let mut tx = tracked.async_get_db_cm_write().await.unwrap();
                diesel_async::SimpleAsyncConnection::batch_execute(&mut *tx, &insert)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                let mut read = tracked.async_get_db_cm_read().await.unwrap();
                B::async_probe(&mut read, &table, id).await
            })
        };
        if PAUSED.contains(&id) {
            paused_tally.add(seen);
        } else {
            tally.add(seen);
        }
    }
    drop(paused_replica);
    assert_eq!(
        tally.stale + paused_tally.stale,
        0,
        "{tally:?} {paused_tally:?}"
    );
    assert_eq!(paused_tally.on_replica, 0, "{paused_tally:?}");
    assert!(
        tally.on_replica > 0,
        "the replica never served a read after a write: {tally:?}"
    );
    assert!(tracker.position().is_some());
    eprintln!(
        "{:?} blocking={blocking}: {tally:?}, paused: {paused_tally:?}",
        B::KIND
    );
    admin.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

#[test]
fn postgres_blocking_reads_see_their_writes() {
    cycles::<Postgres>(true);
}

#[test]
fn postgres_async_reads_see_their_writes() {
    cycles::<Postgres>(false);
}

#[test]
fn mariadb_blocking_reads_see_their_writes() {
    cycles::<Mysql>(true);
}

#[test]
fn mariadb_async_reads_see_their_writes() {
    cycles::<Mysql>(false);
}

/// A table of its own on the primary, with the replica's replay paused after it
/// was created; replay resumes, then the table is dropped, when this is dropped.
struct PausedTable<B: Replicated> {
    name: String,
    admin: B::Admin,
    resume: Option<OnDrop<B::Admin>>,
}

impl<B: Replicated> PausedTable<B> {
    fn new(primary: &str, replica: &str, prefix: &str) -> Self {
        let name = common::unique_table(prefix);
        let mut admin = B::Admin::establish(primary).unwrap();
        admin
            .batch_execute(&format!("CREATE TABLE {name} (id BIGINT PRIMARY KEY)"))
            .unwrap();
        let mut conn = B::Admin::establish(replica).unwrap();
        conn.batch_execute(B::PAUSE).unwrap();
        Self {
            name,
            admin,
            resume: Some(OnDrop(conn, B::RESUME)),
        }
    }

    fn resume(&mut self) {
        self.resume = None;
    }
}

impl<B: Replicated> Drop for PausedTable<B> {
    fn drop(&mut self) {
        self.resume();
        let _ = self
            .admin
            .batch_execute(&format!("DROP TABLE {}", self.name));
    }
}

/// Without fallback, a read that no replica can serve in time fails with a typed
/// error after the wait, and a plain handle still reads.
fn no_fallback<B: Replicated>() {
    let Some((primary, replica)) = servers::<B>() else {
        return;
    };
    let _serial = REPLICATION.lock().unwrap_or_else(|e| e.into_inner());
    let wait = Duration::from_millis(200);
    let db = DatabaseInstance::<B>::new(
        config(&primary, &replica)
            .read_fallback(false)
            .read_your_writes_wait(wait),
    )
    .unwrap();
    let mut table = PausedTable::<B>::new(&primary, &replica, "ryw_strict");

    let tracker = ReadYourWrites::new();
    let tracked = db.with_read_your_writes(&tracker);
    let insert = format!("INSERT INTO {} VALUES (1)", table.name);
    tracked
        .write(|conn| conn.batch_execute(&insert).map_err(Error::from))
        .unwrap();
    let started = std::time::Instant::now();
    let err = tracked.get_db_cm_read().unwrap_err();
    assert!(matches!(err, Error::WriteNotReplayed { .. }), "{err:?}");
    assert!(err.is_unavailable());
    assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    drop(db.get_db_cm_read().unwrap());

    table.resume();
    // Caught up, the replica serves the tracked read again.
    assert!(common::eventually(Duration::from_secs(10), || tracked
        .get_db_cm_read()
        .is_ok_and(|mut read| B::probe(&mut read, &table.name, 1).row)));
}

#[test]
fn postgres_without_fallback_a_read_that_cannot_see_its_write_fails_typed() {
    no_fallback::<Postgres>();
}

#[test]
fn mariadb_without_fallback_a_read_that_cannot_see_its_write_fails_typed() {
    no_fallback::<Mysql>();
}

/// A position written by one handle and carried as text (as a web client carries
/// a header) makes another handle's reads see that write.
fn carried<B: Replicated>() {
    let Some((primary, replica)) = servers::<B>() else {
        return;
    };
    let _serial = REPLICATION.lock().unwrap_or_else(|e| e.into_inner());
    let db = DatabaseInstance::<B>::new(config(&primary, &replica)).unwrap();
    let table = PausedTable::<B>::new(&primary, &replica, "ryw_carried");

    let writer = ReadYourWrites::new();
    let insert = format!("INSERT INTO {} VALUES (7)", table.name);
    db.with_read_your_writes(&writer)
        .write(|conn| conn.batch_execute(&insert).map_err(Error::from))
        .unwrap();
    let text = writer
        .position()
        .expect("a position after a commit")
        .to_string();

    let position: CommitPosition = text.parse().unwrap();
    let reader = db.with_read_your_writes(&ReadYourWrites::after(position));
    let seen = B::probe(&mut reader.get_db_cm_read().unwrap(), &table.name, 7);
    assert!(seen.row && !seen.on_replica, "{seen:?}");
}

#[test]
fn postgres_a_position_carried_as_text_is_read_after() {
    carried::<Postgres>();
}

#[test]
fn mariadb_a_position_carried_as_text_is_read_after() {
    carried::<Mysql>();
}

#[test]
fn without_replicas_no_position_is_read() {
    let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:")).unwrap();
    let tracker = ReadYourWrites::new();
    let db = db.with_read_your_writes(&tracker);
    db.write(|conn| {
        conn.batch_execute("CREATE TABLE t (x INTEGER)")
            .map_err(Error::from)
    })
    .unwrap();
    db.read(|conn| conn.batch_execute("SELECT * FROM t").map_err(Error::from))
        .unwrap();
    assert_eq!(tracker.position(), None);
}
