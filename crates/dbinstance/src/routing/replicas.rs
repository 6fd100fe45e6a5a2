//! The replica set: per replica, what routing knows about it. Today that is
//! whether it refused a connection lately; a replica's lag and replication
//! position belong here too once a monitor measures them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a replica that failed to connect is skipped before it is tried again.
const BACKOFF: Duration = Duration::from_secs(2);

/// One replica's marks.
#[derive(Debug, Default)]
struct Marks {
    /// Milliseconds since the set's epoch until which it is skipped (0: up).
    down_until: AtomicU64,
}

/// What a read policy sees of one replica.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replica {
    pub(crate) index: usize,
    /// It refused a connection within the back-off.
    pub(crate) down: bool,
}

/// The marks of a set of replicas, and the round-robin cursor.
#[derive(Debug)]
pub(crate) struct ReplicaSet {
    next: AtomicUsize,
    marks: Vec<Marks>,
    epoch: Instant,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            marks: (0..replicas).map(|_| Marks::default()).collect(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Every replica once, starting from the next in turn.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = Replica> + Clone + '_ {
        let n = self.marks.len();
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        let now = self.now_ms();
        (0..n).map(move |i| {
            let index = (start + i) % n;
            Replica {
                index,
                down: self.marks[index].down_until.load(Ordering::Relaxed) > now,
            }
        })
    }

    pub(crate) fn mark_down(&self, replica: usize) {
        let until = self.now_ms() + u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX);
        self.marks[replica]
            .down_until
            .store(until, Ordering::Relaxed);
    }

    pub(crate) fn mark_up(&self, replica: usize) {
        let down_until = &self.marks[replica].down_until;
        if down_until.load(Ordering::Relaxed) != 0 {
            down_until.store(0, Ordering::Relaxed);
        }
    }
}
