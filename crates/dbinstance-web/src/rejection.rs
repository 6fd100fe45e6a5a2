//! What a request is refused with: a [`RejectionKind`] (typed, with its status),
//! and the one JSON body every 4xx and 5xx answer carries.

use http::{HeaderValue, StatusCode};
use std::borrow::Cow;
use std::fmt;

/// How much of a text a message keeps: a framework's text may quote the client's
/// input (serde quotes a mistyped string whole), which can be long.
const MESSAGE_LIMIT: usize = 1024;

/// Why a request was refused. Each kind has its status ([`RejectionKind::status`]) and
/// the `error` code of the JSON body ([`RejectionKind::code`]).
///
/// The kinds of a client error follow the status the frameworks agree on, so that an
/// axum and an actix-web service answer a bad request alike. The server kinds tell a
/// database failure from a misuse of the extractors for code and logs; on the wire
/// every misuse is `internal_error`, since a client can do nothing about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// 400: the body is not well-formed, a path parameter or the query does not parse.
    BadRequest,
    /// 404: no such route, or no such resource.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the request conflicts with what is stored (a unique key is taken).
    Conflict,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: the body is not of the content type the route reads.
    UnsupportedMediaType,
    /// 422: the body is well-formed but its content is not acceptable: a missing
    /// field, a value out of range, text the database cannot store.
    Invalid,
    /// Another 4xx, passed on with its own status.
    ClientError,
    /// 503, with `Retry-After`: no connection in `pool_timeout`, the server is
    /// unreachable, or the instance is closed ([`dbinstance::Error::is_unavailable`]).
    Unavailable,
    /// 500: a query or a commit failed.
    Database,
    /// 500: a request transaction was asked for on a route without the layer
    /// (`DbTxLayer` / `DbTxMiddleware`) for its backend.
    MissingTxLayer,
    /// 500: the app does not hold the instance the extractor needs.
    MissingInstance,
    /// 500: a request transaction was asked for while another handle on it was alive.
    TxInUse,
    /// 500: a request transaction was kept past its request; it is not committed.
    TxOutlivedRequest,
    /// 500: the task that opened a session panicked.
    SessionTaskFailed,
    /// 500: any other server failure (a panic, a non-JSON 5xx from elsewhere).
    Internal,
}

impl RejectionKind {
    /// The status of an answer of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::ClientError => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database
            | Self::MissingTxLayer
            | Self::MissingInstance
            | Self::TxInUse
            | Self::TxOutlivedRequest
            | Self::SessionTaskFailed
            | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Invalid => "invalid",
            Self::ClientError => "client_error",
            Self::Unavailable => "service_unavailable",
            Self::Database
            | Self::MissingTxLayer
            | Self::MissingInstance
            | Self::TxInUse
            | Self::TxOutlivedRequest
            | Self::SessionTaskFailed
            | Self::Internal => "internal_error",
        }
    }

    /// The kind of a framework's own error answer, from its status: what a 404 for an
    /// unknown route, a 405, or an extractor's 400/413/415/422 becomes.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => Self::Invalid,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            s if s.is_client_error() => Self::ClientError,
            _ => Self::Internal,
        }
    }

    /// True for the kinds answered with a 5xx.
    pub fn is_server_error(self) -> bool {
        self.status().is_server_error()
    }

    /// The message of a server kind: fixed, so that no SQL, host or driver text leaks.
    fn server_message(self) -> &'static str {
        match self {
            Self::Unavailable => "the database is unavailable, try again later",
            Self::Database => "internal database error",
            _ => "internal server error",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The body of every 4xx and 5xx answer: `{"error":"<kind>","message":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The kind's code ([`RejectionKind::code`]).
    pub error: Cow<'static, str>,
    /// For people: what went wrong, without internals.
    pub message: Cow<'static, str>,
}

/// A refused request: its kind, the status it is answered with, a message for the
/// client, and the database error behind it when there is one (kept for the log and
/// [`std::error::Error::source`], never sent).
///
/// ```
/// use dbinstance_web::{Rejection, RejectionKind};
///
/// let rejection = Rejection::invalid("name must not contain a NUL character");
/// assert_eq!(rejection.kind(), RejectionKind::Invalid);
/// assert_eq!(rejection.status().as_u16(), 422);
/// assert_eq!(
///     rejection.body(),
///     br#"{"error":"invalid","message":"name must not contain a NUL character"}"#
/// );
/// ```
pub struct Rejection {
    kind: RejectionKind,
    status: StatusCode,
    message: Cow<'static, str>,
    // Boxed: the error is large, and a rejection travels in every `Result`.
    cause: Option<Box<dbinstance::Error>>,
}

impl Rejection {
    /// A rejection of `kind` with `message` for the client. For a server kind the
    /// message is replaced by the kind's fixed one: a 5xx never tells internals.
    /// A message past its first KiB is cut there, marked with `…`.
    pub fn new(kind: RejectionKind, message: impl Into<Cow<'static, str>>) -> Self {
        let message = if kind.is_server_error() {
            Cow::Borrowed(kind.server_message())
        } else {
            shortened(message.into())
        };
        Self {
            kind,
            status: kind.status(),
            message,
            cause: None,
        }
    }

    /// A server-side rejection of `kind` (a misuse of the extractors, a panic).
    pub fn server(kind: RejectionKind) -> Self {
        Self::new(kind, "")
    }

    /// 422 with `message`: input the service cannot accept.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::Invalid, message)
    }

    /// A framework's own error answer with `status` (and its text for a 4xx) in the
    /// one JSON shape; the status is kept, even one without a kind of its own.
    pub fn for_status(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        let kind = RejectionKind::for_status(status);
        let mut rejection = Self::new(kind, message);
        if rejection.message.is_empty() {
            rejection.message = Cow::Borrowed(status.canonical_reason().unwrap_or("error"));
        }
        rejection.status = status;
        rejection
    }

    /// The kind.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status the answer carries.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message of the body.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the database could not be reached or no connection was free in time.
    pub fn is_unavailable(&self) -> bool {
        self.kind == RejectionKind::Unavailable
    }

    /// The database error behind the rejection, if it came from one.
    pub fn error(&self) -> Option<&dbinstance::Error> {
        self.cause.as_deref()
    }

    /// `Retry-After` for the answer, when the kind asks the client to come back:
    /// when the server's circuit breaker is open, the seconds until its next probe
    /// (at least 1), else 1.
    pub fn retry_after(&self) -> Option<HeaderValue> {
        if !self.is_unavailable() {
            return None;
        }
        let seconds = match self.cause.as_deref() {
            Some(dbinstance::Error::Unavailable { retry_after, .. }) => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            _ => 1,
        };
        Some(HeaderValue::from(seconds.max(1)))
    }

    /// The JSON body, serialised.
    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            error: Cow::Borrowed(self.kind.code()),
            message: self.message.clone(),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Logs the rejection through `tracing`: the full error chain of a 5xx (`error`,
    /// or `warn` for a 503), a `debug` line for a 4xx.
    pub fn log(&self) {
        let kind = self.kind.code();
        match (&self.cause, self.kind) {
            (Some(error), RejectionKind::Unavailable) => {
                tracing::warn!(error = %error.chain(), "dbinstance: database unavailable, answering 503");
            }
            (Some(error), _) => {
                tracing::error!(error = %error.chain(), status = %self.status, "dbinstance: database error");
            }
            (None, k) if k.is_server_error() => {
                tracing::error!(reason = ?k, status = %self.status, "dbinstance: answering {kind}");
            }
            (None, _) => {
                tracing::debug!(status = %self.status, message = %self.message, "dbinstance: answering {kind}");
            }
        }
    }
}

impl From<dbinstance::Error> for Rejection {
    fn from(error: dbinstance::Error) -> Self {
        let kind = if error.is_unavailable() {
            RejectionKind::Unavailable
        } else {
            RejectionKind::Database
        };
        let mut rejection = Self::server(kind);
        rejection.cause = Some(Box::new(error));
        rejection
    }
}

impl From<diesel::result::Error> for Rejection {
    fn from(error: diesel::result::Error) -> Self {
        dbinstance::Error::from(error).into()
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Rejection");
        s.field("kind", &self.kind).field("status", &self.status);
        match &self.cause {
            Some(error) => s.field("error", error),
            None => s.field("message", &self.message),
        };
        s.finish()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(error) => write!(f, "database error: {error}"),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `text` cut to [`MESSAGE_LIMIT`] bytes at a character's edge, marked.
fn shortened(text: Cow<'static, str>) -> Cow<'static, str> {
    if text.len() <= MESSAGE_LIMIT {
        return text;
    }
    let mut end = MESSAGE_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_long_message_is_cut_at_a_character_edge() {
        let short = Rejection::for_status(StatusCode::UNPROCESSABLE_ENTITY, "expected a sequence");
        assert_eq!(short.message(), "expected a sequence");
        // Two-byte characters, so the limit falls inside one.
        let long = format!("invalid type: string \"{}\"", "é".repeat(2000));
        let cut = Rejection::for_status(StatusCode::UNPROCESSABLE_ENTITY, long.clone());
        assert!(cut.message().len() <= MESSAGE_LIMIT + '…'.len_utf8());
        assert!(cut.message().ends_with('…'));
        assert!(long.starts_with(cut.message().trim_end_matches('…')));
    }

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
    fn a_timeout_is_a_503_with_retry_after_and_a_json_body_without_internals() {
        let rejection = Rejection::from(timeout());
        assert_eq!(rejection.kind(), RejectionKind::Unavailable);
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rejection.retry_after().unwrap(), "1");
        assert_eq!(
            String::from_utf8(rejection.body()).unwrap(),
            r#"{"error":"service_unavailable","message":"the database is unavailable, try again later"}"#
        );
        assert!(rejection.error().is_some());
    }

    #[test]
    fn an_open_breaker_asks_the_client_back_when_its_probe_is_due() {
        let dbinstance::Error::Timeout { pool, .. } = timeout() else {
            unreachable!("timeout() is a pool timeout")
        };
        let unavailable = |retry_after| dbinstance::Error::Unavailable {
            pool: pool.clone(),
            retry_after,
            source: "connection refused".into(),
        };
        let rejection = Rejection::from(unavailable(Duration::from_millis(2300)));
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rejection.retry_after().unwrap(), "3");
        let rejection = Rejection::from(unavailable(Duration::ZERO));
        assert_eq!(rejection.retry_after().unwrap(), "1");
    }

    #[test]
    fn a_busy_sqlite_database_is_a_503_with_retry_after() {
        let locked = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        let rejection = Rejection::from(locked);
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rejection.retry_after().unwrap(), "1");
    }

    #[test]
    fn a_query_error_is_a_500_that_hides_the_message() {
        let error = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("syntax error near SELECT password FROM secrets".to_owned()),
        );
        let rejection = Rejection::from(error);
        assert_eq!(rejection.kind(), RejectionKind::Database);
        assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(rejection.retry_after().is_none());
        let body = String::from_utf8(rejection.body()).unwrap();
        assert_eq!(
            body,
            r#"{"error":"internal_error","message":"internal database error"}"#
        );
    }

    #[test]
    fn a_server_kind_never_carries_the_message_it_was_given() {
        let rejection = Rejection::new(RejectionKind::Internal, "host db.internal:5432 refused");
        assert_eq!(rejection.message(), "internal server error");
        let rejection = Rejection::for_status(StatusCode::BAD_GATEWAY, "upstream 10.0.0.7 said no");
        assert_eq!(rejection.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(rejection.kind(), RejectionKind::Internal);
        assert!(!String::from_utf8(rejection.body())
            .unwrap()
            .contains("10.0"));
    }

    #[test]
    fn framework_statuses_map_to_their_kinds_and_keep_their_status() {
        for (status, kind) in [
            (400, RejectionKind::BadRequest),
            (404, RejectionKind::NotFound),
            (405, RejectionKind::MethodNotAllowed),
            (413, RejectionKind::PayloadTooLarge),
            (415, RejectionKind::UnsupportedMediaType),
            (422, RejectionKind::Invalid),
            (418, RejectionKind::ClientError),
            (500, RejectionKind::Internal),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            let rejection = Rejection::for_status(status, "");
            assert_eq!(rejection.kind(), kind, "{status}");
            assert_eq!(rejection.status(), status);
            assert!(!rejection.message().is_empty(), "{status}");
        }
    }
}
