//! `DbRejection`: a [`Rejection`] of the neutral layer as an actix-web error.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dbinstance_web::Rejection;
use std::fmt;
use std::ops::Deref;

/// The error of [`DbRead`](crate::DbRead), [`DbWrite`](crate::DbWrite) and
/// [`DbTx`](crate::DbTx) extraction, and an error type a handler can return (it is a
/// [`ResponseError`]): a [`dbinstance_web::Rejection`] (deref to it for its
/// [`kind`](Rejection::kind), [`status`](Rejection::status) and database
/// [`error`](Rejection::error)).
///
/// - **503 Service Unavailable** with `Retry-After` (1 s, or the seconds until the next probe when the server's circuit breaker is open) when no connection could be had:
///   the pool timed out, the server could not be reached, or the instance is closed.
/// - **500 Internal Server Error** for a failed query or commit, and for a misuse: no
///   `web::Data<DatabaseInstance<B>>` in the app
///   ([`RejectionKind::MissingInstance`](dbinstance_web::RejectionKind::MissingInstance)),
///   a [`DbTx`](crate::DbTx) without its [`DbTxMiddleware`](crate::DbTxMiddleware)
///   ([`RejectionKind::MissingTxLayer`](dbinstance_web::RejectionKind::MissingTxLayer)).
///
/// The body is `{"error":"<kind>","message":"..."}` with no SQL, host, driver message
/// or secret; the cause is logged through `tracing` when the response is built.
///
/// # Examples
///
/// ```
/// use dbinstance::Sqlite;
/// use dbinstance_actix::{DbRead, DbRejection};
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

impl ResponseError for DbRejection {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        response(&self.0)
    }
}

/// The rejection's status, as actix-web's type.
fn status(rejection: &Rejection) -> StatusCode {
    StatusCode::from_u16(rejection.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The answer for `rejection`: its status, `Retry-After` where it applies, the JSON
/// body; the rejection is logged.
pub(crate) fn response(rejection: &Rejection) -> HttpResponse {
    rejection.log();
    let mut response = HttpResponse::build(status(rejection));
    response.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    if let Some(retry_after) = rejection.retry_after() {
        if let Ok(value) = HeaderValue::from_bytes(retry_after.as_bytes()) {
            response.insert_header((header::RETRY_AFTER, value));
        }
    }
    response.body(rejection.body())
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
