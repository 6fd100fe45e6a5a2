//! Health against real servers: replicas stopped and started, a primary stopped,
//! hooks counted, counters under load, and what tracing records.

mod common;

use dbinstance::{
    DatabaseConfig, DatabaseInstance, HealthStatus, Mysql, PoolKind, Postgres, Role, Sqlite,
    Utilization,
};
use diesel::connection::SimpleConnection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::testbed;

/// Starts the server again even when the test fails halfway.
struct Restart(&'static [&'static str]);

impl Drop for Restart {
    fn drop(&mut self) {
        testbed(self.0);
    }
}

#[test]
fn a_stopped_replica_degrades_health_and_reads_fall_back() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    let config = DatabaseConfig::from_url(primary)
        .read_url(replica)
        .connect_timeout(Duration::from_secs(2));
    let db = DatabaseInstance::<Postgres>::new(config).unwrap();
    let report = db.health_report();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:#?}");
    let lag = report
        .pools
        .iter()
        .find(|p| !p.primary)
        .and_then(|p| p.replica_lag);
    assert!(lag.is_some_and(|l| l.bytes.is_some()), "{report:#?}");
    assert!(db.check_database_health());

    // The blocking pools are built at their first use (this health check), and r2d2
    // tops them up to `min_idle` in the background: let that settle before counting.
    std::thread::sleep(Duration::from_millis(500));
    let replica_sync_conns = db
        .pool_stats()
        .iter()
        .filter(|s| s.pool.role == Role::Read && s.pool.kind == PoolKind::Sync)
        .map(|s| s.state.size)
        .sum::<u32>();
    testbed(&["stop-replica", "pg"]);
    let restart = Restart(&["start-replica", "pg"]);
    let started = Instant::now();
    let report = db.health_report_with_timeout(Duration::from_secs(2));
    assert_eq!(report.status, HealthStatus::Degraded, "{report:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(!db.check_database_health());
    // Reads go on, through the primary's read-only pools. A blocking connection that
    // was pooled to the stopped replica fails its first query once, then is replaced.
    let mut failures = 0;
    for _ in 0..6 {
        let mut read = db.get_db_cm_read().unwrap();
        assert_eq!(read.role(), Role::Read);
        failures += usize::from(read.batch_execute("SELECT 1").is_err());
    }
    assert!(
        failures as u32 <= replica_sync_conns,
        "{failures} failed reads"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let report = db.async_health_report().await;
        assert_eq!(report.status, HealthStatus::Degraded, "{report:#?}");
        let mut read = db.async_get_db_cm_read().await.unwrap();
        diesel_async::SimpleAsyncConnection::batch_execute(&mut *read, "SELECT 1")
            .await
            .unwrap();
    });

    drop(restart);
    let healthy = common::eventually(Duration::from_secs(15), || {
        db.health_report_with_timeout(Duration::from_secs(1)).status == HealthStatus::Healthy
    });
    assert!(healthy, "{:#?}", db.health_report());
}

#[test]
fn a_stopped_primary_is_unhealthy_without_hanging() {
    let (Some(primary), Some(replica)) = (common::mysql_primary(), common::mysql_replica()) else {
        return;
    };
    let config = DatabaseConfig::from_url(primary)
        .read_url(replica)
        .connect_timeout(Duration::from_secs(2));
    let db = DatabaseInstance::<Mysql>::new(config).unwrap();
    let report = db.health_report();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:#?}");
    let replica_line = report.pools.iter().find(|p| !p.primary).unwrap();
    assert!(
        replica_line
            .replica_lag
            .is_some_and(|l| l.seconds.is_some()),
        "{report:#?}"
    );

    testbed(&["stop-primary", "mysql"]);
    testbed(&["stop-replica", "mysql"]);
    let _restart = Restart(&["start-replica", "mysql"]);
    // Idle pooled connections to the stopped servers must not make the check hang.
    let started = Instant::now();
    assert!(!db.check_database_health());
    let report = db.health_report_with_timeout(Duration::from_secs(2));
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:#?}");
    assert!(
        report
            .pools
            .iter()
            .all(|p| !p.reachable && p.error.is_some()),
        "{report:#?}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let report = db
            .async_health_report_with_timeout(Duration::from_secs(2))
            .await;
        assert_eq!(report.status, HealthStatus::Unhealthy, "{report:#?}");
    });
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hooks_run_once_per_connection_and_once_per_checkout() {
    let connects = Arc::new(AtomicUsize::new(0));
    let checkouts = Arc::new(AtomicUsize::new(0));
    let checkins = Arc::new(AtomicUsize::new(0));
    let (c1, c2, c3) = (connects.clone(), checkouts.clone(), checkins.clone());
    let db = DatabaseInstance::<Sqlite>::builder(
        DatabaseConfig::from_url(":memory:")
            .pool_size(3)
            .min_idle(1),
    )
    .after_connect(move |conn, info| {
        assert_eq!(info.pool.kind, PoolKind::Sync);
        c1.fetch_add(1, Ordering::SeqCst);
        Ok(conn.batch_execute("PRAGMA cache_size = -2000")?)
    })
    .before_checkout(move |_| {
        c2.fetch_add(1, Ordering::SeqCst);
        true
    })
    .after_checkin(move |_| {
        c3.fetch_add(1, Ordering::SeqCst);
    })
    .build_lazy()
    .unwrap();
    let held: Vec<_> = (0..3).map(|_| db.get_db_cm_read().unwrap()).collect();
    drop(held);
    for _ in 0..10 {
        drop(db.get_db_cm_read().unwrap());
    }
    let opened: u64 = db
        .pool_stats()
        .iter()
        .filter(|s| s.pool.kind == PoolKind::Sync)
        .map(|s| s.counts.opened)
        .sum();
    assert_eq!(connects.load(Ordering::SeqCst) as u64, opened);
    assert_eq!(checkouts.load(Ordering::SeqCst), 13);
    assert_eq!(checkins.load(Ordering::SeqCst), 13);

    // A hook that refuses drops the connection and fails the checkout that needed it.
    let refusing = DatabaseInstance::<Sqlite>::builder(
        DatabaseConfig::from_url(":memory:").connect_timeout(Duration::from_secs(1)),
    )
    .after_connect(|_, info| {
        if info.pool.role == Role::Read {
            Err(dbinstance::HookError("no readers today".into()))
        } else {
            Ok(())
        }
    })
    .build_lazy()
    .unwrap();
    let err = refusing.get_db_cm_read().unwrap_err();
    assert!(
        format!("{err} {:?}", std::error::Error::source(&err)).contains("no readers today"),
        "{err:?}"
    );
}

#[tokio::test]
async fn async_hooks_run_once_per_connection() {
    let connects = Arc::new(AtomicUsize::new(0));
    let c1 = connects.clone();
    let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(":memory:").pool_size(2))
        .async_after_connect(move |conn, _info| {
            c1.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                diesel_async::SimpleAsyncConnection::batch_execute(
                    conn,
                    "PRAGMA cache_size = -2000",
                )
                .await?;
                Ok(())
            })
        })
        .build_lazy()
        .unwrap();
    db.async_warmup().await.unwrap();
    for _ in 0..10 {
        drop(db.async_get_db_cm_read().await.unwrap());
        drop(db.async_get_db_cm_write().await.unwrap());
    }
    let opened: u64 = db
        .pool_stats()
        .iter()
        .filter(|s| s.pool.kind == PoolKind::Async)
        .map(|s| s.counts.opened)
        .sum();
    assert_eq!(connects.load(Ordering::SeqCst) as u64, opened);
    assert!(opened >= 2);
    // The read pool's connection at least; the last write session's drop may
    // still be rolling back on a task of its own. (The blocking pools were never
    // used, so they hold nothing to close.)
    assert!(db.clear_idle().await >= 1);
}

#[test]
fn counters_and_utilization_follow_a_small_load() {
    let Some(url) = common::pg() else { return };
    let db = DatabaseInstance::<Postgres>::new(
        DatabaseConfig::from_url(url)
            .pool_size(4)
            .pool_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    db.warmup().unwrap();
    let held: Vec<_> = (0..4).map(|_| db.get_db_cm_write().unwrap()).collect();
    let write = db.pool_stats().into_iter().next().unwrap();
    assert_eq!(
        (write.pool.role, write.pool.kind),
        (Role::Write, PoolKind::Sync)
    );
    assert_eq!(write.state.in_use, 4);
    assert_eq!(write.utilization, Utilization::Critical);
    assert!(db.get_db_cm_write().is_err());
    drop(held);
    let write = db.pool_stats().into_iter().next().unwrap();
    assert_eq!(write.counts.checkout_timeouts, 1);
    assert!(write.counts.opened >= 4);
    assert_eq!(write.state.in_use, 0);
    assert_eq!(write.utilization, Utilization::Ok);
    let json = serde_json::to_string(&db.health_report()).unwrap();
    assert!(json.contains("\"status\":\"healthy\""), "{json}");
}

/// The write line of `report`.
fn write_line(report: &dbinstance::HealthReport) -> &dbinstance::PoolHealth {
    report.pools.iter().find(|p| p.role == Role::Write).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_degrades_health_and_a_stuck_one_fails_it() {
    let file = common::TempDb::new("busy");
    let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(file.url()))
        .build_async()
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // SQLite has one writer: twelve sessions of 50 ms each queue 600 ms ahead of
    // any checkout, and one ends every 50 ms.
    let writers: Vec<_> = (0..12)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let session = db.async_get_db_cm_write().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    session.commit().await.unwrap();
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = db
        .async_health_report_with_timeout(Duration::from_millis(250))
        .await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let write = write_line(&report);
    assert!(write.busy && !write.reachable, "{write:?}");
    assert!(
        write.error.as_deref().unwrap().contains("busy"),
        "{write:?}"
    );
    assert_eq!(report.status, HealthStatus::Degraded);
    assert!(report.is_available());

    // One session that holds the writer and never ends: nothing moves.
    let held = db.async_get_db_cm_write().await.unwrap();
    let report = db
        .async_health_report_with_timeout(Duration::from_millis(250))
        .await;
    held.commit().await.unwrap();
    let write = write_line(&report);
    assert!(!write.busy && !write.reachable, "{write:?}");
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(db.async_health_report().await.status, HealthStatus::Healthy);
}

/// On PostgreSQL: blocking checkouts take turns on a network server (on SQLite a
/// newcomer may take the writer first, and the ping would not wait).
#[test]
fn a_busy_blocking_pool_degrades_health_and_a_stuck_one_fails_it() {
    let Some(url) = common::pg() else { return };
    let db = DatabaseInstance::<Postgres>::new(DatabaseConfig::from_url(url).pool_size(1)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..12)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let session = db.get_db_cm_write().unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                    session.commit().unwrap();
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let report = db.health_report_with_timeout(Duration::from_millis(250));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let write = write_line(&report);
    assert!(write.busy && !write.reachable, "{write:?}");
    assert_eq!(report.status, HealthStatus::Degraded);

    let held = db.get_db_cm_write().unwrap();
    let report = db.health_report_with_timeout(Duration::from_millis(250));
    held.commit().unwrap();
    let write = write_line(&report);
    assert!(!write.busy && !write.reachable, "{write:?}");
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert!(db.check_database_health());
}
