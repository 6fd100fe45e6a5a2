//! Sessions opened on a task of their own, so that a dropped extractor cannot cut a
//! checkout or a `BEGIN` in half.

use crate::rejection::{Rejection, RejectionKind};
use dbinstance::{AsyncSession, Backend, DatabaseInstance, Role};
use tracing::Instrument;

/// Opens a session of `role` on a task of its own and waits for it.
///
/// A framework drops a request's extractors when another one fails (a malformed body
/// next to a session extractor), and the whole request when the client goes away. A
/// checkout or a `BEGIN` cut off half way costs a connection, and on SQLite a cut
/// call stalls a single-threaded runtime (actix-web's workers) until it ends. On
/// its own task the open always completes; a session that arrives after its request
/// is gone is dropped there: rolled back, and back to its pool.
///
/// # Errors
/// [`RejectionKind::Unavailable`] when no connection could be had,
/// [`RejectionKind::Database`] for another database error,
/// [`RejectionKind::SessionTaskFailed`] when the task panicked.
pub async fn open_session<B: Backend>(
    db: DatabaseInstance<B>,
    role: Role,
) -> Result<AsyncSession<B>, Rejection> {
    let task = tokio::spawn(
        async move { db.async_get_db_cm(role).await }.instrument(tracing::Span::current()),
    );
    match task.await {
        Ok(session) => Ok(session?),
        Err(_) => Err(Rejection::server(RejectionKind::SessionTaskFailed)),
    }
}
