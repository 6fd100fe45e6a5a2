//! `InstanceBuilder`: hooks, then a build that validates the config and, unless
//! lazy, connects once to every server.

use super::DatabaseInstance;
use crate::backend::{Backend, Driver};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::id::{PoolId, PoolKind, Role, Stage};
use crate::pool::hooks::{ConnectionInfo, HookError, Hooks};
use crate::topology::Pools;
use diesel::connection::Instrumentation;
use futures_util::future::BoxFuture;

/// Builds a [`DatabaseInstance`]; from [`DatabaseInstance::builder`].
#[must_use = "call build(), build_lazy() or build_async()"]
#[derive(Debug)]
pub struct InstanceBuilder<B: Backend> {
    config: DatabaseConfig,
    hooks: Hooks<B>,
    pool_name_prefix: Option<String>,
}

impl<B: Backend> InstanceBuilder<B> {
    pub(super) fn new(config: DatabaseConfig) -> Self {
        Self {
            config,
            hooks: Hooks::default(),
            pool_name_prefix: None,
        }
    }
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

    /// Adds diesel instrumentation of your own to every connection of every pool:
    /// `make` is called once per new connection, with its pool. Your
    /// instrumentation sees every event after the pool's own watch, which keeps
    /// detecting broken connections and changed session state (calling
    /// `set_instrumentation` on a session would replace that watch: the pool then
    /// closes the connection when the session ends). Without it, diesel's
    /// [default instrumentation](diesel::connection::set_default_instrumentation),
    /// if one is set, is called instead.
    ///
    /// ```
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// use diesel::connection::InstrumentationEvent;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let statements = Arc::new(AtomicU64::new(0));
    /// let counter = statements.clone();
    /// let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(":memory:"))
    ///     .instrumentation(move |_pool| {
    ///         let counter = counter.clone();
    ///         move |event: InstrumentationEvent<'_>| {
    ///             if let InstrumentationEvent::StartQuery { .. } = event {
    ///                 counter.fetch_add(1, Ordering::Relaxed);
    ///             }
    ///         }
    ///     })
    ///     .build()?;
    /// # Ok::<(), dbinstance::Error>(())
    /// ```
    pub fn instrumentation<F, I>(mut self, make: F) -> Self
    where
        F: Fn(&PoolId) -> I + Send + Sync + 'static,
        I: Instrumentation,
    {
        self.hooks.set_instrumentation(make);
        self
    }

    /// Starts the names of this instance's pools ([`PoolStats::name`], the
    /// `db.client.connection.pool.name` of their metrics and spans) with `prefix`
    /// instead of the primary's `host:port/database`: for two instances on one
    /// database in one process, whose pools would otherwise share their names.
    ///
    /// ```
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// let db = DatabaseInstance::<Sqlite>::builder(DatabaseConfig::from_url(":memory:"))
    ///     .pool_name_prefix("orders")
    ///     .build()?;
    /// assert_eq!(db.pool_stats()[0].name, "orders/write/sync");
    /// # Ok::<(), dbinstance::Error>(())
    /// ```
    ///
    /// [`PoolStats::name`]: crate::PoolStats::name
    pub fn pool_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.pool_name_prefix = Some(prefix.into());
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
        db.async_check_servers().await?;
        Ok(db)
    }

    /// Validates the config only; connections open on first use.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad setting.
    pub fn build_lazy(self) -> Result<DatabaseInstance<B>> {
        let plan = self.config.plan(B::KIND)?;
        let write = &plan.addresses.write;
        let prefix = self.pool_name_prefix.as_deref().unwrap_or(&write.label);
        let pools = Pools::new(&plan, &self.hooks, prefix);
        let memory_keeper = if write.is_sqlite_memory() {
            let connector = B::Driver::connector(write, Role::Write, PoolKind::Sync, &plan.connect);
            let conn = B::Driver::connect_sync(&connector).map_err(|e| Error::Connect {
                pool: pools.write_sync.id.clone(),
                stage: Stage::Connect,
                source: e,
            })?;
            Some(conn)
        } else {
            None
        };
        Ok(DatabaseInstance::from_parts(
            self.config,
            plan,
            pools,
            memory_keeper,
        ))
    }
}
