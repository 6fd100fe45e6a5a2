//! Health: a ping of every pool's server, and a serialisable report of reachability,
//! latency and pool state for a health endpoint.

use crate::backend::ReplicaLag;
use crate::backend::{Backend, Driver};
use crate::config::HealthOptions;
use crate::id::{PoolId, PoolKind, Role};
use crate::pool::{PoolCounts, PoolState, PoolStats};
use crate::session::in_own_transaction;
use crate::topology::Pools;
use diesel::connection::SimpleConnection;
use diesel_async::SimpleAsyncConnection;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The overall verdict of a [`HealthReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The primary and every replica answer.
    Healthy,
    /// The primary answers; some replica does not, or is further behind than
    /// `max_replica_lag`, and reads still have somewhere to go. Or a pool is busy:
    /// it had no free connection for the ping while its sessions kept ending.
    Degraded,
    /// The primary does not answer, or reads have nowhere to go.
    Unhealthy,
}

/// One pool's line in a [`HealthReport`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PoolHealth {
    /// Write or read.
    pub role: Role,
    /// Sync or async.
    pub kind: PoolKind,
    /// `host:port/database`; never a password.
    pub target: String,
    /// Whether this pool talks to the primary (a read pool does when there is no replica,
    /// and for fallback).
    pub primary: bool,
    /// Whether the ping succeeded within the timeout.
    pub reachable: bool,
    /// The ping found no free connection within the timeout while the pool's
    /// sessions kept ending: the server serves, the pool is saturated. A busy pool
    /// makes the report degraded, not unhealthy, so that a load balancer does not
    /// take an instance out for being loaded (and load the others more).
    pub busy: bool,
    /// How long the checkout and ping took, in milliseconds.
    pub latency_ms: f64,
    /// Why the ping failed.
    pub error: Option<String>,
    /// For a replica: how far it is behind the primary.
    pub replica_lag: Option<ReplicaLag>,
    /// For a replica, when `max_replica_lag` is set: it is further behind, or its
    /// lag could not be read, so reads skip it.
    pub behind: bool,
    /// The pool's occupancy after the ping.
    pub state: PoolState,
    /// The pool's lifetime counters.
    pub counts: PoolCounts,
}

/// What [`DatabaseInstance::health_report`](crate::DatabaseInstance::health_report) found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// The primary's `host:port/database`.
    pub database: String,
    /// One line per pool pinged.
    pub pools: Vec<PoolHealth>,
}

impl HealthReport {
    fn from_pools(database: String, pools: Vec<PoolHealth>, fallback: bool) -> Self {
        let primary_up = pools
            .iter()
            .filter(|p| p.role == Role::Write)
            .all(|p| p.reachable || p.busy);
        let reads: Vec<_> = pools
            .iter()
            .filter(|p| p.role == Role::Read && !p.primary)
            .collect();
        let replicas_up = reads
            .iter()
            .filter(|p| (p.reachable || p.busy) && !p.behind)
            .count();
        let any_busy = pools.iter().any(|p| p.busy);
        let status = if !primary_up {
            HealthStatus::Unhealthy
        } else if replicas_up == reads.len() {
            if any_busy {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            }
        } else if replicas_up > 0 || fallback {
            HealthStatus::Degraded
        } else {
            HealthStatus::Unhealthy
        };
        Self {
            status,
            database,
            pools,
        }
    }

    /// True unless [`HealthStatus::Unhealthy`].
    pub fn is_available(&self) -> bool {
        self.status != HealthStatus::Unhealthy
    }
}

/// What one ping found: how long the checkout and `SELECT 1` took and, for a
/// replica, its lag; or why it failed.
type Ping = std::result::Result<(Duration, Option<ReplicaLag>), Failed>;

/// Why a ping failed, and whether the pool was only busy.
struct Failed {
    message: String,
    busy: bool,
}

impl Failed {
    /// A ping that failed with `message`; `waited_in_line` when it never had a
    /// connection and every connection of its pool was in use when it gave up.
    /// Busy when sessions ended meanwhile: their connections went to the checkouts
    /// queued before the ping's. (A checkout still opening a connection, or
    /// pinging an idle one, is not waiting in line: the pool is not full.)
    fn new(message: String, waited_in_line: bool, ended: u64) -> Self {
        if waited_in_line && ended > 0 {
            Self {
                message: format!(
                    "{message}: the pool is busy (sessions ended while the ping waited: {ended})"
                ),
                busy: true,
            }
        } else {
            Self {
                message,
                busy: false,
            }
        }
    }
}

/// Every connection in use, or callers waiting (where the pool library counts
/// them): a checkout can only wait its turn.
fn pool_is_taken(state: PoolState) -> bool {
    state.is_exhausted() || state.waiting > 0
}

/// The report line of the pool `id`, pinged from `started`.
fn line(
    id: &PoolId,
    primary: bool,
    started: Instant,
    ping: Ping,
    max_replica_lag: Option<Duration>,
    state: PoolState,
    counts: PoolCounts,
) -> PoolHealth {
    let (latency, replica_lag) = match &ping {
        Ok((latency, lag)) => (*latency, *lag),
        Err(_) => (started.elapsed(), None),
    };
    let (reachable, busy, error) = match ping {
        Ok(_) => (true, false, None),
        Err(failed) => (false, failed.busy, Some(failed.message)),
    };
    // A busy replica's lag went unread, which says nothing about it.
    let behind = match (primary || busy, max_replica_lag) {
        (false, Some(max)) => ReplicaLag::exceeds(replica_lag, max),
        _ => false,
    };
    PoolHealth {
        role: id.role,
        kind: id.kind,
        target: id.target.clone(),
        primary,
        reachable,
        busy,
        latency_ms: latency.as_secs_f64() * 1000.0,
        error,
        replica_lag,
        behind,
        state,
        counts,
    }
}

/// Pings the write pool and every read pool through the blocking pools, one after
/// the other, and reads each replica's lag: each pool's checkout and ping within
/// `timeout`, the ping in a thread the check stops waiting for at the bound.
pub(crate) fn report<B: Backend>(
    pools: &Pools<B>,
    database: &str,
    timeout: Duration,
    max_replica_lag: Option<Duration>,
) -> HealthReport {
    let targets = std::iter::once((true, &pools.write_sync))
        .chain(pools.reads.iter().map(|r| (r.is_primary, &r.sync_pool)));
    let lines = targets.map(|(primary, pool)| {
        let started = Instant::now();
        let ended_before = pool.counts().sessions_ended;
        let ping = pool.get_within(timeout).and_then(|conn| {
            let left = timeout.saturating_sub(started.elapsed());
            let (_conn, answer) = pool.within(conn, left, "the health check", move |conn| {
                conn.batch_execute("SELECT 1")?;
                let latency = started.elapsed();
                let lag = if primary {
                    None
                } else {
                    B::Driver::replica_lag(conn)
                };
                Ok::<_, diesel::result::Error>((latency, lag))
            })?;
            answer.map_err(crate::Error::from)
        });
        let ping = ping.map_err(|e| {
            let in_line =
                matches!(e, crate::Error::Timeout { .. }) && pool_is_taken(pool.pool_state());
            let ended = pool.counts().sessions_ended.saturating_sub(ended_before);
            Failed::new(e.chain(), in_line, ended)
        });
        line(
            &pool.id,
            primary,
            started,
            ping,
            max_replica_lag,
            pool.pool_state(),
            pool.counts(),
        )
    });
    HealthReport::from_pools(
        database.to_owned(),
        lines.collect(),
        pools.fallback.is_some(),
    )
}

/// Pings every pool through the async pools, all at once.
pub(crate) async fn async_report<B: Backend>(
    pools: &Pools<B>,
    database: &str,
    timeout: Duration,
    max_replica_lag: Option<Duration>,
) -> HealthReport {
    let targets = std::iter::once((true, &pools.write_async))
        .chain(pools.reads.iter().map(|r| (r.is_primary, &r.async_pool)));
    let pings = targets.map(|(primary, pool)| async move {
        let started = Instant::now();
        let ended_before = pool.counts().sessions_ended;
        let checked_out = AtomicBool::new(false);
        let ping = async {
            let mut conn = pool.get().await?;
            checked_out.store(true, Ordering::Relaxed);
            conn.batch_execute("SELECT 1")
                .await
                .map_err(crate::Error::from)?;
            let latency = started.elapsed();
            let lag = if primary {
                None
            } else {
                let pinned = pool.recipe().options.transaction_pooling;
                in_own_transaction::<B, _>(&mut conn, pinned, |conn| {
                    Box::pin(async { Ok(B::Driver::async_replica_lag(conn).await) })
                })
                .await
                .ok()
                .flatten()
            };
            Ok::<_, crate::Error>((latency, lag))
        };
        let outcome = tokio::time::timeout(timeout, ping).await;
        let in_line = !checked_out.load(Ordering::Relaxed) && pool_is_taken(pool.pool_state());
        let ended = pool.counts().sessions_ended.saturating_sub(ended_before);
        let ping = match outcome {
            Ok(result) => result.map_err(|e| {
                let timed_out = matches!(e, crate::Error::Timeout { .. });
                Failed::new(e.chain(), in_line && timed_out, ended)
            }),
            Err(_) => Err(Failed::new(
                format!("no answer within {timeout:?}"),
                in_line,
                ended,
            )),
        };
        line(
            &pool.id,
            primary,
            started,
            ping,
            max_replica_lag,
            pool.pool_state(),
            pool.counts(),
        )
    });
    let lines = futures_util::future::join_all(pings).await;
    HealthReport::from_pools(database.to_owned(), lines, pools.fallback.is_some())
}

/// The report of an instance whose pools are closed.
pub(crate) fn closed_report(database: &str, kind: PoolKind) -> HealthReport {
    HealthReport {
        status: HealthStatus::Unhealthy,
        database: database.to_owned(),
        pools: vec![PoolHealth {
            role: Role::Write,
            kind,
            target: database.to_owned(),
            primary: true,
            reachable: false,
            busy: false,
            latency_ms: 0.0,
            error: Some("the instance is closed".to_owned()),
            replica_lag: None,
            behind: false,
            state: PoolState {
                size: 0,
                idle: 0,
                in_use: 0,
                waiting: 0,
                max: 0,
            },
            counts: PoolCounts::default(),
        }],
    }
}

/// Occupancy and counters of every pool: the write pools first, then the read
/// pools (replicas, then the primary's fallback pools).
pub(crate) fn pool_stats<B: Backend>(pools: &Pools<B>, options: &HealthOptions) -> Vec<PoolStats> {
    let sync = pools.sync_pools().map(|p| {
        let name = p.recipe().name.clone();
        PoolStats::new(p.id.clone(), name, p.pool_state(), p.counts(), options)
    });
    let asyncs = pools.async_pools().map(|p| {
        let name = p.recipe().name.clone();
        PoolStats::new(p.id.clone(), name, p.pool_state(), p.counts(), options)
    });
    // Per server: its sync pool, then its async pool.
    sync.zip(asyncs).flat_map(|(s, a)| [s, a]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_line(role: Role, primary: bool, reachable: bool, busy: bool) -> PoolHealth {
        PoolHealth {
            role,
            kind: PoolKind::Async,
            target: "db".to_owned(),
            primary,
            reachable,
            busy,
            latency_ms: 0.0,
            error: None,
            replica_lag: None,
            behind: false,
            state: PoolState {
                size: 1,
                idle: 0,
                in_use: 1,
                waiting: 0,
                max: 1,
            },
            counts: PoolCounts::default(),
        }
    }

    fn status(pools: Vec<PoolHealth>, fallback: bool) -> HealthStatus {
        HealthReport::from_pools("db".to_owned(), pools, fallback).status
    }

    #[test]
    fn busy_degrades_and_unreachable_fails() {
        let replica = |reachable, busy| pool_line(Role::Read, false, reachable, busy);
        let primary = |reachable, busy| pool_line(Role::Write, true, reachable, busy);
        assert_eq!(
            status(vec![primary(true, false)], false),
            HealthStatus::Healthy
        );
        assert_eq!(
            status(vec![primary(false, true)], false),
            HealthStatus::Degraded
        );
        assert_eq!(
            status(vec![primary(false, false)], false),
            HealthStatus::Unhealthy
        );
        // Without fallback, the one replica carries every read: busy still serves.
        assert_eq!(
            status(vec![primary(true, false), replica(false, true)], false),
            HealthStatus::Degraded
        );
        assert_eq!(
            status(vec![primary(true, false), replica(false, false)], false),
            HealthStatus::Unhealthy
        );
        assert_eq!(
            status(vec![primary(true, false), replica(true, false)], false),
            HealthStatus::Healthy
        );
    }

    #[test]
    fn a_busy_replica_is_not_behind_for_want_of_a_lag() {
        let id = PoolId {
            role: Role::Read,
            kind: PoolKind::Async,
            target: "replica".to_owned(),
        };
        let state = pool_line(Role::Read, false, false, true).state;
        let max = Some(Duration::from_secs(1));
        let failed = |busy| {
            Err(Failed {
                message: "no answer".to_owned(),
                busy,
            })
        };
        let busy = line(
            &id,
            false,
            Instant::now(),
            failed(true),
            max,
            state,
            PoolCounts::default(),
        );
        assert!(busy.busy && !busy.behind);
        let down = line(
            &id,
            false,
            Instant::now(),
            failed(false),
            max,
            state,
            PoolCounts::default(),
        );
        assert!(!down.busy && down.behind);
    }
}
