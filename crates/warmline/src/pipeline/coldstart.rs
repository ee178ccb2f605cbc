//! Cold-start masking: a stream for a model that is installed but not loaded gets
//! its `200` and headers at once, and its tokens when the load is done.
//!
//! Ollama sends nothing until the model is loaded and the first token exists,
//! which for a cold model can be seconds to minutes; clients with short header
//! timeouts give up, and every client shows a dead connection meanwhile. This is
//! the one documented deviation from Ollama's timing, and it applies only where
//! the model is known to exist on the host (its `/api/tags` lists it): for an
//! unknown model the upstream's own status (404) passes through unchanged.
//!
//! Once the headers are out, a failure can no longer change the status: it ends
//! the stream the way a stream that failed mid-way ends in Ollama, with one
//! `{"error":"..."}` line on a native stream, and on an OpenAI stream with a
//! `data:` event carrying the OpenAI error object (which the OpenAI client libraries
//! raise as an API error) and no `[DONE]`.

//! Both paths are here: the plain one ([`masked_response`], a request the cache
//! does not share) and the shared one ([`masked_flight`], a follower or leader of a
//! flight, whose head and chunks come from the flight).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::coalesce::{End, Event, Subscription};
use super::exchange::{Answer, Lease};
use super::facts::Facts;
use super::record::{Finish, Measured, Trace};
use super::respond::UpstreamBody;
use super::state::Pipeline;
use crate::error::Error;
use crate::wire::headers::{COLD_START_HEADER, SERVER_TIMING, retain_forwardable};
use crate::wire::{Flavor, error_event, error_line};

/// Response headers of a masked stream, as Ollama would send them.
fn headers(flavor: Flavor) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let content_type = match flavor {
        Flavor::Ollama => "application/x-ndjson",
        Flavor::OpenAi => "text/event-stream",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(COLD_START_HEADER, HeaderValue::from_static("masked"));
    headers
}

/// Whether this request's headers should not wait for its model to load: a
/// stream for a model the best host has installed but not loaded.
pub(crate) fn masks_cold_start(pipeline: &Pipeline, facts: &Facts) -> bool {
    if !facts.stream || facts.load_only || !pipeline.warmth.masks_cold_starts() {
        return false;
    }
    let Some(model) = facts.model.as_deref() else {
        return false;
    };
    pipeline
        .upstreams
        .pick(Some(model))
        .is_some_and(|host| host.has_model(model) == Some(true) && !host.has_loaded(model))
}

/// A masked stream on the plain path: headers now, then the upstream's body once
/// `sent` resolves (or its failure as the stream's last line).
pub(crate) fn masked_response(
    pipeline: &Arc<Pipeline>,
    sent: impl Future<Output = Result<(Answer, Lease), Error>> + Send + 'static,
    flavor: Flavor,
    finish: Finish,
) -> Response {
    let pipeline = Arc::clone(pipeline);
    let finish = finish.on_drop(StatusCode::OK.as_u16());
    let timing = finish.server_timing();
    let body = futures_util::stream::once(sent).flat_map(move |sent| match sent {
        Ok((upstream, lease)) if upstream.status() == StatusCode::OK => {
            let (parts, body) = upstream.into_parts();
            let (status, mut headers) = (parts.status, parts.headers);
            retain_forwardable(&mut headers);
            UpstreamBody::new(&pipeline, status, body, &headers, flavor, lease).boxed()
        }
        Ok((upstream, lease)) => {
            let status = upstream.status();
            futures_util::stream::once(async move {
                // An error answer: small; a huge one is cut to its first 64 KiB.
                let body = Body::new(upstream.into_body());
                let body = axum::body::to_bytes(body, 64 * 1024)
                    .await
                    .unwrap_or_default();
                drop(lease);
                Ok(error_event(flavor, status, &body))
            })
            .boxed()
        }
        Err(err) => {
            pipeline.report(&err);
            let line = error_line(flavor, err.status(), &err.to_string());
            futures_util::stream::once(async move { Ok(line) }).boxed()
        }
    });
    let mut response = Response::new(Body::from_stream(Measured::new(body, finish)));
    *response.headers_mut() = headers(flavor);
    response.headers_mut().insert(SERVER_TIMING, timing);
    response
}

/// A masked stream on the shared path: headers now, then the flight's chunks.
pub(crate) fn masked_flight(
    subscription: Subscription,
    flavor: Flavor,
    finish: Finish,
) -> Response {
    let finish = finish.on_drop(StatusCode::OK.as_u16());
    let timing = finish.server_timing();
    let trace = Arc::clone(&finish.trace);
    enum Phase {
        Head(Subscription),
        /// With the flight's own record, read again at the end: what the
        /// answer's last chunk told (the load it paid, its tokens) arrives
        /// after the head.
        Chunks(Subscription, Option<Trace>),
        Failed(Subscription, StatusCode, Vec<u8>),
        Done,
    }
    let stream = futures_util::stream::unfold(Phase::Head(subscription), move |phase| {
        let trace = Arc::clone(&trace);
        async move {
            match phase {
                Phase::Head(mut subscription) => match subscription.next().await {
                    Event::Head(head) if head.status == StatusCode::OK => {
                        if let Some(shared) = &head.trace {
                            let facts = shared.get();
                            trace.update(|t| *t = facts);
                        }
                        let shared = head.trace.clone();
                        Some((Ok(Bytes::new()), Phase::Chunks(subscription, shared)))
                    }
                    Event::Head(head) => Some((
                        Ok(Bytes::new()),
                        Phase::Failed(subscription, head.status, Vec::new()),
                    )),
                    Event::End(End::Failed(err)) => {
                        let line = error_line(flavor, err.status(), &err.to_string());
                        Some((Ok(line), Phase::Done))
                    }
                    Event::End(_) | Event::Chunk(_) => None,
                },
                Phase::Chunks(mut subscription, shared) => match subscription.next().await {
                    Event::Chunk(chunk) => Some((Ok(chunk), Phase::Chunks(subscription, shared))),
                    Event::End(End::Broken) => {
                        let line = error_line(
                            flavor,
                            StatusCode::BAD_GATEWAY,
                            "the upstream broke off the response",
                        );
                        Some((Ok(line), Phase::Done))
                    }
                    _ => {
                        if let Some(shared) = shared {
                            let facts = shared.get();
                            trace.update(|t| *t = facts);
                        }
                        None
                    }
                },
                Phase::Failed(mut subscription, status, mut body) => {
                    match subscription.next().await {
                        Event::Chunk(chunk) => {
                            body.extend_from_slice(&chunk);
                            Some((Ok(Bytes::new()), Phase::Failed(subscription, status, body)))
                        }
                        _ => Some((Ok(error_event(flavor, status, &body)), Phase::Done)),
                    }
                }
                Phase::Done => None,
            }
        }
    })
    .filter(|chunk: &Result<Bytes, std::io::Error>| {
        std::future::ready(chunk.as_ref().map_or(true, |c| !c.is_empty()))
    })
    .fuse();
    let mut response = Response::new(Body::from_stream(Measured::new(stream, finish)));
    *response.headers_mut() = headers(flavor);
    response.headers_mut().insert(SERVER_TIMING, timing);
    response
}
