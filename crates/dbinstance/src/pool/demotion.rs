//! Noticing that a primary is one no more. After a failover the old primary comes
//! back read-only (a standby, or `read_only` set), and connections opened to it
//! while it was the primary would otherwise stay pooled for ever, each write on
//! them failing. A write connection whose statement is refused as read-only raises
//! its server's generation; every write connection of an older generation, on
//! every write pool of that server, blocking and async, is then closed instead of
//! reused, and the pools connect anew (to the new primary, when the address moved
//! or lists several hosts).

use std::sync::atomic::{AtomicU64, Ordering};

/// The generation of the write connections to one server.
#[derive(Debug, Default)]
pub(crate) struct Demotion(AtomicU64);

impl Demotion {
    /// The generation a connection opened now belongs to.
    pub(crate) fn current(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// A connection of generation `seen` found the server read-only: that
    /// generation and the older ones are done. Connections opened since are not.
    pub(crate) fn demoted(&self, seen: u64) {
        self.0.fetch_max(seen + 1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_generation_that_saw_it_and_older_ones_end() {
        let demotion = Demotion::default();
        let old = demotion.current();
        demotion.demoted(old);
        let new = demotion.current();
        assert!(new > old);
        // A second old connection hitting the same error spares the new ones.
        demotion.demoted(old);
        assert_eq!(demotion.current(), new);
    }
}
