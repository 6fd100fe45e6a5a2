//! Read routing: which server a read session comes from. A [`ReadPolicy`] orders
//! the replicas of a [`ReplicaSet`], and one walk (`checkout`) tries each of them
//! once in that order, skips those whose server is unavailable, and falls back to
//! the primary; the blocking and async checkouts are the same walk with a
//! different `get`.
//!
//! - `replicas`: what is known about each replica, and the round-robin cursor.
//! - `checkout`: the walk, free of I/O, and the two loops that drive it.

mod checkout;
mod replicas;

pub(crate) use checkout::{read_async, read_sync};
pub(crate) use replicas::ReplicaSet;

/// Which replicas a read may use, and in which order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum ReadPolicy {
    /// Round robin over the replicas. One whose server failed lately is turned
    /// away by its circuit breaker at no cost, and found again by the breaker's
    /// probe, even when fallback is off.
    #[default]
    Any,
}

impl ReadPolicy {
    /// The replicas to try, in order, each once.
    fn order(self, replicas: &ReplicaSet) -> impl Iterator<Item = usize> {
        match self {
            ReadPolicy::Any => replicas.rotation(),
        }
    }
}

/// The routing state of one instance.
#[derive(Debug)]
pub(crate) struct Router {
    replicas: ReplicaSet,
    policy: ReadPolicy,
}

impl Router {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            replicas: ReplicaSet::new(replicas),
            policy: ReadPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
