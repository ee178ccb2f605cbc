//! Request bodies: read whole (bounded) when the pipeline needs them, or streamed
//! upstream as they arrive, and in both cases cut off when they grow past the limit
//! or stall.
//!
//! A body larger than its limit is refused with 413 — up front by its declared
//! `Content-Length`, or mid-stream by counting — and one that sends nothing for
//! `timeouts.body` with 408. The fault is learned inside the body stream, where
//! reqwest only sees "the body failed"; [`BodyFault`] carries it out to whoever
//! renders the error.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, header};
use tokio::time::Sleep;

use crate::error::{Error, ProxyError};
use crate::wire::describe;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way upstream.
pub(crate) enum OutBody {
    /// Streamed as it arrives from the client (never buffered).
    Stream(Body),
    /// Already read (the cache needed it whole to compute the key).
    Bytes(Bytes),
}

/// Reads a whole request body, refusing more than `limit` bytes or a body that
/// stalls for `timeouts.body`.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    stall_after: Duration,
) -> Result<Bytes, Error> {
    if declared_length(headers).is_some_and(|len| len > limit) {
        return Err(ProxyError::BodyTooLarge { limit }.into());
    }
    // A small body usually arrived with the head: take it without arming a
    // timer when one poll finds all of it (the stall limit needs no clock then).
    let mut body = body;
    let first = match first_frame(&mut body, limit) {
        First::Whole(whole) => return Ok(whole),
        First::Failed(err) => return Err(ProxyError::ClientBody(describe(&err)).into()),
        First::Part(part) => Some(part),
        First::Nothing => None,
    };
    let taken = first.as_ref().map_or(0, |part| part.len() as u64);
    if taken > limit {
        return Err(ProxyError::BodyTooLarge { limit }.into());
    }
    let fault = Arc::new(BodyFault::default());
    let mut limited = std::pin::pin!(LimitedBody::new(
        body,
        limit - taken,
        stall_after,
        Arc::clone(&fault)
    ));
    // Most bodies arrive as one chunk: keep it as it is, copy only when split.
    let mut chunks: Vec<Bytes> = Vec::with_capacity(1);
    chunks.extend(first);
    while let Some(chunk) = limited.next().await {
        match chunk {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => {
                return Err(fault
                    .error(limit, stall_after)
                    .unwrap_or_else(|| ProxyError::ClientBody(describe(err.as_ref())).into()));
            }
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}

/// What one poll of a body of known length found.
enum First {
    /// All of it.
    Whole(Bytes),
    /// Its first part (the rest is still to come).
    Part(Bytes),
    /// The body failed.
    Failed(axum::Error),
    /// Nothing yet, or a length that is not known or over the limit.
    Nothing,
}

/// Polls a body whose length is known and within `limit` once, without a waker
/// of its own (the caller's next poll registers the real one).
fn first_frame(body: &mut Body, limit: u64) -> First {
    use http_body::Body as _;
    let Some(exact) = body.size_hint().exact().filter(|len| *len <= limit) else {
        return First::Nothing;
    };
    if exact == 0 && body.is_end_stream() {
        return First::Whole(Bytes::new());
    }
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match Pin::new(&mut *body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) if data.len() as u64 == exact => First::Whole(data),
            Ok(data) => First::Part(data),
            // Trailers on a request: nothing Ollama reads.
            Err(_) => First::Nothing,
        },
        Poll::Ready(Some(Err(err))) => First::Failed(err),
        Poll::Ready(None) => First::Whole(Bytes::new()),
        Poll::Pending => First::Nothing,
    }
}

/// The body length the client declared, if any.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    crate::wire::http1::content_length(headers.get(header::CONTENT_LENGTH)?.as_bytes())
}

/// What went wrong with a client's request body, learned inside the body stream
/// and read by whoever sees the resulting error.
#[derive(Debug, Default)]
pub(crate) struct BodyFault(AtomicU8);

const FAULT_TOO_LARGE: u8 = 1;
const FAULT_TOO_SLOW: u8 = 2;

impl BodyFault {
    /// The error to answer with, if the body was at fault.
    pub(crate) fn error(&self, limit: u64, stall_after: Duration) -> Option<Error> {
        match self.0.load(Relaxed) {
            FAULT_TOO_LARGE => Some(ProxyError::BodyTooLarge { limit }.into()),
            FAULT_TOO_SLOW => Some(ProxyError::BodyTimeout { after: stall_after }.into()),
            _ => None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A client's request body, cut off once it exceeds the limit or stalls.
    pub(crate) struct LimitedBody<S> {
        #[pin]
        inner: S,
        seen: u64,
        limit: u64,
        #[pin]
        stall: Sleep,
        stall_after: Duration,
        fault: Arc<BodyFault>,
    }
}

impl LimitedBody<axum::body::BodyDataStream> {
    /// `body`, failing once more than `limit` bytes arrived or nothing arrived
    /// for `stall_after`; the reason is left in `fault`.
    pub(crate) fn new(
        body: Body,
        limit: u64,
        stall_after: Duration,
        fault: Arc<BodyFault>,
    ) -> Self {
        LimitedBody {
            inner: body.into_data_stream(),
            seen: 0,
            limit,
            stall: tokio::time::sleep(stall_after),
            stall_after,
            fault,
        }
    }
}

impl<S> Stream for LimitedBody<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                *this.seen += chunk.len() as u64;
                if *this.seen > *this.limit {
                    this.fault.0.store(FAULT_TOO_LARGE, Relaxed);
                    return Poll::Ready(Some(Err("request body exceeds the limit".into())));
                }
                let next = crate::sys::clock::after(*this.stall_after);
                this.stall.as_mut().reset(next);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.stall.poll(cx) {
                Poll::Ready(()) => {
                    this.fault.0.store(FAULT_TOO_SLOW, Relaxed);
                    Poll::Ready(Some(Err("request body stalled".into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::{Frame, SizeHint};

    /// A body of known length that arrives in two parts.
    struct TwoParts(Vec<Bytes>, u64);

    impl http_body::Body for TwoParts {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            let next = (!self.0.is_empty()).then(|| self.0.remove(0));
            Poll::Ready(next.map(|part| Ok(Frame::data(part))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.1)
        }
    }

    async fn read(body: Body, limit: u64) -> Result<Bytes, Error> {
        read_body(body, &HeaderMap::new(), limit, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn a_body_read_in_one_poll_or_in_parts_is_whole() {
        assert_eq!(
            read(Body::from("{\"a\":1}"), 64).await.expect("read"),
            "{\"a\":1}"
        );
        let parts = TwoParts(vec![Bytes::from("{\"a\""), Bytes::from(":1}")], 7);
        assert_eq!(read(Body::new(parts), 64).await.expect("read"), "{\"a\":1}");
        assert_eq!(read(Body::empty(), 64).await.expect("read"), "");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_in_parts_too() {
        let parts = TwoParts(vec![Bytes::from("12345"), Bytes::from("67890")], 10);
        let err = read(Body::new(parts), 8).await.expect_err("too large");
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        // Declared within the limit, but it sends more than it declared.
        let parts = TwoParts(vec![Bytes::from("12345"), Bytes::from("67890")], 6);
        let err = read(Body::new(parts), 8).await.expect_err("too large");
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
