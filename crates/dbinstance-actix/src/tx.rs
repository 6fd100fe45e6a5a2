//! `DbTx` and `DbTxMiddleware`: one write transaction per request, committed when
//! the handler's response is a success and rolled back otherwise.

use crate::position::{answer, tracker};
use crate::rejection::{response, DbRejection};
use crate::session::instance;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use dbinstance::Backend;
use dbinstance_web::{Rejection, RejectionKind, RequestTx, TxGuard};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

/// The request's write transaction, opened on first use and ended by
/// [`DbTxMiddleware`] once the handler has answered: committed when the response
/// status is 2xx, rolled back otherwise (an error response, a failed extractor, a
/// panic).
///
/// `&mut *tx` is the backend's diesel-async connection. Every `DbTx` of one request
/// shares one transaction; two alive at the same time are refused with a 500
/// ([`RejectionKind::TxInUse`]). The
/// instance is the app's `web::Data<DatabaseInstance<B>>`, as for
/// [`DbWrite`](crate::DbWrite).
///
/// When the commit itself fails, the handler's success response is replaced by a
/// [`DbRejection`] (500, or 503 when the server went away), so a client never sees
/// a 2xx for work that was not kept.
///
/// Fails with [`DbRejection`]: 503 when no connection could be had in `pool_timeout`
/// or the server is down; 500 when the app has no [`DbTxMiddleware`] for this
/// backend ([`RejectionKind::MissingTxLayer`]), or on another database error.
///
/// ```
/// use actix_web::{web, App, HttpResponse};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_actix::{DbRejection, DbTx, DbTxMiddleware};
/// use diesel::prelude::*;
/// use diesel_async::RunQueryDsl;
///
/// diesel::table! { users (id) { id -> Integer, name -> Text } }
/// diesel::table! { audit (id) { id -> Integer, what -> Text } }
///
/// // Both inserts are kept, or neither: an `Err` (a non-2xx response) rolls back.
/// async fn create(mut tx: DbTx<Sqlite>, name: web::Json<String>) -> Result<HttpResponse, DbRejection> {
///     diesel::insert_into(users::table).values(users::name.eq(&*name)).execute(&mut *tx).await?;
///     diesel::insert_into(audit::table).values(audit::what.eq(format!("created {name}"))).execute(&mut *tx).await?;
///     Ok(HttpResponse::Created().finish())
/// }
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app = App::new()
///     .app_data(web::Data::new(db))
///     .wrap(DbTxMiddleware::<Sqlite>::new())
///     .route("/users", web::post().to(create));
/// # Ok(()) }
/// ```
#[must_use = "the transaction is ended by the middleware once the handler returns"]
pub struct DbTx<B: Backend>(TxGuard<B>);

impl<B: Backend> FromRequest for DbTx<B> {
    type Error = DbRejection;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let slot = req.extensions().get::<RequestTx<B>>().cloned();
        let db = instance::<B>(req);
        Box::pin(async move {
            let slot = slot.ok_or_else(|| Rejection::server(RejectionKind::MissingTxLayer))?;
            Ok(DbTx(slot.enter(db).await?))
        })
    }
}

impl<B: Backend> Deref for DbTx<B> {
    type Target = B::AsyncConnection;
    fn deref(&self) -> &B::AsyncConnection {
        &self.0
    }
}

impl<B: Backend> DerefMut for DbTx<B> {
    fn deref_mut(&mut self) -> &mut B::AsyncConnection {
        &mut self.0
    }
}

impl<B: Backend> fmt::Debug for DbTx<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DbTx").field(&self.0).finish()
    }
}

/// The middleware that gives each request a slot for its [`DbTx`] and ends the
/// transaction after the handler: commit on a 2xx response, rollback on any other
/// status, on an error from the inner service, and on a panic.
///
/// It also carries read-your-writes across requests, as
/// [`DbPosition`](crate::DbPosition) does: once the transaction is committed, the
/// answer's `dbinstance-position` header holds its position; a client that sends
/// it back reads that write.
///
/// A request whose handler never extracts a [`DbTx`] costs nothing: the
/// transaction is opened lazily. A panic is passed on after the rollback, as it
/// would be without the middleware.
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_actix::DbTxMiddleware;
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app = App::new()
///     .app_data(web::Data::new(db))
///     .wrap(DbTxMiddleware::<Sqlite>::new())
///     .route("/", web::get().to(|| async { "hi" }));
/// # Ok(()) }
/// ```
pub struct DbTxMiddleware<B: Backend> {
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> DbTxMiddleware<B> {
    /// A middleware for transactions on backend `B`.
    pub fn new() -> Self {
        Self {
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Default for DbTxMiddleware<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Clone for DbTxMiddleware<B> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<B: Backend> fmt::Debug for DbTxMiddleware<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTxMiddleware")
            .field("backend", &B::KIND)
            .finish()
    }
}

impl<S, Body, B> Transform<S, ServiceRequest> for DbTxMiddleware<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Body>, Error = actix_web::Error>
        + 'static,
    Body: MessageBody + 'static,
    B: Backend,
{
    type Response = ServiceResponse<EitherBody<Body, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = DbTxService<S, B>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(DbTxService {
            service: Rc::new(service),
            _backend: PhantomData,
        }))
    }
}

/// The service [`DbTxMiddleware`] wraps around the app.
pub struct DbTxService<S, B: Backend> {
    service: Rc<S>,
    _backend: PhantomData<fn() -> B>,
}

impl<S, B: Backend> fmt::Debug for DbTxService<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTxService")
            .field("backend", &B::KIND)
            .finish_non_exhaustive()
    }
}

impl<S, Body, B> Service<ServiceRequest> for DbTxService<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Body>, Error = actix_web::Error>
        + 'static,
    Body: MessageBody + 'static,
    B: Backend,
{
    type Response = ServiceResponse<EitherBody<Body, BoxBody>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let tracker = match tracker::<B>(&request) {
            Ok(tracker) => tracker,
            Err(rejection) => {
                let (request, _) = request.into_parts();
                let answer = ServiceResponse::new(request, response(&rejection));
                return Box::pin(ready(Ok(answer.map_into_right_body())));
            }
        };
        let slot = RequestTx::<B>::new();
        request.extensions_mut().insert(slot.clone());
        let service = self.service.clone();
        Box::pin(async move {
            let outcome = slot
                .scope(service.call(request), |response: &ServiceResponse<Body>| {
                    http::StatusCode::from_u16(response.status().as_u16())
                        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
                })
                .await?;
            Ok(match outcome {
                Ok(mut response) => {
                    // After the commit: the position of what this request wrote.
                    answer(&mut response, &tracker);
                    response.map_into_left_body()
                }
                // The answer for the rejection, on the same request.
                Err((response, rejection)) => {
                    let (request, _) = response.into_parts();
                    ServiceResponse::new(request, self::response(&rejection)).map_into_right_body()
                }
            })
        })
    }
}
