//! A server that is down or hung costs one bounded wait, then is skipped by its
//! circuit breaker until a background probe reaches it again; blocking and async
//! alike, replicas and the primary, on PostgreSQL and MariaDB.
//!
//! The servers are real; a relay in front of them plays the outage (closing every
//! connection, accepting and never answering, or falling silent on the open ones)
//! so that no test stops a server another test uses.

mod common;

use common::eventually;
use common::relay::{Mode, Relay};
use dbinstance::{
    Backend, DatabaseConfig, DatabaseInstance, Error, HealthStatus, Mysql, PoolCounts, Postgres,
    Role,
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

/// A server that falls silent on the connections it holds open, as one stopped
/// with SIGSTOP does (new connections hang too): the checkout that pings an idle
/// connection, blocking or async, and the blocking health check each give up at
/// their bound with an error, instead of waiting for the operating system's TCP
/// timeout; once the server answers again, so do they.
fn a_silent_server_holds_no_call_past_its_bound<B: Backend>(primary: &str) {
    const BOUND: Duration = Duration::from_secs(1);
    // Above the bound, well below any TCP timeout.
    const LATE: Duration = Duration::from_secs(4);
    let rt = runtime();
    let relay = Relay::to(primary, Mode::Forward);
    let pinging = DatabaseInstance::<B>::builder(
        config(&relay.url(primary)).pre_ping_after(Duration::from_millis(100)),
    )
    .build_lazy()
    .unwrap();
    // Never pings at checkout: the health check's own statement meets the silence.
    let not_pinging = DatabaseInstance::<B>::builder(
        config(&relay.url(primary))
            .pool_pre_ping(false)
            .health_timeout(BOUND),
    )
    .build_lazy()
    .unwrap();
    drop(pinging.get_db_cm_write().unwrap());
    drop(rt.block_on(pinging.async_get_db_cm_write()).unwrap());
    assert_eq!(not_pinging.health_report().status, HealthStatus::Healthy);

    relay.set(Mode::Stall);
    std::thread::sleep(Duration::from_millis(300));

    let db = pinging.clone();
    let err = ends_within(LATE, "the blocking checkout", move || {
        db.get_db_cm_write().map(drop).unwrap_err()
    });
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.chain().contains("no answer to a ping"),
        "{}",
        err.chain()
    );

    let started = Instant::now();
    let err = rt.block_on(pinging.async_get_db_cm_write()).unwrap_err();
    let took = started.elapsed();
    assert!(took < LATE, "the async checkout waited {took:?}: {err:?}");

    let db = not_pinging.clone();
    let report = ends_within(LATE, "the blocking health check", move || {
        db.health_report()
    });
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    let error = report.pools[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("no answer to the health check"), "{error}");

    relay.set(Mode::Forward);
    assert!(
        eventually(Duration::from_secs(10), || {
            pinging.get_db_cm_write().is_ok()
                && rt.block_on(pinging.async_get_db_cm_write()).is_ok()
                && not_pinging.health_report().status == HealthStatus::Healthy
        }),
        "the calls did not work again once the server answered"
    );
}

/// What `call` returns, which must come within `limit`: the test fails rather than
/// hangs on a call that is not bounded.
fn ends_within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    call: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || done.send(call()));
    match result.recv_timeout(limit) {
        Ok(value) => value,
        Err(_) => panic!("{what} still waited after {:?}", started.elapsed()),
    }
}

#[test]
fn postgres_silent_server_holds_no_call_past_its_bound() {
    let Some(primary) = common::pg() else {
        return;
    };
    a_silent_server_holds_no_call_past_its_bound::<Postgres>(&primary);
}

#[test]
fn mysql_silent_server_holds_no_call_past_its_bound() {
    let Some(primary) = common::mysql() else {
        return;
    };
    a_silent_server_holds_no_call_past_its_bound::<Mysql>(&primary);
}
