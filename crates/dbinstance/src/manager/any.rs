//! One database of a manager, whatever its backend: the calls every backend
//! shares without naming it (health, statistics, warm-up, close), and a typed
//! view for the rest.

#[cfg(feature = "mysql")]
use crate::backend::Mysql;
#[cfg(feature = "postgres")]
use crate::backend::Postgres;
#[cfg(feature = "sqlite")]
use crate::backend::Sqlite;
use crate::backend::{Backend, BackendKind};
use crate::error::Result;
use crate::health::HealthReport;
use crate::instance::DatabaseInstance;
use crate::pool::PoolStats;
use std::any::Any;

/// A database of a [`DatabaseManager`](crate::DatabaseManager), of any backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyInstance {
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(DatabaseInstance<Postgres>),
    /// A MySQL or MariaDB database.
    #[cfg(feature = "mysql")]
    Mysql(DatabaseInstance<Mysql>),
    /// A SQLite database.
    #[cfg(feature = "sqlite")]
    Sqlite(DatabaseInstance<Sqlite>),
}

/// Runs `$body` with `$db` bound to the instance, whatever its backend. The match
/// is on the enum itself, not a reference to it, so that a build with no backend
/// feature (an enum without variants) needs no arm.
macro_rules! each {
    ($any:expr, $db:ident => $body:expr) => {
        match *$any {
            #[cfg(feature = "postgres")]
            AnyInstance::Postgres(ref $db) => $body,
            #[cfg(feature = "mysql")]
            AnyInstance::Mysql(ref $db) => $body,
            #[cfg(feature = "sqlite")]
            AnyInstance::Sqlite(ref $db) => $body,
        }
    };
}

impl AnyInstance {
    /// Builds the instance `kind` names, as `build` says: `Lazy` validates only,
    /// `Connect` connects once to every server.
    pub(crate) fn build(
        kind: BackendKind,
        config: crate::DatabaseConfig,
        lazy: bool,
    ) -> Result<Self> {
        fn one<B: Backend>(
            config: crate::DatabaseConfig,
            lazy: bool,
        ) -> Result<DatabaseInstance<B>> {
            let builder = DatabaseInstance::<B>::builder(config);
            if lazy {
                builder.build_lazy()
            } else {
                builder.build()
            }
        }
        match kind {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => one(config, lazy).map(AnyInstance::Postgres),
            #[cfg(feature = "mysql")]
            BackendKind::Mysql => one(config, lazy).map(AnyInstance::Mysql),
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => one(config, lazy).map(AnyInstance::Sqlite),
            #[allow(unreachable_patterns)]
            other => Err(crate::Error::config(
                "url",
                format!("{other} is not compiled into this build"),
            )),
        }
    }

    /// Connects once to every server of the instance from async code.
    pub(crate) async fn async_check(&self) -> Result<()> {
        each!(self, db => db.async_check_servers().await)
    }

    /// Opens a write session and enlists it in `work` as `name`.
    pub(crate) fn enlist_write(&self, work: &mut super::UnitOfWork, name: &str) -> Result<()> {
        each!(self, db => work.enlist(name, db.get_db_cm_write()?))
    }

    /// The async twin of [`enlist_write`](Self::enlist_write).
    pub(crate) async fn async_enlist_write(
        &self,
        work: &mut super::AsyncUnitOfWork,
        name: &str,
    ) -> Result<()> {
        each!(self, db => work.enlist(name, db.async_get_db_cm_write().await?))
    }

    /// Its backend.
    pub fn backend(&self) -> BackendKind {
        match *self {
            #[cfg(feature = "postgres")]
            AnyInstance::Postgres(_) => BackendKind::Postgres,
            #[cfg(feature = "mysql")]
            AnyInstance::Mysql(_) => BackendKind::Mysql,
            #[cfg(feature = "sqlite")]
            AnyInstance::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// The instance, when its backend is `B`.
    pub fn typed<B: Backend>(&self) -> Option<&DatabaseInstance<B>> {
        each!(self, db => (db as &dyn Any).downcast_ref())
    }

    /// As [`DatabaseInstance::check_database_health`].
    pub fn check_database_health(&self) -> bool {
        each!(self, db => db.check_database_health())
    }

    /// As [`DatabaseInstance::async_check_database_health`].
    pub async fn async_check_database_health(&self) -> bool {
        each!(self, db => db.async_check_database_health().await)
    }

    /// As [`DatabaseInstance::health_report`].
    pub fn health_report(&self) -> HealthReport {
        each!(self, db => db.health_report())
    }

    /// As [`DatabaseInstance::async_health_report`].
    pub async fn async_health_report(&self) -> HealthReport {
        each!(self, db => db.async_health_report().await)
    }

    /// As [`DatabaseInstance::pool_stats`].
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        each!(self, db => db.pool_stats())
    }

    /// As [`DatabaseInstance::warmup`].
    ///
    /// # Errors
    /// As that.
    pub fn warmup(&self) -> Result<()> {
        each!(self, db => db.warmup())
    }

    /// As [`DatabaseInstance::async_warmup`].
    ///
    /// # Errors
    /// As that.
    pub async fn async_warmup(&self) -> Result<()> {
        each!(self, db => db.async_warmup().await)
    }

    /// As [`DatabaseInstance::close_all_connections`].
    pub fn close_all_connections(&self) {
        each!(self, db => db.close_all_connections())
    }

    /// As [`DatabaseInstance::create_tables`].
    ///
    /// # Errors
    /// As that.
    pub fn create_tables(&self) -> Result<()> {
        each!(self, db => db.create_tables())
    }

    /// Its schema registry, whatever its backend (as
    /// [`DatabaseInstance::schema`]).
    pub fn schema(&self) -> &crate::SchemaRegistry {
        each!(self, db => db.schema())
    }
}
