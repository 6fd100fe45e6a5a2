//! The one read walk. [`Walk`] holds the decisions (which replica next, what a
//! failure means, what to report when all refused) and does no I/O; the blocking
//! and async checkouts below drive it with their own `get`, so the two cannot
//! drift apart.

use super::{ReplicaSet, Router};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::pool::async_pool::{AsyncConnection, AsyncPool};
use crate::pool::r2d2::{SyncConnection, SyncPool};
use crate::topology::Pools;

/// One read checkout's way through the replicas.
struct Walk<'a, I> {
    replicas: &'a ReplicaSet,
    order: I,
    last_error: Option<Error>,
}

impl Router {
    fn walk(&self) -> Walk<'_, impl Iterator<Item = usize> + '_> {
        Walk {
            replicas: &self.replicas,
            order: self.policy.order(self.replicas.rotation()),
            last_error: None,
        }
    }
}

impl<I: Iterator<Item = usize>> Walk<'_, I> {
    /// The next replica to try.
    fn next(&mut self) -> Option<usize> {
        self.order.next()
    }

    /// After trying replica `index`: the outcome to hand back (a connection, or an
    /// error the caller gets), or `None` to move on because this replica is down.
    fn settle<T>(
        &mut self,
        index: usize,
        is_primary: bool,
        result: Result<T>,
    ) -> Option<Result<T>> {
        match result {
            Ok(conn) => {
                self.replicas.mark_up(index);
                Some(Ok(conn))
            }
            Err(e @ Error::Connect { .. }) if !is_primary => {
                self.replicas.mark_down(index);
                self.last_error = Some(e);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Every replica refused and there is no fallback to the primary.
    fn exhausted(self) -> Error {
        self.last_error
            .unwrap_or(Error::Runtime("no read pool configured"))
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
        if let Some(done) = walk.settle(i, target.is_primary, target.sync_pool.get()) {
            return done.map(|conn| (conn, &target.sync_pool));
        }
    }
    match &pools.fallback {
        Some(primary) => Ok((primary.sync_pool.get()?, &primary.sync_pool)),
        None => Err(walk.exhausted()),
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
        if let Some(done) = walk.settle(i, target.is_primary, result) {
            return done.map(|conn| (conn, &target.async_pool));
        }
    }
    match &pools.fallback {
        Some(primary) => Ok((primary.async_pool.get().await?, &primary.async_pool)),
        None => Err(walk.exhausted()),
    }
}
