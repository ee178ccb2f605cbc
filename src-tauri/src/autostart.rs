//! Start at login (opt-in), through tauri-plugin-autostart: on Linux an XDG
//! autostart entry (`~/.config/autostart/Warmline.desktop`) that launches the app
//! with [`AUTOSTART_FLAG`], so a login start stays in the tray instead of opening
//! the dashboard.

use tauri::{Manager, Runtime};

use crate::error::UiError;

/// The argument an autostart launch carries.
pub const AUTOSTART_FLAG: &str = "--autostart";

/// Whether this process was launched at login.
pub fn launched_at_login() -> bool {
    std::env::args().any(|a| a == AUTOSTART_FLAG)
}

/// Turns start at login on or off.
pub fn set<R: Runtime, M: Manager<R>>(app: &M, enabled: bool) -> Result<(), UiError> {
    let Some(launcher) = app.try_state::<tauri_plugin_autostart::AutoLaunchManager>() else {
        return Err(UiError::autostart(
            "start at login is not available in this build".into(),
        ));
    };
    let done = if enabled {
        launcher.enable()
    } else {
        launcher.disable()
    };
    done.map_err(|e| UiError::autostart(e.to_string()))
}
