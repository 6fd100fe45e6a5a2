//! The recipe of one pool: how it opens a connection (the backend's connector,
//! worked out once), how it names itself in errors, spans and hook calls, what it
//! counts, and which secrets its messages must never show. One per pool: the
//! blocking and the async pool of a server each have their own.

use super::breaker::Breaker;
use super::conn::{Pooled, Watch};
use super::demotion::Demotion;
use super::failure::ConnectFailure;
use super::hooks::{ConnectionInfo, HookError, Hooks};
use super::instruments::{Instruments, Moment};
use super::metrics::PoolCounters;
use super::server::ServerState;
use crate::backend::{Backend, Driver};
use crate::config::PoolOptions;
use crate::error::{Error, Result};
use crate::id::{PoolId, Role};
use crate::target::{ConnectOptions, Target};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

/// What the backend's driver connects with.
type Connector<B> = <<B as Backend>::Driver as Driver<B>>::Connector;

/// Span attributes, computed once per pool.
#[derive(Debug)]
struct TraceAttributes {
    system: &'static str,
    address: String,
    port: u16,
    namespace: String,
}

/// Everything a pool needs to open connections: where, for which role, how.
pub(crate) struct Recipe<B: Backend> {
    pub(crate) id: PoolId,
    /// Unique per pool in the process, unlike `id`: the key of its metrics.
    pub(crate) name: String,
    pub(crate) options: PoolOptions,
    pub(crate) counters: PoolCounters,
    pub(crate) instruments: Instruments,
    pub(crate) hooks: Hooks<B>,
    /// Shared with every other pool on the same server.
    pub(crate) breaker: Arc<Breaker>,
    /// Write pools: the generation of their server's write connections.
    demotion: Option<Arc<Demotion>>,
    connector: Connector<B>,
    /// Why this pool opens nothing (a TLS mode its driver cannot honour).
    refusal: Option<String>,
    trace: TraceAttributes,
    /// Driver messages are checked for these before they are kept, in case a driver
    /// echoes its connection string.
    secrets: Vec<String>,
}

impl<B: Backend> fmt::Debug for Recipe<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipe")
            .field("pool", &self.id)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Recipe<B> {
    /// The pool `id` on `target`, called `name` in its metrics and spans.
    pub(crate) fn new(
        target: &Target,
        id: PoolId,
        name: String,
        connect: &ConnectOptions,
        options: PoolOptions,
        hooks: Hooks<B>,
        server: &ServerState,
    ) -> Self {
        let (address, port, namespace) = target.trace_attributes();
        let PoolId { role, kind, .. } = id;
        Self {
            id,
            instruments: Instruments::new(&name),
            name,
            options,
            counters: PoolCounters::default(),
            hooks,
            breaker: server.breaker.clone(),
            demotion: (role == Role::Write).then(|| server.demotion.clone()),
            connector: B::Driver::connector(target, role, kind, connect),
            refusal: B::Driver::refusal(kind, connect),
            trace: TraceAttributes {
                system: B::KIND.telemetry_name(),
                address,
                port,
                namespace,
            },
            secrets: target.secrets(),
        }
    }

    /// Fails every checkout of a pool whose driver cannot honour the TLS mode,
    /// before anything connects: the pool is refused, not weakened.
    pub(crate) fn check_honoured(&self) -> Result<()> {
        match &self.refusal {
            Some(reason) => Err(Error::config("ssl_mode", reason.clone())),
            None => Ok(()),
        }
    }

    /// A new connection for the pool, counted in `opened`.
    pub(crate) fn connect_sync(&self) -> Result<Pooled<B::Connection>, ConnectFailure> {
        self.open_sync(true)
    }

    /// Opens a connection as the pool would and closes it: the build's check that
    /// the server is there, which is not the pool's connection and not counted.
    pub(crate) fn check_sync(&self) -> Result<(), ConnectFailure> {
        self.open_sync(false).map(drop)
    }

    /// A connection of the pool's kind that the pool does not hold: closed when
    /// dropped, so that whatever its session holds (a lock) ends with it.
    #[cfg(feature = "migrations")]
    pub(crate) fn unpooled_sync(&self) -> Result<Pooled<B::Connection>, ConnectFailure> {
        self.open_sync(false)
    }

    fn open_sync(&self, pooled: bool) -> Result<Pooled<B::Connection>, ConnectFailure> {
        self.refuse_while_open()?;
        let started = Moment::now();
        let conn = B::Driver::connect_sync(&self.connector)
            .map_err(|e| self.connect_failed(self.failure(&*e)))?;
        if pooled {
            self.opened(started);
        } else {
            self.breaker.record_success();
        }
        let mut conn = Pooled::wrap_sync(conn, self.watch());
        if let Some(lifetime) = self.options.max_lifetime {
            conn.retire_after(lifetime);
        }
        if let Some(hook) = &self.hooks.after_connect {
            let info = conn.info(&self.id);
            hook(&mut conn, &info).map_err(|e| self.hook_failure(&e))?;
            conn.accept_session_state();
        }
        tracing::debug!(pool = %self.id, "dbinstance: connection opened");
        Ok(conn)
    }

    /// The async twin of [`connect_sync`](Self::connect_sync).
    pub(crate) async fn connect_async(&self) -> Result<Pooled<B::AsyncConnection>, ConnectFailure> {
        self.open_async(true).await
    }

    /// The async twin of [`check_sync`](Self::check_sync).
    pub(crate) async fn check_async(&self) -> Result<(), ConnectFailure> {
        self.open_async(false).await.map(drop)
    }

    async fn open_async(&self, pooled: bool) -> Result<Pooled<B::AsyncConnection>, ConnectFailure> {
        self.refuse_while_open()?;
        let started = Moment::now();
        let connect = B::Driver::connect_async(&self.connector);
        let result = match tokio::time::timeout(self.options.connect_timeout, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.failure(&*e)),
            Err(_) => Err(ConnectFailure::no_answer(self.options.connect_timeout)),
        };
        let conn = result.map_err(|f| self.connect_failed(f))?;
        if pooled {
            self.opened(started);
        } else {
            self.breaker.record_success();
        }
        let mut conn = Pooled::wrap_async(conn, self.watch());
        if let Some(lifetime) = self.options.max_lifetime {
            conn.retire_after(lifetime);
        }
        if let Some(hook) = &self.hooks.async_after_connect {
            let info = conn.info(&self.id);
            hook(&mut conn, &info)
                .await
                .map_err(|e| self.hook_failure(&e))?;
            conn.accept_session_state();
        }
        tracing::debug!(pool = %self.id, "dbinstance: connection opened");
        Ok(conn)
    }

    /// A connect begun at `started` has opened a connection.
    /// A connection for the pool opened: timed, counted, and the server reachable.
    fn opened(&self, started: Moment) {
        self.instruments.connection_created(started);
        self.breaker.record_success();
        PoolCounters::bump(&self.counters.opened);
    }

    /// While the server's breaker is open only its probe connects: the pools'
    /// own connects (a checkout's, or a background refill of `min_idle`) fail at
    /// once, so none of them waits on a server that is down or hung.
    fn refuse_while_open(&self) -> std::result::Result<(), ConnectFailure> {
        if !self.breaker.is_open() {
            return Ok(());
        }
        self.breaker.record_refusal();
        Err(self.breaker.last_failure())
    }

    fn connect_failed(&self, error: ConnectFailure) -> ConnectFailure {
        PoolCounters::bump(&self.counters.connect_failures);
        self.breaker.record_failure(&error);
        tracing::warn!(pool = %self.id, %error, "dbinstance: connection failed");
        error
    }

    /// Lets a checkout go on unless the server's breaker is open and the pool has no
    /// idle connection to offer (those may still work: a server that refuses new
    /// connections, say at its connection limit, can keep serving the open ones).
    /// When a probe is due, starts it in the background.
    pub(crate) fn admit(self: &Arc<Self>, has_idle: impl FnOnce() -> bool) -> Result<()> {
        let Err(open) = self.breaker.check() else {
            return Ok(());
        };
        if open.probe_due {
            self.spawn_probe();
        }
        if has_idle() {
            return Ok(());
        }
        Err(Error::Unavailable {
            pool: self.id.clone(),
            retry_after: open.retry_after,
            source: Box::new(open.cause),
        })
    }

    /// One connect in a thread of its own, whose outcome closes or re-opens the
    /// breaker; the connection is closed at once.
    fn spawn_probe(self: &Arc<Self>) {
        let recipe = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("dbinstance-probe".into())
            .spawn(move || {
                match B::Driver::connect_sync(&recipe.connector) {
                    Ok(conn) => {
                        drop(conn);
                        recipe.breaker.record_success();
                    }
                    Err(e) => {
                        let failure = recipe.failure(&*e);
                        tracing::debug!(pool = %recipe.id, %failure, "dbinstance: probe failed");
                        recipe.breaker.record_failure(&failure);
                    }
                }
                recipe.breaker.probe_done();
            });
        if spawned.is_err() {
            self.breaker.probe_done();
        }
    }

    fn hook_failure(&self, error: &HookError) -> ConnectFailure {
        tracing::warn!(pool = %self.id, %error, "dbinstance: after_connect hook refused the connection");
        let failure = ConnectFailure::new(format!("after_connect hook: {error}"));
        self.breaker.note_failure(&failure);
        failure
    }

    /// Runs the `before_checkout` hook; false means the connection must not be used.
    /// A connection past its `pool_recycle` lifetime, or a write connection to a
    /// server since found read-only, is refused too.
    pub(crate) fn accepts<C>(&self, conn: &Pooled<C>, idle: std::time::Duration) -> bool {
        if conn.is_retired() {
            return false;
        }
        if conn.is_superseded() {
            PoolCounters::bump(&self.counters.broken_discarded);
            return false;
        }
        match &self.hooks.before_checkout {
            None => true,
            Some(hook) => hook(&ConnectionInfo {
                pool: &self.id,
                age: conn.age(),
                idle,
            }),
        }
    }

    /// A checkout that gave up waiting for a free connection after `timeout`:
    /// counted and logged the same way on every pool family.
    pub(crate) fn timed_out(&self, timeout: std::time::Duration) -> Error {
        PoolCounters::bump(&self.counters.checkout_timeouts);
        self.instruments.timed_out();
        tracing::warn!(pool = %self.id, ?timeout, "dbinstance: checkout timed out");
        Error::Timeout {
            pool: self.id.clone(),
            timeout,
        }
    }

    /// A checkout begun at `started` has its connection, stamped when its pool
    /// handed it out (see [`Pooled::hand_out`]): how long it waited is recorded.
    pub(crate) fn checked_out<X, C: Deref<Target = Pooled<X>>>(
        &self,
        conn: C,
        started: Moment,
    ) -> C {
        self.instruments.checked_out(started, conn.checked_out());
        conn
    }

    /// A session hands its connection back: it counts as used now, how long the
    /// session held it is recorded, and `after_checkin` runs.
    pub(crate) fn checked_in<C>(&self, conn: &mut Pooled<C>) {
        if conn.ended_well() {
            PoolCounters::bump(&self.counters.sessions_ended);
        }
        let now = Instant::now();
        self.instruments.checked_in(conn.checked_out(), now);
        conn.handed_back(now);
        if let Some(hook) = &self.hooks.after_checkin {
            hook(&conn.info(&self.id));
        }
    }

    /// What watches a new connection's statements.
    fn watch(&self) -> Watch {
        Watch::new(
            &self.id,
            self.demotion.clone(),
            self.options.query_log,
            self.hooks.instrumentation_for(&self.id),
        )
    }

    /// The span a checkout runs in, with OpenTelemetry's attribute names. None
    /// unless a subscriber wants DEBUG: under tracing's `log` feature, which a
    /// dependency may turn on, a disabled span is still formatted for `log`.
    pub(crate) fn checkout_span(&self) -> tracing::Span {
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return tracing::Span::none();
        }
        tracing::debug_span!(
            "dbinstance.checkout",
            db.system.name = self.trace.system,
            db.client.connection.pool.name = %self.name,
            db.namespace = %self.trace.namespace,
            server.address = %self.trace.address,
            server.port = self.trace.port,
            db.pool.role = %self.id.role,
            db.pool.kind = ?self.id.kind,
        )
    }

    /// The span a session lives in; none unless a subscriber wants DEBUG (see
    /// `checkout_span`).
    pub(crate) fn session_span(&self) -> tracing::Span {
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return tracing::Span::none();
        }
        tracing::debug_span!(
            "dbinstance.session",
            db.system.name = self.trace.system,
            db.client.connection.pool.name = %self.name,
            db.namespace = %self.trace.namespace,
            server.address = %self.trace.address,
            server.port = self.trace.port,
            db.pool.role = %self.id.role,
            db.pool.kind = ?self.id.kind,
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
        // SQLite opens no connection while a lock it must wait for is held past
        // the busy timeout: a busy database, which the callers are told apart.
        let busy = B::KIND == crate::backend::BackendKind::Sqlite
            && message.contains("database is locked");
        ConnectFailure { message, busy }
    }
}
