//! `--memory STACK`: what one more pooled connection costs this process on
//! PostgreSQL. The stack opens a quarter of `--pool` connections, then the rest,
//! holding them all; the growth of the process's resident memory between the two
//! readings, divided by the connections opened in between, is the figure (the
//! pool's own fixed cost, its threads and first allocations, falls before the
//! first reading). One stack per process, so that no stack inherits memory another
//! freed: run the command once per stack.

use crate::measure::BoxError;
use dbinstance::{DatabaseConfig, DatabaseInstance, Postgres};
use diesel_async::pooled_connection::{deadpool, AsyncDieselConnectionManager};
use diesel_async::AsyncPgConnection;

/// The stacks `--memory` knows.
pub const STACKS: &[&str] = &["r2d2", "ours-sync", "deadpool-fast", "ours", "sqlx"];

/// The process's resident memory, in bytes (Linux).
fn resident() -> Result<u64, BoxError> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("no resident size in /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

/// Takes `n` connections with `get`, holding them all, and reads the resident
/// memory after the first quarter and after the last.
fn readings<T>(n: u32, mut get: impl FnMut() -> Result<T, BoxError>) -> Result<[u64; 2], BoxError> {
    let mut held = Vec::new();
    let mut first = 0;
    for i in 0..n {
        if i == n / 4 {
            first = resident()?;
        }
        held.push(get()?);
    }
    Ok([first, resident()?])
}

/// [`readings`] for a pool whose checkout is async.
async fn async_readings<T, F>(n: u32, mut get: impl FnMut() -> F) -> Result<[u64; 2], BoxError>
where
    F: std::future::Future<Output = Result<T, BoxError>>,
{
    let mut held = Vec::new();
    let mut first = 0;
    for i in 0..n {
        if i == n / 4 {
            first = resident()?;
        }
        held.push(get().await?);
    }
    Ok([first, resident()?])
}

/// Opens `n` connections of `stack` on `url` (at least 4), holds them, and returns
/// the bytes each of the last three quarters added.
pub fn per_connection(stack: &str, url: &str, n: u32) -> Result<u64, BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let config = || DatabaseConfig::from_url(url).pool_size(n).min_idle(0);
    let [first, last] = match stack {
        "r2d2" => {
            let manager = diesel::r2d2::ConnectionManager::<diesel::PgConnection>::new(url);
            let pool = diesel::r2d2::Pool::builder()
                .max_size(n)
                .min_idle(Some(0))
                .build(manager)?;
            readings(n, || Ok(pool.get()?))?
        }
        "ours-sync" => {
            let db = DatabaseInstance::<Postgres>::builder(config()).build_lazy()?;
            readings(n, || Ok(db.get_db_cm_read()?))?
        }
        "deadpool-fast" => {
            let mut manager_config = diesel_async::pooled_connection::ManagerConfig::default();
            manager_config.recycling_method =
                diesel_async::pooled_connection::RecyclingMethod::Fast;
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
                url,
                manager_config,
            );
            let pool = deadpool::Pool::builder(manager)
                .max_size(n as usize)
                .build()?;
            rt.block_on(async_readings(n, || async { Ok(pool.get().await?) }))?
        }
        "ours" => {
            let db = DatabaseInstance::<Postgres>::builder(config()).build_lazy()?;
            rt.block_on(async_readings(n, || async {
                Ok(db.async_get_db_cm_read().await?)
            }))?
        }
        "sqlx" => {
            let _runtime = rt.enter();
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(n)
                .connect_lazy(url)?;
            rt.block_on(async_readings(n, || async { Ok(pool.acquire().await?) }))?
        }
        other => return Err(format!("--memory knows {STACKS:?}, not `{other}`").into()),
    };
    Ok(last.saturating_sub(first) / u64::from(n - n / 4))
}
