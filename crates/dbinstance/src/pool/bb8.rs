//! bb8 as the async pool library (the `bb8` feature): the manager's bb8 face,
//! and building, checking out, measuring and trimming a pool.
//!
//! bb8 wakes one waiter when a connection comes back, but a task that arrives at
//! that moment can take it first, and the woken one queues again at the back: a
//! few tasks wait many times over. A checkout therefore takes a turn first (see
//! `turns`), so waiters are served in the order they came.

use super::conn::Pooled;
use super::connector::Recipe;
use super::failure::ConnectFailure;
use super::manager::AsyncManager;
use super::turns::{InTurn, Turns};
use crate::backend::Backend;
use crate::config::PoolOptions;
use crate::error::Result;
use crate::id::PoolId;
use futures_util::future::Either;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A bb8 pool and the turns its checkouts take.
pub(crate) struct Pool<B: Backend> {
    pool: ::bb8::Pool<AsyncManager<B>>,
    turns: Turns,
}

/// A connection checked out of a bb8 pool, with the checkout's turn.
pub(crate) type Connection<B> = InTurn<::bb8::PooledConnection<'static, AsyncManager<B>>>;

impl<B: Backend> ::bb8::ManageConnection for AsyncManager<B> {
    type Connection = Pooled<B::AsyncConnection>;
    type Error = ConnectFailure;

    async fn connect(&self) -> Result<Self::Connection, ConnectFailure> {
        self.recipe.connect_async().await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), ConnectFailure> {
        let idle = conn.hand_out();
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
    let pool = ::bb8::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(options.min_idle.min(max_size)))
        .connection_timeout(options.pool_timeout)
        .max_lifetime(options.max_lifetime)
        .idle_timeout(options.idle_timeout)
        .retry_connection(false)
        .test_on_check_out(true)
        .build_unchecked(manager);
    Pool {
        pool,
        turns: Turns::new(max_size),
    }
}

/// A checkout that ends as soon as a connect to this server ends without a
/// connection: bb8 reports a failed connect to nobody (a waiter sees only its own
/// timeout), so the breaker's signal is raced against the checkout. When only a
/// new connection can serve it, the wait is bounded by the connect timeout.
pub(crate) async fn get<B: Backend>(
    pool: &Pool<B>,
    recipe: &Recipe<B>,
    id: &PoolId,
) -> Result<Connection<B>> {
    let options = &recipe.options;
    let breaker = &recipe.breaker;
    let never_connected = recipe.counters.opened.load(Ordering::Relaxed) == 0;
    let only_a_connect_helps =
        breaker.is_open() || (never_connected && pool.pool.state().idle_connections == 0);
    let timeout = if only_a_connect_helps {
        options.connect_timeout.min(options.pool_timeout)
    } else {
        options.pool_timeout
    };
    let connect_ended = std::pin::pin!(breaker.connect_ended());
    let in_turn = async {
        let Some(turn) = pool.turns.next().await else {
            return Err(::bb8::RunError::<ConnectFailure>::TimedOut);
        };
        let conn = pool.pool.get_owned().await?;
        Ok(InTurn::new(conn, Some(turn)))
    };
    let checkout = std::pin::pin!(tokio::time::timeout(timeout, in_turn));
    match futures_util::future::select(checkout, connect_ended).await {
        Either::Left((Ok(Ok(conn)), _)) => Ok(conn),
        Either::Left((Ok(Err(::bb8::RunError::User(failure))), _)) => Err(failure.into_error(id)),
        Either::Left((Ok(Err(::bb8::RunError::TimedOut)) | Err(_), _)) if only_a_connect_helps => {
            // No answer at all within the connect timeout: a hung server.
            let failure = ConnectFailure::no_answer(timeout);
            breaker.record_failure(&failure);
            Err(failure.into_error(id))
        }
        Either::Left((Ok(Err(::bb8::RunError::TimedOut)) | Err(_), _)) => {
            Err(recipe.timed_out(timeout))
        }
        Either::Right(((), _)) => Err(breaker.last_failure().into_error(id)),
    }
}

/// Connections open, idle, and callers waiting (bb8 does not count those).
pub(crate) fn state<B: Backend>(pool: &Pool<B>) -> (usize, usize, usize) {
    let state = pool.pool.state();
    (
        state.connections as usize,
        state.idle_connections as usize,
        0,
    )
}

/// Closes the idle connections and returns how many. bb8 has no retain: the idle
/// ones are taken out and dropped as broken.
pub(crate) async fn clear_idle<B: Backend>(pool: &Pool<B>) -> usize {
    let pool = &pool.pool;
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
