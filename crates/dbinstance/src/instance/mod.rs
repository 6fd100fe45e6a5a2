//! `DatabaseInstance`: one object per database, a thin handle over the pools it
//! owns. Its methods forward: sessions to routing and the guards, health, schema
//! and maintenance to their own modules, which never import the handle.
//!
//! - `builder`: `InstanceBuilder`, hooks and the build.
//! - `sessions`: `get_db_cm_*`, their `async_` twins and the closure forms.
//! - `retry`: the closure forms that run a write again after a conflict.
//! - `health`, `schema`, `maintenance`: the rest of the handle's surface.
//! - `metrics`: the pool gauges, set on demand (the `metrics` feature).

mod builder;
mod health;
mod maintenance;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "migrations")]
mod migrations;
mod retry;
mod schema;
mod sessions;

pub use builder::InstanceBuilder;
pub use retry::SessionFnMut;
pub use sessions::SessionFn;

use crate::backend::Backend;
use crate::config::{DatabaseConfig, Plan};
use crate::error::{Error, Result};
use crate::id::PoolId;
use crate::position::{ReadAfter, ReadYourWrites};
use crate::routing::Router;
use crate::schema::SchemaRegistry;
use crate::topology::Pools;
use arc_swap::ArcSwapOption;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// One database: its primary and replicas, the sync and async pools for each, and
/// the sessions they hand out. Cheap to clone (an `Arc`); share one per database.
///
/// ```
/// # fn main() -> Result<(), dbinstance::Error> {
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let mut session = db.get_db_cm_write()?;
/// diesel::connection::SimpleConnection::batch_execute(&mut *session, "CREATE TABLE t (x INTEGER)")?;
/// session.commit()?;
/// # Ok(()) }
/// ```
pub struct DatabaseInstance<B: Backend> {
    inner: Arc<Inner<B>>,
    /// The writes this handle's reads must see; `None` on a plain handle.
    read_your_writes: Option<ReadYourWrites>,
}

impl<B: Backend> Clone for DatabaseInstance<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            read_your_writes: self.read_your_writes.clone(),
        }
    }
}

struct Inner<B: Backend> {
    config: DatabaseConfig,
    plan: Plan,
    /// `None` once closed. Every checkout loads it: arc-swap's load shares no
    /// lock or reference count between threads, which a `RwLock` or an `Arc`
    /// clone per checkout would (measurable at SQLite speeds).
    pools: ArcSwapOption<Pools<B>>,
    router: Router,
    /// An in-memory SQLite database lives only while a connection is open.
    memory_keeper: Mutex<Option<B::Connection>>,
    /// Named by the error every call on a closed instance returns.
    write_id: PoolId,
    /// The tables this instance creates; its own, never shared.
    schema: SchemaRegistry,
    /// Reads may go elsewhere than the primary, so commits' positions matter.
    has_replicas: bool,
}

impl<B: Backend> fmt::Debug for DatabaseInstance<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseInstance")
            .field("backend", &B::KIND)
            .field("primary", &self.inner.plan.addresses.write.label)
            .field(
                "replicas",
                &self
                    .inner
                    .plan
                    .addresses
                    .reads
                    .iter()
                    .filter(|r| !r.is_primary)
                    .map(|r| &r.label)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<B: Backend> DatabaseInstance<B> {
    fn from_parts(
        config: DatabaseConfig,
        plan: Plan,
        pools: Pools<B>,
        memory_keeper: Option<B::Connection>,
    ) -> Self {
        let router = Router::new(&plan);
        let has_replicas = pools.reads.iter().any(|r| !r.is_primary);
        let pools = Arc::new(pools);
        router.watch_lag(&pools, &plan);
        Self {
            inner: Arc::new(Inner {
                router,
                write_id: pools.write_sync.id.clone(),
                pools: ArcSwapOption::new(Some(pools)),
                memory_keeper: Mutex::new(memory_keeper),
                config,
                plan,
                schema: SchemaRegistry::new(B::KIND),
                has_replicas,
            }),
            read_your_writes: None,
        }
    }

    /// Starts building an instance from `config`.
    pub fn builder(config: DatabaseConfig) -> InstanceBuilder<B> {
        InstanceBuilder::new(config)
    }

    /// Builds an instance and connects once to every server (see
    /// [`InstanceBuilder::build`]).
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::Connect`].
    pub fn new(config: DatabaseConfig) -> Result<Self> {
        Self::builder(config).build()
    }

    /// The configuration this instance was built from (its `Debug` hides secrets).
    pub fn config(&self) -> &DatabaseConfig {
        &self.inner.config
    }

    /// `host:port/database` of the primary, or the SQLite path.
    pub fn name(&self) -> &str {
        &self.inner.plan.addresses.write.label
    }

    /// This instance's own [`SchemaRegistry`]: the tables
    /// [`create_tables`](Self::create_tables) creates. Clones of the instance share
    /// it; other instances have their own.
    pub fn schema(&self) -> &SchemaRegistry {
        &self.inner.schema
    }

    /// A handle on the same instance whose reads see the writes `tracker` has
    /// recorded or been given: write sessions committed through it record their
    /// position in `tracker`, and read sessions from it come from a replica that
    /// has replayed that position (waiting at most `read_your_writes_wait`), else
    /// from the primary. Handles and tasks that share a tracker read each other's
    /// writes; the web layers give every request its own.
    ///
    /// Plain handles are unaffected, and a handle costs nothing more until its
    /// first write. With no replica, every read is on the primary already and no
    /// position is read.
    pub fn with_read_your_writes(&self, tracker: &ReadYourWrites) -> Self {
        Self {
            inner: self.inner.clone(),
            read_your_writes: Some(tracker.clone()),
        }
    }

    /// The tracker of a handle from [`with_read_your_writes`](Self::with_read_your_writes).
    pub fn read_your_writes(&self) -> Option<&ReadYourWrites> {
        self.read_your_writes.as_ref()
    }

    /// What this handle's reads must see.
    fn read_after(&self) -> Option<ReadAfter> {
        self.read_your_writes.as_ref()?.read_after()
    }

    /// The tracker a write session records its commit in: none without replicas.
    fn commit_tracker(&self) -> Option<ReadYourWrites> {
        self.read_your_writes
            .clone()
            .filter(|_| self.inner.has_replicas)
    }

    fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    fn pools(&self) -> Result<Arc<Pools<B>>> {
        self.inner.pools.load_full().ok_or_else(|| self.closed())
    }

    /// Runs `f` on the pools without taking a reference count: the blocking
    /// checkouts' way, which holds them only for the call.
    fn with_pools<R>(&self, f: impl FnOnce(&Pools<B>) -> Result<R>) -> Result<R> {
        match &*self.inner.pools.load() {
            Some(pools) => f(pools),
            None => Err(self.closed()),
        }
    }

    fn closed(&self) -> Error {
        Error::Closed {
            pool: self.inner.write_id.clone(),
        }
    }

    /// Closes every pool of the four families. Sessions still out finish their
    /// work; every later call fails with [`Error::Closed`].
    pub fn close_all_connections(&self) {
        let pools = self.inner.pools.swap(None);
        if let Some(pools) = pools {
            pools.close();
            tracing::info!(database = %self.name(), "dbinstance: pools closed");
        }
        self.inner
            .memory_keeper
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether [`close_all_connections`](Self::close_all_connections) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.pools.load().is_none()
    }
}
