//! Replica choice: round robin over the replicas that are not marked down, with a
//! short back-off for a replica that refused a connection.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a replica that failed to connect is skipped before it is tried again.
const BACKOFF: Duration = Duration::from_secs(2);

/// The health marks of a set of replicas.
#[derive(Debug)]
pub(crate) struct ReplicaSet {
    next: AtomicUsize,
    /// Per replica: milliseconds since `epoch` until which it is skipped (0: up).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl ReplicaSet {
    pub(crate) fn new(replicas: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            down_until: (0..replicas).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The replicas to try, in order: the healthy ones starting from the next in
    /// turn, then the ones marked down (so a recovered replica is found again even
    /// when fallback is off).
    pub(crate) fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.down_until.len();
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        let now = self.now_ms();
        let rotated = (0..n).map(move |i| (start + i) % n);
        let up = rotated
            .clone()
            .filter(move |&i| self.down_until[i].load(Ordering::Relaxed) <= now);
        let down = rotated.filter(move |&i| self.down_until[i].load(Ordering::Relaxed) > now);
        up.chain(down)
    }

    #[cfg(test)]
    fn is_down(&self, replica: usize) -> bool {
        self.down_until[replica].load(Ordering::Relaxed) > self.now_ms()
    }

    pub(crate) fn mark_down(&self, replica: usize) {
        let until = self.now_ms() + u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX);
        self.down_until[replica].store(until, Ordering::Relaxed);
    }

    pub(crate) fn mark_up(&self, replica: usize) {
        if self.down_until[replica].load(Ordering::Relaxed) != 0 {
            self.down_until[replica].store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_puts_down_replicas_last() {
        let set = ReplicaSet::new(3);
        let first: Vec<_> = set.order().collect();
        let second: Vec<_> = set.order().collect();
        assert_ne!(first[0], second[0]);
        set.mark_down(1);
        for _ in 0..3 {
            let order: Vec<_> = set.order().collect();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1);
        }
        set.mark_up(1);
        assert!(!set.is_down(1));
    }
}
