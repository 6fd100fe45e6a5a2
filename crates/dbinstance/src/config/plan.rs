//! Validation: a [`DatabaseConfig`] checked once and split into the sections each
//! layer takes: the addresses (topology), the connect options with TLS (the
//! backends), the pool options (the pools), the routing options and the health
//! options. Nothing else reads the flat config.

use super::tls::{self, UrlTls};
use super::{AsyncPoolKind, DatabaseConfig};
use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::target::{Address, ConnectOptions, SessionTimeouts, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

/// A validated config.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) addresses: Addresses,
    pub(crate) connect: ConnectOptions,
    pub(crate) pool: PoolOptions,
    pub(crate) routing: RoutingOptions,
    pub(crate) health: HealthOptions,
}

/// Where the pools connect.
#[derive(Debug)]
pub(crate) struct Addresses {
    pub(crate) write: Target,
    /// One per replica, or the primary when no replica is set.
    pub(crate) reads: Vec<Target>,
}

/// How each pool is sized and checked; the table on [`DatabaseConfig`] maps these
/// onto r2d2, deadpool and bb8.
#[derive(Debug, Clone)]
pub(crate) struct PoolOptions {
    pub(crate) max_size: u32,
    pub(crate) write_max_size: u32,
    pub(crate) min_idle: u32,
    pub(crate) pool_timeout: Duration,
    /// Bounds a connect, a recycle check and the rollback of a cancelled session.
    pub(crate) connect_timeout: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) pre_ping: bool,
    pub(crate) pre_ping_after: Duration,
    pub(crate) async_pool: AsyncPoolKind,
    pub(crate) query_log: QueryLogOptions,
    /// Behind a transaction pooler: read sessions are transactions too, and so are
    /// the reads the instance makes outside a session on async connections.
    pub(crate) transaction_pooling: bool,
    /// Connections per read target that shared read sessions pipeline over.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) shared_read_connections: u32,
}

/// What each connection logs of its statements.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueryLogOptions {
    pub(crate) echo: bool,
    pub(crate) bind_values: bool,
    /// Statements this slow or slower are logged; `None`: none is.
    pub(crate) slow_threshold: Option<Duration>,
}

/// How reads are routed.
#[derive(Debug, Clone)]
pub(crate) struct RoutingOptions {
    /// When every replica is down, reads go to the primary's read-only pools.
    pub(crate) read_fallback: bool,
    /// How long a server whose connect failed is skipped before it is probed.
    pub(crate) breaker_backoff: Duration,
    /// A replica further behind serves no read; `None`: lag is not watched.
    pub(crate) max_replica_lag: Option<Duration>,
    /// How often the lag monitor reads the replicas' lag.
    pub(crate) lag_interval: Duration,
    /// How long a read after a write waits for a replica to replay it.
    pub(crate) read_your_writes_wait: Duration,
    /// One per read target: the share of reads each gets, 0 for a standby.
    pub(crate) read_weights: Vec<u32>,
}

/// How health is checked and pool occupancy judged.
#[derive(Debug, Clone)]
pub(crate) struct HealthOptions {
    pub(crate) timeout: Duration,
    pub(crate) utilization_warning: f64,
    pub(crate) utilization_critical: f64,
    /// A replica further behind reads degraded.
    pub(crate) max_replica_lag: Option<Duration>,
}

impl DatabaseConfig {
    /// Checks every setting and works out what each pool connects to.
    pub(crate) fn plan(&self, expected: BackendKind) -> Result<Plan> {
        let backend = self.backend_kind()?;
        if backend != expected {
            return Err(Error::config(
                if self.url.is_some() { "url" } else { "backend" },
                format!(
                    "the instance is typed for {expected} but the configuration names {backend}"
                ),
            ));
        }
        if self.port == Some(0) {
            return Err(Error::config("port", "must be between 1 and 65535"));
        }
        if self.read_port == Some(0) {
            return Err(Error::config("read_port", "must be between 1 and 65535"));
        }
        if backend != BackendKind::Sqlite {
            for (field, set) in [
                ("sqlite_synchronous", self.sqlite_synchronous.is_some()),
                (
                    "sqlite_wal_autocheckpoint",
                    self.sqlite_wal_autocheckpoint.is_some(),
                ),
            ] {
                if set {
                    return Err(Error::config(
                        field,
                        format!("is a SQLite setting; this is {backend}"),
                    ));
                }
            }
        }
        if let Some(ms) = self.sqlite_busy_timeout_ms {
            if u128::from(ms) > Self::MAX_WAIT.as_millis() {
                return Err(Error::config(
                    "sqlite_busy_timeout_ms",
                    format!("{ms} is more than an hour (3600000)"),
                ));
            }
        }
        let pool = self.pool_options(backend)?;
        let session_timeouts = self.session_timeouts(backend)?;
        let transaction_pooling = pool.transaction_pooling;
        #[cfg(not(feature = "postgres"))]
        let _ = transaction_pooling;
        #[cfg(not(any(feature = "postgres", feature = "mysql")))]
        let _ = session_timeouts;
        let health = self.health_options()?;
        let (addresses, url_tls) = addresses(self, backend)?;
        if backend == BackendKind::Sqlite {
            tls::refuse_for_sqlite(self)?;
        }
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        let tls = tls::tls_options(self, backend, &url_tls)?;
        #[cfg(not(any(feature = "postgres", feature = "mysql")))]
        let _ = url_tls;
        if transaction_pooling {
            refuse_startup_options(&addresses)?;
        }
        let read_weights = read_weights(self, &addresses)?;
        Ok(Plan {
            addresses,
            connect: ConnectOptions {
                #[cfg(feature = "postgres")]
                application_name: self
                    .application_name
                    .clone()
                    .unwrap_or_else(|| "dbinstance".to_owned()),
                #[cfg(feature = "postgres")]
                connect_timeout: pool.connect_timeout,
                #[cfg(feature = "postgres")]
                transaction_pooling,
                #[cfg(feature = "sqlite")]
                sqlite_busy_timeout_ms: self.sqlite_busy_timeout_ms.unwrap_or(5000),
                #[cfg(feature = "sqlite")]
                sqlite_synchronous: self
                    .sqlite_synchronous
                    .unwrap_or(crate::target::SqliteSynchronous::Normal),
                #[cfg(feature = "sqlite")]
                sqlite_wal_autocheckpoint: self.sqlite_wal_autocheckpoint,
                #[cfg(any(feature = "postgres", feature = "mysql"))]
                session_timeouts,
                #[cfg(any(feature = "postgres", feature = "mysql"))]
                tls,
            },
            pool,
            routing: RoutingOptions {
                read_fallback: self.read_fallback.unwrap_or(true),
                breaker_backoff: bounded("breaker_backoff", self.breaker_backoff, Self::MAX_WAIT)?
                    .unwrap_or(Duration::from_secs(1)),
                max_replica_lag: health.max_replica_lag,
                lag_interval: bounded(
                    "replica_lag_interval",
                    self.replica_lag_interval,
                    Self::MAX_WAIT,
                )?
                .unwrap_or(Duration::from_secs(1)),
                read_your_writes_wait: match self.read_your_writes_wait {
                    Some(wait) if wait > Self::MAX_WAIT => {
                        return Err(Error::config(
                            "read_your_writes_wait",
                            format!("{wait:?} is longer than the bound of {:?}", Self::MAX_WAIT),
                        ))
                    }
                    Some(wait) => wait,
                    None => Self::DEFAULT_READ_YOUR_WRITES_WAIT,
                },
                read_weights,
            },
            health,
        })
    }

    fn pool_options(&self, backend: BackendKind) -> Result<PoolOptions> {
        let pool_size = self.pool_size.unwrap_or(10);
        if !(1..=Self::MAX_CONNECTIONS).contains(&pool_size) {
            return Err(Error::config(
                "pool_size",
                format!("{pool_size} is outside 1..={}", Self::MAX_CONNECTIONS),
            ));
        }
        let max_size = pool_size.saturating_add(self.max_overflow.unwrap_or(0));
        if max_size > Self::MAX_CONNECTIONS {
            return Err(Error::config(
                "max_overflow",
                format!(
                    "pool_size + max_overflow is {max_size}, more than {} connections per pool",
                    Self::MAX_CONNECTIONS
                ),
            ));
        }
        let pre_ping_after = self.pre_ping_after.unwrap_or(Duration::from_secs(1));
        if pre_ping_after > Self::MAX_WAIT {
            return Err(Error::config(
                "pre_ping_after",
                format!(
                    "{pre_ping_after:?} is longer than the bound of {:?}",
                    Self::MAX_WAIT
                ),
            ));
        }
        let min_idle = self.min_idle.unwrap_or(1);
        if min_idle > max_size {
            return Err(Error::config(
                "min_idle",
                format!("{min_idle} is more than pool_size + max_overflow ({max_size})"),
            ));
        }
        #[cfg(not(feature = "bb8"))]
        if self.async_pool == Some(AsyncPoolKind::Bb8) {
            return Err(Error::config(
                "async_pool",
                "bb8 needs the `bb8` feature of dbinstance",
            ));
        }
        #[cfg(not(feature = "deadpool"))]
        if self.async_pool == Some(AsyncPoolKind::Deadpool) {
            return Err(Error::config(
                "async_pool",
                "deadpool needs the `deadpool` feature of dbinstance",
            ));
        }
        let transaction_pooling = self.transaction_pooling.unwrap_or(false);
        if transaction_pooling && backend != BackendKind::Postgres {
            return Err(Error::config(
                "transaction_pooling",
                format!("is for PostgreSQL behind a pooler such as PgBouncer, not {backend}"),
            ));
        }
        let shared_read_connections = self.shared_read_connections.unwrap_or(1);
        if !(1..=64).contains(&shared_read_connections) {
            return Err(Error::config(
                "shared_read_connections",
                format!("{shared_read_connections} is outside 1..=64"),
            ));
        }
        let write_max_size = match backend {
            // SQLite allows one writer at a time: more write connections only queue on the lock.
            BackendKind::Sqlite => 1,
            BackendKind::Postgres | BackendKind::Mysql => max_size,
        };
        Ok(PoolOptions {
            max_size,
            write_max_size,
            min_idle: min_idle.min(max_size),
            pool_timeout: bounded("pool_timeout", self.pool_timeout, Self::MAX_WAIT)?
                .unwrap_or(Duration::from_secs(30)),
            connect_timeout: bounded("connect_timeout", self.connect_timeout, Self::MAX_WAIT)?
                .unwrap_or(Duration::from_secs(5)),
            max_lifetime: bounded("pool_recycle", self.pool_recycle, Self::MAX_LIFETIME)?,
            idle_timeout: bounded("idle_timeout", self.idle_timeout, Self::MAX_LIFETIME)?
                .or(Some(Duration::from_secs(600))),
            pre_ping: self.pool_pre_ping.unwrap_or(true),
            pre_ping_after,
            async_pool: self.async_pool.unwrap_or_default(),
            query_log: self.query_log_options()?,
            transaction_pooling,
            shared_read_connections,
        })
    }

    fn query_log_options(&self) -> Result<QueryLogOptions> {
        let slow_threshold = self.slow_statement_threshold;
        if let Some(threshold) = slow_threshold.filter(|t| *t > Self::MAX_WAIT) {
            return Err(Error::config(
                "slow_statement_threshold",
                format!(
                    "{threshold:?} is longer than the bound of {:?}",
                    Self::MAX_WAIT
                ),
            ));
        }
        Ok(QueryLogOptions {
            echo: self.echo.unwrap_or(false),
            bind_values: self.echo_bind_values.unwrap_or(false),
            slow_threshold,
        })
    }

    /// The server-side bounds, which SQLite has none of.
    fn session_timeouts(&self, backend: BackendKind) -> Result<SessionTimeouts> {
        let timeouts = SessionTimeouts {
            statement: bounded("statement_timeout", self.statement_timeout, Self::MAX_WAIT)?,
            lock: bounded("lock_timeout", self.lock_timeout, Self::MAX_WAIT)?,
            idle_in_transaction: bounded(
                "idle_in_transaction_timeout",
                self.idle_in_transaction_timeout,
                Self::MAX_WAIT,
            )?,
        };
        let set = [
            ("statement_timeout", timeouts.statement),
            ("lock_timeout", timeouts.lock),
            ("idle_in_transaction_timeout", timeouts.idle_in_transaction),
        ];
        if backend == BackendKind::Sqlite {
            if let Some((field, _)) = set.into_iter().find(|(_, v)| v.is_some()) {
                return Err(Error::config(
                    field,
                    "SQLite has no server to enforce it; `sqlite_busy_timeout_ms` bounds its lock waits",
                ));
            }
        }
        if self.transaction_pooling == Some(true) {
            // A session setting would stay on whichever server connection the pooler
            // gave the statement, for its other clients; `SET LOCAL` per transaction
            // would cost a round trip or close read connections as state changes.
            if let Some((field, _)) = set.into_iter().find(|(_, v)| v.is_some()) {
                return Err(Error::config(
                    field,
                    "cannot be a session setting behind a transaction pooler: set it on the \
                     role (ALTER ROLE ... SET) or use the pooler's own query_timeout",
                ));
            }
        }
        Ok(timeouts)
    }

    fn health_options(&self) -> Result<HealthOptions> {
        let warning = self.utilization_warning.unwrap_or(0.75);
        let critical = self.utilization_critical.unwrap_or(0.9);
        // `contains` is false for NaN, so NaN is refused too.
        if !(f64::MIN_POSITIVE..=1.0).contains(&warning) {
            return Err(Error::config(
                "utilization_warning",
                format!("{warning} is not a share in (0, 1]"),
            ));
        }
        if !(warning..=1.0).contains(&critical) {
            return Err(Error::config(
                "utilization_critical",
                format!("{critical} is not a share in [utilization_warning ({warning}), 1]"),
            ));
        }
        Ok(HealthOptions {
            timeout: bounded("health_timeout", self.health_timeout, Self::MAX_WAIT)?
                .unwrap_or(Duration::from_secs(2)),
            utilization_warning: warning,
            utilization_critical: critical,
            max_replica_lag: bounded("max_replica_lag", self.max_replica_lag, Self::MAX_WAIT)?,
        })
    }
}

/// A duration that is set must be longer than zero and at most `max`.
fn bounded(field: &str, value: Option<Duration>, max: Duration) -> Result<Option<Duration>> {
    match value {
        Some(d) if d.is_zero() => Err(Error::config(field, "must be longer than zero")),
        Some(d) if d > max => Err(Error::config(
            field,
            format!("{d:?} is longer than the bound of {max:?}"),
        )),
        other => Ok(other),
    }
}

/// The primary's target and the read targets (the primary itself when no replica
/// is set), and the TLS parameters taken out of their URLs.
fn addresses(config: &DatabaseConfig, backend: BackendKind) -> Result<(Addresses, Vec<UrlTls>)> {
    let Some(default_port) = backend.default_port() else {
        return Ok((sqlite_addresses(config)?, Vec::new()));
    };
    let mut url_tls = Vec::new();
    let (primary_url, more_hosts) = match &config.url {
        Some(url) => {
            let (single, more_hosts) = split_hosts(url.expose(), backend)?;
            let mut url = parse_server_url(&single, "url", backend)?;
            url_tls.push(tls::take_from_url(&mut url, backend, "url")?);
            (url, more_hosts)
        }
        None => (url_from_parts(config, backend, default_port)?, Vec::new()),
    };
    let write = Target {
        more_hosts,
        ..server_target(primary_url.clone(), default_port, true)
    };
    let mut reads = Vec::new();
    for (i, read) in config.read_urls.iter().enumerate() {
        let field = format!("read_urls[{i}]");
        let mut url = parse_server_url(read.expose(), &field, backend)?;
        url_tls.push(tls::take_from_url(&mut url, backend, &field)?);
        reads.push(server_target(url, default_port, false));
    }
    for (i, host) in config.read_hosts.iter().enumerate() {
        let field = format!("read_hosts[{i}]");
        let (name, port) = split_host_port(host, &field)?;
        let port = port.or(config.read_port);
        if name.trim().is_empty() {
            return Err(Error::config(&field, "the host is empty"));
        }
        let mut url = primary_url.clone();
        set_host(&mut url, &name, &field)?;
        if let Some(port) = port.or(primary_url.port()) {
            let _ = url.set_port(Some(port));
        }
        reads.push(server_target(url, default_port, false));
    }
    if reads.is_empty() {
        reads.push(write.clone());
    }
    Ok((Addresses { write, reads }, url_tls))
}

/// Behind a transaction pooler, a URL's `options` (startup settings) would be
/// refused by PgBouncer, or, where it is told to ignore them, silently dropped.
fn refuse_startup_options(addresses: &Addresses) -> Result<()> {
    let fields = std::iter::once("url".to_owned())
        .chain((0..addresses.reads.len()).map(|i| format!("read_urls[{i}]")));
    for (target, field) in std::iter::once(&addresses.write)
        .chain(&addresses.reads)
        .zip(fields)
    {
        if let Address::Server(url) = &target.address {
            if url.query_pairs().any(|(key, _)| key == "options") {
                return Err(Error::config(
                    field,
                    "has `options`, startup settings a transaction pooler refuses or drops; \
                     set them on the role (ALTER ROLE ... SET) instead",
                ));
            }
        }
    }
    Ok(())
}

/// One weight per read target: `read_weights` checked against the replicas, or 1
/// each when it is empty (and for the primary's read pools when there is no replica).
fn read_weights(config: &DatabaseConfig, addresses: &Addresses) -> Result<Vec<u32>> {
    let weights = &config.read_weights;
    if weights.is_empty() {
        return Ok(vec![1; addresses.reads.len()]);
    }
    let replicas = addresses.reads.iter().filter(|r| !r.is_primary).count();
    if weights.len() != replicas {
        return Err(Error::config(
            "read_weights",
            format!(
                "has {} weights for {replicas} replicas: give one per replica, in the order \
                 read_urls, then read_hosts",
                weights.len()
            ),
        ));
    }
    let max = DatabaseConfig::MAX_READ_WEIGHT;
    if let Some((i, weight)) = weights.iter().enumerate().find(|(_, w)| **w > max) {
        return Err(Error::config(
            format!("read_weights[{i}]"),
            format!("{weight} is more than {max}"),
        ));
    }
    if weights.iter().all(|w| *w == 0) {
        return Err(Error::config(
            "read_weights",
            "every weight is 0: at least one replica needs a weight above 0 (0 marks a standby)",
        ));
    }
    Ok(weights.clone())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal (`::1`).
fn split_host_port(raw: &str, field: &str) -> Result<(String, Option<u16>)> {
    // The message quotes the whole entry, so that redaction sees a `user:password@`.
    let port = |text: &str| {
        text.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            Error::config(
                field,
                format!("`{raw}`: the port is not a number from 1 to 65535"),
            )
        })
    };
    if let Some(rest) = raw.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::config(field, format!("`{raw}` has no closing `]`")))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((v6.to_owned(), Some(port(p)?))),
            None if after.is_empty() => Ok((v6.to_owned(), None)),
            None => Err(Error::config(field, format!("`{raw}` is not host[:port]"))),
        };
    }
    match raw.rsplit_once(':') {
        // More than one colon without brackets: an IPv6 literal without a port.
        Some((name, _)) if name.contains(':') => Ok((raw.to_owned(), None)),
        Some((name, p)) => Ok((name.to_owned(), Some(port(p)?))),
        None => Ok((raw.to_owned(), None)),
    }
}

/// Sets the URL's host; an IPv6 literal goes in brackets, as URLs want it.
fn set_host(url: &mut Url, host: &str, field: &str) -> Result<()> {
    let bracketed;
    let host = if host.contains(':') && !host.starts_with('[') {
        bracketed = format!("[{host}]");
        bracketed.as_str()
    } else {
        host
    };
    url.set_host(Some(host))
        .map_err(|e| Error::config(field, format!("`{host}` is not a host: {e}")))
}

fn sqlite_addresses(config: &DatabaseConfig) -> Result<Addresses> {
    if !config.read_urls.is_empty() || !config.read_hosts.is_empty() {
        return Err(Error::config(
            "read_urls",
            "SQLite reads use read-only connections to the same file; replicas are not supported",
        ));
    }
    let raw = match (&config.url, &config.name) {
        (Some(url), _) => url.expose().to_owned(),
        (None, Some(name)) => name.clone(),
        (None, None) => return Err(Error::config("name", "the SQLite file path is not set")),
    };
    let (path, memory) = sqlite_path(&raw)?;
    let write = Target {
        label: if memory {
            ":memory:".to_owned()
        } else {
            path.clone()
        },
        address: Address::Sqlite { path, memory },
        is_primary: true,
        port: 0,
        more_hosts: Vec::new(),
    };
    let read = write.clone();
    Ok(Addresses {
        write,
        reads: vec![read],
    })
}

fn server_target(url: Url, default_port: u16, is_primary: bool) -> Target {
    let host = url.host_str().unwrap_or("localhost");
    let port = url.port().unwrap_or(default_port);
    Target {
        label: format!("{host}:{port}{}", url.path()),
        address: Address::Server(url),
        is_primary,
        port,
        more_hosts: Vec::new(),
    }
}

/// The primary's URL with one host, and the further `host[:port]`s it lists
/// (`postgres://u@a:5432,b:5432/db`, libpq's and tokio-postgres' form for a
/// primary that may move), which URL parsing does not take.
fn split_hosts(raw: &str, backend: BackendKind) -> Result<(String, Vec<String>)> {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return Ok((raw.to_owned(), Vec::new()));
    };
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    let hosts_start = raw[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let hosts = &raw[hosts_start..end];
    if !hosts.contains(',') {
        return Ok((raw.to_owned(), Vec::new()));
    }
    if backend != BackendKind::Postgres {
        return Err(Error::config(
            "url",
            format!(
                "lists several hosts (`{hosts}`), which only the PostgreSQL drivers try in turn"
            ),
        ));
    }
    let mut list = hosts.split(',');
    let first = list.next().unwrap_or_default();
    let mut more = Vec::new();
    for (i, host) in list.enumerate() {
        let valid = !host.is_empty()
            && Url::parse(&format!("postgres://{host}/"))
                .is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()) && u.port() != Some(0));
        if !valid {
            return Err(Error::config(
                "url",
                format!(
                    "host {} of the list (`{host}`) is not a host or host:port",
                    i + 2
                ),
            ));
        }
        more.push(host.to_owned());
    }
    Ok((
        format!("{}{first}{}", &raw[..hosts_start], &raw[end..]),
        more,
    ))
}

fn parse_server_url(raw: &str, field: &str, backend: BackendKind) -> Result<Url> {
    let kind = BackendKind::of_url(raw, field)?;
    if kind != backend {
        return Err(Error::config(
            field,
            format!("is a {kind} URL but the primary is {backend}"),
        ));
    }
    let mut url =
        Url::parse(raw).map_err(|e| Error::config(field, format!("not a valid URL: {e}")))?;
    if url.port() == Some(0) {
        return Err(Error::config(field, "port must be between 1 and 65535"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::config(field, "has no host"));
    }
    match backend {
        // `mariadb://`: both MySQL drivers only know the `mysql` scheme.
        BackendKind::Mysql if url.scheme() != "mysql" => {
            url = Url::parse(&format!("mysql{}", &raw[raw.find("://").unwrap_or(0)..]))
                .map_err(|e| Error::config(field, format!("not a valid URL: {e}")))?;
        }
        BackendKind::Mysql | BackendKind::Postgres | BackendKind::Sqlite => {}
    }
    Ok(url)
}

fn url_from_parts(config: &DatabaseConfig, backend: BackendKind, default_port: u16) -> Result<Url> {
    let host = config.host.as_deref().unwrap_or("127.0.0.1");
    if host.trim().is_empty() {
        return Err(Error::config("host", "is empty"));
    }
    let mut url = Url::parse(&format!("{}://placeholder/", backend.driver_scheme()))
        .map_err(|e| Error::config("url", e.to_string()))?;
    set_host(&mut url, host, "host")?;
    let _ = url.set_port(Some(config.port.unwrap_or(default_port)));
    if let Some(user) = &config.user {
        url.set_username(user)
            .map_err(|()| Error::config("user", "cannot be set on this URL"))?;
    }
    if let Some(password) = &config.password {
        url.set_password(Some(password.expose()))
            .map_err(|()| Error::config("password", "cannot be set on this URL"))?;
    }
    let name = config
        .name
        .as_deref()
        .ok_or_else(|| Error::config("name", "the database name is not set"))?;
    url.path_segments_mut()
        .map_err(|()| Error::config("name", "cannot be set on this URL"))?
        .clear()
        .push(name);
    Ok(url)
}

/// The SQLite file (or in-memory database) a URL or path names, as diesel opens it.
fn sqlite_path(raw: &str) -> Result<(String, bool)> {
    let path = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))
        .unwrap_or(raw);
    if path.is_empty() {
        return Err(Error::config("url", "the SQLite path is empty"));
    }
    if path == ":memory:" {
        // A shared `:memory:` needs a name; the memdb VFS (unlike a shared cache)
        // honours the busy timeout, and a unique name keeps instances apart.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        return Ok((
            format!("file:/dbinstance-{}-{n}?vfs=memdb", std::process::id()),
            true,
        ));
    }
    Ok((path.to_owned(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_pool_size_naming_the_field() {
        let err = DatabaseConfig::from_url("postgres://u@h/db")
            .pool_size(0)
            .plan(BackendKind::Postgres)
            .unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "pool_size"),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_backend_mismatch() {
        let err = DatabaseConfig::from_url("mysql://u@h/db")
            .plan(BackendKind::Postgres)
            .unwrap_err();
        assert!(err.to_string().contains("typed for postgres"), "{err}");
    }

    #[test]
    fn loads_from_toml_with_seed_names() {
        let config: DatabaseConfig = toml::from_str(
            r#"
            url = "postgres://app:pw@db/app"
            read_urls = ["postgres://app:pw@replica/app"]
            pool_size = 5
            max_overflow = 3
            pool_timeout = 2.5
            pool_pre_ping = false
            "#,
        )
        .unwrap();
        let plan = config.plan(BackendKind::Postgres).unwrap();
        assert_eq!(plan.pool.max_size, 8);
        assert_eq!(plan.pool.pool_timeout, Duration::from_millis(2500));
        assert_eq!(plan.addresses.reads.len(), 1);
    }

    #[test]
    fn read_hosts_inherit_the_primary() {
        let config = DatabaseConfig::new()
            .backend(BackendKind::Postgres)
            .user("u")
            .password("p@ss word")
            .name("db")
            .read_host("replica:5433")
            .read_host("replica2");
        let (Addresses { write, reads }, _) = addresses(&config, BackendKind::Postgres).unwrap();
        assert_eq!(write.label, "127.0.0.1:5432/db");
        assert_eq!(reads[0].label, "replica:5433/db");
        assert_eq!(reads[1].label, "replica2:5432/db");
        assert!(!reads[0].is_primary);
    }

    #[test]
    fn a_replica_of_another_backend_is_refused() {
        let config = DatabaseConfig::from_url("postgres://h/db").read_url("mysql://h/db");
        let err = addresses(&config, BackendKind::Postgres).err().unwrap();
        assert!(err.to_string().contains("read_urls[0]"), "{err}");
    }

    fn weights_error(config: DatabaseConfig) -> (String, String) {
        match config.plan(BackendKind::Postgres) {
            Err(Error::Config { field, reason }) => (field, reason),
            other => panic!("not a config error: {other:?}"),
        }
    }

    fn two_replicas() -> DatabaseConfig {
        DatabaseConfig::from_url("postgres://u:secret@h/db")
            .read_url("postgres://u:secret@r1/db")
            .read_host("r2")
    }

    #[test]
    fn read_weights_default_to_one_per_read_target() {
        let plan = two_replicas().plan(BackendKind::Postgres).unwrap();
        assert_eq!(plan.routing.read_weights, [1, 1]);
        let plan = DatabaseConfig::from_url("postgres://h/db")
            .plan(BackendKind::Postgres)
            .unwrap();
        assert_eq!(plan.routing.read_weights, [1], "the primary's read pools");
        let plan = two_replicas()
            .read_weights([0, DatabaseConfig::MAX_READ_WEIGHT])
            .plan(BackendKind::Postgres)
            .unwrap();
        assert_eq!(plan.routing.read_weights, [0, 100]);
    }

    #[test]
    fn read_weights_must_match_the_replicas() {
        let (field, reason) = weights_error(two_replicas().read_weights([3]));
        assert_eq!(field, "read_weights");
        assert!(reason.contains("1 weights for 2 replicas"), "{reason}");
        let (field, reason) =
            weights_error(DatabaseConfig::from_url("postgres://u:secret@h/db").read_weights([1]));
        assert_eq!(field, "read_weights");
        assert!(reason.contains("for 0 replicas"), "{reason}");
    }

    #[test]
    fn a_read_weight_above_the_bound_is_named_by_its_index() {
        let (field, reason) = weights_error(two_replicas().read_weights([1, 101]));
        assert_eq!(field, "read_weights[1]");
        assert!(reason.contains("101 is more than 100"), "{reason}");
    }

    #[test]
    fn read_weights_that_are_all_zero_are_refused() {
        let (field, reason) = weights_error(two_replicas().read_weights([0, 0]));
        assert_eq!(field, "read_weights");
        assert!(reason.contains("at least one"), "{reason}");
        assert!(!reason.contains("secret"), "{reason}");
    }

    #[test]
    fn read_weights_load_from_toml_and_json() {
        let toml: DatabaseConfig = toml::from_str(
            r#"
            url = "postgres://h/db"
            read_urls = ["postgres://r1/db", "postgres://r2/db"]
            read_weights = [3, 1]
            "#,
        )
        .unwrap();
        assert_eq!(toml.read_weights, [3, 1]);
        let json: DatabaseConfig = serde_json::from_str(
            r#"{"url": "postgres://h/db", "read_hosts": ["r1", "r2"], "read_weights": [0, 2]}"#,
        )
        .unwrap();
        let plan = json.plan(BackendKind::Postgres).unwrap();
        assert_eq!(plan.routing.read_weights, [0, 2]);
        // Negative weights are refused by the parser, naming the key.
        let err = toml::from_str::<DatabaseConfig>("read_weights = [-1]").unwrap_err();
        assert!(err.to_string().contains("read_weights"), "{err}");
    }

    #[test]
    fn a_mariadb_url_reaches_the_drivers_as_mysql() {
        let config = DatabaseConfig::from_url("mariadb://u:p@h/db");
        let (Addresses { write, .. }, _) = addresses(&config, BackendKind::Mysql).unwrap();
        assert_eq!(write.label, "h:3306/db");
        assert!(matches!(write.address, Address::Server(ref url) if url.scheme() == "mysql"));
    }
}
