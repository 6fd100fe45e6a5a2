//! Opening an async connection behind a transaction pooler. diesel-async sets the
//! session up (time zone, encoding) with named prepared statements, each prepared
//! in one round trip and run in the next: outside a transaction the pooler may
//! send the two to different server connections, and leaves the statements behind
//! on the server connection for its next client, which may prepare the same name
//! (tokio-postgres counts names from `s0` in every process). So the setup runs in a
//! transaction, which keeps one server connection, and its statements are closed
//! before the transaction ends.

use super::ConnectError;
use diesel::connection::CacheSize;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::future::{select, Either};
use tokio_postgres::tls::TlsStream;
use tokio_postgres::{Client, Connection, Socket};

/// The diesel-async connection on `client`, set up inside one transaction.
pub(super) async fn setup<S>(
    client: Client,
    mut connection: Connection<Socket, S>,
) -> Result<AsyncPgConnection, ConnectError>
where
    S: TlsStream + Unpin + Send + 'static,
{
    {
        // The connection must be driven for BEGIN to be answered; diesel-async
        // drives it from then on.
        let begin = std::pin::pin!(client.batch_execute("BEGIN"));
        match select(begin, &mut connection).await {
            Either::Left((begun, _)) => begun?,
            Either::Right((ended, _)) => {
                return Err(match ended {
                    Err(error) => error.into(),
                    Ok(()) => "the server closed the connection".into(),
                })
            }
        }
    }
    let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection).await?;
    // Dropping the cache closes its statements, ahead of the COMMIT.
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    conn.batch_execute("COMMIT").await?;
    Ok(conn)
}
