//! The reads the instance makes on an async connection outside a session: a
//! commit's position, a replica's replayed position and lag. Behind a transaction pooler
//! they run in a transaction of their own: diesel-async prepares a named statement
//! and executes it in a second round trip, which outside a transaction the pooler
//! may send to another server connection.

use crate::backend::Backend;
use diesel::QueryResult;
use diesel_async::TransactionManager as _;
use std::future::Future;
use std::pin::Pin;

type AsyncTm<B> =
    <<B as Backend>::AsyncConnection as diesel_async::AsyncConnection>::TransactionManager;

/// One read on a borrowed connection.
pub(crate) type Read<'c, T> = Pin<Box<dyn Future<Output = QueryResult<T>> + Send + 'c>>;

/// Runs `read` on `conn`, in a transaction of its own when `pinned`. A cancelled
/// call leaves diesel-async's transaction open, so the pool closes the connection.
pub(crate) async fn in_own_transaction<B: Backend, T>(
    conn: &mut B::AsyncConnection,
    pinned: bool,
    read: impl for<'c> FnOnce(&'c mut B::AsyncConnection) -> Read<'c, T>,
) -> QueryResult<T> {
    if !pinned {
        return read(conn).await;
    }
    AsyncTm::<B>::begin_transaction(conn).await?;
    let result = read(conn).await;
    let end = match &result {
        Ok(_) => AsyncTm::<B>::commit_transaction(conn).await,
        Err(_) => AsyncTm::<B>::rollback_transaction(conn).await,
    };
    let value = result?;
    end.map(|()| value)
}
