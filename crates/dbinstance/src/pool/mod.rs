//! The pools: r2d2 for blocking code, deadpool or bb8 for async, over one shared
//! notion of a pooled connection and how to tell that it is broken.

pub(crate) mod async_pool;
pub(crate) mod hooks;
pub(crate) mod metrics;
pub(crate) mod sync_pool;

pub use hooks::{ConnectionInfo, HookError};
pub use metrics::{PoolCounts, PoolState, PoolStats, Utilization};

use crate::backend::{Backend, Driver};
use crate::config::PoolOptions;
use crate::id::{PoolId, PoolKind, Role};
use crate::target::{ConnectOptions, Target};
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use hooks::Hooks;
use metrics::PoolCounters;
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

/// Span attributes, computed once per pool.
#[derive(Debug)]
struct TraceAttributes {
    system: &'static str,
    address: String,
    port: u16,
    namespace: String,
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

/// What one server's pool connects with.
type Connector<B> = <<B as Backend>::Driver as Driver<B>>::Connector;

/// Everything a pool needs to open connections: where, for which role, how.
pub(crate) struct Recipe<B: Backend> {
    pub(crate) role: Role,
    pub(crate) options: PoolOptions,
    sync_connector: Connector<B>,
    async_connector: Connector<B>,
    pub(crate) sync_id: PoolId,
    pub(crate) async_id: PoolId,
    pub(crate) sync_counters: PoolCounters,
    pub(crate) async_counters: PoolCounters,
    pub(crate) hooks: Hooks<B>,
    trace: TraceAttributes,
    /// Driver messages are checked for these before they are kept, in case a driver
    /// echoes its connection string.
    secrets: Vec<String>,
    _backend: std::marker::PhantomData<fn() -> B>,
}

impl<B: Backend> fmt::Debug for Recipe<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipe")
            .field("pool", &self.sync_id.target)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Recipe<B> {
    pub(crate) fn new(
        target: &Target,
        role: Role,
        connect: &ConnectOptions,
        options: PoolOptions,
        hooks: Hooks<B>,
    ) -> Self {
        let id = |kind| PoolId {
            role,
            kind,
            target: target.label.clone(),
        };
        let secrets = target.secrets();
        let (address, port, namespace) = target.trace_attributes();
        let trace = TraceAttributes {
            system: B::KIND.telemetry_name(),
            address,
            port,
            namespace,
        };
        Self {
            hooks,
            trace,
            sync_id: id(PoolKind::Sync),
            async_id: id(PoolKind::Async),
            sync_connector: B::Driver::connector(target, role, PoolKind::Sync, connect),
            async_connector: B::Driver::connector(target, role, PoolKind::Async, connect),
            role,
            options,
            secrets,
            sync_counters: PoolCounters::default(),
            async_counters: PoolCounters::default(),
            _backend: std::marker::PhantomData,
        }
    }

    pub(crate) fn connect_sync(&self) -> Result<Pooled<B::Connection>, ConnectFailure> {
        let counters = &self.sync_counters;
        let conn = B::Driver::connect_sync(&self.sync_connector)
            .map_err(|e| self.connect_failed(&self.sync_id, counters, self.failure(&*e)))?;
        PoolCounters::bump(&counters.opened);
        let mut conn = conn;
        let health = Arc::new(ConnHealth::default());
        diesel::Connection::set_instrumentation(&mut conn, ErrorWatch(health.clone()));
        let mut conn = Pooled::new(conn, health);
        if let Some(hook) = &self.hooks.after_connect {
            let info = conn.info(&self.sync_id);
            hook(&mut conn, &info).map_err(|e| self.hook_failure(&self.sync_id, &e))?;
        }
        tracing::debug!(pool = %self.sync_id, "dbinstance: connection opened");
        Ok(conn)
    }

    pub(crate) async fn connect_async(&self) -> Result<Pooled<B::AsyncConnection>, ConnectFailure> {
        let counters = &self.async_counters;
        let connect = B::Driver::connect_async(&self.async_connector);
        let failure = match tokio::time::timeout(self.options.connect_timeout, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.failure(&*e)),
            Err(_) => Err(ConnectFailure {
                message: format!("no connection within {:?}", self.options.connect_timeout),
            }),
        };
        let mut conn = failure.map_err(|f| self.connect_failed(&self.async_id, counters, f))?;
        PoolCounters::bump(&counters.opened);
        let health = Arc::new(ConnHealth::default());
        diesel_async::AsyncConnection::set_instrumentation(&mut conn, ErrorWatch(health.clone()));
        let mut conn = Pooled::new(conn, health);
        if let Some(hook) = &self.hooks.async_after_connect {
            let info = conn.info(&self.async_id);
            hook(&mut conn, &info)
                .await
                .map_err(|e| self.hook_failure(&self.async_id, &e))?;
        }
        tracing::debug!(pool = %self.async_id, "dbinstance: connection opened");
        Ok(conn)
    }

    fn connect_failed(
        &self,
        pool: &PoolId,
        counters: &PoolCounters,
        error: ConnectFailure,
    ) -> ConnectFailure {
        PoolCounters::bump(&counters.connect_failures);
        tracing::warn!(pool = %pool, %error, "dbinstance: connection failed");
        error
    }

    fn hook_failure(&self, pool: &PoolId, error: &HookError) -> ConnectFailure {
        tracing::warn!(pool = %pool, %error, "dbinstance: after_connect hook refused the connection");
        ConnectFailure {
            message: format!("after_connect hook: {error}"),
        }
    }

    /// Runs the `before_checkout` hook; false means the connection must not be used.
    pub(crate) fn accepts<C>(
        &self,
        pool: &PoolId,
        conn: &Pooled<C>,
        idle: std::time::Duration,
    ) -> bool {
        match &self.hooks.before_checkout {
            None => true,
            Some(hook) => hook(&ConnectionInfo {
                pool,
                age: conn.created.elapsed(),
                idle,
            }),
        }
    }

    /// The id of this recipe's pool of `kind`.
    pub(crate) fn id(&self, kind: PoolKind) -> &PoolId {
        match kind {
            PoolKind::Sync => &self.sync_id,
            PoolKind::Async => &self.async_id,
        }
    }

    /// Runs the `after_checkin` hook.
    pub(crate) fn checked_in<C>(&self, pool: &PoolId, conn: &Pooled<C>) {
        if let Some(hook) = &self.hooks.after_checkin {
            hook(&conn.info(pool));
        }
    }

    /// The span a checkout runs in, with OpenTelemetry's attribute names.
    pub(crate) fn checkout_span(&self, id: &PoolId) -> tracing::Span {
        tracing::debug_span!(
            "dbinstance.checkout",
            db.system = self.trace.system,
            db.namespace = %self.trace.namespace,
            server.address = %self.trace.address,
            server.port = self.trace.port,
            db.pool.role = %id.role,
            db.pool.kind = ?id.kind,
        )
    }

    /// The span a session lives in.
    pub(crate) fn session_span(&self, id: &PoolId) -> tracing::Span {
        tracing::debug_span!(
            "dbinstance.session",
            db.system = self.trace.system,
            db.namespace = %self.trace.namespace,
            server.address = %self.trace.address,
            server.port = self.trace.port,
            db.pool.role = %id.role,
            db.pool.kind = ?id.kind,
        )
    }

    /// A driver error turned into a message that holds no secret.
    pub(crate) fn failure(&self, error: &(dyn std::error::Error + 'static)) -> ConnectFailure {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        for secret in &self.secrets {
            message = message.replace(secret.as_str(), "***");
        }
        ConnectFailure { message }
    }
}

/// Why a connection could not be opened, with any secret scrubbed out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailure {
    message: String,
}

impl ConnectFailure {
    pub(crate) fn rejected() -> Self {
        ConnectFailure {
            message: "refused by the before_checkout hook".into(),
        }
    }
}
