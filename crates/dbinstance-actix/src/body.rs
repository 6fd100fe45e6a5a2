//! The edges of a request: every error answer in the one JSON shape
//! ([`json_errors`], [`extractor_errors`]), and the body read in full, within a limit,
//! before any extractor opens a session ([`BufferBody`]).

use crate::rejection::{response, DbRejection};
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage;
use dbinstance_web::{read_body, Rejection, RejectionKind, DEFAULT_BODY_LIMIT};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use std::rc::Rc;

/// actix-web's [`ErrorHandlers`] set to answer every 4xx and 5xx in the one JSON
/// shape `{"error":"<kind>","message":"..."}`
/// ([`dbinstance_web::Rejection::for_status`]): an unknown route, a wrong method, an
/// extractor's error, a handler's bare status. Answers already in JSON pass
/// untouched, and so do headers such as `Allow`. A 4xx keeps the error's text (it
/// describes the client's input); a 5xx gets a fixed message.
///
/// With [`extractor_errors`], the body, path and query extractors answer with the
/// same statuses as axum's, so both frameworks agree.
///
/// ```
/// use actix_web::{web, App};
///
/// let app = App::new()
///     .configure(dbinstance_actix::extractor_errors)
///     .wrap(dbinstance_actix::json_errors())
///     .route("/", web::get().to(|| async { "hi" }));
/// ```
pub fn json_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(to_json)
}

fn to_json<B>(answer: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.split(';').next().unwrap_or_default().trim();
            v == "application/json" || v.ends_with("+json")
        });
    if is_json {
        return Ok(ErrorHandlerResponse::Response(answer.map_into_left_body()));
    }
    let status = http::StatusCode::from_u16(answer.status().as_u16())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let text = match answer.response().error() {
        Some(error) if status.is_client_error() => error.to_string(),
        _ => String::new(),
    };
    let (request, old) = answer.into_parts();
    let mut json = response(&Rejection::for_status(status, text));
    // Keep the answer's own headers (Allow, Retry-After), not its body's.
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, json).map_into_right_body(),
    ))
}

/// Registers error handlers for `web::Json`, `web::Path` and `web::Query` (through
/// their `JsonConfig`, `PathConfig`, `QueryConfig`) that answer as axum does, with a
/// typed [`DbRejection`]: 415 for a missing or wrong content type, 400 for malformed
/// JSON, 422 for JSON of the wrong shape, 413 over the limit, 400 for a path
/// parameter or a query that does not parse (actix-web would say 404 for a path).
pub fn extractor_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().error_handler(|error, _| {
        let rejection = match &error {
            JsonPayloadError::ContentType => Rejection::new(
                RejectionKind::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(e) if e.is_data() => {
                Rejection::invalid(error.to_string())
            }
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                Rejection::new(RejectionKind::PayloadTooLarge, error.to_string())
            }
            _ => Rejection::new(RejectionKind::BadRequest, error.to_string()),
        };
        DbRejection::from(rejection).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|error, _| {
        DbRejection::from(Rejection::new(RejectionKind::BadRequest, error.to_string())).into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|error, _| {
        DbRejection::from(Rejection::new(RejectionKind::BadRequest, error.to_string())).into()
    }));
}

/// The middleware that reads each request's body in full before the handler's
/// extractors run, refusing one over the limit with a 413 (`payload_too_large`,
/// JSON) ([`dbinstance_web::read_body`]).
///
/// actix-web polls a handler's extractors together: without it a `DbTx` or `DbWrite`
/// opens its transaction while `web::Json` still waits for a slow client's body,
/// holding a pooled connection (SQLite's only writer) for as long as it takes. The
/// default limit is [`DEFAULT_BODY_LIMIT`] (64 KiB).
///
/// ```
/// use actix_web::{web, App};
/// use dbinstance_actix::BufferBody;
///
/// let app = App::new()
///     .wrap(BufferBody::new().limit(16 * 1024))
///     .route("/", web::post().to(|body: String| async move { body }));
/// ```
#[derive(Debug, Clone)]
pub struct BufferBody {
    limit: usize,
}

impl BufferBody {
    /// The middleware, with the [`DEFAULT_BODY_LIMIT`].
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

impl Default for BufferBody {
    fn default() -> Self {
        Self::new()
    }
}

impl<S, Body> Transform<S, ServiceRequest> for BufferBody
where
    S: Service<ServiceRequest, Response = ServiceResponse<Body>, Error = actix_web::Error>
        + 'static,
    Body: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Body, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = BufferBodyService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BufferBodyService {
            service: Rc::new(service),
            limit: self.limit,
        }))
    }
}

/// The service [`BufferBody`] wraps around the app.
pub struct BufferBodyService<S> {
    service: Rc<S>,
    limit: usize,
}

impl<S> std::fmt::Debug for BufferBodyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferBodyService")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<S, Body> Service<ServiceRequest> for BufferBodyService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<Body>, Error = actix_web::Error>
        + 'static,
    Body: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Body, BoxBody>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut request: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let limit = self.limit;
        Box::pin(async move {
            let declared = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            match read_body(declared, request.take_payload(), limit).await {
                Ok(bytes) => {
                    request.set_payload(Payload::from(Bytes::from(bytes)));
                    Ok(service.call(request).await?.map_into_left_body())
                }
                Err(rejection) => Ok(request
                    .into_response(response(&rejection))
                    .map_into_right_body()),
            }
        })
    }
}
