//! The commands the webview may invoke. Each is a few lines over [`AppState`] or
//! [`tray`](crate::tray): no logic lives here that the tray or an HTTP route
//! would need too.

use tauri::{AppHandle, Runtime, State};

use crate::error::UiError;
use crate::state::AppState;
use crate::status::Status;
use crate::tray::{self, TrayAction};

/// The current status; the window calls it once at load, then listens for
/// [`STATUS_EVENT`](crate::status::STATUS_EVENT) pushes.
#[tauri::command]
pub async fn gateway_status(state: State<'_, AppState>) -> Result<Status, UiError> {
    Ok(state.status())
}

/// Runs a tray action from the window, for desktops that show no tray.
#[tauri::command]
pub async fn tray_action<R: Runtime>(app: AppHandle<R>, action: TrayAction) -> Result<(), UiError> {
    tray::perform(&app, action).map_err(|err| UiError::tauri(&err))
}
