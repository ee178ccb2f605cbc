//! The commands the webview may invoke. Each is a few lines over the core's
//! [`GatewayHandle`](warmline::GatewayHandle) — the same methods the HTTP admin
//! routes and the CLI use — or over [`AppState`]; no logic lives here that the
//! tray or an HTTP route would need too. Errors are [`UiError`]s:
//! `{code, message, hint?, field?}`.

use serde::Serialize;
use tauri::{AppHandle, Runtime, State};
use warmline::models::ModelView;
use warmline::supervisor::DaemonStatus;

use crate::error::UiError;
use crate::events::{self, Activity, Charts};
use crate::settings;
use crate::state::{AppState, AppStatus, ChartView};
use crate::tray::TrayAction;

/// The whole status, for the first paint (then pushed every second).
#[tauri::command]
pub async fn app_status(state: State<'_, AppState>) -> Result<AppStatus, UiError> {
    Ok(state.status())
}

/// Installed models with their loaded state, warm flag, memory and expiry.
#[tauri::command]
pub async fn models(state: State<'_, AppState>) -> Result<Vec<ModelView>, UiError> {
    Ok(state.handle()?.models())
}

/// Keeps `model` loaded (answers once it is).
#[tauri::command]
pub async fn warm<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    model: String,
) -> Result<ModelView, UiError> {
    model_changed(&app, state.handle()?.warm(&model, true)).await
}

/// Stops keeping `model` loaded, and unloads it.
#[tauri::command]
pub async fn cool<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    model: String,
) -> Result<ModelView, UiError> {
    model_changed(&app, state.handle()?.cool(&model)).await
}

/// Loads `model` once (it may go cold again).
#[tauri::command]
pub async fn load<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    model: String,
) -> Result<ModelView, UiError> {
    model_changed(&app, state.handle()?.load(&model)).await
}

/// Unloads `model` wherever it is loaded.
#[tauri::command]
pub async fn unload<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    model: String,
) -> Result<ModelView, UiError> {
    model_changed(&app, state.handle()?.unload(&model)).await
}

/// Waits for a model action, then pushes the model list at once (the tray and
/// the window show the change without waiting for the next tick).
async fn model_changed<R: Runtime>(
    app: &AppHandle<R>,
    action: impl std::future::Future<Output = Result<ModelView, warmline::Error>>,
) -> Result<ModelView, UiError> {
    let view = action.await;
    events::push_models(app);
    view.map_err(|e| UiError::from_core(&e))
}

/// The dashboard's charts over the last `window` seconds; later pushes cover
/// the same window, drawn for the `theme` asked for.
#[tauri::command]
pub async fn charts(
    state: State<'_, AppState>,
    window: u64,
    theme: Option<String>,
) -> Result<Charts, UiError> {
    let view = ChartView {
        window_s: window.clamp(60, 86_400),
        dark: theme.as_deref() == Some("dark"),
    };
    state.set_chart_view(view);
    events::charts(&state.handle()?, view)
}

/// Recent requests, the gateway's and the daemon's log tails, and the cache.
#[tauri::command]
pub async fn activity(state: State<'_, AppState>) -> Result<Activity, UiError> {
    Ok(events::activity(&state.handle()?).await)
}

/// Empties the cache, or only `model`'s entries.
#[tauri::command]
pub async fn purge_cache(
    state: State<'_, AppState>,
    model: Option<String>,
) -> Result<warmline::cache::Purged, UiError> {
    let model = model.filter(|m| !m.is_empty());
    Ok(state.handle()?.purge_cache(model.as_deref()).await)
}

/// Starts, stops or restarts the supervised Ollama.
#[tauri::command]
pub async fn daemon(state: State<'_, AppState>, action: String) -> Result<DaemonStatus, UiError> {
    let handle = state.handle()?;
    let done = match action.as_str() {
        "start" => handle.daemon_start().await,
        "stop" => handle.daemon_stop().await,
        "restart" => handle.daemon_restart().await,
        other => return Err(UiError::unknown_action(other)),
    };
    done.map_err(|e| UiError::from_core(&e))
}

/// What the settings form shows.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    /// Every setting in force, secrets masked.
    pub settings: warmline::config::RawConfig,
    pub autostart: bool,
}

/// The settings in force (secrets masked) and the start-at-login choice.
#[tauri::command]
pub async fn settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<SettingsView, UiError> {
    Ok(SettingsView {
        settings: state.handle()?.settings(),
        autostart: settings::autostart(&app),
    })
}

/// Applies a JSON merge patch of the settings at once and keeps it; an invalid
/// one changes nothing and names its field.
#[tauri::command]
pub async fn update_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    patch: serde_json::Value,
) -> Result<warmline::Applied, UiError> {
    let handle = state.handle()?;
    let mut patch = patch;
    // Masked passwords sent back stand for the real ones, here as in the core.
    handle.config().unmask(&mut patch);
    let applied = handle
        .update_settings(&patch)
        .await
        .map_err(|e| UiError::from_core(&e))?;
    settings::remember(&app, &patch).map_err(UiError::store)?;
    Ok(applied)
}

/// Turns start-at-login on or off; returns the state now in force.
#[tauri::command]
pub async fn set_autostart<R: Runtime>(app: AppHandle<R>, enabled: bool) -> Result<bool, UiError> {
    crate::autostart::set(&app, enabled)?;
    settings::set_autostart(&app, enabled).map_err(UiError::store)?;
    Ok(enabled)
}

/// Runs a tray action from the window, for desktops that show no tray.
#[tauri::command]
pub async fn tray_action<R: Runtime>(app: AppHandle<R>, action: TrayAction) -> Result<(), UiError> {
    crate::actions::perform(&app, action).await
}

/// Starts demo mode (an Ollama simulator in this process) and answers the new
/// status.
#[tauri::command]
pub async fn start_demo<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<AppStatus, UiError> {
    state.start_demo().await?;
    events::push_models(&app);
    Ok(state.status())
}
