//! Read-your-writes for actix-web: one tracker per request, shared by every
//! extractor, seeded from the client's `dbinstance-position` header; and the
//! middleware that answers with the position of the request's writes.

use crate::rejection::response;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{
    forward_ready, Extensions, Service, ServiceRequest, ServiceResponse, Transform,
};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpMessage;
use dbinstance::{Backend, ReadYourWrites};
use dbinstance_web::{position_answer, request_tracker, DatabaseName, Rejection, POSITION_HEADER};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use std::cell::RefMut;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

/// The request's tracker for backend `B`, kept in its extensions.
struct RequestTracker<B>(ReadYourWrites, PhantomData<fn() -> B>);

/// The tracker of this request: the one an extractor or the middleware made
/// before, or a new one from the client's header.
pub(crate) fn tracker<B: Backend>(req: &impl HttpMessage) -> Result<ReadYourWrites, Rejection> {
    let header = req.headers().get(POSITION_HEADER).cloned();
    tracker_in::<B>(req.extensions_mut(), header.as_ref())
}

fn tracker_in<B: Backend>(
    mut extensions: RefMut<'_, Extensions>,
    header: Option<&HeaderValue>,
) -> Result<ReadYourWrites, Rejection> {
    if let Some(RequestTracker(tracker, _)) = extensions.get::<RequestTracker<B>>() {
        return Ok(tracker.clone());
    }
    let tracker = request_tracker(header.map(HeaderValue::as_bytes))?;
    extensions.insert(RequestTracker::<B>(tracker.clone(), PhantomData));
    Ok(tracker)
}

/// The request's tracker for the manager's database `N`, kept in its extensions.
struct NamedTracker<B, N>(ReadYourWrites, PhantomData<fn() -> (B, N)>);

/// The tracker of this request for the database `N`: shared by the extractors of
/// the request that name it, so a read after a commit there sees it. The
/// `dbinstance-position` header carries one database's position, that of the
/// extractors without a name, so it does not seed this one.
pub(crate) fn named_tracker<B: Backend, N: DatabaseName>(req: &impl HttpMessage) -> ReadYourWrites {
    let mut extensions = req.extensions_mut();
    if let Some(NamedTracker(tracker, _)) = extensions.get::<NamedTracker<B, N>>() {
        return tracker.clone();
    }
    let tracker = ReadYourWrites::new();
    extensions.insert(NamedTracker::<B, N>(tracker.clone(), PhantomData));
    tracker
}

/// Sets the position header on `response`, when the request wrote or was sent one.
pub(crate) fn answer<Body>(response: &mut ServiceResponse<Body>, tracker: &ReadYourWrites) {
    if let Some(value) = position_answer(tracker).and_then(|v| HeaderValue::from_str(&v).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(POSITION_HEADER), value);
    }
}

/// The middleware that carries read-your-writes across requests: a request's
/// writes (through [`Db`](crate::Db), [`DbWrite`](crate::DbWrite) or
/// [`DbTx`](crate::DbTx)) set the `dbinstance-position` header of its answer, and
/// a client that sends it back reads from a replica that has replayed them, or
/// from the primary. [`DbTxMiddleware`](crate::DbTxMiddleware) does the same for
/// its transaction, so this one is for apps that write without it.
///
/// Within one request no middleware is needed: every extractor of a request
/// shares one tracker, so a handler that commits through `Db` or `DbWrite` and
/// then reads through `Db` reads its write.
///
/// A header that is not a position is answered with a 400.
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_actix::DbPosition;
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app = App::new()
///     .app_data(web::Data::new(db))
///     .wrap(DbPosition::<Sqlite>::new())
///     .route("/", web::post().to(|| async { "hi" }));
/// # Ok(()) }
/// ```
pub struct DbPosition<B: Backend> {
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> DbPosition<B> {
    /// A middleware for the positions of backend `B`.
    pub fn new() -> Self {
        Self {
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Default for DbPosition<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Clone for DbPosition<B> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<B: Backend> fmt::Debug for DbPosition<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbPosition")
            .field("backend", &B::KIND)
            .finish()
    }
}

impl<S, Body, B> Transform<S, ServiceRequest> for DbPosition<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Body>, Error = actix_web::Error>
        + 'static,
    Body: MessageBody + 'static,
    B: Backend,
{
    type Response = ServiceResponse<EitherBody<Body, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = DbPositionService<S, B>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(DbPositionService {
            service: Rc::new(service),
            _backend: PhantomData,
        }))
    }
}

/// The service [`DbPosition`] wraps around the app.
pub struct DbPositionService<S, B: Backend> {
    service: Rc<S>,
    _backend: PhantomData<fn() -> B>,
}

impl<S, B: Backend> fmt::Debug for DbPositionService<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbPositionService")
            .field("backend", &B::KIND)
            .finish_non_exhaustive()
    }
}

impl<S, Body, B> Service<ServiceRequest> for DbPositionService<S, B>
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
        let service = self.service.clone();
        Box::pin(async move {
            let mut answer_response = service.call(request).await?;
            answer(&mut answer_response, &tracker);
            Ok(answer_response.map_into_left_body())
        })
    }
}
