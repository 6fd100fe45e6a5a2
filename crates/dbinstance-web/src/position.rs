//! Read-your-writes across requests: the position of a client's last write travels
//! in a response header, and comes back in the next request's, so that what a
//! client wrote is what it reads, whichever replica serves it.

use crate::rejection::{Rejection, RejectionKind};
use dbinstance::{CommitPosition, ReadYourWrites};

/// The header that carries a [`CommitPosition`]: set on an answer after a request
/// committed a write, sent back by the client with its next requests. Its value is
/// the position's text (`16/B374D848` on PostgreSQL, `0-1-42` on MariaDB).
pub const POSITION_HEADER: &str = "dbinstance-position";

/// The read-your-writes tracker of one request: what the client sent in
/// [`POSITION_HEADER`] (nothing when it sent none), and what the request's own
/// writes add. Every session extractor of the request uses the same one.
///
/// # Errors
/// [`RejectionKind::BadRequest`] when the header is present and not a position:
/// a client that sends one expects its reads to see that write, so it is not
/// ignored.
pub fn request_tracker(header: Option<&[u8]>) -> Result<ReadYourWrites, Rejection> {
    let Some(value) = header else {
        return Ok(ReadYourWrites::new());
    };
    let position = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<CommitPosition>().ok())
        .ok_or_else(|| {
            Rejection::new(
                RejectionKind::BadRequest,
                format!("the `{POSITION_HEADER}` header is not a commit position"),
            )
        })?;
    Ok(ReadYourWrites::after(position))
}

/// The [`POSITION_HEADER`] value to answer with: the furthest position the
/// request wrote or was sent, if any.
pub fn position_answer(tracker: &ReadYourWrites) -> Option<String> {
    tracker.position().map(|position| position.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_header_is_an_empty_tracker() {
        let tracker = request_tracker(None).unwrap();
        assert_eq!(position_answer(&tracker), None);
    }

    #[test]
    fn a_position_is_read_and_answered_back() {
        let tracker = request_tracker(Some(b"0/3000178")).unwrap();
        assert_eq!(position_answer(&tracker).as_deref(), Some("0/3000178"));
        let tracker = request_tracker(Some(b"0-1-6")).unwrap();
        assert_eq!(position_answer(&tracker).as_deref(), Some("0-1-6"));
    }

    #[test]
    fn a_bad_header_is_a_400_naming_it() {
        for bad in [&b"nope"[..], b"\xff\xfe", b"", b"1/2/3"] {
            let rejection = request_tracker(Some(bad)).unwrap_err();
            assert_eq!(rejection.kind(), RejectionKind::BadRequest);
            assert!(rejection.message().contains(POSITION_HEADER));
        }
    }
}
