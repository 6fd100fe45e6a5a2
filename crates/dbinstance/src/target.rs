//! Where a pool connects, with no backend in it: the address (a server URL or a
//! SQLite file), a label safe to print, and the connect options every driver reads
//! (application name, timeouts, TLS). The config's plan builds these; each backend
//! turns them into its driver's connection string once per pool.
//!
//! The structs are `pub` in this private module only because the sealed driver
//! trait, which must be `pub` to bound [`Backend`](crate::Backend), takes them.

use crate::secret::is_secret_param;
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// SQLite's `synchronous` setting: when a commit waits for the disk. In WAL mode
/// (every file database here), `Normal` keeps every commit across a crash of the
/// process but may lose the last ones on a power loss or an operating-system crash;
/// `Full` also keeps those, at one `fsync` per commit. The database file is never
/// corrupted by either. docs/guide.md, SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// No `fsync` at all: a power loss may corrupt the database.
    Off,
    /// The default: `fsync` at checkpoints only.
    Normal,
    /// `fsync` of the WAL at every commit.
    Full,
    /// As `Full`, and the directory too when a journal is removed.
    Extra,
}

impl SqliteSynchronous {
    /// The value as `PRAGMA synchronous` takes it.
    pub const fn as_pragma(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "off" => Some(Self::Off),
            "normal" => Some(Self::Normal),
            "full" => Some(Self::Full),
            "extra" => Some(Self::Extra),
            _ => None,
        }
    }
}

/// TLS for server connections: libpq's names, one setting for every driver
/// (docs/guide.md, TLS, says what each driver does with each mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, without checking its certificate.
    Prefer,
    /// Require TLS; check the certificate only when `ssl_root_cert` is set
    /// (then as `VerifyCa`, libpq's rule).
    Require,
    /// Require TLS and a certificate signed by the root certificate.
    VerifyCa,
    /// Like `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// libpq's name for the mode.
    pub const fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// A mode by libpq's name or MySQL's (`DISABLED`, `PREFERRED`, `REQUIRED`,
    /// `VERIFY_CA`, `VERIFY_IDENTITY`), in any case, with `-` or `_`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "disable" | "disabled" => Some(SslMode::Disable),
            "prefer" | "preferred" => Some(SslMode::Prefer),
            "require" | "required" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" | "verify-identity" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS section of a plan: one place for what every driver's TLS needs, with
/// the URLs' TLS parameters merged in and the backend's default mode filled in.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub(crate) mode: SslMode,
    /// Root certificate file (PEM): the only one trusted when set.
    pub(crate) root_cert: Option<String>,
    /// Client certificate and its key (PEM files), always both or neither.
    pub(crate) client: Option<ClientCert>,
}

/// A client certificate and its private key, as PEM files.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug, Clone)]
pub(crate) struct ClientCert {
    pub(crate) cert: String,
    pub(crate) key: String,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl TlsOptions {
    /// Whether the server's certificate chain is checked: `require` with a root
    /// certificate is checked as `verify-ca`, as libpq does it.
    pub(crate) fn verifies_chain(&self) -> bool {
        match self.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => self.root_cert.is_some(),
            SslMode::Disable | SslMode::Prefer => false,
        }
    }
}

/// What opening one connection needs besides the address; each field is there
/// only when a backend that reads it is compiled in.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Reported to PostgreSQL as `application_name`.
    #[cfg(feature = "postgres")]
    pub(crate) application_name: String,
    /// libpq's own connect timeout (the pools bound every connect as well).
    #[cfg(feature = "postgres")]
    pub(crate) connect_timeout: std::time::Duration,
    /// Behind a transaction pooler: no startup settings, no named prepared statements.
    #[cfg(feature = "postgres")]
    pub(crate) transaction_pooling: bool,
    #[cfg(feature = "sqlite")]
    pub(crate) sqlite_busy_timeout_ms: u32,
    #[cfg(feature = "sqlite")]
    pub(crate) sqlite_synchronous: SqliteSynchronous,
    #[cfg(feature = "sqlite")]
    pub(crate) sqlite_wal_autocheckpoint: Option<u32>,
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) tls: TlsOptions,
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) session_timeouts: SessionTimeouts,
}

/// The server's own bounds on each session of a pool: how long a statement may
/// run, how long it may wait for a lock, how long a transaction may sit idle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionTimeouts {
    pub(crate) statement: Option<std::time::Duration>,
    pub(crate) lock: Option<std::time::Duration>,
    pub(crate) idle_in_transaction: Option<std::time::Duration>,
}

/// One server (or SQLite file) a pool connects to.
#[derive(Clone)]
pub struct Target {
    /// `host:port/database` or the SQLite path: safe to print.
    pub(crate) label: String,
    pub(crate) address: Address,
    /// True for the primary, also when it serves reads because no replica is configured.
    pub(crate) is_primary: bool,
    /// The server's port, the backend's default when the URL has none (0 for SQLite).
    pub(crate) port: u16,
    /// PostgreSQL: further `host[:port]`s the URL lists after its own, tried in
    /// turn (write pools take the first that accepts writes).
    #[cfg_attr(
        not(feature = "postgres"),
        allow(dead_code, reason = "read by PostgreSQL only")
    )]
    pub(crate) more_hosts: Vec<String>,
}

#[derive(Clone)]
pub(crate) enum Address {
    /// A server, with its port filled in and its scheme normalised for the driver.
    Server(Url),
    Sqlite {
        /// As diesel opens it (a path, or a `file:` URI for an in-memory database).
        path: String,
        memory: bool,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .field("is_primary", &self.is_primary)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// True for an in-memory SQLite database, which lives only while a connection is open.
    pub(crate) fn is_sqlite_memory(&self) -> bool {
        matches!(self.address, Address::Sqlite { memory: true, .. })
    }

    /// OpenTelemetry's `server.address`, `server.port` and `db.namespace`.
    pub(crate) fn trace_attributes(&self) -> (String, u16, String) {
        match &self.address {
            Address::Server(url) => (
                url.host_str().unwrap_or("localhost").to_owned(),
                self.port,
                url.path().trim_start_matches('/').to_owned(),
            ),
            Address::Sqlite { .. } => (String::new(), 0, self.label.clone()),
        }
    }

    /// The passwords as they stand in the URL (user-info and query string) and
    /// decoded, to scrub from driver messages.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let Address::Server(url) = &self.address else {
            return Vec::new();
        };
        let mut secrets = Vec::new();
        if let Some(p) = url.password().filter(|p| !p.is_empty()) {
            secrets.push(p.to_owned());
            secrets.push(
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
        if let Some(query) = url.query() {
            // Both as sent (encoded) and as the driver may echo it (decoded).
            for raw in query.split('&') {
                if let Some((k, v)) = raw.split_once('=') {
                    if is_secret_param(k) && !v.is_empty() {
                        secrets.push(v.to_owned());
                    }
                }
            }
            for (k, v) in url.query_pairs() {
                if is_secret_param(&k) && !v.is_empty() {
                    secrets.push(v.into_owned());
                }
            }
        }
        secrets
    }
}
