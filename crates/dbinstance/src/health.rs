//! Health: a ping of every pool's server, and a serialisable report of reachability,
//! latency and pool state for a health endpoint.

use crate::backend::Backend;
use crate::backend::ReplicaLag;
use crate::error::{PoolKind, Role};
use crate::instance::{DatabaseInstance, Pools};
use diesel::connection::SimpleConnection;
use diesel_async::SimpleAsyncConnection;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The overall verdict of a [`HealthReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The primary and every replica answer.
    Healthy,
    /// The primary answers; some replica does not, and reads still have somewhere to go.
    Degraded,
    /// The primary does not answer, or reads have nowhere to go.
    Unhealthy,
}

/// Occupancy of one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PoolState {
    /// Connections open.
    pub size: u32,
    /// Open connections not checked out.
    pub idle: u32,
    /// Connections checked out.
    pub in_use: u32,
    /// Callers waiting for a connection (deadpool only; 0 elsewhere).
    pub waiting: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

impl PoolState {
    /// Connections in use as a share of the most the pool opens (0.0 to 1.0).
    pub fn utilization(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            f64::from(self.in_use) / f64::from(self.max)
        }
    }
}

/// How busy a pool is, against the thresholds `utilization_warning` and
/// `utilization_critical` of the config (defaults 0.75 and 0.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Utilization {
    /// Below the warning threshold.
    Ok,
    /// At or above the warning threshold.
    Warning,
    /// At or above the critical threshold, or callers are waiting.
    Critical,
}

/// What a pool has done since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PoolCounts {
    /// Connections opened.
    pub opened: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections dropped because they were broken (server gone, failed rollback).
    pub broken_discarded: u64,
    /// Checkouts that gave up waiting for a free connection.
    pub checkout_timeouts: u64,
    /// Write sessions dropped inside their transaction and rolled back on drop.
    pub aborted_transactions: u64,
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
    /// How long the checkout and ping took, in milliseconds.
    pub latency_ms: f64,
    /// Why the ping failed.
    pub error: Option<String>,
    /// For a replica: how far it is behind the primary.
    pub replica_lag: Option<ReplicaLag>,
    /// The pool's occupancy after the ping.
    pub state: PoolState,
    /// The pool's lifetime counters.
    pub counts: PoolCounts,
}

/// What [`DatabaseInstance::health_report`] found.
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
            .all(|p| p.reachable);
        let reads: Vec<_> = pools
            .iter()
            .filter(|p| p.role == Role::Read && !p.primary)
            .collect();
        let replicas_up = reads.iter().filter(|p| p.reachable).count();
        let status = if !primary_up {
            HealthStatus::Unhealthy
        } else if replicas_up == reads.len() {
            HealthStatus::Healthy
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

impl<B: Backend> DatabaseInstance<B> {
    /// Pings the primary and every replica through the sync pools: true only when
    /// all answer within the config's `health_timeout` (default 2 s) each.
    pub fn check_database_health(&self) -> bool {
        self.health_report_with_timeout(self.health_timeout())
            .status
            == HealthStatus::Healthy
    }

    /// Pings the primary and every replica through the async pools, all at once, so
    /// it takes about one round trip: true only when all answer within the timeout.
    pub async fn async_check_database_health(&self) -> bool {
        self.async_health_report_with_timeout(self.health_timeout())
            .await
            .status
            == HealthStatus::Healthy
    }

    /// A detailed report through the sync pools, for a health endpoint.
    pub fn health_report(&self) -> HealthReport {
        self.health_report_with_timeout(self.health_timeout())
    }

    /// [`health_report`](Self::health_report) with a per-pool timeout.
    pub fn health_report_with_timeout(&self, timeout: Duration) -> HealthReport {
        let Ok(pools) = self.pools() else {
            return self.closed_report(PoolKind::Sync);
        };
        let mut lines = Vec::new();
        let targets = std::iter::once((Role::Write, true, &pools.write_sync)).chain(
            pools
                .reads
                .iter()
                .map(|r| (Role::Read, r.is_primary, &r.sync_pool)),
        );
        for (role, primary, pool) in targets {
            let started = Instant::now();
            let result = pool.get_within(timeout).and_then(|mut conn| {
                conn.batch_execute("SELECT 1").map_err(crate::Error::from)?;
                let ping = started.elapsed();
                Ok((
                    ping,
                    if primary {
                        None
                    } else {
                        B::replica_lag(&mut conn)
                    },
                ))
            });
            let (latency, replica_lag) = match &result {
                Ok((ping, lag)) => (*ping, *lag),
                Err(_) => (started.elapsed(), None),
            };
            lines.push(PoolHealth {
                role,
                kind: PoolKind::Sync,
                target: pool.id.target.clone(),
                primary,
                reachable: result.is_ok(),
                latency_ms: latency.as_secs_f64() * 1000.0,
                error: result.err().map(|e| error_chain(&e)),
                replica_lag,
                state: pool.pool_state(),
                counts: pool.counts(),
            });
        }
        HealthReport::from_pools(self.name().to_owned(), lines, pools.fallback.is_some())
    }

    /// The async report: every pool pinged concurrently.
    pub async fn async_health_report(&self) -> HealthReport {
        self.async_health_report_with_timeout(self.health_timeout())
            .await
    }

    /// [`async_health_report`](Self::async_health_report) with a per-pool timeout.
    pub async fn async_health_report_with_timeout(&self, timeout: Duration) -> HealthReport {
        let Ok(pools) = self.pools() else {
            return self.closed_report(PoolKind::Async);
        };
        let targets = std::iter::once((Role::Write, true, &pools.write_async)).chain(
            pools
                .reads
                .iter()
                .map(|r| (Role::Read, r.is_primary, &r.async_pool)),
        );
        let pings = targets.map(|(role, primary, pool)| async move {
            let started = Instant::now();
            let ping = async {
                let mut conn = pool.get().await?;
                conn.batch_execute("SELECT 1")
                    .await
                    .map_err(crate::Error::from)?;
                let ping = started.elapsed();
                let lag = if primary {
                    None
                } else {
                    B::async_replica_lag(&mut conn).await
                };
                Ok::<_, crate::Error>((ping, lag))
            };
            let result = match tokio::time::timeout(timeout, ping).await {
                Ok(result) => result.map_err(|e| error_chain(&e)),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            let (latency, replica_lag) = match &result {
                Ok((ping, lag)) => (*ping, *lag),
                Err(_) => (started.elapsed(), None),
            };
            PoolHealth {
                role,
                kind: PoolKind::Async,
                target: pool.id.target.clone(),
                primary,
                reachable: result.is_ok(),
                latency_ms: latency.as_secs_f64() * 1000.0,
                error: result.err(),
                replica_lag,
                state: pool.pool_state(),
                counts: pool.counts(),
            }
        });
        let lines = futures_util::future::join_all(pings).await;
        HealthReport::from_pools(self.name().to_owned(), lines, pools.fallback.is_some())
    }

    fn health_timeout(&self) -> Duration {
        self.settings().health_timeout
    }

    fn closed_report(&self, kind: PoolKind) -> HealthReport {
        HealthReport {
            status: HealthStatus::Unhealthy,
            database: self.name().to_owned(),
            pools: vec![PoolHealth {
                role: Role::Write,
                kind,
                target: self.name().to_owned(),
                primary: true,
                reachable: false,
                latency_ms: 0.0,
                error: Some("the instance is closed".to_owned()),
                replica_lag: None,
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
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let Ok(pools) = self.pools() else {
            return Vec::new();
        };
        let pools: &Pools<B> = &pools;
        let mut stats = vec![pools.write_sync.stats(), pools.write_async.stats()];
        for target in pools.reads.iter().chain(&pools.fallback) {
            stats.push(target.sync_pool.stats());
            stats.push(target.async_pool.stats());
        }
        stats
    }
}

/// One pool's statistics, from [`DatabaseInstance::pool_stats`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Which pool.
    pub pool: crate::PoolId,
    /// Its occupancy now.
    pub state: PoolState,
    /// Its lifetime counters.
    pub counts: PoolCounts,
    /// Its utilization level now.
    pub utilization: Utilization,
}

impl PoolStats {
    pub(crate) fn new(
        pool: crate::PoolId,
        state: PoolState,
        counts: PoolCounts,
        settings: &crate::config::PoolSettings,
    ) -> Self {
        let ratio = state.utilization();
        let utilization = if state.waiting > 0 || ratio >= settings.utilization_critical {
            Utilization::Critical
        } else if ratio >= settings.utilization_warning {
            Utilization::Warning
        } else {
            Utilization::Ok
        };
        Self {
            pool,
            state,
            counts,
            utilization,
        }
    }
}

/// An error and its causes on one line (none of them holds a secret).
fn error_chain(error: &crate::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
