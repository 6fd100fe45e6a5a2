//! The one read walk. [`Walk`] holds the decisions (which replica next, whether
//! its pool is too full to try yet, whether it must first show it has replayed a
//! write, what a failure means, what to report when none served) and does no I/O;
//! the blocking and async checkouts below drive it with their own `get` and their
//! own wait, so the two cannot drift apart.

use super::Router;
use crate::backend::{Backend, Driver};
use crate::error::{Error, Result};
use crate::id::PoolId;
use crate::pool::async_pool::{AsyncConnection, AsyncPool};
use crate::pool::r2d2::{SyncConnection, SyncPool};
#[cfg(feature = "postgres")]
use crate::pool::shared::{SharedConnection, SharedConnections};
use crate::position::{CommitPosition, ReadAfter};
use crate::session::in_own_transaction;
use crate::topology::{Pools, ReadTarget};
#[cfg(feature = "postgres")]
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest pause between two readings of a replica's position while a read
/// waits for it to replay a write: short, because replicas are usually
/// milliseconds behind.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(8);

/// Where a replica stands against the write a read must see.
enum Replayed {
    Yes,
    AskAgainAfter(Duration),
    /// Not within the wait, or its position cannot be read: move on.
    GaveUp,
}

/// A replica's position, read on one of its connections.
type PositionReading<'c> = std::pin::Pin<
    Box<dyn std::future::Future<Output = diesel::QueryResult<Option<CommitPosition>>> + Send + 'c>,
>;

/// One read checkout's way through the replicas: each is tried at most once.
struct Walk<'a, I> {
    router: &'a Router,
    order: I,
    last_error: Option<Error>,
    /// The write this read must see, if any.
    after: Option<&'a CommitPosition>,
    /// Only the primary can serve: a write's position is unknown.
    primary_only: bool,
    /// Only a read after a write waits, so only then is the clock read.
    started: Option<Instant>,
    /// A replica was passed over because it had not replayed `after`.
    not_replayed: bool,
    /// The first replica passed over because its pool was exhausted: waited on
    /// only when no other served.
    first_exhausted: Option<usize>,
}

impl Router {
    fn walk<'a>(
        &'a self,
        after: Option<&'a ReadAfter>,
    ) -> Walk<'a, impl Iterator<Item = usize> + 'a> {
        Walk {
            router: self,
            order: self.policy.order(&self.replicas),
            last_error: None,
            after: match after {
                Some(ReadAfter::Position(position)) => Some(position),
                _ => None,
            },
            primary_only: matches!(after, Some(ReadAfter::Primary)),
            started: after.map(|_| Instant::now()),
            not_replayed: false,
            first_exhausted: None,
        }
    }
}

impl<'a, I: Iterator<Item = usize>> Walk<'a, I> {
    /// The next target to try. One whose pool is exhausted (no idle connection,
    /// and as many open as it may hold) is passed over: a checkout there would wait
    /// up to `pool_timeout` while the next replica in the order may have room. When
    /// none has, the first such is tried last, and its checkout waits as usual.
    fn next<'p, B: Backend>(
        &mut self,
        pools: &'p Pools<B>,
        is_exhausted: impl Fn(&ReadTarget<B>) -> bool,
    ) -> Option<(usize, &'p ReadTarget<B>)> {
        // A lone read target has nowhere to spill to: its pool is not even looked at.
        let may_spill = pools.reads.len() > 1;
        for i in self.order.by_ref() {
            let target = &pools.reads[i];
            if self.primary_only && !target.is_primary {
                self.not_replayed = true;
                continue;
            }
            if may_spill && is_exhausted(target) {
                self.first_exhausted.get_or_insert(i);
                continue;
            }
            return Some((i, target));
        }
        self.first_exhausted.take().map(|i| (i, &pools.reads[i]))
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

    /// The write a connection to replica `i` must show it has replayed before it
    /// serves this read: none when the read follows no write, when the target is
    /// the primary, or when the replica is already known to be past it.
    fn must_see(&self, i: usize, target_is_primary: bool) -> Option<&'a CommitPosition> {
        let position = self.after?;
        let known = target_is_primary || self.router.replicas.has_replayed(i, position);
        (!known).then_some(position)
    }

    /// Records replica `i`'s reading of its position, and says what next.
    fn replayed(
        &mut self,
        i: usize,
        position: &CommitPosition,
        reading: diesel::QueryResult<Option<CommitPosition>>,
        pause: &mut Duration,
    ) -> Replayed {
        let replayed = match reading {
            Ok(Some(replayed)) => replayed,
            // Replication is not running there, or the reading failed.
            Ok(None) | Err(_) => return self.passed_over(),
        };
        let caught_up = replayed.covers(position);
        self.router.replicas.note_replayed(i, replayed);
        if caught_up {
            return Replayed::Yes;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let left =
            (started + self.router.read_your_writes_wait).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return self.passed_over();
        }
        *pause = (*pause * 2).min(MAX_POLL_PAUSE).min(left);
        Replayed::AskAgainAfter(*pause)
    }

    /// Reads replica `i`'s position on `conn` until it covers `position` (true),
    /// or the wait is over or the reading fails (false).
    async fn waited_for_replay<C>(
        &mut self,
        i: usize,
        position: &CommitPosition,
        conn: &mut C,
        mut read: impl for<'c> FnMut(&'c mut C) -> PositionReading<'c>,
    ) -> bool {
        let mut pause = Duration::from_micros(250);
        loop {
            let reading = read(conn).await;
            match self.replayed(i, position, reading, &mut pause) {
                Replayed::Yes => return true,
                Replayed::AskAgainAfter(pause) => tokio::time::sleep(pause).await,
                Replayed::GaveUp => return false,
            }
        }
    }

    fn passed_over(&mut self) -> Replayed {
        self.not_replayed = true;
        Replayed::GaveUp
    }

    /// No replica served, and there is no fallback to the primary. `last_pool`
    /// names a replica's read pool.
    fn exhausted(self, last_pool: Option<&PoolId>) -> Error {
        let Some(pool) = last_pool.cloned() else {
            return Error::Runtime("no read pool configured");
        };
        if self.not_replayed {
            return Error::WriteNotReplayed {
                pool,
                waited: self.started.map_or(Duration::ZERO, |s| s.elapsed()),
            };
        }
        match (self.last_error, self.router.max_replica_lag) {
            (Some(e), _) => e,
            (None, Some(max_replica_lag)) => Error::ReplicaLag {
                pool,
                max_replica_lag,
            },
            (None, None) => Error::Runtime("no read pool configured"),
        }
    }
}

/// A blocking read connection and the pool it came from: a replica when one
/// answers (and, after a write, has replayed it), one with room before one whose
/// pool is exhausted, else the primary's read-only pools when fallback is on.
pub(crate) fn read_sync<'p, B: Backend>(
    router: &Router,
    pools: &'p Pools<B>,
    after: Option<&ReadAfter>,
) -> Result<(SyncConnection<B>, &'p SyncPool<B>)> {
    let mut walk = router.walk(after);
    while let Some((i, target)) = walk.next(pools, |t| t.sync_pool.pool_state().is_exhausted()) {
        let Some(done) = walk.settle(target.is_primary, target.sync_pool.get()) else {
            continue;
        };
        let mut conn = done?;
        if let Some(position) = walk.must_see(i, target.is_primary) {
            let mut pause = Duration::from_micros(250);
            let caught_up = loop {
                let reading = B::Driver::replayed_position(&mut conn);
                match walk.replayed(i, position, reading, &mut pause) {
                    Replayed::Yes => break true,
                    Replayed::AskAgainAfter(pause) => std::thread::sleep(pause),
                    Replayed::GaveUp => break false,
                }
            };
            if !caught_up {
                continue;
            }
        }
        return Ok((conn, &target.sync_pool));
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
    after: Option<&ReadAfter>,
) -> Result<(AsyncConnection<B>, &'p AsyncPool<B>)> {
    let mut walk = router.walk(after);
    while let Some((i, target)) = walk.next(pools, |t| t.async_pool.pool_state().is_exhausted()) {
        let result = target.async_pool.get().await;
        let Some(done) = walk.settle(target.is_primary, result) else {
            continue;
        };
        let mut conn = done?;
        if let Some(position) = walk.must_see(i, target.is_primary) {
            let pinned = target.async_pool.recipe().options.transaction_pooling;
            // Boxed: only reads after a write wait, and the wait's future would
            // swell every read checkout's.
            let caught_up = Box::pin(walk.waited_for_replay(i, position, &mut conn, |conn| {
                Box::pin(in_own_transaction::<B, _>(conn, pinned, |conn| {
                    Box::pin(B::Driver::async_replayed_position(conn))
                }))
            }))
            .await;
            if !caught_up {
                continue;
            }
        }
        return Ok((conn, &target.async_pool));
    }
    match &pools.fallback {
        Some(primary) => Ok((primary.async_pool.get().await?, &primary.async_pool)),
        None => Err(walk.exhausted(pools.reads.last().map(|t| &t.async_pool.id))),
    }
}

/// A shared read connection, chosen as [`read_async`] chooses a pool: the same
/// walk over the replicas, lag, failures and read-your-writes, then the primary's
/// when fallback is on.
#[cfg(feature = "postgres")]
pub(crate) async fn read_shared<'p>(
    router: &Router,
    pools: &'p Pools<crate::Postgres>,
    after: Option<&ReadAfter>,
) -> Result<(SharedConnection, &'p SharedConnections)> {
    let mut walk = router.walk(after);
    // A shared connection serves every session at once: never "exhausted".
    while let Some((i, target)) = walk.next(pools, |_| false) {
        let shared = shared_of(target)?;
        let result = shared.get().await;
        let Some(done) = walk.settle(target.is_primary, result) else {
            continue;
        };
        let mut conn = done?;
        if let Some(position) = walk.must_see(i, target.is_primary) {
            let caught_up = walk
                .waited_for_replay(i, position, &mut conn, |conn| {
                    Box::pin(crate::backend::shared_replayed_position(conn))
                })
                .await;
            if !caught_up {
                continue;
            }
        }
        return Ok((conn, shared));
    }
    match &pools.fallback {
        Some(primary) => {
            let shared = shared_of(primary)?;
            Ok((shared.get().await?, shared))
        }
        None => Err(walk.exhausted(pools.reads.last().map(|t| &t.async_pool.id))),
    }
}

/// The target's shared connections, made on first use. Behind a transaction
/// pooler, none: each statement of a shared connection would be a transaction of
/// its own, on whichever server connection the pooler picks, and nothing would
/// keep it read-only.
#[cfg(feature = "postgres")]
fn shared_of(target: &ReadTarget<crate::Postgres>) -> Result<&SharedConnections> {
    let recipe = target.async_pool.recipe();
    if recipe.options.transaction_pooling {
        return Err(Error::config(
            "transaction_pooling",
            "shared read sessions need a server session of their own, which a transaction pooler does not keep: use async_get_db_cm_read",
        ));
    }
    Ok(target.shared.get_or_init(|| {
        SharedConnections::new(Arc::clone(recipe), recipe.options.shared_read_connections)
    }))
}
