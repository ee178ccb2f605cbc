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
    let fault = Arc::new(BodyFault::default());
    let mut limited = std::pin::pin!(LimitedBody::new(
        body,
        limit,
        stall_after,
        Arc::clone(&fault)
    ));
    // Most bodies arrive as one chunk: keep it as it is, copy only when split.
    let mut chunks: Vec<Bytes> = Vec::with_capacity(1);
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

/// The body length the client declared, if any.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
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
