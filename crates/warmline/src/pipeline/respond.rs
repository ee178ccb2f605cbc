//! The answer on its way back: the upstream's response turned into the client's,
//! its body streamed chunk by chunk as it arrives.
//!
//! [`UpstreamBody`] is where the end of an answer is judged. A body that goes silent
//! for `timeouts.idle` or breaks off ends the way a failed stream ends in Ollama:
//! an NDJSON stream with one `{"error":"..."}` line, an SSE stream without
//! `[DONE]`, anything else cut so the client sees a truncated body rather than a
//! silently short one. A clean end is when Warmline learns from the answer: the
//! load it paid (a cold start), its output tokens, and how long the host queued it
//! (for `parallelism`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::HeaderMap;
use http_body::Body as _;
use tokio::time::Sleep;

use super::body::BoxError;
use super::exchange::{Answer, AnswerBody, Lease};
use super::record::{Finish, Measured};
use super::state::Pipeline;
use crate::error::{Error, ProxyError};
use crate::metrics::Metrics;
use crate::wire::headers::{Framing, SERVER_TIMING, retain_forwardable};
use crate::wire::{Flavor, describe, error_line};

/// Builds the client's response around the upstream's, streaming its body.
pub(crate) fn into_client_response(
    pipeline: &Pipeline,
    upstream: Answer,
    flavor: Flavor,
    finish: Finish,
    lease: Lease,
) -> Response {
    let (parts, body) = upstream.into_parts();
    let status = parts.status;
    let mut headers = parts.headers;
    retain_forwardable(&mut headers);
    let body = UpstreamBody::new(pipeline, status, body, &headers, flavor, lease);
    let finish = finish.on_drop(status.as_u16());
    headers.insert(SERVER_TIMING, finish.server_timing());
    let mut response = Response::new(Body::from_stream(Measured::new(body, finish)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The upstream's response body on its way to the client, chunk by chunk, with the
/// idle timeout and the end-of-stream rules from the module docs.
pub(crate) struct UpstreamBody {
    inner: axum::body::BodyDataStream,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    framing: Framing,
    flavor: Flavor,
    /// Whether the last chunk sent ended a line, so an error line starts on its own.
    ended_with_newline: bool,
    done: bool,
    /// Whether the upstream's body ended normally (not cut, not timed out).
    clean: bool,
    metrics: Arc<Metrics>,
    /// The end of the body, for what the answer says about its generation.
    tail: Option<crate::wire::timings::Tail>,
    /// The upstream's `Content-Length`, and the bytes seen: a body of known
    /// length is complete once they match (the server writing it to the client
    /// stops polling then, before the stream says it ended).
    expected: Option<u64>,
    seen: u64,
    lease: Lease,
}

impl UpstreamBody {
    /// The body of `upstream`'s answer, framed as `headers` say, holding `lease`
    /// (the host's in-flight count and the model's slot) until it ends.
    pub(crate) fn new(
        pipeline: &Pipeline,
        status: http::StatusCode,
        body: AnswerBody,
        headers: &HeaderMap,
        flavor: Flavor,
        lease: Lease,
    ) -> UpstreamBody {
        let observe = status.is_success() && lease.observe.is_some();
        UpstreamBody {
            tail: observe.then(crate::wire::timings::Tail::default),
            expected: body.size_hint().exact(),
            seen: 0,
            inner: Body::new(body).into_data_stream(),
            idle: Box::pin(tokio::time::sleep(pipeline.idle_timeout)),
            idle_timeout: pipeline.idle_timeout,
            framing: Framing::of(headers),
            flavor,
            ended_with_newline: true,
            done: false,
            clean: false,
            metrics: Arc::clone(&pipeline.metrics),
            lease,
        }
    }

    /// The answer ended cleanly: count a cold start if it paid a load. Ollama's
    /// `load_duration` says so exactly; an answer without one (`/v1`) counts when
    /// the host did not have the model loaded, with the wait for its headers as
    /// the load time.
    fn observe_end(&mut self) {
        let (Some(tail), Some(observe)) = (self.tail.take(), self.lease.observe.as_ref()) else {
            return;
        };
        let timings = tail.timings();
        let load = match timings.load {
            Some(load) => (load >= crate::metrics::COLD_LOAD_THRESHOLD).then_some(load),
            None => observe.cold_hint.then_some(observe.head_after),
        };
        if let Some(load) = load {
            self.metrics.models.cold_start(&observe.model, load);
        }
        // How long it waited for a slot at the host: what the host's
        // parallelism is learned from (see `parallelism`).
        // An answer without durations (`/v1`): a stream's first byte, unless it
        // paid a model load.
        match (&self.lease.slot, timings.host_wait()) {
            (Some(slot), Some((wait, work))) => slot.learn(wait, work),
            (Some(slot), None) if self.framing != Framing::Other && load.is_none() => {
                slot.learn_first_byte(observe.head_after);
            }
            _ => {}
        }
        let tokens = timings.output_tokens.zip(timings.eval);
        self.lease.trace.update(|t| {
            t.load = load;
            t.tokens = tokens;
        });
    }

    /// Whether the body ended normally; meaningful once the stream returned `None`.
    pub(crate) fn ended_cleanly(&self) -> bool {
        self.clean
    }

    /// Ends a stream that broke: with an error line, cleanly, or by cutting it.
    /// The error is logged and counted here, once.
    fn broken(&mut self, err: ProxyError) -> Poll<Option<Result<Bytes, BoxError>>> {
        let err = Error::from(err);
        self.done = true;
        self.metrics.gateway_error(err.kind());
        self.lease.trace.update(|t| t.broken = true);
        tracing::warn!(kind = err.kind(), "{err}");
        let message = err.to_string();
        match self.framing {
            Framing::Ndjson if self.flavor == Flavor::Ollama => {
                let line = error_line(Flavor::Ollama, err.status(), &message);
                if self.ended_with_newline {
                    return Poll::Ready(Some(Ok(line)));
                }
                let mut joined = Vec::with_capacity(line.len() + 1);
                joined.push(b'\n');
                joined.extend_from_slice(&line);
                Poll::Ready(Some(Ok(Bytes::from(joined))))
            }
            // An OpenAI-shaped stream that broke between events gets an error
            // event (what OpenAI's API sends, and what its clients raise on)
            // and no `[DONE]`; one cut inside an event just ends.
            Framing::Sse if self.flavor == Flavor::OpenAi && self.ended_with_newline => {
                Poll::Ready(Some(Ok(error_line(Flavor::OpenAi, err.status(), &message))))
            }
            Framing::Ndjson | Framing::Sse => Poll::Ready(None),
            Framing::Other => Poll::Ready(Some(Err(message.into()))),
        }
    }
}

impl Stream for UpstreamBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let deadline = crate::sys::clock::after(self.idle_timeout);
                self.idle.as_mut().reset(deadline);
                if let Some(tail) = &mut self.tail {
                    tail.push(&chunk);
                }
                self.seen += chunk.len() as u64;
                if self.expected == Some(self.seen) {
                    self.observe_end();
                }
                if let Some(last) = chunk.last() {
                    self.ended_with_newline = *last == b'\n';
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => {
                let upstream = self.lease.upstream.to_string();
                let reason = describe(&err);
                self.broken(ProxyError::Broken { upstream, reason })
            }
            Poll::Ready(None) => {
                self.done = true;
                self.clean = true;
                self.observe_end();
                Poll::Ready(None)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let after = self.idle_timeout;
                    self.broken(ProxyError::Idle { after })
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
