//! The replica set: what routing knows about each replica beyond its pools, and
//! the round-robin cursor. Whether a replica's server answers is its breaker's
//! business (in `pool`), shared with every pool on that server; whether it is
//! too far behind is the lag monitor's, which marks it here.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The replicas of one instance.
#[derive(Debug)]
pub(crate) struct ReplicaSet {
    next: AtomicUsize,
    /// Per replica: further behind than `max_replica_lag`, or its lag unknown.
    behind: Vec<AtomicBool>,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            behind: (0..replicas).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.behind.len()
    }

    /// Every replica once, starting from the next in turn.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = usize> {
        let n = self.len();
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        (0..n).map(move |i| (start + i) % n)
    }

    pub(crate) fn is_behind(&self, replica: usize) -> bool {
        self.behind[replica].load(Ordering::Relaxed)
    }

    /// Marks a replica as too far behind, or caught up; says whether that changed.
    pub(crate) fn set_behind(&self, replica: usize, behind: bool) -> bool {
        self.behind[replica].swap(behind, Ordering::Relaxed) != behind
    }
}
