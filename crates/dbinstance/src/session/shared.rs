//! The shared read session: a read-only connection other sessions use at the
//! same time, for reads pipelined with theirs.

use crate::id::PoolId;
use crate::pool::shared::SharedConnection;
use crate::pool::Recipe;
use crate::Postgres;
use diesel_async::AsyncPgConnection;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A read session from
/// [`async_get_db_cm_read_shared`](crate::DatabaseInstance::async_get_db_cm_read_shared):
/// a read-only connection that other tasks' shared sessions use at the same time.
/// It derefs to `&AsyncPgConnection` only, the way diesel-async pipelines: pass
/// `&mut &*session` where a query wants a connection. Statements of every
/// session on the connection travel together and the server answers them in
/// order, so many tasks' reads cost a few connections and no pool wait.
///
/// What cannot be shared is not offered: no transaction (that needs `&mut`), and
/// no session state. A statement that may change it (`SET`, a temporary table)
/// runs for every session on the connection until it is replaced, which happens
/// before the next session is handed it; use
/// [`async_get_db_cm_read`](crate::DatabaseInstance::async_get_db_cm_read) for
/// such work, and for a read that needs a consistent snapshot over several
/// statements. Dropping the session, or a query's future, at any point leaves the
/// connection usable for the others: the server's answer to a cancelled query is
/// read and dropped.
#[must_use = "a shared session keeps its connection open while it lives"]
pub struct SharedReadSession {
    conn: SharedConnection,
    recipe: Arc<Recipe<Postgres>>,
}

impl SharedReadSession {
    pub(crate) fn new(conn: SharedConnection, recipe: Arc<Recipe<Postgres>>) -> Self {
        Self { conn, recipe }
    }

    /// The read pool whose server this session reads from.
    pub fn pool(&self) -> &PoolId {
        &self.recipe.id
    }
}

impl Deref for SharedReadSession {
    type Target = AsyncPgConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl fmt::Debug for SharedReadSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedReadSession")
            .field("pool", &self.recipe.id.to_string())
            .finish_non_exhaustive()
    }
}
