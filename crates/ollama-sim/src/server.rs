//! The HTTP surface: the route table, the middleware stack, and the accept
//! loop that serves it with hyper.
//!
//! ```text
//! request ─► access log   (outermost: logs 403s and stalls with full latency; only if enabled)
//!          ─► count        (every request per route, rejected ones too)
//!          ─► CORS         (Ollama runs gin-contrib/cors first)
//!          ─► Host check   (DNS-rebinding guard, loopback listeners only)
//!          ─► stall        (first_byte_stall right before the handler; not /_sim)
//!          ─► route ─► handler
//! ```
//!
//! Unknown paths answer Gin's `404 page not found`, known paths with the
//! wrong method `405 method not allowed` (text/plain), and a trailing slash
//! on a known path is redirected like Gin's `RedirectTrailingSlash`. Unlike
//! axum's default, `HEAD` is only served where Ollama registers it.
//!
//! The accept loop runs one hyper HTTP/1.1 connection per task (no per-read
//! timeouts: Go's server has none), sets `TCP_NODELAY` so small frames of a
//! stream leave at once, and on shutdown drops every connection without
//! draining, as `ollama serve` does on SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, head, post};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::ServiceExt as _;

use crate::accesslog::{Entry, LoggedBody};
use crate::counters::ROUTES;
use crate::security::{self, CorsVerdict, HostVerdict};
use crate::state::App;
use crate::{admin, embeddings, inference, models, openai, pull, wire};

/// The peer address of a connection, for the access log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Request bodies Ollama would accept are unbounded; keep a sane cap.
const BODY_LIMIT: usize = 256 * 1024 * 1024;

/// A GET route that, like Gin, does not answer HEAD.
fn get_only<H, T>(handler: H) -> MethodRouter<App>
where
    H: axum::handler::Handler<T, App>,
    T: 'static,
{
    get(handler).head(method_not_allowed)
}

/// Builds the complete router for `app`.
pub(crate) fn router(app: App) -> Router {
    let routes = Router::new()
        .route("/", get(models::root))
        .route("/api/version", get(models::version))
        .route("/api/status", get_only(models::status))
        .route("/api/tags", get(models::tags))
        .route("/api/ps", get_only(models::ps))
        .route("/api/show", post(models::show))
        .route("/api/generate", post(inference::generate))
        .route("/api/chat", post(inference::chat))
        .route("/api/embed", post(embeddings::embed))
        .route("/api/embeddings", post(embeddings::embeddings))
        .route("/api/pull", post(pull::pull))
        .route("/api/push", post(pull::push))
        .route("/api/create", post(models::create))
        .route("/api/copy", post(models::copy))
        .route("/api/delete", delete(models::delete))
        .route(
            "/api/blobs/{digest}",
            head(models::head_blob).post(models::post_blob),
        )
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::v1_embeddings))
        .route("/v1/models", get_only(openai::models))
        .route("/v1/models/{model}", get_only(openai::model))
        .route("/_sim/counters", get_only(admin::counters))
        .route("/_sim/reset", post(admin::reset))
        .route(
            "/_sim/knobs",
            get_only(admin::get_knobs).put(admin::put_knobs),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);

    let access_log = app
        .access_log
        .is_some()
        .then(|| middleware::from_fn_with_state(app.clone(), access_log));
    let stack = ServiceBuilder::new()
        // Outermost, so rejected and stalled requests are logged with their full latency.
        .option_layer(access_log)
        // Count before anything can reject, so 403s show up in the counters.
        .layer(middleware::from_fn_with_state(app.clone(), count))
        // Ollama registers gin-contrib/cors before its Host check.
        .layer(middleware::from_fn_with_state(app.clone(), cors))
        // DNS-rebinding guard before any handler work.
        .layer(middleware::from_fn_with_state(app.clone(), host_check))
        // Innermost: the stall delays the handler, hence the response headers.
        .layer(middleware::from_fn_with_state(app.clone(), stall));

    routes
        .layer(stack)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

async fn not_found(req: Request) -> Response {
    // Gin's RedirectTrailingSlash: /api/tags/ → /api/tags.
    let path = req.uri().path();
    let trimmed = path.trim_end_matches('/');
    if path.len() > 1 && trimmed.len() < path.len() && ROUTES.contains(&trimmed) {
        let status = if req.method() == Method::GET {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::TEMPORARY_REDIRECT
        };
        let mut location = trimmed.to_owned();
        if let Some(q) = req.uri().query() {
            location.push('?');
            location.push_str(q);
        }
        let mut resp = wire::empty(status);
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return resp;
    }
    wire::response(StatusCode::NOT_FOUND, wire::TEXT, "404 page not found")
}

async fn method_not_allowed() -> Response {
    wire::response(
        StatusCode::METHOD_NOT_ALLOWED,
        wire::TEXT,
        "405 method not allowed",
    )
}

async fn access_log(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(log) = app.access_log.clone() else {
        return next.run(req).await;
    };
    let entry = Entry {
        start: std::time::Instant::now(),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned()),
        peer: req.extensions().get::<PeerAddr>().map(|p| p.0),
    };
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    resp.map(|body| LoggedBody::wrap(body, log, entry, status))
}

async fn count(State(app): State<App>, req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    app.counters.request(matched);
    next.run(req).await
}

fn header_str(req: &Request, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn cors(State(app): State<App>, req: Request, next: Next) -> Response {
    let is_options = req.method() == Method::OPTIONS;
    let origin = header_str(&req, header::ORIGIN);
    let verdict = app
        .policy
        .cors(origin, header_str(&req, header::HOST), is_options);
    match verdict {
        CorsVerdict::NotCors => next.run(req).await,
        CorsVerdict::Deny => wire::empty(StatusCode::FORBIDDEN),
        CorsVerdict::Preflight => {
            let allow_origin = app.policy.preflight_origin(origin.unwrap_or_default());
            let mut resp = wire::empty(StatusCode::NO_CONTENT);
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(allow_origin) {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(security::ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(security::ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(security::MAX_AGE),
            );
            for v in [
                "Origin",
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers",
            ] {
                h.append(header::VARY, HeaderValue::from_static(v));
            }
            resp
        }
        CorsVerdict::Allow(allow_origin) => {
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&allow_origin) {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
            if allow_origin != "*" {
                h.append(header::VARY, HeaderValue::from_static("Origin"));
            }
            resp
        }
    }
}

async fn host_check(State(app): State<App>, req: Request, next: Next) -> Response {
    let is_options = req.method() == Method::OPTIONS;
    match app.policy.host(header_str(&req, header::HOST), is_options) {
        HostVerdict::Allow => next.run(req).await,
        HostVerdict::Preflight => wire::empty(StatusCode::NO_CONTENT),
        HostVerdict::Deny => wire::empty(StatusCode::FORBIDDEN),
    }
}

async fn stall(State(app): State<App>, req: Request, next: Next) -> Response {
    let delay = app.knobs.load().first_byte_stall;
    if !delay.is_zero() && !req.uri().path().starts_with("/_sim/") {
        tokio::time::sleep(delay).await;
    }
    next.run(req).await
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then closes
/// every open connection and returns.
/// Why a connection was closed without an answer (`drop_rate`); hyper closes a
/// connection whose service fails, writing nothing.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by drop_rate")
    }
}

impl std::error::Error for Dropped {}

/// Whether `drop_rate` applies: a generation request.
fn is_generation(req: &hyper::Request<Incoming>) -> bool {
    req.method() == hyper::Method::POST
        && matches!(
            req.uri().path(),
            "/api/chat" | "/api/generate" | "/v1/chat/completions" | "/v1/completions"
        )
}

pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    knobs: std::sync::Arc<crate::knobs::KnobStore>,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let shutdown = shutdown.clone();
        let knobs = std::sync::Arc::clone(&knobs);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                let drop_rate = knobs.load().drop_rate;
                let dropped =
                    drop_rate > 0.0 && is_generation(&req) && rand::random::<f64>() < drop_rate;
                let answer = router.clone().oneshot(req);
                async move {
                    if dropped {
                        return Err(Dropped);
                    }
                    answer.await.map_err(|never| match never {})
                }
            });
            let conn = http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
