//! Several named databases in one service: a [`DatabaseManager`] built from one
//! configuration, with a default, lookup by name (typed by backend or not), the
//! sessions of a database by name, a unit of work over several of them, and
//! health, statistics, warm-up and close of them all.

mod any;
mod config;
mod entity;
mod unit_of_work;

pub use any::AnyInstance;
pub use config::ManagerConfig;
pub use unit_of_work::{AsyncUnitOfWork, UnitOfWork};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::health::HealthReport;
use crate::id::Role;
use crate::instance::DatabaseInstance;
use crate::pool::PoolStats;
use crate::session::{AsyncSession, Session};
use config::EntityRoute;
use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Named databases of mixed backends, one of them the default. Cheap to clone:
/// clones share the databases.
///
/// ```
/// use dbinstance::{DatabaseConfig, DatabaseManager, ManagerConfig, Sqlite};
///
/// let manager = DatabaseManager::new(
///     ManagerConfig::new()
///         .database("main", DatabaseConfig::from_url(":memory:"))
///         .database("cache", DatabaseConfig::from_url(":memory:"))
///         .default_database("main"),
/// )?;
/// let mut session = manager.get_db_cm_read::<Sqlite>("cache")?;
/// let main = manager.default_database::<Sqlite>()?;
/// assert!(manager.get::<Sqlite>("billing").is_err());
/// # drop(session); drop(main);
/// # Ok::<(), dbinstance::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DatabaseManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    default: String,
    databases: BTreeMap<String, AnyInstance>,
    routes: HashMap<(TypeId, Role), EntityRoute>,
}

impl DatabaseManager {
    /// Builds every database and connects once to each of their servers, so a
    /// wrong URL or a server that is down fails here. Blocks.
    ///
    /// # Errors
    /// [`Error::Config`] naming the database and its field (`databases.main.url`),
    /// or the first database's [`Error::Connect`].
    pub fn new(config: ManagerConfig) -> Result<Self> {
        Self::build(config, false)
    }

    /// Like [`new`](Self::new), validating only: connections open on first use.
    ///
    /// # Errors
    /// [`Error::Config`] naming the database and its field.
    pub fn new_lazy(config: ManagerConfig) -> Result<Self> {
        Self::build(config, true)
    }

    /// Like [`new`](Self::new), connecting from async code through the async
    /// pools, one database after another.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub async fn new_async(config: ManagerConfig) -> Result<Self> {
        let manager = Self::build(config, true)?;
        for database in manager.inner.databases.values() {
            database.async_check().await?;
        }
        Ok(manager)
    }

    fn build(config: ManagerConfig, lazy: bool) -> Result<Self> {
        let default = config.default_name()?;
        let routes = config.routes;
        let mut databases = BTreeMap::new();
        for (name, database) in config.databases {
            let in_database = |error: Error| match error {
                Error::Config { field, reason } => Error::Config {
                    field: format!("databases.{name}.{field}"),
                    reason,
                },
                other => other,
            };
            let kind = database.backend_kind().map_err(in_database)?;
            let instance = AnyInstance::build(kind, database, lazy).map_err(in_database)?;
            databases.insert(name, instance);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                default,
                databases,
                routes,
            }),
        })
    }

    /// The default database's name.
    pub fn default_name(&self) -> &str {
        &self.inner.default
    }

    /// The names of the databases, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.databases.keys().map(String::as_str)
    }

    /// The database `name`, whatever its backend.
    ///
    /// # Errors
    /// [`Error::UnknownDatabase`] naming it and the known ones.
    pub fn database(&self, name: &str) -> Result<&AnyInstance> {
        self.inner
            .databases
            .get(name)
            .ok_or_else(|| Error::UnknownDatabase {
                name: name.to_owned(),
                known: self.inner.databases.keys().cloned().collect(),
            })
    }

    /// The database `name`, typed by its backend.
    ///
    /// # Errors
    /// [`Error::UnknownDatabase`], or [`Error::DatabaseBackend`] when `name` is of
    /// another backend than `B`.
    pub fn get<B: Backend>(&self, name: &str) -> Result<&DatabaseInstance<B>> {
        let database = self.database(name)?;
        database.typed().ok_or_else(|| Error::DatabaseBackend {
            name: name.to_owned(),
            configured: database.backend(),
            requested: B::KIND,
        })
    }

    /// The default database, typed by its backend.
    ///
    /// # Errors
    /// [`Error::DatabaseBackend`] when it is of another backend than `B`.
    pub fn default_database<B: Backend>(&self) -> Result<&DatabaseInstance<B>> {
        self.get(&self.inner.default)
    }

    /// A blocking read session of the database `name`.
    ///
    /// # Errors
    /// Those of [`get`](Self::get) and of
    /// [`DatabaseInstance::get_db_cm_read`].
    pub fn get_db_cm_read<B: Backend>(&self, name: &str) -> Result<Session<B>> {
        self.get::<B>(name)?.get_db_cm_read()
    }

    /// A blocking write session of the database `name`.
    ///
    /// # Errors
    /// Those of [`get`](Self::get) and of
    /// [`DatabaseInstance::get_db_cm_write`].
    pub fn get_db_cm_write<B: Backend>(&self, name: &str) -> Result<Session<B>> {
        self.get::<B>(name)?.get_db_cm_write()
    }

    /// An async read session of the database `name`.
    ///
    /// # Errors
    /// Those of [`get`](Self::get) and of
    /// [`DatabaseInstance::async_get_db_cm_read`].
    pub async fn async_get_db_cm_read<B: Backend>(&self, name: &str) -> Result<AsyncSession<B>> {
        self.get::<B>(name)?.async_get_db_cm_read().await
    }

    /// An async write session of the database `name`.
    ///
    /// # Errors
    /// Those of [`get`](Self::get) and of
    /// [`DatabaseInstance::async_get_db_cm_write`].
    pub async fn async_get_db_cm_write<B: Backend>(&self, name: &str) -> Result<AsyncSession<B>> {
        self.get::<B>(name)?.async_get_db_cm_write().await
    }

    /// A unit of work with a write session on each of `names`, which commit in
    /// that order ([`UnitOfWork`]).
    ///
    /// # Errors
    /// [`Error::UnknownDatabase`], [`Error::Config`] for a name given twice, and
    /// those of [`DatabaseInstance::get_db_cm_write`]; the sessions opened so
    /// far are rolled back.
    pub fn unit_of_work<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<UnitOfWork> {
        let mut work = UnitOfWork::new();
        for name in names {
            self.database(name)?.enlist_write(&mut work, name)?;
        }
        Ok(work)
    }

    /// The async twin of [`unit_of_work`](Self::unit_of_work).
    ///
    /// # Errors
    /// As [`unit_of_work`](Self::unit_of_work).
    pub async fn async_unit_of_work<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<AsyncUnitOfWork> {
        let mut work = AsyncUnitOfWork::new();
        for name in names {
            self.database(name)?
                .async_enlist_write(&mut work, name)
                .await?;
        }
        Ok(work)
    }

    /// True when every database is healthy.
    pub fn check_health(&self) -> bool {
        self.inner
            .databases
            .values()
            .all(AnyInstance::check_database_health)
    }

    /// The async twin of [`check_health`](Self::check_health): the databases are
    /// checked at once.
    pub async fn async_check_health(&self) -> bool {
        self.async_health_reports()
            .await
            .values()
            .all(|report| report.status == crate::HealthStatus::Healthy)
    }

    /// Each database's health report, by name.
    pub fn health_reports(&self) -> BTreeMap<String, HealthReport> {
        self.inner
            .databases
            .iter()
            .map(|(name, database)| (name.clone(), database.health_report()))
            .collect()
    }

    /// The async twin of [`health_reports`](Self::health_reports): the databases
    /// are checked at once, so the whole takes about the slowest one's time.
    pub async fn async_health_reports(&self) -> BTreeMap<String, HealthReport> {
        let reports = futures_util::future::join_all(
            self.inner
                .databases
                .values()
                .map(AnyInstance::async_health_report),
        )
        .await;
        self.inner.databases.keys().cloned().zip(reports).collect()
    }

    /// Each database's pool statistics, by name.
    pub fn pool_stats(&self) -> BTreeMap<String, Vec<PoolStats>> {
        self.inner
            .databases
            .iter()
            .map(|(name, database)| (name.clone(), database.pool_stats()))
            .collect()
    }

    /// Warms every database's blocking pools.
    ///
    /// # Errors
    /// The first database's error, with the rest not warmed.
    pub fn warmup(&self) -> Result<()> {
        self.inner
            .databases
            .values()
            .try_for_each(AnyInstance::warmup)
    }

    /// Warms every database's async pools.
    ///
    /// # Errors
    /// As [`warmup`](Self::warmup).
    pub async fn async_warmup(&self) -> Result<()> {
        for database in self.inner.databases.values() {
            database.async_warmup().await?;
        }
        Ok(())
    }

    /// Closes every database: later calls on any of them fail with
    /// [`Error::Closed`].
    pub fn close_all(&self) {
        for database in self.inner.databases.values() {
            database.close_all_connections();
        }
    }
}
