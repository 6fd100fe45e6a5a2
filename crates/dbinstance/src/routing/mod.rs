//! Read routing: which server a read session comes from. A [`ReadPolicy`] orders
//! the replicas of a [`ReplicaSet`], and one walk (`checkout`) tries them in that
//! order, marks the ones that refuse, and falls back to the primary; the blocking
//! and async checkouts are the same walk with a different `get`.
//!
//! - `replicas`: what is known about each replica, and the round-robin cursor.
//! - `checkout`: the walk, free of I/O, and the two loops that drive it.

mod checkout;
mod replicas;

pub(crate) use checkout::{read_async, read_sync};
pub(crate) use replicas::ReplicaSet;

use replicas::Replica;

/// Which replicas a read may use, and in which order.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum ReadPolicy {
    /// Round robin over the replicas that are up, then the ones marked down (so a
    /// recovered replica is found again even when fallback is off).
    #[default]
    Any,
}

impl ReadPolicy {
    /// The replicas to try, in order.
    fn order<'a>(
        self,
        rotation: impl Iterator<Item = Replica> + Clone + 'a,
    ) -> impl Iterator<Item = usize> + 'a {
        match self {
            ReadPolicy::Any => {
                let up = rotation.clone().filter(|r| !r.down);
                up.chain(rotation.filter(|r| r.down)).map(|r| r.index)
            }
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
    fn rotates_and_puts_down_replicas_last() {
        let set = ReplicaSet::new(3);
        let policy = ReadPolicy::Any;
        let first: Vec<_> = policy.order(set.rotation()).collect();
        let second: Vec<_> = policy.order(set.rotation()).collect();
        assert_ne!(first[0], second[0]);
        set.mark_down(1);
        for _ in 0..3 {
            let order: Vec<_> = policy.order(set.rotation()).collect();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1);
        }
        set.mark_up(1);
        assert!(set.rotation().all(|r| !r.down));
    }
}
