//! Flights: one upstream exchange shared by every identical request that arrives
//! while it runs (coalescing), and stored in the cache once it is complete.
//!
//! ```text
//!  leader ──▶ drive (own task) ── send ─▶ head ─▶ chunk … chunk ─▶ end ─▶ store
//!                 │ publishes                                            (if whole)
//!                 ▼
//!  leader, followers ──▶ respond: each streams the flight to its own client
//! ```
//!
//! The exchange runs in its own task so that no single client's departure cancels
//! it while others listen; it is cancelled when the last subscriber leaves. The
//! live stream is never delayed by recording: subscribers get every chunk as it
//! arrives, and the answer is stored only if it ended cleanly with status 200 and
//! its framing says it is whole ([`is_complete`]).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};

use super::coalesce::{End, Event, Head, Publisher, Subscription};
use super::exchange::{Exchange, send};
use super::record::{Finish, Measured};
use super::respond::UpstreamBody;
use super::state::Pipeline;
use crate::cache::entry::Replay;
use crate::cache::{Cache, FlightKey, Lookup};
use crate::error::{Error, ProxyError};
use crate::wire::Flavor;
use crate::wire::headers::{Framing, SERVER_TIMING, retain_forwardable};

/// A response built from a cached answer: its stored chunks, content type and
/// length, and its age.
pub(crate) fn hit(replay: Replay, age: std::time::Duration) -> Response {
    let length: usize = replay.chunks.iter().map(Bytes::len).sum();
    let whole = replay.chunks.len() == 1;
    let body = if whole {
        Body::from(replay.chunks.into_iter().next().unwrap_or_default())
    } else {
        Body::from_stream(futures_util::stream::iter(
            replay
                .chunks
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>),
        ))
    };
    // Sized for what the pipeline and the edge add (cache outcome,
    // Server-Timing, CORS): it never grows on the way out.
    let mut headers = http::HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, replay.content_type);
    // A single chunk has an exact size, which the server writes as `Content-Length`
    // itself.
    if !replay.stream && !whole {
        headers.insert(header::CONTENT_LENGTH, number(length as u64));
    }
    headers.insert(header::AGE, number(age.as_secs()));
    let mut response = Response::new(body);
    *response.headers_mut() = headers;
    response
}

/// A number as a header value, without the buffer `HeaderValue::from` grows.
fn number(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_str(digits.format(n)).unwrap_or(HeaderValue::from_static("0"))
}

/// Turns a flight subscription into this client's response.
pub(crate) async fn respond(
    mut subscription: Subscription,
    flavor: Flavor,
    finish: Finish,
) -> Response {
    let head = match subscription.next().await {
        Event::Head(head) => head,
        Event::End(End::Failed(err)) => {
            let response = err.to_response(flavor);
            finish.record(response.status().as_u16());
            return response;
        }
        Event::End(_) | Event::Chunk(_) => {
            let err = Error::from(ProxyError::Protocol {
                upstream: "upstream".into(),
                reason: "the shared response ended before its headers".into(),
            });
            finish.record(err.status().as_u16());
            return err.to_response(flavor);
        }
    };
    let framing = Framing::of(&head.headers);
    let mut finish = finish;
    if let Some(trace) = &head.trace {
        finish.trace = Arc::clone(trace);
    }
    let finish = finish.on_drop(head.status.as_u16());
    let timing = finish.server_timing();
    let stream = futures_util::stream::unfold(Some(subscription), move |state| async move {
        let mut subscription = state?;
        match subscription.next().await {
            Event::Chunk(chunk) => Some((Ok(chunk), Some(subscription))),
            Event::End(End::Broken) if framing == Framing::Other => {
                // A fixed-length body that broke off: cut the connection so the
                // client sees a truncated body, not a short "complete" one.
                Some((
                    Err(std::io::Error::other("upstream broke off the response")),
                    None,
                ))
            }
            Event::End(_) | Event::Head(_) => None,
        }
    })
    // Body adapters (compression among them) may poll once more after the end.
    .fuse();
    let mut response = Response::new(Body::from_stream(Measured::new(stream, finish)));
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    response.headers_mut().insert(SERVER_TIMING, timing);
    response
}

/// A flight's leader work: the exchange, published to every subscriber as it
/// happens, and the store into the cache once it is complete.
pub(crate) struct Flight {
    pub(crate) cache: Arc<Cache>,
    pub(crate) lookup: Lookup,
    pub(crate) publisher: Publisher<FlightKey>,
    pub(crate) flavor: Flavor,
}

/// Runs one flight's upstream exchange to the end (or until nobody listens), then
/// stores the answer if it is complete and successful.
pub(crate) async fn drive(pipeline: Arc<Pipeline>, exchange: Exchange, flight: Flight) {
    let Flight {
        cache,
        lookup,
        publisher,
        flavor,
    } = flight;
    let trace = Arc::clone(&exchange.trace);
    let sent = tokio::select! {
        sent = send(&pipeline, exchange) => sent,
        () = publisher.cancelled() => return,
    };
    let (upstream, lease) = match sent {
        Ok(sent) => sent,
        Err(err) => {
            // Logged once here, for every subscriber: they only render it.
            pipeline.report(&err);
            publisher.finish(End::Failed(Arc::new(err)));
            return;
        }
    };
    let (parts, body) = upstream.into_parts();
    let (status, mut headers) = (parts.status, parts.headers);
    retain_forwardable(&mut headers);
    let framing = Framing::of(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let mut stream = UpstreamBody::new(&pipeline, status, body, &headers, flavor, lease);
    publisher.head(Head {
        status,
        headers,
        trace: Some(trace),
    });
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(chunk)) => publisher.chunk(chunk),
                Some(Err(_)) => break,
                None => break,
            },
            () = publisher.cancelled() => return,
        }
    }
    let clean = stream.ended_cleanly();
    drop(stream);
    if clean && status == StatusCode::OK {
        let chunks = publisher.chunks();
        // Store before the flight leaves the table, so an identical request never
        // falls into the gap between the two and starts a second generation.
        if is_complete(framing, &chunks) {
            cache.insert(&lookup, content_type, chunks).await;
        }
    }
    publisher.finish(if clean { End::Complete } else { End::Broken });
}

/// Whether a successful answer is whole: a native stream must end with its
/// `done: true` object and carry no in-stream error; an SSE stream must end with
/// `data: [DONE]` (Ollama's SSE streams that fail end without it) after an event
/// that says why it finished (llama-cpp-python's server ends a stream that a
/// newer request interrupted with `[DONE]` but no `finish_reason`).
fn is_complete(framing: Framing, chunks: &[Bytes]) -> bool {
    if chunks.is_empty() {
        return false;
    }
    let body: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    match framing {
        Framing::Ndjson => {
            let mut lines = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .peekable();
            let mut done = false;
            while let Some(line) = lines.next() {
                let Ok(object) = serde_json::from_slice::<serde_json::Value>(line) else {
                    return false;
                };
                if object.get("error").is_some() {
                    return false;
                }
                if lines.peek().is_none() {
                    done = object.get("done") == Some(&serde_json::Value::Bool(true));
                }
            }
            done
        }
        // Events end with a blank line, LF or CRLF (llama-cpp-python writes CRLF).
        Framing::Sse => body.trim_ascii_end().ends_with(b"data: [DONE]") && finished(&body),
        Framing::Other => true,
    }
}

/// Whether an SSE body has a `finish_reason` that is not `null` (the key in
/// quotes cannot occur unescaped inside a JSON string; spaces may follow it, as
/// Python's `json.dumps` writes them).
fn finished(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"finish_reason\"";
    let mut rest = body;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let value = rest.trim_ascii_start();
        let Some(value) = value.strip_prefix(b":") else {
            continue;
        };
        let value = value.trim_ascii_start();
        if !value.is_empty() && !value.starts_with(b"null") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> Vec<Bytes> {
        parts
            .iter()
            .map(|p| Bytes::from_static(p.as_bytes()))
            .collect()
    }

    #[test]
    fn only_finished_streams_count_as_complete() {
        assert!(is_complete(
            Framing::Ndjson,
            &chunks(&["{\"done\":false}\n{\"do", "ne\":true}\n"])
        ));
        assert!(!is_complete(
            Framing::Ndjson,
            &chunks(&["{\"done\":false}\n"])
        ));
        assert!(!is_complete(
            Framing::Ndjson,
            &chunks(&["{\"done\":false}\n{\"error\":\"boom\"}\n"])
        ));
        // Ollama's shape: compact JSON, LF.
        assert!(is_complete(
            Framing::Sse,
            &chunks(&[
                "data: {\"choices\":[{\"finish_reason\":null}]}\n\n",
                "data: {\"choices\":[{\"finish_reason\":\"stop\"}]}\n\n",
                "data: [DONE]\n\n"
            ])
        ));
        // llama-cpp-python's: spaces after colons, CRLF.
        assert!(is_complete(
            Framing::Sse,
            &chunks(&[
                "data: {\"choices\": [{\"finish_reason\": \"length\"}]}\r\n\r\n",
                "data: [DONE]\r\n\r\n"
            ])
        ));
        // Ended early: [DONE] without a reason (an interrupted stream).
        assert!(!is_complete(
            Framing::Sse,
            &chunks(&[
                "data: {\"choices\": [{\"delta\": {\"content\": \"\\\"finish_reason\\\": 1\"}, \"finish_reason\": null}]}\r\n\r\n",
                "data: [DONE]\r\n\r\n"
            ])
        ));
        assert!(!is_complete(Framing::Sse, &chunks(&["data: {}\n\n"])));
        assert!(!is_complete(Framing::Other, &[]));
    }
}
