//! r2d2, the blocking pool library: a manager that pings only when a connection sat
//! idle or its last query failed, and drops connections diesel reports broken.
//!
//! A blocking driver has no per-statement client timeout that diesel reaches, so a
//! server that stops answering on an open connection would hold a ping until the
//! operating system gives up on the socket. A network server's ping therefore runs
//! in a thread of its own that the checkout waits for at most `connect_timeout`
//! ([`SyncPool::within`]); SQLite, which has no network, pings in place.

use super::conn::Pooled;
use super::connector::Recipe;
use super::failure::ConnectFailure;
use super::instruments::Moment;
use super::metrics::{PoolCounts, PoolState};
use super::turns::{InTurn, Turns};
use crate::backend::Backend;
use crate::error::Result;
use crate::id::PoolId;
use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The r2d2 connection manager.
pub struct SyncManager<B: Backend> {
    recipe: Arc<Recipe<B>>,
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
        self.recipe.connect_sync()
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), ConnectFailure> {
        let idle = conn.hand_out();
        if !self.recipe.accepts(conn, idle) {
            return Err(ConnectFailure::rejected());
        }
        if conn.needs_ping(&self.recipe.options, idle) {
            if B::KIND.has_network() {
                // r2d2 lends the connection only for this call: the checkout,
                // which owns it next, pings it within a bound.
                conn.defer_ping();
            } else {
                conn.batch_execute("SELECT 1")
                    .map_err(|e| self.recipe.failure(&e))?;
                conn.ping_passed();
            }
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        let driver_broken = R2D2Connection::is_broken(&mut **conn);
        conn.must_close(driver_broken, &self.recipe.counters, &self.recipe.id)
    }
}

/// One r2d2 pool and the id its errors carry. The r2d2 pool itself is built at the
/// first blocking checkout: r2d2 starts opening `min_idle` connections as soon as
/// it is built, and an instance used only from async code should hold no blocking
/// connection.
pub(crate) struct SyncPool<B: Backend> {
    pool: OnceLock<r2d2::Pool<SyncManager<B>>>,
    max_size: u32,
    threads: Arc<scheduled_thread_pool::ScheduledThreadPool>,
    pub(crate) id: PoolId,
    recipe: Arc<Recipe<B>>,
    /// Network servers only: a checkout in-process on SQLite takes microseconds,
    /// and its turns would cost more than the queue they order.
    turns: Option<Turns>,
}

impl<B: Backend> std::fmt::Debug for SyncPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPool")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A connection checked out of a [`SyncPool`], with the checkout's turn.
pub(crate) type SyncConnection<B> = InTurn<r2d2::PooledConnection<SyncManager<B>>>;

/// r2d2 retries a failed connect after a pause that doubles up to half its
/// `connection_timeout`, which it uses for nothing else here (checkouts pass their
/// own timeout). Left at `pool_timeout`, a server back after an outage would wait
/// up to 15 s for its blocking pools to reconnect. Behind a breaker, a retry while
/// the server is known down costs no network round trip, so retry every 250 ms;
/// without one (SQLite), keep r2d2's pace, which keeps a failing connect from
/// flooding the log.
fn retry_cap<B: Backend>(recipe: &Recipe<B>) -> Duration {
    if recipe.breaker.trips() {
        Duration::from_millis(500)
    } else {
        recipe.options.pool_timeout
    }
}

impl<B: Backend> SyncPool<B> {
    /// Sets the pool up without connecting or building the r2d2 pool.
    pub(crate) fn new(
        recipe: Arc<Recipe<B>>,
        max_size: u32,
        threads: Arc<scheduled_thread_pool::ScheduledThreadPool>,
    ) -> Self {
        Self {
            pool: OnceLock::new(),
            max_size,
            threads,
            id: recipe.id.clone(),
            turns: B::KIND.has_network().then(|| Turns::new(max_size)),
            recipe,
        }
    }

    /// The r2d2 pool, built on first use; r2d2 then opens `min_idle` connections
    /// in the background.
    fn pool(&self) -> &r2d2::Pool<SyncManager<B>> {
        self.pool.get_or_init(|| {
            let options = &self.recipe.options;
            r2d2::Pool::builder()
                .max_size(self.max_size)
                .min_idle(Some(options.min_idle.min(self.max_size)))
                .connection_timeout(retry_cap(&self.recipe))
                .max_lifetime(options.max_lifetime)
                .idle_timeout(options.idle_timeout)
                .test_on_check_out(true)
                .thread_pool(self.threads.clone())
                // The recipe logs connect failures itself, once.
                .error_handler(Box::new(r2d2::NopErrorHandler))
                .build_unchecked(SyncManager {
                    recipe: self.recipe.clone(),
                })
        })
    }

    /// Opens one connection now, so a bad URL or a server that is down fails the build.
    pub(crate) fn check_connect(&self) -> Result<()> {
        self.recipe.check_honoured()?;
        self.recipe.check_sync().map_err(|e| e.into_error(&self.id))
    }

    pub(crate) fn get(&self) -> Result<SyncConnection<B>> {
        self.get_within(self.recipe.options.pool_timeout)
    }

    /// A checkout that waits at most `limit`, and at most the connect timeout when
    /// only a new connection can serve it (none was ever opened, or the server's
    /// breaker is open): a server that is down is reported as such, not as an
    /// exhausted pool. While the breaker is open and nothing is idle, it fails at
    /// once.
    pub(crate) fn get_within(&self, limit: Duration) -> Result<SyncConnection<B>> {
        let conn = self.checkout(limit)?;
        if !conn.ping_due() {
            return Ok(conn);
        }
        self.pinged(conn, limit)
    }

    /// Pings `conn` (and, if it fails, the next connection, as r2d2 would) within
    /// `limit` in all, each ping within `connect_timeout`. A ping without an answer
    /// counts as a failure of the server: the call ends there.
    fn pinged(&self, mut conn: SyncConnection<B>, limit: Duration) -> Result<SyncConnection<B>> {
        let deadline = Instant::now() + limit;
        let connect_timeout = self.recipe.options.connect_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bound = left.min(connect_timeout);
            match self.within(conn, bound, "a ping", |conn| conn.batch_execute("SELECT 1"))? {
                (mut conn, Ok(())) => {
                    conn.ping_passed();
                    return Ok(conn);
                }
                (failed, Err(error)) => {
                    tracing::debug!(pool = %self.id, %error, "dbinstance: ping failed; trying another connection");
                    failed.mark_broken();
                    // Its turn too goes back before the next checkout waits for one.
                    drop(failed);
                }
            }
            conn = self.checkout(deadline.saturating_duration_since(Instant::now()))?;
            if !conn.ping_due() {
                return Ok(conn);
            }
        }
    }

    /// Runs `call` on `conn` and waits for it at most `limit`: in a thread of its
    /// own for a network server, in place for SQLite. A call still running at the
    /// limit keeps the connection, which is discarded when the call ends; the
    /// caller gets an [`Error::Connect`](crate::Error::Connect) saying `what`
    /// went unanswered, and the server's breaker counts a failure. The thread is
    /// not reused: bounded calls are the rare ones (a ping after the connection
    /// sat idle, a health check).
    pub(crate) fn within<T: Send + 'static>(
        &self,
        mut conn: SyncConnection<B>,
        limit: Duration,
        what: &str,
        call: impl FnOnce(&mut B::Connection) -> T + Send + 'static,
    ) -> Result<(SyncConnection<B>, T)> {
        if !B::KIND.has_network() {
            let output = call(&mut conn);
            return Ok((conn, output));
        }
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("dbinstance-bounded".into())
            .spawn(move || {
                let output = call(&mut conn);
                if let Err(std::sync::mpsc::SendError((late, _))) = done.send((conn, output)) {
                    // Nobody waits any more: whatever state it is in, it goes.
                    late.mark_broken();
                }
            });
        if spawned.is_err() {
            return Err(crate::Error::Runtime(
                "no thread could be started for a bounded call",
            ));
        }
        answer.recv_timeout(limit).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => {
                let failure = ConnectFailure::unanswered(what, limit);
                tracing::warn!(pool = %self.id, %failure, "dbinstance: a connection's server stopped answering");
                self.recipe.breaker.record_failure(&failure);
                failure.into_error(&self.id)
            }
            // The call panicked; its connection went with its thread.
            std::sync::mpsc::RecvTimeoutError::Disconnected => {
                crate::Error::Runtime("a bounded call panicked")
            }
        })
    }

    /// A checkout without the pings `is_valid` left to it.
    fn checkout(&self, limit: Duration) -> Result<SyncConnection<B>> {
        let recipe = &self.recipe;
        // Before the r2d2 pool exists: building it starts connects.
        recipe.check_honoured()?;
        let pool = self.pool();
        recipe.admit(|| pool.state().idle_connections > 0)?;
        let span = recipe.checkout_span();
        let _entered = span.enter();
        let mut turn = self.turns.as_ref().and_then(Turns::now);
        // Behind threads waiting for a turn, a newcomer takes no idle connection.
        let behind_others = self.turns.is_some() && turn.is_none();
        if !behind_others {
            if let Some(conn) = pool.try_get() {
                // Found idle: the checkout's wait is its validation.
                let started = conn.handed_out();
                return Ok(recipe.checked_out(InTurn::new(conn, turn), started));
            }
        }
        let started = Moment::now();
        let never_connected = recipe.counters.opened.load(Ordering::Relaxed) == 0;
        let only_a_connect_helps = never_connected || recipe.breaker.is_open();
        let timeout = if only_a_connect_helps {
            limit.min(recipe.options.connect_timeout)
        } else {
            limit
        };
        let deadline = Instant::now() + timeout;
        if let (Some(turns), true) = (&self.turns, behind_others) {
            let waited = turns.wait(timeout);
            turn = Some(waited.ok_or_else(|| self.gave_up(timeout, only_a_connect_helps))?);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let conn = self.wait(left, timeout, only_a_connect_helps)?;
        Ok(recipe.checked_out(InTurn::new(conn, turn), started))
    }

    /// Waits for a connection to be returned, or opened by r2d2 in its threads,
    /// for `left` of the checkout's `timeout`. r2d2 does not wake a waiter when
    /// that connect fails, so the wait is cut into slices and ends as soon as a
    /// connect to this server has ended without a connection.
    fn wait(
        &self,
        left: Duration,
        timeout: Duration,
        only_a_connect_helps: bool,
    ) -> Result<r2d2::PooledConnection<SyncManager<B>>> {
        const SLICE: Duration = Duration::from_millis(20);
        let breaker = &self.recipe.breaker;
        let failures_before = breaker.failures();
        let deadline = Instant::now() + left;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(conn) = self.pool().get_timeout(left.min(SLICE)) {
                return Ok(conn);
            }
            if breaker.failures() != failures_before {
                return Err(breaker.last_failure().into_error(&self.id));
            }
            if left <= SLICE {
                return Err(self.gave_up(timeout, only_a_connect_helps));
            }
        }
    }

    /// The error of a checkout that waited its whole `timeout`.
    fn gave_up(&self, timeout: Duration, only_a_connect_helps: bool) -> crate::Error {
        if !only_a_connect_helps {
            return self.recipe.timed_out(timeout);
        }
        // No answer at all within the connect timeout: a hung server. It counts
        // as a failed connect, so the next calls do not wait too.
        let failure = ConnectFailure::no_answer(timeout);
        self.recipe.breaker.record_failure(&failure);
        failure.into_error(&self.id)
    }

    pub(crate) fn min_idle(&self) -> u32 {
        self.recipe.options.min_idle.min(self.max_size)
    }

    /// Closes the idle connections: they are taken out and dropped as broken.
    pub(crate) fn clear_idle(&self) -> usize {
        let Some(pool) = self.pool.get() else {
            return 0;
        };
        let mut taken = Vec::new();
        while pool.state().idle_connections > 0 {
            match pool.try_get() {
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

    /// Sets the pool's gauges from its state now.
    #[cfg(feature = "metrics")]
    pub(crate) fn record_gauges(&self) {
        self.recipe
            .instruments
            .observe(&self.pool_state(), self.min_idle());
    }

    pub(crate) fn pool_state(&self) -> PoolState {
        let (size, idle) = self.pool.get().map_or((0, 0), |pool| {
            let state = pool.state();
            (state.connections, state.idle_connections)
        });
        PoolState {
            size,
            idle,
            in_use: size - idle,
            waiting: 0,
            max: self.max_size,
        }
    }
}
