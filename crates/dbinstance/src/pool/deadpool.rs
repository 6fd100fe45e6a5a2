//! deadpool as the async pool library (the default): the manager's deadpool
//! face, and building, checking out, measuring, trimming and closing a pool.

use super::conn::Pooled;
use super::failure::ConnectFailure;
use super::manager::AsyncManager;
use super::metrics::PoolCounters;
use crate::backend::Backend;
use crate::config::PoolOptions;
use crate::error::{Error, Result};
use crate::id::{PoolId, Stage};
use ::deadpool::managed::{Object, PoolConfig, PoolError, QueueMode, Timeouts};

pub(crate) type Pool<B> = ::deadpool::managed::Pool<AsyncManager<B>>;
pub(crate) type Connection<B> = Object<AsyncManager<B>>;

impl<B: Backend> ::deadpool::managed::Manager for AsyncManager<B> {
    type Type = Pooled<B::AsyncConnection>;
    type Error = ConnectFailure;

    async fn create(&self) -> Result<Self::Type, ConnectFailure> {
        // Boxed: connects are rare, and their future would swell every checkout's.
        Box::pin(self.orphans.create(&self.recipe)).await
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &::deadpool::managed::Metrics,
    ) -> ::deadpool::managed::RecycleResult<ConnectFailure> {
        if let Some(max) = self.recipe.options.max_lifetime {
            if metrics.age() > max {
                return Err(::deadpool::managed::RecycleError::message(
                    "reached pool_recycle age",
                ));
            }
        }
        let idle = conn.hand_out();
        self.validate(conn, idle).await?;
        Ok(())
    }
}

/// A pool of `max_size` connections; deadpool opens them on demand.
pub(crate) fn build<B: Backend>(
    manager: AsyncManager<B>,
    max_size: u32,
    options: &PoolOptions,
) -> Pool<B> {
    let config = PoolConfig {
        max_size: max_size as usize,
        timeouts: Timeouts {
            wait: Some(options.pool_timeout),
            create: None,
            // The recycle's one wait, its ping, is bounded in `validate`.
            recycle: None,
        },
        queue_mode: QueueMode::Fifo,
    };
    // Cannot fail: a runtime is given whenever timeouts are.
    Pool::builder(manager)
        .config(config)
        .runtime(::deadpool::Runtime::Tokio1)
        .build()
        .unwrap_or_else(|e| unreachable!("deadpool rejected a valid config: {e}"))
}

pub(crate) async fn get<B: Backend>(pool: &Pool<B>, id: &PoolId) -> Result<Connection<B>> {
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(_) => {
            let recipe = &pool.manager().recipe;
            recipe.timed_out(recipe.options.pool_timeout)
        }
        PoolError::Backend(failure) => failure.into_error(id),
        PoolError::Closed => Error::Closed { pool: id.clone() },
        PoolError::NoRuntimeSpecified => Error::Runtime("deadpool needs a tokio runtime"),
        PoolError::PostCreateHook(hook) => Error::Connect {
            pool: id.clone(),
            stage: Stage::Setup,
            source: hook.to_string().into(),
        },
    })
}

/// Connections open, idle, and callers waiting.
pub(crate) fn state<B: Backend>(pool: &Pool<B>) -> (usize, usize, usize) {
    let status = pool.status();
    (status.size, status.available, status.waiting)
}

/// Closes the idle connections and returns how many.
pub(crate) fn clear_idle<B: Backend>(pool: &Pool<B>) -> usize {
    pool.retain(|_, _| false).removed.len()
}

/// Takes the connection out of the pool and closes it.
pub(crate) fn discard<B: Backend>(object: Connection<B>) {
    if let Some(pool) = Object::pool(&object) {
        PoolCounters::bump(&pool.manager().recipe.counters.broken_discarded);
    }
    drop(Object::take(object));
}
