//! A server that is down or hung costs one bounded wait, then is skipped by its
//! circuit breaker until a background probe reaches it again; blocking and async
//! alike, replicas and the primary, on PostgreSQL and MariaDB.
//!
//! The servers are real; a relay in front of them plays the outage (closing every
//! connection, or accepting and never answering) so that no test stops a server
//! another test uses.

mod common;

use common::eventually;
use common::relay::{Mode, Relay};
use dbinstance::{
    Backend, DatabaseConfig, DatabaseInstance, Error, Mysql, PoolCounts, Postgres, Role,
};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The counters of the blocking and async pools of `role` behind the relay, summed.
fn counts_behind<B: Backend>(db: &DatabaseInstance<B>, relay: &Relay, role: Role) -> PoolCounts {
    let port = format!(":{}/", relay.port);
    db.pool_stats()
        .into_iter()
        .filter(|s| s.pool.role == role && s.pool.target.contains(&port))
        .fold(PoolCounts::default(), |mut sum, s| {
            sum.opened += s.counts.opened;
            sum.connect_failures += s.counts.connect_failures;
            sum
        })
}

/// No pool connects in the background, so every connect the counters show was a
/// checkout's.
fn config(primary: &str) -> DatabaseConfig {
    DatabaseConfig::from_url(primary)
        .min_idle(0)
        .connect_timeout(Duration::from_secs(1))
        .breaker_backoff(Duration::from_millis(200))
}

fn a_replica_that_is_down_is_skipped_then_found_again<B: Backend>(primary: &str, replica: &str) {
    let relay = Relay::to(replica, Mode::Close);
    let db = DatabaseInstance::<B>::builder(config(primary).read_url(relay.url(replica)))
        .build_lazy()
        .unwrap();
    let rt = runtime();

    // The first read tries the replica once, then the primary serves it.
    drop(db.get_db_cm_read().unwrap());
    assert_eq!(counts_behind(&db, &relay, Role::Read).connect_failures, 1);

    // From then on no read, blocking or async, tries the replica: its breaker
    // turns them away and only the background probe knocks.
    for _ in 0..50 {
        drop(db.get_db_cm_read().unwrap());
        drop(rt.block_on(db.async_get_db_cm_read()).unwrap());
    }
    let counts = counts_behind(&db, &relay, Role::Read);
    assert_eq!((counts.connect_failures, counts.opened), (1, 0));

    // Back up: a probe finds it and reads go to it again, blocking and async.
    relay.set(Mode::Forward);
    assert!(eventually(Duration::from_secs(5), || {
        drop(db.get_db_cm_read().unwrap());
        drop(rt.block_on(db.async_get_db_cm_read()).unwrap());
        counts_behind(&db, &relay, Role::Read).opened >= 2
    }));
}

#[test]
fn postgres_replica_that_is_down_is_skipped_then_found_again() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    a_replica_that_is_down_is_skipped_then_found_again::<Postgres>(&primary, &replica);
}

#[test]
fn mysql_replica_that_is_down_is_skipped_then_found_again() {
    let (Some(primary), Some(replica)) = (common::mysql_primary(), common::mysql_replica()) else {
        return;
    };
    a_replica_that_is_down_is_skipped_then_found_again::<Mysql>(&primary, &replica);
}

/// With the replica hung, the read that finds out waits about one connect
/// timeout; no later read waits on it, whichever family found out first.
fn a_hung_replica_costs_one_bounded_wait<B: Backend>(primary: &str, replica: &str) {
    let rt = runtime();
    for async_first in [false, true] {
        let relay = Relay::to(replica, Mode::Hang);
        let db = DatabaseInstance::<B>::builder(config(primary).read_url(relay.url(replica)))
            .build_lazy()
            .unwrap();
        let started = Instant::now();
        if async_first {
            drop(rt.block_on(db.async_get_db_cm_read()).unwrap());
        } else {
            drop(db.get_db_cm_read().unwrap());
        }
        let first = started.elapsed();
        assert!(first < Duration::from_secs(3), "first read took {first:?}");
        for _ in 0..20 {
            let started = Instant::now();
            drop(db.get_db_cm_read().unwrap());
            drop(rt.block_on(db.async_get_db_cm_read()).unwrap());
            let took = started.elapsed();
            assert!(
                took < Duration::from_millis(500),
                "a read waited {took:?} on the hung replica (async first: {async_first})"
            );
        }
        relay.set(Mode::Forward);
        assert!(
            eventually(Duration::from_secs(10), || {
                drop(db.get_db_cm_read().unwrap());
                counts_behind(&db, &relay, Role::Read).opened >= 1
            }),
            "the replica was not found again (async first: {async_first})"
        );
    }
}

#[test]
fn postgres_hung_replica_costs_one_bounded_wait() {
    let (Some(primary), Some(replica)) = (common::pg(), common::pg_replica()) else {
        return;
    };
    a_hung_replica_costs_one_bounded_wait::<Postgres>(&primary, &replica);
}

#[test]
fn mysql_hung_replica_costs_one_bounded_wait() {
    let (Some(primary), Some(replica)) = (common::mysql_primary(), common::mysql_replica()) else {
        return;
    };
    a_hung_replica_costs_one_bounded_wait::<Mysql>(&primary, &replica);
}

/// While the primary is down, writes fail at once with a typed `Unavailable`
/// that keeps the connect failure as its cause, instead of each waiting for a
/// connect of its own; when it is back, writes work again after one back-off.
fn writes_fail_fast_while_the_primary_is_down<B: Backend>(primary: &str) {
    let relay = Relay::to(primary, Mode::Close);
    let db = DatabaseInstance::<B>::builder(config(&relay.url(primary)))
        .build_lazy()
        .unwrap();
    let rt = runtime();
    let err = db.get_db_cm_write().unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    for _ in 0..20 {
        let err = db.get_db_cm_write().unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(err.is_unavailable());
        assert!(std::error::Error::source(&err).is_some());
        let err = rt.block_on(db.async_get_db_cm_write()).unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    }
    assert_eq!(counts_behind(&db, &relay, Role::Write).connect_failures, 1);

    relay.set(Mode::Forward);
    assert!(eventually(Duration::from_secs(5), || {
        db.get_db_cm_write().is_ok() && rt.block_on(db.async_get_db_cm_write()).is_ok()
    }));
}

#[test]
fn postgres_writes_fail_fast_while_the_primary_is_down() {
    let Some(primary) = common::pg() else {
        return;
    };
    writes_fail_fast_while_the_primary_is_down::<Postgres>(&primary);
}

#[test]
fn mysql_writes_fail_fast_while_the_primary_is_down() {
    let Some(primary) = common::mysql() else {
        return;
    };
    writes_fail_fast_while_the_primary_is_down::<Mysql>(&primary);
}
