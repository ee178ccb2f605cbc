//! The outer request stack, one function ([`Front::serve`]) read top to bottom in
//! the order a request meets it:
//!
//! ```text
//!   client ──▶ snapshot: the current Stack, taken once for the whole request
//!          ──▶ origin + Host check / CORS        (403, preflights answered)
//!          ──▶ rate limit per client IP          (429)
//!          ──▶ bearer token / admin credential   (401, 403)
//!          ├─▶ /warmline/*, /metrics: axum router (Warmline's own routes,
//!          │   refusals in Ollama's shape, gzip/brotli of whole answers)
//!          └─▶ everything else: the pipeline (see `pipeline`), with gzip/brotli
//!              of whole answers when the client asks
//!          ◀── Server-Timing on every answer; refusals counted in the metrics
//! ```
//!
//! The checks run as plain function calls rather than as one middleware each:
//! every `from_fn` layer and router level clones, boxes and moves the service
//! and future below it on every request, which measured about 50,000
//! instructions of a cache hit for the layers this used to be (callgrind,
//! `tests/bench/callgrind.sh`).

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::{any, get, post};
use tower::{Layer as _, ServiceExt as _};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{
    DefaultPredicate, NotForContentType, Predicate, SizeAbove,
};

use super::Shared;
use super::admin;
use super::stack::Stack;
use crate::error::Error;
use crate::wire::Flavor;
use crate::wire::peer::Peer;

/// Answers smaller than this are sent as they are: compressing them costs more
/// time than the bytes it saves on a local link.
const COMPRESS_ABOVE: u16 = 1024;

/// The stack a request runs under (a request extension for Warmline's own
/// routes, set by [`Front::serve`]).
#[derive(Debug, Clone)]
pub(crate) struct Current(pub(crate) Arc<Stack>);

/// The outer stack as one service: the checks of [`Front::serve`] for every
/// request, then Warmline's own routes (an axum router) or the pipeline.
///
/// The data plane does not go through axum's router: its one destination is the
/// pipeline, and each router level clones, boxes and moves the service and future
/// below it per request (callgrind: about 10,000 instructions of a cache hit).
#[derive(Clone)]
pub(crate) struct Front {
    shared: Arc<Shared>,
    /// Warmline's own routes, with compression and Ollama-shaped refusals.
    own: Router,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").finish_non_exhaustive()
    }
}

/// Builds the outer stack (see the module docs).
pub(crate) fn router(shared: Arc<Shared>) -> Front {
    let own = Router::new()
        .route("/warmline/health", get(admin::health))
        .route("/warmline/ready", get(admin::ready))
        .route("/warmline/stats", get(admin::stats))
        .route("/metrics", get(admin::metrics))
        .route(
            "/warmline/cache",
            get(admin::cache).delete(admin::purge_cache),
        )
        .route(
            "/warmline/settings",
            get(admin::settings).put(admin::update_settings),
        )
        .route("/warmline/reload", post(admin::reload))
        .route("/warmline/history", get(admin::history))
        .route("/warmline/requests", get(admin::requests))
        .route("/warmline/charts/{file}", get(admin::chart))
        .route("/warmline/logs", get(admin::logs))
        .route("/warmline/models", get(admin::models))
        .route("/warmline/models/{action}", post(admin::model_action))
        .route(
            "/warmline/warmth",
            get(admin::warmth).delete(admin::forget_warmth),
        )
        .route("/warmline/daemon", get(admin::daemon))
        .route("/warmline/daemon/logs", get(admin::daemon_logs))
        .route("/warmline/daemon/{action}", post(admin::daemon_action))
        // The whole /warmline/ namespace is ours: a typo there must not reach Ollama.
        .route("/warmline/{*rest}", any(admin::not_found))
        // Warmline's own routes answer every refusal in Ollama's JSON shape, also
        // those axum's extractors produce (a bad query, a body over the limit, a
        // wrong method): a client parses one error shape, whatever went wrong.
        .route_layer(from_fn(json_errors))
        // Tells the compression layer around it whether this request's
        // configuration allows compression (`compression.enabled`).
        .layer(from_fn(mark_compression))
        .layer(CompressionLayer::new().compress_when(Compressible))
        .with_state(Arc::clone(&shared));
    Front { shared, own }
}

/// The monitoring listener's routes (`monitoring.listen`): health, readiness and
/// metrics, open to anyone who reaches the address, and nothing else (404 in
/// Ollama's shape). None of them shows a prompt, a setting or a log, and none
/// changes anything.
pub(crate) fn monitoring(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/warmline/health", get(admin::health))
        .route("/warmline/ready", get(admin::ready))
        .route("/metrics", get(admin::metrics))
        .fallback(admin::not_found)
        .layer(from_fn(json_errors))
        .with_state(shared)
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The request's future goes straight into its box (no wrapping async
        // block, which would hold a second copy of it).
        Box::pin(futures_util::FutureExt::map(
            self.clone().serve(request),
            Ok,
        ))
    }
}

impl Front {
    /// Everything a request meets, in order (see the module docs).
    async fn serve(self, mut request: Request) -> Response {
        let started = std::time::Instant::now();
        // One configuration for the whole request, even across a reload.
        let stack = self.shared.stack.load_full();
        let path = request.uri().path();
        let own = path == "/metrics" || path.starts_with("/warmline/");
        let kind = crate::wire::route::RouteKind::of(path);
        // Origin and Host before anything else that answers: a refused browser
        // origin reaches neither an admin route nor an upstream, and CORS headers
        // are added exactly once (to refusals below too).
        // Whether the pipeline served (and so recorded) the request.
        let mut recorded = false;
        let response = match crate::edge::origin::admit(&stack.origins, &mut request) {
            Err(answer) => *answer,
            Ok(origin) => {
                let mut response = match admit(&stack, &mut request) {
                    Err(refused) => *refused,
                    Ok(change) => {
                        let response = if own {
                            request.extensions_mut().insert(Current(Arc::clone(&stack)));
                            // Boxed, like the compressed path below: the data
                            // plane's future stays small, and a hit's is moved
                            // into its box without copying these.
                            let routed = Box::pin(self.own.oneshot(request)).await;
                            routed.unwrap_or_else(|never| match never {})
                        } else {
                            recorded = true;
                            data_plane(&stack, request).await
                        };
                        if let Some(change) = change {
                            change.log(response.status());
                        }
                        response
                    }
                };
                if let Some(origin) = origin {
                    crate::edge::origin::decorate(&mut response, origin);
                }
                response
            }
        };
        observe(&stack, own, recorded, kind, started, response)
    }
}

/// Ollama's routes, native or OpenAI-compatible, known or not: the pipeline of
/// the request's stack. Whole answers are compressed when the client asks and
/// the configuration allows (never a stream, never an answer the upstream
/// already encoded, never a small one; byte-faithful still holds after
/// decoding); a client that does not ask costs no compression layer at all.
async fn data_plane(stack: &Stack, request: Request) -> Response {
    let pipeline = Arc::clone(&stack.pipeline);
    // `identity` alone (what Python's http.client sends) asks for nothing.
    let asks = request
        .headers()
        .get(http::header::ACCEPT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if !(asks && stack.config.compression) {
        return crate::pipeline::forward(pipeline, request).await;
    }
    let forward = tower::service_fn(move |request: Request| {
        let pipeline = Arc::clone(&pipeline);
        async move {
            let response = crate::pipeline::forward(pipeline, request).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let compressed = Box::pin(
        CompressionLayer::new()
            .compress_when(Compressible)
            .layer(forward)
            .oneshot(request),
    )
    .await;
    match compressed {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// The checks inside the origin check: the rate limit, then the credential.
fn admit(
    stack: &Stack,
    request: &mut Request,
) -> Result<Option<crate::edge::access::ControlChange>, Box<Response>> {
    // Rate limit per client address inside the origin check: a refused origin or
    // foreign Host spends no client's tokens.
    if let Some(peer) = request.extensions().get::<Peer>()
        && let Err(limited) = stack.limiter.check(peer.addr.ip())
    {
        return Err(Box::new(
            Error::from(limited).to_response(Flavor::of(request.uri().path())),
        ));
    }
    // Authentication before anything that serves or spends: an unauthenticated
    // request reaches no route, no cache entry and no upstream.
    crate::edge::access::admit_request(&stack.tokens, request)
}

/// `Server-Timing` on every answer, and the metrics of requests the pipeline
/// never saw.
///
/// The pipeline writes its own `Server-Timing` (overhead, queue, load, upstream)
/// and records its requests; an answer Warmline gave by itself — a refusal, an
/// admin route, `/metrics` — spent all its time in Warmline, so it says
/// `overhead` alone. Refused client requests count in the request and status
/// metrics like answered ones; Warmline's own routes do not (a Prometheus
/// scrape is not traffic).
fn observe(
    stack: &Stack,
    own: bool,
    recorded: bool,
    kind: crate::wire::route::RouteKind,
    started: std::time::Instant,
    mut response: Response,
) -> Response {
    // Read only for answers the pipeline did not time (it times its own).
    let took = || started.elapsed();
    if !response
        .headers()
        .contains_key(crate::wire::headers::SERVER_TIMING)
    {
        let took = took();
        let mut value = Vec::with_capacity(24);
        crate::wire::headers::push_timing(&mut value, "overhead", Some(took));
        if let Ok(value) = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
            response
                .headers_mut()
                .insert(crate::wire::headers::SERVER_TIMING, value);
        }
    }
    // A refusal made out here (origin, Host, rate limit) is counted once, by its
    // kind; the pipeline counts its own.
    if !recorded && let Some(kind) = response.extensions().get::<crate::error::ErrorKind>() {
        stack.pipeline.metrics.gateway_error(kind.0);
    }
    if !own && !recorded {
        let took = took();
        let metrics = &stack.pipeline.metrics;
        metrics.request_started(kind);
        metrics.finished(crate::metrics::Event {
            overhead: Some(took),
            ttft: Some(took),
            ..crate::metrics::Event::basic(kind, response.status().as_u16(), took)
        });
    }
    response
}

/// Middleware: rewrites a plain-text (or empty) error answer into Ollama's JSON
/// error shape, keeping its status.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Extractor rejections are a line of text: read a little, never a stream.
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_ascii_lowercase(),
    };
    let rejected = crate::error::RouteError::Rejected {
        status,
        message: text,
    };
    let mut json = Error::from(rejected).to_response(Flavor::Ollama);
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            json.headers_mut().insert(name, value.clone());
        }
    }
    json
}

/// The stack a request runs under.
fn current(request: &Request) -> Option<Arc<Stack>> {
    request
        .extensions()
        .get::<Current>()
        .map(|c| Arc::clone(&c.0))
}

/// Which answers are compressed: only while `compression.enabled` is on for the
/// request's stack, only above [`COMPRESS_ABOVE`] bytes, never a stream (NDJSON,
/// SSE), an image or gRPC. The size is judged first: most answers are small, and
/// it needs no header parsing.
#[derive(Debug, Clone, Copy)]
struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        let enabled = response.extensions().get::<Compress>().is_none_or(|c| c.0);
        enabled
            && SizeAbove::new(COMPRESS_ABOVE).should_compress(response)
            && DefaultPredicate::new()
                .and(NotForContentType::const_new("application/x-ndjson"))
                .should_compress(response)
    }
}

/// Whether a response may be compressed (a response extension, set by
/// [`mark_compression`] for every response, read by [`Compressible`]).
#[derive(Debug, Clone, Copy)]
struct Compress(bool);

/// Middleware (inside compression): copies `compression.enabled` of the request's
/// stack onto its response.
async fn mark_compression(request: Request, next: Next) -> Response {
    let enabled = current(&request).is_none_or(|s| s.config.compression);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Compress(enabled));
    response
}
