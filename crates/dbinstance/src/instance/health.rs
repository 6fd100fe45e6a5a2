//! Health and statistics, forwarded to [`crate::health`] and the pools.

use super::DatabaseInstance;
use crate::backend::Backend;
use crate::health::{self, HealthReport, HealthStatus};
use crate::id::PoolKind;
use crate::pool::PoolStats;
use std::time::Duration;

impl<B: Backend> DatabaseInstance<B> {
    /// Pings the primary and every replica through the sync pools: true only when
    /// all answer. `health_timeout` (default 2 s) bounds each checkout, not the
    /// ping on a pooled connection: a server that accepts and never answers can
    /// hold this call longer. The async twin is bounded throughout.
    pub fn check_database_health(&self) -> bool {
        self.health_report().status == HealthStatus::Healthy
    }

    /// Pings the primary and every replica through the async pools, all at once, so
    /// it takes about one round trip: true only when all answer within the timeout.
    pub async fn async_check_database_health(&self) -> bool {
        self.async_health_report().await.status == HealthStatus::Healthy
    }

    /// A detailed report through the sync pools, for a health endpoint.
    pub fn health_report(&self) -> HealthReport {
        self.health_report_with_timeout(self.health_timeout())
    }

    /// [`health_report`](Self::health_report) with a per-pool timeout.
    pub fn health_report_with_timeout(&self, timeout: Duration) -> HealthReport {
        match self.pools() {
            Ok(pools) => health::report(
                &pools,
                self.name(),
                timeout,
                self.plan().health.max_replica_lag,
            ),
            Err(_) => health::closed_report(self.name(), PoolKind::Sync),
        }
    }

    /// The async report: every pool pinged concurrently.
    pub async fn async_health_report(&self) -> HealthReport {
        self.async_health_report_with_timeout(self.health_timeout())
            .await
    }

    /// [`async_health_report`](Self::async_health_report) with a per-pool timeout.
    pub async fn async_health_report_with_timeout(&self, timeout: Duration) -> HealthReport {
        match self.pools() {
            Ok(pools) => {
                let max_lag = self.plan().health.max_replica_lag;
                health::async_report(&pools, self.name(), timeout, max_lag).await
            }
            Err(_) => health::closed_report(self.name(), PoolKind::Async),
        }
    }

    /// Occupancy and counters of every pool: the write pools first, then the read
    /// pools (replicas, then the primary's fallback pools).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.pools()
            .map(|pools| health::pool_stats(&pools, &self.plan().health))
            .unwrap_or_default()
    }

    fn health_timeout(&self) -> Duration {
        self.plan().health.timeout
    }
}
