//! `DatabaseConfig`: plain, serde-able settings with a fluent builder. The flat
//! field names are the public face (and the seeds' names); nothing below the
//! config reads them. [`plan`] validates them once into sections, and each layer
//! takes only its own.
//!
//! - `source`: loading from the environment and from files.
//! - `plan`: validation into a `Plan` (addresses, connect and TLS, pool, routing,
//!   health).

mod plan;
mod source;

pub(crate) use plan::{HealthOptions, Plan, PoolOptions};

use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::secret::{redact_url, Secret};
use crate::target::SslMode;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which async pool library backs the async pools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AsyncPoolKind {
    /// deadpool (the default): the fastest checkout in our measurements.
    #[default]
    Deadpool,
    /// bb8.
    Bb8,
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
/// | `min_idle` | `min_idle` | opened by `warmup()` | `min_idle` |
/// | `pool_timeout` | `connection_timeout` | `timeouts.wait` | `connection_timeout` |
/// | `pool_recycle` | `max_lifetime` | checked on recycle | `max_lifetime` |
/// | `idle_timeout` | `idle_timeout` | `clear_idle()` | `idle_timeout` |
/// | `pool_pre_ping` | ping on checkout when idle longer than `pre_ping_after`, or after a query error | same | same |
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
    /// Overrides `user`, `password`, `host`, `port` and `name`.
    #[serde(alias = "database_url", alias = "write_url")]
    pub url: Option<Secret>,
    /// One URL per replica. Empty (the default) with no `read_hosts`: reads go to the
    /// primary through read-only sessions.
    #[serde(alias = "read_url")]
    pub read_urls: Vec<Secret>,
    /// User name.
    pub user: Option<String>,
    /// Password. Never printed.
    pub password: Option<Secret>,
    /// The primary's host. Default `127.0.0.1`.
    pub host: Option<String>,
    /// The primary's port. Default 5432 or 3306.
    pub port: Option<u16>,
    /// The database name, or the SQLite file path.
    #[serde(alias = "database", alias = "db_name")]
    pub name: Option<String>,
    /// Replica hosts, each `host` or `host:port`; they share user, password and name.
    pub read_hosts: Vec<String>,
    /// The port for `read_hosts` entries without one. Default: the primary's port.
    pub read_port: Option<u16>,
    /// TLS mode. Default: the driver's default (`prefer` for libpq).
    pub ssl_mode: Option<SslMode>,
    /// Root certificate for `verify-ca` / `verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    /// Reported to PostgreSQL as `application_name`. Default `dbinstance`.
    pub application_name: Option<String>,
    /// Time allowed to open one connection, in seconds. Default 5.
    #[serde(with = "secs")]
    pub connect_timeout: Option<Duration>,
    /// Connections each pool keeps. Default 10 (1 for the SQLite write pools).
    pub pool_size: Option<u32>,
    /// Extra connections a pool may open under load. Default 0.
    pub max_overflow: Option<u32>,
    /// Connections opened ahead of traffic by `warmup()` and kept open. Default 1.
    pub min_idle: Option<u32>,
    /// Seconds a checkout waits for a free connection. Default 30.
    #[serde(with = "secs")]
    pub pool_timeout: Option<Duration>,
    /// Seconds after which a connection is replaced. Default: never.
    #[serde(with = "secs")]
    pub pool_recycle: Option<Duration>,
    /// Seconds an idle connection above `min_idle` is kept. Default 600.
    #[serde(with = "secs")]
    pub idle_timeout: Option<Duration>,
    /// Validate connections before handing them out. Default true. Validation pings
    /// only connections idle longer than `pre_ping_after` or whose last query failed,
    /// so a busy pool pays nothing for it.
    pub pool_pre_ping: Option<bool>,
    /// Idle time after which a checkout pings first, in seconds. Default 1.
    #[serde(with = "secs")]
    pub pre_ping_after: Option<Duration>,
    /// The async pool library. Default deadpool.
    pub async_pool: Option<AsyncPoolKind>,
    /// When every replica is down, send reads to the primary (read-only sessions).
    /// Default true.
    pub read_fallback: Option<bool>,
    /// SQLite: milliseconds a connection waits for a lock. Default 5000.
    pub sqlite_busy_timeout_ms: Option<u32>,
    /// Seconds `check_database_health` waits for each server. Default 2.
    #[serde(with = "secs")]
    pub health_timeout: Option<Duration>,
    /// Share of a pool in use at which its utilization reads WARNING. Default 0.75.
    pub utilization_warning: Option<f64>,
    /// Share of a pool in use at which its utilization reads CRITICAL. Default 0.9.
    pub utilization_critical: Option<f64>,
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
    /// Sets SQLite's busy timeout.
    pub fn sqlite_busy_timeout(mut self, timeout: Duration) -> Self {
        self.sqlite_busy_timeout_ms = Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        self
    }

    /// The backend this config names: `backend`, else the URL's scheme.
    ///
    /// # Errors
    /// [`Error::Config`] when neither says, or the scheme is unknown.
    pub fn backend_kind(&self) -> Result<BackendKind> {
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
        f.debug_struct("DatabaseConfig")
            .field("backend", &self.backend)
            .field("url", &url)
            .field("read_urls", &reads)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("read_hosts", &self.read_hosts)
            .field("read_port", &self.read_port)
            .field("ssl_mode", &self.ssl_mode)
            .field("pool_size", &self.pool_size)
            .field("max_overflow", &self.max_overflow)
            .field("pool_timeout", &self.pool_timeout)
            .field("async_pool", &self.async_pool)
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
