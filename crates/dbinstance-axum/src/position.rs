//! Read-your-writes for axum: one tracker per request, shared by every extractor,
//! seeded from the client's `dbinstance-position` header; and the layer that
//! answers with the position of the request's writes.

use crate::rejection::response;
use axum_core::response::Response;
use dbinstance::{Backend, ReadYourWrites};
use dbinstance_web::{position_answer, request_tracker, DatabaseName, Rejection, POSITION_HEADER};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{Extensions, HeaderValue, Request};
use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};

/// The request's tracker for backend `B`, kept in its extensions.
struct RequestTracker<B>(ReadYourWrites, PhantomData<fn() -> B>);

impl<B> Clone for RequestTracker<B> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

/// The tracker of this request: the one an extractor or a layer made before, or a
/// new one from the client's header.
pub(crate) fn tracker<B: Backend>(parts: &mut Parts) -> Result<ReadYourWrites, Rejection> {
    tracker_in::<B>(&mut parts.extensions, parts.headers.get(POSITION_HEADER))
}

/// [`tracker`] for a whole request, as a layer sees it.
pub(crate) fn request_tracker_of<B: Backend, Body>(
    request: &mut Request<Body>,
) -> Result<ReadYourWrites, Rejection> {
    let header = request.headers().get(POSITION_HEADER).cloned();
    tracker_in::<B>(request.extensions_mut(), header.as_ref())
}

fn tracker_in<B: Backend>(
    extensions: &mut Extensions,
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
pub(crate) fn named_tracker<B: Backend, N: DatabaseName>(parts: &mut Parts) -> ReadYourWrites {
    if let Some(NamedTracker(tracker, _)) = parts.extensions.get::<NamedTracker<B, N>>() {
        return tracker.clone();
    }
    let tracker = ReadYourWrites::new();
    parts
        .extensions
        .insert(NamedTracker::<B, N>(tracker.clone(), PhantomData));
    tracker
}

impl<B, N> Clone for NamedTracker<B, N> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

/// Sets the position header on `response`, when the request wrote or was sent one.
pub(crate) fn answer(response: &mut Response, tracker: &ReadYourWrites) {
    if let Some(value) = position_answer(tracker).and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(POSITION_HEADER, value);
    }
}

/// The [`tower_layer::Layer`] that carries read-your-writes across requests: a
/// request's writes (through [`Db`](crate::Db), [`DbWrite`](crate::DbWrite) or
/// [`DbTx`](crate::DbTx)) set the `dbinstance-position` header of its answer, and
/// a client that sends it back reads from a replica that has replayed them, or
/// from the primary. [`DbTxLayer`](crate::DbTxLayer) does the same for its
/// transaction, so this layer is for routes that write without it.
///
/// Within one request no layer is needed: every extractor of a request shares one
/// tracker, so a handler that commits through `Db` or `DbWrite` and then reads
/// through `Db` reads its write.
///
/// A header that is not a position is answered with a 400.
///
/// ```
/// use axum::{routing::post, Router};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_axum::DbPositionLayer;
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app: Router = Router::new()
///     .route("/", post(|| async { "hi" }))
///     .layer(DbPositionLayer::<Sqlite>::new())
///     .with_state(db);
/// # Ok(()) }
/// ```
pub struct DbPositionLayer<B: Backend> {
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> DbPositionLayer<B> {
    /// A layer for the positions of backend `B`.
    pub fn new() -> Self {
        Self {
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Default for DbPositionLayer<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Clone for DbPositionLayer<B> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<B: Backend> fmt::Debug for DbPositionLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbPositionLayer")
            .field("backend", &B::KIND)
            .finish()
    }
}

impl<S, B: Backend> tower_layer::Layer<S> for DbPositionLayer<B> {
    type Service = DbPositionService<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        DbPositionService {
            inner,
            _backend: PhantomData,
        }
    }
}

/// The service [`DbPositionLayer`] wraps around the routes.
pub struct DbPositionService<S, B: Backend> {
    inner: S,
    _backend: PhantomData<fn() -> B>,
}

impl<S: Clone, B: Backend> Clone for DbPositionService<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _backend: PhantomData,
        }
    }
}

impl<S: fmt::Debug, B: Backend> fmt::Debug for DbPositionService<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbPositionService")
            .field("inner", &self.inner)
            .field("backend", &B::KIND)
            .finish()
    }
}

impl<S, B, ReqBody> tower_service::Service<Request<ReqBody>> for DbPositionService<S, B>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Backend,
    ReqBody: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let tracker = request_tracker_of::<B, _>(&mut request);
        // The service that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let tracker = match tracker {
                Ok(tracker) => tracker,
                Err(rejection) => return Ok(response(&rejection)),
            };
            let mut answer_response = inner.call(request).await?;
            answer(&mut answer_response, &tracker);
            Ok(answer_response)
        })
    }
}
