//! `pool_recycle`: a connection past its lifetime is closed at its next checkout
//! or return, on every family (r2d2 alone would wait for its reaper, every 30 s),
//! and each connection's lifetime is cut short by a jitter of its own, so that a
//! pool opened at once does not reconnect at once (the jitter's bounds are a unit
//! test of `pool::conn`).

mod common;

use dbinstance::{AsyncPoolKind, DatabaseConfig, DatabaseInstance, PoolKind, Role, Sqlite};
use std::time::Duration;

const LIFETIME: Duration = Duration::from_millis(300);

fn opened(db: &DatabaseInstance<Sqlite>, kind: PoolKind) -> u64 {
    db.pool_stats()
        .iter()
        .filter(|s| s.pool.role == Role::Read && s.pool.kind == kind)
        .map(|s| s.counts.opened)
        .sum()
}

fn instance(file: &common::TempDb, async_pool: AsyncPoolKind) -> DatabaseInstance<Sqlite> {
    let config = DatabaseConfig::from_url(file.url())
        .pool_size(3)
        .min_idle(0)
        .pool_recycle(LIFETIME)
        .async_pool(async_pool);
    DatabaseInstance::new(config).unwrap()
}

#[test]
fn blocking_connections_past_their_lifetime_are_reopened_at_checkout() {
    let file = common::TempDb::new("recycle-sync");
    let db = instance(&file, AsyncPoolKind::Deadpool);
    let held: Vec<_> = (0..3).map(|_| db.get_db_cm_read().unwrap()).collect();
    drop(held);
    let before = opened(&db, PoolKind::Sync);
    std::thread::sleep(LIFETIME + Duration::from_millis(100));
    let held: Vec<_> = (0..3).map(|_| db.get_db_cm_read().unwrap()).collect();
    drop(held);
    assert!(
        opened(&db, PoolKind::Sync) >= before + 3,
        "reused past pool_recycle"
    );
}

fn async_scenario(async_pool: AsyncPoolKind) {
    let file = common::TempDb::new("recycle-async");
    let db = instance(&file, async_pool);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(db.async_get_db_cm_read().await.unwrap());
        }
        drop(held);
        let before = opened(&db, PoolKind::Async);
        tokio::time::sleep(LIFETIME + Duration::from_millis(100)).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(db.async_get_db_cm_read().await.unwrap());
        }
        drop(held);
        assert!(
            opened(&db, PoolKind::Async) >= before + 3,
            "{async_pool:?} reused past pool_recycle"
        );
    });
}

#[test]
fn deadpool_connections_past_their_lifetime_are_reopened_at_checkout() {
    async_scenario(AsyncPoolKind::Deadpool);
}

#[test]
fn bb8_connections_past_their_lifetime_are_reopened_at_checkout() {
    async_scenario(AsyncPoolKind::Bb8);
}
