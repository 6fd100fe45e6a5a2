//! The replica set: what routing knows about each replica beyond its pools, and
//! the weighted rotation. Whether a replica's server answers is its breaker's
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
    /// How many reads have started: the turn of the next one.
    next: AtomicUsize,
    /// One period of the smooth weighted round robin of the replicas weighing more
    /// than 0: computed once, so that a read takes its turn with one atomic add
    /// and no lock.
    turns: Vec<usize>,
    /// The replicas of weight 0, tried after every weighted one.
    standby: Vec<usize>,
    /// Per replica: further behind than `max_replica_lag`, or its lag unknown.
    behind: Vec<AtomicBool>,
    /// Per replica: the position it was last seen to have replayed.
    /// A lock readers share: every read after a write looks, few write.
    replayed: Vec<RwLock<Option<CommitPosition>>>,
}

impl ReplicaSet {
    /// A set of one replica per weight (the plan checked them).
    pub(crate) fn new(weights: &[u32]) -> Self {
        let replicas = weights.len();
        Self {
            next: AtomicUsize::new(0),
            turns: smooth_turns(weights),
            standby: (0..replicas).filter(|&i| weights[i] == 0).collect(),
            behind: (0..replicas).map(|_| AtomicBool::new(false)).collect(),
            replayed: (0..replicas).map(|_| RwLock::new(None)).collect(),
        }
    }

    /// Every replica once: first the one whose turn it is, then the weighted ones
    /// in the order their turns come next, then the standbys.
    pub(crate) fn rotation(&self) -> Rotation<'_> {
        let period = self.turns.len().max(self.standby.len());
        // One replica (or one weighted and no standby) needs no shared count.
        let start = if period > 1 {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        Rotation {
            set: self,
            start,
            looked: 0,
            standby_given: 0,
            given: None,
        }
    }

    fn len(&self) -> usize {
        self.behind.len()
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

/// The replicas of one read, in order; see [`ReplicaSet::rotation`].
pub(crate) struct Rotation<'a> {
    set: &'a ReplicaSet,
    /// The read's turn.
    start: usize,
    /// Turns looked at so far, from `start` on.
    looked: usize,
    standby_given: usize,
    /// The weighted replicas given so far, once a read asks for more than its
    /// first: most reads take the first and never pay for this.
    given: Option<Vec<bool>>,
}

impl Iterator for Rotation<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let set = self.set;
        let turns = &set.turns;
        while self.looked < turns.len() {
            let first = self.start % turns.len();
            let replica = turns[(first + self.looked) % turns.len()];
            self.looked += 1;
            if self.looked == 1 {
                return Some(replica);
            }
            let given = self.given.get_or_insert_with(|| {
                let mut given = vec![false; set.len()];
                given[turns[first]] = true;
                given
            });
            if !std::mem::replace(&mut given[replica], true) {
                return Some(replica);
            }
        }
        let standby = &set.standby;
        if self.standby_given == standby.len() {
            return None;
        }
        let replica = standby[(self.start % standby.len() + self.standby_given) % standby.len()];
        self.standby_given += 1;
        Some(replica)
    }
}

/// One period of smooth weighted round robin (nginx's): at each turn every replica
/// gains its weight, and the one with the most takes the turn and gives back the sum
/// of the weights. Each replica gets turns in proportion to its weight, spread out
/// rather than in runs, and equal weights take turns in index order: plain round
/// robin. The weights are divided by their greatest common divisor first, which
/// keeps the period short; a replica of weight 0 never takes a turn.
fn smooth_turns(weights: &[u32]) -> Vec<usize> {
    let divisor = weights.iter().fold(0, |a, &w| gcd(a, w));
    if divisor == 0 {
        return Vec::new();
    }
    let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w / divisor)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0_i64; weights.len()];
    (0..total)
        .map(|_| {
            for (current, weight) in current.iter_mut().zip(&weights) {
                *current += weight;
            }
            // The first of the largest, so that equal weights go in index order.
            let best =
                (0..current.len()).fold(
                    0,
                    |best, i| {
                        if current[i] > current[best] {
                            i
                        } else {
                            best
                        }
                    },
                );
            current[best] -= total;
            best
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
