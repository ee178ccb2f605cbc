//! Live status for the window: the [`Status`] snapshot and the emitter task that
//! pushes it as the [`STATUS_EVENT`] event once a second.
//!
//! The webview never polls: it invokes `gateway_status` once at load for the first
//! paint and then only listens. One push is one whole snapshot, so a missed event
//! costs nothing but a second of staleness.

use std::time::Duration;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::error::UiError;
use crate::state::AppState;

/// The event the window listens to.
pub const STATUS_EVENT: &str = "warmline://status";

/// How often the status is pushed.
pub const PUSH_INTERVAL: Duration = Duration::from_secs(1);

/// What the window shows. Tagged by `state`, so the UI switches on one field.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    /// The gateway serves on `listen`; `health` and `stats` are the core's own
    /// snapshots, passed through unchanged so the UI and `/warmline/*` agree.
    Running {
        listen: String,
        health: warmline::Health,
        stats: Box<warmline::Stats>,
    },
    /// The gateway did not start; the window shows `error` instead of numbers.
    Failed {
        listen: Option<String>,
        error: UiError,
    },
    /// Shutdown has begun (the app is quitting).
    Stopped,
}

/// Emits one snapshot to every window. Returns whether the gateway is still
/// worth reporting on (false once it stopped), so the emitter knows when to end.
pub fn push<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<bool> {
    let Some(state) = app.try_state::<AppState>() else {
        return Ok(true); // not managed yet: nothing to say, try again next tick
    };
    let status = state.status();
    let live = !matches!(status, Status::Stopped);
    app.emit(STATUS_EVENT, &status)?;
    Ok(live)
}

/// Spawns the emitter on Tauri's runtime. It ends by itself after reporting
/// `stopped`, so quitting needs no handle to it.
pub fn spawn_emitter<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(PUSH_INTERVAL);
        // After a stall (suspend, busy machine) send one fresh snapshot, not a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            match push(&app) {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => tracing::warn!("cannot push status to the window: {err}"),
            }
        }
    });
}
