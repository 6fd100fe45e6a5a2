//! The replica set: what routing knows about each replica beyond its pools, and
//! the round-robin cursor. Whether a replica's server answers is its breaker's
//! business (in `pool`), shared with every pool on that server.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The replicas of one instance.
#[derive(Debug)]
pub(crate) struct ReplicaSet {
    next: AtomicUsize,
    len: usize,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            len: replicas,
        }
    }

    /// Every replica once, starting from the next in turn.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = usize> {
        let n = self.len;
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        (0..n).map(move |i| (start + i) % n)
    }
}
