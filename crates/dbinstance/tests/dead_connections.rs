//! Connections killed on the server cost callers at most one error each; the pool
//! replaces them without a ping on every checkout.

mod common;

use dbinstance::{AsyncPoolKind, DatabaseConfig, DatabaseInstance, Postgres};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Integer;
use diesel::{Connection, IntoSql};
use std::time::Duration;

const POOL: u32 = 4;

fn config(url: String, app: &str) -> DatabaseConfig {
    DatabaseConfig::from_url(url)
        .pool_size(POOL)
        .application_name(app)
        // Long enough that no checkout in this test pings first.
        .pre_ping_after(Duration::from_secs(60))
}

fn terminate(admin_url: &str, app: &str) -> usize {
    let mut admin = diesel::PgConnection::establish(admin_url).unwrap();
    let killed: Vec<bool> = diesel::RunQueryDsl::load(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))),
        &mut admin,
    )
    .unwrap();
    killed.len()
}

#[test]
fn sync_callers_see_at_most_one_error_per_killed_connection() {
    let Some(url) = common::pg() else { return };
    let app = common::unique_table("dead_sync");
    let db = DatabaseInstance::<Postgres>::new(config(url.clone(), &app)).unwrap();
    // Open the whole pool.
    let held: Vec<_> = (0..POOL).map(|_| db.get_db_cm_write().unwrap()).collect();
    drop(held);
    let killed = terminate(&url, &app);
    assert!(killed >= POOL as usize, "killed {killed}");
    std::thread::sleep(Duration::from_millis(100));

    let mut errors = 0;
    for _ in 0..40 {
        // A killed connection fails at BEGIN, or at the first query of the session.
        let Ok(mut session) = db.get_db_cm_write() else {
            errors += 1;
            continue;
        };
        let result: Result<i32, _> =
            diesel::RunQueryDsl::get_result(diesel::select(1.into_sql::<Integer>()), &mut *session);
        match result {
            Ok(_) => session.commit().unwrap(),
            Err(_) => errors += 1,
        }
    }
    eprintln!("sync: {errors} errors after killing {killed} connections");
    assert!(
        errors <= POOL as usize,
        "{errors} errors for {POOL} killed connections"
    );
    // Everything works again, and the pool did not grow past its size.
    let write = &db.pool_stats()[0];
    assert!(write.state.size <= POOL, "{:?}", write.state);
    assert!(write.counts.broken_discarded >= u64::from(POOL.min(errors as u32)));
    db.get_db_cm_write()
        .unwrap()
        .batch_execute("SELECT 1")
        .unwrap();
}

async fn async_callers(kind: AsyncPoolKind) {
    let Some(url) = common::pg() else { return };
    let app = common::unique_table("dead_async");
    let db = DatabaseInstance::<Postgres>::builder(config(url.clone(), &app).async_pool(kind))
        .build_async()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..POOL {
        held.push(db.async_get_db_cm_read().await.unwrap());
    }
    drop(held);
    let admin_url = url.clone();
    let app2 = app.clone();
    let killed = tokio::task::spawn_blocking(move || terminate(&admin_url, &app2))
        .await
        .unwrap();
    assert!(killed >= POOL as usize, "killed {killed}");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut errors = 0;
    for _ in 0..40 {
        let mut session = db.async_get_db_cm_read().await.unwrap();
        let result: Result<i32, _> = diesel_async::RunQueryDsl::get_result(
            diesel::select(1.into_sql::<Integer>()),
            &mut *session,
        )
        .await;
        errors += usize::from(result.is_err());
    }
    eprintln!("{kind:?}: {errors} errors after killing {killed} connections");
    assert!(
        errors <= POOL as usize,
        "{errors} errors for {POOL} killed connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_callers_see_at_most_one_error_per_killed_connection() {
    async_callers(AsyncPoolKind::Deadpool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_callers_see_at_most_one_error_per_killed_connection() {
    async_callers(AsyncPoolKind::Bb8).await;
}
