//! [`AppState`]: the one piece of state the shell manages — the embedded
//! gateway's handle (or why it is not running), demo mode, and what the window
//! last asked for.
//!
//! A gateway that failed to start is a state, not a crash: the window still opens
//! and shows the error (a taken port is the common case), and the tray still offers
//! Quit. Stopping is idempotent because both the exit path and a signal can ask.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use warmline::state::StateStore;
use warmline::supervisor::{DaemonState, DaemonStatus};
use warmline::{Config, ConfigError, Gateway, GatewayHandle};

use crate::error::UiError;

/// Managed by Tauri; every command, the tray and the emitters read it.
#[derive(Debug)]
pub struct AppState {
    gateway: RwLock<Slot>,
    /// The in-process Ollama simulator while demo mode runs.
    demo: Mutex<Option<ollama_sim::SimHandle>>,
    /// What the user should know about their settings (a recovered file).
    notice: Mutex<Option<String>>,
    /// The chart window and theme the dashboard last asked for.
    charts: Mutex<ChartView>,
}

#[derive(Debug, Clone)]
enum Slot {
    Running(GatewayHandle),
    Failed {
        /// The address we tried, when the configuration got that far.
        listen: Option<SocketAddr>,
        error: UiError,
    },
    /// Shut down (the app is quitting).
    Stopped,
}

/// The dashboard's chart settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartView {
    pub window_s: u64,
    pub dark: bool,
}

impl Default for ChartView {
    fn default() -> ChartView {
        ChartView {
            window_s: 300,
            dark: false,
        }
    }
}

/// What the window shows, pushed as [`STATUS_EVENT`](crate::events::STATUS_EVENT)
/// and answered by `app_status`. Tagged by `state`, so the UI switches on one field.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// `running`, `paused`, `failed` or `stopped`.
    pub state: &'static str,
    /// Where clients point (also while paused: where it will listen again).
    pub listen: Option<String>,
    pub health: Option<warmline::Health>,
    pub stats: Option<Box<warmline::Stats>>,
    pub daemon: Option<DaemonStatus>,
    /// Automatic warmth: the memory budget, what warm models take, and why each
    /// model is kept by prediction.
    pub warmth: Option<warmline::warmth::auto::AutoStatus>,
    /// An in-process simulator is the upstream (no Ollama here).
    pub demo: bool,
    pub ollama: Ollama,
    pub error: Option<UiError>,
    pub notice: Option<String>,
}

/// Whether there is an Ollama to talk to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Ollama {
    /// False when no `ollama` executable exists and no Ollama answers.
    pub found: bool,
    /// How to install it, when not found.
    pub hint: Option<String>,
}

impl AppState {
    /// Starts the gateway on `config`; never fails, because a failure is
    /// something to show, not to crash on.
    pub async fn start(
        config: Result<Config, ConfigError>,
        warm: Option<Arc<dyn StateStore>>,
    ) -> AppState {
        let state = AppState::empty();
        *state.slot_mut() = start_slot(config, warm).await;
        state
    }

    /// A state around a gateway that is already serving.
    pub fn running(handle: GatewayHandle) -> AppState {
        let state = AppState::empty();
        *state.slot_mut() = Slot::Running(handle);
        state
    }

    /// A state for a gateway that could not start.
    pub fn failed(listen: Option<SocketAddr>, error: UiError) -> AppState {
        let state = AppState::empty();
        *state.slot_mut() = Slot::Failed { listen, error };
        state
    }

    fn empty() -> AppState {
        AppState {
            gateway: RwLock::new(Slot::Stopped),
            demo: Mutex::new(None),
            notice: Mutex::new(None),
            charts: Mutex::new(ChartView::default()),
        }
    }

    fn slot(&self) -> Slot {
        self.gateway
            .read()
            .map(|s| s.clone())
            .unwrap_or(Slot::Stopped)
    }

    fn slot_mut(&self) -> std::sync::RwLockWriteGuard<'_, Slot> {
        self.gateway
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The running gateway, or the error a command should answer with.
    pub fn handle(&self) -> Result<GatewayHandle, UiError> {
        match self.slot() {
            Slot::Running(handle) => Ok(handle),
            Slot::Failed { error, .. } => Err(error),
            Slot::Stopped => Err(UiError::stopped()),
        }
    }

    /// The gateway's base URL while it serves (not while paused).
    pub fn listen_url(&self) -> Option<String> {
        match self.slot() {
            Slot::Running(handle) if !handle.is_paused() => Some(handle.url()),
            _ => None,
        }
    }

    pub fn set_notice(&self, notice: Option<String>) {
        if let Ok(mut slot) = self.notice.lock() {
            *slot = notice;
        }
    }

    pub fn chart_view(&self) -> ChartView {
        self.charts.lock().map(|c| *c).unwrap_or_default()
    }

    pub fn set_chart_view(&self, view: ChartView) {
        if let Ok(mut slot) = self.charts.lock() {
            *slot = view;
        }
    }

    pub fn is_demo(&self) -> bool {
        self.demo.lock().is_ok_and(|d| d.is_some())
    }

    /// A snapshot for the window and the tray: the core's own snapshots, no
    /// locks held across anything slow.
    pub fn status(&self) -> AppStatus {
        let notice = self.notice.lock().ok().and_then(|n| n.clone());
        let demo = self.is_demo();
        let mut status = AppStatus {
            state: "stopped",
            listen: None,
            health: None,
            stats: None,
            daemon: None,
            warmth: None,
            demo,
            ollama: Ollama {
                found: true,
                hint: None,
            },
            error: None,
            notice,
        };
        match self.slot() {
            Slot::Stopped => {}
            Slot::Failed { listen, error } => {
                status.state = "failed";
                status.listen = listen.map(|addr| format!("http://{addr}"));
                status.error = Some(error);
            }
            Slot::Running(handle) => {
                let health = handle.health();
                let daemon = handle.daemon_status();
                status.state = if handle.is_paused() {
                    "paused"
                } else {
                    "running"
                };
                status.listen = Some(handle.url());
                status.ollama = if demo {
                    Ollama {
                        found: true,
                        hint: None,
                    }
                } else {
                    ollama(&handle.config(), &health, &daemon)
                };
                status.stats = Some(Box::new(handle.stats()));
                status.health = Some(health);
                status.daemon = Some(daemon);
                status.warmth = Some(handle.warmth_status());
            }
        }
        status
    }

    /// Stops the gateway gracefully (bounded by the core's drain timeout) and a
    /// demo simulator. Safe to call more than once.
    pub async fn stop(&self) {
        let previous = std::mem::replace(&mut *self.slot_mut(), Slot::Stopped);
        if let Slot::Running(handle) = previous {
            handle.shutdown().await;
        }
        let demo = self.demo.lock().ok().and_then(|mut d| d.take());
        if let Some(sim) = demo {
            sim.shutdown().await;
        }
    }

    /// Demo mode: an Ollama simulator in this process becomes the only upstream
    /// (for this session; nothing is saved), so every feature can be tried
    /// without Ollama. Its models load in about a second and answer with
    /// deterministic text.
    pub async fn start_demo(&self) -> Result<(), UiError> {
        if self.is_demo() {
            return Ok(());
        }
        let handle = self.handle()?;
        let mut config = ollama_sim::SimConfig::default();
        config.knobs.load_delay = std::time::Duration::from_millis(1200);
        config.knobs.token_delay = std::time::Duration::from_millis(25);
        config.knobs.tokens_per_reply = 40;
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let sim = ollama_sim::Simulator::bind(addr, config)
            .await
            .map_err(|e| UiError::demo(&e.to_string()))?;
        let patch = serde_json::json!({
            "upstreams": [sim.url()],
            "daemon": { "supervise": false },
        });
        if let Err(err) = handle.update_settings(&patch).await {
            sim.shutdown().await;
            return Err(UiError::from_core(&err));
        }
        if let Ok(mut demo) = self.demo.lock() {
            *demo = Some(sim);
        }
        Ok(())
    }
}

async fn start_slot(
    config: Result<Config, ConfigError>,
    warm: Option<Arc<dyn StateStore>>,
) -> Slot {
    let config = match config {
        Ok(config) => config,
        Err(err) => {
            return Slot::Failed {
                listen: None,
                error: UiError::config(&err),
            };
        }
    };
    let listen = config.listen;
    let started = match warm {
        Some(store) => match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => Gateway::serve_with(listener, config, store).await,
            Err(source) => Err(warmline::Error::Bind {
                addr: listen,
                source,
            }),
        },
        None => Gateway::start(config).await,
    };
    match started {
        Ok(handle) => Slot::Running(handle),
        Err(err) => Slot::Failed {
            listen: Some(listen),
            error: UiError::gateway_start(&err, listen),
        },
    }
}

/// Whether there is an Ollama: one answers, or one can be started. Otherwise,
/// how to install it.
fn ollama(config: &Config, health: &warmline::Health, daemon: &DaemonStatus) -> Ollama {
    let answers = health.upstreams.iter().any(|u| u.reachable);
    let missing = match daemon.state {
        DaemonState::NotFound => daemon.message.clone(),
        DaemonState::Disabled if !answers => {
            warmline::supervisor::find_ollama(config.daemon.executable.as_deref()).err()
        }
        _ => None,
    };
    match missing {
        Some(hint) if !answers => Ollama {
            found: false,
            hint: Some(hint),
        },
        _ => Ollama {
            found: true,
            hint: None,
        },
    }
}
