//! Read routing: which server a read session comes from. A [`ReadPolicy`] orders
//! the replicas of a [`ReplicaSet`], and one walk (`checkout`) tries each of them
//! once in that order, skips those whose server is unavailable or, for a read
//! that must see a write, that have not replayed it in time, and falls back to
//! the primary; the blocking and async checkouts are the same walk with a
//! different `get`.
//!
//! - `replicas`: what is known about each replica, and the round-robin cursor.
//! - `lag`: the monitor that marks the replicas too far behind and notes how far
//!   each has replayed.
//! - `checkout`: the walk, free of I/O, and the two loops that drive it.

mod checkout;
mod lag;
mod replicas;

pub(crate) use checkout::{read_async, read_sync};
pub(crate) use replicas::ReplicaSet;

use crate::backend::Backend;
use crate::config::Plan;
use crate::topology::Pools;
use std::sync::Arc;
use std::time::Duration;

/// Which replicas a read may use, and in which order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum ReadPolicy {
    /// Round robin over the replicas that are not too far behind. One whose
    /// server failed lately is turned away by its circuit breaker at no cost, and
    /// found again by the breaker's probe, even when fallback is off.
    #[default]
    Any,
}

impl ReadPolicy {
    /// The replicas to try, in order, each once.
    fn order(self, replicas: &ReplicaSet) -> impl Iterator<Item = usize> + '_ {
        match self {
            ReadPolicy::Any => replicas.rotation().filter(|&i| !replicas.is_behind(i)),
        }
    }
}

/// The routing state of one instance.
#[derive(Debug)]
pub(crate) struct Router {
    replicas: Arc<ReplicaSet>,
    policy: ReadPolicy,
    max_replica_lag: Option<Duration>,
    /// How long a read after a write waits for a replica to replay it.
    read_your_writes_wait: Duration,
}

impl Router {
    pub(crate) fn new(replicas: usize, plan: &Plan) -> Self {
        Self {
            replicas: Arc::new(ReplicaSet::new(replicas)),
            policy: ReadPolicy::default(),
            max_replica_lag: plan.routing.max_replica_lag,
            read_your_writes_wait: plan.routing.read_your_writes_wait,
        }
    }

    /// Starts the lag monitor when `max_replica_lag` is set and there are replicas.
    pub(crate) fn watch_lag<B: Backend>(&self, pools: &Arc<Pools<B>>, plan: &Plan) {
        let has_replicas = pools.reads.iter().any(|r| !r.is_primary);
        if let (Some(max_lag), true) = (self.max_replica_lag, has_replicas) {
            lag::spawn(
                Arc::downgrade(pools),
                self.replicas.clone(),
                max_lag,
                plan.routing.lag_interval,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_the_replicas_marked_behind() {
        let set = ReplicaSet::new(3);
        assert!(set.set_behind(1, true));
        assert!(!set.set_behind(1, true));
        for _ in 0..3 {
            let order: Vec<_> = ReadPolicy::Any.order(&set).collect();
            assert_eq!(order.len(), 2);
            assert!(!order.contains(&1));
        }
        assert!(set.set_behind(1, false));
        assert_eq!(ReadPolicy::Any.order(&set).count(), 3);
    }

    #[test]
    fn rotates_and_visits_each_replica_once() {
        let set = ReplicaSet::new(3);
        let policy = ReadPolicy::Any;
        let first: Vec<_> = policy.order(&set).collect();
        let second: Vec<_> = policy.order(&set).collect();
        assert_ne!(first[0], second[0]);
        for order in [first, second] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2], "{order:?}");
        }
    }
}
