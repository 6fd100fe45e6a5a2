//! `DbRejection`: a [`Rejection`] of the neutral layer as an axum response.

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use dbinstance_web::Rejection;
use http::{header, HeaderValue};
use std::fmt;
use std::ops::Deref;

/// The rejection of [`DbRead`](crate::DbRead), [`DbWrite`](crate::DbWrite) and
/// [`DbTx`](crate::DbTx), and an error type a handler can return: a
/// [`dbinstance_web::Rejection`] (deref to it for its [`kind`](Rejection::kind),
/// [`status`](Rejection::status) and database [`error`](Rejection::error)).
///
/// - **503 Service Unavailable** with `Retry-After` (1 s, or the seconds until the next probe when the server's circuit breaker is open) when no connection could be had:
///   the pool timed out, the server could not be reached, or the instance is closed.
/// - **500 Internal Server Error** for a failed query or commit, and for a misuse such
///   as a [`DbTx`](crate::DbTx) without its [`DbTxLayer`](crate::DbTxLayer)
///   ([`RejectionKind::MissingTxLayer`](dbinstance_web::RejectionKind::MissingTxLayer)).
///
/// The body is `{"error":"<kind>","message":"..."}` with no SQL, host, driver message
/// or secret; the cause is logged through `tracing` when the response is built.
///
/// # Examples
///
/// A handler can use it as its error type: `?` converts both this crate's and
/// diesel's errors.
///
/// ```
/// use dbinstance::Sqlite;
/// use dbinstance_axum::{DbRead, DbRejection};
///
/// async fn ping(DbRead(mut conn): DbRead<Sqlite>) -> Result<&'static str, DbRejection> {
///     diesel_async::SimpleAsyncConnection::batch_execute(&mut *conn, "SELECT 1").await?;
///     Ok("pong")
/// }
/// ```
pub struct DbRejection(Rejection);

impl DbRejection {
    /// The neutral rejection inside.
    pub fn into_inner(self) -> Rejection {
        self.0
    }
}

impl Deref for DbRejection {
    type Target = Rejection;
    fn deref(&self) -> &Rejection {
        &self.0
    }
}

impl IntoResponse for DbRejection {
    fn into_response(self) -> Response {
        response(&self.0)
    }
}

/// The answer for `rejection`: its status, `Retry-After` where it applies, the JSON
/// body; the rejection is logged.
pub(crate) fn response(rejection: &Rejection) -> Response {
    rejection.log();
    let mut response = json_response(rejection.status(), rejection.body());
    if let Some(retry_after) = rejection.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
    }
    response
}

/// A response with `status` and a JSON `body`.
pub(crate) fn json_response(status: http::StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl From<Rejection> for DbRejection {
    fn from(rejection: Rejection) -> Self {
        Self(rejection)
    }
}

impl From<dbinstance::Error> for DbRejection {
    fn from(error: dbinstance::Error) -> Self {
        Self(error.into())
    }
}

impl From<diesel::result::Error> for DbRejection {
    fn from(error: diesel::result::Error) -> Self {
        Self(error.into())
    }
}

impl fmt::Debug for DbRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for DbRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}
