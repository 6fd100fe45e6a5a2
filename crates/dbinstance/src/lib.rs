#![doc = include_str!("../../../README.md")]
// Without a backend feature the crate builds, so that the web adapters can be
// checked on their own, but holds nothing to call: what backends use goes unused.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(unused)
)]

#[cfg(not(any(feature = "deadpool", feature = "bb8")))]
compile_error!(
    "dbinstance needs an async pool library: enable its `deadpool` feature (the default) or `bb8`"
);

mod backend;
mod config;
mod error;
mod health;
mod id;
mod instance;
mod maintenance;
mod manager;
mod pool;
mod position;
mod retry;
mod routing;
mod schema;
mod secret;
mod session;
mod target;
#[cfg(feature = "testing")]
pub mod testing;
mod topology;

#[cfg(feature = "mysql")]
pub use backend::Mysql;
#[cfg(feature = "postgres")]
pub use backend::Postgres;
pub use backend::{Backend, BackendKind, ReplicaLag};
#[cfg(feature = "sqlite")]
pub use backend::{Sqlite, SqliteSpawner};
pub use config::{AsyncPoolKind, DatabaseConfig};
#[cfg(feature = "migrations")]
pub use diesel_migrations::EmbeddedMigrations;
pub use error::{is_read_only_violation, is_sqlite_busy, Error, Result};
pub use health::{HealthReport, HealthStatus, PoolHealth};
pub use id::{PoolId, PoolKind, Role, Stage};
pub use instance::{DatabaseInstance, InstanceBuilder, SessionFn, SessionFnMut};
pub use manager::{AnyInstance, AsyncUnitOfWork, DatabaseManager, ManagerConfig, UnitOfWork};
pub use pool::{ConnectionInfo, HookError, PoolCounts, PoolState, PoolStats, Utilization};
pub use position::{CommitPosition, ReadYourWrites};
pub use retry::{is_transaction_conflict, RetryPolicy};
pub use schema::{ColumnType, OnDelete, SchemaRegistry, SchemaTable, SchemaType, TableOptions};
#[cfg(feature = "migrations")]
pub use schema::{MigrationInfo, MigrationSet, MigrationStatus};
pub use secret::Secret;
#[cfg(feature = "postgres")]
pub use session::SharedReadSession;
pub use session::{AsyncSession, Session};
pub use target::{SqliteSynchronous, SslMode};
