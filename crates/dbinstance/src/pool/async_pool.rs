//! The async pools: deadpool (default) or bb8 over one manager that pings only when
//! a connection sat idle or its last query failed.

use super::metrics::{PoolCounters, PoolCounts, PoolState};
use super::{ConnectFailure, Pooled, Recipe};
use crate::backend::Backend;
use crate::config::AsyncPoolKind;
use crate::error::{Error, Result};
use crate::id::{PoolId, Stage};
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::SimpleAsyncConnection;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The connection manager shared by the deadpool and bb8 flavours.
pub struct AsyncManager<B: Backend> {
    recipe: Arc<Recipe<B>>,
    orphans: Arc<Orphanage<B::AsyncConnection>>,
}

impl<B: Backend> std::fmt::Debug for AsyncManager<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncManager")
            .field("recipe", &self.recipe)
            .finish()
    }
}

impl<B: Backend> AsyncManager<B> {
    async fn validate(
        &self,
        conn: &mut Pooled<B::AsyncConnection>,
        idle: std::time::Duration,
    ) -> Result<(), ConnectFailure> {
        if conn.is_marked_broken() || PoolableConnection::is_broken(&mut **conn) {
            PoolCounters::bump(&self.recipe.async_counters.broken_discarded);
            tracing::debug!(pool = %self.recipe.async_id, "dbinstance: broken connection discarded");
            return Err(ConnectFailure {
                message: "connection is broken".into(),
            });
        }
        if !self.recipe.accepts(&self.recipe.async_id, conn, idle) {
            return Err(ConnectFailure::rejected());
        }
        if conn.needs_ping(&self.recipe.options, idle) {
            conn.batch_execute("SELECT 1")
                .await
                .map_err(|e| self.recipe.failure(&e))?;
            conn.ping_passed();
        }
        Ok(())
    }
}

impl<B: Backend> deadpool::managed::Manager for AsyncManager<B> {
    type Type = Pooled<B::AsyncConnection>;
    type Error = ConnectFailure;

    async fn create(&self) -> Result<Self::Type, ConnectFailure> {
        self.orphans.create(&self.recipe).await
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<ConnectFailure> {
        if let Some(max) = self.recipe.options.max_lifetime {
            if metrics.age() > max {
                return Err(deadpool::managed::RecycleError::message(
                    "reached pool_recycle age",
                ));
            }
        }
        self.validate(conn, metrics.last_used()).await?;
        Ok(())
    }
}

impl<B: Backend> bb8::ManageConnection for AsyncManager<B> {
    type Connection = Pooled<B::AsyncConnection>;
    type Error = ConnectFailure;

    async fn connect(&self) -> Result<Self::Connection, ConnectFailure> {
        self.recipe.connect_async().await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), ConnectFailure> {
        let idle = conn.last_used.elapsed();
        self.validate(conn, idle).await
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        let broken = conn.is_marked_broken() || PoolableConnection::is_broken(&mut **conn);
        if broken {
            PoolCounters::bump(&self.recipe.async_counters.broken_discarded);
        }
        broken
    }
}

/// Connects on a task of its own, so that a checkout cancelled mid-connect does not
/// waste the connection: it is kept here for the next one. deadpool connects inside
/// the caller's future; without this a storm of short timeouts throws every new
/// connection away, the pool never grows, and each retry pays a fresh connect.
pub(crate) struct Orphanage<C> {
    ready: Mutex<Vec<Pooled<C>>>,
    /// Connects still running whose caller has gone.
    unclaimed: AtomicUsize,
    arrived: tokio::sync::Notify,
    /// The pool's size: more orphans than that would never be used.
    max: usize,
}

type ConnectResult<C> = Result<Pooled<C>, ConnectFailure>;

/// Hands a connect over to the orphanage when the checkout waiting for it is dropped.
struct Claim<'a, C> {
    orphanage: &'a Orphanage<C>,
    receiver: Option<tokio::sync::oneshot::Receiver<ConnectResult<C>>>,
}

impl<C> Drop for Claim<'_, C> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        // Counted first: once closed, the connect task's send fails and it
        // delivers to the orphanage, uncounting it.
        self.orphanage.unclaimed.fetch_add(1, Ordering::AcqRel);
        receiver.close();
        if let Ok(result) = receiver.try_recv() {
            // Sent before the close: the task will not deliver it.
            self.orphanage.unclaimed.fetch_sub(1, Ordering::AcqRel);
            if let Ok(conn) = result {
                self.orphanage.keep(conn);
            }
        }
    }
}

impl<C> Orphanage<C> {
    fn new(max: usize) -> Self {
        Self {
            ready: Mutex::new(Vec::new()),
            unclaimed: AtomicUsize::new(0),
            arrived: tokio::sync::Notify::new(),
            max,
        }
    }

    fn take(&self) -> Option<Pooled<C>> {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn keep(&self, conn: Pooled<C>) {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if ready.len() < self.max {
            ready.push(conn);
        }
        drop(ready);
        self.arrived.notify_one();
    }
}

impl<C: Send + 'static> Orphanage<C> {
    async fn create<B>(self: &Arc<Self>, recipe: &Arc<Recipe<B>>) -> ConnectResult<C>
    where
        B: Backend<AsyncConnection = C>,
    {
        let deadline = tokio::time::Instant::now() + recipe.options.connect_timeout;
        // A connect someone else abandoned is already on its way: wait for it
        // rather than open one more.
        loop {
            let arrived = self.arrived.notified();
            if let Some(conn) = self.take() {
                return Ok(conn);
            }
            if self.unclaimed.load(Ordering::Acquire) == 0
                || tokio::time::timeout_at(deadline, arrived).await.is_err()
            {
                break;
            }
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (recipe, orphanage) = (recipe.clone(), self.clone());
        tokio::spawn(async move {
            let result = recipe.connect_async().await;
            if let Err(unclaimed) = sender.send(result) {
                orphanage.unclaimed.fetch_sub(1, Ordering::AcqRel);
                match unclaimed {
                    Ok(conn) => orphanage.keep(conn),
                    Err(_) => orphanage.arrived.notify_one(),
                }
            }
        });
        let mut claim = Claim {
            orphanage: self,
            receiver: Some(receiver),
        };
        let result = match claim.receiver.as_mut() {
            Some(receiver) => receiver.await,
            None => unreachable!("the receiver is taken only on drop"),
        };
        claim.receiver = None;
        result.unwrap_or_else(|_| {
            Err(ConnectFailure {
                message: "the connect task stopped".into(),
            })
        })
    }
}

enum Inner<B: Backend> {
    Deadpool(deadpool::managed::Pool<AsyncManager<B>>),
    Bb8(bb8::Pool<AsyncManager<B>>),
}

/// One async pool, built on first use because bb8 needs a running runtime.
pub(crate) struct AsyncPool<B: Backend> {
    inner: OnceLock<Inner<B>>,
    kind: AsyncPoolKind,
    max_size: u32,
    recipe: Arc<Recipe<B>>,
    pub(crate) id: PoolId,
}

impl<B: Backend> std::fmt::Debug for AsyncPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPool")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A connection checked out of an [`AsyncPool`].
pub(crate) enum AsyncConnection<B: Backend> {
    Deadpool(deadpool::managed::Object<AsyncManager<B>>),
    Bb8(bb8::PooledConnection<'static, AsyncManager<B>>),
}

impl<B: Backend> AsyncPool<B> {
    pub(crate) fn counts(&self) -> PoolCounts {
        self.recipe.async_counters.snapshot()
    }

    pub(crate) fn min_idle(&self) -> u32 {
        self.recipe.options.min_idle.min(self.max_size)
    }

    /// Closes the idle connections and returns how many.
    pub(crate) async fn clear_idle(&self) -> usize {
        match self.inner.get() {
            None => 0,
            Some(Inner::Deadpool(pool)) => pool.retain(|_, _| false).removed.len(),
            Some(Inner::Bb8(pool)) => {
                // bb8 has no retain: take the idle ones out and drop them as broken.
                let mut taken = Vec::new();
                while pool.state().idle_connections > 0 {
                    let quick = tokio::time::timeout(
                        std::time::Duration::from_millis(10),
                        pool.get_owned(),
                    );
                    match quick.await {
                        Ok(Ok(conn)) => taken.push(conn),
                        _ => break,
                    }
                }
                for conn in &taken {
                    conn.mark_broken();
                }
                taken.len()
            }
        }
    }

    pub(crate) fn recipe(&self) -> &Arc<Recipe<B>> {
        &self.recipe
    }
}

impl<B: Backend> AsyncConnection<B> {
    /// Closes the connection instead of returning it: the server then ends whatever
    /// the connection had open.
    pub(crate) fn discard(self) {
        match self {
            AsyncConnection::Deadpool(object) => {
                if let Some(pool) = deadpool::managed::Object::pool(&object) {
                    PoolCounters::bump(&pool.manager().recipe.async_counters.broken_discarded);
                }
                drop(deadpool::managed::Object::take(object))
            }
            AsyncConnection::Bb8(conn) => {
                conn.mark_broken();
                drop(conn);
            }
        }
    }
}

impl<B: Backend> Deref for AsyncConnection<B> {
    type Target = Pooled<B::AsyncConnection>;
    fn deref(&self) -> &Self::Target {
        match self {
            AsyncConnection::Deadpool(object) => object,
            AsyncConnection::Bb8(conn) => conn,
        }
    }
}

impl<B: Backend> DerefMut for AsyncConnection<B> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            AsyncConnection::Deadpool(object) => object,
            AsyncConnection::Bb8(conn) => conn,
        }
    }
}

impl<B: Backend> AsyncPool<B> {
    pub(crate) fn new(recipe: Arc<Recipe<B>>, max_size: u32) -> Self {
        Self {
            inner: OnceLock::new(),
            kind: recipe.options.async_pool,
            max_size,
            id: recipe.async_id.clone(),
            recipe,
        }
    }

    fn inner(&self) -> &Inner<B> {
        self.inner.get_or_init(|| {
            let options = &self.recipe.options;
            let manager = AsyncManager {
                recipe: self.recipe.clone(),
                orphans: Arc::new(Orphanage::new(self.max_size as usize)),
            };
            match self.kind {
                AsyncPoolKind::Deadpool => {
                    let config = deadpool::managed::PoolConfig {
                        max_size: self.max_size as usize,
                        timeouts: deadpool::managed::Timeouts {
                            wait: Some(options.pool_timeout),
                            create: None,
                            recycle: Some(options.connect_timeout),
                        },
                        queue_mode: deadpool::managed::QueueMode::Fifo,
                    };
                    // Cannot fail: a runtime is given whenever timeouts are.
                    let pool = deadpool::managed::Pool::builder(manager)
                        .config(config)
                        .runtime(deadpool::Runtime::Tokio1)
                        .build()
                        .unwrap_or_else(|e| unreachable!("deadpool rejected a valid config: {e}"));
                    Inner::Deadpool(pool)
                }
                AsyncPoolKind::Bb8 => Inner::Bb8(
                    bb8::Pool::builder()
                        .max_size(self.max_size)
                        .min_idle(Some(options.min_idle.min(self.max_size)))
                        .connection_timeout(options.pool_timeout)
                        .max_lifetime(options.max_lifetime)
                        .idle_timeout(options.idle_timeout)
                        .retry_connection(false)
                        .test_on_check_out(true)
                        .build_unchecked(manager),
                ),
            }
        })
    }

    pub(crate) async fn get(&self) -> Result<AsyncConnection<B>> {
        use tracing::Instrument;
        let span = self.recipe.checkout_span(&self.id);
        self.checkout().instrument(span).await
    }

    async fn checkout(&self) -> Result<AsyncConnection<B>> {
        let timeout = self.recipe.options.pool_timeout;
        match self.inner() {
            Inner::Deadpool(pool) => pool
                .get()
                .await
                .map(AsyncConnection::Deadpool)
                .map_err(|e| {
                    use deadpool::managed::PoolError;
                    match e {
                        PoolError::Timeout(_) => Error::Timeout {
                            pool: self.id.clone(),
                            timeout,
                        },
                        PoolError::Backend(failure) => self.connect_error(failure),
                        PoolError::Closed => Error::Closed {
                            pool: self.id.clone(),
                        },
                        PoolError::NoRuntimeSpecified => {
                            Error::Runtime("deadpool needs a tokio runtime")
                        }
                        PoolError::PostCreateHook(hook) => Error::Connect {
                            pool: self.id.clone(),
                            stage: Stage::Setup,
                            source: hook.to_string().into(),
                        },
                    }
                }),
            Inner::Bb8(pool) => {
                pool.get_owned()
                    .await
                    .map(AsyncConnection::Bb8)
                    .map_err(|e| match e {
                        bb8::RunError::User(failure) => self.connect_error(failure),
                        bb8::RunError::TimedOut => Error::Timeout {
                            pool: self.id.clone(),
                            timeout,
                        },
                    })
            }
        }
    }

    /// Opens a connection now and keeps it pooled, so a bad URL fails the build.
    pub(crate) async fn check_connect(&self) -> Result<()> {
        self.get().await.map(drop)
    }

    fn connect_error(&self, failure: ConnectFailure) -> Error {
        Error::Connect {
            pool: self.id.clone(),
            stage: Stage::Connect,
            source: Box::new(failure),
        }
    }

    pub(crate) fn pool_state(&self) -> PoolState {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (size, idle, waiting) = match self.inner.get() {
            None => (0, 0, 0),
            Some(Inner::Deadpool(pool)) => {
                let status = pool.status();
                (
                    count(status.size),
                    count(status.available),
                    count(status.waiting),
                )
            }
            Some(Inner::Bb8(pool)) => {
                let state = pool.state();
                (state.connections, state.idle_connections, 0)
            }
        };
        PoolState {
            size,
            idle,
            in_use: size.saturating_sub(idle),
            waiting,
            max: self.max_size,
        }
    }

    pub(crate) fn close(&self) {
        if let Some(Inner::Deadpool(pool)) = self.inner.get() {
            pool.close();
        }
    }
}
