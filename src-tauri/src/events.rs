//! What the shell pushes to the window, and the one task that pushes it.
//!
//! The webview never polls: it asks each command once at load for the first
//! paint and then only listens. Every push is a whole snapshot, so a missed one
//! costs nothing but a moment of staleness:
//!
//! | event               | every | payload                                    |
//! |---------------------|-------|--------------------------------------------|
//! | `warmline://status`   | 1 s   | [`AppStatus`](crate::state::AppStatus)   |
//! | `warmline://models`   | 2 s, and at once after a change | `ModelView[]` |
//! | `warmline://charts`   | 2 s   | [`Charts`] for the window last asked for |
//! | `warmline://activity` | 2 s   | [`Activity`]                             |
//!
//! The same tick refreshes the tray (its status line, icon and model items).
//!
//! Drawing is what costs on a desktop (WebKit repaints in software on many
//! Linux machines), so the window gets only what it can show: nothing but the
//! status while it is hidden in the tray, and charts only when their data
//! changed — new traffic, another window or theme — or every [`CHART_REFRESH`]
//! so the time axis keeps moving when all is quiet.

use std::time::Duration;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use warmline::GatewayHandle;
use warmline::charts::Chart;

use crate::error::UiError;
use crate::state::{AppState, ChartView};

pub const STATUS_EVENT: &str = "warmline://status";
pub const MODELS_EVENT: &str = "warmline://models";
pub const CHARTS_EVENT: &str = "warmline://charts";
pub const ACTIVITY_EVENT: &str = "warmline://activity";

/// How often the status is pushed; the other events go every other tick.
pub const TICK: Duration = Duration::from_secs(1);

/// The longest the charts go without a redraw while nothing changes.
const CHART_REFRESH: Duration = Duration::from_secs(10);

/// Lines and requests kept in an activity push.
const TAIL: usize = 200;
/// The size charts are drawn at for the dashboard (scaled by the window).
const CHART_SIZE: (u32, u32) = (720, 400);

/// The dashboard's charts, as SVG documents drawn by the core.
#[derive(Debug, Clone, Serialize)]
pub struct Charts {
    /// The window they cover, in seconds.
    pub window: u64,
    /// By chart: `latency`, `ttft`, `throughput`, `hit_rate`, `models`.
    pub svgs: std::collections::BTreeMap<String, String>,
}

/// Recent requests, logs and the cache, for the Activity and Ollama views.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub requests: Vec<warmline::metrics::RecentRequest>,
    pub logs: Vec<warmline::sys::logging::LogLine>,
    pub daemon_logs: Vec<warmline::supervisor::LogLine>,
    pub cache: warmline::cache::CacheStats,
}

/// The charts for `view`.
pub fn charts(handle: &GatewayHandle, view: ChartView) -> Result<Charts, UiError> {
    let window = Duration::from_secs(view.window_s.clamp(60, 86_400));
    let mut svgs = std::collections::BTreeMap::new();
    for chart in Chart::ALL {
        let theme = if view.dark {
            warmline::charts::Theme::Dark
        } else {
            warmline::charts::Theme::Light
        };
        let svg = handle
            .chart_svg(chart, window, CHART_SIZE, theme)
            .map_err(|e| UiError::chart(&e.to_string()))?;
        svgs.insert(chart.name().replace('-', "_"), svg);
    }
    Ok(Charts {
        window: window.as_secs(),
        svgs,
    })
}

/// The activity snapshot.
pub async fn activity(handle: &GatewayHandle) -> Activity {
    Activity {
        requests: handle.recent_requests(TAIL),
        logs: handle.logs(TAIL),
        daemon_logs: handle.daemon_logs(TAIL),
        cache: handle.cache_stats().await,
    }
}

/// Pushes the status now. Returns whether the gateway is still worth reporting
/// on (false once it stopped), so the emitter knows when to end.
pub fn push_status<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<bool> {
    let Some(state) = app.try_state::<AppState>() else {
        return Ok(true); // not managed yet: nothing to say, try again next tick
    };
    let status = state.status();
    let live = status.state != "stopped";
    app.emit(STATUS_EVENT, &status)?;
    crate::tray::refresh(app, &status);
    Ok(live)
}

/// Pushes the model list now (after a warm/cool/load/unload, and every 2 s).
pub fn push_models<R: Runtime>(app: &AppHandle<R>) {
    let Some(handle) = app.try_state::<AppState>().and_then(|s| s.handle().ok()) else {
        return;
    };
    let models = handle.models();
    crate::tray::refresh_models(app, &models);
    if let Err(err) = app.emit(MODELS_EVENT, &models) {
        tracing::warn!("cannot push models to the window: {err}");
    }
}

/// What the last charts pushed showed: redrawn only when this changes.
#[derive(Debug, Clone, PartialEq)]
struct Drawn {
    view: ChartView,
    /// Requests in the window and the newest second that had any.
    requests: u64,
    newest: u64,
    models: usize,
}

/// Whether the main window is on screen (hidden to the tray, it needs nothing
/// but the status).
fn window_shown<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.get_webview_window(crate::tray::MAIN_WINDOW)
        .is_some_and(|w| w.is_visible().unwrap_or(true))
}

/// Pushes charts (when their data changed) and activity.
async fn push_slow<R: Runtime>(
    app: &AppHandle<R>,
    last: &mut Option<(Drawn, tokio::time::Instant)>,
) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    let Ok(handle) = state.handle() else {
        return;
    };
    let view = state.chart_view();
    let history = handle.history(Duration::from_secs(view.window_s.clamp(60, 86_400)));
    let drawn = Drawn {
        view,
        requests: history.points.iter().map(|p| p.requests).sum(),
        newest: history
            .points
            .iter()
            .rev()
            .find(|p| p.requests > 0)
            .map_or(0, |p| p.t),
        models: history.models.len(),
    };
    let fresh = last
        .as_ref()
        .is_some_and(|(was, at)| *was == drawn && at.elapsed() < CHART_REFRESH);
    if !fresh {
        match charts(&handle, view) {
            Ok(charts) => {
                if let Err(err) = app.emit(CHARTS_EVENT, &charts) {
                    tracing::warn!("cannot push charts to the window: {err}");
                }
                *last = Some((drawn, tokio::time::Instant::now()));
            }
            Err(err) => tracing::warn!("cannot draw the charts: {err}"),
        }
    }
    let activity = activity(&handle).await;
    if let Err(err) = app.emit(ACTIVITY_EVENT, &activity) {
        tracing::warn!("cannot push activity to the window: {err}");
    }
}

/// Spawns the emitter on Tauri's runtime. It ends by itself after reporting
/// `stopped`, so quitting needs no handle to it.
pub fn spawn<R: Runtime>(app: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        // After a stall (suspend, busy machine) send one fresh snapshot, not a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut charts = None;
        for n in 0u64.. {
            tick.tick().await;
            match push_status(&app) {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => tracing::warn!("cannot push status to the window: {err}"),
            }
            if n % 2 == 0 {
                // The tray's model items follow even with the window hidden.
                push_models(&app);
                if window_shown(&app) {
                    push_slow(&app, &mut charts).await;
                } else {
                    // Shown again: draw at once.
                    charts = None;
                }
            }
        }
    });
}
