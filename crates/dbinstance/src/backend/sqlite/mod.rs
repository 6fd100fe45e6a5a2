//! SQLite, the embedded default: WAL, a busy timeout, foreign keys on, one writer
//! and several `query_only` readers. diesel-async reaches it through its
//! blocking-thread wrapper, run by a spawner of ours (`spawner`) that cannot panic
//! when a call is cancelled; there is no replication.

mod spawner;

pub use spawner::SqliteSpawner;

use super::driver::{catalog_queries, position_queries, ConnectError, Driver};
use super::{Backend, BackendKind, ReplicaLag};
use crate::id::{PoolKind, Role};
use crate::position::CommitPosition;
use crate::target::{Address, ConnectOptions, Target};
use diesel::connection::{AnsiTransactionManager, SimpleConnection};
use diesel::result::Error as DieselError;
use diesel::{Connection, SqliteConnection};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::AsyncConnection;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SQLite, the embedded default: WAL, a busy timeout, foreign keys on, one writer
/// and several `query_only` readers.
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

impl Backend for Sqlite {
    type Connection = SqliteConnection;
    type AsyncConnection = SyncConnectionWrapper<SqliteConnection, SqliteSpawner>;
    const KIND: BackendKind = BackendKind::Sqlite;
    type Driver = Self;
}

/// What a SQLite pool connects with: the path and the setup every connection runs.
#[derive(Debug, Clone)]
pub struct SqliteConnector(Arc<(String, String, Duration)>);

impl Driver<Sqlite> for Sqlite {
    type Connector = SqliteConnector;
    /// Each call finishes on its blocking thread, so a `ROLLBACK` always finds the
    /// connection idle.
    const ROLLBACK_AFTER_CANCEL: bool = true;
    const COUNT_TABLES_PREFIX: &'static str =
        "(SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ";

    fn connector(
        target: &Target,
        role: Role,
        _: PoolKind,
        options: &ConnectOptions,
    ) -> SqliteConnector {
        let (path, memory) = match &target.address {
            Address::Sqlite { path, memory } => (path.clone(), *memory),
            Address::Server(url) => (url.to_string(), false),
        };
        let mut setup = format!(
            "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
            options.sqlite_busy_timeout_ms,
            options.sqlite_synchronous.as_pragma(),
        );
        if !memory {
            // Persistent in the file; readers need it too, so every connection asks.
            setup.push_str(" PRAGMA journal_mode = WAL;");
            if let Some(pages) = options.sqlite_wal_autocheckpoint {
                // Per connection: whichever commits past the size checkpoints.
                setup.push_str(&format!(" PRAGMA wal_autocheckpoint = {pages};"));
            }
        }
        match role {
            Role::Read => setup.push_str(" PRAGMA query_only = ON;"),
            Role::Write => {}
        }
        let busy_timeout = Duration::from_millis(u64::from(options.sqlite_busy_timeout_ms));
        SqliteConnector(Arc::new((path, setup, busy_timeout)))
    }

    fn connect_sync(connector: &SqliteConnector) -> Result<SqliteConnection, ConnectError> {
        let (path, setup, busy_timeout) = &*connector.0;
        let mut conn = SqliteConnection::establish(path)?;
        // Switching a new file to WAL takes a lock that SQLite does not wait for
        // with the busy handler: connections opened at the same moment (the pools
        // at build) may get "database is locked". The setup is idempotent, so it
        // is tried again within the busy timeout.
        let started = Instant::now();
        loop {
            match conn.batch_execute(setup) {
                Ok(()) => return Ok(conn),
                Err(DieselError::DatabaseError(_, info))
                    if info.message().contains("database is locked")
                        && started.elapsed() < *busy_timeout =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn connect_async(
        connector: &SqliteConnector,
    ) -> Result<SyncConnectionWrapper<SqliteConnection, SqliteSpawner>, ConnectError> {
        let connector = connector.clone();
        let conn = tokio::task::spawn_blocking(move || Self::connect_sync(&connector)).await??;
        let spawner = SqliteSpawner::new(tokio::runtime::Handle::current());
        Ok(SyncConnectionWrapper::with_runtime(conn, spawner))
    }

    // A read connection is `query_only` already: a plain transaction is read-only.
    fn begin_read_only(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
        <AnsiTransactionManager as diesel::connection::TransactionManager<_>>::begin_transaction(
            conn,
        )
    }

    async fn async_begin_read_only(
        conn: &mut SyncConnectionWrapper<SqliteConnection, SqliteSpawner>,
    ) -> diesel::QueryResult<()> {
        type Tm = <SyncConnectionWrapper<SqliteConnection, SqliteSpawner> as AsyncConnection>::TransactionManager;
        <Tm as diesel_async::TransactionManager<_>>::begin_transaction(conn).await
    }

    fn reset_transaction_state(conn: &mut SyncConnectionWrapper<SqliteConnection, SqliteSpawner>) {
        *conn.transaction_state() = AnsiTransactionManager::default();
    }

    fn rollback_error_is_harmless(error: &DieselError) -> bool {
        // "cannot rollback - no transaction is active": the cancelled BEGIN never ran.
        matches!(error, DieselError::DatabaseError(_, info) if info.message().contains("no transaction is active"))
    }

    fn replica_lag(_: &mut SqliteConnection) -> Option<ReplicaLag> {
        None
    }

    async fn async_replica_lag(
        _: &mut SyncConnectionWrapper<SqliteConnection, SqliteSpawner>,
    ) -> Option<ReplicaLag> {
        None
    }

    const COMMIT_POSITION: Option<&'static str> = None;
    const REPLAYED_POSITION: Option<&'static str> = None;

    fn parse_position(_: &str) -> Option<CommitPosition> {
        None
    }

    position_queries!();
    // One writer at a time already; two processes migrating one file at once is
    // left to the file's own locking.
    const MIGRATION_LOCK: Option<&'static str> = None;
    const MIGRATION_UNLOCK: Option<&'static str> = None;

    catalog_queries!();
}
