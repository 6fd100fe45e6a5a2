//! The replica set: what routing knows about each replica beyond its pools, and
//! the round-robin cursor. Whether a replica's server answers is its breaker's
//! business (in `pool`), shared with every pool on that server; whether it is
//! too far behind is the lag monitor's, which marks it here. How far each has
//! replayed is remembered from the last reading, by the monitor or by a read that
//! had to check, so that reads after a write skip the check once a replica is known
//! to be past it.

use crate::position::CommitPosition;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

/// The replicas of one instance.
#[derive(Debug)]
pub(crate) struct ReplicaSet {
    next: AtomicUsize,
    /// Per replica: further behind than `max_replica_lag`, or its lag unknown.
    behind: Vec<AtomicBool>,
    /// Per replica: the position it was last seen to have replayed.
    /// A lock readers share: every read after a write looks, few write.
    replayed: Vec<RwLock<Option<CommitPosition>>>,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            behind: (0..replicas).map(|_| AtomicBool::new(false)).collect(),
            replayed: (0..replicas).map(|_| RwLock::new(None)).collect(),
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

    /// Whether `replica` is known to have replayed `position`.
    pub(crate) fn has_replayed(&self, replica: usize, position: &CommitPosition) -> bool {
        self.replayed[replica]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|replayed| replayed.covers(position))
    }

    /// Remembers the position `replica` was last seen at. The last reading wins,
    /// so a replica rebuilt from an older copy is not believed ahead.
    pub(crate) fn note_replayed(&self, replica: usize, position: CommitPosition) {
        *self.replayed[replica]
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(position);
    }
}
