//! The async pools: one facade over the async pool libraries, each adapted in its
//! own file behind its feature (`deadpool`, `bb8`). The library is chosen by the
//! config at build time; a pool is built on first use, because bb8 needs a
//! running runtime.

#[cfg(feature = "bb8")]
use super::bb8;
use super::conn::Pooled;
use super::connector::Recipe;
#[cfg(feature = "deadpool")]
use super::deadpool;
use super::instruments::Moment;
use super::manager::AsyncManager;
use super::metrics::{PoolCounts, PoolState};
#[cfg(feature = "deadpool")]
use super::orphanage::Orphanage;
use crate::backend::Backend;
use crate::config::AsyncPoolKind;
use crate::error::Result;
use crate::id::PoolId;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

enum Inner<B: Backend> {
    #[cfg(feature = "deadpool")]
    Deadpool(deadpool::Pool<B>),
    #[cfg(feature = "bb8")]
    Bb8(bb8::Pool<B>),
}

/// One async pool.
pub(crate) struct AsyncPool<B: Backend> {
    inner: OnceLock<Inner<B>>,
    max_size: u32,
    recipe: Arc<Recipe<B>>,
    pub(crate) id: PoolId,
}

impl<B: Backend> std::fmt::Debug for AsyncPool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPool")
            .field("id", &self.id)
            .field("library", &self.recipe.options.async_pool)
            .finish_non_exhaustive()
    }
}

/// A connection checked out of an [`AsyncPool`].
pub(crate) enum AsyncConnection<B: Backend> {
    #[cfg(feature = "deadpool")]
    Deadpool(deadpool::Connection<B>),
    #[cfg(feature = "bb8")]
    Bb8(bb8::Connection<B>),
}

impl<B: Backend> AsyncConnection<B> {
    /// Closes the connection instead of returning it: the server then ends whatever
    /// the connection had open.
    pub(crate) fn discard(self) {
        match self {
            #[cfg(feature = "deadpool")]
            AsyncConnection::Deadpool(conn) => deadpool::discard(conn),
            #[cfg(feature = "bb8")]
            AsyncConnection::Bb8(conn) => bb8::discard(conn),
        }
    }
}

impl<B: Backend> Deref for AsyncConnection<B> {
    type Target = Pooled<B::AsyncConnection>;
    fn deref(&self) -> &Self::Target {
        match self {
            #[cfg(feature = "deadpool")]
            AsyncConnection::Deadpool(conn) => conn,
            #[cfg(feature = "bb8")]
            AsyncConnection::Bb8(conn) => conn,
        }
    }
}

impl<B: Backend> DerefMut for AsyncConnection<B> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            #[cfg(feature = "deadpool")]
            AsyncConnection::Deadpool(conn) => conn,
            #[cfg(feature = "bb8")]
            AsyncConnection::Bb8(conn) => conn,
        }
    }
}

impl<B: Backend> AsyncPool<B> {
    pub(crate) fn new(recipe: Arc<Recipe<B>>, max_size: u32) -> Self {
        Self {
            inner: OnceLock::new(),
            max_size,
            id: recipe.id.clone(),
            recipe,
        }
    }

    fn inner(&self) -> &Inner<B> {
        self.inner.get_or_init(|| {
            let options = &self.recipe.options;
            let manager = AsyncManager {
                recipe: self.recipe.clone(),
                #[cfg(feature = "deadpool")]
                orphans: Arc::new(Orphanage::new(self.max_size as usize)),
            };
            match options.async_pool {
                #[cfg(feature = "deadpool")]
                AsyncPoolKind::Deadpool => {
                    Inner::Deadpool(deadpool::build(manager, self.max_size, options))
                }
                #[cfg(not(feature = "deadpool"))]
                AsyncPoolKind::Deadpool => {
                    unreachable!("the plan refuses deadpool without its feature")
                }
                #[cfg(feature = "bb8")]
                AsyncPoolKind::Bb8 => Inner::Bb8(bb8::build(manager, self.max_size, options)),
                #[cfg(not(feature = "bb8"))]
                AsyncPoolKind::Bb8 => unreachable!("the plan refuses bb8 without its feature"),
            }
        })
    }

    pub(crate) async fn get(&self) -> Result<AsyncConnection<B>> {
        use tracing::Instrument;
        let span = self.recipe.checkout_span();
        // Without a subscriber that wants it, the wrapper would cost every poll.
        if span.is_disabled() {
            return self.checkout().await;
        }
        self.checkout().instrument(span).await
    }

    async fn checkout(&self) -> Result<AsyncConnection<B>> {
        self.recipe.check_honoured()?;
        let started = Moment::now();
        let inner = self.inner();
        self.recipe.admit(|| self.pool_state().idle > 0)?;
        let conn = match inner {
            #[cfg(feature = "deadpool")]
            Inner::Deadpool(pool) => deadpool::get(pool, &self.id)
                .await
                .map(AsyncConnection::Deadpool),
            #[cfg(feature = "bb8")]
            Inner::Bb8(pool) => bb8::get(pool, &self.recipe, &self.id)
                .await
                .map(AsyncConnection::Bb8),
        }?;
        Ok(self.recipe.checked_out(conn, started))
    }

    /// Opens one connection and closes it, so a bad URL or a server that is down
    /// fails the build; the pool keeps nothing it was not asked to keep warm.
    pub(crate) async fn check_connect(&self) -> Result<()> {
        self.recipe.check_honoured()?;
        self.recipe
            .check_async()
            .await
            .map_err(|e| e.into_error(&self.id))
    }

    pub(crate) fn counts(&self) -> PoolCounts {
        self.recipe.counters.snapshot()
    }

    pub(crate) fn min_idle(&self) -> u32 {
        self.recipe.options.min_idle.min(self.max_size)
    }

    pub(crate) fn recipe(&self) -> &Arc<Recipe<B>> {
        &self.recipe
    }

    /// Sets the pool's gauges from its state now.
    #[cfg(feature = "metrics")]
    pub(crate) fn record_gauges(&self) {
        let kept_idle = match self.recipe.options.async_pool {
            // deadpool opens connections only on demand and keeps no minimum.
            AsyncPoolKind::Deadpool => 0,
            AsyncPoolKind::Bb8 => self.min_idle(),
        };
        self.recipe
            .instruments
            .observe(&self.pool_state(), kept_idle);
    }

    pub(crate) fn pool_state(&self) -> PoolState {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (size, idle, waiting) = match self.inner.get() {
            None => (0, 0, 0),
            #[cfg(feature = "deadpool")]
            Some(Inner::Deadpool(pool)) => deadpool::state(pool),
            #[cfg(feature = "bb8")]
            Some(Inner::Bb8(pool)) => bb8::state(pool),
        };
        let (size, idle) = (count(size), count(idle));
        PoolState {
            size,
            idle,
            in_use: size.saturating_sub(idle),
            waiting: count(waiting),
            max: self.max_size,
        }
    }

    /// Closes the idle connections and returns how many.
    pub(crate) async fn clear_idle(&self) -> usize {
        match self.inner.get() {
            None => 0,
            #[cfg(feature = "deadpool")]
            Some(Inner::Deadpool(pool)) => deadpool::clear_idle(pool),
            #[cfg(feature = "bb8")]
            Some(Inner::Bb8(pool)) => bb8::clear_idle(pool).await,
        }
    }

    /// Closes the pool: later checkouts fail with `Closed`. bb8 pools close when
    /// dropped.
    pub(crate) fn close(&self) {
        match self.inner.get() {
            #[cfg(feature = "deadpool")]
            Some(Inner::Deadpool(pool)) => pool.close(),
            #[cfg(feature = "bb8")]
            Some(Inner::Bb8(_)) => {}
            None => {}
        }
    }
}
