//! Lag-aware routing: with `max_replica_lag` set, a replica made to lag on purpose
//! (WAL replay paused on PostgreSQL, the SQL thread stopped on MariaDB) is
//! skipped within a few monitor intervals, health reads degraded, reads go to the
//! primary (or fail with `ReplicaLag` without fallback), and the replica serves
//! again once it has caught up.

mod common;

use common::eventually;
use dbinstance::{Backend, DatabaseConfig, DatabaseInstance, Error, HealthStatus, Mysql, Postgres};
use diesel::sql_types::{BigInt, Bool};
use diesel::{Connection, RunQueryDsl};
use std::time::Duration;

fn config(primary: &str, replica: &str) -> DatabaseConfig {
    DatabaseConfig::from_url(primary)
        .read_url(replica)
        .max_replica_lag(Duration::from_secs(1))
        .replica_lag_interval(Duration::from_millis(100))
}

/// Runs `sql` on `url` when dropped, so that a failing test still resumes
/// replication for the tests after it.
struct OnDrop<C: Connection>(C, &'static str);

impl<C: Connection> Drop for OnDrop<C> {
    fn drop(&mut self) {
        let _ = self.0.batch_execute(self.1);
    }
}

/// What the scenario needs to know of a backend.
trait Lagging: Backend {
    /// Whether a read session of `db` is served by the replica.
    fn read_is_on_replica(db: &DatabaseInstance<Self>) -> bool;
    const PAUSE: &'static str;
    const RESUME: &'static str;
}

impl Lagging for Postgres {
    fn read_is_on_replica(db: &DatabaseInstance<Self>) -> bool {
        let mut read = db.get_db_cm_read().unwrap();
        diesel::select(diesel::dsl::sql::<Bool>("pg_is_in_recovery()"))
            .get_result(&mut *read)
            .unwrap()
    }
    const PAUSE: &'static str = "SELECT pg_wal_replay_pause()";
    const RESUME: &'static str = "SELECT pg_wal_replay_resume()";
}

impl Lagging for Mysql {
    fn read_is_on_replica(db: &DatabaseInstance<Self>) -> bool {
        let mut read = db.get_db_cm_read().unwrap();
        let read_only: i64 =
            diesel::select(diesel::dsl::sql::<BigInt>("CAST(@@read_only AS SIGNED)"))
                .get_result(&mut *read)
                .unwrap();
        read_only == 1
    }
    const PAUSE: &'static str = "STOP SLAVE SQL_THREAD";
    const RESUME: &'static str = "START SLAVE SQL_THREAD";
}

fn a_lagging_replica_is_skipped_until_it_catches_up<B, C>(primary: &str, replica: &str)
where
    B: Lagging,
    C: Connection,
{
    let db = DatabaseInstance::<B>::builder(config(primary, replica))
        .build()
        .unwrap();
    let strict = DatabaseInstance::<B>::builder(config(primary, replica).read_fallback(false))
        .build()
        .unwrap();
    assert!(eventually(
        Duration::from_secs(5),
        || B::read_is_on_replica(&db)
    ));

    let mut writer = C::establish(primary).unwrap();
    let table = common::unique_table("lag");
    writer
        .batch_execute(&format!("CREATE TABLE {table} (id INTEGER)"))
        .unwrap();
    let mut replica_admin = C::establish(replica).unwrap();
    replica_admin.batch_execute(B::PAUSE).unwrap();
    let mut resume = OnDrop(replica_admin, B::RESUME);

    // Writes the replica does not apply: it falls behind and is skipped.
    assert!(
        eventually(Duration::from_secs(10), || {
            writer
                .batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
                .unwrap();
            !B::read_is_on_replica(&db)
        }),
        "the paused replica still serves reads"
    );
    let report = db.health_report();
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.pools.iter().any(|p| p.behind), "{report:?}");
    assert!(eventually(Duration::from_secs(5), || matches!(
        strict.get_db_cm_read(),
        Err(Error::ReplicaLag { .. })
    )));
    let err = strict.get_db_cm_read().unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    // Resumed, it catches up and serves again.
    resume.0.batch_execute(B::RESUME).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || B::read_is_on_replica(&db)),
        "the replica did not come back after catching up"
    );
    assert!(eventually(Duration::from_secs(5), || strict
        .get_db_cm_read()
        .is_ok()));
    assert_eq!(db.health_report().status, HealthStatus::Healthy);
    writer
        .batch_execute(&format!("DROP TABLE {table}"))
        .unwrap();
}

#[test]
fn a_postgres_replica_with_replay_paused_is_skipped_until_it_catches_up() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    a_lagging_replica_is_skipped_until_it_catches_up::<Postgres, diesel::PgConnection>(
        &primary, &replica,
    );
}

#[test]
fn a_mariadb_replica_with_its_sql_thread_stopped_is_skipped_until_it_catches_up() {
    let (Some(primary), Some(replica)) = (common::mysql_primary(), common::mysql_replica()) else {
        return;
    };
    a_lagging_replica_is_skipped_until_it_catches_up::<Mysql, diesel::MysqlConnection>(
        &primary, &replica,
    );
}

#[test]
fn without_max_replica_lag_no_monitor_runs_and_no_connection_is_opened_for_it() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    let db = DatabaseInstance::<Postgres>::builder(
        DatabaseConfig::from_url(&primary)
            .read_url(&replica)
            .min_idle(0),
    )
    .build_lazy()
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let opened: u64 = db.pool_stats().iter().map(|s| s.counts.opened).sum();
    assert_eq!(opened, 0);
}
