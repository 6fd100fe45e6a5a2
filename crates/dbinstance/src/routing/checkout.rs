//! The one read walk. [`Walk`] holds the decisions (which replica next, what a
//! failure means, what to report when none answered) and does no I/O; the
//! blocking and async checkouts below drive it with their own `get`, so the two
//! cannot drift apart.

use super::Router;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::id::PoolId;
use crate::pool::async_pool::{AsyncConnection, AsyncPool};
use crate::pool::r2d2::{SyncConnection, SyncPool};
use crate::topology::Pools;

/// One read checkout's way through the replicas: each is tried at most once.
struct Walk<'a, I> {
    router: &'a Router,
    order: I,
    last_error: Option<Error>,
}

impl Router {
    fn walk(&self) -> Walk<'_, impl Iterator<Item = usize> + '_> {
        Walk {
            router: self,
            order: self.policy.order(&self.replicas),
            last_error: None,
        }
    }
}

impl<I: Iterator<Item = usize>> Walk<'_, I> {
    /// The next replica to try.
    fn next(&mut self) -> Option<usize> {
        self.order.next()
    }

    /// After trying a server: the outcome to hand back (a connection, or an error
    /// the caller gets), or `None` to move on because that replica is unavailable.
    fn settle<T>(&mut self, is_primary: bool, result: Result<T>) -> Option<Result<T>> {
        match result {
            Err(e @ (Error::Connect { .. } | Error::Unavailable { .. })) if !is_primary => {
                self.last_error = Some(e);
                None
            }
            done => Some(done),
        }
    }

    /// No replica answered, or every one is too far behind, and there is no
    /// fallback to the primary. `last_pool` names a replica's read pool.
    fn exhausted(self, last_pool: Option<&PoolId>) -> Error {
        match (self.last_error, self.router.max_replica_lag, last_pool) {
            (Some(e), _, _) => e,
            (None, Some(max_replica_lag), Some(pool)) => Error::ReplicaLag {
                pool: pool.clone(),
                max_replica_lag,
            },
            _ => Error::Runtime("no read pool configured"),
        }
    }
}

/// A blocking read connection and the pool it came from: a replica when one
/// answers, else the primary's read-only pools when fallback is on.
pub(crate) fn read_sync<'p, B: Backend>(
    router: &Router,
    pools: &'p Pools<B>,
) -> Result<(SyncConnection<B>, &'p SyncPool<B>)> {
    let mut walk = router.walk();
    while let Some(i) = walk.next() {
        let target = &pools.reads[i];
        if let Some(done) = walk.settle(target.is_primary, target.sync_pool.get()) {
            return done.map(|conn| (conn, &target.sync_pool));
        }
    }
    match &pools.fallback {
        Some(primary) => Ok((primary.sync_pool.get()?, &primary.sync_pool)),
        None => Err(walk.exhausted(pools.reads.last().map(|t| &t.sync_pool.id))),
    }
}

/// The async twin of [`read_sync`].
pub(crate) async fn read_async<'p, B: Backend>(
    router: &Router,
    pools: &'p Pools<B>,
) -> Result<(AsyncConnection<B>, &'p AsyncPool<B>)> {
    let mut walk = router.walk();
    while let Some(i) = walk.next() {
        let target = &pools.reads[i];
        let result = target.async_pool.get().await;
        if let Some(done) = walk.settle(target.is_primary, result) {
            return done.map(|conn| (conn, &target.async_pool));
        }
    }
    match &pools.fallback {
        Some(primary) => Ok((primary.async_pool.get().await?, &primary.async_pool)),
        None => Err(walk.exhausted(pools.reads.last().map(|t| &t.async_pool.id))),
    }
}
