//! A circuit breaker per server, shared by every pool that connects to it.
//!
//! Closed while connects succeed. A failed connect opens it: checkouts that would
//! need a new connection fail at once with [`Error::Unavailable`](crate::Error)
//! instead of each waiting for its own connect to fail. When the back-off has
//! passed, the next checkout starts one probe in the background (half-open) and is
//! still turned away; the probe's success closes the breaker, its failure opens it
//! for another back-off. Callers therefore never pay a probe's wait, which is what
//! makes a hung server cheap to skip.

use super::failure::ConnectFailure;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One server's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// False for SQLite: there is no server to be down, and a failed open (a
    /// locked or missing file) says nothing about the next one.
    trips: bool,
    backoff: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` until which the server is skipped; 0 while closed.
    open_until: AtomicU64,
    /// Counts connects that failed or were refused because the breaker is open,
    /// so that a waiting checkout can tell that one ended while it waited.
    failures: AtomicU64,
    probing: AtomicBool,
    last_failure: Mutex<Option<ConnectFailure>>,
    /// Wakes async checkouts waiting on a pool (bb8) that does not tell them.
    #[cfg(feature = "bb8")]
    ended: tokio::sync::Notify,
}

/// Why a checkout was turned away.
#[derive(Debug)]
pub(crate) struct Open {
    /// How long until the next probe is due.
    pub(crate) retry_after: Duration,
    /// The connect failure that opened the breaker.
    pub(crate) cause: ConnectFailure,
    /// The caller should start the probe (it holds the probing slot).
    pub(crate) probe_due: bool,
}

impl Breaker {
    pub(crate) fn new(backoff: Duration, trips: bool) -> Self {
        Self {
            trips,
            backoff,
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            last_failure: Mutex::new(None),
            #[cfg(feature = "bb8")]
            ended: tokio::sync::Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so that an open breaker is never mistaken for a closed one.
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether the server refused lately. One relaxed load: this is on every checkout.
    /// Whether a failure opens it (not for SQLite: there is no server to be down).
    pub(crate) fn trips(&self) -> bool {
        self.trips
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) != 0
    }

    /// How many connects have failed or been refused so far.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// `Ok` when the breaker is closed; otherwise why not, and whether a probe is due.
    pub(crate) fn check(&self) -> Result<(), Open> {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let probe_due = now >= until && !self.probing.swap(true, Ordering::AcqRel);
        let retry_after = if now >= until {
            self.backoff
        } else {
            Duration::from_millis(until - now)
        };
        Err(Open {
            retry_after,
            cause: self.last_failure(),
            probe_due,
        })
    }

    /// A connect succeeded: close the breaker.
    pub(crate) fn record_success(&self) {
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Relaxed);
            tracing::info!("dbinstance: server reachable again, circuit closed");
        }
    }

    /// A connect failed: skip the server for one back-off.
    pub(crate) fn record_failure(&self, failure: &ConnectFailure) {
        self.note_failure(failure);
        if !self.trips {
            return;
        }
        let backoff = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX);
        self.open_until
            .store(self.now_ms().saturating_add(backoff), Ordering::Relaxed);
    }

    /// A connect ended without a connection for a reason that says nothing about
    /// the server (an `after_connect` hook refused it): waiting checkouts learn of
    /// it, the breaker stays as it is.
    pub(crate) fn note_failure(&self, failure: &ConnectFailure) {
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(failure.clone());
        self.failures.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "bb8")]
        self.ended.notify_waiters();
    }

    /// A pool's connect was refused because the breaker is open.
    pub(crate) fn record_refusal(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "bb8")]
        self.ended.notify_waiters();
    }

    /// Resolves when a connect to this server next ends without a connection.
    #[cfg(feature = "bb8")]
    pub(crate) async fn connect_ended(&self) {
        self.ended.notified().await;
    }

    /// The probe has finished (it recorded its outcome first).
    pub(crate) fn probe_done(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// The last connect failure: while the breaker is open, the one that opened it.
    pub(crate) fn last_failure(&self) -> ConnectFailure {
        self.last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(ConnectFailure::unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> ConnectFailure {
        ConnectFailure::unknown()
    }

    #[test]
    fn opens_on_a_failure_and_closes_on_a_success() {
        let breaker = Breaker::new(Duration::from_secs(60), true);
        assert!(breaker.check().is_ok());
        breaker.record_failure(&failure());
        let open = breaker.check().unwrap_err();
        assert!(!open.probe_due, "no probe before the back-off has passed");
        assert!(open.retry_after <= Duration::from_secs(60));
        breaker.record_success();
        assert!(breaker.check().is_ok());
    }

    #[test]
    fn a_breaker_that_does_not_trip_only_reports() {
        let breaker = Breaker::new(Duration::from_secs(60), false);
        breaker.record_failure(&failure());
        assert!(breaker.check().is_ok());
        assert_eq!(breaker.failures(), 1);
    }

    #[test]
    fn after_the_back_off_one_caller_probes_and_the_others_are_turned_away() {
        let breaker = Breaker::new(Duration::ZERO, true);
        breaker.record_failure(&failure());
        std::thread::sleep(Duration::from_millis(2));
        assert!(breaker.check().unwrap_err().probe_due);
        assert!(!breaker.check().unwrap_err().probe_due);
        breaker.record_failure(&failure());
        breaker.probe_done();
        std::thread::sleep(Duration::from_millis(2));
        assert!(breaker.check().unwrap_err().probe_due);
        breaker.record_success();
        breaker.probe_done();
        assert!(breaker.check().is_ok());
    }
}
