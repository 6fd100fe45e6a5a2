//! Pool maintenance: opening connections ahead of traffic, and closing idle ones.

use crate::backend::Backend;
use crate::error::Result;
use crate::instance::DatabaseInstance;

impl<B: Backend> DatabaseInstance<B> {
    /// Opens `min_idle` connections in every blocking pool now, so the first
    /// requests do not pay for connecting.
    ///
    /// # Errors
    /// The first pool that could not open its connections.
    pub fn warmup(&self) -> Result<()> {
        let pools = self.pools()?;
        for pool in
            std::iter::once(&pools.write_sync).chain(pools.all_reads().map(|t| &t.sync_pool))
        {
            let held = (0..pool.min_idle())
                .map(|_| pool.get())
                .collect::<Result<Vec<_>>>()?;
            drop(held);
        }
        Ok(())
    }

    /// Opens `min_idle` connections in every async pool now, all pools at once.
    ///
    /// # Errors
    /// The first pool that could not open its connections.
    pub async fn async_warmup(&self) -> Result<()> {
        let pools = self.pools()?;
        let fills = std::iter::once(&pools.write_async)
            .chain(pools.all_reads().map(|t| &t.async_pool))
            .map(|pool| async move {
                let gets = (0..pool.min_idle()).map(|_| pool.get());
                let held = futures_util::future::try_join_all(gets).await?;
                drop(held);
                Ok::<_, crate::Error>(())
            });
        futures_util::future::try_join_all(fills).await?;
        Ok(())
    }

    /// Closes the idle connections of every pool (connections in use are left
    /// alone) and returns how many were closed. Pools with a `min_idle` open new
    /// ones in the background as they need them.
    pub async fn clear_idle(&self) -> usize {
        let Ok(pools) = self.pools() else { return 0 };
        let mut closed = 0;
        for pool in
            std::iter::once(&pools.write_sync).chain(pools.all_reads().map(|t| &t.sync_pool))
        {
            closed += pool.clear_idle();
        }
        for pool in
            std::iter::once(&pools.write_async).chain(pools.all_reads().map(|t| &t.async_pool))
        {
            closed += pool.clear_idle().await;
        }
        closed
    }
}
