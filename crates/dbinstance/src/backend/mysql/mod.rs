//! MySQL and MariaDB, through libmysqlclient (blocking) and mysql_async (async).
//! Each new connection runs its pool's setup: read-only mode, the session
//! timeouts (MariaDB's names).
//!
//! - `url`: the connection string, with the blocking driver's TLS parameters.
//! - `tls`: mysql_async's TLS options.
//! - `replication`: a replica's lag.

mod replication;
mod tls;
mod url;

use super::driver::{catalog_queries, position_queries, ConnectError, Driver};
use super::{Backend, BackendKind, ReplicaLag};
use crate::id::{PoolKind, Role};
use crate::position::CommitPosition;
use crate::secret::Secret;
use crate::target::{Address, ConnectOptions, SessionTimeouts, Target};
use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection,
};
use replication::SlaveStatus;
use std::time::Duration;

/// A read-only transaction, for a read session that runs in one.
const BEGIN_READ_ONLY: &str = "START TRANSACTION READ ONLY";

/// MySQL and MariaDB, through libmysqlclient (sync) and mysql_async (async).
#[derive(Debug, Clone, Copy)]
pub struct Mysql;

impl Backend for Mysql {
    type Connection = MysqlConnection;
    type AsyncConnection = AsyncMysqlConnection;
    const KIND: BackendKind = BackendKind::Mysql;
    type Driver = Self;
}

/// Once per connection: even autocommit statements and temporary tables are refused.
const READ_ONLY: &str = "SET SESSION TRANSACTION READ ONLY";

/// What a MySQL pool connects with; its `Debug` hides the URL and the client key.
#[derive(Debug, Clone)]
pub struct MysqlConnector {
    url: Secret,
    /// Run once on every new connection: read-only mode, the session timeouts.
    setup: Vec<String>,
    /// The async pools' TLS (the blocking driver's is in the URL).
    tls: tls::AsyncTls,
}

/// The statements that set a new connection up for its pool.
fn session_setup(role: Role, timeouts: &SessionTimeouts) -> Vec<String> {
    let mut setup = Vec::new();
    if role == Role::Read {
        setup.push(READ_ONLY.to_owned());
    }
    // MariaDB's names; the lock and idle bounds take whole seconds.
    let whole_secs = |d: Duration| d.as_micros().div_ceil(1_000_000).max(1);
    let mut settings = Vec::new();
    if let Some(statement) = timeouts.statement {
        settings.push(format!(
            "max_statement_time = {:.6}",
            statement.as_secs_f64()
        ));
    }
    if let Some(lock) = timeouts.lock {
        settings.push(format!("innodb_lock_wait_timeout = {}", whole_secs(lock)));
    }
    if let Some(idle) = timeouts.idle_in_transaction {
        settings.push(format!("idle_transaction_timeout = {}", whole_secs(idle)));
    }
    if !settings.is_empty() {
        setup.push(format!("SET SESSION {}", settings.join(", ")));
    }
    setup
}

impl Driver<Mysql> for Mysql {
    type Connector = MysqlConnector;
    /// A mysql_async connection cut mid-command can leave its next command waiting
    /// forever (seen under load in the cancellation tests), so it is closed
    /// instead: the server rolls back the moment it sees the close.
    const ROLLBACK_AFTER_CANCEL: bool = false;
    const COUNT_TABLES_PREFIX: &'static str = "(SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' AND table_name = ";

    fn connector(
        target: &Target,
        role: Role,
        kind: PoolKind,
        options: &ConnectOptions,
    ) -> MysqlConnector {
        let url = match &target.address {
            Address::Server(url) => url::connection_string(url, kind, options),
            Address::Sqlite { path, .. } => Secret::new(path.clone()),
        };
        let tls = match kind {
            PoolKind::Async => tls::async_tls(&options.tls),
            PoolKind::Sync => tls::AsyncTls::Off,
        };
        MysqlConnector {
            url,
            setup: session_setup(role, &options.session_timeouts),
            tls,
        }
    }

    fn refusal(kind: PoolKind, options: &ConnectOptions) -> Option<String> {
        match kind {
            PoolKind::Sync => url::blocking_refusal(&options.tls),
            PoolKind::Async => None,
        }
    }

    fn connect_sync(connector: &MysqlConnector) -> Result<MysqlConnection, ConnectError> {
        let mut conn = MysqlConnection::establish(connector.url.expose())?;
        for statement in &connector.setup {
            conn.batch_execute(statement)?;
        }
        Ok(conn)
    }

    async fn connect_async(
        connector: &MysqlConnector,
    ) -> Result<AsyncMysqlConnection, ConnectError> {
        let opts = mysql_async::Opts::from_url(connector.url.expose())?;
        // mysql_async dials the host as the URL prints it, so an IPv6 literal
        // arrives with its brackets and fails the lookup: dial it bare.
        let host = opts.ip_or_hostname().to_owned();
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host)
            .to_owned();
        // As diesel-async's own `establish` sets it up: it keeps its own
        // statement cache, and counts found rows as the other backends do.
        let builder = mysql_async::OptsBuilder::from_opts(opts)
            .ip_or_hostname(bare)
            .stmt_cache_size(0)
            .client_found_rows(true);
        let raw = match &connector.tls {
            tls::AsyncTls::Off => mysql_async::Conn::new(builder).await?,
            tls::AsyncTls::Broken(message) => return Err(message.clone().into()),
            tls::AsyncTls::On { opts, fallback } => {
                // Over TLS only: mysql_async would move a local connection onto
                // the server's Unix socket, and leave TLS behind.
                let builder = builder.prefer_socket(false);
                match mysql_async::Conn::new(builder.clone().ssl_opts(opts.clone())).await {
                    Err(mysql_async::Error::Driver(
                        mysql_async::DriverError::NoClientSslFlagFromServer,
                    )) if *fallback => mysql_async::Conn::new(builder).await?,
                    connected => connected?,
                }
            }
        };
        let mut conn = AsyncMysqlConnection::try_from(raw).await?;
        for statement in &connector.setup {
            conn.batch_execute(statement).await?;
        }
        Ok(conn)
    }

    fn begin_read_only(conn: &mut MysqlConnection) -> diesel::QueryResult<()> {
        diesel::connection::AnsiTransactionManager::begin_transaction_sql(conn, BEGIN_READ_ONLY)
    }

    async fn async_begin_read_only(conn: &mut AsyncMysqlConnection) -> diesel::QueryResult<()> {
        AnsiTransactionManager::begin_transaction_sql(conn, BEGIN_READ_ONLY).await
    }

    fn reset_transaction_state(conn: &mut AsyncMysqlConnection) {
        *conn.transaction_state() = AnsiTransactionManager::default();
    }

    fn rollback_error_is_harmless(_: &diesel::result::Error) -> bool {
        false
    }

    fn replica_lag(conn: &mut MysqlConnection) -> Option<ReplicaLag> {
        diesel::RunQueryDsl::get_result::<SlaveStatus>(diesel::sql_query(replication::LAG), conn)
            .ok()
            .map(SlaveStatus::into_lag)
    }

    async fn async_replica_lag(conn: &mut AsyncMysqlConnection) -> Option<ReplicaLag> {
        diesel_async::RunQueryDsl::get_result::<SlaveStatus>(
            diesel::sql_query(replication::LAG),
            conn,
        )
        .await
        .ok()
        .map(SlaveStatus::into_lag)
    }

    const COMMIT_POSITION: Option<&'static str> = Some("@@last_gtid");
    const REPLAYED_POSITION: Option<&'static str> = Some("@@gtid_slave_pos");

    fn parse_position(text: &str) -> Option<CommitPosition> {
        CommitPosition::parse_gtids(text)
    }

    position_queries!();
    const MIGRATION_LOCK: Option<&'static str> =
        Some("CAST(COALESCE(GET_LOCK('dbinstance_migrations', 0), 0) AS SIGNED)");
    const MIGRATION_UNLOCK: Option<&'static str> =
        Some("CAST(COALESCE(RELEASE_LOCK('dbinstance_migrations'), 0) AS SIGNED)");

    catalog_queries!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_sets_read_only_and_the_timeouts_in_mariadb_units() {
        let timeouts = SessionTimeouts {
            statement: Some(Duration::from_millis(250)),
            lock: Some(Duration::from_millis(1500)),
            idle_in_transaction: Some(Duration::from_millis(1)),
        };
        assert_eq!(
            session_setup(Role::Read, &timeouts),
            [
                READ_ONLY.to_owned(),
                "SET SESSION max_statement_time = 0.250000, innodb_lock_wait_timeout = 2, \
                 idle_transaction_timeout = 1"
                    .to_owned(),
            ]
        );
        assert!(session_setup(Role::Write, &SessionTimeouts::default()).is_empty());
    }
}
