//! `DbRejection`: what the extractors answer when they cannot hand out a session,
//! and what a handler returns for a database error.

use axum_core::body::Body;
use axum_core::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use std::fmt;

/// The rejection of [`DbRead`](crate::DbRead), [`DbWrite`](crate::DbWrite) and
/// [`DbTx`](crate::DbTx), and an error type a handler can return for database failures.
///
/// - **503 Service Unavailable** with `Retry-After: 1` when no connection could be had:
///   the pool timed out, the server could not be reached, or the instance is closed
///   ([`dbinstance::Error::is_unavailable`]).
/// - **500 Internal Server Error** for everything else: a failed query, a failed commit,
///   a [`DbTx`](crate::DbTx) used without its [`DbTxLayer`](crate::DbTxLayer).
///
/// The body is a small JSON object that names the kind of failure and nothing else:
/// no SQL, no host, no driver message, no secret.
///
/// ```json
/// {"error":"service_unavailable","message":"the database is unavailable, try again later"}
/// {"error":"internal_error","message":"internal database error"}
/// ```
///
/// The cause is logged through `tracing` when the response is built: a `warn` event
/// for a 503, an `error` event for a 500, both with the full error chain.
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
pub struct DbRejection {
    cause: Cause,
}

enum Cause {
    Db(dbinstance::Error),
    /// A misuse of the extractors, described for the log.
    Misuse(&'static str),
}

/// The JSON body of a rejection.
#[derive(serde::Serialize)]
struct ErrorBody {
    error: &'static str,
    message: &'static str,
}

impl DbRejection {
    /// A 500 for a programming error around the extractors (logged with `reason`).
    pub(crate) fn misuse(reason: &'static str) -> Self {
        Self {
            cause: Cause::Misuse(reason),
        }
    }

    /// The status the response carries: 503 or 500.
    pub fn status(&self) -> StatusCode {
        if self.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    /// True when the database could not be reached or no connection was free in time.
    pub fn is_unavailable(&self) -> bool {
        matches!(&self.cause, Cause::Db(e) if e.is_unavailable())
    }

    /// The database error behind the rejection, if it came from one.
    pub fn error(&self) -> Option<&dbinstance::Error> {
        match &self.cause {
            Cause::Db(e) => Some(e),
            Cause::Misuse(_) => None,
        }
    }

    /// The JSON body, serialised.
    pub(crate) fn body(&self) -> Vec<u8> {
        let body = if self.is_unavailable() {
            ErrorBody {
                error: "service_unavailable",
                message: "the database is unavailable, try again later",
            }
        } else {
            ErrorBody {
                error: "internal_error",
                message: "internal database error",
            }
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn log(&self) {
        match &self.cause {
            Cause::Db(error) if error.is_unavailable() => {
                tracing::warn!(error = %chain(error), "dbinstance-axum: database unavailable, answering 503");
            }
            Cause::Db(error) => {
                tracing::error!(error = %chain(error), "dbinstance-axum: database error, answering 500");
            }
            Cause::Misuse(reason) => {
                tracing::error!(reason, "dbinstance-axum: answering 500");
            }
        }
    }
}

impl IntoResponse for DbRejection {
    fn into_response(self) -> Response {
        self.log();
        let mut response = json_response(self.status(), self.body());
        if self.is_unavailable() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<dbinstance::Error> for DbRejection {
    fn from(error: dbinstance::Error) -> Self {
        Self {
            cause: Cause::Db(error),
        }
    }
}

impl From<diesel::result::Error> for DbRejection {
    fn from(error: diesel::result::Error) -> Self {
        dbinstance::Error::from(error).into()
    }
}

impl fmt::Debug for DbRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("DbRejection");
        s.field("status", &self.status());
        match &self.cause {
            Cause::Db(error) => s.field("error", error),
            Cause::Misuse(reason) => s.field("reason", reason),
        };
        s.finish()
    }
}

impl fmt::Display for DbRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Cause::Db(error) => write!(f, "database error: {error}"),
            Cause::Misuse(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for DbRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Db(error) => Some(error),
            Cause::Misuse(_) => None,
        }
    }
}

/// A response with `status` and a JSON `body`.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error and its causes on one line, for the log.
fn chain(error: &dbinstance::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timeout() -> dbinstance::Error {
        // A real timeout from a pool of one whose only connection is taken.
        let db = dbinstance::DatabaseInstance::<dbinstance::Sqlite>::new(
            dbinstance::DatabaseConfig::from_url(":memory:")
                .pool_size(1)
                .pool_timeout(Duration::from_millis(50)),
        )
        .unwrap();
        let _held = db.get_db_cm_write().unwrap();
        db.get_db_cm_write().unwrap_err()
    }

    #[test]
    fn a_timeout_is_a_503_with_a_json_body_and_no_internals() {
        let rejection = DbRejection::from(timeout());
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = String::from_utf8(rejection.body()).unwrap();
        assert_eq!(
            body,
            r#"{"error":"service_unavailable","message":"the database is unavailable, try again later"}"#
        );
        let response = rejection.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn a_query_error_is_a_500_that_hides_the_message() {
        let error = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("syntax error near SELECT password FROM secrets".to_owned()),
        );
        let rejection = DbRejection::from(error);
        assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = String::from_utf8(rejection.body()).unwrap();
        assert!(!body.contains("SELECT"), "{body}");
        assert!(body.contains("internal_error"), "{body}");
    }
}
