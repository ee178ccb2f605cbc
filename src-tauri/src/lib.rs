//! Warmline's tray app: the gateway embedded in-process, a tray icon, and a
//! dashboard window.
//!
//! This crate is wiring only; the gateway is the `warmline` library, exactly as the
//! headless `warmline serve` runs it, and every command is a thin wrapper over the
//! same [`GatewayHandle`](warmline::GatewayHandle) methods its HTTP admin routes
//! use. The life of the app:
//!
//! ```text
//! setup ──► settings::load (store, recovered if damaged) ──► AppState::start
//!   │            prints "warmline listening on http://HOST:PORT" once it serves
//!   ├─► tray icon (status line, Open, Keep warm ▸, Pause, Ollama, Quit)
//!   ├─► events::spawn: status every 1 s; models, charts, activity every 2 s ──► ui/
//!   ├─► the dashboard window (hidden when launched at login: --autostart)
//!   └─► SIGTERM / SIGINT ──► AppHandle::exit
//! second launch ──► single-instance plugin ──► focus the running one's window
//! window closed ──► hidden (the gateway keeps serving); Quit ──► RunEvent::Exit
//! RunEvent::Exit ──► AppState::stop (graceful; a daemon Warmline started stops,
//!                     an adopted one is left alone)
//! ```
//!
//! Modules: [`state`] holds the gateway handle, [`settings`] the store,
//! [`events`] what is pushed to the window, [`tray`] the tray and its actions,
//! [`commands`] the thin commands the webview invokes, [`autostart`] start at
//! login, [`error`] the `{code, message}` shape the webview sees.

pub mod actions;
pub mod autostart;
pub mod commands;
pub mod error;
pub mod events;
pub mod settings;
pub mod state;
pub mod tray;

use std::io::Write;

use tauri::{AppHandle, Builder, Manager, RunEvent, Runtime, WindowEvent};

pub use crate::events::STATUS_EVENT;
pub use crate::state::{AppState, AppStatus};
pub use crate::tray::TrayAction;

/// Registers plugins, commands and window behaviour. Shared by [`run`] and the
/// mock-runtime tests, so the tests exercise the real wiring.
pub fn configure<R: Runtime>(builder: Builder<R>) -> Builder<R> {
    builder
        // Settings, the warm set and start-at-login, in the app's data folder.
        .plugin(tauri_plugin_store::Builder::default().build())
        .invoke_handler(tauri::generate_handler![
            commands::app_status,
            commands::models,
            commands::warm,
            commands::cool,
            commands::load,
            commands::unload,
            commands::charts,
            commands::activity,
            commands::purge_cache,
            commands::daemon,
            commands::settings,
            commands::update_settings,
            commands::set_autostart,
            commands::tray_action,
            commands::start_demo,
        ])
        .on_window_event(|window, event| {
            // A tray app: closing the window hides it and the gateway keeps serving.
            // Quit (tray or window) is the way out.
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.label() == tray::MAIN_WINDOW
            {
                api.prevent_close();
                if let Err(err) = window.hide() {
                    tracing::warn!("cannot hide the window: {err}");
                }
            }
        })
}

/// Builds and runs the app until Quit. The binary's whole `main`.
pub fn run() {
    // Same logging as `warmline serve`: RUST_LOG, default `warmline=info`, on stderr.
    warmline::sys::logging::init();
    // As `warmline serve`: room for the connections the gateway may hold.
    warmline::sys::os::raise_fd_limit();
    let builder = Builder::default()
        // First, so a second launch hands over before anything else starts: it
        // focuses this one's window and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Err(err) = tray::show_main_window(app) {
                tracing::warn!("cannot show the window for a second launch: {err}");
            }
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec![autostart::AUTOSTART_FLAG]),
        ));
    let app = configure(builder)
        .setup(|app| {
            start(app.handle());
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(err) => {
            tracing::error!("cannot start the app: {err}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            stop(app);
        }
    });
}

/// Starts the gateway and everything that reports on it. Never fails: a gateway
/// that cannot start becomes a failed [`AppState`] that the window shows.
pub fn start<R: Runtime>(app: &AppHandle<R>) {
    // First, so a SIGTERM that follows the ready line already exits gracefully.
    #[cfg(unix)]
    exit_on_signal(app.clone());

    let loaded = settings::load(app);
    let warm = settings::warm_set(app);
    let state = tauri::async_runtime::block_on(AppState::start(loaded.config, warm));
    state.set_notice(loaded.notice);
    let ready = state.listen_url();
    if let Some(error) = state.status().error {
        tracing::error!("gateway not started: {}", error.message);
    }
    app.manage(state);

    if let Err(err) = tray::create(app, actions::on_click) {
        tracing::warn!("no tray icon ({err}); the window has every action");
    }
    events::spawn(app.clone());
    // An autostart launch stays in the tray; any other opens the dashboard.
    if autostart::launched_at_login()
        && let Some(window) = app.get_webview_window(tray::MAIN_WINDOW)
        && let Err(err) = window.hide()
    {
        tracing::warn!("cannot start hidden: {err}");
    }

    // The same line `warmline serve` prints, so scripts wait for either the same way.
    if let Some(url) = ready {
        let _ = writeln!(std::io::stdout().lock(), "warmline listening on {url}");
    }
}

/// Stops the gateway; called once the event loop is about to end.
fn stop<R: Runtime>(app: &AppHandle<R>) {
    if let Some(state) = app.try_state::<AppState>() {
        tauri::async_runtime::block_on(state.stop());
    }
}

/// Turns SIGTERM and SIGINT into a normal exit, so `kill` and Ctrl-C also stop the
/// gateway gracefully instead of dropping in-flight requests. The handlers are
/// registered before this returns, so no signal slips past them.
#[cfg(unix)]
fn exit_on_signal<R: Runtime>(app: AppHandle<R>) {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = tauri::async_runtime::block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    });
    let (mut term, mut int) = match signals {
        Ok(signals) => signals,
        Err(err) => {
            tracing::warn!("cannot listen for SIGTERM/SIGINT: {err}");
            return;
        }
    };
    tauri::async_runtime::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        app.exit(0);
    });
}

#[cfg(test)]
pub(crate) mod tests;
