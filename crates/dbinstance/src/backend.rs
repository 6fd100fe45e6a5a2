//! The backends: marker types tying a [`BackendKind`] to diesel's sync and async
//! connection types, with each one's connection setup.

use crate::config::{BackendKind, PoolSettings};
use crate::endpoint::Endpoint;
use crate::id::{PoolKind, Role};
use diesel::r2d2::R2D2Connection;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::AsyncConnection;
use std::future::Future;

/// The error a connection attempt ends with, before it is tied to a pool.
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// A database backend: [`Postgres`], [`Mysql`] or [`Sqlite`].
///
/// [`DatabaseInstance`](crate::DatabaseInstance) is generic over it, so its guards deref
/// to the backend's diesel connection and queries are checked at compile time.
/// Sealed: the crate implements it for its three backends.
pub trait Backend: private::Sealed + Sized + Send + Sync + 'static {
    /// The blocking diesel connection (`PgConnection`, ...).
    type Connection: diesel::Connection + R2D2Connection + Send + 'static;
    /// The diesel-async connection (`AsyncPgConnection`, ...).
    type AsyncConnection: AsyncConnection + PoolableConnection + Send + 'static;
    /// Which backend this is.
    const KIND: BackendKind;

    /// Opens a blocking connection set up for `role`.
    #[doc(hidden)]
    fn connect_sync(
        endpoint: &Endpoint,
        role: Role,
        settings: &PoolSettings,
    ) -> Result<Self::Connection, ConnectError>;

    /// Opens an async connection set up for `role`.
    #[doc(hidden)]
    fn connect_async(
        endpoint: &Endpoint,
        role: Role,
        settings: &PoolSettings,
    ) -> impl Future<Output = Result<Self::AsyncConnection, ConnectError>> + Send;

    /// Forgets diesel-async's transaction bookkeeping after a raw `ROLLBACK`, so a
    /// connection whose transaction future was cancelled can be used again.
    #[doc(hidden)]
    fn reset_transaction_state(conn: &mut Self::AsyncConnection);

    /// Whether a connection whose transaction future was dropped can be saved with a
    /// `ROLLBACK`. tokio-postgres queues whole requests and SQLite finishes each call
    /// on its blocking thread, so they can. A mysql_async connection cut mid-command
    /// can leave its next command waiting forever (seen under load in the
    /// cancellation tests), so MySQL connections are closed instead: the server
    /// rolls back the moment it sees the close.
    #[doc(hidden)]
    const ROLLBACK_AFTER_CANCEL: bool = true;

    /// How far a replica is behind its primary, read on a connection to the replica.
    #[doc(hidden)]
    fn replica_lag(conn: &mut Self::Connection) -> Option<ReplicaLag> {
        let _ = conn;
        None
    }

    /// The async twin of [`replica_lag`](Self::replica_lag).
    #[doc(hidden)]
    fn async_replica_lag(
        conn: &mut Self::AsyncConnection,
    ) -> impl Future<Output = Option<ReplicaLag>> + Send {
        let _ = conn;
        std::future::ready(None)
    }

    /// Whether a table named `name` is in the schema new tables go to.
    #[doc(hidden)]
    fn table_exists(conn: &mut Self::Connection, name: &str) -> diesel::QueryResult<bool>;

    /// The async twin of [`table_exists`](Self::table_exists).
    #[doc(hidden)]
    fn async_table_exists(
        conn: &mut Self::AsyncConnection,
        name: &str,
    ) -> impl Future<Output = diesel::QueryResult<bool>> + Send;

    /// Lists, and with `apply` runs, the pending migrations of `source`.
    #[cfg(feature = "migrations")]
    #[doc(hidden)]
    fn migrations(
        conn: &mut Self::Connection,
        source: &diesel_migrations::EmbeddedMigrations,
        apply: bool,
    ) -> crate::Result<Vec<crate::schema::MigrationInfo>>;

    /// Whether a failed `ROLLBACK` only means that no transaction was open.
    #[doc(hidden)]
    fn rollback_error_is_harmless(error: &diesel::result::Error) -> bool {
        let _ = error;
        false
    }
}

/// How far a replica is behind its primary.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct ReplicaLag {
    /// WAL received but not yet replayed (PostgreSQL).
    pub bytes: Option<i64>,
    /// Seconds behind: PostgreSQL's replay delay (0 when fully replayed), MariaDB's
    /// `Seconds_Behind_Master`. `None` when replication is not running.
    pub seconds: Option<f64>,
}

pub(crate) mod private {
    /// Keeps [`Backend`](super::Backend) implementable only here.
    pub trait Sealed {}
}

use diesel::connection::SimpleConnection;

/// The schema queries each backend runs on its own connection types.
macro_rules! schema_queries {
    () => {
        fn table_exists(conn: &mut Self::Connection, name: &str) -> diesel::QueryResult<bool> {
            diesel::RunQueryDsl::get_result::<i64>(
                crate::schema::inspect::count_tables!(Self::KIND, name),
                conn,
            )
            .map(|n| n > 0)
        }

        async fn async_table_exists(
            conn: &mut Self::AsyncConnection,
            name: &str,
        ) -> diesel::QueryResult<bool> {
            // Owned: SQLite's wrapper sends the query to a blocking thread.
            let query = crate::schema::inspect::count_tables!(Self::KIND, name.to_owned());
            diesel_async::RunQueryDsl::get_result::<i64>(query, conn)
                .await
                .map(|n| n > 0)
        }

        #[cfg(feature = "migrations")]
        fn migrations(
            conn: &mut Self::Connection,
            source: &diesel_migrations::EmbeddedMigrations,
            apply: bool,
        ) -> crate::Result<Vec<crate::schema::MigrationInfo>> {
            crate::schema::migrations::pending(conn, source, apply)
        }
    };
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::config::SslMode;
    use diesel::{Connection, PgConnection};
    use diesel_async::{AnsiTransactionManager, AsyncPgConnection};

    /// Replay lag on a standby; the seconds are 0 when everything received is replayed
    /// (the replay timestamp alone grows while the primary is idle).
    const PG_LAG: &str = "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 AS lag_bytes, \
         CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8 \
         ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag_seconds";

    #[derive(diesel::QueryableByName)]
    struct PgLag {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        lag_bytes: Option<i64>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
        lag_seconds: Option<f64>,
    }

    impl PgLag {
        fn into_lag(self) -> ReplicaLag {
            ReplicaLag {
                bytes: self.lag_bytes,
                seconds: self.lag_seconds,
            }
        }
    }

    /// PostgreSQL, through libpq (sync) and tokio-postgres (async).
    #[derive(Debug, Clone, Copy)]
    pub struct Postgres;

    impl private::Sealed for Postgres {}

    impl Backend for Postgres {
        const KIND: BackendKind = BackendKind::Postgres;
        schema_queries!();
        type Connection = PgConnection;
        type AsyncConnection = AsyncPgConnection;

        fn connect_sync(
            endpoint: &Endpoint,
            role: Role,
            settings: &PoolSettings,
        ) -> Result<PgConnection, ConnectError> {
            // Read-only mode and the application name travel as startup parameters.
            let url = endpoint.connection_string(role, PoolKind::Sync, settings);
            Ok(PgConnection::establish(url.expose())?)
        }

        async fn connect_async(
            endpoint: &Endpoint,
            role: Role,
            settings: &PoolSettings,
        ) -> Result<AsyncPgConnection, ConnectError> {
            let url = endpoint.connection_string(role, PoolKind::Async, settings);
            match endpoint.ssl() {
                (None | Some(SslMode::Disable), _) => {
                    Ok(AsyncPgConnection::establish(url.expose()).await?)
                }
                (Some(mode), root_cert) => {
                    let mut tls = native_tls::TlsConnector::builder();
                    match mode {
                        SslMode::VerifyFull => {}
                        SslMode::VerifyCa => {
                            tls.danger_accept_invalid_hostnames(true);
                        }
                        _ => {
                            tls.danger_accept_invalid_certs(true);
                        }
                    }
                    if let Some(path) = root_cert {
                        let pem = std::fs::read(path)?;
                        tls.add_root_certificate(native_tls::Certificate::from_pem(&pem)?);
                    }
                    let connector = postgres_native_tls::MakeTlsConnector::new(tls.build()?);
                    let (client, connection) =
                        tokio_postgres::connect(url.expose(), connector).await?;
                    Ok(
                        AsyncPgConnection::try_from_client_and_connection(client, connection)
                            .await?,
                    )
                }
            }
        }

        fn reset_transaction_state(conn: &mut AsyncPgConnection) {
            *conn.transaction_state() = AnsiTransactionManager::default();
        }

        fn replica_lag(conn: &mut PgConnection) -> Option<ReplicaLag> {
            diesel::RunQueryDsl::get_result::<PgLag>(diesel::sql_query(PG_LAG), conn)
                .ok()
                .map(PgLag::into_lag)
        }

        async fn async_replica_lag(conn: &mut AsyncPgConnection) -> Option<ReplicaLag> {
            diesel_async::RunQueryDsl::get_result::<PgLag>(diesel::sql_query(PG_LAG), conn)
                .await
                .ok()
                .map(PgLag::into_lag)
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use diesel::{Connection, MysqlConnection};
    use diesel_async::{AnsiTransactionManager, AsyncMysqlConnection, SimpleAsyncConnection};

    #[derive(diesel::QueryableByName)]
    struct SlaveStatus {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        #[diesel(column_name = "Seconds_Behind_Master")]
        seconds_behind: Option<i64>,
    }

    impl SlaveStatus {
        fn into_lag(self) -> ReplicaLag {
            ReplicaLag {
                bytes: None,
                #[allow(clippy::cast_precision_loss)]
                seconds: self.seconds_behind.map(|s| s as f64),
            }
        }
    }

    /// MySQL and MariaDB, through libmysqlclient (sync) and mysql_async (async).
    #[derive(Debug, Clone, Copy)]
    pub struct Mysql;

    /// Once per connection: even autocommit statements and temporary tables are refused.
    const READ_ONLY: &str = "SET SESSION TRANSACTION READ ONLY";

    impl private::Sealed for Mysql {}

    impl Backend for Mysql {
        const KIND: BackendKind = BackendKind::Mysql;
        schema_queries!();
        const ROLLBACK_AFTER_CANCEL: bool = false;
        type Connection = MysqlConnection;
        type AsyncConnection = AsyncMysqlConnection;

        fn connect_sync(
            endpoint: &Endpoint,
            role: Role,
            settings: &PoolSettings,
        ) -> Result<MysqlConnection, ConnectError> {
            let url = endpoint.connection_string(role, PoolKind::Sync, settings);
            let mut conn = MysqlConnection::establish(url.expose())?;
            if role == Role::Read {
                conn.batch_execute(READ_ONLY)?;
            }
            Ok(conn)
        }

        async fn connect_async(
            endpoint: &Endpoint,
            role: Role,
            settings: &PoolSettings,
        ) -> Result<AsyncMysqlConnection, ConnectError> {
            let url = endpoint.connection_string(role, PoolKind::Async, settings);
            let mut conn = AsyncMysqlConnection::establish(url.expose()).await?;
            if role == Role::Read {
                conn.batch_execute(READ_ONLY).await?;
            }
            Ok(conn)
        }

        fn reset_transaction_state(conn: &mut AsyncMysqlConnection) {
            *conn.transaction_state() = AnsiTransactionManager::default();
        }

        fn replica_lag(conn: &mut MysqlConnection) -> Option<ReplicaLag> {
            diesel::RunQueryDsl::get_result::<SlaveStatus>(
                diesel::sql_query("SHOW SLAVE STATUS"),
                conn,
            )
            .ok()
            .map(SlaveStatus::into_lag)
        }

        async fn async_replica_lag(conn: &mut AsyncMysqlConnection) -> Option<ReplicaLag> {
            diesel_async::RunQueryDsl::get_result::<SlaveStatus>(
                diesel::sql_query("SHOW SLAVE STATUS"),
                conn,
            )
            .await
            .ok()
            .map(SlaveStatus::into_lag)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use diesel::connection::AnsiTransactionManager;
    use diesel::result::Error as DieselError;
    use diesel::{Connection, SqliteConnection};
    use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

    /// SQLite, the embedded default: WAL, a busy timeout, foreign keys on, one writer
    /// and several `query_only` readers.
    #[derive(Debug, Clone, Copy)]
    pub struct Sqlite;

    impl private::Sealed for Sqlite {}

    impl Backend for Sqlite {
        const KIND: BackendKind = BackendKind::Sqlite;
        schema_queries!();
        type Connection = SqliteConnection;
        type AsyncConnection = SyncConnectionWrapper<SqliteConnection>;

        fn connect_sync(
            endpoint: &Endpoint,
            role: Role,
            settings: &PoolSettings,
        ) -> Result<SqliteConnection, ConnectError> {
            let path = endpoint.connection_string(role, PoolKind::Sync, settings);
            let mut conn = SqliteConnection::establish(path.expose())?;
            let mut setup = format!(
                "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                settings.sqlite_busy_timeout_ms
            );
            if !endpoint.is_sqlite_memory() {
                // Persistent in the file; readers need it too, so every connection asks.
                setup.push_str(" PRAGMA journal_mode = WAL;");
            }
            if role == Role::Read {
                setup.push_str(" PRAGMA query_only = ON;");
            }
            conn.batch_execute(&setup)?;
            Ok(conn)
        }

        async fn connect_async(
            endpoint: &Endpoint,
            role: Role,
            settings: &PoolSettings,
        ) -> Result<Self::AsyncConnection, ConnectError> {
            let (endpoint, settings) = (endpoint.clone(), settings.clone());
            let conn =
                tokio::task::spawn_blocking(move || Self::connect_sync(&endpoint, role, &settings))
                    .await??;
            Ok(SyncConnectionWrapper::new(conn))
        }

        fn reset_transaction_state(conn: &mut Self::AsyncConnection) {
            *conn.transaction_state() = AnsiTransactionManager::default();
        }

        fn rollback_error_is_harmless(error: &DieselError) -> bool {
            // "cannot rollback - no transaction is active": the cancelled BEGIN never ran.
            matches!(error, DieselError::DatabaseError(_, info) if info.message().contains("no transaction is active"))
        }
    }
}

#[cfg(feature = "mysql")]
pub use mysql::Mysql;
#[cfg(feature = "postgres")]
pub use postgres::Postgres;
#[cfg(feature = "sqlite")]
pub use sqlite::Sqlite;
