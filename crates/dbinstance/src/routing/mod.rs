//! Read routing: which server a read session comes from. A [`ReadPolicy`] orders
//! the replicas of a [`ReplicaSet`] by weight, and one walk (`checkout`) tries each
//! of them once in that order, passes over those whose pool is exhausted while
//! another has room, skips those whose server is unavailable or, for a read that
//! must see a write, that have not replayed it in time, and falls back to the
//! primary; the blocking and async checkouts are the same walk with a different
//! `get`.
//!
//! - `replicas`: what is known about each replica, and the weighted rotation.
//! - `lag`: the monitor that marks the replicas too far behind and notes how far
//!   each has replayed.
//! - `checkout`: the walk, free of I/O, and the two loops that drive it.

mod checkout;
mod lag;
mod replicas;

#[cfg(feature = "postgres")]
pub(crate) use checkout::read_shared;
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
    /// Weighted round robin over the replicas that are not too far behind (equal
    /// weights: plain round robin), the standbys of weight 0 last. One whose
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
    pub(crate) fn new(plan: &Plan) -> Self {
        Self {
            replicas: Arc::new(ReplicaSet::new(&plan.routing.read_weights)),
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

    fn orders(set: &ReplicaSet, reads: usize) -> Vec<Vec<usize>> {
        (0..reads)
            .map(|_| ReadPolicy::Any.order(set).collect())
            .collect()
    }

    #[test]
    fn skips_the_replicas_marked_behind() {
        let set = ReplicaSet::new(&[1, 1, 1]);
        assert!(set.set_behind(1, true));
        assert!(!set.set_behind(1, true));
        for order in orders(&set, 3) {
            assert_eq!(order.len(), 2);
            assert!(!order.contains(&1));
        }
        assert!(set.set_behind(1, false));
        assert_eq!(ReadPolicy::Any.order(&set).count(), 3);
    }

    #[test]
    fn equal_weights_are_plain_round_robin() {
        for weights in [[1, 1, 1], [7, 7, 7]] {
            let set = ReplicaSet::new(&weights);
            assert_eq!(
                orders(&set, 4),
                [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]],
                "{weights:?}"
            );
        }
    }

    #[test]
    fn reads_start_on_each_replica_in_proportion_to_its_weight_spread_out() {
        let set = ReplicaSet::new(&[3, 1]);
        let firsts: Vec<_> = orders(&set, 8).iter().map(|o| o[0]).collect();
        assert_eq!(firsts, [0, 0, 1, 0, 0, 0, 1, 0]);

        // nginx's sequence for 5:1:1: the light ones are not left to the end.
        let set = ReplicaSet::new(&[5, 1, 1]);
        let firsts: Vec<_> = orders(&set, 700).iter().map(|o| o[0]).collect();
        assert_eq!(firsts[..7], [0, 0, 1, 0, 2, 0, 0]);
        let count = |r| firsts.iter().filter(|&&f| f == r).count();
        assert_eq!((count(0), count(1), count(2)), (500, 100, 100));
    }

    #[test]
    fn every_read_visits_each_replica_once_and_the_standbys_last() {
        let set = ReplicaSet::new(&[0, 3, 1, 0, 2]);
        for order in orders(&set, 24) {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4], "{order:?}");
            let mut tail = order[3..].to_vec();
            tail.sort_unstable();
            assert_eq!(tail, [0, 3], "standbys last: {order:?}");
        }
        // Standbys take turns among themselves too.
        let seconds: std::collections::HashSet<_> = orders(&set, 24).iter().map(|o| o[3]).collect();
        assert_eq!(seconds.len(), 2);
    }

    #[test]
    fn a_lone_standby_serves_when_it_is_the_only_replica_left() {
        let set = ReplicaSet::new(&[1, 0]);
        assert!(set.set_behind(0, true));
        assert_eq!(orders(&set, 2), [[1], [1]]);
    }
}
