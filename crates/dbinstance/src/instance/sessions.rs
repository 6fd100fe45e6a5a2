//! The session methods: reads take their connection from routing, writes from
//! the primary's pools, and each wraps it in a session guard.

use super::DatabaseInstance;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::id::Role;
use crate::routing;
use crate::session::{AsyncSession, Session};
use std::future::Future;

impl<B: Backend> DatabaseInstance<B> {
    /// A blocking read session: read-only on the server, from a replica when there
    /// is one (round robin over the replicas whose server answers and, with
    /// `max_replica_lag`, that are not too far behind, each tried at most once; the
    /// primary when none serves and `read_fallback` is on). From a handle with a
    /// [`ReadYourWrites`](crate::ReadYourWrites), only a replica that has replayed
    /// the handle's writes serves, else the primary.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the pool stays exhausted for `pool_timeout`,
    /// [`Error::Connect`] when no server can be reached, [`Error::Unavailable`] when
    /// the servers failed moments ago, [`Error::ReplicaLag`] when every replica is
    /// too far behind and fallback is off, [`Error::WriteNotReplayed`] when no
    /// replica replayed the handle's writes in time and fallback is off,
    /// [`Error::Closed`].
    pub fn get_db_cm_read(&self) -> Result<Session<B>> {
        let after = self.read_after();
        self.with_pools(|pools| {
            let (conn, pool) = routing::read_sync(&self.inner.router, pools, after.as_ref())?;
            Session::read(conn, pool.recipe().clone())
        })
    }

    /// A blocking write session on the primary, inside a transaction: call
    /// [`Session::commit`] to keep its work; dropping it rolls back.
    ///
    /// # Errors
    /// As [`get_db_cm_read`](Self::get_db_cm_read), and [`Error::Session`] when
    /// `BEGIN` fails.
    pub fn get_db_cm_write(&self) -> Result<Session<B>> {
        self.with_pools(|pools| {
            Session::write(
                pools.write_sync.get()?,
                pools.write_sync.recipe().clone(),
                self.commit_tracker(),
            )
        })
    }

    /// [`get_db_cm_read`](Self::get_db_cm_read) or
    /// [`get_db_cm_write`](Self::get_db_cm_write) by role.
    ///
    /// # Errors
    /// As those.
    pub fn get_db_cm(&self, role: Role) -> Result<Session<B>> {
        match role {
            Role::Read => self.get_db_cm_read(),
            Role::Write => self.get_db_cm_write(),
        }
    }

    /// The async twin of [`get_db_cm_read`](Self::get_db_cm_read).
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm_read(&self) -> Result<AsyncSession<B>> {
        let pools = self.pools()?;
        let after = self.read_after();
        let (conn, pool) = routing::read_async(&self.inner.router, &pools, after.as_ref()).await?;
        AsyncSession::read(conn, pool.recipe().clone()).await
    }

    /// The async twin of [`get_db_cm_write`](Self::get_db_cm_write). Safe to
    /// cancel at any point: see [`AsyncSession`].
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm_write(&self) -> Result<AsyncSession<B>> {
        let pools = self.pools()?;
        let conn = pools.write_async.get().await?;
        AsyncSession::write(
            conn,
            pools.write_async.recipe().clone(),
            self.commit_tracker(),
        )
        .await
    }

    /// The async twin of [`get_db_cm`](Self::get_db_cm).
    ///
    /// # Errors
    /// As that.
    pub async fn async_get_db_cm(&self, role: Role) -> Result<AsyncSession<B>> {
        match role {
            Role::Read => self.async_get_db_cm_read().await,
            Role::Write => self.async_get_db_cm_write().await,
        }
    }

    /// Runs `f` in a write transaction: commits when it returns `Ok`, rolls back when
    /// it returns `Err` or panics. To run it again after a serialization failure or
    /// a deadlock, see [`write_with_retry`](Self::write_with_retry).
    ///
    /// ```
    /// # fn main() -> Result<(), dbinstance::Error> {
    /// # use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
    /// # let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
    /// use diesel::connection::SimpleConnection;
    /// db.write(|conn| conn.batch_execute("CREATE TABLE t (x INTEGER)").map_err(dbinstance::Error::from))?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `f`'s error, or this crate's (converted with `From`) when no session could be
    /// had or the commit failed.
    pub fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut B::Connection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut session = self.get_db_cm_write()?;
        let value = f(&mut session)?;
        session.commit()?;
        Ok(value)
    }

    /// Runs `f` on a read-only session.
    ///
    /// # Errors
    /// `f`'s error, or this crate's when no session could be had.
    pub fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut B::Connection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut session = self.get_db_cm_read()?;
        f(&mut session)
    }

    /// The async twin of [`write`](Self::write), taking an async closure:
    ///
    /// ```no_run
    /// # async fn demo(db: dbinstance::DatabaseInstance<dbinstance::Sqlite>) -> Result<(), dbinstance::Error> {
    /// use diesel_async::SimpleAsyncConnection;
    /// db.async_write(async |conn| {
    ///     conn.batch_execute("INSERT INTO t VALUES (1)").await?;
    ///     Ok::<_, dbinstance::Error>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub async fn async_write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut B::AsyncConnection) -> Result<T, E>
            + SessionFn<&'r mut B::AsyncConnection, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + Send,
    {
        let mut session = self.async_get_db_cm_write().await?;
        let value = f(&mut session).await?;
        session.commit().await?;
        Ok(value)
    }

    /// The async twin of [`read`](Self::read).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn async_read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        for<'r> F: AsyncFnOnce(&'r mut B::AsyncConnection) -> Result<T, E>
            + SessionFn<&'r mut B::AsyncConnection, Result<T, E>, Fut: Send>
            + Send,
        T: Send,
        E: From<Error> + Send,
    {
        let mut session = self.async_get_db_cm_read().await?;
        f(&mut session).await
    }
}

#[cfg(feature = "postgres")]
impl DatabaseInstance<crate::Postgres> {
    /// A read session on a connection other tasks' shared sessions use at the
    /// same time: their reads are pipelined, so many tasks read through a few
    /// connections (`shared_read_connections` per server, default 1) without
    /// waiting for a pool. Read-only, routed as
    /// [`async_get_db_cm_read`](Self::async_get_db_cm_read) routes (lag,
    /// failures, read-your-writes, fallback), and safe to cancel. For one
    /// statement at a time, or several that need no common snapshot; see
    /// [`SharedReadSession`](crate::SharedReadSession) for what is not shared.
    ///
    /// ```no_run
    /// # async fn demo(db: dbinstance::DatabaseInstance<dbinstance::Postgres>) -> Result<(), dbinstance::Error> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use diesel_async::RunQueryDsl;
    /// let session = db.async_get_db_cm_read_shared().await?;
    /// let one: i32 = diesel::select(sql::<Integer>("1")).get_result(&mut &*session).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`async_get_db_cm_read`](Self::async_get_db_cm_read) (but never
    /// [`Error::Timeout`]: there is no pool to wait for), and [`Error::Config`]
    /// with `transaction_pooling` on.
    pub async fn async_get_db_cm_read_shared(&self) -> Result<crate::SharedReadSession> {
        let pools = self.pools()?;
        let after = self.read_after();
        let (conn, shared) =
            routing::read_shared(&self.inner.router, &pools, after.as_ref()).await?;
        Ok(crate::SharedReadSession::new(conn, shared.recipe().clone()))
    }
}

/// Names the future of an async closure so that its `Send`-ness can be required, as
/// diesel-async does for `transaction`: `async |conn| { ... }` implements it.
pub trait SessionFn<T, R>:
    AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as SessionFn<T, R>>::Fut
{
    /// The closure's future.
    type Fut: Future<Output = R>;
}

impl<F, T, Fut, R> SessionFn<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
}
