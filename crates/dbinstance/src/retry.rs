//! Retried write transactions: [`RetryPolicy`] (how many attempts, how long in all,
//! how far apart), and the sorting of a failed attempt into "run it again", "the
//! commit may have happened" and "give up".
//!
//! A transaction is run again only when the server said it gave the work up because
//! of another transaction: a serialization failure, a deadlock, a lock wait that
//! timed out, a locked SQLite database. A `COMMIT` that got no clear answer is run
//! again only for work declared idempotent: it may have been committed.

use crate::backend::BackendKind;
use crate::error::Error;
use crate::id::{PoolId, Stage};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use std::time::{Duration, Instant};

/// How [`write_with_retry`](crate::DatabaseInstance::write_with_retry) and
/// [`async_write_with_retry`](crate::DatabaseInstance::async_write_with_retry) run a
/// transaction again after a conflict with another transaction.
///
/// The pause before the `n`th retry is drawn between half and all of
/// `base_delay * 2^(n-1)`, capped at `max_delay`: it doubles, and the random half
/// keeps transactions that collided once from colliding again in step. Retrying
/// stops after `max_attempts` runs, or when the next run would start more than
/// `max_elapsed` after the first (a run under way is not cut short).
///
/// ```
/// use dbinstance::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(10)
///     .max_elapsed(Duration::from_secs(2))
///     .base_delay(Duration::from_millis(5))
///     .max_delay(Duration::from_millis(200));
/// assert_eq!(policy.attempts(), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    max_elapsed: Duration,
    base_delay: Duration,
    max_delay: Duration,
    idempotent: bool,
}

impl Default for RetryPolicy {
    /// 5 attempts within 10 s, pauses from 10 ms doubling up to 1 s, not
    /// idempotent.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_elapsed: Duration::from_secs(10),
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
            idempotent: false,
        }
    }
}

impl RetryPolicy {
    /// The [default](Self::default) policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs in all, the first included (5). 0 counts as 1: no retry.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// No run starts later than this after the first one started (10 s).
    #[must_use]
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The pause before the first retry is between half of this and this (10 ms).
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// No pause is longer than this (1 s).
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Declares that running the work twice does no harm (false). Only then is it
    /// run again after a `COMMIT` whose outcome is unknown, for example when the
    /// connection broke while committing: the first run may have been committed.
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// The most runs this policy allows.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether the work was declared idempotent.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The pause before retry number `retry` (1 for the first), `unit` a random
    /// number in `[0, 1)`: between half and all of the capped exponential step.
    fn delay(&self, retry: u32, unit: f64) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let step = self
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let half = step / 2;
        // `unit` < 1 keeps the product below `half`, so it cannot overflow.
        half.saturating_add(half.mul_f64(unit.clamp(0.0, 1.0)))
            .min(step)
    }
}

/// What made a transaction worth running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// PostgreSQL SQLSTATE 40001 (and MySQL's 1213 where diesel names it so).
    Serialization,
    /// PostgreSQL 40P01, MySQL/MariaDB 1213.
    Deadlock,
    /// MySQL/MariaDB 1205.
    LockTimeout,
    /// SQLite's `SQLITE_BUSY`.
    Busy,
}

impl Conflict {
    fn label(self) -> &'static str {
        match self {
            Conflict::Serialization => "serialization failure",
            Conflict::Deadlock => "deadlock",
            Conflict::LockTimeout => "lock wait timeout",
            Conflict::Busy => "database is locked",
        }
    }
}

/// How a failed run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server gave the transaction up for another one: nothing was kept.
    Conflict(Conflict),
    /// `COMMIT` was sent and no clear answer came back: it may have been kept.
    Ambiguous,
    /// Anything else: running it again would fail the same way.
    Final,
}

/// True when `error` is a conflict with another transaction that running the
/// transaction again may get past: a serialization failure (PostgreSQL SQLSTATE
/// 40001), a deadlock (PostgreSQL 40P01, MySQL/MariaDB 1213), a lock wait timeout
/// (MySQL/MariaDB 1205), or a locked SQLite database (`SQLITE_BUSY`).
///
/// diesel names only the serialization failure; the others are known by the
/// server's message, so they are recognised when the server sends its messages in
/// English (PostgreSQL's `lc_messages`, MariaDB's `lc_messages`; both default to
/// English unless the cluster was set up in another language).
pub fn is_transaction_conflict(error: &DieselError) -> bool {
    conflict(error).is_some()
}

pub(crate) fn conflict(error: &DieselError) -> Option<Conflict> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
            // diesel's blocking MySQL driver reports 1213 under this kind too.
            if info.message().starts_with("Deadlock found") {
                Some(Conflict::Deadlock)
            } else {
                Some(Conflict::Serialization)
            }
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            conflict_message(info.message())
        }
        // diesel rolls back after a failed COMMIT; the COMMIT's error is the verdict.
        DieselError::RollbackErrorOnCommit { commit_error, .. } => conflict(commit_error),
        _ => None,
    }
}

fn conflict_message(message: &str) -> Option<Conflict> {
    if message == "deadlock detected" {
        // PostgreSQL 40P01.
        Some(Conflict::Deadlock)
    } else if message.starts_with("Deadlock found when trying to get lock")
        // Galera's certification failure, also 1213.
        || message.starts_with("WSREP detected deadlock/conflict")
    {
        Some(Conflict::Deadlock)
    } else if message.starts_with("Lock wait timeout exceeded") {
        Some(Conflict::LockTimeout)
    } else if message.starts_with("database is locked") {
        Some(Conflict::Busy)
    } else {
        None
    }
}

/// The first diesel error along `error`'s `source()` chain decides: a closure's
/// error type wraps this crate's or diesel's in its own way.
pub(crate) fn failure_of(error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(diesel) = error.downcast_ref::<DieselError>() {
            return conflict(diesel).map_or(Failure::Final, Failure::Conflict);
        }
        next = error.source();
    }
    Failure::Final
}

/// How a failed `COMMIT` (a [`Session`](crate::Session) or
/// [`AsyncSession`](crate::AsyncSession) commit's error) ended.
pub(crate) fn commit_failure(kind: BackendKind, error: &Error) -> Failure {
    let Error::Session {
        stage: Stage::Commit,
        source,
        ..
    } = error
    else {
        return failure_of(error);
    };
    if let Some(conflict) = conflict(source) {
        return Failure::Conflict(conflict);
    }
    match kind {
        // No connection to lose: SQLite's COMMIT either returned success or did
        // not commit.
        BackendKind::Sqlite => Failure::Final,
        BackendKind::Postgres | BackendKind::Mysql => {
            if refused_by_server(source) {
                Failure::Final
            } else {
                Failure::Ambiguous
            }
        }
    }
}

/// The COMMIT certainly did not happen: the server refused it for a reason it
/// names, or diesel never sent it. Any other error (a closed connection, an error
/// that could have come after the commit point, one this crate does not know) may
/// hide a commit.
fn refused_by_server(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, _) => matches!(
            kind,
            DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation
                | DatabaseErrorKind::ReadOnlyTransaction
        ),
        DieselError::RollbackErrorOnCommit { commit_error, .. } => refused_by_server(commit_error),
        DieselError::NotInTransaction
        | DieselError::AlreadyInTransaction
        | DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

/// Counts the runs of one retried transaction and decides, after each failed one,
/// whether and when the next starts.
#[derive(Debug)]
pub(crate) struct Attempts {
    policy: RetryPolicy,
    started: Instant,
    attempt: u32,
}

impl Attempts {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            started: Instant::now(),
            attempt: 1,
        }
    }

    /// The pause before the next run, or `None` to return the failure. Logs the
    /// decision; never the statement or its values.
    pub(crate) fn after(&mut self, failure: Failure, pool: &PoolId) -> Option<Duration> {
        let attempt = self.attempt;
        let reason = match failure {
            Failure::Final => return None,
            Failure::Conflict(conflict) => conflict.label(),
            Failure::Ambiguous if self.policy.idempotent => "commit outcome unknown",
            Failure::Ambiguous => {
                tracing::warn!(pool = %pool, attempt, "dbinstance: the connection failed during COMMIT; not running the transaction again, as it is not declared idempotent");
                return None;
            }
        };
        if attempt >= self.policy.max_attempts {
            tracing::warn!(pool = %pool, attempt, reason, "dbinstance: transaction failed; giving up after the last allowed attempt");
            return None;
        }
        let delay = self.policy.delay(attempt, random_unit());
        let elapsed = self.started.elapsed();
        if elapsed.saturating_add(delay) > self.policy.max_elapsed {
            tracing::warn!(pool = %pool, attempt, reason, elapsed_ms = elapsed.as_millis() as u64, "dbinstance: transaction failed; giving up, out of time for another attempt");
            return None;
        }
        tracing::debug!(pool = %pool, attempt, reason, delay_ms = delay.as_millis() as u64, "dbinstance: transaction failed; running it again");
        self.attempt += 1;
        Some(delay)
    }
}

/// A number in `[0, 1)`. `RandomState` is seeded at random and differs at each
/// call, which is all the jitter needs, without a dependency for it.
fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let bits = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{PoolKind, Role};
    use proptest::prelude::*;

    fn db_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    fn unknown(message: &str) -> DieselError {
        db_error(DatabaseErrorKind::Unknown, message)
    }

    fn pool() -> PoolId {
        PoolId {
            role: Role::Write,
            kind: PoolKind::Sync,
            target: "db:5432/test".into(),
        }
    }

    fn commit_error(source: DieselError) -> Error {
        Error::Session {
            pool: pool(),
            stage: Stage::Commit,
            source,
        }
    }

    #[test]
    fn conflicts_are_recognised_on_every_backend() {
        let cases = [
            (
                db_error(
                    DatabaseErrorKind::SerializationFailure,
                    "could not serialize access due to concurrent update",
                ),
                Some(Conflict::Serialization),
            ),
            (unknown("deadlock detected"), Some(Conflict::Deadlock)),
            (
                unknown("Deadlock found when trying to get lock; try restarting transaction"),
                Some(Conflict::Deadlock),
            ),
            // The blocking MySQL driver's prepared statements name 1213 this way.
            (
                db_error(
                    DatabaseErrorKind::SerializationFailure,
                    "Deadlock found when trying to get lock; try restarting transaction",
                ),
                Some(Conflict::Deadlock),
            ),
            (
                unknown("Lock wait timeout exceeded; try restarting transaction"),
                Some(Conflict::LockTimeout),
            ),
            (unknown("database is locked"), Some(Conflict::Busy)),
            (
                db_error(DatabaseErrorKind::UniqueViolation, "duplicate key"),
                None,
            ),
            (unknown("relation \"t\" does not exist"), None),
            // A user's message that mentions a deadlock is not one.
            (unknown("no deadlock detected here"), None),
            (DieselError::NotFound, None),
        ];
        for (error, expected) in cases {
            assert_eq!(conflict(&error), expected, "{error:?}");
            assert_eq!(is_transaction_conflict(&error), expected.is_some());
        }
    }

    #[test]
    fn the_chain_is_searched_for_the_diesel_error() {
        let query = Error::from(unknown("deadlock detected"));
        assert_eq!(failure_of(&query), Failure::Conflict(Conflict::Deadlock));

        #[derive(Debug, thiserror::Error)]
        #[error("the app failed")]
        struct App(#[source] Error);
        let wrapped = App(Error::from(db_error(
            DatabaseErrorKind::SerializationFailure,
            "x",
        )));
        assert_eq!(
            failure_of(&wrapped),
            Failure::Conflict(Conflict::Serialization)
        );

        let unrelated = std::io::Error::other("disk full");
        assert_eq!(failure_of(&unrelated), Failure::Final);
        let unique = Error::from(db_error(DatabaseErrorKind::UniqueViolation, "dup"));
        assert_eq!(failure_of(&unique), Failure::Final);
    }

    #[test]
    fn a_commit_is_ambiguous_unless_the_server_said_no() {
        let serialization = commit_error(db_error(DatabaseErrorKind::SerializationFailure, "x"));
        let closed = commit_error(db_error(
            DatabaseErrorKind::ClosedConnection,
            "server closed the connection unexpectedly",
        ));
        let unsent = commit_error(db_error(
            DatabaseErrorKind::UnableToSendCommand,
            "connection closed",
        ));
        let lost = commit_error(unknown("Lost connection to server during query"));
        let unique = commit_error(db_error(DatabaseErrorKind::UniqueViolation, "dup"));
        let broken = commit_error(DieselError::BrokenTransactionManager);
        let busy = commit_error(unknown("database is locked"));
        let io = commit_error(unknown("disk I/O error"));
        let after_rollback = commit_error(DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(unknown("connection lost")),
            commit_error: Box::new(db_error(DatabaseErrorKind::SerializationFailure, "x")),
        });

        for kind in [BackendKind::Postgres, BackendKind::Mysql] {
            let serialization_failure = Failure::Conflict(Conflict::Serialization);
            assert_eq!(commit_failure(kind, &serialization), serialization_failure);
            assert_eq!(commit_failure(kind, &after_rollback), serialization_failure);
            assert_eq!(commit_failure(kind, &closed), Failure::Ambiguous);
            assert_eq!(commit_failure(kind, &unsent), Failure::Ambiguous);
            assert_eq!(commit_failure(kind, &lost), Failure::Ambiguous);
            assert_eq!(commit_failure(kind, &unique), Failure::Final);
            assert_eq!(commit_failure(kind, &broken), Failure::Final);
        }
        assert_eq!(
            commit_failure(BackendKind::Sqlite, &busy),
            Failure::Conflict(Conflict::Busy)
        );
        assert_eq!(commit_failure(BackendKind::Sqlite, &io), Failure::Final);

        // A statement's failure before COMMIT is never ambiguous.
        let query = Error::from(db_error(DatabaseErrorKind::ClosedConnection, "gone"));
        assert_eq!(
            commit_failure(BackendKind::Postgres, &query),
            Failure::Final
        );
    }

    #[test]
    fn attempts_stop_at_the_bound_and_on_final_failures() {
        let policy = RetryPolicy::new()
            .max_attempts(3)
            .base_delay(Duration::from_millis(1))
            .max_delay(Duration::from_millis(2));
        let conflict = Failure::Conflict(Conflict::Deadlock);
        let mut attempts = Attempts::new(policy);
        assert!(attempts.after(conflict, &pool()).is_some());
        assert!(attempts.after(conflict, &pool()).is_some());
        assert_eq!(attempts.after(conflict, &pool()), None);

        assert_eq!(Attempts::new(policy).after(Failure::Final, &pool()), None);
        assert_eq!(
            Attempts::new(policy).after(Failure::Ambiguous, &pool()),
            None
        );
        let idempotent = policy.idempotent(true);
        assert!(Attempts::new(idempotent)
            .after(Failure::Ambiguous, &pool())
            .is_some());

        assert_eq!(RetryPolicy::new().max_attempts(0).attempts(), 1);
    }

    #[test]
    fn attempts_stop_when_the_next_would_start_too_late() {
        let policy = RetryPolicy::new()
            .max_attempts(100)
            .max_elapsed(Duration::from_millis(50))
            .base_delay(Duration::from_millis(200))
            .max_delay(Duration::from_millis(200));
        // The first pause alone (100 ms at least) passes the 50 ms bound.
        let mut attempts = Attempts::new(policy);
        assert_eq!(
            attempts.after(Failure::Conflict(Conflict::Busy), &pool()),
            None
        );
    }

    proptest! {
        #[test]
        fn a_pause_is_half_to_all_of_the_capped_step(
            base_ms in 0u64..10_000,
            max_ms in 0u64..100_000,
            retry in 1u32..200,
            unit in 0.0f64..1.0,
        ) {
            let policy = RetryPolicy::new()
                .base_delay(Duration::from_millis(base_ms))
                .max_delay(Duration::from_millis(max_ms));
            let step = Duration::from_millis(base_ms)
                .saturating_mul(2u32.saturating_pow(retry - 1))
                .min(Duration::from_millis(max_ms));
            let delay = policy.delay(retry, unit);
            prop_assert!(delay <= step);
            prop_assert!(delay >= step / 2);
        }

        #[test]
        fn pauses_never_shrink_from_one_retry_to_the_next_at_the_same_draw(
            base_ms in 1u64..1_000,
            max_ms in 1u64..60_000,
            retry in 1u32..60,
            unit in 0.0f64..1.0,
        ) {
            let policy = RetryPolicy::new()
                .base_delay(Duration::from_millis(base_ms))
                .max_delay(Duration::from_millis(max_ms));
            prop_assert!(policy.delay(retry + 1, unit) >= policy.delay(retry, unit));
        }

        #[test]
        fn extreme_settings_do_not_panic(
            base in any::<u64>(),
            max in any::<u64>(),
            retry in any::<u32>(),
            unit in 0.0f64..1.0,
        ) {
            let policy = RetryPolicy::new()
                .base_delay(Duration::from_nanos(base))
                .max_delay(Duration::from_secs(max));
            prop_assert!(policy.delay(retry, unit) <= Duration::from_secs(max));
        }
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }
}
