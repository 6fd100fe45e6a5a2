//! The request body, read in full (within a limit) before the handler runs, so that
//! a client sending its body slowly holds no connection and no transaction.

use crate::rejection::{Rejection, RejectionKind};
use futures_util::{Stream, StreamExt};

/// The request body limit when a service sets none: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Reads a request body in full, refusing it as soon as it is known to exceed
/// `limit` bytes: at once when the declared `Content-Length` is over, or when the
/// bytes read pass it.
///
/// The adapters call this before the handler's extractors run. Extractors that open
/// a session do not wait for the body (axum runs them before the body extractor,
/// actix-web polls them together), so without it a slow client would hold the
/// connection, and on SQLite the only writer, for as long as it takes to send.
///
/// # Errors
/// [`RejectionKind::PayloadTooLarge`] over the limit, [`RejectionKind::BadRequest`]
/// when the body cannot be read (the client went away mid-body).
pub async fn read_body<S, D, E>(
    declared: Option<u64>,
    body: S,
    limit: usize,
) -> Result<Vec<u8>, Rejection>
where
    S: Stream<Item = Result<D, E>>,
    D: AsRef<[u8]>,
    E: std::fmt::Display,
{
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| {
            tracing::debug!(%error, "dbinstance: the request body could not be read");
            Rejection::new(
                RejectionKind::BadRequest,
                "the request body could not be read",
            )
        })?;
        let chunk = chunk.as_ref();
        if bytes.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        bytes.extend_from_slice(chunk);
    }
    Ok(bytes)
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        RejectionKind::PayloadTooLarge,
        format!("the request body is over the limit of {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<&'static [u8], String>> {
        stream::iter(parts.iter().map(|p| Ok(p.as_bytes())).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = read_body(Some(6), chunks(&["abc", "def"]), 6)
            .await
            .unwrap();
        assert_eq!(body, b"abcdef");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413_declared_or_not() {
        let declared = read_body(Some(7), chunks(&[]), 6).await.unwrap_err();
        assert_eq!(declared.kind(), RejectionKind::PayloadTooLarge);
        let streamed = read_body(None, chunks(&["abcd", "efg"]), 6)
            .await
            .unwrap_err();
        assert_eq!(streamed.kind(), RejectionKind::PayloadTooLarge);
    }

    #[tokio::test]
    async fn a_body_cut_off_is_a_400() {
        let broken = stream::iter(vec![Ok(&b"ab"[..]), Err("reset by peer".to_owned())]);
        let rejection = read_body(None, broken, 6).await.unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::BadRequest);
        assert!(!rejection.message().contains("peer"));
    }
}
