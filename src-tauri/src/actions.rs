//! What the tray's menu items and the window's matching buttons do.
//!
//! Every action is reachable twice — from the tray menu and, through the
//! `tray_action`/`warm`/`cool` commands, from the window (a headless desktop has
//! no tray to click) — and both go through [`perform`] and [`toggle_warm`] here.
//! After acting, the new status or model list is pushed at once (see `events`),
//! so the tray and the window never wait for the next tick to show it.

use tauri::{AppHandle, Manager, Runtime};

use crate::error::UiError;
use crate::state::AppState;
use crate::tray::{TrayAction, WARM_PREFIX, show_main_window};

/// The tray's click handler: runs [`on_menu`] for the item `id` in the
/// background and logs a failure (there is nowhere else to show it).
pub fn on_click<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let id = id.to_owned();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(err) = on_menu(&app, &id).await {
            tracing::warn!("tray {id}: {err}");
        }
    });
}

/// A click on a menu item.
pub async fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) -> Result<(), UiError> {
    if let Some(model) = id.strip_prefix(WARM_PREFIX) {
        return toggle_warm(app, model).await;
    }
    match TrayAction::from_id(id) {
        Some(action) => perform(app, action).await,
        None => Ok(()),
    }
}

/// Flips "Keep warm" for `model`.
pub async fn toggle_warm<R: Runtime>(app: &AppHandle<R>, model: &str) -> Result<(), UiError> {
    let Some(state) = app.try_state::<AppState>() else {
        return Ok(());
    };
    let handle = state.handle()?;
    let warm = handle.models().iter().any(|m| m.name == model && m.warm);
    let done = if warm {
        handle.cool(model).await
    } else {
        handle.warm(model, false).await
    };
    crate::events::push_models(app);
    done.map(|_| ()).map_err(|e| UiError::from_core(&e))
}

/// Carries out an action; shared by the tray menu and the `tray_action` command.
pub async fn perform<R: Runtime>(app: &AppHandle<R>, action: TrayAction) -> Result<(), UiError> {
    let state = app.try_state::<AppState>();
    let handle = || {
        state
            .as_ref()
            .ok_or_else(UiError::stopped)
            .and_then(|s| s.handle())
    };
    match action {
        TrayAction::Open => show_main_window(app)
            .map(|_| ())
            .map_err(|e| UiError::tauri(&e))?,
        TrayAction::Pause => handle()?.pause().await,
        TrayAction::Resume => handle()?
            .resume()
            .await
            .map_err(|e| UiError::from_core(&e))?,
        TrayAction::DaemonStart => {
            handle()?
                .daemon_start()
                .await
                .map_err(|e| UiError::from_core(&e))?;
        }
        TrayAction::DaemonStop => {
            handle()?
                .daemon_stop()
                .await
                .map_err(|e| UiError::from_core(&e))?;
        }
        TrayAction::DaemonRestart => {
            handle()?
                .daemon_restart()
                .await
                .map_err(|e| UiError::from_core(&e))?;
        }
        // Exit runs `RunEvent::Exit`, where lib.rs stops the gateway gracefully.
        TrayAction::Quit => app.exit(0),
    }
    if action != TrayAction::Quit
        && let Err(err) = crate::events::push_status(app)
    {
        tracing::warn!("cannot push status: {err}");
    }
    Ok(())
}
