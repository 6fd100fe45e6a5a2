//! The crate's error type: which pool, which stage, and the cause in `source()`.

use crate::id::{PoolId, Stage};
use std::time::Duration;

/// Everything that can go wrong in this crate.
///
/// Messages name the pool and the stage; the driver's own error stays in
/// [`std::error::Error::source`]. No message contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid database configuration: `{field}`: {reason}")]
    Config {
        /// The setting that is wrong (for example `port` or `read_urls[1]`).
        field: String,
        /// Why it is wrong.
        reason: String,
    },

    /// A connection could not be opened or set up.
    #[error("{pool}: {stage} failed")]
    Connect {
        /// The pool that tried.
        pool: PoolId,
        /// `Connect` or `Setup`.
        stage: Stage,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// No connection became free within the pool timeout.
    #[error("{pool}: timed out after {timeout:?} waiting for a connection")]
    Timeout {
        /// The exhausted pool.
        pool: PoolId,
        /// How long the caller waited.
        timeout: Duration,
    },

    /// The server failed to connect moments ago, so the pool does not try again
    /// until a background probe reaches it (a circuit breaker per server): the
    /// call fails at once instead of waiting for another connect to fail.
    #[error("{pool}: server unavailable after a failed connect; next probe in {retry_after:?}")]
    Unavailable {
        /// The pool that turned the call away.
        pool: PoolId,
        /// When the next probe is due.
        retry_after: Duration,
        /// The connect failure that opened the breaker.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Every replica is further behind the primary than `max_replica_lag` (or
    /// its lag cannot be read), and `read_fallback` is off.
    #[error("{pool}: every replica is more than {max_replica_lag:?} behind the primary")]
    ReplicaLag {
        /// A read pool of the last replica looked at.
        pool: PoolId,
        /// The configured bound.
        max_replica_lag: Duration,
    },

    /// A read that must see a write (read-your-writes) found no replica that had
    /// replayed it within `read_your_writes_wait`, and `read_fallback` is off.
    #[error("{pool}: no replica replayed the write this read must see within {waited:?}")]
    WriteNotReplayed {
        /// A read pool of the last replica looked at.
        pool: PoolId,
        /// How long the read waited for a replica.
        waited: Duration,
    },

    /// A [`CommitPosition`](crate::CommitPosition) given as text (say, in a request
    /// header) is not one.
    #[error("invalid commit position: {reason}")]
    InvalidPosition {
        /// What is wrong with it.
        reason: String,
    },

    /// A transaction statement (`BEGIN`, `COMMIT`, `ROLLBACK`) or a ping failed.
    #[error("{pool}: {stage} failed")]
    Session {
        /// The pool the session came from.
        pool: PoolId,
        /// What was being done.
        stage: Stage,
        /// The driver's error.
        #[source]
        source: diesel::result::Error,
    },

    /// The connection failed while `COMMIT` was in flight, so whether the
    /// transaction was committed is unknown. Returned by the retrying closure forms
    /// ([`write_with_retry`](crate::DatabaseInstance::write_with_retry)) instead of
    /// running work again that was not declared idempotent; check what the work
    /// did before running it again.
    #[error("{pool}: the connection failed during commit; the transaction may or may not have been committed")]
    CommitOutcomeUnknown {
        /// The pool the session came from.
        pool: PoolId,
        /// The driver's error.
        #[source]
        source: diesel::result::Error,
    },

    /// SQLite: another connection's transaction kept the database locked for the
    /// whole busy timeout (`sqlite_busy_timeout_ms`) while this pool opened a
    /// connection. On `:memory:` a write transaction that has written locks out
    /// every reader until it ends (see the guide). Web services answer it with 503
    /// and `Retry-After`; a query that meets the lock inside a session returns
    /// diesel's error instead, which [`is_sqlite_busy`] recognises.
    #[error(
        "{pool}: the database stayed locked by another transaction for the whole busy timeout"
    )]
    Busy {
        /// The pool that waited.
        pool: PoolId,
        /// SQLite's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A [`DatabaseManager`](crate::DatabaseManager) has no database of that name.
    #[error("no database named `{name}` (known: {})", .known.join(", "))]
    UnknownDatabase {
        /// The name asked for.
        name: String,
        /// The names the manager knows.
        known: Vec<String>,
    },

    /// No route of the [`DatabaseManager`](crate::DatabaseManager) names this
    /// entity for this role ([`ManagerConfig::route`](crate::ManagerConfig::route)).
    #[error("no database is routed for the {role}s of `{entity}`")]
    UnroutedEntity {
        /// The entity's type name.
        entity: &'static str,
        /// Reads or writes.
        role: crate::Role,
    },

    /// A [`DatabaseManager`](crate::DatabaseManager)'s database was asked for as
    /// another backend than the one its configuration names.
    #[error("database `{name}` is {configured}, not {requested}")]
    DatabaseBackend {
        /// The database.
        name: String,
        /// Its backend.
        configured: crate::BackendKind,
        /// The backend asked for.
        requested: crate::BackendKind,
    },

    /// A write was attempted through a read-only session.
    #[error("write attempted through a read-only session")]
    ReadOnly {
        /// The server's refusal.
        #[source]
        source: diesel::result::Error,
    },

    /// A query run inside a closure session failed.
    #[error("query failed")]
    Query {
        /// The driver's error.
        #[source]
        source: diesel::result::Error,
    },

    /// A [`UnitOfWork`](crate::UnitOfWork) did not commit on every database.
    /// `committed` did, in this order, before `failed` refused (its error is the
    /// `source`); `rolled_back` were rolled back. Without two-phase commit a
    /// failure after the first commit cannot be undone: docs/guide.md, "A unit of
    /// work over several databases".
    #[error("unit of work: `{failed}` failed to commit; committed before it: {committed:?}; rolled back: {rolled_back:?}")]
    UnitOfWork {
        /// The databases that committed.
        committed: Vec<String>,
        /// The database whose commit (or prepare) failed.
        failed: String,
        /// The databases rolled back.
        rolled_back: Vec<String>,
        /// Why `failed` failed.
        #[source]
        source: Box<Error>,
    },

    /// [`close_all_connections`](crate::DatabaseInstance::close_all_connections) was called.
    #[error("{pool}: the database instance is closed")]
    Closed {
        /// The closed pool.
        pool: PoolId,
    },

    /// A blocking call was made where it would stall the async runtime, or the
    /// other way around.
    #[error("{0}")]
    Runtime(&'static str),

    /// A table registered in a [`SchemaRegistry`](crate::SchemaRegistry) is invalid,
    /// or cannot be written for this backend.
    #[error("schema: table `{table}`{}: {reason}", column_suffix(.column))]
    Schema {
        /// The table at fault.
        table: String,
        /// The column at fault, when it is one column.
        column: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// A `CREATE`, `DROP` or table lookup statement of the schema registry failed.
    #[error("schema: {action} table `{table}` failed")]
    Ddl {
        /// The table being created, dropped or looked up.
        table: String,
        /// `create`, `drop` or `look up`.
        action: &'static str,
        /// The statement that failed (it holds no secret).
        statement: String,
        /// The driver's error.
        #[source]
        source: diesel::result::Error,
    },

    /// Running embedded migrations failed.
    #[error("migrations: {}", migration_label(.migration))]
    Migration {
        /// The migration that failed (`<version>_<name>`), when one had started.
        migration: Option<String>,
        /// diesel_migrations' error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn column_suffix(column: &Option<String>) -> String {
    column
        .as_ref()
        .map(|c| format!(", column `{c}`"))
        .unwrap_or_default()
}

fn migration_label(migration: &Option<String>) -> String {
    match migration {
        Some(name) => format!("migration `{name}` failed"),
        None => "reading the applied migrations failed".to_owned(),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The reason goes through [`redact_text`](crate::secret::redact_text): it
    /// may quote what the user wrote, and that may hold a password.
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: crate::secret::redact_text(&reason.into()),
        }
    }

    pub(crate) fn schema(table: &str, column: Option<&str>, reason: impl Into<String>) -> Self {
        Error::Schema {
            table: table.to_owned(),
            column: column.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// The message and every cause under it, joined by `: ` (`read pool of
    /// h:5432/db: Connect failed: connection refused`): one line for a log or a
    /// report. No part holds a password.
    pub fn chain(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }

    /// The pool this error came from, when it came from one.
    pub fn pool(&self) -> Option<&PoolId> {
        match self {
            Error::Connect { pool, .. }
            | Error::Timeout { pool, .. }
            | Error::Session { pool, .. }
            | Error::CommitOutcomeUnknown { pool, .. }
            | Error::Unavailable { pool, .. }
            | Error::Busy { pool, .. }
            | Error::ReplicaLag { pool, .. }
            | Error::WriteNotReplayed { pool, .. }
            | Error::Closed { pool } => Some(pool),
            _ => None,
        }
    }

    /// True when the database could not be reached, no connection was free, or
    /// SQLite stayed locked for the whole busy timeout: the cases a web service
    /// answers with 503.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Busy { .. }
            | Error::Unavailable { .. }
            | Error::ReplicaLag { .. }
            | Error::WriteNotReplayed { .. }
            | Error::Timeout { .. }
            | Error::Closed { .. } => true,
            Error::Query { source } | Error::Session { source, .. } => is_sqlite_busy(source),
            _ => false,
        }
    }
}

impl Error {
    /// A commit's error, as the retrying closure forms return it when the commit's
    /// outcome is unknown.
    pub(crate) fn into_commit_outcome_unknown(self) -> Self {
        match self {
            Error::Session {
                pool,
                stage: Stage::Commit,
                source,
            } => Error::CommitOutcomeUnknown { pool, source },
            other => other,
        }
    }
}

/// True when `error` is SQLite giving up on a lock another connection held for
/// the whole busy timeout ("database is locked"): the database was busy, not
/// broken, and the same call may well succeed a moment later.
pub fn is_sqlite_busy(error: &diesel::result::Error) -> bool {
    use diesel::result::Error as DieselError;
    matches!(error, DieselError::DatabaseError(_, info)
        if info.message().contains("database is locked")
            || info.message().contains("database table is locked"))
}

/// True when `error` is the server refusing a write in a read-only session.
pub fn is_read_only_violation(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => true,
        // SQLite's `PRAGMA query_only` (SQLITE_READONLY) and MySQL's error 1792 on
        // some code paths reach diesel unclassified.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            // MariaDB's 1290 on a server with `read_only` set: a demoted primary.
            message.contains("readonly database")
                || message.contains("READ ONLY transaction")
                || message.contains("--read-only option")
        }
        _ => false,
    }
}

impl From<diesel::result::Error> for Error {
    fn from(source: diesel::result::Error) -> Self {
        if is_read_only_violation(&source) {
            Error::ReadOnly { source }
        } else {
            Error::Query { source }
        }
    }
}
