//! A connection as the pools hold it: the driver's connection, when it was opened
//! and last used, and the cheap flags (broken, suspect) that every checkout and
//! return reads instead of pinging.

use super::hooks::ConnectionInfo;
use crate::config::PoolOptions;
use crate::id::PoolId;
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
}

impl ConnHealth {
    fn record(&self, error: &DieselError) {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::BrokenTransactionManager => self.broken.store(true, Ordering::Relaxed),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, _) => {
                self.suspect.store(true, Ordering::Relaxed)
            }
            // Constraint violations and the like say nothing about the connection.
            _ => {}
        }
    }
}

/// Watches every query a connection runs; only the error kind is read, never the
/// query or its parameters.
struct ErrorWatch(Arc<ConnHealth>);

impl Instrumentation for ErrorWatch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery {
            error: Some(error), ..
        } = event
        {
            self.0.record(error);
        }
    }
}

/// A connection as the pools hold it.
pub struct Pooled<C> {
    conn: C,
    health: Arc<ConnHealth>,
    pub(crate) created: Instant,
    /// When the connection was last handed back; bb8 and r2d2 do not track it.
    pub(crate) last_used: Instant,
}

impl<C: diesel::Connection> Pooled<C> {
    /// Wraps a new blocking connection and starts watching its queries' errors.
    pub(crate) fn wrap_sync(mut conn: C) -> Self {
        let health = Arc::new(ConnHealth::default());
        conn.set_instrumentation(ErrorWatch(health.clone()));
        Self::new(conn, health)
    }
}

impl<C: diesel_async::AsyncConnection> Pooled<C> {
    /// Wraps a new async connection and starts watching its queries' errors.
    pub(crate) fn wrap_async(mut conn: C) -> Self {
        let health = Arc::new(ConnHealth::default());
        conn.set_instrumentation(ErrorWatch(health.clone()));
        Self::new(conn, health)
    }
}

impl<C> Pooled<C> {
    fn new(conn: C, health: Arc<ConnHealth>) -> Self {
        let now = Instant::now();
        Self {
            conn,
            health,
            created: now,
            last_used: now,
        }
    }

    pub(crate) fn mark_broken(&self) {
        self.health.broken.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_marked_broken(&self) -> bool {
        self.health.broken.load(Ordering::Relaxed)
    }

    /// Whether the next checkout should ping first.
    pub(crate) fn needs_ping(&self, options: &PoolOptions, idle: std::time::Duration) -> bool {
        self.health.suspect.load(Ordering::Relaxed)
            || (options.pre_ping && idle > options.pre_ping_after)
    }

    pub(crate) fn ping_passed(&self) {
        self.health.suspect.store(false, Ordering::Relaxed);
    }
}

impl<C> Pooled<C> {
    pub(crate) fn info<'a>(&self, pool: &'a PoolId) -> ConnectionInfo<'a> {
        ConnectionInfo {
            pool,
            age: self.created.elapsed(),
            idle: self.last_used.elapsed(),
        }
    }
}

impl<C> Deref for Pooled<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C> fmt::Debug for Pooled<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}
