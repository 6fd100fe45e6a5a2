//! `Db`, `DbRead` and `DbWrite`: the instance itself, and pooled async sessions from
//! its read and write sides, extracted from any app state that holds the instance.

use crate::position::{named_tracker, tracker};
use crate::rejection::DbRejection;
use axum_core::extract::{FromRef, FromRequestParts};
use dbinstance::{AsyncSession, Backend, DatabaseInstance, DatabaseManager, Role};
use dbinstance_web::{named_instance, open_session, DatabaseName};
use http::request::Parts;
use std::fmt;
use std::marker::PhantomData;

/// The [`DatabaseInstance`] of the app state, cloned (it is an `Arc` inside),
/// reading the request's writes: sessions from it share the request's
/// [`ReadYourWrites`](dbinstance::ReadYourWrites) tracker with the other extractors,
/// so a read after a commit in the same request sees it (see
/// [`DbPositionLayer`](crate::DbPositionLayer) to carry it to the next request).
///
/// For what the session extractors do not cover: the closure forms
/// (`db.async_write(...)`), health reports, pool statistics. Works with any state `S`
/// for which `DatabaseInstance<B>: FromRef<S>`, like every extractor of this crate.
///
/// ```
/// use dbinstance::Sqlite;
/// use dbinstance_axum::Db;
///
/// async fn stats(Db(db): Db<Sqlite>) -> String {
///     format!("{} pools", db.pool_stats().len())
/// }
/// ```
pub struct Db<B: Backend>(pub DatabaseInstance<B>);

impl<B, S> FromRequestParts<S> for Db<B>
where
    B: Backend,
    DatabaseInstance<B>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tracker = tracker::<B>(parts)?;
        Ok(Db(
            DatabaseInstance::from_ref(state).with_read_your_writes(&tracker)
        ))
    }
}

impl<B: Backend> fmt::Debug for Db<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Db").field(&self.0).finish()
    }
}

/// A read session for the handler: read-only on the server, from a replica when the
/// instance has one ([`DatabaseInstance::async_get_db_cm_read`]) that has replayed
/// the writes the client sent the position of (`dbinstance-position`), else from
/// the primary.
///
/// The session is opened on a task of its own ([`dbinstance_web::open_session`]), so
/// a request dropped meanwhile cannot cut the checkout in half; it goes back to its
/// pool when the handler returns. `&mut *conn` is the
/// backend's diesel-async connection, for typed diesel queries.
///
/// Rejects with [`DbRejection`]: 503 when no connection could be had in
/// `pool_timeout` or the server is down, 400 when the `dbinstance-position` header
/// is not a position, 500 otherwise.
///
/// ```
/// use axum::{routing::get, Router};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_axum::{DbRead, DbRejection};
/// use diesel::prelude::*;
/// use diesel_async::RunQueryDsl;
///
/// diesel::table! { users (id) { id -> Integer, name -> Text } }
///
/// async fn names(DbRead(mut conn): DbRead<Sqlite>) -> Result<String, DbRejection> {
///     let names: Vec<String> = users::table.select(users::name).load(&mut *conn).await?;
///     Ok(names.join(", "))
/// }
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// // The state is the instance here; any state `S` with `DatabaseInstance<B>: FromRef<S>` works.
/// let app: Router = Router::new().route("/names", get(names)).with_state(db);
/// # Ok(()) }
/// ```
pub struct DbRead<B: Backend>(pub AsyncSession<B>);

impl<B, S> FromRequestParts<S> for DbRead<B>
where
    B: Backend,
    DatabaseInstance<B>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db =
            DatabaseInstance::<B>::from_ref(state).with_read_your_writes(&tracker::<B>(parts)?);
        Ok(DbRead(open_session(db, Role::Read).await?))
    }
}

impl<B: Backend> fmt::Debug for DbRead<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbRead").field(&self.0).finish()
    }
}

/// A write session for the handler: a transaction on the primary
/// ([`DatabaseInstance::async_get_db_cm_write`]) that the handler ends itself.
///
/// `tx.commit().await?` keeps the work; returning without committing (an early `?`,
/// an error, a panic, a cancelled request) rolls it back. For a transaction that
/// commits by itself when the response is a success, use [`DbTx`](crate::DbTx).
///
/// Rejects with [`DbRejection`]: 503 when no connection could be had in
/// `pool_timeout` or the server is down, 500 otherwise.
///
/// ```
/// use axum::{extract::Path, http::StatusCode};
/// use dbinstance::Sqlite;
/// use dbinstance_axum::{DbRejection, DbWrite};
/// use diesel::prelude::*;
/// use diesel_async::RunQueryDsl;
///
/// diesel::table! { users (id) { id -> Integer, name -> Text } }
///
/// async fn rename(
///     Path((id, name)): Path<(i32, String)>,
///     DbWrite(mut tx): DbWrite<Sqlite>,
/// ) -> Result<StatusCode, DbRejection> {
///     let n = diesel::update(users::table.find(id))
///         .set(users::name.eq(name))
///         .execute(&mut *tx)
///         .await?;
///     if n == 0 {
///         return Ok(StatusCode::NOT_FOUND); // dropped: rolled back
///     }
///     tx.commit().await?;
///     Ok(StatusCode::NO_CONTENT)
/// }
/// ```
pub struct DbWrite<B: Backend>(pub AsyncSession<B>);

impl<B, S> FromRequestParts<S> for DbWrite<B>
where
    B: Backend,
    DatabaseInstance<B>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db =
            DatabaseInstance::<B>::from_ref(state).with_read_your_writes(&tracker::<B>(parts)?);
        Ok(DbWrite(open_session(db, Role::Write).await?))
    }
}

impl<B: Backend> fmt::Debug for DbWrite<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbWrite").field(&self.0).finish()
    }
}

/// The database `N` of the app's [`DatabaseManager`], typed `B` (the
/// [`Db`] of a service with several databases), reading the request's writes to
/// it. Works with any state `S` for which `DatabaseManager: FromRef<S>`.
///
/// A name the manager does not know, or a database of another backend, is a 500
/// (`internal_error`): the service's own mistake, its cause in the log.
pub struct DbNamed<B: Backend, N: DatabaseName>(pub DatabaseInstance<B>, pub PhantomData<N>);

/// The instance of the database `N`, with the request's tracker for it.
fn named<B: Backend, N: DatabaseName>(
    parts: &mut Parts,
    manager: &DatabaseManager,
) -> Result<DatabaseInstance<B>, DbRejection> {
    let db = named_instance::<B, N>(manager)?;
    Ok(db.with_read_your_writes(&named_tracker::<B, N>(parts)))
}

impl<B, N, S> FromRequestParts<S> for DbNamed<B, N>
where
    B: Backend,
    N: DatabaseName,
    DatabaseManager: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db = named::<B, N>(parts, &DatabaseManager::from_ref(state))?;
        Ok(DbNamed(db, PhantomData))
    }
}

impl<B: Backend, N: DatabaseName> fmt::Debug for DbNamed<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbNamed")
            .field(&N::NAME)
            .field(&self.0)
            .finish()
    }
}

/// [`DbRead`] from the database `N` of the app's [`DatabaseManager`]: the same
/// session, rejections and task, on the database the name picks.
///
/// ```
/// use axum::{routing::get, Router};
/// use dbinstance::{DatabaseConfig, DatabaseManager, ManagerConfig, Sqlite};
/// use dbinstance_axum::{database_name, DbReadFrom, DbRejection};
/// use diesel::connection::SimpleConnection;
/// use diesel_async::SimpleAsyncConnection;
///
/// database_name!(Audit = "audit");
///
/// async fn touch(DbReadFrom(mut conn, ..): DbReadFrom<Sqlite, Audit>) -> Result<&'static str, DbRejection> {
///     conn.batch_execute("SELECT 1").await?;
///     Ok("read from audit")
/// }
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let manager = DatabaseManager::new(
///     ManagerConfig::new()
///         .database("main", DatabaseConfig::from_url(":memory:"))
///         .database("audit", DatabaseConfig::from_url(":memory:"))
///         .default_database("main"),
/// )?;
/// let app: Router = Router::new().route("/audit", get(touch)).with_state(manager);
/// # Ok(()) }
/// ```
pub struct DbReadFrom<B: Backend, N: DatabaseName>(pub AsyncSession<B>, pub PhantomData<N>);

impl<B, N, S> FromRequestParts<S> for DbReadFrom<B, N>
where
    B: Backend,
    N: DatabaseName,
    DatabaseManager: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db = named::<B, N>(parts, &DatabaseManager::from_ref(state))?;
        Ok(DbReadFrom(open_session(db, Role::Read).await?, PhantomData))
    }
}

impl<B: Backend, N: DatabaseName> fmt::Debug for DbReadFrom<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbReadFrom")
            .field(&N::NAME)
            .field(&self.0)
            .finish()
    }
}

/// [`DbWrite`] to the database `N` of the app's [`DatabaseManager`]: a
/// transaction there that the handler commits itself.
pub struct DbWriteTo<B: Backend, N: DatabaseName>(pub AsyncSession<B>, pub PhantomData<N>);

impl<B, N, S> FromRequestParts<S> for DbWriteTo<B, N>
where
    B: Backend,
    N: DatabaseName,
    DatabaseManager: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let db = named::<B, N>(parts, &DatabaseManager::from_ref(state))?;
        Ok(DbWriteTo(open_session(db, Role::Write).await?, PhantomData))
    }
}

impl<B: Backend, N: DatabaseName> fmt::Debug for DbWriteTo<B, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbWriteTo")
            .field(&N::NAME)
            .field(&self.0)
            .finish()
    }
}
