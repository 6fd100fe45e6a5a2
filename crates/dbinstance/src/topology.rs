//! The pools of one database, built from a validated config: the write pools on
//! the primary, one pair of read pools per replica (or the primary's read-only
//! pools when there is none), and the primary's read pools kept for fallback.

use crate::backend::{Backend, BackendKind};
use crate::config::Plan;
use crate::id::{PoolId, PoolKind, Role};
use crate::pool::async_pool::AsyncPool;
use crate::pool::hooks::Hooks;
use crate::pool::r2d2::SyncPool;
#[cfg(feature = "postgres")]
use crate::pool::shared::SharedConnections;
use crate::pool::{Breaker, Recipe, ServerState};
use crate::target::Target;
use std::sync::Arc;
#[cfg(feature = "postgres")]
use std::sync::OnceLock;

/// The read pools for one server.
pub(crate) struct ReadTarget<B: Backend> {
    pub(crate) sync_pool: SyncPool<B>,
    pub(crate) async_pool: AsyncPool<B>,
    /// The connections shared read sessions use, beside the async pool: made on
    /// first use, and only on PostgreSQL, whose async connection alone serves
    /// several sessions at once.
    #[cfg(feature = "postgres")]
    pub(crate) shared: OnceLock<SharedConnections>,
    pub(crate) is_primary: bool,
}

/// What the pools on one server share.
struct Server {
    state: ServerState,
    threads: Arc<scheduled_thread_pool::ScheduledThreadPool>,
}

/// A pool's name, unique within the process as long as `prefix` is unique per
/// instance: `<prefix>/write/<sync|async>` on the primary,
/// `<prefix>/read/replica<N>/<sync|async>` on the replica at index `N` of the
/// config (the order of `read_weights`), and `<prefix>/read/primary/<sync|async>`
/// for the primary's read-only pools. An index rather than the replica's address,
/// so that two entries for one server stay apart.
fn pool_name(prefix: &str, role: Role, replica: Option<usize>, kind: PoolKind) -> String {
    let kind = kind.as_str();
    match (role, replica) {
        (Role::Write, _) => format!("{prefix}/write/{kind}"),
        (Role::Read, Some(i)) => format!("{prefix}/read/replica{i}/{kind}"),
        (Role::Read, None) => format!("{prefix}/read/primary/{kind}"),
    }
}

pub(crate) struct Pools<B: Backend> {
    pub(crate) write_sync: SyncPool<B>,
    pub(crate) write_async: AsyncPool<B>,
    /// One per replica, or the primary's read-only pools when there is none.
    pub(crate) reads: Vec<ReadTarget<B>>,
    /// The primary's read-only pools, used when every replica is down.
    pub(crate) fallback: Option<ReadTarget<B>>,
}

impl<B: Backend> Pools<B> {
    /// Builds every pool without connecting; their names start with `prefix`
    /// (see [`pool_name`]).
    pub(crate) fn new(plan: &Plan, hooks: &Hooks<B>, prefix: &str) -> Self {
        let options = &plan.pool;
        let server = || Server {
            state: ServerState {
                breaker: Arc::new(Breaker::new(
                    plan.routing.breaker_backoff,
                    B::KIND != BackendKind::Sqlite,
                )),
                demotion: Arc::default(),
            },
            // r2d2 opens connections in these threads. One set per server, so that
            // connects stuck on a hung server cannot hold up another server's.
            threads: Arc::new(
                scheduled_thread_pool::ScheduledThreadPool::builder()
                    .num_threads(2)
                    .thread_name_pattern("dbinstance-r2d2-{}")
                    .build(),
            ),
        };
        let target = |target: &Target, role: Role, replica, server: &Server| -> ReadTarget<B> {
            let recipe = |kind| {
                let id = PoolId {
                    role,
                    kind,
                    target: target.label.clone(),
                };
                let recipe = Recipe::new(
                    target,
                    id,
                    pool_name(prefix, role, replica, kind),
                    &plan.connect,
                    options.clone(),
                    hooks.clone(),
                    &server.state,
                );
                Arc::new(recipe)
            };
            let max = match role {
                Role::Write => options.write_max_size,
                Role::Read => options.max_size,
            };
            ReadTarget {
                sync_pool: SyncPool::new(recipe(PoolKind::Sync), max, server.threads.clone()),
                async_pool: AsyncPool::new(recipe(PoolKind::Async), max),
                #[cfg(feature = "postgres")]
                shared: OnceLock::new(),
                is_primary: target.is_primary,
            }
        };
        let addresses = &plan.addresses;
        // The primary's pools, write and read (fallback, or reads when there is no
        // replica), share its server's breaker and threads.
        let primary = server();
        let write = target(&addresses.write, Role::Write, None, &primary);
        let reads: Vec<_> = addresses
            .reads
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if r.is_primary {
                    target(r, Role::Read, None, &primary)
                } else {
                    target(r, Role::Read, Some(i), &server())
                }
            })
            .collect();
        let has_replicas = reads.iter().any(|r| !r.is_primary);
        let fallback = (has_replicas && plan.routing.read_fallback)
            .then(|| target(&addresses.write, Role::Read, None, &primary));
        Self {
            write_sync: write.sync_pool,
            write_async: write.async_pool,
            reads,
            fallback,
        }
    }

    /// Every read target: the replicas (or the primary's read pools), then the fallback.
    pub(crate) fn all_reads(&self) -> impl Iterator<Item = &ReadTarget<B>> {
        self.reads.iter().chain(&self.fallback)
    }

    /// Every blocking pool, the write pool first.
    pub(crate) fn sync_pools(&self) -> impl Iterator<Item = &SyncPool<B>> {
        std::iter::once(&self.write_sync).chain(self.all_reads().map(|t| &t.sync_pool))
    }

    /// Every async pool, the write pool first.
    pub(crate) fn async_pools(&self) -> impl Iterator<Item = &AsyncPool<B>> {
        std::iter::once(&self.write_async).chain(self.all_reads().map(|t| &t.async_pool))
    }

    /// Sets every pool's gauges from its state now.
    #[cfg(feature = "metrics")]
    pub(crate) fn record_gauges(&self) {
        for pool in self.sync_pools() {
            pool.record_gauges();
        }
        for pool in self.async_pools() {
            pool.record_gauges();
        }
    }

    /// Closes the async pools and the shared read connections (r2d2 pools close
    /// when dropped).
    pub(crate) fn close(&self) {
        for pool in self.async_pools() {
            pool.close();
        }
        #[cfg(feature = "postgres")]
        for shared in self.all_reads().filter_map(|t| t.shared.get()) {
            shared.clear();
        }
    }
}
