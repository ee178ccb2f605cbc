//! [`AppState`]: the one piece of state the shell manages, holding the embedded
//! gateway's handle, or the reason it is not running.
//!
//! A gateway that failed to start is a state, not a crash: the window still opens
//! and shows the error (a taken port is the common case), and the tray still offers
//! Quit. Stopping is idempotent because both the exit path and a signal can ask.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use warmline::{Config, ConfigError, Gateway, GatewayHandle};

use crate::error::UiError;
use crate::status::Status;

/// Managed by Tauri; every command and the status emitter read it.
#[derive(Debug)]
pub struct AppState {
    gateway: Slot,
}

#[derive(Debug)]
enum Slot {
    Running {
        handle: GatewayHandle,
        /// Set once shutdown begins, so status reads "stopped" and a second stop is a no-op.
        stopped: AtomicBool,
    },
    Failed {
        /// The address we tried, when the configuration got that far.
        listen: Option<SocketAddr>,
        error: UiError,
    },
}

impl AppState {
    /// Loads the configuration result and starts the gateway; never fails, because
    /// a failure is something to show, not to crash on.
    pub async fn start(config: Result<Config, ConfigError>) -> AppState {
        let config = match config {
            Ok(config) => config,
            Err(err) => return AppState::failed(None, UiError::config(&err)),
        };
        let listen = config.listen;
        match Gateway::start(config).await {
            Ok(handle) => AppState::running(handle),
            Err(err) => AppState::failed(Some(listen), UiError::gateway_start(&err, listen)),
        }
    }

    /// A state around a gateway that is already serving.
    pub fn running(handle: GatewayHandle) -> AppState {
        AppState {
            gateway: Slot::Running {
                handle,
                stopped: AtomicBool::new(false),
            },
        }
    }

    /// A state for a gateway that could not start.
    pub fn failed(listen: Option<SocketAddr>, error: UiError) -> AppState {
        AppState {
            gateway: Slot::Failed { listen, error },
        }
    }

    /// The gateway's base URL while it serves.
    pub fn listen_url(&self) -> Option<String> {
        match &self.gateway {
            Slot::Running { handle, stopped } if !stopped.load(Ordering::Acquire) => {
                Some(handle.url())
            }
            _ => None,
        }
    }

    /// A snapshot for the window: cheap (the core's own snapshots), no locks held.
    pub fn status(&self) -> Status {
        match &self.gateway {
            Slot::Running { stopped, .. } if stopped.load(Ordering::Acquire) => Status::Stopped,
            Slot::Running { handle, .. } => Status::Running {
                listen: handle.url(),
                health: handle.health(),
                stats: Box::new(handle.stats()),
            },
            Slot::Failed { listen, error } => Status::Failed {
                listen: listen.map(|addr| format!("http://{addr}")),
                error: error.clone(),
            },
        }
    }

    /// Stops the gateway gracefully (bounded by the core's drain timeout). Safe to
    /// call more than once; only the first call does anything.
    pub async fn stop(&self) {
        if let Slot::Running { handle, stopped } = &self.gateway
            && !stopped.swap(true, Ordering::AcqRel)
        {
            handle.shutdown().await;
        }
    }
}
