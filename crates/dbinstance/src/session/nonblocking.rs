//! The async session guard, and what its drop does when a transaction is still
//! open: a `ROLLBACK` on the runtime, or closing the connection.

use super::{check_in, in_own_transaction, Core};
use crate::backend::{Backend, Driver};
use crate::error::Result;
use crate::id::{PoolId, Role, Stage};
use crate::pool::async_pool::AsyncConnection;
use crate::pool::metrics::PoolCounters;
use crate::pool::Recipe;
use crate::position::ReadYourWrites;
use diesel_async::{SimpleAsyncConnection, TransactionManager as _};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

type AsyncTm<B> =
    <<B as Backend>::AsyncConnection as diesel_async::AsyncConnection>::TransactionManager;

/// An async session from
/// [`async_get_db_cm_read`](crate::DatabaseInstance::async_get_db_cm_read) or
/// [`async_get_db_cm_write`](crate::DatabaseInstance::async_get_db_cm_write).
///
/// Like [`Session`](crate::Session), and safe to cancel: when a write session is
/// dropped with its transaction open (its future was cancelled, it returned early,
/// it panicked), a `ROLLBACK` runs on the runtime right away and the connection
/// goes back to the pool clean. If that cannot be done, the connection is closed
/// instead, which makes the server roll back. A connection never re-enters the
/// pool inside a transaction.
#[must_use = "a session returns its connection when dropped"]
pub struct AsyncSession<B: Backend> {
    /// `in_transaction` is set before `BEGIN` is sent, cleared only once `COMMIT`
    /// or `ROLLBACK` has completed.
    core: Core<B, AsyncConnection<B>>,
}

impl<B: Backend> AsyncSession<B> {
    pub(crate) async fn read(conn: AsyncConnection<B>, recipe: Arc<Recipe<B>>) -> Result<Self> {
        let transaction = recipe.options.transaction_pooling;
        let mut session = Self {
            core: Core::new(conn, recipe, transaction),
        };
        if transaction {
            // Boxed: only behind a transaction pooler.
            Box::pin(B::Driver::async_begin_read_only(&mut session))
                .await
                .map_err(|e| session.core.error(Stage::Begin, e))?;
        }
        Ok(session)
    }

    /// `tracker`, if any, is given the commit's position.
    pub(crate) async fn write(
        conn: AsyncConnection<B>,
        recipe: Arc<Recipe<B>>,
        tracker: Option<ReadYourWrites>,
    ) -> Result<Self> {
        let mut session = Self {
            core: Core::new(conn, recipe, true),
        };
        session.core.tracker = tracker;
        // Behind a transaction pooler `BEGIN` is awaited: a pooler may fail it
        // alone (no server connection in time) and still run what follows.
        let begun = if session.core.recipe.options.transaction_pooling {
            AsyncTm::<B>::begin_transaction(&mut *session).await
        } else {
            B::Driver::async_begin(&mut session).await
        };
        begun.map_err(|e| session.core.error(Stage::Begin, e))?;
        Ok(session)
    }

    /// The pool this session came from.
    pub fn pool(&self) -> &PoolId {
        self.core.id()
    }

    /// Whether this is a read or a write session.
    pub fn role(&self) -> Role {
        self.core.role()
    }

    /// Commits the write transaction and returns the connection to its pool.
    /// On a read session it only returns the connection, after ending its
    /// read-only transaction behind a transaction pooler (which a drop ends with a
    /// `ROLLBACK` on the runtime instead). From a handle with a
    /// [`ReadYourWrites`], it then reads the commit's position for the handle's
    /// later reads (one more round trip, only when the instance has replicas).
    ///
    /// # Errors
    /// [`Error::Session`](crate::Error::Session) with [`Stage::Commit`]; the
    /// transaction is rolled back.
    pub async fn commit(mut self) -> Result<()> {
        if !self.core.in_transaction {
            return Ok(());
        }
        match AsyncTm::<B>::commit_transaction(&mut *self).await {
            Ok(()) => {
                self.core.in_transaction = false;
                tracing::debug!(parent: &self.core.span, "dbinstance: committed");
                if self.core.tracker.is_some() {
                    let pin = self.core.recipe.options.transaction_pooling;
                    let position = in_own_transaction::<B, _>(&mut self, pin, |conn| {
                        Box::pin(B::Driver::async_commit_position(conn))
                    })
                    .await;
                    self.core.record_commit(position);
                }
                Ok(())
            }
            // Whatever diesel-async left open is rolled back by the drop.
            Err(e) => Err(self.core.error(Stage::Commit, e)),
        }
    }

    /// Rolls the write transaction back now, reporting any error.
    ///
    /// # Errors
    /// [`Error::Session`](crate::Error::Session) with [`Stage::Rollback`]; the
    /// connection is then discarded.
    pub async fn rollback(mut self) -> Result<()> {
        if !self.core.in_transaction {
            return Ok(());
        }
        match AsyncTm::<B>::rollback_transaction(&mut *self).await {
            Ok(()) => {
                self.core.in_transaction = false;
                Ok(())
            }
            Err(e) => Err(self.core.error(Stage::Rollback, e)),
        }
    }
}

impl<B: Backend> AsyncSession<B> {
    /// The async twin of [`Session::prepare_transaction`](super::Session).
    pub(crate) async fn prepare_transaction(&mut self, gid: &str) -> Result<()> {
        let prepared = self
            .batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
            .await;
        // Whatever happens to the reset, no transaction is left to roll back.
        self.core.in_transaction = false;
        let reset = match AsyncTm::<B>::rollback_transaction(&mut **self).await {
            Err(diesel::result::Error::NotInTransaction) => Ok(()),
            other => other,
        };
        prepared.map_err(|e| self.core.error(Stage::Commit, e))?;
        reset.map_err(|e| self.core.error(Stage::Rollback, e))
    }

    /// The async twin of [`Session::finish_prepared`](super::Session).
    pub(crate) async fn finish_prepared(mut self, gid: &str, commit: bool) -> Result<()> {
        let (verb, stage) = if commit {
            ("COMMIT", Stage::Commit)
        } else {
            ("ROLLBACK", Stage::Rollback)
        };
        self.batch_execute(&format!("{verb} PREPARED '{gid}'"))
            .await
            .map_err(|e| self.core.error(stage, e))
    }
}

impl<B: Backend> Deref for AsyncSession<B> {
    type Target = B::AsyncConnection;
    fn deref(&self) -> &B::AsyncConnection {
        self.core.conn()
    }
}

impl<B: Backend> DerefMut for AsyncSession<B> {
    fn deref_mut(&mut self) -> &mut B::AsyncConnection {
        self.core.conn_mut()
    }
}

impl<B: Backend> Drop for AsyncSession<B> {
    fn drop(&mut self) {
        let core = &mut self.core;
        let Some(mut conn) = core.conn.take() else {
            return;
        };
        if !core.in_transaction {
            check_in(&core.recipe, &mut conn);
            return;
        }
        tracing::debug!(parent: &core.span, "dbinstance: session dropped inside its transaction; rolling back");
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let guard = DiscardUnlessReturned(Some(conn));
                // A read session's transaction (behind a transaction pooler) ends
                // this way whenever it is not committed: that is no abort.
                if core.role() == Role::Write {
                    PoolCounters::bump(&core.recipe.counters.aborted_transactions);
                }
                runtime.spawn(abort_transaction(guard, core.recipe.clone()));
            }
            Err(_) => conn.discard(),
        }
    }
}

impl<B: Backend> fmt::Debug for AsyncSession<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("AsyncSession", f)
    }
}

/// Holds a connection whose transaction is being aborted; if the abort task is
/// itself dropped (the runtime shuts down), the connection is closed, not pooled.
struct DiscardUnlessReturned<B: Backend>(Option<AsyncConnection<B>>);

impl<B: Backend> Drop for DiscardUnlessReturned<B> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.discard();
        }
    }
}

/// Ends an abandoned transaction with a raw `ROLLBACK`: diesel-async's own bookkeeping
/// may be mid-statement after a cancellation, so it is reset once the server has
/// confirmed. The connection returns to the pool only on success.
async fn abort_transaction<B: Backend>(
    mut guard: DiscardUnlessReturned<B>,
    recipe: Arc<Recipe<B>>,
) {
    let Some(conn) = guard.0.as_mut() else { return };
    if !B::Driver::ROLLBACK_AFTER_CANCEL {
        // Dropping the guard closes the connection; the server rolls back at once.
        return;
    }
    if recipe.options.transaction_pooling && conn.statement_cut() {
        // Cut while its prepare was on the wire, a statement may stay prepared on
        // the pooler's server connection, a ROLLBACK notwithstanding, for a later
        // client's statement of the same name to collide with. Closing instead
        // makes PgBouncer close that server connection.
        return;
    }
    let timeout = recipe.options.connect_timeout;
    // The watch of a read connection takes this unannounced ROLLBACK for a change
    // of session state; only a change made before it should close the connection.
    let changed_before = conn.session_state_changed();
    let outcome = tokio::time::timeout(timeout, conn.batch_execute("ROLLBACK")).await;
    let keep = match outcome {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            let harmless = B::Driver::rollback_error_is_harmless(&error);
            if !harmless {
                tracing::debug!(pool = %recipe.id, %error, "dbinstance: rollback of a cancelled session failed; closing the connection");
            }
            harmless
        }
        Err(_) => false,
    };
    if keep {
        if let Some(mut conn) = guard.0.take() {
            if !changed_before {
                conn.accept_session_state();
            }
            B::Driver::reset_transaction_state(&mut conn);
            check_in(&recipe, &mut conn);
        }
    }
}
