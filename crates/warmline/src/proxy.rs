//! The forwarding proxy: every request that is not one of Warmline's own routes goes
//! to an upstream Ollama and its answer comes back unchanged.
//!
//! "Unchanged" is the contract: method, path, query, status, headers (minus
//! hop-by-hop ones) and body bytes pass through as they are. `Host` is rewritten to
//! the upstream's address (Ollama rejects foreign hosts on loopback) and `Origin`
//! never reaches it (see [`crate::origin`]). Bodies stream in both directions: a
//! request body is forwarded as it arrives (blob uploads are never held in memory)
//! and every response chunk is handed to the client the moment it arrives, which is
//! what NDJSON and SSE clients need. The one exception is the request body of a
//! cacheable `POST` (generate, chat, embed, show and their `/v1` twins), which
//! [`crate::cached`] reads whole — bounded by `limits.max_body` — to compute its key.
//!
//! Failure handling, in the order it can happen:
//! - body larger than `limits.max_body` → 413 (by `Content-Length` up front, or
//!   mid-stream by counting);
//! - upstream refuses or cannot be resolved → 502 naming it, host marked down;
//! - connect takes longer than `timeouts.connect` → 504 naming that timeout;
//! - no response headers within `timeouts.first_byte` → 504 naming that timeout;
//! - with several upstreams, a refused or reset connection, a connect timeout or a
//!   5xx answer is retried once on another reachable host — only before anything
//!   reached the client, within the same `timeouts.first_byte` budget, and only for
//!   bodies held whole (up to `limits.retry_body`); a 404 for a model is retried on
//!   a host that lists the model; other 4xx answers are never retried;
//! - the upstream goes silent mid-stream for `timeouts.idle`, or breaks the
//!   connection: an NDJSON stream ends with Ollama's own in-stream error line
//!   (`{"error":"..."}`), an SSE stream ends without `[DONE]` (as Ollama's does),
//!   anything else is cut so the client sees a truncated body rather than a
//!   silently short one.
//!
//! A client that goes away cancels its upstream request: the handler future or the
//! response body is dropped, which drops reqwest's request and closes that
//! connection, which is how Ollama learns to stop generating.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body::Body as _;
use tokio::time::Sleep;

use crate::admission::Slot;
use crate::cache::{self, Cache, Outcome};
use crate::config::Config;
use crate::error::{Error, Flavor, ProxyError};
use crate::metrics::Metrics;
use crate::route::RouteKind;
use crate::upstream::{InFlight, Upstream, UpstreamSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything the proxy handler needs, shared by all requests.
#[derive(Debug)]
pub struct Proxy {
    pub client: reqwest::Client,
    pub upstreams: Arc<UpstreamSet>,
    pub metrics: Arc<Metrics>,
    /// The response cache, unless `cache.enabled` is off.
    pub cache: Option<Arc<Cache>>,
    /// Notified when a request that changes the installed models went through.
    pub models_changed: Arc<tokio::sync::Notify>,
    /// The warm set: pinning and cold-start masking read it per request.
    pub warmth: Arc<crate::warmth::Warmth>,
    pool: crate::config::PoolConfig,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    connect_timeout: Duration,
    max_body: u64,
    max_blob_body: Option<u64>,
    /// Bodies up to this size are held so a failed attempt can be re-sent.
    retry_body: u64,
    /// Longest silence between two chunks of a client's request body.
    body_timeout: Duration,
    /// Whether a failed attempt is retried on another host.
    failover: bool,
    /// Whether generations wait for a slot of their model on their host.
    slots: bool,
}

impl Proxy {
    /// The proxy for `config`. Parts of `previous` whose settings did not change are
    /// kept — the connection pool, each upstream host with its health and breaker,
    /// the cache with its entries — so a reload forgets only what it must.
    pub fn build(
        config: &Config,
        metrics: Arc<Metrics>,
        previous: Option<&Proxy>,
        models_changed: Arc<tokio::sync::Notify>,
        warmth: Arc<crate::warmth::Warmth>,
    ) -> Result<Proxy, Error> {
        let reuse_client = previous
            .filter(|p| p.pool == config.pool && p.connect_timeout == config.timeouts.connect);
        let client = match reuse_client {
            Some(previous) => previous.client.clone(),
            None => build_client(config, metrics.connect_counter()).map_err(|e| {
                Error::Proxy(ProxyError::Protocol {
                    upstream: "(client)".into(),
                    reason: describe(&e),
                })
            })?,
        };
        let kept_cache = previous
            .and_then(|p| p.cache.as_ref())
            .filter(|cache| config.cache.enabled && *cache.config() == config.cache);
        let cache = match kept_cache {
            Some(cache) => Some(Arc::clone(cache)),
            None if config.cache.enabled => {
                let cache = Cache::new(&config.cache).map_err(|reason| {
                    Error::Config(crate::config::ConfigError::Invalid {
                        field: "cache.redis".into(),
                        message: reason,
                    })
                })?;
                Some(Arc::new(cache))
            }
            None => None,
        };
        // A daemon Warmline supervises runs daemon.num_parallel requests per model.
        let upstreams = UpstreamSet::reusing(
            &config.upstreams,
            &config.breaker,
            &config.concurrency,
            config
                .daemon
                .supervise
                .then_some(config.daemon.num_parallel),
            previous.map(|p| &*p.upstreams),
        );
        Ok(Proxy {
            client,
            upstreams: Arc::new(upstreams),
            metrics,
            cache,
            models_changed,
            warmth,
            pool: config.pool.clone(),
            first_byte_timeout: config.timeouts.first_byte,
            idle_timeout: config.timeouts.idle,
            connect_timeout: config.timeouts.connect,
            max_body: config.limits.max_body,
            max_blob_body: config.limits.max_blob_body,
            retry_body: config.limits.retry_body,
            body_timeout: config.timeouts.body,
            failover: config.failover,
            slots: config.concurrency.enabled,
        })
    }

    /// Largest accepted request body (blob uploads excepted).
    pub(crate) fn max_body(&self) -> u64 {
        self.max_body
    }
}

/// One pooled, keep-alive HTTP client for every upstream. No automatic
/// decompression (bodies pass through as encoded), no proxies from the environment
/// (an `HTTP_PROXY` meant for pulls must not capture loopback traffic), no redirects
/// followed (a redirect is the client's to see).
fn build_client(
    config: &Config,
    connects: Arc<AtomicU64>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(config.timeouts.connect)
        .pool_max_idle_per_host(config.pool.max_idle_per_host)
        .pool_idle_timeout(config.pool.idle_timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connector_layer(CountConnects(connects))
        .build()
}

/// A response extension: this request went through the proxy, which recorded
/// it in the metrics (the outer layers count only requests refused before it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded;

/// The fallback handler: forwards the request to the least busy upstream.
pub async fn forward(proxy: Arc<Proxy>, request: Request) -> Response {
    let mut response = forward_recorded(proxy, request).await;
    response.extensions_mut().insert(Recorded);
    response
}

async fn forward_recorded(proxy: Arc<Proxy>, request: Request) -> Response {
    let started = Instant::now();
    let kind = RouteKind::of(request.uri().path());
    let flavor = Flavor::of(request.uri().path());
    proxy.metrics.request_started(kind);
    let changes_models = matches!(
        kind,
        RouteKind::Pull | RouteKind::Create | RouteKind::Copy | RouteKind::Delete
    );
    let mut finish = Finish::new(
        Arc::clone(&proxy.metrics),
        kind,
        started,
        changes_models.then(|| Arc::clone(&proxy.models_changed)),
    );
    if request.method() == http::Method::POST
        && let Some(route) = cache::key_route(kind)
    {
        return crate::cached::serve(proxy, request, kind, route, finish).await;
    }
    finish.cache = proxy.cache.as_ref().map(|_| Outcome::Bypass.as_str());
    let (parts, body) = request.into_parts();
    let trace = Arc::clone(&finish.trace);
    let response = match send(&proxy, parts, OutBody::Stream(body), kind, None, &trace).await {
        Ok((response, lease)) => into_client_response(&proxy, response, flavor, finish, lease),
        Err(err) => {
            let response = error_response(&proxy, &err, flavor);
            finish.record(response.status().as_u16());
            response
        }
    };
    bypassed(&proxy, response)
}

/// Marks a response that did not involve the cache.
pub(crate) fn bypassed(proxy: &Proxy, mut response: Response) -> Response {
    if let Some(cache) = &proxy.cache {
        cache.count(Outcome::Bypass);
    }
    response.headers_mut().insert(
        CACHE_HEADER,
        HeaderValue::from_static(Outcome::Bypass.as_str()),
    );
    response
}

/// The response header that tells how the cache treated a request.
pub const CACHE_HEADER: &str = "x-warmline-cache";

/// Logs and counts a gateway error once, and renders it for the client.
pub(crate) fn error_response(proxy: &Proxy, err: &Error, flavor: Flavor) -> Response {
    proxy.metrics.gateway_error(err.kind());
    tracing::warn!(kind = err.kind(), "{err}");
    err.to_response(flavor)
}

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
    proxy: &Proxy,
    body: Body,
    headers: &HeaderMap,
    limit: u64,
) -> Result<Bytes, Error> {
    if declared_length(headers).is_some_and(|len| len > limit) {
        return Err(ProxyError::BodyTooLarge { limit }.into());
    }
    let fault = Arc::new(BodyFault::default());
    let mut limited = std::pin::pin!(LimitedBody::new(
        body,
        limit,
        proxy.body_timeout,
        Arc::clone(&fault)
    ));
    // Most bodies arrive as one chunk: keep it as it is, copy only when split.
    let mut chunks: Vec<Bytes> = Vec::with_capacity(1);
    while let Some(chunk) = limited.next().await {
        match chunk {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => {
                return Err(fault
                    .error(proxy, limit)
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

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Sends the request upstream and waits for the response headers.
pub(crate) async fn send(
    proxy: &Proxy,
    parts: http::request::Parts,
    body: OutBody,
    kind: RouteKind,
    model: Option<&str>,
    trace: &Trace,
) -> Result<(reqwest::Response, Lease), Error> {
    let limit = if kind.is_blob_upload() {
        proxy.max_blob_body
    } else {
        Some(proxy.max_body)
    };
    let declared = declared_length(&parts.headers);
    if let Some(limit) = limit
        && declared.is_some_and(|len| len > limit)
    {
        return Err(ProxyError::BodyTooLarge { limit }.into());
    }
    // A body can be sent twice only if it is held whole: small declared bodies
    // are read first when there is another host to fail over to.
    let may_retry = proxy.failover && proxy.upstreams.hosts().len() > 1;
    let body = match body {
        OutBody::Stream(stream)
            if may_retry
                && (stream.size_hint().exact() == Some(0)
                    || declared.is_some_and(|len| len <= proxy.retry_body)) =>
        {
            OutBody::Bytes(read_body(proxy, stream, &parts.headers, proxy.retry_body).await?)
        }
        other => other,
    };

    // One budget for the whole exchange, failover included: timeouts never stack.
    let deadline = crate::clock::after(proxy.first_byte_timeout);
    let Some(first) = proxy.upstreams.pick(model).cloned() else {
        let (hosts, retry_after) = proxy.upstreams.all_open();
        return Err(ProxyError::BreakerOpen { hosts, retry_after }.into());
    };
    let retry_to = match &body {
        OutBody::Bytes(_) if proxy.failover => proxy.upstreams.pick_other(&first, model).cloned(),
        _ => None,
    };
    let Some(second) = retry_to else {
        return attempt(
            proxy, &parts, &first, body, deadline, limit, kind, model, trace,
        )
        .await;
    };
    let OutBody::Bytes(bytes) = body else {
        unreachable!("a retry target is only chosen for a body held whole")
    };
    let result = attempt(
        proxy,
        &parts,
        &first,
        OutBody::Bytes(bytes.clone()),
        deadline,
        limit,
        kind,
        model,
        trace,
    )
    .await;
    let (reason, second) = match &result {
        Ok((response, _)) if response.status().is_server_error() => {
            (format!("answered {}", response.status()), second)
        }
        // "Model not found" from a host whose list does not have it: another
        // host that lists the model can answer.
        Ok((response, _)) if response.status() == http::StatusCode::NOT_FOUND => {
            let elsewhere = model.and_then(|m| proxy.upstreams.pick_with_model(&first, m));
            match elsewhere {
                Some(host) => ("does not have the model".to_owned(), Arc::clone(host)),
                None => return result,
            }
        }
        Err(Error::Proxy(
            err @ (ProxyError::Unreachable { .. }
            | ProxyError::ConnectTimeout { .. }
            | ProxyError::Protocol { .. }
            // Refused before sending: the breaker's one probe was taken a moment
            // ago, or the breaker just opened. The other host may well serve.
            | ProxyError::BreakerOpen { .. }),
        )) => (err.to_string(), second),
        // This host's queue for the model is full; another may have room.
        Err(Error::Queue(err @ crate::admission::Rejected::QueueFull { .. })) => {
            (err.to_string(), second)
        }
        _ => return result,
    };
    // Nothing has reached the client yet: try the other host once.
    proxy.metrics.upstream_retry();
    tracing::info!(
        from = first.name(),
        to = second.name(),
        "retrying on another upstream: {reason}"
    );
    drop(result);
    attempt(
        proxy,
        &parts,
        &second,
        OutBody::Bytes(bytes),
        deadline,
        limit,
        kind,
        model,
        trace,
    )
    .await
}

/// What a request holds on its upstream until its response body ends: its place
/// in the host's in-flight count and, for a generation, one of the model's slots.
#[derive(Debug)]
pub(crate) struct Lease {
    _in_flight: InFlight,
    slot: Option<Slot>,
    /// For a request that names an installed model: what to learn from its answer.
    observe: Option<Observe>,
    /// Where what the exchange learns is written, for the request's metrics.
    trace: Trace,
}

/// What the end of a model's answer tells: whether it paid a load (a cold start)
/// and how long that took.
#[derive(Debug)]
struct Observe {
    model: Arc<str>,
    /// The host did not have the model loaded when the request was sent (the
    /// answer for `/v1`, whose bodies carry no `load_duration`).
    cold_hint: bool,
    /// From sending the request to the upstream's response headers.
    head_after: Duration,
}

/// One request to one upstream, waiting for its response headers until `deadline`.
/// A generation (`model` known) first waits for one of the model's slots on this
/// host, in arrival order, bounded by the queue's length and wait.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    proxy: &Proxy,
    parts: &http::request::Parts,
    upstream: &Arc<Upstream>,
    body: OutBody,
    deadline: tokio::time::Instant,
    limit: Option<u64>,
    kind: RouteKind,
    model: Option<&str>,
    trace: &Trace,
) -> Result<(reqwest::Response, Lease), Error> {
    let slot = match model {
        Some(model) if proxy.slots => {
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
        && kind.is_openai()
        && let Some(keep_alive) = proxy.warmth.pinned(model)
        && !upstream.has_loaded(model)
        && let Some(installed) = upstream.models.snapshot().installed.get(model).cloned()
    {
        let load = crate::warmth::load(
            &proxy.client,
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
        proxy.metrics.models.request(model);
    }
    trace.update(|t| {
        t.host = Some(Arc::from(upstream.name()));
        t.model = installed.map(Arc::from);
    });
    let cold_hint = installed.is_some_and(|m| !upstream.has_loaded(m));
    let sent_at = Instant::now();
    let in_flight = upstream.begin();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut headers = forwardable(&parts.headers);
    if matches!(body, OutBody::Bytes(_)) {
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut builder = proxy
        .client
        .request(parts.method.clone(), upstream.target(path_and_query))
        .headers(headers);
    let fault = Arc::new(BodyFault::default());
    match body {
        OutBody::Stream(body) if body.size_hint().exact() != Some(0) => {
            let limited = LimitedBody::new(
                body,
                limit.unwrap_or(u64::MAX),
                proxy.body_timeout,
                Arc::clone(&fault),
            );
            builder = builder.body(reqwest::Body::wrap_stream(limited));
        }
        OutBody::Stream(_) => {}
        OutBody::Bytes(bytes) if bytes.is_empty() => {}
        // A body held whole may differ from what the client declared (a pinned
        // keep_alive): its length is the body's own, set by the client library.
        OutBody::Bytes(bytes) => builder = builder.body(bytes),
    }

    proxy.metrics.upstream_request();
    let result = match tokio::time::timeout_at(deadline, builder.send()).await {
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
            let lease = Lease {
                _in_flight: in_flight,
                slot,
                observe: installed.map(|model| Observe {
                    model: Arc::from(model),
                    cold_hint,
                    head_after,
                }),
                trace: Arc::clone(trace),
            };
            Ok((response, lease))
        }
        Ok(Err(err)) => Err(fault
            .error(proxy, limit.unwrap_or(u64::MAX))
            .unwrap_or_else(|| classify(proxy, upstream, &err))),
        Err(_elapsed) => Err(ProxyError::FirstByteTimeout {
            upstream: upstream.name().to_owned(),
            after: proxy.first_byte_timeout,
        }
        .into()),
    };
    // The breaker counts the host's failures: no connection, no timely answer, or a
    // 5xx. A body that was too large or a client that broke its upload is not the
    // host's fault and counts as nothing.
    match &result {
        Ok((response, _)) if response.status().is_server_error() => permit.failure(),
        Ok(_) => permit.success(),
        Err(Error::Proxy(
            ProxyError::BodyTooLarge { .. }
            | ProxyError::BodyTimeout { .. }
            | ProxyError::ClientBody(_),
        )) => drop(permit),
        Err(_) => permit.failure(),
    }
    result
}

/// Turns a reqwest failure into the error the client should see.
fn classify(proxy: &Proxy, upstream: &Upstream, err: &reqwest::Error) -> Error {
    let name = upstream.name().to_owned();
    if err.is_connect() {
        if err.is_timeout() {
            upstream.mark_down(format!(
                "connect timed out after {}",
                humantime::format_duration(proxy.connect_timeout)
            ));
            return ProxyError::ConnectTimeout {
                upstream: name,
                after: proxy.connect_timeout,
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
    if err.is_body() || err.is_request() && is_client_body_error(err) {
        return ProxyError::ClientBody(describe(err)).into();
    }
    ProxyError::Protocol {
        upstream: name,
        reason: describe(err),
    }
    .into()
}

/// Whether the failure came from reading the client's request body.
fn is_client_body_error(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<axum::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The innermost cause of an error, as a short lower-case phrase
/// ("connection refused"), which is what a user can act on.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &(dyn std::error::Error + 'static) = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_owned(),
    }
}

/// Builds the client's response around the upstream's, streaming its body.
pub(crate) fn into_client_response(
    proxy: &Proxy,
    upstream: reqwest::Response,
    flavor: Flavor,
    finish: Finish,
    lease: Lease,
) -> Response {
    let status = upstream.status();
    let mut headers = forwardable(upstream.headers());
    let body = UpstreamBody::new(proxy, upstream, &headers, flavor, lease);
    let finish = finish.on_drop(status.as_u16());
    headers.insert(SERVER_TIMING, finish.server_timing());
    let mut response = Response::new(Body::from_stream(Measured::new(body, finish)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The response header with the request's phases (milliseconds): Warmline's own
/// time, the queue wait, the upstream's time to its headers, and a model load
/// Warmline waited for itself.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Copies the headers that belong to the message rather than to the connection.
pub(crate) fn forwardable(headers: &HeaderMap) -> HeaderMap {
    // Headers named in `Connection:` are hop-by-hop too (RFC 9110 §7.6.1).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_hop_by_hop(name) || named.contains(name) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
            | "transfer-encoding"
            | "host"
            | "origin"
    )
}

/// How a response body is framed, which decides how a broken stream is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Ndjson,
    Sse,
    Other,
}

impl Framing {
    pub(crate) fn of(headers: &HeaderMap) -> Framing {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/x-ndjson") {
            Framing::Ndjson
        } else if content_type.starts_with("text/event-stream") {
            Framing::Sse
        } else {
            Framing::Other
        }
    }
}

/// What the upstream side of a request learned, for its metrics: written by
/// `attempt` and the response body, read when the request is recorded.
#[derive(Debug, Default, Clone)]
pub(crate) struct UpstreamFacts {
    pub(crate) host: Option<Arc<str>>,
    /// The installed model the request named.
    pub(crate) model: Option<Arc<str>>,
    pub(crate) queue: Option<Duration>,
    /// A load Warmline waited for before sending (a pinned `/v1` load).
    pub(crate) pinned_load: Option<Duration>,
    /// From sending to the upstream's response headers.
    pub(crate) upstream_head: Option<Duration>,
    /// The load the answer paid (a cold start), and its output tokens.
    pub(crate) load: Option<Duration>,
    pub(crate) tokens: Option<(u64, Duration)>,
    /// The stream broke after its status was sent.
    pub(crate) broken: bool,
}

/// Shared between a request's `Finish` and its upstream exchange (a few short,
/// uncontended lock sections per request).
#[derive(Debug, Default)]
pub(crate) struct TraceCell(std::sync::Mutex<UpstreamFacts>);

pub(crate) type Trace = Arc<TraceCell>;

impl TraceCell {
    pub(crate) fn update(&self, change: impl FnOnce(&mut UpstreamFacts)) {
        if let Ok(mut facts) = self.0.lock() {
            change(&mut facts);
        }
    }

    pub(crate) fn get(&self) -> UpstreamFacts {
        self.0.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// The status recorded for a request whose client went away before its
/// response headers (nginx's "client closed request").
pub const CLIENT_CLOSED: u16 = 499;

/// Records a request's outcome in the metrics exactly once: when dropped.
#[derive(Debug)]
pub(crate) struct Finish {
    metrics: Arc<Metrics>,
    kind: RouteKind,
    status: u16,
    started: Instant,
    /// Told when a model-changing request succeeded (the cache re-reads digests).
    models_changed: Option<Arc<tokio::sync::Notify>>,
    /// The upstream exchange's facts (the flight's, for a shared one).
    pub(crate) trace: Trace,
    /// What the cache did (`hit`, `miss`, `coalesced`, `bypass`).
    pub(crate) cache: Option<&'static str>,
    /// A coalesced follower: the load and tokens belong to the leader.
    pub(crate) follower: bool,
    head_at: Option<Instant>,
    first_byte: Option<Instant>,
    broken: bool,
}

impl Finish {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        kind: RouteKind,
        started: Instant,
        models_changed: Option<Arc<tokio::sync::Notify>>,
    ) -> Finish {
        Finish {
            metrics,
            kind,
            status: 0,
            started,
            models_changed,
            trace: Arc::default(),
            cache: None,
            follower: false,
            head_at: None,
            first_byte: None,
            broken: false,
        }
    }

    /// Records the outcome now: the response is whole (an error, a cache hit).
    pub(crate) fn record(mut self, status: u16) {
        let now = Instant::now();
        self.status = status;
        self.head_at = Some(now);
        self.first_byte = Some(now);
    }

    /// The response headers are ready now; the outcome is recorded when the
    /// returned value (held by the body) is dropped.
    pub(crate) fn on_drop(mut self, status: u16) -> Finish {
        self.status = status;
        self.head_at = Some(Instant::now());
        self
    }

    /// Warmline's own time so far, without the upstream's and the queue's.
    fn overhead(&self, facts: &UpstreamFacts) -> Duration {
        let until = self.head_at.unwrap_or_else(Instant::now);
        let spent = until.saturating_duration_since(self.started);
        [facts.upstream_head, facts.queue, facts.pinned_load]
            .into_iter()
            .flatten()
            .fold(spent, Duration::saturating_sub)
    }

    /// The `Server-Timing` header for the response about to be sent.
    pub(crate) fn server_timing(&self) -> HeaderValue {
        let facts = self.trace.get();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut parts = vec![format!("overhead;dur={:.3}", ms(self.overhead(&facts)))];
        if let Some(queue) = facts.queue {
            parts.push(format!("queue;dur={:.3}", ms(queue)));
        }
        if let Some(load) = facts.pinned_load {
            parts.push(format!("load;dur={:.3}", ms(load)));
        }
        if let Some(head) = facts.upstream_head {
            parts.push(format!("upstream;dur={:.3}", ms(head)));
        }
        if let Some(cache) = self.cache {
            parts.push(format!("cache;desc={cache}"));
        }
        HeaderValue::from_str(&parts.join(", ")).unwrap_or(HeaderValue::from_static("overhead"))
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let facts = self.trace.get();
        let started = self.started;
        let since = |at: Option<Instant>| at.map(|at| at.saturating_duration_since(started));
        let broken = self.broken || facts.broken;
        // No status yet: the client left before the response headers (counted
        // as nginx does, 499 "client closed request", not as an error of ours).
        let status = if self.status == 0 {
            CLIENT_CLOSED
        } else {
            self.status
        };
        self.metrics.finished(crate::metrics::Event {
            kind: self.kind,
            status,
            failed: status >= 500 || broken,
            latency: started.elapsed(),
            ttft: since(self.first_byte),
            overhead: self.head_at.map(|_| self.overhead(&facts)),
            queue: facts.queue,
            load: if self.follower { None } else { facts.load },
            cache: self.cache,
            model: facts.model,
            host: facts.host,
            tokens: if self.follower { None } else { facts.tokens },
        });
        if let Some(changed) = &self.models_changed
            && (200..300).contains(&self.status)
        {
            changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way to the client, holding the request's `Finish`
    /// until it ends: notes the first byte (time to first token) and a break.
    pub(crate) struct Measured<S> {
        #[pin]
        inner: S,
        finish: Finish,
    }
}

impl<S> Measured<S> {
    pub(crate) fn new(inner: S, finish: Finish) -> Measured<S> {
        Measured { inner, finish }
    }
}

impl<S, E> Stream for Measured<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let polled = this.inner.poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) if !chunk.is_empty() => {
                this.finish.first_byte.get_or_insert_with(Instant::now);
            }
            Poll::Ready(Some(Err(_))) => this.finish.broken = true,
            _ => {}
        }
        polled
    }
}

/// What went wrong with a client's request body, learned inside the body stream
/// and read by whoever sees the resulting error.
#[derive(Debug, Default)]
pub(crate) struct BodyFault(AtomicU8);

const FAULT_TOO_LARGE: u8 = 1;
const FAULT_TOO_SLOW: u8 = 2;

impl BodyFault {
    /// The error to answer with, if the body was at fault.
    fn error(&self, proxy: &Proxy, limit: u64) -> Option<Error> {
        match self.0.load(Relaxed) {
            FAULT_TOO_LARGE => Some(ProxyError::BodyTooLarge { limit }.into()),
            FAULT_TOO_SLOW => Some(
                ProxyError::BodyTimeout {
                    after: proxy.body_timeout,
                }
                .into(),
            ),
            _ => None,
        }
    }
}

pin_project_lite::pin_project! {
    /// A client's request body, cut off once it exceeds the limit or stalls.
    struct LimitedBody<S> {
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
    fn new(body: Body, limit: u64, stall_after: Duration, fault: Arc<BodyFault>) -> Self {
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
                let next = crate::clock::after(*this.stall_after);
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

/// The upstream's response body on its way to the client, chunk by chunk, with the
/// idle timeout and the end-of-stream rules from the module docs.
pub(crate) struct UpstreamBody {
    inner: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
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
    tail: Option<crate::timings::Tail>,
    /// The upstream's `Content-Length`, and the bytes seen: a body of known
    /// length is complete once they match (the server writing it to the client
    /// stops polling then, before the stream says it ended).
    expected: Option<u64>,
    seen: u64,
    lease: Lease,
}

impl UpstreamBody {
    pub(crate) fn new(
        proxy: &Proxy,
        upstream: reqwest::Response,
        headers: &HeaderMap,
        flavor: Flavor,
        lease: Lease,
    ) -> UpstreamBody {
        let observe = upstream.status().is_success() && lease.observe.is_some();
        UpstreamBody {
            tail: observe.then(crate::timings::Tail::default),
            expected: upstream.content_length(),
            seen: 0,
            inner: upstream.bytes_stream().boxed(),
            idle: Box::pin(tokio::time::sleep(proxy.idle_timeout)),
            idle_timeout: proxy.idle_timeout,
            framing: Framing::of(headers),
            flavor,
            ended_with_newline: true,
            done: false,
            clean: false,
            metrics: Arc::clone(&proxy.metrics),
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
    fn broken(
        &mut self,
        kind: &'static str,
        message: String,
    ) -> Poll<Option<Result<Bytes, BoxError>>> {
        self.done = true;
        self.metrics.gateway_error(kind);
        self.lease.trace.update(|t| t.broken = true);
        tracing::warn!(kind, "{message}");
        match self.framing {
            Framing::Ndjson if self.flavor == Flavor::Ollama => {
                let mut line = Vec::with_capacity(message.len() + 16);
                if !self.ended_with_newline {
                    line.push(b'\n');
                }
                line.extend_from_slice(
                    serde_json::json!({ "error": message })
                        .to_string()
                        .as_bytes(),
                );
                line.push(b'\n');
                Poll::Ready(Some(Ok(Bytes::from(line))))
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
                let deadline = crate::clock::after(self.idle_timeout);
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
                let upstream = err
                    .url()
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_else(|| "upstream".to_owned());
                let message = format!(
                    "upstream {upstream} broke off the response: {}",
                    describe(&err)
                );
                self.broken("stream_aborted", message)
            }
            Poll::Ready(None) => {
                self.done = true;
                self.clean = true;
                self.observe_end();
                Poll::Ready(None)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let message = format!(
                        "upstream sent nothing for {} mid-response (timeouts.idle)",
                        humantime::format_duration(self.idle_timeout)
                    );
                    self.broken("idle_timeout", message)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

use std::future::Future as _;

/// A connector layer that counts new upstream connections, so `/warmline/stats`
/// can show how well the pool is reused.
#[derive(Debug, Clone)]
struct CountConnects(Arc<AtomicU64>);

impl<S> tower::Layer<S> for CountConnects {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            count: Arc::clone(&self.0),
        }
    }
}

#[derive(Debug, Clone)]
struct Counted<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.count.fetch_add(1, Relaxed);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::HOST, HeaderValue::from_static("localhost:11435"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let out = forwardable(&headers);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn describe_gives_the_innermost_cause() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        assert_eq!(describe(&io), "connection refused");
    }

    #[test]
    fn framing_follows_content_type() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        assert_eq!(Framing::of(&headers), Framing::Ndjson);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        assert_eq!(Framing::of(&headers), Framing::Sse);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(Framing::of(&headers), Framing::Other);
    }
}
