//! `DatabaseInstance`: one object per database owning the four pool families and
//! handing out sessions.

use crate::backend::Backend;
use crate::config::{DatabaseConfig, Resolved};
use crate::endpoint::Endpoint;
use crate::error::{Error, PoolId, Result, Role};
use crate::hooks::{ConnectionInfo, HookError, Hooks};
use crate::pool::async_pool::AsyncPool;
use crate::pool::sync_pool::SyncPool;
use crate::pool::Recipe;
use crate::routing::ReplicaSet;
use crate::session::{AsyncSession, Session};
use futures_util::future::BoxFuture;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

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
}

impl<B: Backend> Clone for DatabaseInstance<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<B: Backend> {
    config: DatabaseConfig,
    resolved: Resolved,
    pools: RwLock<Option<Arc<Pools<B>>>>,
    replicas: ReplicaSet,
    /// An in-memory SQLite database lives only while a connection is open.
    memory_keeper: Mutex<Option<B::Connection>>,
    /// Ids handed to every error of a closed instance.
    /// Named by the error every call on a closed instance returns.
    write_id: Arc<PoolId>,
    /// The tables this instance creates; its own, never shared.
    schema: crate::schema::SchemaRegistry,
}

/// The read pools for one server.
pub(crate) struct ReadTarget<B: Backend> {
    pub(crate) sync_pool: SyncPool<B>,
    pub(crate) async_pool: AsyncPool<B>,
    pub(crate) is_primary: bool,
}

pub(crate) struct Pools<B: Backend> {
    pub(crate) write_sync: SyncPool<B>,
    pub(crate) write_async: AsyncPool<B>,
    /// One per replica, or the primary's read-only pools when there is none.
    pub(crate) reads: Vec<ReadTarget<B>>,
    /// The primary's read-only pools, used when every replica is down.
    pub(crate) fallback: Option<ReadTarget<B>>,
}

impl<B: Backend> Pools<B> {
    /// Every read target: the replicas (or the primary's read pools), then the fallback.
    pub(crate) fn all_reads(&self) -> impl Iterator<Item = &ReadTarget<B>> {
        self.reads.iter().chain(&self.fallback)
    }
}

impl<B: Backend> fmt::Debug for DatabaseInstance<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseInstance")
            .field("backend", &B::KIND)
            .field("primary", &self.inner.resolved.write.label)
            .field(
                "replicas",
                &self
                    .inner
                    .resolved
                    .reads
                    .iter()
                    .filter(|r| !r.is_primary)
                    .map(|r| &r.label)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds a [`DatabaseInstance`]; from [`DatabaseInstance::builder`].
#[must_use = "call build(), build_lazy() or build_async()"]
#[derive(Debug)]
pub struct InstanceBuilder<B: Backend> {
    config: DatabaseConfig,
    hooks: Hooks<B>,
}

impl<B: Backend> InstanceBuilder<B> {
    /// Runs on every new blocking connection, before it is pooled; an error drops the
    /// connection and fails the checkout that asked for it. PostgreSQL connections
    /// already carry the configured `application_name`.
    ///
    /// ```
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// use diesel::connection::SimpleConnection;
    /// let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(":memory:"))
    ///     .after_connect(|conn, _info| Ok(conn.batch_execute("PRAGMA cache_size = -4000")?))
    ///     .build()?;
    /// # Ok::<(), dbinstance::Error>(())
    /// ```
    pub fn after_connect<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut B::Connection, &ConnectionInfo<'_>) -> Result<(), HookError>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.set_after_connect(hook);
        self
    }

    /// The async twin of [`after_connect`](Self::after_connect):
    /// `|conn, _info| Box::pin(async move { conn.batch_execute("SET search_path TO app").await?; Ok(()) })`.
    pub fn async_after_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(
                &'c mut B::AsyncConnection,
                &'c ConnectionInfo<'c>,
            ) -> BoxFuture<'c, Result<(), HookError>>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.set_async_after_connect(hook);
        self
    }

    /// Runs before a pooled connection is handed out (sync and async); returning
    /// false drops it and the checkout takes another. Keep it cheap: it runs on
    /// every checkout.
    pub fn before_checkout<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ConnectionInfo<'_>) -> bool + Send + Sync + 'static,
    {
        self.hooks.set_before_checkout(hook);
        self
    }

    /// Runs when a session hands its connection back (sync and async).
    pub fn after_checkin<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ConnectionInfo<'_>) + Send + Sync + 'static,
    {
        self.hooks.set_after_checkin(hook);
        self
    }

    /// Validates the config and connects once to the primary and to every replica,
    /// so a wrong URL or a server that is down fails here. Blocks: from async code
    /// use [`build_async`](Self::build_async).
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad setting, or [`Error::Connect`] naming the pool.
    pub fn build(self) -> Result<DatabaseInstance<B>> {
        let db = self.build_lazy()?;
        let pools = db.pools()?;
        pools.write_sync.check_connect()?;
        for read in &pools.reads {
            read.sync_pool.check_connect()?;
        }
        Ok(db)
    }

    /// Like [`build`](Self::build), connecting through the async pools.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub async fn build_async(self) -> Result<DatabaseInstance<B>> {
        let db = self.build_lazy()?;
        let pools = db.pools()?;
        pools.write_async.check_connect().await?;
        for read in &pools.reads {
            read.async_pool.check_connect().await?;
        }
        Ok(db)
    }

    /// Validates the config only; connections open on first use.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad setting.
    pub fn build_lazy(self) -> Result<DatabaseInstance<B>> {
        let resolved = self.config.resolve(B::KIND)?;
        let threads = Arc::new(
            scheduled_thread_pool::ScheduledThreadPool::builder()
                .num_threads(2)
                .thread_name_pattern("dbinstance-r2d2-{}")
                .build(),
        );
        let settings = &resolved.pool;
        let target = |endpoint: &Endpoint, role: Role| -> ReadTarget<B> {
            let recipe = Arc::new(Recipe::<B>::new(
                endpoint.clone(),
                role,
                settings.clone(),
                self.hooks.clone(),
            ));
            let max = if role == Role::Write {
                settings.write_max_size
            } else {
                settings.max_size
            };
            ReadTarget {
                sync_pool: SyncPool::new(recipe.clone(), max, threads.clone()),
                async_pool: AsyncPool::new(recipe, max, resolved.async_pool),
                is_primary: endpoint.is_primary,
            }
        };
        let write = target(&resolved.write, Role::Write);
        let reads: Vec<_> = resolved
            .reads
            .iter()
            .map(|r| target(r, Role::Read))
            .collect();
        let has_replicas = reads.iter().any(|r| !r.is_primary);
        let fallback = if has_replicas && resolved.read_fallback {
            Some(target(&resolved.write, Role::Read))
        } else {
            None
        };
        let memory_keeper = if resolved.write.is_sqlite_memory() {
            let conn = B::connect_sync(&resolved.write, Role::Write, settings).map_err(|e| {
                Error::Connect {
                    pool: write.sync_pool.id.clone(),
                    stage: crate::error::Stage::Connect,
                    source: e,
                }
            })?;
            Some(conn)
        } else {
            None
        };
        let pools = Pools {
            write_sync: write.sync_pool,
            write_async: write.async_pool,
            reads,
            fallback,
        };
        let write_id = Arc::new(pools.write_sync.id.clone());
        Ok(DatabaseInstance {
            inner: Arc::new(Inner {
                replicas: ReplicaSet::new(pools.reads.len()),
                pools: RwLock::new(Some(Arc::new(pools))),
                memory_keeper: Mutex::new(memory_keeper),
                config: self.config,
                resolved,
                write_id,
                schema: crate::schema::SchemaRegistry::new(B::KIND),
            }),
        })
    }
}

impl<B: Backend> DatabaseInstance<B> {
    /// Starts building an instance from `config`.
    pub fn builder(config: DatabaseConfig) -> InstanceBuilder<B> {
        InstanceBuilder {
            config,
            hooks: Hooks::default(),
        }
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
        &self.inner.resolved.write.label
    }

    /// This instance's own [`SchemaRegistry`](crate::SchemaRegistry): the tables
    /// [`create_tables`](Self::create_tables) creates. Clones of the instance share
    /// it; other instances have their own.
    pub fn schema(&self) -> &crate::schema::SchemaRegistry {
        &self.inner.schema
    }

    pub(crate) fn settings(&self) -> &crate::config::PoolSettings {
        &self.inner.resolved.pool
    }

    pub(crate) fn pools(&self) -> Result<Arc<Pools<B>>> {
        let guard = self
            .inner
            .pools
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        guard.clone().ok_or_else(|| Error::Closed {
            pool: (*self.inner.write_id).clone(),
        })
    }

    /// A blocking read session: read-only on the server, from a replica when there
    /// is one (round robin, skipping replicas that refused to connect; the primary
    /// when all are down and `read_fallback` is on).
    ///
    /// # Errors
    /// [`Error::Timeout`] when the pool stays exhausted for `pool_timeout`,
    /// [`Error::Connect`] when no server can be reached, [`Error::Closed`].
    pub fn get_db_cm_read(&self) -> Result<Session<B>> {
        let pools = self.pools()?;
        let mut last_error = None;
        for i in self.inner.replicas.order() {
            let target = &pools.reads[i];
            let session = target
                .sync_pool
                .get()
                .map(|conn| Session::read(conn, target.sync_pool.recipe().clone()));
            if let Some(done) = self.settle_read(i, target, session, &mut last_error) {
                return done;
            }
        }
        match &pools.fallback {
            Some(primary) => Ok(Session::read(
                primary.sync_pool.get()?,
                primary.sync_pool.recipe().clone(),
            )),
            None => Err(Self::no_read_target(last_error)),
        }
    }

    /// Decides after one read target was tried: done (a session, or an error the
    /// caller gets), or move on to the next replica because this one is down.
    fn settle_read<T>(
        &self,
        index: usize,
        target: &ReadTarget<B>,
        result: Result<T>,
        last_error: &mut Option<Error>,
    ) -> Option<Result<T>> {
        match result {
            Ok(session) => {
                self.inner.replicas.mark_up(index);
                Some(Ok(session))
            }
            Err(e @ Error::Connect { .. }) if !target.is_primary => {
                self.inner.replicas.mark_down(index);
                *last_error = Some(e);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Every replica refused and there is no fallback to the primary.
    fn no_read_target(last_error: Option<Error>) -> Error {
        last_error.unwrap_or(Error::Runtime("no read pool configured"))
    }

    /// A blocking write session on the primary, inside a transaction: call
    /// [`Session::commit`] to keep its work; dropping it rolls back.
    ///
    /// # Errors
    /// As [`get_db_cm_read`](Self::get_db_cm_read), and [`Error::Session`] when
    /// `BEGIN` fails.
    pub fn get_db_cm_write(&self) -> Result<Session<B>> {
        let pools = self.pools()?;
        Session::write(pools.write_sync.get()?, pools.write_sync.recipe().clone())
    }

    /// [`get_db_cm_read`](Self::get_db_cm_read) or
    /// [`get_db_cm_write`](Self::get_db_cm_write) by role.
    ///
    /// # Errors
    /// As those.
    pub fn get_db_cm(&self, role: Role) -> Result<Session<B>> {
        match role {
            Role::Read => self.get_db_cm_read(),
            Role::Write => self.get_db_cm_write(),
        }
    }

    /// The async twin of [`get_db_cm_read`](Self::get_db_cm_read).
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm_read(&self) -> Result<AsyncSession<B>> {
        let pools = self.pools()?;
        let mut last_error = None;
        for i in self.inner.replicas.order() {
            let target = &pools.reads[i];
            let session = target.async_pool.get().await;
            let session =
                session.map(|conn| AsyncSession::read(conn, target.async_pool.recipe().clone()));
            if let Some(done) = self.settle_read(i, target, session, &mut last_error) {
                return done;
            }
        }
        match &pools.fallback {
            Some(primary) => Ok(AsyncSession::read(
                primary.async_pool.get().await?,
                primary.async_pool.recipe().clone(),
            )),
            None => Err(Self::no_read_target(last_error)),
        }
    }

    /// The async twin of [`get_db_cm_write`](Self::get_db_cm_write). Safe to
    /// cancel at any point: see [`AsyncSession`].
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm_write(&self) -> Result<AsyncSession<B>> {
        let pools = self.pools()?;
        let conn = pools.write_async.get().await?;
        AsyncSession::write(conn, pools.write_async.recipe().clone()).await
    }

    /// The async twin of [`get_db_cm`](Self::get_db_cm).
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm(&self, role: Role) -> Result<AsyncSession<B>> {
        match role {
            Role::Read => self.async_get_db_cm_read().await,
            Role::Write => self.async_get_db_cm_write().await,
        }
    }

    /// Runs `f` in a write transaction: commits when it returns `Ok`, rolls back when
    /// it returns `Err` or panics.
    ///
    /// ```
    /// # fn main() -> Result<(), dbinstance::Error> {
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// # let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// use diesel::connection::SimpleConnection;
    /// db.write(|conn| conn.batch_execute("CREATE TABLE t (x INTEGER)").map_err(dbinstance::Error::from))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `f`'s error, or this crate's (converted with `From`) when no session could be
    /// had or the commit failed.
    pub fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut B::Connection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut session = self.get_db_cm_write()?;
        let value = f(&mut session)?;
        session.commit()?;
        Ok(value)
    }

    /// Runs `f` on a read-only session.
    ///
    /// # Errors
    /// `f`'s error, or this crate's when no session could be had.
    pub fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut B::Connection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut session = self.get_db_cm_read()?;
        f(&mut session)
    }

    /// The async twin of [`write`](Self::write), taking an async closure:
    ///
    /// ```no_run
    /// # async fn demo(db: dbinstance::DatabaseInstance<dbinstance::Sqlite>) -> Result<(), dbinstance::Error> {
    /// use diesel_async::SimpleAsyncConnection;
    /// db.async_write(async |conn| {
    ///     conn.batch_execute("INSERT INTO t VALUES (1)").await?;
    ///     Ok::<_, dbinstance::Error>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub async fn async_write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut B::AsyncConnection) -> Result<T, E>
            + SessionFn<&'r mut B::AsyncConnection, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + Send,
    {
        let mut session = self.async_get_db_cm_write().await?;
        let value = f(&mut session).await?;
        session.commit().await?;
        Ok(value)
    }

    /// The async twin of [`read`](Self::read).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn async_read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut B::AsyncConnection) -> Result<T, E>
            + SessionFn<&'r mut B::AsyncConnection, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + Send,
    {
        let mut session = self.async_get_db_cm_read().await?;
        f(&mut session).await
    }

    /// Closes every pool of the four families. Sessions still out finish their
    /// work; every later call fails with [`Error::Closed`].
    pub fn close_all_connections(&self) {
        let pools = self
            .inner
            .pools
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(pools) = pools {
            pools.write_async.close();
            for target in pools.reads.iter().chain(&pools.fallback) {
                target.async_pool.close();
            }
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
        self.inner
            .pools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

/// Names the future of an async closure so that its `Send`-ness can be required, as
/// diesel-async does for `transaction`: `async |conn| { ... }` implements it.
pub trait SessionFn<T, R>:
    AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as SessionFn<T, R>>::Fut
{
    /// The closure's future.
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> SessionFn<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}
