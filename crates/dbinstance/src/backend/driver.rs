//! The crate-private side of a backend: how it connects for a role, sets up a
//! session, ends a cancelled transaction, and reads a replica's lag and the
//! catalog. Generic code reaches it as `B::Driver`; each backend's folder
//! implements it.

use super::{Backend, ReplicaLag};
use crate::id::{PoolKind, Role};
use crate::position::CommitPosition;
use crate::target::{ConnectOptions, Target};
use std::future::Future;

/// The error a connection attempt ends with, before it is tied to a pool.
pub(crate) type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// One backend's behaviour. `pub` only so that [`Backend`] can name it; the module
/// is private, so nothing outside the crate can.
pub trait Driver<B: Backend>: Send + Sync + 'static {
    /// What one pool connects with, worked out once when the pool is built: the
    /// driver's connection string for the pool's role and family, and its TLS.
    type Connector: Clone + Send + Sync + 'static;

    /// Builds the connector of a pool of `role` and `kind` on `target`.
    fn connector(
        target: &Target,
        role: Role,
        kind: PoolKind,
        options: &ConnectOptions,
    ) -> Self::Connector;

    /// Why pools of `kind` must open nothing with `options`: a TLS mode the
    /// driver cannot honour. Checked before any connect; `None` when it can.
    fn refusal(_kind: PoolKind, _options: &ConnectOptions) -> Option<String> {
        None
    }

    /// Opens a blocking connection, set up for the connector's role.
    fn connect_sync(connector: &Self::Connector) -> Result<B::Connection, ConnectError>;

    /// Opens an async connection, set up for the connector's role.
    fn connect_async(
        connector: &Self::Connector,
    ) -> impl Future<Output = Result<B::AsyncConnection, ConnectError>> + Send;

    /// Begins the read-only transaction a read session runs in behind a
    /// transaction pooler, where a read-only mode for the whole session cannot hold.
    fn begin_read_only(conn: &mut B::Connection) -> diesel::QueryResult<()>;

    /// The async twin of [`begin_read_only`](Self::begin_read_only).
    fn async_begin_read_only(
        conn: &mut B::AsyncConnection,
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send;

    /// Begins an async write session's transaction. By default through
    /// diesel-async's transaction manager, which waits for the server's answer.
    fn async_begin(
        conn: &mut B::AsyncConnection,
    ) -> impl Future<Output = diesel::QueryResult<()>> + Send {
        <<B::AsyncConnection as diesel_async::AsyncConnection>::TransactionManager as diesel_async::TransactionManager<_>>::begin_transaction(conn)
    }

    /// Forgets diesel-async's transaction bookkeeping after a raw `ROLLBACK`, so a
    /// connection whose transaction future was cancelled can be used again.
    fn reset_transaction_state(conn: &mut B::AsyncConnection);

    /// Whether a connection whose transaction future was dropped can be saved with a
    /// `ROLLBACK` (otherwise it is closed and the server rolls back).
    const ROLLBACK_AFTER_CANCEL: bool;

    /// Whether a failed `ROLLBACK` only means that no transaction was open.
    fn rollback_error_is_harmless(error: &diesel::result::Error) -> bool;

    /// How far a replica is behind its primary, read on a connection to the replica.
    fn replica_lag(conn: &mut B::Connection) -> Option<ReplicaLag>;

    /// The async twin of [`replica_lag`](Self::replica_lag).
    fn async_replica_lag(
        conn: &mut B::AsyncConnection,
    ) -> impl Future<Output = Option<ReplicaLag>> + Send;

    /// The expression whose text is the primary's log position once a commit has
    /// returned (`None`: the backend has no replicas).
    const COMMIT_POSITION: Option<&'static str>;

    /// The expression whose text is how far a replica has replayed.
    const REPLAYED_POSITION: Option<&'static str>;

    /// Reads the text of [`COMMIT_POSITION`](Self::COMMIT_POSITION) or
    /// [`REPLAYED_POSITION`](Self::REPLAYED_POSITION).
    fn parse_position(text: &str) -> Option<CommitPosition>;

    /// The position of the last commit, read on the primary's connection that made it.
    fn commit_position(conn: &mut B::Connection) -> diesel::QueryResult<Option<CommitPosition>>;

    /// The async twin of [`commit_position`](Self::commit_position).
    fn async_commit_position(
        conn: &mut B::AsyncConnection,
    ) -> impl Future<Output = diesel::QueryResult<Option<CommitPosition>>> + Send;

    /// How far the replica behind `conn` has replayed.
    fn replayed_position(conn: &mut B::Connection) -> diesel::QueryResult<Option<CommitPosition>>;

    /// The async twin of [`replayed_position`](Self::replayed_position).
    fn async_replayed_position(
        conn: &mut B::AsyncConnection,
    ) -> impl Future<Output = diesel::QueryResult<Option<CommitPosition>>> + Send;

    /// The start of a query counting the base tables named by a bind that follows
    /// it (then `)`), in the schema new tables go to.
    const COUNT_TABLES_PREFIX: &'static str;

    /// Whether a table named `name` is in the schema new tables go to.
    fn table_exists(conn: &mut B::Connection, name: &str) -> diesel::QueryResult<bool>;

    /// The async twin of [`table_exists`](Self::table_exists).
    fn async_table_exists(
        conn: &mut B::AsyncConnection,
        name: &str,
    ) -> impl Future<Output = diesel::QueryResult<bool>> + Send;

    /// Lists, and with `apply` runs, the pending migrations of `source`.
    #[cfg(feature = "migrations")]
    fn migrations(
        conn: &mut B::Connection,
        source: &crate::schema::MigrationSet<'_>,
        apply: bool,
    ) -> crate::Result<Vec<crate::schema::MigrationInfo>>;

    /// Every migration of `source`, and whether it was applied.
    #[cfg(feature = "migrations")]
    fn migration_status(
        conn: &mut B::Connection,
        source: &crate::schema::MigrationSet<'_>,
    ) -> crate::Result<Vec<crate::schema::MigrationStatus>>;

    /// Reverts the last migration applied, if any.
    #[cfg(feature = "migrations")]
    fn revert_last_migration(
        conn: &mut B::Connection,
        source: &crate::schema::MigrationSet<'_>,
    ) -> crate::Result<Option<crate::schema::MigrationInfo>>;

    /// An expression that tries to take the server's migration lock without
    /// waiting, 1 when taken; with [`MIGRATION_UNLOCK`](Self::MIGRATION_UNLOCK),
    /// which gives it back. Both are held by the session (PostgreSQL's advisory
    /// lock, MySQL's `GET_LOCK`), so a runner that dies releases the lock with its
    /// connection. SQLite has none.
    const MIGRATION_LOCK: Option<&'static str>;
    /// See [`MIGRATION_LOCK`](Self::MIGRATION_LOCK).
    const MIGRATION_UNLOCK: Option<&'static str>;

    /// Runs `expression` (a lock or unlock of the migration lock): true when it
    /// returned 1.
    fn migration_lock(conn: &mut B::Connection, expression: &str) -> diesel::QueryResult<bool>;
}

/// The count query: `SELECT (<prefix> <name>)`.
macro_rules! count_tables {
    ($prefix:expr, $name:expr) => {
        diesel::select(
            diesel::dsl::sql::<diesel::sql_types::BigInt>($prefix)
                .bind::<diesel::sql_types::Text, _>($name)
                .sql(")"),
        )
    };
}
pub(crate) use count_tables;

/// The catalog and migration calls, the same text on every backend but each
/// compiled against its own connection types (diesel's typed results and its
/// migration harness cannot be named generically over [`Backend`]).
macro_rules! catalog_queries {
    () => {
        fn table_exists(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
            name: &str,
        ) -> diesel::QueryResult<bool> {
            let query = $crate::backend::driver::count_tables!(Self::COUNT_TABLES_PREFIX, name);
            diesel::RunQueryDsl::get_result::<i64>(query, conn).map(|n| n > 0)
        }

        async fn async_table_exists(
            conn: &mut <Self as $crate::backend::Backend>::AsyncConnection,
            name: &str,
        ) -> diesel::QueryResult<bool> {
            // Owned: SQLite's wrapper sends the query to a blocking thread.
            let query =
                $crate::backend::driver::count_tables!(Self::COUNT_TABLES_PREFIX, name.to_owned());
            diesel_async::RunQueryDsl::get_result::<i64>(query, conn)
                .await
                .map(|n| n > 0)
        }

        #[cfg(feature = "migrations")]
        fn migrations(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
            source: &crate::schema::MigrationSet<'_>,
            apply: bool,
        ) -> crate::Result<Vec<crate::schema::MigrationInfo>> {
            crate::schema::migrations::pending(conn, source, apply)
        }

        #[cfg(feature = "migrations")]
        fn migration_status(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
            source: &crate::schema::MigrationSet<'_>,
        ) -> crate::Result<Vec<crate::schema::MigrationStatus>> {
            crate::schema::migrations::status(conn, source)
        }

        #[cfg(feature = "migrations")]
        fn revert_last_migration(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
            source: &crate::schema::MigrationSet<'_>,
        ) -> crate::Result<Option<crate::schema::MigrationInfo>> {
            crate::schema::migrations::revert_last(conn, source)
        }

        fn migration_lock(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
            expression: &str,
        ) -> diesel::QueryResult<bool> {
            let query = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(expression));
            diesel::RunQueryDsl::get_result::<i64>(query, conn).map(|n| n == 1)
        }
    };
}
pub(crate) use catalog_queries;

/// The position reads: one expression's text, the same calls on every backend but
/// compiled against each one's connection types.
macro_rules! position_queries {
    () => {
        fn commit_position(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
        ) -> diesel::QueryResult<Option<$crate::position::CommitPosition>> {
            $crate::backend::driver::position_queries!(@sync Self::COMMIT_POSITION, conn)
        }

        async fn async_commit_position(
            conn: &mut <Self as $crate::backend::Backend>::AsyncConnection,
        ) -> diesel::QueryResult<Option<$crate::position::CommitPosition>> {
            $crate::backend::driver::position_queries!(@async Self::COMMIT_POSITION, conn)
        }

        fn replayed_position(
            conn: &mut <Self as $crate::backend::Backend>::Connection,
        ) -> diesel::QueryResult<Option<$crate::position::CommitPosition>> {
            $crate::backend::driver::position_queries!(@sync Self::REPLAYED_POSITION, conn)
        }

        async fn async_replayed_position(
            conn: &mut <Self as $crate::backend::Backend>::AsyncConnection,
        ) -> diesel::QueryResult<Option<$crate::position::CommitPosition>> {
            $crate::backend::driver::position_queries!(@async Self::REPLAYED_POSITION, conn)
        }
    };
    (@query $expression:expr) => {
        diesel::select(diesel::dsl::sql::<
            diesel::sql_types::Nullable<diesel::sql_types::Text>,
        >($expression))
    };
    (@sync $expression:expr, $conn:expr) => {{
        let Some(expression) = $expression else {
            return Ok(None);
        };
        let query = $crate::backend::driver::position_queries!(@query expression);
        let text: Option<String> = diesel::RunQueryDsl::get_result(query, $conn)?;
        Ok(text.as_deref().and_then(Self::parse_position))
    }};
    (@async $expression:expr, $conn:expr) => {{
        let Some(expression) = $expression else {
            return Ok(None);
        };
        let query = $crate::backend::driver::position_queries!(@query expression);
        let text: Option<String> = diesel_async::RunQueryDsl::get_result(query, $conn).await?;
        Ok(text.as_deref().and_then(Self::parse_position))
    }};
}
pub(crate) use position_queries;
