//! r2d2, the blocking pool library: a manager that pings only when a connection sat
//! idle or its last query failed, and drops connections diesel reports broken.

use super::conn::Pooled;
use super::connector::{ConnectFailure, Recipe};
use super::metrics::{PoolCounters, PoolCounts, PoolState};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::id::PoolId;
use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The r2d2 connection manager.
pub struct SyncManager<B: Backend> {
    recipe: Arc<Recipe<B>>,
    /// The last failed connect, cleared by the next success: a checkout that would
    /// have to connect fails within the connect timeout instead of the pool timeout.
    last_failure: LastFailure,
}

type LastFailure = Arc<FailureState>;

/// The last failed connect, and a flag the checkout reads without locking.
#[derive(Debug, Default)]
struct FailureState {
    failing: AtomicBool,
    last: Mutex<Option<ConnectFailure>>,
}

impl FailureState {
    fn record(&self, result: Result<(), &ConnectFailure>) {
        self.failing.store(result.is_err(), Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = result.err().cloned();
    }

    fn last(&self) -> Option<ConnectFailure> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<B: Backend> std::fmt::Debug for SyncManager<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncManager")
            .field("recipe", &self.recipe)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> r2d2::ManageConnection for SyncManager<B> {
    type Connection = Pooled<B::Connection>;
    type Error = ConnectFailure;

    fn connect(&self) -> Result<Self::Connection, ConnectFailure> {
        let result = self.recipe.connect_sync();
        self.last_failure.record(result.as_ref().map(|_| ()));
        result
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), ConnectFailure> {
        let idle = conn.last_used.elapsed();
        if !self.recipe.accepts(conn, idle) {
            return Err(ConnectFailure::rejected());
        }
        if conn.needs_ping(&self.recipe.options, idle) {
            conn.batch_execute("SELECT 1")
                .map_err(|e| self.recipe.failure(&e))?;
            conn.ping_passed();
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        let broken = conn.is_marked_broken() || R2D2Connection::is_broken(&mut **conn);
        if broken {
            PoolCounters::bump(&self.recipe.counters.broken_discarded);
            tracing::debug!(pool = %self.recipe.id, "dbinstance: broken connection discarded");
        }
        broken
    }
}

/// One r2d2 pool and the id its errors carry.
pub(crate) struct SyncPool<B: Backend> {
    pool: r2d2::Pool<SyncManager<B>>,
    last_failure: LastFailure,
    pub(crate) id: PoolId,
    recipe: Arc<Recipe<B>>,
}

impl<B: Backend> std::fmt::Debug for SyncPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPool")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

pub(crate) type SyncConnection<B> = r2d2::PooledConnection<SyncManager<B>>;

impl<B: Backend> SyncPool<B> {
    /// Builds the pool without connecting; r2d2 opens `min_idle` connections in the background.
    pub(crate) fn new(
        recipe: Arc<Recipe<B>>,
        max_size: u32,
        threads: Arc<scheduled_thread_pool::ScheduledThreadPool>,
    ) -> Self {
        let options = &recipe.options;
        let id = recipe.id.clone();
        let last_failure = LastFailure::default();
        let manager = SyncManager {
            recipe: recipe.clone(),
            last_failure: last_failure.clone(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(options.min_idle.min(max_size)))
            .connection_timeout(options.pool_timeout)
            .max_lifetime(options.max_lifetime)
            .idle_timeout(options.idle_timeout)
            .test_on_check_out(true)
            .thread_pool(threads)
            // The recipe logs connect failures itself, once.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Self {
            pool,
            last_failure,
            id,
            recipe,
        }
    }

    /// Opens one connection now, so a bad URL or a server that is down fails the build.
    pub(crate) fn check_connect(&self) -> Result<()> {
        let conn = self
            .recipe
            .connect_sync()
            .map_err(|e| e.into_error(&self.id))?;
        drop(conn);
        Ok(())
    }

    pub(crate) fn get(&self) -> Result<SyncConnection<B>> {
        self.get_within(self.recipe.options.pool_timeout)
    }

    /// A checkout that waits at most `limit`, and at most the connect timeout when
    /// only a new connection can serve it (none is open, or connecting is failing):
    /// a server that is down is reported as such, not as an exhausted pool.
    pub(crate) fn get_within(&self, limit: Duration) -> Result<SyncConnection<B>> {
        let options = &self.recipe.options;
        // Lock-free on the hot path: the pool's state is read only when connecting
        // has never worked yet or is failing now.
        let never_connected = self.recipe.counters.opened.load(Ordering::Relaxed) == 0;
        let only_a_connect_helps = (never_connected
            || self.last_failure.failing.load(Ordering::Relaxed))
            && self.pool.state().idle_connections == 0;
        let timeout = if only_a_connect_helps {
            limit.min(options.connect_timeout)
        } else {
            limit
        };
        let span = self.recipe.checkout_span();
        let _entered = span.enter();
        self.pool
            .get_timeout(timeout)
            .map_err(|_| match self.last_failure.last() {
                Some(failure) => failure.into_error(&self.id),
                None => {
                    PoolCounters::bump(&self.recipe.counters.checkout_timeouts);
                    tracing::warn!(pool = %self.id, ?timeout, "dbinstance: checkout timed out");
                    Error::Timeout {
                        pool: self.id.clone(),
                        timeout,
                    }
                }
            })
    }

    pub(crate) fn min_idle(&self) -> u32 {
        self.recipe.options.min_idle.min(self.pool.max_size())
    }

    /// Closes the idle connections: they are taken out and dropped as broken.
    pub(crate) fn clear_idle(&self) -> usize {
        let mut taken = Vec::new();
        while self.pool.state().idle_connections > 0 {
            match self.pool.try_get() {
                Some(conn) => taken.push(conn),
                None => break,
            }
        }
        for conn in &taken {
            conn.mark_broken();
        }
        taken.len()
    }

    pub(crate) fn recipe(&self) -> &Arc<Recipe<B>> {
        &self.recipe
    }

    pub(crate) fn counts(&self) -> PoolCounts {
        self.recipe.counters.snapshot()
    }

    pub(crate) fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            size: state.connections,
            idle: state.idle_connections,
            in_use: state.connections - state.idle_connections,
            waiting: 0,
            max: self.pool.max_size(),
        }
    }
}
