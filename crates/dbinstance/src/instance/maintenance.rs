//! Pool maintenance, forwarded to [`crate::maintenance`].

use super::DatabaseInstance;
use crate::backend::Backend;
use crate::error::Result;
use crate::maintenance;

impl<B: Backend> DatabaseInstance<B> {
    /// Opens `min_idle` connections in every blocking pool now, so the first
    /// requests do not pay for connecting.
    ///
    /// # Errors
    /// The first pool that could not open its connections.
    pub fn warmup(&self) -> Result<()> {
        maintenance::warmup(&*self.pools()?)
    }

    /// Opens `min_idle` connections in every async pool now, all pools at once.
    ///
    /// # Errors
    /// The first pool that could not open its connections.
    pub async fn async_warmup(&self) -> Result<()> {
        maintenance::async_warmup(&*self.pools()?).await
    }

    /// Closes the idle connections of every pool (connections in use are left
    /// alone) and returns how many were closed. r2d2 and bb8 open new ones in the
    /// background up to `min_idle`; deadpool opens them on the next checkouts.
    pub async fn clear_idle(&self) -> usize {
        match self.pools() {
            Ok(pools) => maintenance::clear_idle(&pools).await,
            Err(_) => 0,
        }
    }

    /// Connects once to the primary and every replica through the async pools,
    /// keeping nothing: what `build_async` checks.
    pub(crate) async fn async_check_servers(&self) -> Result<()> {
        let pools = self.pools()?;
        pools.write_async.check_connect().await?;
        for read in &pools.reads {
            read.async_pool.check_connect().await?;
        }
        Ok(())
    }
}
