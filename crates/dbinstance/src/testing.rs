//! Test support (feature `testing`): a database of its own for every test, so tests
//! run in parallel and leave nothing behind: [`sqlite_memory`], [`PgSchema`],
//! [`MysqlDatabase`].
//!
//! Web apps built with `dbinstance-axum` or `dbinstance-actix` take the instance
//! from their state, so a test swaps the database by building the app on its own
//! instance: write the app as a function of the instance and call it with
//! [`sqlite_memory`] or a [`PgSchema`]'s instance.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), dbinstance::Error> {
//! let db = dbinstance::testing::sqlite_memory().await?;
//! db.async_create_tables().await?; // after registering the app's tables
//! # Ok(()) }
//! ```

#[cfg(feature = "mysql")]
use crate::Mysql;
#[cfg(feature = "postgres")]
use crate::Postgres;
#[cfg(feature = "sqlite")]
use crate::Sqlite;
use crate::{DatabaseConfig, DatabaseInstance};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use diesel::{connection::SimpleConnection, Connection};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::fmt;

#[cfg(feature = "sqlite")]
/// A new in-memory SQLite database, its own and empty, gone when the last clone of
/// the instance is dropped. Built without blocking the runtime.
///
/// # Errors
/// As [`InstanceBuilder::build_async`](crate::InstanceBuilder::build_async).
pub async fn sqlite_memory() -> crate::Result<DatabaseInstance<Sqlite>> {
    DatabaseInstance::builder(DatabaseConfig::from_url(":memory:"))
        .build_async()
        .await
}

#[cfg(feature = "postgres")]
/// A PostgreSQL schema of its own for one test: created with a unique name, put
/// first on the `search_path` of every connection of [`config`](Self::config), and
/// dropped with everything in it (`DROP SCHEMA ... CASCADE`) when this value is
/// dropped.
///
/// Tables created through the instance (`create_tables`, migrations) land in the
/// schema, so tests that use the same table names run in parallel against one
/// database. With a streaming replica, give its URL with
/// [`with_replica`](Self::with_replica): the schema reaches it through replication.
///
/// ```no_run
/// use dbinstance::testing::PgSchema;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let schema = PgSchema::create("postgres://postgres@127.0.0.1:5432/test")?
///     .with_replica("postgres://postgres@127.0.0.1:5433/test");
/// let db = schema.instance().await?;
/// db.async_create_tables().await?;
/// // ... the test ...
/// drop(db);
/// drop(schema); // DROP SCHEMA ... CASCADE
/// # Ok(()) }
/// ```
pub struct PgSchema {
    name: String,
    url: String,
    read_url: Option<String>,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// Creates a uniquely named schema on the server at `url` (a `postgres://` URL
    /// without an `options` parameter).
    ///
    /// # Errors
    /// When the server cannot be reached or the schema cannot be created.
    pub fn create(url: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let name = unique_name();
        let mut conn = diesel::PgConnection::establish(url)?;
        conn.batch_execute(&format!("CREATE SCHEMA \"{name}\""))?;
        Ok(Self {
            name,
            url: url.to_owned(),
            read_url: None,
        })
    }

    /// Reads go to the replica at `read_url`, on the same schema.
    #[must_use]
    pub fn with_replica(mut self, read_url: &str) -> Self {
        self.read_url = Some(read_url.to_owned());
        self
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A config whose connections (primary and replica) use the schema; change its
    /// pool settings before building.
    pub fn config(&self) -> DatabaseConfig {
        let config = DatabaseConfig::from_url(with_search_path(&self.url, &self.name));
        match &self.read_url {
            Some(read) => config.read_url(with_search_path(read, &self.name)),
            None => config,
        }
    }

    /// An instance on [`config`](Self::config), built without blocking the runtime.
    ///
    /// # Errors
    /// As [`InstanceBuilder::build_async`](crate::InstanceBuilder::build_async).
    pub async fn instance(&self) -> crate::Result<DatabaseInstance<Postgres>> {
        DatabaseInstance::builder(self.config()).build_async().await
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgSchema {
    fn drop(&mut self) {
        let dropped = diesel::PgConnection::establish(&self.url)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                conn.batch_execute(&format!(
                    "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.name
                ))
                .map_err(|e| e.to_string())
            });
        if let Err(error) = dropped {
            eprintln!("PgSchema: could not drop schema {}: {error}", self.name);
        }
    }
}

#[cfg(feature = "postgres")]
impl fmt::Debug for PgSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSchema")
            .field("name", &self.name)
            .field("replica", &self.read_url.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "mysql")]
/// A MySQL or MariaDB database of its own for one test: created with a unique name
/// on the server of `url`, used by every connection of [`config`](Self::config), and
/// dropped with everything in it (`DROP DATABASE`) when this value is dropped.
///
/// With a replica, give its URL with [`with_replica`](Self::with_replica): the
/// database reaches it through replication. The user needs the right to create
/// databases.
///
/// ```no_run
/// use dbinstance::testing::MysqlDatabase;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let database = MysqlDatabase::create("mysql://root@127.0.0.1:3307/test")?
///     .with_replica("mysql://root@127.0.0.1:3308/test");
/// let db = database.instance().await?;
/// # Ok(()) }
/// ```
pub struct MysqlDatabase {
    name: String,
    url: String,
    read_url: Option<String>,
    /// The primary's GTID position right after the database was created.
    position: String,
}

#[cfg(feature = "mysql")]
impl MysqlDatabase {
    /// Creates a uniquely named database on the server at `url` (a `mysql://` URL;
    /// its own database name is only used to connect).
    ///
    /// # Errors
    /// When the URL does not parse, the server cannot be reached or the database
    /// cannot be created.
    pub fn create(url: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let name = unique_name();
        let mut conn = diesel::MysqlConnection::establish(url)?;
        conn.batch_execute(&format!("CREATE DATABASE `{name}`"))?;
        // Where the binary log stands after the CREATE (empty without a binary
        // log), for `with_replica` to wait on.
        let position = diesel::RunQueryDsl::get_result::<String>(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                "@@gtid_binlog_pos",
            )),
            &mut conn,
        )
        .unwrap_or_default();
        Ok(Self {
            name,
            url: url.to_owned(),
            read_url: None,
            position,
        })
    }

    /// Reads go to the replica at `read_url`, on the same database. Waits (up to
    /// 10 s) until the replica has applied the database's creation, so that an
    /// instance built right after can open its read pool there.
    #[must_use]
    pub fn with_replica(mut self, read_url: &str) -> Self {
        if !self.position.is_empty() && !self.position.contains('\'') {
            // A failure here leaves the wait to whoever connects next, which then
            // reports the error itself.
            if let Ok(mut replica) = diesel::MysqlConnection::establish(read_url) {
                let _ =
                    replica.batch_execute(&format!("DO MASTER_GTID_WAIT('{}', 10)", self.position));
            }
        }
        self.read_url = Some(read_url.to_owned());
        self
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A config whose connections (primary and replica) use the database; change
    /// its pool settings before building.
    pub fn config(&self) -> DatabaseConfig {
        let config = DatabaseConfig::from_url(with_database(&self.url, &self.name));
        match &self.read_url {
            Some(read) => config.read_url(with_database(read, &self.name)),
            None => config,
        }
    }

    /// An instance on [`config`](Self::config), built without blocking the runtime.
    ///
    /// # Errors
    /// As [`InstanceBuilder::build_async`](crate::InstanceBuilder::build_async).
    pub async fn instance(&self) -> crate::Result<DatabaseInstance<Mysql>> {
        DatabaseInstance::builder(self.config()).build_async().await
    }
}

#[cfg(feature = "mysql")]
impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let dropped = diesel::MysqlConnection::establish(&self.url)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = dropped {
            eprintln!(
                "MysqlDatabase: could not drop database {}: {error}",
                self.name
            );
        }
    }
}

#[cfg(feature = "mysql")]
impl fmt::Debug for MysqlDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlDatabase")
            .field("name", &self.name)
            .field("replica", &self.read_url.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
/// `dbi_test_<pid>_<time>_<n>`: unique across the tests of one run and across runs.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "dbi_test_{}_{nanos:x}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(feature = "mysql")]
/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{name}"));
            parsed.into()
        }
        // Left for the instance builder to report.
        Err(_) => url.to_owned(),
    }
}

#[cfg(feature = "postgres")]
/// `url` with `options=-c search_path=<schema>` added to its query.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

#[cfg(all(test, feature = "postgres", feature = "mysql"))]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_is_added_to_the_query() {
        assert_eq!(
            with_search_path("postgres://h/db", "s1"),
            "postgres://h/db?options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            with_search_path("postgres://h/db?sslmode=disable", "s1"),
            "postgres://h/db?sslmode=disable&options=-c%20search_path%3Ds1"
        );
        assert_ne!(unique_name(), unique_name());
        assert_eq!(
            with_database(
                "mysql://root:pw@127.0.0.1:3307/test?ssl_mode=disabled",
                "d1"
            ),
            "mysql://root:pw@127.0.0.1:3307/d1?ssl_mode=disabled"
        );
    }
}
