//! PostgreSQL, through libpq (blocking) and tokio-postgres (async).
//!
//! - `url`: the connection string, with read-only mode as a startup parameter
//!   (not behind a transaction pooler, whose read sessions `BEGIN READ ONLY`).
//! - `tls`: `sslmode` per driver and the async connector, built once per pool.
//! - `replication`: a standby's replay lag.
//! - `pooler`: the async connection's setup behind a transaction pooler.

mod pooler;
mod replication;
mod tls;
mod url;

use super::driver::{catalog_queries, position_queries, ConnectError, Driver};
use super::{Backend, BackendKind, ReplicaLag};
use crate::id::{PoolKind, Role};
use crate::position::CommitPosition;
use crate::secret::Secret;
use crate::target::{Address, ConnectOptions, Target};
use diesel::connection::CacheSize;
use diesel::{Connection, PgConnection};
use diesel_async::{AnsiTransactionManager, AsyncConnection, AsyncPgConnection};
use replication::PgLag;
use tokio_postgres::NoTls;

/// How a read session begins behind a transaction pooler.
const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY";

/// PostgreSQL, through libpq (sync) and tokio-postgres (async).
#[derive(Debug, Clone, Copy)]
pub struct Postgres;

impl Backend for Postgres {
    type Connection = PgConnection;
    type AsyncConnection = AsyncPgConnection;
    const KIND: BackendKind = BackendKind::Postgres;
    type Driver = Self;
}

/// What a PostgreSQL pool connects with.
#[derive(Clone)]
pub struct PgConnector {
    url: Secret,
    tls: tls::Connector,
    /// Behind a transaction pooler: no named prepared statements are kept, since
    /// the next transaction may run on another server connection.
    transaction_pooling: bool,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("tls", &self.tls.is_some())
            .field("transaction_pooling", &self.transaction_pooling)
            .finish_non_exhaustive()
    }
}

impl Driver<Postgres> for Postgres {
    type Connector = PgConnector;
    const ROLLBACK_AFTER_CANCEL: bool = true;
    const COUNT_TABLES_PREFIX: &'static str = "(SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name = ";

    fn connector(
        target: &Target,
        role: Role,
        kind: PoolKind,
        options: &ConnectOptions,
    ) -> PgConnector {
        let url = match &target.address {
            Address::Server(url) => {
                url::connection_string(url, &target.more_hosts, role, kind, options)
            }
            Address::Sqlite { path, .. } => Secret::new(path.clone()),
        };
        let tls = match kind {
            PoolKind::Async => tls::connector(&options.tls),
            // libpq does its own TLS from the URL.
            PoolKind::Sync => None,
        };
        PgConnector {
            url,
            tls,
            transaction_pooling: options.transaction_pooling,
        }
    }

    fn connect_sync(connector: &PgConnector) -> Result<PgConnection, ConnectError> {
        // The application name travels as a startup parameter, and read-only mode
        // too unless behind a transaction pooler.
        let mut conn = PgConnection::establish(connector.url.expose())?;
        if connector.transaction_pooling {
            // diesel then sends each statement unnamed, parse to execute in one message
            // batch, which PgBouncer 1.18 passes on whole to one server connection.
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        Ok(conn)
    }

    async fn connect_async(connector: &PgConnector) -> Result<AsyncPgConnection, ConnectError> {
        let url = connector.url.expose();
        // Behind a transaction pooler the cache is off from the setup on: diesel-async
        // still prepares a named statement per query, which holds only inside a
        // transaction, so the instance runs every async statement in one, and without
        // the cache each statement is closed before its transaction ends.
        match (&connector.tls, connector.transaction_pooling) {
            (Some(Err(message)), _) => Err(message.clone().into()),
            (None, false) => Ok(AsyncPgConnection::establish(url).await?),
            (None, true) => {
                let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
                pooler::setup(client, connection).await
            }
            (Some(Ok(tls)), pooled) => {
                let (client, connection) = tokio_postgres::connect(url, tls.clone()).await?;
                if pooled {
                    return pooler::setup(client, connection).await;
                }
                Ok(AsyncPgConnection::try_from_client_and_connection(client, connection).await?)
            }
        }
    }

    fn begin_read_only(conn: &mut PgConnection) -> diesel::QueryResult<()> {
        diesel::connection::AnsiTransactionManager::begin_transaction_sql(conn, BEGIN_READ_ONLY)
    }

    async fn async_begin_read_only(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        AnsiTransactionManager::begin_transaction_sql(conn, BEGIN_READ_ONLY).await
    }

    async fn async_begin(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        send_begin(conn)
    }

    fn reset_transaction_state(conn: &mut AsyncPgConnection) {
        *conn.transaction_state() = AnsiTransactionManager::default();
    }

    fn rollback_error_is_harmless(_: &diesel::result::Error) -> bool {
        false
    }

    fn replica_lag(conn: &mut PgConnection) -> Option<ReplicaLag> {
        diesel::RunQueryDsl::get_result::<PgLag>(diesel::sql_query(replication::LAG), conn)
            .ok()
            .map(PgLag::into_lag)
    }

    async fn async_replica_lag(conn: &mut AsyncPgConnection) -> Option<ReplicaLag> {
        diesel_async::RunQueryDsl::get_result::<PgLag>(diesel::sql_query(replication::LAG), conn)
            .await
            .ok()
            .map(PgLag::into_lag)
    }

    const COMMIT_POSITION: Option<&'static str> = Some("pg_current_wal_flush_lsn()::text");
    const REPLAYED_POSITION: Option<&'static str> = Some("pg_last_wal_replay_lsn()::text");

    fn parse_position(text: &str) -> Option<CommitPosition> {
        CommitPosition::parse_lsn(text)
    }

    position_queries!();
    // Any key will do if it is the same everywhere: the bytes of "dbinstan".
    const MIGRATION_LOCK: Option<&'static str> =
        Some("(CASE WHEN pg_try_advisory_lock(7233187106487136622) THEN 1 ELSE 0 END)::int8");
    const MIGRATION_UNLOCK: Option<&'static str> =
        Some("(CASE WHEN pg_advisory_unlock(7233187106487136622) THEN 1 ELSE 0 END)::int8");

    catalog_queries!();
}

/// [`Driver::async_replayed_position`] on a connection other sessions share.
pub(crate) async fn shared_replayed_position(
    conn: &AsyncPgConnection,
) -> diesel::QueryResult<Option<CommitPosition>> {
    let Some(expression) = <Postgres as Driver<Postgres>>::REPLAYED_POSITION else {
        return Ok(None);
    };
    let query = position_queries!(@query expression);
    let text: Option<String> = diesel_async::RunQueryDsl::get_result(query, &mut &*conn).await?;
    Ok(text
        .as_deref()
        .and_then(<Postgres as Driver<Postgres>>::parse_position))
}

/// Begins a transaction without waiting for the server: `BEGIN` is handed to the
/// connection's writer, and the session's first statement follows it without a
/// round trip of its own. The server answers `BEGIN` first; that answer is read
/// and dropped. On a connection the pool hands out idle and healthy, `BEGIN` can
/// only fail with the connection itself, and then every statement after it fails
/// too, so no statement runs outside the transaction unseen.
fn send_begin(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
    use diesel_async::{SimpleAsyncConnection, TransactionManager};
    use futures_util::FutureExt;
    match AnsiTransactionManager::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(status) if status.transaction_depth().is_some() => {
            return Err(diesel::result::Error::AlreadyInTransaction);
        }
        TransactionManagerStatus::Valid(_) => {}
        TransactionManagerStatus::InError => {
            return Err(diesel::result::Error::BrokenTransactionManager);
        }
    }
    let mut shared: &AsyncPgConnection = conn;
    // One poll queues `BEGIN` (diesel-async polls the client's future first, and
    // tokio-postgres queues the request on its first poll). A failure already
    // known, a closed connection, comes back at once.
    if let Some(Err(e)) = shared.batch_execute("BEGIN").now_or_never() {
        return Err(e);
    }
    match AnsiTransactionManager::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(status) => {
            status.change_transaction_depth(TransactionDepthChange::IncreaseDepth)
        }
        TransactionManagerStatus::InError => Err(diesel::result::Error::BrokenTransactionManager),
    }
}
