//! The gateway: binds the listener, builds the request stack, runs the background
//! tasks, and hands out a [`GatewayHandle`] — the one object both front ends (the
//! headless CLI and the desktop app) drive.
//!
//! The request stack, outermost first (see [`router`]):
//!
//! ```text
//!   client ──▶ origin + Host check / CORS ──▶ rate limit per client IP (429)
//!                                  ──▶ bearer token, when configured (401)
//!                                  ──▶ gzip/brotli of whole answers (if asked)
//!                                  ──▶ /warmline/*, /metrics  (Warmline's own)
//!                                  └─▶ proxy ─┬─▶ cacheable POST: cache / coalescing
//!                                             └─▶ upstream Ollama (least busy)
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{
    DefaultPredicate, NotForContentType, Predicate, SizeAbove,
};

use crate::admission::ClientLimiter;
use crate::auth::{self, Tokens};
use crate::cache::{self, CacheStats, Purged};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::{Metrics, Stats};
use crate::origin::{self, OriginPolicy};
use crate::proxy::{self, Proxy};

/// How often model digests are re-read from `/api/tags` (a pull or delete through
/// the gateway refreshes them at once).
const DIGEST_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);
use crate::upstream::{self, UpstreamHealth};

/// Warmline's version, reported by `/warmline/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// State shared by every request handler.
#[derive(Debug)]
pub struct Shared {
    pub(crate) proxy: Arc<Proxy>,
    listen: SocketAddr,
    limiter: Arc<ClientLimiter>,
}

impl Shared {
    pub(crate) fn prometheus(&self) -> String {
        let mut out = self
            .proxy
            .metrics
            .render_prometheus(&self.proxy.upstreams.health());
        cache::render_prometheus(self.proxy.cache.as_deref(), &mut out);
        out
    }

    pub(crate) async fn cache_stats(&self) -> CacheStats {
        match &self.proxy.cache {
            Some(cache) => cache.stats().await,
            None => CacheStats {
                enabled: false,
                entries: 0,
                bytes: 0,
                max_bytes: 0,
                hits: 0,
                misses: 0,
                coalesced: 0,
                bypass: 0,
                stores: 0,
                in_flight: 0,
                redis: None,
            },
        }
    }

    pub(crate) async fn purge_cache(&self, model: Option<&str>) -> Purged {
        match &self.proxy.cache {
            Some(cache) => cache.purge(model).await,
            None => Purged {
                model: model.map(str::to_owned),
                removed: 0,
                redis_removed: None,
            },
        }
    }

    pub(crate) fn health(&self) -> Health {
        let upstreams = self.proxy.upstreams.health();
        let up = upstreams
            .iter()
            .filter(|u| u.reachable && u.breaker.state == crate::breaker::State::Closed)
            .count();
        let status = if up == upstreams.len() {
            HealthStatus::Ok
        } else if up > 0 {
            HealthStatus::Degraded
        } else {
            HealthStatus::Down
        };
        Health {
            status,
            version: VERSION.to_owned(),
            listen: format!("http://{}", self.listen),
            upstreams,
        }
    }
}

/// Overall state, as `/warmline/health` reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every upstream is reachable.
    Ok,
    /// Some upstreams are unreachable; requests go to the others.
    Degraded,
    /// No upstream is reachable.
    Down,
}

/// The JSON served at `GET /warmline/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: HealthStatus,
    pub version: String,
    /// The URL clients point at.
    pub listen: String,
    pub upstreams: Vec<UpstreamHealth>,
}

/// Builds the request stack. Layers are applied outermost-last, so read the
/// `.layer` calls bottom-up for the order a request meets them.
fn router(shared: Arc<Shared>, origins: Arc<OriginPolicy>, tokens: Arc<Tokens>) -> Router {
    let limiter = Arc::clone(&shared.limiter);
    Router::new()
        .route("/warmline/health", get(admin::health))
        .route("/warmline/stats", get(admin::stats))
        .route("/metrics", get(admin::metrics))
        .route(
            "/warmline/cache",
            get(admin::cache).delete(admin::purge_cache),
        )
        // The whole /warmline/ namespace is ours: a typo there must not reach Ollama.
        .route("/warmline/{*rest}", any(admin::not_found))
        // Everything else is Ollama's, native or OpenAI-compatible, known or not.
        .fallback(|State(shared): State<Arc<Shared>>, request: Request| {
            proxy::forward(Arc::clone(&shared.proxy), request)
        })
        // Compression of whole answers only: never a stream (NDJSON, SSE), never an
        // answer the upstream already encoded, never a small one. Byte-faithful
        // still holds after decoding, and clients that do not ask get no change.
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new()
                    .and(NotForContentType::const_new("application/x-ndjson"))
                    .and(SizeAbove::new(COMPRESS_ABOVE)),
            ),
        )
        // Authentication before anything that serves or spends: an unauthenticated
        // request reaches no route, no cache entry and no upstream.
        .layer(axum::middleware::from_fn_with_state(tokens, auth::layer))
        // Rate limit per client address inside the origin check: a refused origin
        // or foreign Host spends no client's tokens.
        .layer(axum::middleware::from_fn_with_state(limiter, rate_limit))
        // Origin check outermost: a refused browser origin reaches neither an admin
        // route nor an upstream, and CORS headers are added exactly once.
        .layer(axum::middleware::from_fn_with_state(origins, origin::layer))
        .with_state(shared)
}

/// Middleware: 429 with `Retry-After` for a client address over its rate.
async fn rate_limit(
    State(limiter): State<Arc<ClientLimiter>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match limiter.check(client.ip()) {
        Ok(()) => next.run(request).await,
        Err(limited) => {
            Error::from(limited).to_response(crate::error::Flavor::of(request.uri().path()))
        }
    }
}

/// Answers smaller than this are sent as they are: compressing them costs more
/// time than the bytes it saves on a local link.
const COMPRESS_ABOVE: u16 = 1024;

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Binds `config.listen` and starts serving in background tasks.
    pub async fn start(config: Config) -> Result<GatewayHandle, Error> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        Gateway::serve(listener, config)
    }

    /// Serves on an already bound listener (`config.listen` is ignored).
    pub fn serve(listener: TcpListener, config: Config) -> Result<GatewayHandle, Error> {
        let listen = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics = Arc::new(Metrics::new());
        let proxy = Arc::new(Proxy::new(&config, metrics)?);
        let limiter = Arc::new(ClientLimiter::new(config.rate_limit));
        let shared = Arc::new(Shared {
            proxy: Arc::clone(&proxy),
            listen,
            limiter: Arc::clone(&limiter),
        });

        let mut background = vec![tokio::spawn(upstream::run_health_checks(
            Arc::clone(&proxy.upstreams),
            proxy.client.clone(),
            config.timeouts.health_interval,
            config
                .timeouts
                .connect
                .max(std::time::Duration::from_secs(1)),
        ))];
        background.push(tokio::spawn(upstream::run_model_refresh(
            Arc::clone(&proxy.upstreams),
            proxy.client.clone(),
            config.timeouts.health_interval,
        )));
        // Forget clients whose buckets are full again, so memory stays bounded.
        background.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                ticker.tick().await;
                limiter.housekeep();
            }
        }));
        if let Some(cache) = &proxy.cache {
            background.push(tokio::spawn(cache::refresh_digests(
                Arc::clone(cache),
                proxy.client.clone(),
                proxy
                    .upstreams
                    .hosts()
                    .iter()
                    .map(|h| h.base().to_owned())
                    .collect(),
                DIGEST_REFRESH,
                Arc::clone(&proxy.models_changed),
            )));
        }

        let (stop_tx, mut stop_rx) = watch::channel(false);
        let app = router(
            Arc::clone(&shared),
            Arc::new(OriginPolicy::new(&config.origins).with_host_check(listen.ip().is_loopback())),
            Arc::new(Tokens::new(config.tokens.clone())),
        );
        let listener = listener.tap_io(|tcp| {
            // Streams are many small writes: never let Nagle hold a token back.
            let _ = tcp.set_nodelay(true);
        });
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
        let server_task = tokio::spawn(async move {
            if let Err(err) = server.await {
                tracing::error!("gateway server stopped: {err}");
            }
        });

        tracing::info!(%listen, upstreams = ?config.upstreams.iter().map(url::Url::as_str).collect::<Vec<_>>(), "gateway started");
        Ok(GatewayHandle {
            inner: Arc::new(Inner {
                shared,
                drain: config.timeouts.drain,
                stop: stop_tx,
                tasks: Mutex::new(Some((server_task, background))),
            }),
        })
    }
}

/// A running gateway. Cheap to clone; every clone controls the same gateway.
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    drain: std::time::Duration,
    stop: watch::Sender<bool>,
    tasks: Mutex<Option<Tasks>>,
}

/// The server task and the background tasks (health checks, model lists and
/// digests, rate-limit housekeeping).
type Tasks = (JoinHandle<()>, Vec<JoinHandle<()>>);

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without a shutdown: don't leave tasks behind.
        if let Ok(mut tasks) = self.tasks.lock()
            && let Some((server, background)) = tasks.take()
        {
            server.abort();
            background.iter().for_each(JoinHandle::abort);
        }
    }
}

impl GatewayHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.listen
    }

    /// The URL clients point at, e.g. `http://127.0.0.1:11435`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// Overall status and each upstream's health.
    pub fn health(&self) -> Health {
        self.inner.shared.health()
    }

    /// Request counts and latency percentiles.
    pub fn stats(&self) -> Stats {
        self.inner.shared.proxy.metrics.stats()
    }

    /// The Prometheus exposition, as served at `/metrics`.
    pub fn prometheus(&self) -> String {
        self.inner.shared.prometheus()
    }

    /// Cache counters and sizes (`enabled: false` and zeros when the cache is off).
    pub async fn cache_stats(&self) -> CacheStats {
        self.inner.shared.cache_stats().await
    }

    /// Empties the cache, or only one model's entries, in both tiers.
    pub async fn purge_cache(&self, model: Option<&str>) -> Purged {
        self.inner.shared.purge_cache(model).await
    }

    /// Stops accepting connections, lets in-flight requests finish for up to
    /// `timeouts.drain`, then cuts whatever is left. Idempotent.
    pub async fn shutdown(&self) {
        let tasks = self.inner.tasks.lock().ok().and_then(|mut t| t.take());
        let Some((mut server, background)) = tasks else {
            return;
        };
        background.iter().for_each(JoinHandle::abort);
        let _ = self.inner.stop.send(true);
        if tokio::time::timeout(self.inner.drain, &mut server)
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight requests still running after {}; closing them",
                humantime::format_duration(self.inner.drain)
            );
            server.abort();
        }
        tracing::info!("gateway stopped");
    }
}
