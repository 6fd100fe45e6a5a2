//! `DatabaseConfig`: plain, serde-able settings with a fluent builder. The flat
//! field names are the public face (and the seeds' names); nothing below the
//! config reads them. [`plan`] validates them once into sections, and each layer
//! takes only its own.
//!
//! - `source`: loading from the environment and from files.
//! - `plan`: validation into a `Plan` (addresses, connect and TLS, pool, routing,
//!   health).
//! - `tls`: the TLS setting, merged from the fields and the URLs' parameters.

mod plan;
mod source;
mod tls;

pub(crate) use plan::{HealthOptions, Plan, PoolOptions, QueryLogOptions};
pub(crate) use source::read_file;

use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::secret::{redact_text, redact_url, Secret};
use crate::target::{SqliteSynchronous, SslMode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which async pool library backs the async pools.
/// Each is a feature of this crate (`deadpool`, `bb8`, both on by default); naming
/// one that is not compiled in is an [`Error::Config`](crate::Error::Config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AsyncPoolKind {
    /// deadpool (the default): the async pool the benchmark in docs/benchmarks.md
    /// measures fastest, and the one that reports waiting callers.
    Deadpool,
    /// bb8 (the default when the `deadpool` feature is off).
    Bb8,
}

impl Default for AsyncPoolKind {
    fn default() -> Self {
        if cfg!(feature = "deadpool") {
            Self::Deadpool
        } else {
            Self::Bb8
        }
    }
}

/// Settings for one [`DatabaseInstance`](crate::DatabaseInstance).
///
/// Build it fluently, from a URL, from the environment, or deserialise it from
/// TOML or JSON; [`DatabaseInstance::builder`](crate::DatabaseInstance::builder)
/// validates it. Every field is optional and documents its default.
///
/// The pool settings keep the names of SQLAlchemy's `create_engine`, mapped as follows
/// (each pool family gets its own pools; a read side has one pool per replica):
///
/// | setting | r2d2 (sync) | deadpool | bb8 |
/// |---|---|---|---|
/// | `pool_size` + `max_overflow` | `max_size` | `max_size` | `max_size` |
/// | `min_idle` | `min_idle` | opened by `warmup()`, not kept | `min_idle` |
/// | `pool_timeout` | `connection_timeout` | `timeouts.wait` | `connection_timeout` |
/// | `pool_recycle` | at checkout and return, jittered; `max_lifetime` for idle ones | the same, at checkout | the same; `max_lifetime` |
/// | `idle_timeout` | `idle_timeout` (reaper every 30 s) | not applied; `clear_idle()` closes idle ones on demand | `idle_timeout` (reaper every 30 s) |
/// | `pool_pre_ping` | ping on checkout when idle longer than `pre_ping_after`, or after a query error | same | same |
///
/// The ping at checkout has no time limit of its own on r2d2; on deadpool it is
/// bounded by `connect_timeout`, on bb8 by `pool_timeout`. docs/guide.md lists what
/// each family bounds and counts, as measured.
///
/// ```
/// use dbinstance::{DatabaseConfig, BackendKind};
/// let config = DatabaseConfig::new()
///     .backend(BackendKind::Postgres)
///     .user("app")
///     .password("s3cret")
///     .host("127.0.0.1")
///     .port(5432)
///     .name("app")
///     .read_host("127.0.0.1:5433")
///     .pool_size(16);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// The backend; inferred from `url` when that is set.
    pub backend: Option<BackendKind>,
    /// The primary's URL (`postgres://`, `mysql://`, `sqlite://`, a path or `:memory:`).
    /// Overrides `user`, `password`, `host`, `port` and `name`. On PostgreSQL it may
    /// list several hosts (`postgres://app@db1:5432,db2:5432/app`): write pools take
    /// the first that accepts writes, so that a failover finds the new primary.
    #[serde(alias = "database_url", alias = "write_url")]
    pub url: Option<Secret>,
    /// One URL per replica. Empty (the default) with no `read_hosts`: reads go to the
    /// primary through read-only sessions.
    #[serde(
        alias = "read_url",
        deserialize_with = "crate::secret::deserialize_secret_list"
    )]
    pub read_urls: Vec<Secret>,
    /// User name.
    pub user: Option<String>,
    /// Password. Never printed.
    pub password: Option<Secret>,
    /// The primary's host. Default `127.0.0.1`; an IPv6 literal with or without
    /// brackets. Not empty.
    pub host: Option<String>,
    /// The primary's port. Default 5432 or 3306.
    pub port: Option<u16>,
    /// The database name, or the SQLite file path.
    #[serde(alias = "database", alias = "db_name")]
    pub name: Option<String>,
    /// Replica hosts, each `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; they
    /// share user, password and name.
    pub read_hosts: Vec<String>,
    /// The port for `read_hosts` entries without one. Default: the primary's port.
    pub read_port: Option<u16>,
    /// Each replica's share of the reads, one weight per replica in the order
    /// `read_urls`, then `read_hosts`: with `[3, 1]` the first serves three reads in
    /// four (smooth weighted round robin, as nginx does it). Empty (the default):
    /// every replica weighs 1, plain round robin. From 0 to
    /// [`MAX_READ_WEIGHT`](Self::MAX_READ_WEIGHT); a replica of weight 0 is a standby,
    /// used only when no weighted replica can serve (down, behind, or its pool
    /// exhausted), so at least one weight must be above 0.
    ///
    /// A list beside the URLs rather than a parameter inside them: a URL stays
    /// exactly what the driver gets, `read_hosts` entries get weights too, and the
    /// environment's `DATABASE_READ_WEIGHTS` is a comma-separated list like
    /// `DATABASE_READ_URL`.
    pub read_weights: Vec<u32>,
    /// TLS mode, for every pool of both families. Default: `prefer` on
    /// PostgreSQL (libpq's default), `disable` on MySQL. Also taken from the URLs'
    /// own parameters (PostgreSQL `sslmode`; MySQL `ssl-mode` or `ssl_mode`),
    /// which are then removed from what the drivers get; a URL and the field, or
    /// two URLs, that disagree are an [`Error::Config`](crate::Error::Config)
    /// naming this field. A mode a driver cannot honour is refused, never
    /// weakened: docs/guide.md, TLS, has the table.
    pub ssl_mode: Option<SslMode>,
    /// Root certificate (PEM) that the server's certificate must chain to; when
    /// set, the only one trusted. URL: `sslrootcert`, `ssl-ca` or `ssl_ca`.
    pub ssl_root_cert: Option<PathBuf>,
    /// Client certificate (PEM) shown to a server that asks for one; needs
    /// `ssl_key`. URL: `sslcert`, `ssl-cert` or `ssl_cert`.
    pub ssl_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, unencrypted); needs
    /// `ssl_cert`. URL: `sslkey`, `ssl-key` or `ssl_key`.
    pub ssl_key: Option<PathBuf>,
    /// Reported to PostgreSQL as `application_name`. Default `dbinstance`.
    pub application_name: Option<String>,
    /// Time allowed to open one connection, in seconds (blocking MySQL connections
    /// do not get it: libmysqlclient's URL form has no such option). Default 5; more than zero
    /// and at most [`MAX_WAIT`](Self::MAX_WAIT) (an hour).
    #[serde(with = "secs")]
    pub connect_timeout: Option<Duration>,
    /// Connections each pool keeps. Default 10 (1 for the SQLite write pools);
    /// 1 to [`MAX_CONNECTIONS`](Self::MAX_CONNECTIONS) together with `max_overflow`.
    pub pool_size: Option<u32>,
    /// Extra connections a pool may open under load. Default 0; `pool_size +
    /// max_overflow` is at most [`MAX_CONNECTIONS`](Self::MAX_CONNECTIONS).
    pub max_overflow: Option<u32>,
    /// Connections opened ahead of traffic by `warmup()`; r2d2 and bb8 also keep
    /// that many open, deadpool does not. Default 1;
    /// at most `pool_size + max_overflow`.
    pub min_idle: Option<u32>,
    /// Seconds a checkout waits for a free connection. Default 30; more than zero
    /// and at most [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub pool_timeout: Option<Duration>,
    /// Seconds after which a connection is replaced. Each connection's lifetime is
    /// cut short by up to a tenth, drawn per connection, so that connections
    /// opened together are not reopened together. Default: never; more than zero
    /// and at most [`MAX_LIFETIME`](Self::MAX_LIFETIME) (30 days).
    #[serde(with = "secs")]
    pub pool_recycle: Option<Duration>,
    /// Seconds an idle connection above `min_idle` is kept. Default 600; more than
    /// zero and at most [`MAX_LIFETIME`](Self::MAX_LIFETIME).
    #[serde(with = "secs")]
    pub idle_timeout: Option<Duration>,
    /// Validate connections before handing them out. Default true. Validation pings
    /// only connections idle longer than `pre_ping_after` or whose last query failed,
    /// so a busy pool pays nothing for it.
    pub pool_pre_ping: Option<bool>,
    /// Idle time after which a checkout pings first, in seconds. Default 1; zero
    /// (ping on every checkout) to [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub pre_ping_after: Option<Duration>,
    /// The async pool library. Default deadpool.
    pub async_pool: Option<AsyncPoolKind>,
    /// When every replica is down, send reads to the primary (read-only sessions).
    /// Default true.
    pub read_fallback: Option<bool>,
    /// Seconds a server that failed to connect is skipped (its circuit breaker is
    /// open) before one background probe tries it again. Default 1; more than zero
    /// and at most [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub breaker_backoff: Option<Duration>,
    /// Seconds a replica may be behind the primary and still serve reads. A
    /// background monitor reads each replica's lag every `replica_lag_interval`;
    /// a replica further behind, or whose lag cannot be read (its replication is
    /// stopped), serves no read until it has caught up, and health reads
    /// degraded. When every replica is excluded, reads go to the primary
    /// (`read_fallback`) or fail with [`Error::ReplicaLag`](crate::Error::ReplicaLag).
    /// Default: unset, no monitor, lag is not looked at. More than zero and at
    /// most [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub max_replica_lag: Option<Duration>,
    /// Seconds between two lag readings of the monitor. Default 1; more than zero
    /// and at most [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub replica_lag_interval: Option<Duration>,
    /// Seconds a read that must see a write (through a handle given a
    /// [`ReadYourWrites`](crate::ReadYourWrites)) waits for a replica to replay it
    /// before it goes to the primary (`read_fallback`) or fails with
    /// [`Error::WriteNotReplayed`](crate::Error::WriteNotReplayed). Default 0.1;
    /// zero (look once, do not wait) to [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub read_your_writes_wait: Option<Duration>,
    /// Seconds a statement may run before the server cancels it: PostgreSQL's
    /// `statement_timeout`, MariaDB's `max_statement_time`. Set on every
    /// connection of every pool as it opens (PostgreSQL: a startup parameter, no
    /// round trip). Default: unset, the server's own setting. More than zero and at
    /// most [`MAX_WAIT`](Self::MAX_WAIT); not for SQLite.
    #[serde(with = "secs")]
    pub statement_timeout: Option<Duration>,
    /// Seconds a statement may wait for a lock: PostgreSQL's `lock_timeout`,
    /// MariaDB's `innodb_lock_wait_timeout` (whole seconds, rounded up). Default:
    /// unset. As `statement_timeout`; on SQLite, `sqlite_busy_timeout_ms` is the
    /// lock wait.
    #[serde(with = "secs")]
    pub lock_timeout: Option<Duration>,
    /// Seconds a transaction may sit idle (no statement running) before the
    /// server ends the session: PostgreSQL's `idle_in_transaction_session_timeout`,
    /// MariaDB's `idle_transaction_timeout` (whole seconds, rounded up), so that a
    /// forgotten transaction cannot hold its locks for ever. Default: unset. As
    /// `statement_timeout`.
    #[serde(with = "secs")]
    pub idle_in_transaction_timeout: Option<Duration>,
    /// PostgreSQL behind a pooler in transaction mode (PgBouncer's
    /// `pool_mode = transaction`), which hands the client's connection a server
    /// connection per transaction: no startup parameter beyond the application
    /// name, read sessions are `BEGIN READ ONLY` transactions, no named prepared
    /// statements, and reads outside a session run in a transaction of their own.
    /// Session timeouts are refused (set them on the role instead). Default
    /// false; not for MySQL or SQLite. docs/guide.md, PgBouncer.
    pub transaction_pooling: Option<bool>,
    /// PostgreSQL: connections per read server that
    /// [shared read sessions](crate::DatabaseInstance::async_get_db_cm_read_shared)
    /// pipeline their reads over, opened on first use beside the async read pool.
    /// Default 1: one connection carries the longest pipeline, so the fewest
    /// system calls and server wake-ups per read. Raise it when that connection's
    /// server process is the limit (it keeps one server core busy). 1 to 64.
    pub shared_read_connections: Option<u32>,
    /// SQLite: milliseconds a connection waits for a lock. Default 5000; at most
    /// 3,600,000 (an hour).
    pub sqlite_busy_timeout_ms: Option<u32>,
    /// SQLite: when a commit waits for the disk (see [`SqliteSynchronous`]).
    /// Default `normal`.
    pub sqlite_synchronous: Option<SqliteSynchronous>,
    /// SQLite files: the WAL's size, in pages, past which a commit also copies it
    /// back into the database (a checkpoint, run by the committing connection).
    /// Default SQLite's own, 1000 pages (about 4 MB); 0 turns automatic
    /// checkpoints off.
    pub sqlite_wal_autocheckpoint: Option<u32>,
    /// Log every statement, at INFO on the `tracing` target `dbinstance::sql`,
    /// with its pool: the SQL text, without its bind values unless
    /// `echo_bind_values` is set. Default false.
    pub echo: Option<bool>,
    /// With `echo` and the slow-statement log, log the bind values too. They may
    /// hold personal data or secrets: for development only. Default false.
    pub echo_bind_values: Option<bool>,
    /// Seconds from which a statement is logged as slow, at WARN on the `tracing`
    /// target `dbinstance::sql::slow`, with its pool, its time and its SQL (no
    /// bind values unless `echo_bind_values`). Default: unset, no slow log; zero
    /// (every statement with its time) to [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub slow_statement_threshold: Option<Duration>,
    /// Seconds a health check waits for each server: the async checks are bounded
    /// by it; the blocking ones bound only their checkout, not the ping on a
    /// pooled connection. Default 2; more than
    /// zero and at most [`MAX_WAIT`](Self::MAX_WAIT).
    #[serde(with = "secs")]
    pub health_timeout: Option<Duration>,
    /// Share of a pool in use at which its utilization reads WARNING. Default 0.75;
    /// in (0, 1].
    pub utilization_warning: Option<f64>,
    /// Share of a pool in use at which its utilization reads CRITICAL. Default 0.9;
    /// from `utilization_warning` to 1.
    pub utilization_critical: Option<f64>,
}

/// The bounds of the settings: a value outside them is an [`Error::Config`] naming
/// the field.
impl DatabaseConfig {
    /// The most connections one pool may hold (`pool_size + max_overflow`). The
    /// pool libraries reserve room per connection up front, so a larger number
    /// would abort the process on allocation instead of failing.
    pub const MAX_CONNECTIONS: u32 = 10_000;
    /// The longest wait a setting may ask for: `connect_timeout`, `pool_timeout`,
    /// `health_timeout`, `pre_ping_after`, `breaker_backoff`, `max_replica_lag`,
    /// `replica_lag_interval`, `read_your_writes_wait`, `statement_timeout`,
    /// `lock_timeout`, `idle_in_transaction_timeout` and `sqlite_busy_timeout_ms`:
    /// an hour.
    pub const MAX_WAIT: Duration = Duration::from_secs(3600);
    /// `read_your_writes_wait` when unset: replicas are usually a few
    /// milliseconds behind, so a short wait keeps most reads after a write off the
    /// primary without making them slow when a replica is far behind.
    pub const DEFAULT_READ_YOUR_WRITES_WAIT: Duration = Duration::from_millis(100);
    /// The longest `pool_recycle` and `idle_timeout`: 30 days.
    pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
    /// The largest entry of `read_weights`. Weights are shares, so a hundred steps
    /// are fine enough; the bound keeps the rotation, one turn per unit of weight,
    /// small.
    pub const MAX_READ_WEIGHT: u32 = 100;
}

/// Builder methods: each sets one field and returns the config.
impl DatabaseConfig {
    /// An empty config: every field at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// A config for the primary at `url`; the backend is taken from the scheme.
    ///
    /// ```
    /// let config = dbinstance::DatabaseConfig::from_url("postgres://app:pw@db:5432/app")
    ///     .read_url("postgres://app:pw@replica:5432/app");
    /// ```
    pub fn from_url(url: impl Into<String>) -> Self {
        Self::new().url(url)
    }

    /// Sets how long a health check waits for each server.
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = Some(timeout);
        self
    }

    /// Sets the backend.
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.backend = Some(backend);
        self
    }
    /// Sets the primary's URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(Secret::new(url));
        self
    }
    /// Adds a replica URL.
    pub fn read_url(mut self, url: impl Into<String>) -> Self {
        self.read_urls.push(Secret::new(url));
        self
    }
    /// Sets the user name.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
    /// Sets the password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret::new(password));
        self
    }
    /// Sets the primary's host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }
    /// Sets the primary's port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Sets the database name (for SQLite, the file path).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Adds a replica, `host` or `host:port`.
    pub fn read_host(mut self, host: impl Into<String>) -> Self {
        self.read_hosts.push(host.into());
        self
    }
    /// Sets the port of replicas given without one.
    pub fn read_port(mut self, port: u16) -> Self {
        self.read_port = Some(port);
        self
    }
    /// Sets the replicas' weights, in the order of `read_urls`, then `read_hosts`.
    ///
    /// ```
    /// let config = dbinstance::DatabaseConfig::from_url("postgres://app@db/app")
    ///     .read_url("postgres://app@big-replica/app")
    ///     .read_url("postgres://app@small-replica/app")
    ///     .read_weights([3, 1]);
    /// ```
    pub fn read_weights(mut self, weights: impl IntoIterator<Item = u32>) -> Self {
        self.read_weights = weights.into_iter().collect();
        self
    }
    /// Sets the TLS mode.
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }
    /// Sets the root certificate used to verify the server.
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }
    /// Sets the client certificate and its private key (PEM files).
    pub fn ssl_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.ssl_cert = Some(cert.into());
        self.ssl_key = Some(key.into());
        self
    }
    /// Sets the application name reported to PostgreSQL.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = timeout.into();
        self
    }
    /// Sets the connections each pool keeps.
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = Some(size);
        self
    }
    /// Sets the extra connections a pool may open under load.
    pub fn max_overflow(mut self, overflow: u32) -> Self {
        self.max_overflow = Some(overflow);
        self
    }
    /// Sets the connections opened ahead of traffic.
    pub fn min_idle(mut self, min_idle: u32) -> Self {
        self.min_idle = Some(min_idle);
        self
    }
    /// Sets how long a checkout waits for a free connection.
    pub fn pool_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.pool_timeout = timeout.into();
        self
    }
    /// Sets the age after which connections are replaced.
    pub fn pool_recycle(mut self, max_lifetime: impl Into<Option<Duration>>) -> Self {
        self.pool_recycle = max_lifetime.into();
        self
    }
    /// Sets how long idle connections above `min_idle` are kept.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.idle_timeout = timeout.into();
        self
    }
    /// Turns checkout validation on or off.
    pub fn pool_pre_ping(mut self, enabled: bool) -> Self {
        self.pool_pre_ping = Some(enabled);
        self
    }
    /// Sets the idle time after which a checkout pings first.
    pub fn pre_ping_after(mut self, idle: Duration) -> Self {
        self.pre_ping_after = Some(idle);
        self
    }
    /// Logs every statement (without bind values, unless `echo_bind_values`).
    pub fn echo(mut self, enabled: bool) -> Self {
        self.echo = Some(enabled);
        self
    }
    /// Logs bind values with the statements `echo` and the slow log show.
    pub fn echo_bind_values(mut self, enabled: bool) -> Self {
        self.echo_bind_values = Some(enabled);
        self
    }
    /// Logs every statement that takes `threshold` or longer as slow.
    pub fn slow_statement_threshold(mut self, threshold: Duration) -> Self {
        self.slow_statement_threshold = Some(threshold);
        self
    }
    /// Chooses the async pool library.
    pub fn async_pool(mut self, kind: AsyncPoolKind) -> Self {
        self.async_pool = Some(kind);
        self
    }
    /// Chooses whether reads fall back to the primary when every replica is down.
    pub fn read_fallback(mut self, enabled: bool) -> Self {
        self.read_fallback = Some(enabled);
        self
    }
    /// Sets how long a server that failed to connect is skipped before it is probed.
    pub fn breaker_backoff(mut self, backoff: Duration) -> Self {
        self.breaker_backoff = Some(backoff);
        self
    }
    /// Sets how far behind the primary a replica may be and still serve reads.
    pub fn max_replica_lag(mut self, lag: Duration) -> Self {
        self.max_replica_lag = Some(lag);
        self
    }
    /// Sets how often the lag monitor reads each replica's lag.
    pub fn replica_lag_interval(mut self, interval: Duration) -> Self {
        self.replica_lag_interval = Some(interval);
        self
    }
    /// Sets how long a read after a write waits for a replica to replay it.
    pub fn read_your_writes_wait(mut self, wait: Duration) -> Self {
        self.read_your_writes_wait = Some(wait);
        self
    }
    /// Sets how long a statement may run before the server cancels it.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }
    /// Sets how long a statement may wait for a lock.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }
    /// Sets how long a transaction may sit idle before the server ends it.
    pub fn idle_in_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_timeout = Some(timeout);
        self
    }
    /// Declares that connections go through a pooler in transaction mode.
    pub fn transaction_pooling(mut self, enabled: bool) -> Self {
        self.transaction_pooling = Some(enabled);
        self
    }
    /// Sets the connections per read server that shared read sessions use.
    pub fn shared_read_connections(mut self, connections: u32) -> Self {
        self.shared_read_connections = Some(connections);
        self
    }
    /// Sets when a SQLite commit waits for the disk.
    pub fn sqlite_synchronous(mut self, synchronous: SqliteSynchronous) -> Self {
        self.sqlite_synchronous = Some(synchronous);
        self
    }
    /// Sets the WAL size, in pages, past which a SQLite commit checkpoints.
    pub fn sqlite_wal_autocheckpoint(mut self, pages: u32) -> Self {
        self.sqlite_wal_autocheckpoint = Some(pages);
        self
    }
    /// Sets SQLite's busy timeout.
    pub fn sqlite_busy_timeout(mut self, timeout: Duration) -> Self {
        self.sqlite_busy_timeout_ms = Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        self
    }

    /// The backend this config names: `backend`, else the URL's scheme.
    ///
    /// # Errors
    /// [`Error::Config`] when neither says, when the scheme is unknown, or when
    /// the backend is not compiled into this build (the message names the cargo
    /// feature to turn on).
    pub fn backend_kind(&self) -> Result<BackendKind> {
        let kind = self.named_backend()?;
        if kind.is_compiled() {
            return Ok(kind);
        }
        let field = if self.url.is_some() { "url" } else { "backend" };
        Err(Error::config(
            field,
            format!(
                "names {}, which this build does not include: turn on the `{}` feature \
                 (for example `cargo run --features {}`)",
                kind.product(),
                kind.feature(),
                kind.feature()
            ),
        ))
    }

    fn named_backend(&self) -> Result<BackendKind> {
        match (&self.url, self.backend) {
            (Some(url), explicit) => {
                let from_url = BackendKind::of_url(url.expose(), "url")?;
                match explicit {
                    Some(kind) if kind != from_url => Err(Error::config(
                        "backend",
                        format!("is `{kind}` but `url` is a {from_url} URL"),
                    )),
                    _ => Ok(from_url),
                }
            }
            (None, Some(kind)) => Ok(kind),
            (None, None) => Err(Error::config(
                "backend",
                "not set: give a `url` or a `backend`",
            )),
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_ref().map(|u| redact_url(u.expose()));
        let reads: Vec<String> = self
            .read_urls
            .iter()
            .map(|u| redact_url(u.expose()))
            .collect();
        // Plain fields too: a URL pasted where a host or user belongs carries its password.
        let plain = |v: &Option<String>| v.as_deref().map(redact_text);
        let path = |v: &Option<PathBuf>| v.as_ref().map(|p| redact_text(&p.to_string_lossy()));
        let read_hosts: Vec<String> = self.read_hosts.iter().map(|h| redact_text(h)).collect();
        f.debug_struct("DatabaseConfig")
            .field("backend", &self.backend)
            .field("url", &url)
            .field("read_urls", &reads)
            .field("user", &plain(&self.user))
            .field("password", &self.password)
            .field("host", &plain(&self.host))
            .field("port", &self.port)
            .field("name", &plain(&self.name))
            .field("read_hosts", &read_hosts)
            .field("read_port", &self.read_port)
            .field("read_weights", &self.read_weights)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &path(&self.ssl_root_cert))
            .field("ssl_cert", &path(&self.ssl_cert))
            .field("ssl_key", &path(&self.ssl_key))
            .field("pool_size", &self.pool_size)
            .field("max_overflow", &self.max_overflow)
            .field("pool_timeout", &self.pool_timeout)
            .field("async_pool", &self.async_pool)
            .field("transaction_pooling", &self.transaction_pooling)
            .field("shared_read_connections", &self.shared_read_connections)
            .finish_non_exhaustive()
    }
}

/// Durations as (fractional) seconds in TOML and JSON.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<DatabaseConfig>("pool_sise = 5").unwrap_err();
        assert!(err.to_string().contains("pool_sise"), "{err}");
    }
}
