//! `DbTx` and `DbTxLayer`: one write transaction per request, committed when the
//! handler's response is a success and rolled back otherwise.

use crate::position::{answer, request_tracker_of, tracker};
use crate::rejection::{response, DbRejection};
use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::Response;
use dbinstance::{Backend, DatabaseInstance};
use dbinstance_web::{Rejection, RejectionKind, RequestTx, TxGuard};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::Request;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

/// The request's write transaction, opened on first use and ended by
/// [`DbTxLayer`] once the handler has answered: committed when the response status
/// is 2xx, rolled back otherwise (an error response, a rejection, a panic).
///
/// `&mut *tx` is the backend's diesel-async connection. Every `DbTx` of one request
/// shares one transaction, so middleware and the handler can each extract it in
/// turn; two alive at the same time are refused with a 500
/// ([`RejectionKind::TxInUse`]). The instance comes from
/// the app state (`DatabaseInstance<B>: FromRef<S>`), as for
/// [`DbWrite`](crate::DbWrite).
///
/// When the commit itself fails, the handler's success response is replaced by a
/// [`DbRejection`] (500, or 503 when the server went away), so a client never sees
/// a 2xx for work that was not kept.
///
/// Rejects with [`DbRejection`]: 503 when no connection could be had in
/// `pool_timeout` or the server is down; 500 when the route has no
/// [`DbTxLayer`] for this backend ([`RejectionKind::MissingTxLayer`]), or on another database error.
///
/// ```
/// use axum::{http::StatusCode, routing::post, Json, Router};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_axum::{DbRejection, DbTx, DbTxLayer};
/// use diesel::prelude::*;
/// use diesel_async::RunQueryDsl;
///
/// diesel::table! { users (id) { id -> Integer, name -> Text } }
/// diesel::table! { audit (id) { id -> Integer, what -> Text } }
///
/// // Both inserts are kept, or neither: an `Err` (a non-2xx response) rolls back.
/// async fn create(mut tx: DbTx<Sqlite>, Json(name): Json<String>) -> Result<StatusCode, DbRejection> {
///     diesel::insert_into(users::table).values(users::name.eq(&name)).execute(&mut *tx).await?;
///     diesel::insert_into(audit::table).values(audit::what.eq(format!("created {name}"))).execute(&mut *tx).await?;
///     Ok(StatusCode::CREATED)
/// }
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app: Router = Router::new()
///     .route("/users", post(create))
///     .layer(DbTxLayer::<Sqlite>::new())
///     .with_state(db);
/// # Ok(()) }
/// ```
#[must_use = "the transaction is ended by the layer once the handler returns"]
pub struct DbTx<B: Backend>(TxGuard<B>);

impl<B, S> FromRequestParts<S> for DbTx<B>
where
    B: Backend,
    DatabaseInstance<B>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = DbRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<RequestTx<B>>()
            .cloned()
            .ok_or_else(|| Rejection::server(RejectionKind::MissingTxLayer))?;
        let db =
            DatabaseInstance::<B>::from_ref(state).with_read_your_writes(&tracker::<B>(parts)?);
        Ok(DbTx(slot.enter(Ok(db)).await?))
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

/// The [`tower_layer::Layer`] that gives each request a slot for its [`DbTx`] and
/// ends the transaction after the handler: commit on a 2xx response, rollback on any
/// other status, on an error from the inner service, and on a panic.
///
/// It also carries read-your-writes across requests, as
/// [`DbPositionLayer`](crate::DbPositionLayer) does: once the transaction is
/// committed, the answer's `dbinstance-position` header holds its position; a
/// client that sends it back reads that write.
///
/// A request whose handler never extracts a [`DbTx`] costs nothing: the
/// transaction is opened lazily. A panic is passed on after the rollback; put
/// `tower_http::catch_panic::CatchPanicLayer` outside this layer to answer it with
/// a 500 rather than a dropped connection.
///
/// ```
/// use axum::{routing::get, Router};
/// use dbinstance::{DatabaseConfig, DatabaseInstance, Sqlite};
/// use dbinstance_axum::DbTxLayer;
///
/// # fn main() -> Result<(), dbinstance::Error> {
/// let db = DatabaseInstance::<Sqlite>::new(DatabaseConfig::from_url(":memory:"))?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(DbTxLayer::<Sqlite>::new())
///     .with_state(db);
/// # Ok(()) }
/// ```
pub struct DbTxLayer<B: Backend> {
    _backend: PhantomData<fn() -> B>,
}

impl<B: Backend> DbTxLayer<B> {
    /// A layer for transactions on backend `B`.
    pub fn new() -> Self {
        Self {
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> Default for DbTxLayer<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Clone for DbTxLayer<B> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<B: Backend> fmt::Debug for DbTxLayer<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTxLayer")
            .field("backend", &B::KIND)
            .finish()
    }
}

impl<S, B: Backend> tower_layer::Layer<S> for DbTxLayer<B> {
    type Service = DbTxService<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        DbTxService {
            inner,
            _backend: PhantomData,
        }
    }
}

/// The service [`DbTxLayer`] wraps around the routes.
pub struct DbTxService<S, B: Backend> {
    inner: S,
    _backend: PhantomData<fn() -> B>,
}

impl<S: Clone, B: Backend> Clone for DbTxService<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _backend: PhantomData,
        }
    }
}

impl<S: fmt::Debug, B: Backend> fmt::Debug for DbTxService<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTxService")
            .field("inner", &self.inner)
            .field("backend", &B::KIND)
            .finish()
    }
}

impl<S, B, ReqBody> tower_service::Service<Request<ReqBody>> for DbTxService<S, B>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
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
        let slot = RequestTx::<B>::new();
        request.extensions_mut().insert(slot.clone());
        let tracker = request_tracker_of::<B, _>(&mut request);
        // The service that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let tracker = match tracker {
                Ok(tracker) => tracker,
                Err(rejection) => return Ok(response(&rejection)),
            };
            let outcome = slot
                .scope(inner.call(request), |response: &Response| response.status())
                .await?;
            let mut answer_response = outcome.unwrap_or_else(|(_, rejection)| response(&rejection));
            // After the commit: the position of what this request wrote.
            answer(&mut answer_response, &tracker);
            Ok(answer_response)
        })
    }
}
