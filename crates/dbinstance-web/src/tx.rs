//! The request transaction: one write transaction per request, opened on first use,
//! committed when the answer is a success and rolled back otherwise.

use crate::open::open_session;
use crate::rejection::{Rejection, RejectionKind};
use dbinstance::{AsyncSession, Backend, DatabaseInstance, Role};
use futures_util::FutureExt;
use http::StatusCode;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Where a request's transaction lives. The adapter's layer puts one in the
/// request's extensions and ends it with [`RequestTx::scope`]; each `DbTx` extracted
/// borrows it with [`RequestTx::enter`].
pub struct RequestTx<B: Backend>(Arc<Mutex<Option<AsyncSession<B>>>>);

impl<B: Backend> RequestTx<B> {
    /// An empty slot: no transaction until the first [`enter`](Self::enter).
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }

    /// The transaction, opened now (on a task of its own, see
    /// [`open_session`]) if this request has none yet.
    ///
    /// # Errors
    /// [`RejectionKind::TxInUse`] while another [`TxGuard`] of the request is alive;
    /// the rejection of `db` when the instance is missing; those of
    /// [`open_session`].
    pub async fn enter(
        &self,
        db: Result<DatabaseInstance<B>, Rejection>,
    ) -> Result<TxGuard<B>, Rejection> {
        let mut guard = self
            .0
            .clone()
            .try_lock_owned()
            .map_err(|_| Rejection::server(RejectionKind::TxInUse))?;
        if guard.is_none() {
            *guard = Some(open_session(db?, Role::Write).await?);
        }
        Ok(TxGuard { guard })
    }

    /// Runs the rest of the request (`inner`) and ends the transaction after it:
    /// commit when `status` of the answer is 2xx, rollback on any other status, on an
    /// error from `inner`, and on a panic (which is passed on after the rollback).
    ///
    /// Returns `Ok(Ok(answer))` when the answer stands, `Ok(Err((answer, rejection)))`
    /// when it must be replaced by `rejection`: the commit failed (so a client never
    /// sees a 2xx for work that was not kept), or a `DbTx` outlived its request.
    pub async fn scope<R, E>(
        self,
        inner: impl Future<Output = Result<R, E>>,
        status: impl FnOnce(&R) -> StatusCode,
    ) -> Result<Result<R, (R, Rejection)>, E> {
        match AssertUnwindSafe(inner).catch_unwind().await {
            Ok(Ok(answer)) => match self.finish(status(&answer)).await {
                Ok(()) => Ok(Ok(answer)),
                Err(rejection) => Ok(Err((answer, rejection))),
            },
            Ok(Err(error)) => {
                self.abort("the inner service failed").await;
                Err(error)
            }
            Err(panic) => {
                self.abort("the handler panicked").await;
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Ends the transaction, if the request opened one, after an answer of `status`.
    async fn finish(&self, status: StatusCode) -> Result<(), Rejection> {
        let session = match self.0.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(_) => {
                // The handler moved its DbTx somewhere that outlives the request: the
                // work is rolled back when that copy is dropped, so it did not succeed.
                return Err(Rejection::server(RejectionKind::TxOutlivedRequest));
            }
        };
        let Some(session) = session else {
            return Ok(());
        };
        if status.is_success() {
            session.commit().await.map_err(Rejection::from)
        } else {
            if let Err(error) = session.rollback().await {
                tracing::warn!(%error, "dbinstance: rollback after a {status} answer failed");
            }
            Ok(())
        }
    }

    /// Rolls the transaction back after an error or a panic.
    async fn abort(&self, why: &'static str) {
        let session = match self.0.try_lock() {
            Ok(mut guard) => guard.take(),
            // Held elsewhere: rolled back when that DbTx is dropped.
            Err(_) => None,
        };
        if let Some(session) = session {
            tracing::debug!("dbinstance: {why}; rolling the request's transaction back");
            if let Err(error) = session.rollback().await {
                tracing::warn!(%error, "dbinstance: rollback after an aborted request failed");
            }
        }
    }
}

impl<B: Backend> Default for RequestTx<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Clone for RequestTx<B> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<B: Backend> fmt::Debug for RequestTx<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTx")
            .field("backend", &B::KIND)
            .finish_non_exhaustive()
    }
}

/// A handle on the request's open transaction; derefs to the backend's diesel-async
/// connection. One at a time per request.
#[must_use = "the transaction is ended by the layer once the handler returns"]
pub struct TxGuard<B: Backend> {
    guard: OwnedMutexGuard<Option<AsyncSession<B>>>,
}

impl<B: Backend> Deref for TxGuard<B> {
    type Target = B::AsyncConnection;
    fn deref(&self) -> &B::AsyncConnection {
        self.guard
            .as_ref()
            .map(|session| &**session)
            .unwrap_or_else(|| unreachable!("a TxGuard always holds a session"))
    }
}

impl<B: Backend> DerefMut for TxGuard<B> {
    fn deref_mut(&mut self) -> &mut B::AsyncConnection {
        self.guard
            .as_mut()
            .map(|session| &mut **session)
            .unwrap_or_else(|| unreachable!("a TxGuard always holds a session"))
    }
}

impl<B: Backend> fmt::Debug for TxGuard<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxGuard")
            .field("session", &*self.guard)
            .finish()
    }
}
