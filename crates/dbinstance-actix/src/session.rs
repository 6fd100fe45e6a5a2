//! `DbRead` and `DbWrite`: pooled async sessions from the read and write sides of
//! the instance registered with `App::app_data(web::Data::new(db))`.

use crate::position::{named_tracker, tracker};
use crate::rejection::DbRejection;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use dbinstance::{AsyncSession, Backend, DatabaseInstance, DatabaseManager, Role};
use dbinstance_web::{named_instance, open_session, DatabaseName, Rejection, RejectionKind};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use std::fmt;
use std::marker::PhantomData;

/// The app's instance, as a handle that reads the request's writes: every
/// extractor of one request shares its tracker.
pub(crate) fn instance<B: Backend>(req: &HttpRequest) -> Result<DatabaseInstance<B>, Rejection> {
    let db = req
        .app_data::<web::Data<DatabaseInstance<B>>>()
        .ok_or_else(|| Rejection::server(RejectionKind::MissingInstance))?;
    Ok(db.with_read_your_writes(&tracker::<B>(req)?))
}

/// The app's [`DatabaseInstance`] (`web::Data<DatabaseInstance<B>>`), reading the
/// request's writes: sessions from it share the request's
/// [`ReadYourWrites`](dbinstance::ReadYourWrites) tracker with the other
/// extractors, so a read after a commit in the same request sees it (see
/// [`DbPosition`](crate::DbPosition) to carry it to the next request).
///
/// For what the session extractors do not cover: the closure forms
/// (`db.async_write(...)`), health reports, pool statistics.
///
/// Fails with [`DbRejection`]: 500 when the app holds no instance for `B`, 400 when
/// the `dbinstance-position` header is not a position.
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_actix::Db;
///
/// async fn stats(Db(db): Db<Sqlite>) -> String {
///     format!("{} pools", db.pool_stats().len())
/// }
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app = App::new()
///     .app_data(web::Data::new(db))
///     .route("/stats", web::get().to(stats));
/// # Ok(()) }
/// ```
pub struct Db<B: Backend>(pub DatabaseInstance<B>);

impl<B: Backend> FromRequest for Db<B> {
    type Error = DbRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(instance::<B>(req).map(Db).map_err(DbRejection::from))
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
/// The instance is the app's `web::Data<DatabaseInstance<B>>`. The session is opened
/// on a task of its own ([`dbinstance_web::open_session`]): actix-web polls a
/// handler's extractors together and drops the others when one fails, and a
/// checkout cut in half would panic on its single-threaded workers with SQLite. It
/// goes back to its pool when the handler returns. `&mut *conn` is the backend's diesel-async
/// connection, for typed diesel queries.
///
/// Fails with [`DbRejection`]: 503 when no connection could be had in `pool_timeout`
/// or the server is down, 500 otherwise.
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_actix::{DbRead, DbRejection};
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
/// let app = App::new()
///     .app_data(web::Data::new(db))
///     .route("/names", web::get().to(names));
/// # Ok(()) }
/// ```
pub struct DbRead<B: Backend>(pub AsyncSession<B>);

impl<B: Backend> FromRequest for DbRead<B> {
    type Error = DbRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let db = instance::<B>(req);
        Box::pin(async move { Ok(DbRead(open_session(db?, Role::Read).await?)) })
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
/// an error, a panic, a dropped request) rolls it back. For a transaction that
/// commits by itself when the response is a success, use [`DbTx`](crate::DbTx).
///
/// Fails with [`DbRejection`]: 503 when no connection could be had in `pool_timeout`
/// or the server is down, 500 otherwise.
///
/// ```
/// use actix_web::{web, HttpResponse};
/// use dbinstance::Sqlite;
/// use dbinstance_actix::{DbRejection, DbWrite};
/// use diesel::prelude::*;
/// use diesel_async::RunQueryDsl;
///
/// diesel::table! { users (id) { id -> Integer, name -> Text } }
///
/// async fn rename(
///     path: web::Path<(i32, String)>,
///     DbWrite(mut tx): DbWrite<Sqlite>,
/// ) -> Result<HttpResponse, DbRejection> {
///     let (id, name) = path.into_inner();
///     let n = diesel::update(users::table.find(id))
///         .set(users::name.eq(name))
///         .execute(&mut *tx)
///         .await?;
///     if n == 0 {
///         return Ok(HttpResponse::NotFound().finish()); // dropped: rolled back
///     }
///     tx.commit().await?;
///     Ok(HttpResponse::NoContent().finish())
/// }
/// ```
pub struct DbWrite<B: Backend>(pub AsyncSession<B>);

impl<B: Backend> FromRequest for DbWrite<B> {
    type Error = DbRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let db = instance::<B>(req);
        Box::pin(async move { Ok(DbWrite(open_session(db?, Role::Write).await?)) })
    }
}

impl<B: Backend> fmt::Debug for DbWrite<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbWrite").field(&self.0).finish()
    }
}

/// The database `N` of the [`DatabaseManager`] registered with
/// `App::app_data(web::Data::new(manager))`, with the request's tracker for it.
fn named<B: Backend, N: DatabaseName>(req: &HttpRequest) -> Result<DatabaseInstance<B>, Rejection> {
    let manager = req
        .app_data::<web::Data<DatabaseManager>>()
        .ok_or_else(|| Rejection::server(RejectionKind::MissingInstance))?;
    let db = named_instance::<B, N>(manager)?;
    Ok(db.with_read_your_writes(&named_tracker::<B, N>(req)))
}

/// The database `N` of the app's [`DatabaseManager`], typed `B` (the [`Db`] of a
/// service with several databases), reading the request's writes to it.
///
/// A name the manager does not know, or a database of another backend, is a 500
/// (`internal_error`): the service's own mistake, its cause in the log.
pub struct DbNamed<B: Backend, N: DatabaseName>(pub DatabaseInstance<B>, pub PhantomData<N>);

impl<B: Backend, N: DatabaseName> FromRequest for DbNamed<B, N> {
    type Error = DbRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            named::<B, N>(req)
                .map(|db| DbNamed(db, PhantomData))
                .map_err(DbRejection::from),
        )
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

/// [`DbRead`] from the database `N` of the app's [`DatabaseManager`]
/// (`App::app_data(web::Data::new(manager))`): the same session, rejections and
/// task, on the database the name picks.
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance::{DatabaseConfig, DatabaseManager, ManagerConfig, Sqlite};
/// use dbinstance_actix::{database_name, DbReadFrom, DbRejection};
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
/// let app = App::new()
///     .app_data(web::Data::new(manager))
///     .route("/audit", web::get().to(touch));
/// # drop(app);
/// # Ok(()) }
/// ```
pub struct DbReadFrom<B: Backend, N: DatabaseName>(pub AsyncSession<B>, pub PhantomData<N>);

impl<B: Backend, N: DatabaseName> FromRequest for DbReadFrom<B, N> {
    type Error = DbRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let db = named::<B, N>(req);
        Box::pin(async move {
            Ok(DbReadFrom(
                open_session(db?, Role::Read).await?,
                PhantomData,
            ))
        })
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

impl<B: Backend, N: DatabaseName> FromRequest for DbWriteTo<B, N> {
    type Error = DbRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let db = named::<B, N>(req);
        Box::pin(async move {
            Ok(DbWriteTo(
                open_session(db?, Role::Write).await?,
                PhantomData,
            ))
        })
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
