//! `JsonErrorsLayer` and `BufferBodyLayer`: the edges of a request. Every error answer
//! in the one JSON shape, and the body read in full (within a limit) before any
//! extractor opens a session.

use crate::rejection::response;
use axum_core::body::Body;
use axum_core::response::Response;
use dbinstance_web::{read_body, Rejection, DEFAULT_BODY_LIMIT};
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request};
use std::task::{Context, Poll};

/// How much of a framework's error text is read: `Rejection::for_status` keeps
/// its first KiB; a text longer than this is replaced by the status's reason.
const TEXT_READ_LIMIT: usize = 64 * 1024;

/// A [`tower_layer::Layer`] that answers every 4xx and 5xx in the one JSON shape
/// `{"error":"<kind>","message":"..."}` ([`dbinstance_web::Rejection::for_status`]):
/// axum's own answers (an unknown route, a wrong method, a path, query or body that
/// does not parse), other layers' (a panic caught by `CatchPanicLayer`) and a
/// handler's bare status codes. Answers already in JSON pass untouched, and so do
/// headers such as `Allow`.
///
/// A 4xx keeps the framework's text as its message (it describes the client's
/// input); a 5xx gets a fixed message, so nothing internal leaks. Put it outermost:
///
/// ```
/// use axum::{routing::get, Router};
/// use dbinstance_axum::JsonErrorsLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(JsonErrorsLayer::new());
/// ```
#[derive(Debug, Clone, Default)]
pub struct JsonErrorsLayer;

impl JsonErrorsLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> tower_layer::Layer<S> for JsonErrorsLayer {
    type Service = JsonErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JsonErrors { inner }
    }
}

/// The service of [`JsonErrorsLayer`].
#[derive(Debug, Clone)]
pub struct JsonErrors<S> {
    inner: S,
}

impl<S, ReqBody> tower_service::Service<Request<ReqBody>> for JsonErrors<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response> + Send,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            let status = answer.status();
            if !(status.is_client_error() || status.is_server_error()) || is_json(&answer) {
                return Ok(answer);
            }
            let (mut parts, body) = answer.into_parts();
            let text = if status.is_client_error() {
                read_body(None, body.into_data_stream(), TEXT_READ_LIMIT)
                    .await
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let json = response(&Rejection::for_status(status, text));
            // Keep the answer's own headers (Allow, Retry-After), not its body's.
            parts.headers.remove(header::CONTENT_LENGTH);
            for (name, value) in json.headers() {
                parts.headers.insert(name, value.clone());
            }
            Ok(Response::from_parts(parts, json.into_body()))
        })
    }
}

fn is_json(answer: &Response) -> bool {
    answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.split(';').next().unwrap_or_default().trim();
            v == "application/json" || v.ends_with("+json")
        })
}

/// A [`tower_layer::Layer`] that reads each request's body in full before the
/// routes run, refusing one over `limit` bytes with a 413 (`payload_too_large`,
/// JSON) ([`dbinstance_web::read_body`]).
///
/// axum runs a handler's session extractors (`DbTx`, `DbWrite`, `DbRead`) before its
/// body extractor: without this layer a client that sends its body slowly holds a
/// pooled connection, and its transaction (SQLite's only writer), for as long as it
/// takes. With it, a handler sees a body already in memory. The default limit is
/// [`DEFAULT_BODY_LIMIT`] (64 KiB).
///
/// ```
/// use axum::{routing::post, Router};
/// use dbinstance_axum::BufferBodyLayer;
///
/// let app: Router = Router::new()
///     .route("/", post(|body: String| async move { body }))
///     .layer(BufferBodyLayer::new().limit(16 * 1024));
/// ```
#[derive(Debug, Clone)]
pub struct BufferBodyLayer {
    limit: usize,
}

impl BufferBodyLayer {
    /// The layer, with the [`DEFAULT_BODY_LIMIT`].
    pub fn new() -> Self {
        Self {
            limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// The largest body accepted, in bytes.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl Default for BufferBodyLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> tower_layer::Layer<S> for BufferBodyLayer {
    type Service = BufferBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferBody {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`BufferBodyLayer`].
#[derive(Debug, Clone)]
pub struct BufferBody<S> {
    inner: S,
    limit: usize,
}

impl<S> tower_service::Service<Request<Body>> for BufferBody<S>
where
    S: tower_service::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service that was polled ready handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match read_body(declared, body.into_data_stream(), limit).await {
                Ok(bytes) => {
                    // The body is whole now: its length is known, it is not chunked.
                    parts.headers.remove(header::TRANSFER_ENCODING);
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    inner
                        .call(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Err(rejection) => Ok(response(&rejection)),
            }
        })
    }
}
