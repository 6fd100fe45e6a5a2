//! Why a connection could not be opened: the message a pool keeps (scrubbed of
//! secrets by the recipe that made it), shared by the pools and the breaker.

use crate::error::Error;
use crate::id::{PoolId, Stage};

/// Why a connection could not be opened, with any secret scrubbed out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailure {
    pub(crate) message: String,
    /// SQLite kept the database locked for the whole busy timeout: busy, not down.
    pub(crate) busy: bool,
}

impl ConnectFailure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ConnectFailure {
            message: message.into(),
            busy: false,
        }
    }

    /// The crate's error for a connect of pool `id` that failed this way.
    pub(crate) fn into_error(self, id: &PoolId) -> Error {
        if self.busy {
            return Error::Busy {
                pool: id.clone(),
                source: Box::new(self),
            };
        }
        Error::Connect {
            pool: id.clone(),
            stage: Stage::Connect,
            source: Box::new(self),
        }
    }

    /// A connect that got no answer within `timeout`.
    pub(crate) fn no_answer(timeout: std::time::Duration) -> Self {
        ConnectFailure::new(format!("no connection within {timeout:?}"))
    }

    /// An open connection whose server did not answer a statement in time.
    pub(crate) fn unanswered(what: &str, timeout: std::time::Duration) -> Self {
        ConnectFailure::new(format!("no answer to {what} within {timeout:?}"))
    }

    /// For a breaker opened by a failure whose message was not kept.
    pub(crate) fn unknown() -> Self {
        ConnectFailure::new("the server could not be reached")
    }

    pub(crate) fn rejected() -> Self {
        ConnectFailure::new("refused by the before_checkout hook")
    }
}
