//! bb8 as the async pool library (the `bb8` feature): the manager's bb8 face,
//! and building, checking out, measuring and trimming a pool.

use super::conn::Pooled;
use super::connector::ConnectFailure;
use super::manager::AsyncManager;
use crate::backend::Backend;
use crate::config::PoolOptions;
use crate::error::{Error, Result};
use crate::id::PoolId;
use std::time::Duration;

pub(crate) type Pool<B> = ::bb8::Pool<AsyncManager<B>>;
pub(crate) type Connection<B> = ::bb8::PooledConnection<'static, AsyncManager<B>>;

impl<B: Backend> ::bb8::ManageConnection for AsyncManager<B> {
    type Connection = Pooled<B::AsyncConnection>;
    type Error = ConnectFailure;

    async fn connect(&self) -> Result<Self::Connection, ConnectFailure> {
        self.recipe.connect_async().await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), ConnectFailure> {
        let idle = conn.last_used.elapsed();
        self.validate(conn, idle).await
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        AsyncManager::has_broken(self, conn)
    }
}

/// A pool that keeps `min_idle` connections open from the start.
pub(crate) fn build<B: Backend>(
    manager: AsyncManager<B>,
    max_size: u32,
    options: &PoolOptions,
) -> Pool<B> {
    ::bb8::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(options.min_idle.min(max_size)))
        .connection_timeout(options.pool_timeout)
        .max_lifetime(options.max_lifetime)
        .idle_timeout(options.idle_timeout)
        .retry_connection(false)
        .test_on_check_out(true)
        .build_unchecked(manager)
}

pub(crate) async fn get<B: Backend>(
    pool: &Pool<B>,
    id: &PoolId,
    timeout: Duration,
) -> Result<Connection<B>> {
    pool.get_owned().await.map_err(|e| match e {
        ::bb8::RunError::User(failure) => failure.into_error(id),
        ::bb8::RunError::TimedOut => Error::Timeout {
            pool: id.clone(),
            timeout,
        },
    })
}

/// Connections open, idle, and callers waiting (bb8 does not count those).
pub(crate) fn state<B: Backend>(pool: &Pool<B>) -> (usize, usize, usize) {
    let state = pool.state();
    (
        state.connections as usize,
        state.idle_connections as usize,
        0,
    )
}

/// Closes the idle connections and returns how many. bb8 has no retain: the idle
/// ones are taken out and dropped as broken.
pub(crate) async fn clear_idle<B: Backend>(pool: &Pool<B>) -> usize {
    let mut taken = Vec::new();
    while pool.state().idle_connections > 0 {
        let quick = tokio::time::timeout(Duration::from_millis(10), pool.get_owned());
        match quick.await {
            Ok(Ok(conn)) => taken.push(conn),
            _ => break,
        }
    }
    for conn in &taken {
        conn.mark_broken();
    }
    taken.len()
}

/// Closes the connection instead of returning it.
pub(crate) fn discard<B: Backend>(conn: Connection<B>) {
    conn.mark_broken();
    drop(conn);
}
