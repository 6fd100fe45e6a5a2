//! The session guards: owned, pooled connections that deref to the diesel
//! connection. Write sessions run in a transaction that only `commit` keeps.
//!
//! Both guards are a [`Core`] (the connection, the pool it returns to, the span,
//! whether a transaction may be open) plus their own transaction calls:
//! `blocking` for [`Session`], `nonblocking` for [`AsyncSession`] and its
//! cancellation-safe drop. `own_transaction`: the async reads made outside a
//! session, in a transaction behind a transaction pooler. `shared`:
//! [`SharedReadSession`], a read-only connection many sessions pipeline over.

mod blocking;
mod nonblocking;
mod own_transaction;
#[cfg(feature = "postgres")]
mod shared;

pub use blocking::Session;
pub use nonblocking::AsyncSession;
pub(crate) use own_transaction::in_own_transaction;
#[cfg(feature = "postgres")]
pub use shared::SharedReadSession;

use crate::backend::Backend;
use crate::error::Error;
use crate::id::{PoolId, Role, Stage};
use crate::pool::{Pooled, Recipe};
use crate::position::{CommitPosition, ReadYourWrites};
use std::fmt;
use std::ops::DerefMut;
use std::sync::Arc;

/// What both session guards hold.
struct Core<B: Backend, C> {
    /// Taken only by the async drop, which hands it to the rollback task.
    conn: Option<C>,
    span: tracing::Span,
    recipe: Arc<Recipe<B>>,
    /// A transaction is or may be open.
    in_transaction: bool,
    /// Where a write session records its commit's position for later reads.
    tracker: Option<ReadYourWrites>,
}

impl<B: Backend, X, C: DerefMut<Target = Pooled<X>>> Core<B, C> {
    fn new(conn: C, recipe: Arc<Recipe<B>>, in_transaction: bool) -> Self {
        Self {
            conn: Some(conn),
            span: recipe.session_span(),
            recipe,
            in_transaction,
            tracker: None,
        }
    }

    /// After a commit: hands its position to the tracker, if the session has one.
    /// A position that cannot be read sends the tracker's reads to the primary.
    fn record_commit(&self, position: diesel::QueryResult<Option<CommitPosition>>) {
        let Some(tracker) = &self.tracker else {
            return;
        };
        match position {
            Ok(Some(position)) => tracker.observe(&position),
            Ok(None) | Err(_) => {
                tracing::warn!(parent: &self.span, "dbinstance: the commit's position could not be read; reads after it go to the primary");
                tracker.observe_unknown();
            }
        }
    }

    fn id(&self) -> &PoolId {
        &self.recipe.id
    }

    fn role(&self) -> Role {
        self.id().role
    }

    fn error(&self, stage: Stage, source: diesel::result::Error) -> Error {
        Error::Session {
            pool: self.id().clone(),
            stage,
            source,
        }
    }

    fn conn(&self) -> &X {
        self.conn
            .as_deref()
            .map(|c| &**c)
            .unwrap_or_else(|| unreachable!("a live session has a connection"))
    }

    fn conn_mut(&mut self) -> &mut X {
        self.conn
            .as_deref_mut()
            .map(|c| &mut **c)
            .unwrap_or_else(|| unreachable!("a live session has a connection"))
    }

    fn debug(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("pool", &self.id().to_string())
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
    }
}

/// Hands a connection back (see [`Recipe::checked_in`]).
fn check_in<B: Backend, X>(recipe: &Recipe<B>, conn: &mut Pooled<X>) {
    recipe.checked_in(conn);
}
