//! The async connection manager, one for both async pool libraries (as
//! diesel-async shares one between its pool integrations): it connects (through
//! the orphanage for deadpool), and validates by flags, pinging only when a connection sat idle
//! or its last query failed.

use super::conn::Pooled;
use super::connector::Recipe;
use super::failure::ConnectFailure;
#[cfg(feature = "deadpool")]
use super::orphanage::Orphanage;
use crate::backend::Backend;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::SimpleAsyncConnection;
use std::sync::Arc;

/// The connection manager shared by the deadpool and bb8 flavours.
pub struct AsyncManager<B: Backend> {
    pub(crate) recipe: Arc<Recipe<B>>,
    /// deadpool connects inside its caller's future; bb8 in a task of its own.
    #[cfg(feature = "deadpool")]
    pub(crate) orphans: Arc<Orphanage<B::AsyncConnection>>,
}

impl<B: Backend> std::fmt::Debug for AsyncManager<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncManager")
            .field("recipe", &self.recipe)
            .finish()
    }
}

impl<B: Backend> AsyncManager<B> {
    /// The fast check: no query, only the flags and the driver's own state.
    pub(crate) fn has_broken(&self, conn: &mut Pooled<B::AsyncConnection>) -> bool {
        let driver_broken = PoolableConnection::is_broken(&mut **conn);
        conn.must_close(driver_broken, &self.recipe.counters, &self.recipe.id)
    }

    /// The checkout check: the fast one, the `before_checkout` hook, then a ping
    /// when the connection sat idle or its last query failed.
    pub(crate) async fn validate(
        &self,
        conn: &mut Pooled<B::AsyncConnection>,
        idle: std::time::Duration,
    ) -> Result<(), ConnectFailure> {
        if self.has_broken(conn) {
            return Err(ConnectFailure::new("connection is broken"));
        }
        if !self.recipe.accepts(conn, idle) {
            return Err(ConnectFailure::rejected());
        }
        if conn.needs_ping(&self.recipe.options, idle) {
            // Bounded here rather than by the pool library, so that a checkout
            // that does not ping (nearly all) arms no timer.
            let limit = self.recipe.options.connect_timeout;
            // Boxed: a rare path that would otherwise swell every checkout's future.
            let ping = Box::pin(tokio::time::timeout(limit, conn.batch_execute("SELECT 1")));
            match ping.await {
                Ok(answer) => answer.map_err(|e| self.recipe.failure(&e))?,
                Err(_) => {
                    // Cut mid-statement: the connection's state is unknown.
                    conn.mark_broken();
                    return Err(ConnectFailure::unanswered("a ping", limit));
                }
            }
            conn.ping_passed();
        }
        Ok(())
    }
}
