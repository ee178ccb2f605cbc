//! One exchange with the upstream side: pick a host, wait for a slot of the model
//! there, pass its breaker, send, and wait for the response headers — and, where
//! that fails before anything reached the client, once more on another host.
//!
//! An [`Exchange`] is everything the upstream side needs of a request: its head,
//! its body (streamed, or held whole when the pipeline read it or a retry may need
//! it again), its route kind, its model and the [`Trace`] the exchange writes what
//! it learns into. [`send`] owns the failover decision and the single deadline
//! (`timeouts.first_byte` for the whole exchange, failover included: timeouts never
//! stack); [`attempt`] is one try at one host.
//!
//! What is retried, and what counts against a host's breaker, is the error's own
//! business ([`Error::retry_safe`], [`Error::blame`]); this module only asks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::header;
use http_body::Body as _;

use super::body::{BodyFault, LimitedBody, OutBody, declared_length, read_body};
use super::pool::{ClientError, PooledBody};
use super::record::Trace;
use super::state::Pipeline;
use super::translate::answer::Translating;
use super::translate::{Native, Shape, Translated};
use crate::admission::Slot;
use crate::config::UpstreamKind;
use crate::error::{Blame, Error, ProxyError};
use crate::upstream::{InFlight, Upstream};
use crate::wire::describe;
use crate::wire::headers::forwardable;
use crate::wire::route::RouteKind;

/// The upstream's answer, its head received and its body still to come.
pub(crate) type Answer = http::Response<AnswerBody>;

/// An answer's body: the engine's own, translated into Ollama's shape (see
/// `translate`), or one Warmline wrote whole.
pub(crate) enum AnswerBody {
    Pooled(PooledBody),
    Translated(Box<Translating>),
    Whole(Option<Bytes>),
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            AnswerBody::Pooled(body) => std::pin::Pin::new(body).poll_frame(cx),
            AnswerBody::Translated(body) => std::pin::Pin::new(body.as_mut()).poll_frame(cx),
            AnswerBody::Whole(bytes) => {
                std::task::Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Pooled(body) => body.is_end_stream(),
            AnswerBody::Translated(body) => body.is_end_stream(),
            AnswerBody::Whole(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            AnswerBody::Pooled(body) => body.size_hint(),
            AnswerBody::Translated(body) => body.size_hint(),
            AnswerBody::Whole(bytes) => {
                http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// A request on its way to the upstream side.
pub(crate) struct Exchange {
    /// Method, URI and headers as the client sent them (forwardable ones are sent).
    pub(crate) parts: http::request::Parts,
    pub(crate) body: OutBody,
    pub(crate) kind: RouteKind,
    /// The model the body names, normalised: its slots and its hosts.
    pub(crate) model: Option<Arc<str>>,
    /// Where the exchange writes what it learns, for the request's metrics.
    pub(crate) trace: Trace,
}

impl Exchange {
    /// The body for one attempt: a copy of a body held whole (cheap: `Bytes`), or
    /// the stream itself, which can be sent only once.
    fn take_body(&mut self) -> OutBody {
        match &mut self.body {
            OutBody::Bytes(bytes) => OutBody::Bytes(bytes.clone()),
            OutBody::Stream(stream) => OutBody::Stream(std::mem::take(stream)),
        }
    }
}

/// What a request holds on its upstream until its response body ends: its place
/// in the host's in-flight count and, for a generation, one of the model's slots.
#[derive(Debug)]
pub(crate) struct Lease {
    _in_flight: InFlight,
    pub(crate) slot: Option<Slot>,
    /// For a request that names an installed model: what to learn from its answer.
    pub(crate) observe: Option<Observe>,
    /// Where what the exchange learns is written, for the request's metrics.
    pub(crate) trace: Trace,
    /// The host, as errors name it.
    pub(crate) upstream: Arc<str>,
}

/// What the end of a model's answer tells: whether it paid a load (a cold start)
/// and how long that took.
#[derive(Debug)]
pub(crate) struct Observe {
    pub(crate) model: Arc<str>,
    /// The host did not have the model loaded when the request was sent (the
    /// answer for `/v1`, whose bodies carry no `load_duration`).
    pub(crate) cold_hint: bool,
    /// From sending the request to the upstream's response headers.
    pub(crate) head_after: Duration,
}

/// Sends the exchange upstream and waits for the response headers, failing over
/// once to another host where that is safe (see the module docs).
pub(crate) async fn send(
    pipeline: &Pipeline,
    mut exchange: Exchange,
) -> Result<(Answer, Lease), Error> {
    let limit = if exchange.kind.is_blob_upload() {
        pipeline.max_blob_body
    } else {
        Some(pipeline.max_body)
    };
    let declared = declared_length(&exchange.parts.headers);
    if let Some(limit) = limit
        && declared.is_some_and(|len| len > limit)
    {
        return Err(ProxyError::BodyTooLarge { limit }.into());
    }
    // A body can be sent twice only if it is held whole: small declared bodies
    // are read first when there is another host to fail over to.
    let may_retry = pipeline.failover && pipeline.upstreams.hosts().len() > 1;
    if let OutBody::Stream(stream) = &mut exchange.body
        && may_retry
        && (stream.size_hint().exact() == Some(0)
            || declared.is_some_and(|len| len <= pipeline.retry_body))
    {
        let stream = std::mem::take(stream);
        let headers = &exchange.parts.headers;
        let bytes = read_body(stream, headers, pipeline.retry_body, pipeline.body_timeout);
        exchange.body = OutBody::Bytes(bytes.await?);
    }

    // One budget for the whole exchange, failover included: timeouts never stack.
    let deadline = crate::sys::clock::after(pipeline.first_byte_timeout);
    let shared_model = exchange.model.clone();
    let model = shared_model.as_deref();
    // Engines have none of Ollama's own routes (pull, create, version...).
    let no_route = model.is_none() && !exchange.parts.uri.path().starts_with("/v1/");
    let first = match pipeline.upstreams.pick(model) {
        Some(host) if !(no_route && pipeline.upstreams.engines_only()) => Some(Arc::clone(host)),
        _ => None,
    };
    let Some(first) = first else {
        let hosts = pipeline.upstreams.hosts();
        if pipeline.upstreams.engines_only() && hosts.iter().any(|h| h.breaker.admits()) {
            // Not the breakers: only engines, and none lists the model.
            let path = exchange.parts.uri.path();
            let wanted = model.map_or_else(String::new, |m| format!(" for {m}"));
            return Err(ProxyError::Untranslatable(format!(
                "no upstream can answer {path}{wanted}: OpenAI-compatible engines serve only the models they list, and no Ollama host is configured"
            ))
            .into());
        }
        let (hosts, retry_after) = pipeline.upstreams.all_open();
        return Err(ProxyError::BreakerOpen { hosts, retry_after }.into());
    };
    let second = match &exchange.body {
        OutBody::Bytes(_) if pipeline.failover => {
            pipeline.upstreams.pick_other(&first, model).cloned()
        }
        _ => None,
    };
    let result = attempt(pipeline, &mut exchange, &first, deadline, limit).await;
    let Some(second) = second else {
        return result;
    };
    let (reason, second) = match &result {
        Ok((response, _)) if response.status().is_server_error() => {
            (format!("answered {}", response.status()), second)
        }
        // "Model not found" from a host whose list does not have it: another
        // host that lists the model can answer.
        Ok((response, _)) if response.status() == http::StatusCode::NOT_FOUND => {
            let elsewhere = model.and_then(|m| pipeline.upstreams.pick_with_model(&first, m));
            match elsewhere {
                Some(host) => ("does not have the model".to_owned(), Arc::clone(host)),
                None => return result,
            }
        }
        Err(err) if err.retry_safe() => (err.to_string(), second),
        _ => return result,
    };
    // Nothing has reached the client yet: try the other host once.
    pipeline.metrics.upstream_retry();
    first.count_retry();
    tracing::info!(
        from = first.name(),
        to = second.name(),
        "retrying on another upstream: {reason}"
    );
    drop(result);
    attempt(pipeline, &mut exchange, &second, deadline, limit).await
}

/// One request to one upstream, waiting for its response headers until `deadline`.
/// A generation (model known) first waits for one of the model's slots on this
/// host, in arrival order, bounded by the queue's length and wait.
async fn attempt(
    pipeline: &Pipeline,
    exchange: &mut Exchange,
    upstream: &Arc<Upstream>,
    deadline: tokio::time::Instant,
    limit: Option<u64>,
) -> Result<(Answer, Lease), Error> {
    let shared_model = exchange.model.clone();
    let model = shared_model.as_deref();
    let trace = Arc::clone(&exchange.trace);
    let trace = &trace;
    let slot = match model {
        Some(model) if pipeline.slots => {
            let slot = upstream.slots.acquire(model).await?;
            trace.update(|t| t.queue = Some(slot.waited()));
            Some(slot)
        }
        _ => None,
    };
    let permit = match upstream.breaker.admit() {
        Ok(permit) => permit,
        // Lost a race for the half-open probe, or opened a moment ago.
        Err(refused) => {
            return Err(ProxyError::BreakerOpen {
                hosts: format!("{} ({refused})", upstream.name()),
                retry_after: refused.retry_in,
            }
            .into());
        }
    };
    // A /v1 request cannot carry keep_alive: a warm model it finds unloaded is
    // loaded with the pinned one first (the request would pay that load anyway).
    if let Some(model) = model
        && exchange.kind.is_openai()
        && let Some(keep_alive) = pipeline.warmth.pinned(model)
        && !upstream.has_loaded(model)
        && let Some(installed) = upstream.models.snapshot().installed.get(model).cloned()
    {
        let load = crate::warmth::load(
            &pipeline.client,
            upstream,
            model,
            keep_alive.to_json(),
            installed.is_embedding(),
        );
        match tokio::time::timeout_at(deadline, load).await {
            Ok(Ok(took)) => {
                upstream.models.note_loaded(model);
                trace.update(|t| t.pinned_load = Some(took));
            }
            Ok(Err(err)) => {
                tracing::debug!(model, "pinned load before a /v1 request failed: {err}")
            }
            Err(_) => {}
        }
    }
    let installed = model.filter(|m| upstream.has_model(m) == Some(true));
    if let Some(model) = installed {
        pipeline.metrics.models.request(model);
    }
    let installed_shared = installed.and(shared_model.as_ref());
    trace.update(|t| {
        t.host = Some(upstream.shared_name());
        t.model = installed_shared.cloned();
    });
    let cold_hint = installed.is_some_and(|m| !upstream.has_loaded(m));
    let sent_at = Instant::now();
    let in_flight = upstream.begin();
    let mut body = exchange.take_body();
    let parts = &exchange.parts;
    let mut headers = forwardable(&parts.headers);
    // A native request to an engine with only OpenAI's API goes in its form
    // (see `translate`); what it cannot answer, Warmline does.
    let mut shape = None;
    let mut path_and_query = parts.uri.path_and_query().cloned();
    let mut local = None;
    if upstream.kind() == UpstreamKind::OpenAi {
        let engine_model = model.map(|m| upstream.listed_name(m)).unwrap_or_default();
        match (exchange.kind, Native::of(exchange.kind), &body) {
            (RouteKind::Show, _, _) => {
                let show = super::translate::listing::show(&engine_model, upstream.name());
                let mut headers = http::HeaderMap::new();
                headers.insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json; charset=utf-8"),
                );
                local = Some((Bytes::from(show.to_string()), headers));
            }
            (_, Some(native), OutBody::Bytes(bytes)) => {
                match super::translate::request(native, bytes, &engine_model) {
                    Err(reason) => return Err(ProxyError::Untranslatable(reason).into()),
                    Ok(Translated::LoadOnly(load)) => {
                        let answer = super::translate::answer::load_only(&load);
                        local = Some((answer, super::translate::answer::headers(&load)));
                    }
                    Ok(Translated::Send {
                        path,
                        body: translated,
                        shape: sent,
                    }) => {
                        body = OutBody::Bytes(translated);
                        path_and_query = Some(http::uri::PathAndQuery::from_static(path));
                        headers.insert(
                            header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        headers.remove(header::ACCEPT_ENCODING);
                        shape = Some(sent);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((bytes, headers)) = local {
        let mut answer = http::Response::new(AnswerBody::Whole(Some(bytes)));
        *answer.headers_mut() = headers;
        let lease = Lease {
            _in_flight: in_flight,
            slot,
            observe: None,
            trace: Arc::clone(trace),
            upstream: upstream.shared_name(),
        };
        permit.success();
        return Ok((answer, lease));
    }
    if matches!(body, OutBody::Bytes(_)) {
        headers.remove(header::CONTENT_LENGTH);
    }
    let fault = Arc::new(BodyFault::default());
    let body = match body {
        OutBody::Stream(body) if body.size_hint().exact() != Some(0) => {
            let limited = LimitedBody::new(
                body,
                limit.unwrap_or(u64::MAX),
                pipeline.body_timeout,
                Arc::clone(&fault),
            );
            Body::from_stream(limited)
        }
        OutBody::Stream(_) => Body::empty(),
        // A body held whole may differ from what the client declared (a pinned
        // keep_alive): the upstream client (`pool`) sets its length from the body.
        OutBody::Bytes(bytes) => Body::from(bytes),
    };
    let request = match upstream.request_target(path_and_query.as_ref()) {
        Ok(uri) => {
            if let Some(endpoint) = upstream.endpoint() {
                headers.insert(header::HOST, endpoint.host().clone());
            }
            // A host with an API key gets it, in place of whatever credential
            // the client sent Warmline.
            if let Some(auth) = upstream.auth() {
                headers.insert(header::AUTHORIZATION, auth.clone());
            }
            let mut request = http::Request::new(body);
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = uri;
            *request.headers_mut() = headers;
            request
        }
        Err(err) => {
            let reason = format!("cannot form the upstream address: {err}");
            let name = upstream.name().to_owned();
            return Err(ProxyError::Protocol {
                upstream: name,
                reason,
            }
            .into());
        }
    };

    pipeline.metrics.upstream_request();
    upstream.count_request();
    let sent = pipeline
        .upstream_client
        .request(upstream.endpoint(), request);
    let result = match tokio::time::timeout_at(deadline, sent).await {
        Ok(Ok(response)) => {
            upstream.mark_up(None);
            if let Some(model) = model
                && response.status().is_success()
            {
                // An answer for a model proves it is loaded there now.
                upstream.models.note_loaded(model);
            }
            let head_after = sent_at.elapsed();
            trace.update(|t| t.upstream_head = Some(head_after));
            let response = match &shape {
                Some(shape) => translated_answer(response, shape).await,
                None => response.map(AnswerBody::Pooled),
            };
            let lease = Lease {
                _in_flight: in_flight,
                slot,
                observe: installed_shared.map(|model| Observe {
                    model: Arc::clone(model),
                    cold_hint,
                    head_after,
                }),
                trace: Arc::clone(trace),
                upstream: upstream.shared_name(),
            };
            Ok((response, lease))
        }
        Ok(Err(err)) => Err(fault
            .error(limit.unwrap_or(u64::MAX), pipeline.body_timeout)
            .unwrap_or_else(|| classify(pipeline, upstream, &err))),
        Err(_elapsed) => Err(ProxyError::FirstByteTimeout {
            upstream: upstream.name().to_owned(),
            after: pipeline.first_byte_timeout,
        }
        .into()),
    };
    // The breaker counts the host's failures: no connection, no timely answer, or a
    // 5xx. A failure that is not the host's counts as nothing.
    match &result {
        Ok((response, _)) if response.status().is_server_error() => permit.failure(),
        Ok(_) => permit.success(),
        Err(err) if err.blame() == Blame::Host => permit.failure(),
        Err(_) => drop(permit),
    }
    result
}

/// An engine's answer to a translated request, in Ollama's shape: its body
/// translated as it streams, or its error as `{"error": "..."}` (read whole,
/// at most 1 MiB).
async fn translated_answer(response: http::Response<PooledBody>, shape: &Shape) -> Answer {
    let (mut parts, body) = response.into_parts();
    if parts.status.is_success() {
        parts.headers = super::translate::answer::headers(shape);
        let body = AnswerBody::Translated(Box::new(Translating::new(body, shape.clone())));
        return http::Response::from_parts(parts, body);
    }
    let limited = http_body_util::Limited::new(body, 1 << 20);
    let bytes = http_body_util::BodyExt::collect(limited)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut error = super::translate::answer::headers(&Shape {
        stream: false,
        ..shape.clone()
    });
    error.remove(header::CONTENT_LENGTH);
    parts.headers = error;
    let body = super::translate::answer::error(parts.status, &bytes);
    http::Response::from_parts(parts, AnswerBody::Whole(Some(body)))
}

/// Turns a client failure into the error the client should see, marking the host
/// down when it could not be reached.
fn classify(pipeline: &Pipeline, upstream: &Upstream, err: &ClientError) -> Error {
    let name = upstream.name().to_owned();
    if err.is_connect() {
        if caused_by(err, |e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        }) {
            upstream.mark_down(format!(
                "connect timed out after {}",
                humantime::format_duration(pipeline.connect_timeout)
            ));
            return ProxyError::ConnectTimeout {
                upstream: name,
                after: pipeline.connect_timeout,
            }
            .into();
        }
        let reason = describe(err);
        upstream.mark_down(reason.clone());
        return ProxyError::Unreachable {
            upstream: name,
            reason,
        }
        .into();
    }
    if caused_by(err, |e| e.is::<axum::Error>()) {
        return ProxyError::ClientBody(describe(err)).into();
    }
    ProxyError::Protocol {
        upstream: name,
        reason: describe(err),
    }
    .into()
}

/// Whether anything in the error's chain of causes is `what` (a connect timeout,
/// the client's request body failing).
fn caused_by(err: &ClientError, what: impl Fn(&(dyn std::error::Error + 'static)) -> bool) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if what(cause) {
            return true;
        }
        source = cause.source();
    }
    false
}
