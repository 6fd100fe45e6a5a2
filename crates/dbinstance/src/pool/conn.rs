//! A connection as the pools hold it: the driver's connection, when it was opened
//! and last used, and the cheap flags (broken, suspect, session state changed) that
//! every checkout and return reads instead of pinging.

use super::demotion::Demotion;
use super::hooks::ConnectionInfo;
use super::instruments::Moment;
use super::metrics::PoolCounters;
use super::query_log::QueryLog;
use super::statements::StatementWatch;
use crate::config::{PoolOptions, QueryLogOptions};
use crate::id::{PoolId, Role};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Flags a pool reads cheaply when a connection comes back or goes out.
#[derive(Debug, Default)]
pub(crate) struct ConnHealth {
    /// The connection must not be used again.
    broken: AtomicBool,
    /// A query failed in a way that may mean the server is gone: ping before reuse.
    suspect: AtomicBool,
    /// A read connection ran a statement that may have changed its session state,
    /// its read-only mode for one: it must not serve another session.
    state_changed: AtomicBool,
    /// The watch was dropped while the connection lives: a session replaced the
    /// connection's instrumentation, and with it this detection.
    unwatched: AtomicBool,
    /// A statement started and has not finished: its future was dropped midway.
    in_flight: AtomicBool,
}

impl ConnHealth {
    fn record(&self, error: &DieselError) {
        match error {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )
            | DieselError::BrokenTransactionManager => self.broken.store(true, Ordering::Relaxed),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, _) => {
                self.suspect.store(true, Ordering::Relaxed)
            }
            // Constraint violations and the like say nothing about the connection.
            _ => {}
        }
    }
}

/// A write connection's generation, and its server's (see `demotion`).
#[derive(Debug, Clone)]
struct Generation {
    mine: u64,
    server: Arc<Demotion>,
}

impl Generation {
    fn new(server: Arc<Demotion>) -> Self {
        Self {
            mine: server.current(),
            server,
        }
    }

    fn is_superseded(&self) -> bool {
        self.mine < self.server.current()
    }
}

/// Watches every query a connection runs: the error kind of those that fail, and on
/// a read connection the text of each statement, never its parameters. Logs them
/// when the config asks, and hands every event on to the user's instrumentation.
pub(crate) struct Watch {
    health: Arc<ConnHealth>,
    /// Only on read connections: write sessions may change what they like.
    statements: Option<StatementWatch>,
    /// Only on write connections: a write refused as read-only means the server
    /// is no longer the primary.
    generation: Option<Generation>,
    log: Option<QueryLog>,
    /// The user's instrumentation (or diesel's default one), which sees every
    /// event after the watch.
    downstream: Option<Box<dyn Instrumentation>>,
}

impl Watch {
    /// The watch of a new connection of `pool`; `demotion` is the server's, for a
    /// write pool.
    pub(crate) fn new(
        pool: &PoolId,
        demotion: Option<Arc<Demotion>>,
        log: QueryLogOptions,
        downstream: Option<Box<dyn Instrumentation>>,
    ) -> Self {
        Self {
            health: Arc::default(),
            statements: match pool.role {
                Role::Read => Some(StatementWatch::default()),
                Role::Write => None,
            },
            generation: demotion.map(Generation::new),
            log: QueryLog::new(log, pool),
            downstream,
        }
    }

    fn failed(&self, error: &DieselError) {
        self.health.record(error);
        if let Some(generation) = &self.generation {
            if crate::error::is_read_only_violation(error) {
                tracing::warn!("dbinstance: a write was refused as read-only: the primary is no longer one; its write connections are closed");
                self.health.broken.store(true, Ordering::Relaxed);
                generation.server.demoted(generation.mine);
            }
        }
    }
}

impl Instrumentation for Watch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match &event {
            InstrumentationEvent::StartQuery { .. } => {
                self.health.in_flight.store(true, Ordering::Relaxed);
            }
            InstrumentationEvent::FinishQuery { .. } => {
                self.health.in_flight.store(false, Ordering::Relaxed);
            }
            _ => {}
        }
        if let InstrumentationEvent::FinishQuery {
            error: Some(error), ..
        } = &event
        {
            self.failed(error);
        } else if let Some(statements) = &mut self.statements {
            if statements.may_change_state(&event) {
                self.health.state_changed.store(true, Ordering::Relaxed);
            }
        }
        if let Some(log) = &mut self.log {
            log.on_event(&event);
        }
        if let Some(downstream) = &mut self.downstream {
            downstream.on_connection_event(event);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.health.unwatched.store(true, Ordering::Relaxed);
    }
}

/// Why a pool closes a connection rather than hand it out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Flagged by its watch, or by the driver.
    Broken,
    /// Past its `pool_recycle` lifetime.
    Retired,
    /// A write connection to a server that is no longer the primary.
    Superseded,
    /// A session replaced its instrumentation, and with it the watch.
    Unwatched,
    /// A read connection whose session state may have changed.
    StateChanged,
}

/// The share of its lifetime a connection may be retired early: up to a tenth,
/// which spreads the reconnects of a pool opened at once over that window.
const RECYCLE_JITTER: f64 = 0.1;

/// When a connection opened at `created` with a `pool_recycle` of `lifetime` is
/// retired: between 90% and 100% of its lifetime, drawn per connection.
pub(crate) fn retirement(created: Instant, lifetime: std::time::Duration) -> Instant {
    use std::hash::{BuildHasher, Hasher};
    // A fresh `RandomState` is keyed anew each time: random enough to spread.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    #[allow(clippy::cast_precision_loss)]
    let unit = (hasher.finish() >> 11) as f64 / (1_u64 << 53) as f64;
    created + lifetime.mul_f64(1.0 - RECYCLE_JITTER * unit)
}

/// A connection as the pools hold it. One pointer: the pools move a connection
/// several times per checkout, and the driver's connection (its statement cache
/// above all) and these stamps would be copied each time.
pub struct Pooled<C> {
    parts: Box<Parts<C>>,
}

struct Parts<C> {
    conn: C,
    health: Arc<ConnHealth>,
    generation: Option<Generation>,
    created: Instant,
    /// When `pool_recycle` retires it: its lifetime less a jitter of its own (see
    /// [`retirement`]), so that connections opened together are not all closed,
    /// and reopened, together.
    retire_at: Option<Instant>,
    /// When the connection was last handed back; bb8 and r2d2 do not track it.
    last_used: Instant,
    /// Its pool found at checkout that it must be pinged before it serves.
    ping_due: bool,
    /// When the pool last began to hand it out (or opened it).
    handed_out: Moment,
    /// When the pool last handed it out, after any ping: for how long a session
    /// held it and how long its checkout waited.
    checked_out: Moment,
}

impl<C: diesel::Connection> Pooled<C> {
    /// Wraps a new blocking connection and starts watching its queries.
    pub(crate) fn wrap_sync(mut conn: C, watch: Watch) -> Self {
        let (health, generation) = (watch.health.clone(), watch.generation.clone());
        conn.set_instrumentation(watch);
        Self::new(conn, health, generation)
    }
}

impl<C: diesel_async::AsyncConnection> Pooled<C> {
    /// The async twin of [`wrap_sync`](Pooled::wrap_sync).
    pub(crate) fn wrap_async(mut conn: C, watch: Watch) -> Self {
        let (health, generation) = (watch.health.clone(), watch.generation.clone());
        conn.set_instrumentation(watch);
        Self::new(conn, health, generation)
    }
}

impl<C> Pooled<C> {
    fn new(conn: C, health: Arc<ConnHealth>, generation: Option<Generation>) -> Self {
        let now = Instant::now();
        Self {
            parts: Box::new(Parts {
                conn,
                health,
                generation,
                retire_at: None,
                created: now,
                last_used: now,
                ping_due: false,
                handed_out: Moment::at(now),
                checked_out: Moment::at(now),
            }),
        }
    }

    /// Stamps the connection as handed out now and says how long it sat idle: one
    /// clock reading for both, on the path of every checkout.
    pub(crate) fn hand_out(&mut self) -> std::time::Duration {
        let now = Instant::now();
        self.parts.handed_out = Moment::at(now);
        self.parts.checked_out = self.parts.handed_out;
        now.saturating_duration_since(self.parts.last_used)
    }

    /// Retires the connection `lifetime` after it was opened, less a jitter.
    pub(crate) fn retire_after(&mut self, lifetime: std::time::Duration) {
        self.parts.retire_at = Some(retirement(self.parts.created, lifetime));
    }

    /// How long ago it was opened.
    pub(crate) fn age(&self) -> std::time::Duration {
        self.parts.created.elapsed()
    }

    /// When its pool last began to hand it out: where a checkout that found it
    /// idle began, as far as its wait goes.
    pub(crate) fn handed_out(&self) -> Moment {
        self.parts.handed_out
    }

    /// When it was last handed out.
    pub(crate) fn checked_out(&self) -> Moment {
        self.parts.checked_out
    }

    /// Stamps it as handed back at `now`.
    pub(crate) fn handed_back(&mut self, now: Instant) {
        self.parts.last_used = now;
    }

    pub(crate) fn mark_broken(&self) {
        self.parts.health.broken.store(true, Ordering::Relaxed);
    }

    /// Whether the pool must close this connection rather than hand it out again:
    /// it is broken (flagged, or `driver_broken` says so), or it is a read
    /// connection whose session state may have changed. Counts and logs which.
    pub(crate) fn must_close(
        &self,
        driver_broken: bool,
        counters: &PoolCounters,
        pool: &PoolId,
    ) -> bool {
        let Some(why) = self.closing(driver_broken) else {
            return false;
        };
        match why {
            Closing::Broken => {
                PoolCounters::bump(&counters.broken_discarded);
                tracing::debug!(pool = %pool, "dbinstance: broken connection discarded");
            }
            Closing::Retired => {
                tracing::debug!(pool = %pool, "dbinstance: connection past pool_recycle closed");
            }
            Closing::Superseded => {
                PoolCounters::bump(&counters.broken_discarded);
                tracing::debug!(pool = %pool, "dbinstance: write connection to a server that is no longer the primary discarded");
            }
            Closing::Unwatched => {
                PoolCounters::bump(&counters.state_discarded);
                tracing::warn!(pool = %pool, "dbinstance: a session replaced its connection's instrumentation, and with it the pool's broken-connection detection: the connection is closed; add instrumentation with InstanceBuilder::instrumentation instead");
            }
            Closing::StateChanged => {
                PoolCounters::bump(&counters.state_discarded);
                tracing::debug!(pool = %pool, "dbinstance: read connection whose session state may have changed discarded");
            }
        }
        true
    }

    /// Why this connection must not be handed out again, if it must not; counts
    /// and logs nothing, so that it can be asked often.
    pub(crate) fn closing(&self, driver_broken: bool) -> Option<Closing> {
        let health = &self.parts.health;
        if driver_broken || health.broken.load(Ordering::Relaxed) {
            Some(Closing::Broken)
        } else if self.is_retired() {
            Some(Closing::Retired)
        } else if self.is_superseded() {
            Some(Closing::Superseded)
        } else if health.unwatched.load(Ordering::Relaxed) {
            Some(Closing::Unwatched)
        } else if health.state_changed.load(Ordering::Relaxed) {
            Some(Closing::StateChanged)
        } else {
            None
        }
    }

    /// Past its `pool_recycle` lifetime.
    pub(crate) fn is_retired(&self) -> bool {
        self.parts.retire_at.is_some_and(|at| Instant::now() >= at)
    }

    /// A write connection opened before its server was found to be no longer the
    /// primary.
    pub(crate) fn is_superseded(&self) -> bool {
        self.parts
            .generation
            .as_ref()
            .is_some_and(Generation::is_superseded)
    }

    /// Whether the session that held it leaves it in working order: nothing
    /// failed in a way that suggests the server is gone, no statement unfinished
    /// (one cut and then rolled back has finished). Cheap: no clock reading,
    /// unlike [`closing`](Self::closing).
    pub(crate) fn ended_well(&self) -> bool {
        let health = &self.parts.health;
        !(health.broken.load(Ordering::Relaxed)
            || health.suspect.load(Ordering::Relaxed)
            || health.in_flight.load(Ordering::Relaxed))
    }

    /// Whether a statement was cut before it finished.
    pub(crate) fn statement_cut(&self) -> bool {
        self.parts.health.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a statement that may have changed the session state ran since the
    /// connection opened.
    pub(crate) fn session_state_changed(&self) -> bool {
        self.parts.health.state_changed.load(Ordering::Relaxed)
    }

    /// Takes the session state the connection has now (its `after_connect` hook
    /// ran) as its own: only later statements count as changes.
    pub(crate) fn accept_session_state(&self) {
        self.parts
            .health
            .state_changed
            .store(false, Ordering::Relaxed);
    }

    /// Whether the next checkout should ping first.
    pub(crate) fn needs_ping(&self, options: &PoolOptions, idle: std::time::Duration) -> bool {
        self.parts.health.suspect.load(Ordering::Relaxed)
            || (options.pre_ping && idle > options.pre_ping_after)
    }

    /// Leaves the ping to the checkout, which can bound it (see `SyncPool`).
    pub(crate) fn defer_ping(&mut self) {
        self.parts.ping_due = true;
    }

    /// Whether a ping was left to the checkout.
    pub(crate) fn ping_due(&self) -> bool {
        self.parts.ping_due
    }

    /// A query failed in a way that may mean the server is gone.
    #[cfg(feature = "postgres")]
    pub(crate) fn is_suspect(&self) -> bool {
        self.parts.health.suspect.load(Ordering::Relaxed)
    }

    /// A ping answered on a connection other sessions share.
    #[cfg(feature = "postgres")]
    pub(crate) fn clear_suspect(&self) {
        self.parts.health.suspect.store(false, Ordering::Relaxed);
    }

    /// The ping is part of the checkout's wait, not of the session.
    pub(crate) fn ping_passed(&mut self) {
        self.parts.ping_due = false;
        self.parts.checked_out = Moment::now();
        self.parts.health.suspect.store(false, Ordering::Relaxed);
    }
}

impl<C> Pooled<C> {
    pub(crate) fn info<'a>(&self, pool: &'a PoolId) -> ConnectionInfo<'a> {
        ConnectionInfo {
            pool,
            age: self.parts.created.elapsed(),
            idle: self.parts.last_used.elapsed(),
        }
    }
}

impl<C> Deref for Pooled<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.parts.conn
    }
}

impl<C> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.parts.conn
    }
}

impl<C> fmt::Debug for Pooled<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("health", &self.parts.health)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retirement_falls_in_the_last_tenth_of_the_lifetime_and_varies() {
        let created = Instant::now();
        let lifetime = Duration::from_secs(1000);
        let times: Vec<Duration> = (0..200)
            .map(|_| retirement(created, lifetime) - created)
            .collect();
        assert!(times
            .iter()
            .all(|t| *t > Duration::from_secs(900) && *t <= lifetime));
        let spread = times
            .iter()
            .max()
            .unwrap()
            .saturating_sub(*times.iter().min().unwrap());
        assert!(spread > Duration::from_secs(50), "{spread:?}");
    }
}
