//! The blocking session guard.

use super::{check_in, Core};
use crate::backend::{Backend, Driver};
use crate::error::Result;
use crate::id::{PoolId, Role, Stage};
use crate::pool::r2d2::SyncConnection;
use crate::pool::Recipe;
use crate::position::ReadYourWrites;
use diesel::connection::TransactionManager as _;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

type SyncTm<B> = <<B as Backend>::Connection as diesel::Connection>::TransactionManager;

/// A blocking session from [`get_db_cm_read`](crate::DatabaseInstance::get_db_cm_read)
/// or [`get_db_cm_write`](crate::DatabaseInstance::get_db_cm_write).
///
/// Derefs to the backend's diesel connection. A write session holds an open
/// transaction: [`commit`](Self::commit) keeps its work, anything else (an early
/// return, `?`, a panic) rolls it back when the session is dropped. A read session
/// is read-only on the server and returns to its pool on drop; behind a
/// transaction pooler (`transaction_pooling`) it is a read-only transaction, which
/// [`commit`](Self::commit) or the drop ends.
#[must_use = "a session returns its connection when dropped"]
pub struct Session<B: Backend> {
    core: Core<B, SyncConnection<B>>,
}

impl<B: Backend> Session<B> {
    pub(crate) fn read(conn: SyncConnection<B>, recipe: Arc<Recipe<B>>) -> Result<Self> {
        let mut session = Self::plain(conn, recipe);
        if session.core.recipe.options.transaction_pooling {
            B::Driver::begin_read_only(&mut session)
                .map_err(|e| session.core.error(Stage::Begin, e))?;
            session.core.in_transaction = true;
        }
        Ok(session)
    }

    /// A session outside any transaction.
    fn plain(conn: SyncConnection<B>, recipe: Arc<Recipe<B>>) -> Self {
        Self {
            core: Core::new(conn, recipe, false),
        }
    }

    /// `tracker`, if any, is given the commit's position.
    pub(crate) fn write(
        conn: SyncConnection<B>,
        recipe: Arc<Recipe<B>>,
        tracker: Option<ReadYourWrites>,
    ) -> Result<Self> {
        let mut session = Self::plain(conn, recipe);
        session.core.tracker = tracker;
        SyncTm::<B>::begin_transaction(&mut *session)
            .map_err(|e| session.core.error(Stage::Begin, e))?;
        session.core.in_transaction = true;
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
    /// read-only transaction behind a transaction pooler. From a handle with a
    /// [`ReadYourWrites`], it then reads the commit's position for the handle's
    /// later reads (one more round trip, only when the instance has replicas).
    ///
    /// # Errors
    /// [`Error::Session`](crate::Error::Session) with [`Stage::Commit`]; the
    /// transaction is rolled back.
    pub fn commit(mut self) -> Result<()> {
        if !self.core.in_transaction {
            return Ok(());
        }
        self.core.in_transaction = false;
        SyncTm::<B>::commit_transaction(&mut *self).map_err(|e| {
            // diesel may leave the transaction open when COMMIT itself fails (its
            // own rollback failed too): the drop then rolls back or discards.
            self.core.in_transaction = true;
            self.core.error(Stage::Commit, e)
        })?;
        tracing::debug!(parent: &self.core.span, "dbinstance: committed");
        if self.core.tracker.is_some() {
            let position = B::Driver::commit_position(&mut *self);
            self.core.record_commit(position);
        }
        Ok(())
    }

    /// Rolls the write transaction back now, reporting any error (dropping the
    /// session does the same silently).
    ///
    /// # Errors
    /// [`Error::Session`](crate::Error::Session) with [`Stage::Rollback`]; the
    /// connection is then discarded.
    pub fn rollback(mut self) -> Result<()> {
        if !self.core.in_transaction {
            return Ok(());
        }
        self.core.in_transaction = false;
        SyncTm::<B>::rollback_transaction(&mut *self).map_err(|e| {
            self.mark_broken();
            self.core.error(Stage::Rollback, e)
        })
    }

    /// PostgreSQL's first phase of a two-phase commit: `PREPARE TRANSACTION`
    /// hands the transaction to the server under `gid` (a failed one rolls it
    /// back). Either way the session holds no transaction afterwards. diesel
    /// usually notices that from the server's reply; where it does not, its
    /// bookkeeping is set back with a `ROLLBACK`, which finds no transaction and
    /// only warns. [`finish_prepared`](Self::finish_prepared) ends it.
    pub(crate) fn prepare_transaction(&mut self, gid: &str) -> Result<()> {
        use diesel::connection::SimpleConnection as _;
        let prepared = self.batch_execute(&format!("PREPARE TRANSACTION '{gid}'"));
        self.core.in_transaction = false;
        let reset = match SyncTm::<B>::rollback_transaction(&mut *self) {
            Err(diesel::result::Error::NotInTransaction) => Ok(()),
            other => other,
        };
        prepared.map_err(|e| self.core.error(Stage::Commit, e))?;
        reset.map_err(|e| self.core.error(Stage::Rollback, e))
    }

    /// The second phase: `COMMIT PREPARED` or `ROLLBACK PREPARED` of `gid`.
    pub(crate) fn finish_prepared(mut self, gid: &str, commit: bool) -> Result<()> {
        use diesel::connection::SimpleConnection as _;
        let (verb, stage) = if commit {
            ("COMMIT", Stage::Commit)
        } else {
            ("ROLLBACK", Stage::Rollback)
        };
        self.batch_execute(&format!("{verb} PREPARED '{gid}'"))
            .map_err(|e| self.core.error(stage, e))
    }

    fn mark_broken(&self) {
        if let Some(conn) = &self.core.conn {
            conn.mark_broken();
        }
    }
}

impl<B: Backend> Deref for Session<B> {
    type Target = B::Connection;
    fn deref(&self) -> &B::Connection {
        self.core.conn()
    }
}

impl<B: Backend> DerefMut for Session<B> {
    fn deref_mut(&mut self) -> &mut B::Connection {
        self.core.conn_mut()
    }
}

impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        if self.core.in_transaction {
            self.core.in_transaction = false;
            tracing::debug!(parent: &self.core.span, "dbinstance: session dropped inside its transaction; rolling back");
            match SyncTm::<B>::rollback_transaction(&mut **self) {
                // A failed COMMIT has usually ended the transaction already:
                // PostgreSQL leaves it on any COMMIT error, and diesel rolls back
                // after a failed COMMIT on the other backends. The connection is fine.
                Ok(()) | Err(diesel::result::Error::NotInTransaction) => {}
                Err(error) => {
                    tracing::warn!(pool = %self.core.id(), %error, "dbinstance: rollback on drop failed; discarding the connection");
                    self.mark_broken();
                }
            }
        }
        let core = &mut self.core;
        if let Some(conn) = &mut core.conn {
            check_in(&core.recipe, conn);
        }
    }
}

impl<B: Backend> fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.debug("Session", f)
    }
}
