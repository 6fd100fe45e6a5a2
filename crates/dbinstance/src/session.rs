//! The session guards: owned, pooled connections that deref to the diesel
//! connection. Write sessions run in a transaction that only `commit` keeps.

use crate::backend::{Backend, Driver};
use crate::error::{Error, Result};
use crate::id::{PoolId, Role, Stage};
use crate::pool::async_pool::AsyncConnection;
use crate::pool::metrics::PoolCounters;
use crate::pool::sync_pool::SyncConnection;
use crate::pool::Recipe;
use diesel::connection::TransactionManager as _;
use diesel_async::{SimpleAsyncConnection, TransactionManager as _};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

type SyncTm<B> = <<B as Backend>::Connection as diesel::Connection>::TransactionManager;
type AsyncTm<B> =
    <<B as Backend>::AsyncConnection as diesel_async::AsyncConnection>::TransactionManager;

/// A blocking session from [`get_db_cm_read`](crate::DatabaseInstance::get_db_cm_read)
/// or [`get_db_cm_write`](crate::DatabaseInstance::get_db_cm_write).
///
/// Derefs to the backend's diesel connection. A write session holds an open
/// transaction: [`commit`](Self::commit) keeps its work, anything else (an early
/// return, `?`, a panic) rolls it back when the session is dropped. A read session
/// is read-only on the server and returns to its pool on drop.
#[must_use = "a session returns its connection when dropped"]
pub struct Session<B: Backend> {
    conn: Option<SyncConnection<B>>,
    span: tracing::Span,
    recipe: Arc<Recipe<B>>,
    in_transaction: bool,
}

impl<B: Backend> Session<B> {
    fn id(&self) -> &PoolId {
        &self.recipe.sync_id
    }

    pub(crate) fn read(conn: SyncConnection<B>, recipe: Arc<Recipe<B>>) -> Self {
        Self {
            conn: Some(conn),
            span: recipe.session_span(&recipe.sync_id),
            recipe,
            in_transaction: false,
        }
    }

    pub(crate) fn write(conn: SyncConnection<B>, recipe: Arc<Recipe<B>>) -> Result<Self> {
        let mut session = Self {
            conn: Some(conn),
            span: recipe.session_span(&recipe.sync_id),
            recipe,
            in_transaction: false,
        };
        SyncTm::<B>::begin_transaction(&mut *session)
            .map_err(|e| session.error(Stage::Begin, e))?;
        session.in_transaction = true;
        Ok(session)
    }

    /// The pool this session came from.
    pub fn pool(&self) -> &PoolId {
        self.id()
    }

    /// Whether this is a read or a write session.
    pub fn role(&self) -> Role {
        self.id().role
    }

    /// Commits the write transaction and returns the connection to its pool.
    /// On a read session it only returns the connection.
    ///
    /// # Errors
    /// [`Error::Session`] with [`Stage::Commit`]; the transaction is rolled back.
    pub fn commit(mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        SyncTm::<B>::commit_transaction(&mut *self).map_err(|e| {
            // diesel leaves the transaction open when COMMIT itself fails.
            self.in_transaction = true;
            self.error(Stage::Commit, e)
        })?;
        tracing::debug!(parent: &self.span, "dbinstance: committed");
        Ok(())
    }

    /// Rolls the write transaction back now, reporting any error (dropping the
    /// session does the same silently).
    ///
    /// # Errors
    /// [`Error::Session`] with [`Stage::Rollback`]; the connection is then discarded.
    pub fn rollback(mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        SyncTm::<B>::rollback_transaction(&mut *self).map_err(|e| {
            self.mark_broken();
            self.error(Stage::Rollback, e)
        })
    }

    fn mark_broken(&self) {
        if let Some(conn) = &self.conn {
            conn.mark_broken();
        }
    }

    fn error(&self, stage: Stage, source: diesel::result::Error) -> Error {
        Error::Session {
            pool: self.id().clone(),
            stage,
            source,
        }
    }
}

impl<B: Backend> Deref for Session<B> {
    type Target = B::Connection;
    fn deref(&self) -> &B::Connection {
        self.conn
            .as_ref()
            .map(|c| &***c)
            .unwrap_or_else(|| unreachable!("a live session has a connection"))
    }
}

impl<B: Backend> DerefMut for Session<B> {
    fn deref_mut(&mut self) -> &mut B::Connection {
        self.conn
            .as_mut()
            .map(|c| &mut ***c)
            .unwrap_or_else(|| unreachable!("a live session has a connection"))
    }
}

impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            tracing::debug!(parent: &self.span, "dbinstance: session dropped inside its transaction; rolling back");
            if let Err(error) = SyncTm::<B>::rollback_transaction(&mut **self) {
                tracing::warn!(pool = %self.recipe.sync_id, %error, "dbinstance: rollback on drop failed; discarding the connection");
                self.mark_broken();
            }
        }
        if let Some(conn) = &mut self.conn {
            conn.last_used = Instant::now();
            self.recipe.checked_in(&self.recipe.sync_id, conn);
        }
    }
}

impl<B: Backend> fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("pool", &self.id().to_string())
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
    }
}

/// An async session from
/// [`async_get_db_cm_read`](crate::DatabaseInstance::async_get_db_cm_read) or
/// [`async_get_db_cm_write`](crate::DatabaseInstance::async_get_db_cm_write).
///
/// Like [`Session`], and safe to cancel: when a write session is dropped with its
/// transaction open (its future was cancelled, it returned early, it panicked), a
/// `ROLLBACK` runs on the runtime right away and the connection goes back to the
/// pool clean. If that cannot be done, the connection is closed instead, which makes
/// the server roll back. A connection never re-enters the pool inside a transaction.
#[must_use = "a session returns its connection when dropped"]
pub struct AsyncSession<B: Backend> {
    conn: Option<AsyncConnection<B>>,
    span: tracing::Span,
    recipe: Arc<Recipe<B>>,
    /// A transaction is or may be open: set before `BEGIN` is sent, cleared only
    /// once `COMMIT` or `ROLLBACK` has completed.
    in_transaction: bool,
}

impl<B: Backend> AsyncSession<B> {
    fn id(&self) -> &PoolId {
        &self.recipe.async_id
    }

    pub(crate) fn read(conn: AsyncConnection<B>, recipe: Arc<Recipe<B>>) -> Self {
        Self {
            conn: Some(conn),
            span: recipe.session_span(&recipe.async_id),
            recipe,
            in_transaction: false,
        }
    }

    pub(crate) async fn write(conn: AsyncConnection<B>, recipe: Arc<Recipe<B>>) -> Result<Self> {
        let mut session = Self {
            conn: Some(conn),
            span: recipe.session_span(&recipe.async_id),
            recipe,
            in_transaction: true,
        };
        AsyncTm::<B>::begin_transaction(&mut *session)
            .await
            .map_err(|e| session.error(Stage::Begin, e))?;
        Ok(session)
    }

    /// The pool this session came from.
    pub fn pool(&self) -> &PoolId {
        self.id()
    }

    /// Whether this is a read or a write session.
    pub fn role(&self) -> Role {
        self.id().role
    }

    /// Commits the write transaction and returns the connection to its pool.
    /// On a read session it only returns the connection.
    ///
    /// # Errors
    /// [`Error::Session`] with [`Stage::Commit`]; the transaction is rolled back.
    pub async fn commit(mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        match AsyncTm::<B>::commit_transaction(&mut *self).await {
            Ok(()) => {
                self.in_transaction = false;
                tracing::debug!(parent: &self.span, "dbinstance: committed");
                Ok(())
            }
            // Whatever diesel-async left open is rolled back by the drop.
            Err(e) => Err(self.error(Stage::Commit, e)),
        }
    }

    /// Rolls the write transaction back now, reporting any error.
    ///
    /// # Errors
    /// [`Error::Session`] with [`Stage::Rollback`]; the connection is then discarded.
    pub async fn rollback(mut self) -> Result<()> {
        if !self.in_transaction {
            return Ok(());
        }
        match AsyncTm::<B>::rollback_transaction(&mut *self).await {
            Ok(()) => {
                self.in_transaction = false;
                Ok(())
            }
            Err(e) => Err(self.error(Stage::Rollback, e)),
        }
    }

    fn error(&self, stage: Stage, source: diesel::result::Error) -> Error {
        Error::Session {
            pool: self.id().clone(),
            stage,
            source,
        }
    }
}

impl<B: Backend> Deref for AsyncSession<B> {
    type Target = B::AsyncConnection;
    fn deref(&self) -> &B::AsyncConnection {
        self.conn
            .as_ref()
            .map(|c| &***c)
            .unwrap_or_else(|| unreachable!("a live session has a connection"))
    }
}

impl<B: Backend> DerefMut for AsyncSession<B> {
    fn deref_mut(&mut self) -> &mut B::AsyncConnection {
        self.conn
            .as_mut()
            .map(|c| &mut ***c)
            .unwrap_or_else(|| unreachable!("a live session has a connection"))
    }
}

impl<B: Backend> Drop for AsyncSession<B> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.in_transaction {
            conn.touch();
            self.recipe.checked_in(&self.recipe.async_id, &conn);
            return;
        }
        tracing::debug!(parent: &self.span, "dbinstance: session dropped inside its transaction; rolling back");
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let guard = DiscardUnlessReturned(Some(conn));
                PoolCounters::bump(&self.recipe.async_counters.aborted_transactions);
                runtime.spawn(abort_transaction(guard, self.recipe.clone()));
            }
            Err(_) => conn.discard(),
        }
    }
}

impl<B: Backend> fmt::Debug for AsyncSession<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSession")
            .field("pool", &self.id().to_string())
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
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
    let timeout = recipe.options.connect_timeout;
    let outcome = tokio::time::timeout(timeout, conn.batch_execute("ROLLBACK")).await;
    let keep = match outcome {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            let harmless = B::Driver::rollback_error_is_harmless(&error);
            if !harmless {
                tracing::debug!(pool = %recipe.async_id, %error, "dbinstance: rollback of a cancelled session failed; closing the connection");
            }
            harmless
        }
        Err(_) => false,
    };
    if keep {
        if let Some(mut conn) = guard.0.take() {
            B::Driver::reset_transaction_state(&mut conn);
            conn.touch();
            recipe.checked_in(&recipe.async_id, &conn);
        }
    }
}
