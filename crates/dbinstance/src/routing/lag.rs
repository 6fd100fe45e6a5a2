//! The lag monitor: a thread per instance that reads each replica's lag every
//! `replica_lag_interval` and marks the replicas further behind than
//! `max_replica_lag` (or whose lag cannot be read) in the replica set, so that
//! the read walk skips them without any I/O of its own. It also notes how far each
//! has replayed, which spares reads after a write most of their checks. It runs only when
//! `max_replica_lag` is set, and ends when the instance's pools are gone.

use super::ReplicaSet;
use crate::backend::{Backend, Driver, ReplicaLag};
use crate::topology::Pools;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts the monitor over `pools`' replicas.
pub(crate) fn spawn<B: Backend>(
    pools: Weak<Pools<B>>,
    replicas: Arc<ReplicaSet>,
    max_lag: Duration,
    interval: Duration,
) {
    let spawned = std::thread::Builder::new()
        .name("dbinstance-lag".into())
        .spawn(move || {
            while let Some(pools) = pools.upgrade() {
                measure(&pools, &replicas, max_lag, interval);
                drop(pools);
                std::thread::sleep(interval);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "dbinstance: the lag monitor could not start; replicas are used whatever their lag");
    }
}

/// One reading of every replica.
fn measure<B: Backend>(
    pools: &Pools<B>,
    replicas: &ReplicaSet,
    max_lag: Duration,
    interval: Duration,
) {
    for (index, target) in pools.reads.iter().enumerate() {
        if target.is_primary {
            continue;
        }
        let pool = &target.sync_pool;
        let lag = pool.get_within(interval).ok().and_then(|mut conn| {
            if let Ok(Some(replayed)) = B::Driver::replayed_position(&mut conn) {
                replicas.note_replayed(index, replayed);
            }
            B::Driver::replica_lag(&mut conn)
        });
        let behind = ReplicaLag::exceeds(lag, max_lag);
        let lag = lag.and_then(|lag| lag.seconds);
        if replicas.set_behind(index, behind) {
            match lag {
                Some(seconds) if behind => {
                    tracing::warn!(pool = %pool.id, seconds, ?max_lag, "dbinstance: replica too far behind, reads skip it")
                }
                None => {
                    tracing::warn!(pool = %pool.id, "dbinstance: replica lag unknown, reads skip it")
                }
                Some(seconds) => {
                    tracing::info!(pool = %pool.id, seconds, "dbinstance: replica caught up, reads use it again")
                }
            }
        }
    }
}
