//! The backends. What a backend *is* lives in its own folder (`postgres/`,
//! `mysql/`, `sqlite/`): its URL and driver parameters, its TLS, its read-only
//! setup, its replication position and lag. This module holds what every layer
//! may name: [`BackendKind`] with the facts a config needs before any driver is
//! compiled in, and the public [`Backend`] trait, which is only types and
//! constants. The behaviour sits behind the crate-private `Driver` trait.

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) mod client_cert;
mod driver;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod query;
#[cfg(feature = "sqlite")]
mod sqlite;

pub(crate) use driver::Driver;
#[cfg(feature = "mysql")]
pub use mysql::Mysql;
#[cfg(feature = "postgres")]
pub(crate) use postgres::shared_replayed_position;
#[cfg(feature = "postgres")]
pub use postgres::Postgres;
#[cfg(feature = "sqlite")]
pub use sqlite::{Sqlite, SqliteSpawner};

use crate::error::{Error, Result};
use diesel::r2d2::R2D2Connection;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which database server a configuration talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    #[serde(alias = "postgresql", alias = "pg")]
    Postgres,
    /// MySQL or MariaDB (`mysql://`, `mariadb://`).
    #[serde(alias = "mariadb")]
    Mysql,
    /// SQLite (`sqlite://path`, a bare path, or `:memory:`).
    Sqlite,
}

/// The facts about each backend that hold whether or not its driver is compiled
/// in. Every `match` here is exhaustive: a new backend is a compiler error in each.
impl BackendKind {
    /// The URL schemes that name this backend.
    pub const fn url_schemes(self) -> &'static [&'static str] {
        match self {
            BackendKind::Postgres => &["postgres", "postgresql"],
            BackendKind::Mysql => &["mysql", "mariadb"],
            BackendKind::Sqlite => &["sqlite", "file"],
        }
    }

    /// The server's port when a URL names none; `None` for SQLite.
    pub const fn default_port(self) -> Option<u16> {
        match self {
            BackendKind::Postgres => Some(5432),
            BackendKind::Mysql => Some(3306),
            BackendKind::Sqlite => None,
        }
    }

    /// Whether its connections talk to a server over a socket, where a call can
    /// wait on a server that stopped answering.
    pub(crate) const fn has_network(self) -> bool {
        match self {
            BackendKind::Postgres | BackendKind::Mysql => true,
            BackendKind::Sqlite => false,
        }
    }

    /// The cargo feature of this crate that compiles the backend in (the example
    /// services name theirs the same).
    pub const fn feature(self) -> &'static str {
        match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Mysql => "mysql",
            BackendKind::Sqlite => "sqlite",
        }
    }

    /// Whether this build has the backend: its [`feature`](Self::feature) is on.
    pub const fn is_compiled(self) -> bool {
        match self {
            BackendKind::Postgres => cfg!(feature = "postgres"),
            BackendKind::Mysql => cfg!(feature = "mysql"),
            BackendKind::Sqlite => cfg!(feature = "sqlite"),
        }
    }

    /// A name for people: "PostgreSQL", "MySQL/MariaDB", "SQLite".
    pub(crate) const fn product(self) -> &'static str {
        match self {
            BackendKind::Postgres => "PostgreSQL",
            BackendKind::Mysql => "MySQL/MariaDB",
            BackendKind::Sqlite => "SQLite",
        }
    }

    /// OpenTelemetry's `db.system.name` value.
    pub(crate) const fn telemetry_name(self) -> &'static str {
        match self {
            BackendKind::Postgres => "postgresql",
            BackendKind::Mysql => "mysql",
            BackendKind::Sqlite => "sqlite",
        }
    }

    /// The scheme both of this backend's drivers understand.
    pub(crate) const fn driver_scheme(self) -> &'static str {
        match self {
            BackendKind::Postgres => "postgres",
            // Both MySQL drivers only know the `mysql` scheme.
            BackendKind::Mysql => "mysql",
            BackendKind::Sqlite => "sqlite",
        }
    }

    /// The backend a URL (or a bare SQLite path) names; `field` names it in errors.
    pub(crate) fn of_url(url: &str, field: &str) -> Result<Self> {
        let scheme = match url.split_once("://") {
            Some((scheme, _)) => scheme.to_ascii_lowercase(),
            None if url.starts_with("sqlite:") || url.starts_with("file:") => "sqlite".into(),
            // A bare path or `:memory:`.
            None => return Ok(BackendKind::Sqlite),
        };
        [BackendKind::Postgres, BackendKind::Mysql, BackendKind::Sqlite]
            .into_iter()
            .find(|kind| kind.url_schemes().contains(&scheme.as_str()))
            .ok_or_else(|| {
                Error::config(
                    field,
                    format!(
                        "unknown scheme `{scheme}`: expected postgres://, mysql://, mariadb:// or sqlite://"
                    ),
                )
            })
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Mysql => "mysql",
            BackendKind::Sqlite => "sqlite",
        })
    }
}

/// A database backend: [`Postgres`], [`Mysql`] or [`Sqlite`].
///
/// [`DatabaseInstance`](crate::DatabaseInstance) is generic over it, so its guards deref
/// to the backend's diesel connection and queries are checked at compile time.
/// Only types and constants: how a backend connects, sets up read-only sessions
/// and measures lag is the crate's business. Sealed: the crate implements it for
/// its three backends.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The blocking diesel connection (`PgConnection`, ...).
    type Connection: diesel::Connection + R2D2Connection + Send + 'static;
    /// The diesel-async connection (`AsyncPgConnection`, ...).
    type AsyncConnection: AsyncConnection + PoolableConnection + Send + 'static;
    /// Which backend this is.
    const KIND: BackendKind;
    /// The URL schemes that name this backend.
    const URL_SCHEMES: &'static [&'static str] = Self::KIND.url_schemes();
    /// The server's port when a URL names none; `None` for SQLite.
    const DEFAULT_PORT: Option<u16> = Self::KIND.default_port();

    /// The crate-private behaviour; naming it from outside is impossible, which
    /// also seals the trait.
    #[doc(hidden)]
    type Driver: Driver<Self>;
}

/// How far a replica is behind its primary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaLag {
    /// WAL received but not yet replayed (PostgreSQL).
    pub bytes: Option<i64>,
    /// Seconds behind: PostgreSQL's replay delay (0 when fully replayed), MariaDB's
    /// `Seconds_Behind_Master`. `None` when replication is not running.
    pub seconds: Option<f64>,
}

impl ReplicaLag {
    /// Whether a replica whose lag reads `lag` is further behind than `max`: a lag
    /// that could not be read (replication stopped, the query failed) counts as
    /// too far. The lag monitor and the health report judge by this one rule.
    pub(crate) fn exceeds(lag: Option<Self>, max: std::time::Duration) -> bool {
        lag.and_then(|lag| lag.seconds)
            .is_none_or(|seconds| seconds > max.as_secs_f64())
    }
}
