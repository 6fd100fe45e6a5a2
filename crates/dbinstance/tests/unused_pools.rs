//! A family of pools that is never used opens nothing: an instance used only from
//! async code holds no blocking connection, one used only for reads holds no write
//! connection, and the build's check that the servers are there keeps nothing.

mod common;

use dbinstance::{DatabaseConfig, DatabaseInstance, PoolKind, Postgres, Role, Sqlite};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::SimpleAsyncConnection;
use std::time::Duration;

fn size<B: dbinstance::Backend>(db: &DatabaseInstance<B>, role: Role, kind: PoolKind) -> u32 {
    db.pool_stats()
        .iter()
        .filter(|s| s.pool.role == role && s.pool.kind == kind)
        .map(|s| s.state.size)
        .sum()
}

fn server_connections(url: &str, app: &str) -> i64 {
    let mut admin = PgConnection::establish(url).unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(&format!(
        "count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
    )))
    .get_result(&mut admin)
    .unwrap()
}

#[test]
fn async_reads_open_only_async_read_connections() {
    let Some(url) = common::pg() else { return };
    let app = common::unique_table("async_reads_only");
    let config = DatabaseConfig::from_url(url.clone())
        .application_name(&app)
        .pool_size(4);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(async {
        let db = DatabaseInstance::<Postgres>::builder(config)
            .build_async()
            .await
            .unwrap();
        let reads: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let mut session = db.async_get_db_cm_read().await.unwrap();
                        session.batch_execute("SELECT 1").await.unwrap();
                    }
                })
            })
            .collect();
        for read in reads {
            read.await.unwrap();
        }
        db
    });
    let reading = size(&db, Role::Read, PoolKind::Async);
    assert!((1..=4).contains(&reading), "{:?}", db.pool_stats());
    assert_eq!(size(&db, Role::Write, PoolKind::Async), 0);
    assert_eq!(size(&db, Role::Read, PoolKind::Sync), 0);
    assert_eq!(size(&db, Role::Write, PoolKind::Sync), 0);
    // The server agrees: the build's checks left nothing behind.
    assert!(
        common::eventually(Duration::from_secs(5), || {
            server_connections(&url, &app) == i64::from(reading)
        }),
        "{} connections on the server for {reading} pooled",
        server_connections(&url, &app)
    );
    db.close_all_connections();
}

#[test]
fn blocking_reads_open_only_blocking_read_connections() {
    let file = common::TempDb::new("blocking-reads-only");
    let db =
        DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(file.url()).pool_size(4)).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    let mut session = db.get_db_cm_read().unwrap();
                    session.batch_execute("SELECT 1").unwrap();
                }
            });
        }
    });
    assert!(size(&db, Role::Read, PoolKind::Sync) >= 1);
    assert_eq!(size(&db, Role::Write, PoolKind::Sync), 0);
    assert_eq!(size(&db, Role::Read, PoolKind::Async), 0);
    assert_eq!(size(&db, Role::Write, PoolKind::Async), 0);
}
