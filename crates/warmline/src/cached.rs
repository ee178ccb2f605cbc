//! The cached request path: what happens to a `POST` on a route the cache can key
//! (generate, chat, embed, embeddings, show and their `/v1` counterparts).
//!
//! ```text
//!  read body (≤ limits.max_body) ─▶ plan ─┬─ bypass ─▶ plain proxy           x-warmline-cache: bypass
//!                                         └─ use ─▶ lookup ─┬─ hit ─▶ replay x-warmline-cache: hit
//!                                                          └─ join flight ─┬─ leader: miss
//!                                                                          └─ follower: coalesced
//! ```
//!
//! A flight's upstream exchange runs in its own task ([`drive`]), publishing the head
//! and every chunk to all subscribers as it arrives — the live stream is never
//! delayed by recording — and storing the answer only once it is complete and
//! successful.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};

use crate::cache::entry::Replay;
use crate::cache::{Cache, FlightKey, KeyRoute, Lookup, Outcome, Plan};
use crate::coalesce::{End, Event, Head, Joined, Publisher, Subscription};
use crate::error::{Error, Flavor, ProxyError};
use crate::proxy::{
    CACHE_HEADER, Finish, Framing, Measured, OutBody, Proxy, Trace, UpstreamBody, bypassed,
    error_response, forwardable, into_client_response, read_body, send,
};
use crate::route::RouteKind;

/// Serves one cacheable request.
pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    request: Request,
    kind: RouteKind,
    route: KeyRoute,
    mut finish: Finish,
) -> Response {
    let flavor = Flavor::of(request.uri().path());
    // Identities never share cache entries or flights: the identity is the key's
    // partition ("" without authentication).
    let partition = request
        .extensions()
        .get::<crate::auth::Identity>()
        .map(|identity| Arc::clone(&identity.0));
    let (parts, body) = request.into_parts();
    let body = match read_body(&proxy, body, &parts.headers, proxy.max_body()).await {
        Ok(body) => body,
        Err(err) => {
            let response = error_response(&proxy, &err, flavor);
            finish.cache = proxy.cache.as_ref().map(|_| Outcome::Bypass.as_str());
            finish.record(response.status().as_u16());
            return bypassed(&proxy, response);
        }
    };
    let plan = match &proxy.cache {
        Some(cache) => cache.plan(
            route,
            &parts.headers,
            &body,
            partition.as_deref().unwrap_or(""),
        ),
        None => Plan::Bypass("disabled"),
    };
    let facts = Facts::of(kind, &body);
    // The model for the request's metrics (cache hits never reach a host).
    if let Some(model) = facts.model.as_deref()
        && proxy.upstreams.is_installed(model)
    {
        finish.trace.update(|t| t.model = Some(Arc::from(model)));
    }
    let masked = masks_cold_start(&proxy, &facts);
    // What goes upstream: the pinned keep_alive added for a warm model.
    let body = pin_keep_alive(&proxy, kind, &facts, body);
    let (cache, lookup) = match (plan, &proxy.cache) {
        (Plan::Use(lookup), Some(cache)) => (Arc::clone(cache), lookup),
        (plan, _) => {
            if let Plan::Bypass(reason) = plan {
                tracing::trace!(reason, "cache bypass");
            }
            let model = facts.model.clone();
            finish.cache = proxy.cache.as_ref().map(|_| Outcome::Bypass.as_str());
            let trace = Arc::clone(&finish.trace);
            if masked {
                let owner = Arc::clone(&proxy);
                let sent = async move {
                    send(
                        &owner,
                        parts,
                        OutBody::Bytes(body),
                        kind,
                        model.as_deref(),
                        &trace,
                    )
                    .await
                };
                return bypassed(&proxy, masked_response(&proxy, sent, flavor, finish));
            }
            let sent = send(
                &proxy,
                parts,
                OutBody::Bytes(body),
                kind,
                model.as_deref(),
                &trace,
            );
            let response = match sent.await {
                Ok((upstream, lease)) => {
                    into_client_response(&proxy, upstream, flavor, finish, lease)
                }
                Err(err) => {
                    let response = error_response(&proxy, &err, flavor);
                    finish.record(response.status().as_u16());
                    response
                }
            };
            return bypassed(&proxy, response);
        }
    };

    if lookup.read
        && let Some((replay, age)) = cache.lookup(&lookup).await
    {
        cache.count(Outcome::Hit);
        finish.cache = Some(Outcome::Hit.as_str());
        let timing = finish.server_timing();
        finish.record(StatusCode::OK.as_u16());
        let mut response = hit(replay, age);
        response
            .headers_mut()
            .insert(crate::proxy::SERVER_TIMING, timing);
        return response;
    }

    let flight_key: FlightKey = lookup.flight_key();
    let (outcome, subscription) = match cache.flights().join(&flight_key) {
        Joined::Leader(publisher, subscription) => {
            tokio::spawn(drive(
                Arc::clone(&proxy),
                Arc::clone(&cache),
                parts,
                body,
                publisher,
                lookup,
                kind,
                flavor,
            ));
            (Outcome::Miss, subscription)
        }
        Joined::Follower(subscription) => (Outcome::Coalesced, subscription),
    };
    cache.count(outcome);
    finish.cache = Some(outcome.as_str());
    finish.follower = outcome == Outcome::Coalesced;
    if masked {
        return masked_flight(subscription, outcome, flavor, finish);
    }
    respond(subscription, outcome, flavor, finish).await
}

/// What the gateway needs to know of a generation's body before sending it.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// The model, normalised (for its upstream slot); `None` if the body names
    /// none (Ollama will answer with its own error).
    pub(crate) model: Option<String>,
    /// Whether the answer streams (native: unless `"stream": false`; `/v1`: only
    /// with `"stream": true`; embeddings never).
    pub(crate) stream: bool,
    /// Whether the request sets its own `keep_alive`.
    pub(crate) keep_alive: bool,
    /// No prompt or messages: Ollama only loads (or unloads) the model.
    pub(crate) load_only: bool,
}

impl Facts {
    pub(crate) fn of(kind: RouteKind, body: &[u8]) -> Facts {
        #[derive(serde::Deserialize)]
        struct Probe<'a> {
            #[serde(borrow)]
            model: Option<std::borrow::Cow<'a, str>>,
            stream: Option<serde_json::Value>,
            keep_alive: Option<serde::de::IgnoredAny>,
            #[serde(borrow)]
            prompt: Option<std::borrow::Cow<'a, str>>,
            messages: Option<Vec<serde::de::IgnoredAny>>,
        }
        let Ok(probe) = serde_json::from_slice::<Probe<'_>>(body) else {
            return Facts::default();
        };
        let model = probe.model.map(|model| {
            crate::cache::key::normalise_model_name(&model).unwrap_or_else(|_| model.into_owned())
        });
        let explicit = probe.stream.as_ref().and_then(serde_json::Value::as_bool);
        let stream = match kind {
            RouteKind::Generate | RouteKind::Chat => explicit.unwrap_or(true),
            RouteKind::OpenAiChat | RouteKind::OpenAiCompletions => explicit.unwrap_or(false),
            _ => false,
        };
        let load_only = match kind {
            RouteKind::Generate => probe.prompt.as_deref().is_none_or(str::is_empty),
            RouteKind::Chat => probe.messages.as_ref().is_none_or(Vec::is_empty),
            _ => false,
        };
        Facts {
            model,
            stream,
            keep_alive: probe.keep_alive.is_some(),
            load_only,
        }
    }
}

/// Adds the pinned `keep_alive` to a native request for a warm model that sets
/// none (see `warmth`). The body is a JSON object, so the field goes right after
/// its opening brace; everything else stays byte for byte.
fn pin_keep_alive(proxy: &Proxy, kind: RouteKind, facts: &Facts, body: Bytes) -> Bytes {
    if kind.is_openai() || facts.keep_alive {
        return body;
    }
    let Some(pinned) = facts.model.as_deref().and_then(|m| proxy.warmth.pinned(m)) else {
        return body;
    };
    let Some(open) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return body;
    };
    if body[open] != b'{' {
        return body;
    }
    let empty = body[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let field = format!(
        "\"keep_alive\":{}{}",
        pinned.to_json(),
        if empty { "" } else { "," }
    );
    let mut pinned_body = Vec::with_capacity(body.len() + field.len());
    pinned_body.extend_from_slice(&body[..=open]);
    pinned_body.extend_from_slice(field.as_bytes());
    pinned_body.extend_from_slice(&body[open + 1..]);
    Bytes::from(pinned_body)
}

/// Whether this request's headers should not wait for its model to load: a
/// stream for a model the best host has installed but not loaded.
fn masks_cold_start(proxy: &Proxy, facts: &Facts) -> bool {
    if !facts.stream || facts.load_only || !proxy.warmth.masks_cold_starts() {
        return false;
    }
    let Some(model) = facts.model.as_deref() else {
        return false;
    };
    proxy
        .upstreams
        .pick(Some(model))
        .is_some_and(|host| host.has_model(model) == Some(true) && !host.has_loaded(model))
}

/// A masked stream on the plain path: headers now, then the upstream's body once
/// `sent` resolves (or its failure as the stream's last line).
fn masked_response(
    proxy: &Arc<Proxy>,
    sent: impl std::future::Future<Output = Result<(reqwest::Response, crate::proxy::Lease), Error>>
    + Send
    + 'static,
    flavor: Flavor,
    finish: Finish,
) -> Response {
    let proxy = Arc::clone(proxy);
    let finish = finish.on_drop(StatusCode::OK.as_u16());
    let timing = finish.server_timing();
    let body = futures_util::stream::once(sent).flat_map(move |sent| match sent {
        Ok((upstream, lease)) if upstream.status() == StatusCode::OK => {
            let headers = forwardable(upstream.headers());
            UpstreamBody::new(&proxy, upstream, &headers, flavor, lease).boxed()
        }
        Ok((upstream, lease)) => {
            let status = upstream.status();
            futures_util::stream::once(async move {
                let body = upstream.bytes().await.unwrap_or_default();
                drop(lease);
                Ok(crate::coldstart::error_event(flavor, status, &body))
            })
            .boxed()
        }
        Err(err) => {
            proxy.metrics.gateway_error(err.kind());
            tracing::warn!(kind = err.kind(), "{err}");
            let line = crate::coldstart::error_line(flavor, err.status(), &err.to_string());
            futures_util::stream::once(async move { Ok(line) }).boxed()
        }
    });
    let mut response = Response::new(Body::from_stream(Measured::new(body, finish)));
    *response.headers_mut() = crate::coldstart::headers(flavor);
    response
        .headers_mut()
        .insert(crate::proxy::SERVER_TIMING, timing);
    response
}

/// A masked stream on the shared path: headers now, then the flight's chunks.
fn masked_flight(
    subscription: Subscription,
    outcome: Outcome,
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
        Chunks(Subscription, Option<crate::proxy::Trace>),
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
                        let line =
                            crate::coldstart::error_line(flavor, err.status(), &err.to_string());
                        Some((Ok(line), Phase::Done))
                    }
                    Event::End(_) | Event::Chunk(_) => None,
                },
                Phase::Chunks(mut subscription, shared) => match subscription.next().await {
                    Event::Chunk(chunk) => Some((Ok(chunk), Phase::Chunks(subscription, shared))),
                    Event::End(End::Broken) => {
                        let line = crate::coldstart::error_line(
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
                        _ => Some((
                            Ok(crate::coldstart::error_event(flavor, status, &body)),
                            Phase::Done,
                        )),
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
    *response.headers_mut() = crate::coldstart::headers(flavor);
    let headers = response.headers_mut();
    headers.insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
    headers.insert(crate::proxy::SERVER_TIMING, timing);
    response
}

/// A response built from a cached answer.
fn hit(replay: Replay, age: std::time::Duration) -> Response {
    let length: usize = replay.chunks.iter().map(Bytes::len).sum();
    let body = if replay.chunks.len() == 1 {
        Body::from(replay.chunks.into_iter().next().unwrap_or_default())
    } else {
        Body::from_stream(futures_util::stream::iter(
            replay
                .chunks
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>),
        ))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, replay.content_type);
    if !replay.stream {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    headers.insert(
        CACHE_HEADER,
        HeaderValue::from_static(Outcome::Hit.as_str()),
    );
    response
}

/// Turns a flight subscription into this client's response.
async fn respond(
    mut subscription: Subscription,
    outcome: Outcome,
    flavor: Flavor,
    finish: Finish,
) -> Response {
    let head = match subscription.next().await {
        Event::Head(head) => head,
        Event::End(End::Failed(err)) => {
            let mut response = err.to_response(flavor);
            finish.record(response.status().as_u16());
            response
                .headers_mut()
                .insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
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
    let headers = response.headers_mut();
    headers.insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
    headers.insert(crate::proxy::SERVER_TIMING, timing);
    response
}

/// Runs one flight's upstream exchange to the end (or until nobody listens), then
/// stores the answer if it is complete and successful.
#[allow(clippy::too_many_arguments)]
async fn drive(
    proxy: Arc<Proxy>,
    cache: Arc<Cache>,
    parts: http::request::Parts,
    body: Bytes,
    publisher: Publisher<FlightKey>,
    lookup: Lookup,
    kind: RouteKind,
    flavor: Flavor,
) {
    let trace = Trace::default();
    let sent = tokio::select! {
        sent = send(&proxy, parts, OutBody::Bytes(body), kind, Some(&lookup.model), &trace) => sent,
        () = publisher.cancelled() => return,
    };
    let (upstream, lease) = match sent {
        Ok(sent) => sent,
        Err(err) => {
            proxy.metrics.gateway_error(err.kind());
            tracing::warn!(kind = err.kind(), "{err}");
            publisher.finish(End::Failed(Arc::new(err)));
            return;
        }
    };
    let status = upstream.status();
    let headers = forwardable(upstream.headers());
    let framing = Framing::of(&headers);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let mut stream = UpstreamBody::new(&proxy, upstream, &headers, flavor, lease);
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
/// `done: true` object and carry no in-stream error, an SSE stream must end with
/// `data: [DONE]` (Ollama's SSE streams that fail end without it).
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
        Framing::Sse => body.ends_with(b"data: [DONE]\n\n"),
        Framing::Other => true,
    }
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
        assert!(is_complete(
            Framing::Sse,
            &chunks(&["data: {}\n\n", "data: [DONE]\n\n"])
        ));
        assert!(!is_complete(Framing::Sse, &chunks(&["data: {}\n\n"])));
        assert!(!is_complete(Framing::Other, &[]));
    }
}
