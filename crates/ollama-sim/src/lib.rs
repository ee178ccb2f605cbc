//! An API-faithful, fast Ollama simulator that runs as a real daemon.
//!
//! `ollama-sim` answers Ollama's HTTP API (native `/api/*` and the OpenAI
//! compatible `/v1/*`) with the same JSON field order, framing, error texts
//! and scheduler behaviour as `ollama serve` 0.33 (as read from Ollama's source
//! and documentation) — but with fake models whose
//! speed and failures are knobs. It is Warmline's demo backend for people
//! without Ollama installed and the test daemon for the gateway.
//!
//! # Use it in-process
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ollama_sim::{Knobs, SimConfig, Simulator};
//! let sim = Simulator::bind("127.0.0.1:0".parse().unwrap(), SimConfig::default()).await?;
//! let base = sim.url(); // http://127.0.0.1:PORT
//! sim.set_knobs(Knobs { token_delay: std::time::Duration::from_millis(20), ..sim.knobs() });
//! // … drive it with any Ollama client …
//! assert_eq!(sim.counters().generations.cancelled, 0);
//! sim.shutdown().await;
//! # let _ = base; Ok(()) }
//! ```
//!
//! or as a daemon: `ollama-sim serve` (or the binary invoked as `ollama`),
//! which honours `OLLAMA_HOST` and the other `OLLAMA_*` variables.
//!
//! # How a request flows
//!
//! ```text
//! hyper (server.rs) ─► access log ─► count ─► CORS ─► Host ─► stall ─► route
//!   /api/generate, /api/chat, /v1/… ─► inference.rs ─► scheduler.rs (load, slot)
//!                                                  └─► generation.rs (reply) ─► stream.rs
//!   /api/embed, /v1/embeddings ─► embeddings.rs ─► scheduler.rs
//!   /api/pull, /api/push, /api/create ─► pull.rs       /api/tags, /api/show, … ─► models.rs
//!   /_sim/… ─► admin.rs (counters, knobs)
//! ```
//!
//! # Modules
//!
//! * [`config`]: `SimConfig`, `OLLAMA_*` and `SIM_*` parsing;
//! * `knobs`, `counters`: run-time knobs and the counters snapshot;
//! * `catalog`: the fake models and the installed-model registry;
//! * `scheduler`: loads, parallel slots, pending queue, eviction, keep-alive;
//! * `generation`, `stream`, `inference`, `openai`, `embeddings`, `pull`,
//!   `models`: the endpoints;
//! * `api`, `body`, `wire`, `error`: wire types, Go-compatible decoding and
//!   encoding, and error mapping;
//! * `security`, `accesslog`, `server`: Host/CORS checks, Gin access log and
//!   the HTTP server; [`daemon`]: the `serve` command line.
//!
//! # Performance
//!
//! Requests do no per-request locking beyond a few uncontended mutex
//! sections in the scheduler, counters are atomics, catalog JSON is
//! pre-serialised, and streams are a state machine without a task per
//! request. See the crate README for measured numbers.

mod accesslog;
mod admin;
mod api;
mod body;
mod catalog;
mod clock;
pub mod config;
mod counters;
pub mod daemon;
mod embeddings;
mod error;
mod frames;
mod generation;
mod inference;
mod keepalive;
mod knobs;
mod models;
mod openai;
mod pull;
#[cfg(test)]
mod router_tests;
mod run;
mod scheduler;
mod security;
mod server;
mod sha256;
mod state;
mod stream;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use api::VERSION;
pub use catalog::{catalog_names, default_models};
pub use config::{ListenAddr, OllamaEnv, SimConfig};
pub use counters::{Counters, GenerationCounters, ModelCounters};
pub use keepalive::KeepAlive;
pub use knobs::Knobs;

use state::App;

/// Entry point: starts simulator instances.
#[derive(Debug, Clone, Copy)]
pub struct Simulator;

impl Simulator {
    /// Binds `addr` (port 0 picks a free port) and starts serving on the
    /// current tokio runtime. Host-header checks apply when `addr` is a
    /// loopback address, as in Ollama.
    pub async fn bind(addr: SocketAddr, config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(addr).await?;
        Simulator::serve(listener, config)
    }

    /// Starts serving on an already bound listener.
    pub fn serve(listener: TcpListener, config: SimConfig) -> std::io::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let app = App::new(config, Some(addr.ip().is_loopback()));
        let router = server::router(app.clone());
        let task = tokio::spawn(server::serve(
            listener,
            router,
            app.shutdown.clone(),
            Arc::clone(&app.knobs),
        ));
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                addr,
                app,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// A router over a fresh simulator with no listener (no Host checks), for
/// `tower::ServiceExt::oneshot` tests or mounting inside another app. Its
/// background tasks run on the current runtime until the runtime stops.
pub fn router(config: SimConfig) -> axum::Router {
    server::router(App::new(config, None))
}

/// Control handle of a running simulator; clones share the instance.
///
/// Dropping every handle does not stop the server; call
/// [`shutdown`](SimHandle::shutdown).
#[derive(Debug, Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    addr: SocketAddr,
    app: App,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SimHandle {
    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Base URL for clients, e.g. `http://127.0.0.1:PORT`; an unspecified
    /// bind address (`0.0.0.0`, `::`) is reported as loopback.
    pub fn url(&self) -> String {
        let addr = self.inner.addr;
        match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                format!("http://127.0.0.1:{}", addr.port())
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                format!("http://[::1]:{}", addr.port())
            }
            _ => format!("http://{addr}"),
        }
    }

    /// A snapshot of every counter.
    pub fn counters(&self) -> Counters {
        self.inner.app.counters.snapshot()
    }

    /// Zeroes the counters (like `POST /_sim/reset`).
    pub fn reset_counters(&self) {
        self.inner.app.counters.reset();
    }

    /// Replaces the knobs; applies to requests that start afterwards.
    /// Rates are clamped to 0..=1.
    pub fn set_knobs(&self, mut knobs: Knobs) {
        knobs.error_rate = knobs.error_rate.clamp(0.0, 1.0);
        knobs.abort_rate = knobs.abort_rate.clamp(0.0, 1.0);
        knobs.drop_rate = knobs.drop_rate.clamp(0.0, 1.0);
        self.inner.app.knobs.store(knobs);
    }

    /// The current knobs.
    pub fn knobs(&self) -> Knobs {
        (*self.inner.app.knobs.load()).clone()
    }

    /// Stops accepting, cuts open connections (no draining, like SIGTERM on
    /// `ollama serve`), stops the scheduler and waits for the server task.
    pub async fn shutdown(self) {
        self.inner.app.shutdown.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
