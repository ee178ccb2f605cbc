//! The gateway: binds the listener, builds the request stack, runs the background
//! tasks, and hands out a [`GatewayHandle`] — the one object both front ends (the
//! headless CLI and the desktop app) drive.
//!
//! The request stack is built in [`router`] (read it top to bottom). What a
//! configuration decides lives in one [`stack::Stack`] behind an `ArcSwap`: a
//! reload ([`GatewayHandle::reload`], [`GatewayHandle::apply`]) validates the
//! whole new configuration, builds a new stack (keeping the pool, hosts, breakers
//! and cache wherever their settings did not change), and swaps it in at once; a
//! new listen address is bound before anything is swapped, so a reload either
//! applies entirely or not at all.
//!
//! Background tasks read the current stack on every round, so they follow a reload
//! without being restarted: health probes of every host, the model inventory
//! (which also feeds the cache its model digests), and the rate limiter's
//! housekeeping.

mod admin;
mod daemon;
mod listeners;
mod router;
mod stack;
mod tasks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cache::{self, CacheStats, Purged};
use crate::config::{Config, ConfigError, ConfigSource, RawConfig};
use crate::error::Error;
use crate::metrics::{Metrics, Stats};
use crate::state::{FileState, MemoryState, StateStore};
use crate::upstream::{self, UpstreamHealth};
use listeners::{Monitor, Server, bind, needs_rebind};
use stack::Stack;

/// Warmline's version, reported by `/warmline/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// State shared by every request handler and by the handle.
#[derive(Debug)]
pub struct Shared {
    stack: ArcSwap<Stack>,
    metrics: Arc<Metrics>,
    /// The address actually bound (with port 0 resolved).
    listen: ArcSwap<SocketAddr>,
    /// Notified when a request that changes the installed models went through.
    models_changed: Arc<tokio::sync::Notify>,
    /// The warm set, kept across reloads.
    warmth: Arc<crate::warmth::Warmth>,
    /// The daemon supervisor, while `daemon.supervise` is on.
    supervision: daemon::Supervision,
    /// Notified after each refresh of the hosts' model lists.
    models_refreshed: tokio::sync::Notify,
    /// The handle's own state, for admin routes that act as the handle does. Weak:
    /// the server task holds this `Shared`, and the handle must stay the only
    /// owner of the tasks, so that dropping the last handle stops them.
    handle: std::sync::OnceLock<std::sync::Weak<Inner>>,
}

impl Shared {
    /// A handle to this gateway, while one exists.
    pub(crate) fn handle(&self) -> Option<GatewayHandle> {
        let inner = self.handle.get()?.upgrade()?;
        Some(GatewayHandle { inner })
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::clone(&self.stack.load().config)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn prometheus(&self) -> String {
        let stack = self.stack.load();
        let upstreams = stack.pipeline.upstreams.health();
        let installed = upstream::installed_models(&stack.pipeline.upstreams);
        let active = self.alerts(&upstreams);
        let alerts: Vec<(&'static str, bool)> = crate::alerts::ALERTS
            .iter()
            .map(|name| (*name, active.iter().any(|a| a.alert == *name)))
            .collect();
        let daemon = self.supervision.get().map(|supervisor| {
            use crate::supervisor::DaemonState;
            let status = supervisor.status();
            crate::metrics::Daemon {
                up: matches!(status.state, DaemonState::Running | DaemonState::External),
                restarts: u64::from(status.restarts),
                cpu_cores: status.resources.map(|r| f64::from(r.cpu_percent) / 100.0),
                resident_bytes: status.resources.map(|r| r.rss_bytes),
            }
        });
        let mut out = self.metrics.render_prometheus(&crate::metrics::Context {
            upstreams: &upstreams,
            installed: &installed,
            alerts: &alerts,
            daemon,
        });
        cache::render_prometheus(stack.pipeline.cache.as_deref(), &mut out);
        out
    }

    pub(crate) async fn cache_stats(&self) -> CacheStats {
        let pipeline = Arc::clone(&self.stack.load().pipeline);
        match &pipeline.cache {
            Some(cache) => CacheStats {
                in_flight: pipeline.flights.len() as u64,
                ..cache.stats().await
            },
            None => CacheStats::disabled(),
        }
    }

    pub(crate) async fn purge_cache(&self, model: Option<&str>) -> Purged {
        let cache = self.stack.load().pipeline.cache.clone();
        match cache {
            Some(cache) => cache.purge(model).await,
            None => Purged {
                model: model.map(str::to_owned),
                removed: 0,
                redis_removed: None,
            },
        }
    }

    /// The supervised daemon's state (`disabled` without supervision).
    pub(crate) fn daemon_status(&self) -> crate::supervisor::DaemonStatus {
        match self.supervision.get() {
            Some(supervisor) => supervisor.status(),
            None => {
                let config = self.config();
                let url = config
                    .upstreams
                    .first()
                    .map(|u| u.name())
                    .unwrap_or_default();
                crate::supervisor::DaemonStatus::disabled(&url)
            }
        }
    }

    /// The active alerts (see `alerts`), given the hosts' health.
    fn alerts(&self, upstreams: &[UpstreamHealth]) -> Vec<crate::alerts::Alert> {
        let config = self.config();
        let recent = self.metrics.window_total(config.alerts.window);
        crate::alerts::evaluate(&config.alerts, &recent, upstreams, &self.daemon_status())
    }

    /// Whether this gateway takes traffic now (see `/warmline/ready`).
    pub(crate) fn readiness(&self) -> Readiness {
        use std::sync::atomic::Ordering::Acquire;
        let reason = match self.handle() {
            None => Some("shutting down"),
            Some(handle) if handle.inner.stopped.load(Acquire) => Some("draining: shutting down"),
            Some(handle) if handle.is_paused() => Some("paused: not accepting connections"),
            Some(_) => {
                let upstreams = self.stack.load().pipeline.upstreams.health();
                let up = upstreams.iter().any(|u| {
                    // Answered a probe: reachable from the start is only a guess.
                    u.reachable
                        && u.last_latency_ms.is_some()
                        && u.breaker.state != crate::breaker::State::Open
                });
                (!up).then_some("no host has answered a health probe yet, or none answers now")
            }
        };
        Readiness {
            ready: reason.is_none(),
            reason: reason.map(str::to_owned),
        }
    }

    pub(crate) fn health(&self) -> Health {
        let upstreams = self.stack.load().pipeline.upstreams.health();
        let serving = upstreams
            .iter()
            .filter(|u| u.reachable && u.breaker.state != crate::breaker::State::Open)
            .count();
        let alerts = self.alerts(&upstreams);
        let status = if serving == 0 || alerts.iter().any(|a| a.alert == "daemon_down") {
            HealthStatus::Down
        } else if alerts.is_empty() {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        };
        Health {
            status,
            version: VERSION.to_owned(),
            listen: format!("http://{}", self.listen.load()),
            alerts,
            upstreams,
        }
    }
}

/// Overall state, as `/warmline/health` reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every upstream is reachable and no alert is active.
    Ok,
    /// Requests are served, but an alert is active (see `alerts`).
    Degraded,
    /// Nothing can serve: no upstream is reachable, or the supervised daemon is down.
    Down,
}

/// The JSON served at `GET /warmline/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: HealthStatus,
    pub version: String,
    /// The URL clients point at.
    pub listen: String,
    /// Active alerts, each with a sentence saying why.
    pub alerts: Vec<crate::alerts::Alert>,
    pub upstreams: Vec<UpstreamHealth>,
}

/// The JSON served at `GET /warmline/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Readiness {
    /// Whether this gateway takes traffic (the route answers 200, else 503).
    pub ready: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a reload or settings change did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Applied {
    /// Dotted names of the settings that changed (empty: nothing to do).
    pub changed: Vec<String>,
    /// The URL clients point at afterwards.
    pub listen: String,
    /// What the person who changed the settings should know (e.g. that an
    /// adopted daemon keeps its own settings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Settings that only the config file (or the in-process app) may change: each
/// makes Warmline run a program or write a file as the user running it, so an
/// HTTP client — even one holding the admin credential, which a group of
/// administrators may share — must not be able to set them. Listen address,
/// hosts and origins stay changeable with the credential: they move traffic, and
/// moving traffic is what an administrator of the gateway is for.
pub const FILE_ONLY: &[&str] = &[
    "daemon.executable",
    "daemon.env",
    "daemon.log_file",
    "access_log",
    "state_file",
    "admin",
    "auth",
];

/// Who changed the settings, for the log line of each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changer {
    /// The desktop app or an embedder, in-process (or a reload of the file).
    App,
    /// An HTTP request with the admin credential.
    Admin,
}

impl Changer {
    fn as_str(self) -> &'static str {
        match self {
            Changer::App => "in-process",
            Changer::Admin => "admin credential",
        }
    }
}

/// Starts gateways.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Binds `config.listen` and starts serving in background tasks.
    pub async fn start(config: Config) -> Result<GatewayHandle, Error> {
        let listener = bind(config.listen).await?;
        Gateway::serve(listener, config).await
    }

    /// Serves on an already bound listener (`config.listen` is only used for the
    /// Host check and later reloads). The warm set is kept in `config.state_file`,
    /// or in memory without one.
    pub async fn serve(listener: TcpListener, config: Config) -> Result<GatewayHandle, Error> {
        let store: Arc<dyn StateStore> = match &config.state_file {
            Some(path) => Arc::new(FileState::new(path)),
            None => Arc::new(MemoryState::default()),
        };
        Gateway::serve_with(listener, config, store).await
    }

    /// [`Gateway::serve`] with the warm set kept in `store` (any [`StateStore`]:
    /// an embedder's own, or a test's in memory).
    pub async fn serve_with(
        listener: TcpListener,
        config: Config,
        store: Arc<dyn StateStore>,
    ) -> Result<GatewayHandle, Error> {
        let listen = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        // Bound before anything starts: a taken port refuses the start.
        let monitoring = match config.monitoring {
            Some(addr) => Some((addr, bind(addr).await?)),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let models_changed = Arc::new(tokio::sync::Notify::new());
        let warmth = Arc::new(crate::warmth::Warmth::new(&config.warmth, store));
        let upstream_names: Vec<String> = config.upstreams.iter().map(|u| u.name()).collect();
        let started_with = config.clone();
        let stack = Stack::build(
            config,
            Arc::clone(&metrics),
            None,
            Arc::clone(&models_changed),
            Arc::clone(&warmth),
        )?;
        let shared = Arc::new(Shared {
            stack: ArcSwap::from_pointee(stack),
            metrics,
            listen: ArcSwap::from_pointee(listen),
            models_changed,
            warmth,
            supervision: daemon::Supervision::default(),
            models_refreshed: tokio::sync::Notify::new(),
            handle: std::sync::OnceLock::new(),
        });
        let monitor = match monitoring {
            Some((addr, listener)) => Some(Monitor::start(addr, listener, &shared)?),
            None => None,
        };
        shared.supervision.follow(&shared, &started_with).await;
        let background = vec![
            tokio::spawn(tasks::probe_upstreams(Arc::clone(&shared))),
            tokio::spawn(tasks::refresh_models(Arc::clone(&shared))),
            tokio::spawn(tasks::discover_parallelism(Arc::clone(&shared))),
            tokio::spawn(tasks::housekeep(Arc::clone(&shared))),
            tokio::spawn(daemon::keep_warm(Arc::clone(&shared))),
        ];
        let server = Server::start(listener, &shared);
        tracing::info!(%listen, upstreams = ?upstream_names, "gateway started");
        let inner = Arc::new(Inner {
            shared: Arc::clone(&shared),
            source: Mutex::new(None),
            servers: Mutex::new(vec![server]),
            monitor: Mutex::new(monitor),
            background: Mutex::new(background),
            applying: tokio::sync::Mutex::new(()),
            paused: std::sync::atomic::AtomicBool::new(false),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        let _ = shared.handle.set(Arc::downgrade(&inner));
        Ok(GatewayHandle { inner })
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
    /// Where [`GatewayHandle::reload`] reads the configuration from.
    source: Mutex<Option<ConfigSource>>,
    /// The serving accept loop last; earlier ones are draining after a rebind.
    servers: Mutex<Vec<Server>>,
    /// The monitoring listener, when configured; closed last at shutdown.
    monitor: Mutex<Option<Monitor>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Serialises reloads: two at once would each build from the same old stack.
    applying: tokio::sync::Mutex<()>,
    /// Not accepting connections for now (see [`GatewayHandle::pause`]).
    paused: std::sync::atomic::AtomicBool,
    /// Shut down for good.
    stopped: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without a shutdown: don't leave tasks behind.
        if let Ok(servers) = self.servers.get_mut() {
            servers.iter().for_each(|s| s.task.abort());
        }
        if let Ok(Some(monitor)) = self.monitor.get_mut() {
            monitor.server.task.abort();
        }
        if let Ok(background) = self.background.get_mut() {
            background.iter().for_each(JoinHandle::abort);
        }
    }
}

impl GatewayHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        **self.inner.shared.listen.load()
    }

    /// The URL clients point at, e.g. `http://127.0.0.1:11435`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.inner.shared.config()
    }

    /// Overall status and each upstream's health.
    pub fn health(&self) -> Health {
        self.inner.shared.health()
    }

    /// Request counts and latency percentiles.
    pub fn stats(&self) -> Stats {
        self.inner.shared.metrics.stats()
    }

    /// The last `window` of history (per second up to 1 h, per minute up to 24 h).
    pub fn history(&self, window: Duration) -> crate::metrics::History {
        self.inner
            .shared
            .metrics
            .history(window.min(Duration::from_secs(86_400)))
    }

    /// One chart of the last `window` as SVG (for the dashboard), in `theme`.
    pub fn chart_svg(
        &self,
        chart: crate::charts::Chart,
        window: Duration,
        size: (u32, u32),
        theme: crate::charts::Theme,
    ) -> Result<String, crate::charts::ChartError> {
        crate::charts::svg_themed(chart, &self.history(window), size, theme)
    }

    /// The last `n` finished requests, newest first.
    pub fn recent_requests(&self, n: usize) -> Vec<crate::metrics::RecentRequest> {
        self.inner.shared.metrics.recent(n)
    }

    /// The last `n` lines of Warmline's own log.
    pub fn logs(&self, n: usize) -> Vec<crate::sys::logging::LogLine> {
        crate::sys::logging::tail(n)
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

    /// Remembers where the configuration came from, for [`GatewayHandle::reload`].
    pub fn set_source(&self, source: ConfigSource) {
        if let Ok(mut slot) = self.inner.source.lock() {
            *slot = Some(source);
        }
    }

    /// Reads the configuration again from its source (file, environment, flags)
    /// and applies it; an invalid one is refused and the running one stays.
    /// Either way the access log is reopened first, so `systemctl reload` (SIGHUP)
    /// after logrotate moved it starts a new file.
    pub async fn reload(&self) -> Result<Applied, Error> {
        self.inner.shared.metrics.reopen_access_log();
        let source = self.inner.source.lock().ok().and_then(|s| s.clone());
        let Some(source) = source else {
            return Err(ConfigError::invalid(
                "reload",
                "this gateway was configured in memory, not from a file or the environment: \
                 change its settings instead",
            )
            .into());
        };
        self.apply(source.load()?).await
    }

    /// The settings in force with every value explicit, secrets masked.
    pub fn settings(&self) -> RawConfig {
        self.inner.shared.config().to_raw_redacted()
    }

    /// Applies a JSON merge patch to the settings in force (see
    /// [`RawConfig::patched`]), as the desktop app does, in-process. Secrets
    /// (`auth`) are changed in the config file only.
    pub async fn update_settings(&self, patch: &serde_json::Value) -> Result<Applied, Error> {
        self.update_settings_by(patch, Changer::App).await
    }

    /// [`GatewayHandle::update_settings`] for a request with the admin credential:
    /// settings that run a program or write a file ([`FILE_ONLY`]) are refused.
    pub async fn update_settings_remotely(
        &self,
        patch: &serde_json::Value,
    ) -> Result<Applied, Error> {
        self.update_settings_by(patch, Changer::Admin).await
    }

    async fn update_settings_by(
        &self,
        patch: &serde_json::Value,
        by: Changer,
    ) -> Result<Applied, Error> {
        if patch.get("auth").is_some() {
            return Err(ConfigError::invalid(
                "auth",
                "tokens are set in the config file or WARMLINE_TOKEN, not through settings",
            )
            .into());
        }
        let current = self.inner.shared.config();
        let mut patch = patch.clone();
        current.unmask(&mut patch);
        let config = current.to_raw().patched(&patch)?.validate()?;
        if by == Changer::Admin
            && let Some(field) = stack::changes(&current, &config).into_iter().find(|c| {
                FILE_ONLY
                    .iter()
                    .any(|f| c == f || c.starts_with(&format!("{f}.")))
            })
        {
            return Err(crate::auth::AuthError::FileOnly(field).into());
        }
        self.apply_by(config, by).await
    }

    /// Switches to `config` at once: requests already running finish under the old
    /// one. A new listen address is bound first (its error refuses the change); the
    /// old listener then stops accepting and drains.
    pub async fn apply(&self, config: Config) -> Result<Applied, Error> {
        self.apply_by(config, Changer::App).await
    }

    async fn apply_by(&self, config: Config, by: Changer) -> Result<Applied, Error> {
        let _one_at_a_time = self.inner.applying.lock().await;
        let shared = &self.inner.shared;
        let current = shared.stack.load_full();
        let changed = stack::changes(&current.config, &config);
        if changed.is_empty() {
            return Ok(Applied {
                changed,
                listen: self.url(),
                notes: Vec::new(),
            });
        }
        let bound = **shared.listen.load();
        let listener = if needs_rebind(config.listen, current.config.listen, bound) {
            let listener = TcpListener::bind(config.listen).await.map_err(|e| {
                ConfigError::invalid(
                    "listen",
                    format!(
                        "cannot listen on {}: {}",
                        config.listen,
                        crate::wire::describe(&e)
                    ),
                )
            })?;
            Some(listener)
        } else {
            None
        };
        // A new monitoring address is bound before anything changes, like `listen`.
        let monitoring = if config.monitoring == current.config.monitoring {
            None
        } else if let Some(addr) = config.monitoring {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                ConfigError::invalid(
                    "monitoring.listen",
                    format!("cannot listen on {addr}: {}", crate::wire::describe(&e)),
                )
            })?;
            Some(Some((addr, listener)))
        } else {
            Some(None)
        };
        let drain = config.timeouts.drain;
        let daemon_changed = changed
            .iter()
            .any(|c| c.starts_with("daemon") || c.starts_with("upstreams"));
        let followed = config.clone();
        let stack = Stack::build(
            config,
            Arc::clone(&shared.metrics),
            Some(&current),
            Arc::clone(&shared.models_changed),
            Arc::clone(&shared.warmth),
        )?;
        shared.stack.store(Arc::new(stack));
        if let Some(next) = monitoring {
            let started = match next {
                Some((addr, listener)) => Some(Monitor::start(addr, listener, shared)?),
                None => None,
            };
            let old = self
                .inner
                .monitor
                .lock()
                .ok()
                .and_then(|mut slot| std::mem::replace(&mut *slot, started));
            if let Some(old) = old {
                tokio::spawn(old.server.drain(Duration::ZERO));
            }
        }
        let notes = if daemon_changed {
            shared.supervision.follow(shared, &followed).await
        } else {
            Vec::new()
        };
        if let Some(listener) = listener {
            let addr = listener.local_addr().map_err(|source| Error::Bind {
                addr: current.config.listen,
                source,
            })?;
            if self.is_paused() {
                // Checked that it can be bound; resuming binds it for real.
                drop(listener);
                shared.listen.store(Arc::new(addr));
                return Ok(Applied {
                    changed,
                    listen: self.url(),
                    notes,
                });
            }
            let server = Server::start(listener, shared);
            shared.listen.store(Arc::new(addr));
            let old = self
                .inner
                .servers
                .lock()
                .ok()
                .map(|mut servers| std::mem::replace(&mut *servers, vec![server]));
            for old in old.into_iter().flatten() {
                tokio::spawn(old.drain(drain));
            }
            tracing::info!(listen = %addr, "now listening on a new address");
        }
        tracing::info!(by = by.as_str(), changed = ?changed, "configuration applied");
        Ok(Applied {
            changed,
            listen: self.url(),
            notes,
        })
    }

    /// Stops accepting connections — clients now find the port closed, as if
    /// Warmline were not running — while the daemon, the warm models, the cache
    /// and the metrics carry on. Requests under way finish (up to
    /// `timeouts.drain`). Idempotent; [`GatewayHandle::resume`] undoes it.
    pub async fn pause(&self) {
        use std::sync::atomic::Ordering::AcqRel;
        if self
            .inner
            .stopped
            .load(std::sync::atomic::Ordering::Acquire)
            || self.inner.paused.swap(true, AcqRel)
        {
            return;
        }
        self.drain_servers().await;
        tracing::info!("gateway paused: not accepting connections");
    }

    /// Accepts connections again, on the address it served before the pause
    /// (or the one a settings change named meanwhile). Fails, staying paused,
    /// when something else took that address.
    pub async fn resume(&self) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Acquire;
        if self.inner.stopped.load(Acquire) || !self.inner.paused.load(Acquire) {
            return Ok(());
        }
        let addr = self.local_addr();
        let listener = bind(addr).await?;
        let server = Server::start(listener, &self.inner.shared);
        if let Ok(mut servers) = self.inner.servers.lock() {
            servers.push(server);
        }
        self.inner
            .paused
            .store(false, std::sync::atomic::Ordering::Release);
        tracing::info!(listen = %addr, "gateway resumed");
        Ok(())
    }

    /// Stops every listener and lets its requests finish for up to
    /// `timeouts.drain`, then cuts what is left (pause and shutdown alike).
    async fn drain_servers(&self) {
        let servers = self
            .inner
            .servers
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        let drain = self.inner.shared.config().timeouts.drain;
        futures_util::future::join_all(servers.into_iter().map(|s| s.drain(drain))).await;
    }

    /// The address the monitoring listener bound, when `monitoring.listen` is set.
    pub fn monitoring_addr(&self) -> Option<SocketAddr> {
        let monitor = self.inner.monitor.lock().ok()?;
        monitor.as_ref().map(|m| m.addr)
    }

    /// Whether the gateway is paused (see [`GatewayHandle::pause`]).
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops accepting connections, lets in-flight requests finish for up to
    /// `timeouts.drain`, then cuts whatever is left. Idempotent.
    pub async fn shutdown(&self) {
        if self
            .inner
            .stopped
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let background = self
            .inner
            .background
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        background.iter().for_each(JoinHandle::abort);
        self.inner.shared.warmth.abort_loads();
        self.drain_servers().await;
        // The monitoring listener last: a balancer reads `/warmline/ready` as 503
        // through the whole drain.
        let monitor = self.inner.monitor.lock().ok().and_then(|mut m| m.take());
        if let Some(monitor) = monitor {
            monitor.server.drain(Duration::ZERO).await;
        }
        // A daemon Warmline started goes with it (an adopted one stays).
        self.inner.shared.supervision.stop().await;
        tracing::info!("gateway stopped");
    }
}
