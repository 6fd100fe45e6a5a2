//! What a pool counts and how full it is: the statistics live with the pools they
//! describe, so that health and stats read them from below instead of the pools
//! reaching up into health.

use crate::config::HealthOptions;
use crate::id::PoolId;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// No idle connection and no room to open one: a checkout can only wait.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.idle == 0 && self.size >= self.max
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
    /// Connections dropped because they were broken (server gone, failed rollback);
    /// r2d2 and bb8 also count the idle connections `clear_idle()` closes.
    pub broken_discarded: u64,
    /// Checkouts that gave up waiting for a free connection (`Error::Timeout`).
    pub checkout_timeouts: u64,
    /// Async write sessions dropped inside their transaction and rolled back on
    /// drop (blocking sessions are not counted).
    pub aborted_transactions: u64,
    /// Read connections closed because a session ran a statement that may have
    /// changed their session state (a `SET`, a `PRAGMA`, anything but a plain read):
    /// the next session gets a connection as it was opened. Also the connections
    /// whose instrumentation a session replaced, which switched their watching off.
    pub state_discarded: u64,
    /// Sessions that gave their connection back in working order: nothing failed
    /// that suggests the server is gone, no statement left unfinished. While it
    /// grows, a pool with no free connection is busy, not stuck. Not counted:
    /// shared read sessions, which take no connection of their own.
    pub sessions_ended: u64,
}

/// Lifetime counters of one pool; read with [`PoolCounters::snapshot`].
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub(crate) opened: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) broken_discarded: AtomicU64,
    pub(crate) checkout_timeouts: AtomicU64,
    pub(crate) aborted_transactions: AtomicU64,
    pub(crate) state_discarded: AtomicU64,
    pub(crate) sessions_ended: AtomicU64,
}

impl PoolCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PoolCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PoolCounts {
            opened: read(&self.opened),
            connect_failures: read(&self.connect_failures),
            broken_discarded: read(&self.broken_discarded),
            checkout_timeouts: read(&self.checkout_timeouts),
            aborted_transactions: read(&self.aborted_transactions),
            state_discarded: read(&self.state_discarded),
            sessions_ended: read(&self.sessions_ended),
        }
    }
}

/// One pool's statistics, from [`DatabaseInstance::pool_stats`](crate::DatabaseInstance::pool_stats).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PoolStats {
    /// Which pool.
    pub pool: PoolId,
    /// Its name, unique per pool: `<prefix>/write/<sync|async>`,
    /// `<prefix>/read/replica<N>/<sync|async>` (`N` the replica's index in the
    /// config) or `<prefix>/read/primary/<sync|async>`, the prefix being the
    /// primary's `host:port/database` unless
    /// [`InstanceBuilder::pool_name_prefix`](crate::InstanceBuilder::pool_name_prefix)
    /// says otherwise. The `db.client.connection.pool.name` of its metrics.
    pub name: String,
    /// Its occupancy now.
    pub state: PoolState,
    /// Its lifetime counters.
    pub counts: PoolCounts,
    /// Its utilization level now.
    pub utilization: Utilization,
}

impl PoolStats {
    pub(crate) fn new(
        pool: PoolId,
        name: String,
        state: PoolState,
        counts: PoolCounts,
        options: &HealthOptions,
    ) -> Self {
        let ratio = state.utilization();
        let utilization = if state.waiting > 0 || ratio >= options.utilization_critical {
            Utilization::Critical
        } else if ratio >= options.utilization_warning {
            Utilization::Warning
        } else {
            Utilization::Ok
        };
        Self {
            pool,
            name,
            state,
            counts,
            utilization,
        }
    }
}
