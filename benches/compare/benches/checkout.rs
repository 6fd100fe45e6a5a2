//! Single-task latency of one checkout plus one typed query on PostgreSQL:
//! dbinstance's async read session against diesel-async + deadpool with `Fast`
//! recycling (the fastest plain pool). No contention: this is the fixed cost a
//! session adds on top of the round trip.
//!
//! `eval "$(scripts/testbed.sh env)" && cargo bench -p compare --bench checkout`.
//! Skipped, with a message, when `DBI_PG_URL` is not set.

use criterion::Criterion;
use dbinstance::{DatabaseConfig, DatabaseInstance, Postgres};
use diesel::sql_types::Integer;
use diesel::IntoSql;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::time::Duration;

fn bench(c: &mut Criterion, url: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let db = rt
        .block_on(
            DatabaseInstance::<Postgres>::builder(DatabaseConfig::from_url(url).pool_size(16))
                .build_async(),
        )
        .expect("dbinstance connects to DBI_PG_URL");
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let pool: Pool<AsyncPgConnection> =
        Pool::builder(AsyncDieselConnectionManager::new_with_config(url, config))
            .max_size(16)
            .build()
            .expect("a deadpool pool");

    let mut group = c.benchmark_group("checkout+query");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("dbinstance async read", |b| {
        b.to_async(&rt).iter(|| async {
            let mut session = db.async_get_db_cm_read().await.expect("a session");
            let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                .get_result(&mut *session)
                .await
                .expect("the query");
            assert_eq!(value, 1);
        })
    });
    group.bench_function("deadpool Fast", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = pool.get().await.expect("a connection");
            let value: i32 = diesel::select(1_i32.into_sql::<Integer>())
                .get_result(&mut conn)
                .await
                .expect("the query");
            assert_eq!(value, 1);
        })
    });
    group.finish();
    db.close_all_connections();
    pool.close();
}

fn main() {
    let Ok(url) = std::env::var("DBI_PG_URL") else {
        eprintln!(
            "checkout bench: SKIPPED: DBI_PG_URL is not set (eval \"$(scripts/testbed.sh env)\")"
        );
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &url);
    c.final_summary();
}
