//! Pool maintenance: opening connections ahead of traffic, and closing idle ones.

use crate::backend::Backend;
use crate::error::Result;
use crate::topology::Pools;

/// Opens `min_idle` connections in every blocking pool.
pub(crate) fn warmup<B: Backend>(pools: &Pools<B>) -> Result<()> {
    for pool in pools.sync_pools() {
        let held = (0..pool.min_idle())
            .map(|_| pool.get())
            .collect::<Result<Vec<_>>>()?;
        drop(held);
    }
    Ok(())
}

/// Opens `min_idle` connections in every async pool, all pools at once.
pub(crate) async fn async_warmup<B: Backend>(pools: &Pools<B>) -> Result<()> {
    let fills = pools.async_pools().map(|pool| async move {
        let gets = (0..pool.min_idle()).map(|_| pool.get());
        let held = futures_util::future::try_join_all(gets).await?;
        drop(held);
        Ok::<_, crate::Error>(())
    });
    futures_util::future::try_join_all(fills).await?;
    Ok(())
}

/// Closes the idle connections of every pool and returns how many.
pub(crate) async fn clear_idle<B: Backend>(pools: &Pools<B>) -> usize {
    let mut closed: usize = pools.sync_pools().map(|pool| pool.clear_idle()).sum();
    for pool in pools.async_pools() {
        closed += pool.clear_idle().await;
    }
    closed
}
