//! The retrying closure forms: `write_with_retry` and its async twin run a write
//! transaction again, in a new session, after a conflict with another transaction
//! (see [`crate::retry`] for which failures count).

use super::DatabaseInstance;
use crate::backend::Backend;
use crate::error::Error;
use crate::retry::{commit_failure, failure_of, Attempts, Failure, RetryPolicy};
use std::future::Future;

impl<B: Backend> DatabaseInstance<B> {
    /// Runs `f` in a write transaction like [`write`](Self::write), and runs it
    /// again in a new transaction when the server gave it up because of another
    /// transaction: a serialization failure (PostgreSQL SQLSTATE 40001, from a
    /// statement or from `COMMIT`), a deadlock (PostgreSQL 40P01, MySQL/MariaDB
    /// 1213), a lock wait timeout (MySQL/MariaDB 1205) or a locked SQLite database.
    /// Pauses between runs and the bounds on their number and total time come from
    /// `policy`; see [`is_transaction_conflict`](crate::is_transaction_conflict) for
    /// how the failures are recognised.
    ///
    /// `f` may run several times, each time from the start on a fresh transaction:
    /// whatever it does outside the database, and anything it read, belongs to the
    /// run that returned. A conflict is recognised in `f`'s error by walking its
    /// [`source`](std::error::Error::source) chain to the first diesel error, so an
    /// error type that wraps this crate's [`Error`] or diesel's keeps working.
    ///
    /// A `COMMIT` whose connection failed gives no answer: the transaction may have
    /// been committed. The work then runs again only if `policy` is
    /// [`idempotent`](RetryPolicy::idempotent); otherwise the call returns
    /// [`Error::CommitOutcomeUnknown`]. A statement failing before `COMMIT` leaves
    /// no doubt (nothing was kept) but is not run again unless it is a conflict.
    ///
    /// ```
    /// # fn main() -> Result<(), dbinstance::Error> {
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// # let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// use dbinstance::RetryPolicy;
    /// use diesel::connection::SimpleConnection;
    /// # db.write(|conn| conn.batch_execute("CREATE TABLE counter (n INTEGER)").map_err(dbinstance::Error::from))?;
    /// db.write_with_retry(RetryPolicy::default(), |conn| {
    ///     conn.batch_execute("UPDATE counter SET n = n + 1")?;
    ///     Ok::<_, dbinstance::Error>(())
    /// })?;
    /// # Ok(()) }
    /// ```
    ///
    /// Each retry is logged at `debug` (the pool, the attempt, the reason, the
    /// pause), giving up at `warn`; never a statement or a value.
    ///
    /// # Errors
    /// `f`'s error when it is not a conflict, or is one after the last attempt the
    /// policy allows; this crate's (converted with `From`) when no session could be
    /// had, the commit failed, or [`Error::CommitOutcomeUnknown`].
    pub fn write_with_retry<T, E, F>(&self, policy: RetryPolicy, mut f: F) -> Result<T, E>
    where
        F: FnMut(&mut B::Connection) -> Result<T, E>,
        E: From<Error> + std::error::Error + 'static,
    {
        let mut attempts = Attempts::new(policy);
        loop {
            let mut session = self.get_db_cm_write()?;
            let pool = session.pool().clone();
            let (failure, error) = match f(&mut session) {
                Ok(value) => match session.commit() {
                    Ok(()) => return Ok(value),
                    Err(error) => commit_outcome(B::KIND, error),
                },
                Err(error) => {
                    // Reported by the session itself when it fails; the
                    // connection is then discarded.
                    let _ = session.rollback();
                    (failure_of(&error), error)
                }
            };
            match attempts.after(failure, &pool) {
                Some(delay) => std::thread::sleep(delay),
                None => return Err(error),
            }
        }
    }

    /// The async twin of [`write_with_retry`](Self::write_with_retry), taking an
    /// async closure that may run several times. It pauses with tokio's timer.
    ///
    /// ```no_run
    /// # async fn demo(db: dbinstance::DatabaseInstance<dbinstance::Sqlite>) -> Result<(), dbinstance::Error> {
    /// use dbinstance::RetryPolicy;
    /// use diesel_async::SimpleAsyncConnection;
    /// db.async_write_with_retry(RetryPolicy::default(), async |conn| {
    ///     conn.batch_execute("UPDATE counter SET n = n + 1").await?;
    ///     Ok::<_, dbinstance::Error>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The closure must capture by shared reference only (count its runs with an
    /// atomic): its future may not borrow from the closure itself, or its `Send`-ness
    /// could not be required. An `async move` closure, or one that changes what it
    /// captures, does not compile ("async closure does not implement `FnMut`
    /// because it captures state from its environment"); drop the `move`, and clone
    /// inside what a run must own.
    ///
    /// Cancelling the call is safe at any point: a transaction in flight is rolled
    /// back as for [`async_write`](Self::async_write).
    ///
    /// # Errors
    /// As [`write_with_retry`](Self::write_with_retry).
    pub async fn async_write_with_retry<T, E, F>(
        &self,
        policy: RetryPolicy,
        mut f: F,
    ) -> Result<T, E>
    where
        for<'r> F: AsyncFnMut(&'r mut B::AsyncConnection) -> Result<T, E>
            + SessionFnMut<&'r mut B::AsyncConnection, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + std::error::Error + Send + 'static,
    {
        let mut attempts = Attempts::new(policy);
        loop {
            let mut session = self.async_get_db_cm_write().await?;
            let pool = session.pool().clone();
            let (failure, error) = match f(&mut session).await {
                Ok(value) => match session.commit().await {
                    Ok(()) => return Ok(value),
                    Err(error) => commit_outcome(B::KIND, error),
                },
                Err(error) => {
                    // Awaited rather than left to the drop, so that the next run
                    // can have the same connection (SQLite has only one writer).
                    let _ = session.rollback().await;
                    (failure_of(&error), error)
                }
            };
            match attempts.after(failure, &pool) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            }
        }
    }
}

/// A failed commit's verdict, and the error to return if there is no next run.
fn commit_outcome<E: From<Error>>(kind: crate::BackendKind, error: Error) -> (Failure, E) {
    let failure = commit_failure(kind, &error);
    let error = match failure {
        Failure::Ambiguous => error.into_commit_outcome_unknown(),
        Failure::Conflict(_) | Failure::Final => error,
    };
    (failure, error.into())
}

/// [`SessionFn`](crate::SessionFn) for a closure that runs more than once: names
/// the future of an async closure called through `&mut`, so that its `Send`-ness
/// can be required. `async |conn| { ... }` implements it when its future borrows
/// nothing from the closure.
pub trait SessionFnMut<T, R>:
    AsyncFnMut(T) -> R + FnMut(T) -> <Self as SessionFnMut<T, R>>::Fut
{
    /// The closure's future.
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> SessionFnMut<T, R> for F
where
    F: AsyncFnMut(T) -> R + FnMut(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}
