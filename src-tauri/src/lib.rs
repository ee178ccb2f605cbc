//! Warmline's tray app: the gateway embedded in-process, a tray icon, and a window
//! that shows live status.
//!
//! This crate is wiring only; the gateway is the `warmline` library, exactly as the
//! headless `warmline serve` runs it. The life of the app:
//!
//! ```text
//! setup ──► Config::from_env_and_file ──► Gateway::start ──► AppState (running | failed)
//!   │            prints "warmline listening on http://HOST:PORT" once it serves
//!   ├─► tray icon (status line, Open, Quit)
//!   ├─► status emitter: AppState::status() ──emit "warmline://status" every 1 s──► ui/
//!   └─► SIGTERM / SIGINT ──► AppHandle::exit
//! RunEvent::Exit ──► AppState::stop (graceful, bounded by the core's drain timeout)
//! ```
//!
//! Modules: [`state`] holds the gateway handle, [`status`] the snapshot and its
//! emitter, [`tray`] the tray and its actions, [`commands`] the thin commands the
//! webview invokes, [`error`] the `{code, message}` shape the webview sees.

pub mod commands;
pub mod error;
pub mod state;
pub mod status;
pub mod tray;

use std::io::Write;

use tauri::{AppHandle, Builder, Manager, RunEvent, Runtime, WindowEvent};

pub use crate::state::AppState;
pub use crate::status::{STATUS_EVENT, Status};
pub use crate::tray::TrayAction;

/// Registers plugins, commands and window behaviour. Shared by [`run`] and the
/// mock-runtime tests, so the tests exercise the real wiring.
pub fn configure<R: Runtime>(builder: Builder<R>) -> Builder<R> {
    builder
        // Settings persistence for later issues; registered now so the ACL and the
        // data directory ($XDG_DATA_HOME/dev.warmline.app) are in place from day one.
        .plugin(tauri_plugin_store::Builder::default().build())
        .invoke_handler(tauri::generate_handler![
            commands::gateway_status,
            commands::tray_action
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
    warmline::logging::init();
    let app = configure(Builder::default())
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
fn start<R: Runtime>(app: &AppHandle<R>) {
    // First, so a SIGTERM that follows the ready line already exits gracefully.
    #[cfg(unix)]
    exit_on_signal(app.clone());

    let config = warmline::Config::from_env_and_file(None);
    let state = tauri::async_runtime::block_on(AppState::start(config));
    let ready = state.listen_url();
    if let Status::Failed { error, .. } = state.status() {
        tracing::error!("gateway not started: {error}");
    }
    app.manage(state);

    if let Err(err) = tray::create(app) {
        tracing::warn!("no tray icon ({err}); the window has every action");
    }
    status::spawn_emitter(app.clone());

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
pub(crate) mod tests {
    //! Mock-runtime tests of the real wiring: `configure` with the real context
    //! (config, capabilities, store plugin) and a real gateway on 127.0.0.1:0.

    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::Duration;

    use serde_json::{Value, json};
    use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
    use tauri::webview::InvokeRequest;
    use tauri::{App, Listener, WebviewWindow, WebviewWindowBuilder};
    use warmline::Config;

    use super::*;

    /// The app as `run` wires it, on the mock runtime. Setup does not run on
    /// `build()`, so state and the main window are added here.
    pub(crate) fn mock_app(state: Option<AppState>) -> App<MockRuntime> {
        let app = configure(mock_builder())
            .build(tauri::generate_context!())
            .expect("the app builds on the mock runtime");
        if let Some(state) = state {
            app.manage(state);
        }
        app
    }

    fn main_window(app: &App<MockRuntime>) -> WebviewWindow<MockRuntime> {
        WebviewWindowBuilder::new(app, tray::MAIN_WINDOW, Default::default())
            .build()
            .expect("the main window builds")
    }

    /// An address nothing listens on: bound, read, released.
    fn dead_addr() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr")
    }

    fn config(listen: SocketAddr) -> Config {
        let upstream = format!("http://{}", dead_addr());
        Config {
            listen,
            ..Config::with_upstreams([upstream.parse().expect("upstream url")])
        }
    }

    fn running_state() -> AppState {
        let listen = "127.0.0.1:0".parse().expect("addr");
        let state = tauri::async_runtime::block_on(AppState::start(Ok(config(listen))));
        assert!(
            state.listen_url().is_some(),
            "gateway did not start: {:?}",
            state.status()
        );
        state
    }

    fn invoke(
        webview: &WebviewWindow<MockRuntime>,
        cmd: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: tauri::ipc::InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(webview, request)
            .map(|body| body.deserialize::<Value>().expect("command returned JSON"))
    }

    #[test]
    fn gateway_status_command_returns_the_running_gateway() {
        let state = running_state();
        let url = state.listen_url().expect("running");
        assert_eq!(
            tray::status_line(Some(&state)),
            format!("Listening on {url}")
        );
        let app = mock_app(Some(state));
        let window = main_window(&app);

        let status = invoke(&window, "gateway_status", json!({})).expect("command succeeds");

        assert_eq!(status["state"], "running");
        assert_eq!(status["listen"], url.as_str());
        assert!(status["health"]["upstreams"].is_array(), "{status}");
        assert!(status["stats"]["requests"].is_u64(), "{status}");
        tauri::async_runtime::block_on(app.state::<AppState>().stop());
    }

    #[test]
    fn a_taken_port_is_reported_in_the_status_not_a_crash() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let state = tauri::async_runtime::block_on(AppState::start(Ok(config(addr))));
        let app = mock_app(Some(state));
        let window = main_window(&app);

        let status = invoke(&window, "gateway_status", json!({})).expect("command succeeds");

        assert_eq!(status["state"], "failed", "{status}");
        assert_eq!(status["listen"], format!("http://{addr}"));
        assert_eq!(status["error"]["code"], "address_in_use", "{status}");
        assert!(
            status["error"]["hint"]
                .as_str()
                .is_some_and(|h| h.contains("WARMLINE_LISTEN"))
        );
    }

    #[test]
    fn unknown_commands_are_rejected() {
        let app = mock_app(Some(AppState::failed(None, sample_error())));
        let window = main_window(&app);
        assert!(invoke(&window, "no_such_command", json!({})).is_err());
    }

    #[test]
    fn tray_action_command_opens_the_window_from_the_webview() {
        let app = mock_app(None);
        let window = main_window(&app);
        invoke(&window, "tray_action", json!({ "action": "open" })).expect("open succeeds");
        assert_eq!(app.webview_windows().len(), 1);
        assert!(invoke(&window, "tray_action", json!({ "action": "explode" })).is_err());
    }

    #[test]
    fn status_is_pushed_as_an_event_until_the_gateway_stops() {
        let state = running_state();
        let addr: SocketAddr = state
            .listen_url()
            .and_then(|url| url.strip_prefix("http://").map(str::to_owned))
            .and_then(|addr| addr.parse().ok())
            .expect("listen url is http://ip:port");
        let app = mock_app(Some(state));
        let (tx, rx) = mpsc::channel();
        app.listen(STATUS_EVENT, move |event| {
            let _ = tx.send(event.payload().to_owned());
        });

        assert!(
            status::push(app.handle()).expect("push"),
            "a running gateway stays live"
        );
        let payload: Value =
            serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).expect("event"))
                .expect("JSON payload");
        assert_eq!(payload["state"], "running");

        tauri::async_runtime::block_on(app.state::<AppState>().stop());
        assert!(
            TcpStream::connect(addr).is_err(),
            "the gateway still accepts after stop"
        );
        assert!(
            !status::push(app.handle()).expect("push"),
            "the emitter ends after stop"
        );
        let payload: Value =
            serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).expect("event"))
                .expect("JSON payload");
        assert_eq!(payload["state"], "stopped");
    }

    fn sample_error() -> error::UiError {
        error::UiError {
            code: "config_invalid",
            message: "listen: invalid socket address".into(),
            hint: None,
        }
    }
}
