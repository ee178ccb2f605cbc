//! Mock-runtime tests of the real wiring: `configure` with the real context
//! (config, capabilities, store plugin), real gateways on 127.0.0.1:0 in front of
//! an in-process Ollama simulator, and the commands invoked as the webview does.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tauri::menu::MenuItemKind;
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, Manager, WebviewWindow, WebviewWindowBuilder};
use warmline::Config;

use super::*;
use crate::error::UiError;
use crate::tray::{Look, Snapshot};

/// Every test's files live under one temporary directory, as XDG_DATA_HOME,
/// XDG_CONFIG_HOME and XDG_STATE_HOME (set once: the environment is the
/// process's); only one test writes settings there.
fn data_home() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = std::env::temp_dir().join(format!("warmline-app-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("data home");
        // SAFETY: set before any test thread reads the environment through
        // Tauri (all tests call this first, under the Once).
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("XDG_DATA_HOME", dir.join("data"));
            std::env::set_var("XDG_CONFIG_HOME", dir.join("config"));
            std::env::set_var("XDG_STATE_HOME", dir.join("state"));
        }
    });
}

/// The app as `run` wires it, on the mock runtime. Setup does not run on
/// `build()`, so state and the main window are added here.
pub(crate) fn mock_app(state: Option<AppState>) -> App<MockRuntime> {
    data_home();
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

fn config(listen: SocketAddr, upstream: &str) -> Config {
    Config {
        listen,
        ..Config::with_upstreams([upstream.parse().expect("upstream url")])
    }
}

/// A gateway on a free port in front of `upstream`.
fn running_state(upstream: &str) -> AppState {
    let listen = "127.0.0.1:0".parse().expect("addr");
    let state = tauri::async_runtime::block_on(AppState::start(Ok(config(listen, upstream)), None));
    assert!(
        state.listen_url().is_some(),
        "gateway did not start: {:?}",
        state.status()
    );
    state
}

/// An in-process Ollama simulator, on Tauri's runtime.
fn simulator() -> ollama_sim::SimHandle {
    tauri::async_runtime::block_on(ollama_sim::Simulator::bind(
        "127.0.0.1:0".parse().expect("addr"),
        ollama_sim::SimConfig::default(),
    ))
    .expect("simulator")
}

fn invoke(webview: &WebviewWindow<MockRuntime>, cmd: &str, body: Value) -> Result<Value, Value> {
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

/// Polls `check` every 20 ms for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(app: &App<MockRuntime>) {
    tauri::async_runtime::block_on(app.state::<AppState>().stop());
}

#[test]
fn app_status_returns_the_running_gateway_its_daemon_and_stats() {
    let sim = simulator();
    let state = running_state(&sim.url());
    let url = state.listen_url().expect("running");
    let app = mock_app(Some(state));
    let window = main_window(&app);

    let status = invoke(&window, "app_status", json!({})).expect("command succeeds");

    assert_eq!(status["state"], "running");
    assert_eq!(status["listen"], url.as_str());
    assert!(status["health"]["upstreams"].is_array(), "{status}");
    assert!(status["stats"]["requests"].is_u64(), "{status}");
    assert_eq!(status["daemon"]["state"], "disabled", "{status}");
    assert_eq!(status["ollama"]["found"], true, "{status}");
    assert_eq!(status["demo"], false);
    stop(&app);
}

#[test]
fn a_taken_port_is_reported_in_the_status_not_a_crash() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let upstream = format!("http://{}", dead_addr());
    let state = tauri::async_runtime::block_on(AppState::start(Ok(config(addr, &upstream)), None));
    let app = mock_app(Some(state));
    let window = main_window(&app);

    let status = invoke(&window, "app_status", json!({})).expect("command succeeds");

    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["listen"], format!("http://{addr}"));
    assert_eq!(status["error"]["code"], "address_in_use", "{status}");
    assert!(
        status["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("WARMLINE_LISTEN"))
    );
    // Commands that need the gateway say why they cannot.
    let err = invoke(&window, "models", json!({})).expect_err("no gateway");
    assert_eq!(err["code"], "address_in_use");
}

#[test]
fn unknown_commands_and_actions_are_rejected() {
    let sim = simulator();
    let app = mock_app(Some(running_state(&sim.url())));
    let window = main_window(&app);
    assert!(invoke(&window, "no_such_command", json!({})).is_err());
    assert!(invoke(&window, "tray_action", json!({ "action": "explode" })).is_err());
    let err = invoke(&window, "daemon", json!({ "action": "explode" })).expect_err("unknown");
    assert_eq!(err["code"], "unknown_action");
    stop(&app);
}

/// The window drives the same things the tray does: models warm and cool, the
/// gateway pauses and resumes, the daemon commands answer (here: not supervised).
#[test]
fn the_window_warms_models_pauses_the_gateway_and_reads_charts_and_activity() {
    let sim = simulator();
    let state = running_state(&sim.url());
    let url = state.listen_url().expect("running");
    let app = mock_app(Some(state));
    let window = main_window(&app);
    eventually("the model list", || {
        invoke(&window, "models", json!({}))
            .is_ok_and(|m| m.as_array().is_some_and(|m| !m.is_empty()))
    });

    let warm = invoke(&window, "warm", json!({ "model": "llama3.2" })).expect("warm");
    assert_eq!(warm["name"], "llama3.2:latest");
    assert_eq!(warm["warm"], true);
    assert_eq!(
        warm["loaded"], true,
        "warm answers once the model is loaded"
    );
    assert!(sim.counters().loads >= 1, "the simulator loaded it");
    let cool = invoke(&window, "cool", json!({ "model": "llama3.2" })).expect("cool");
    assert_eq!(cool["warm"], false);
    let err = invoke(&window, "warm", json!({ "model": "no-such-model" })).expect_err("absent");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{err}"
    );

    let charts = invoke(
        &window,
        "charts",
        json!({ "window": 300, "theme": "light" }),
    )
    .expect("charts");
    assert_eq!(charts["window"], 300);
    for name in ["latency", "ttft", "throughput", "hit_rate", "models"] {
        assert!(
            charts["svgs"][name]
                .as_str()
                .is_some_and(|svg| svg.starts_with("<svg")),
            "{name}"
        );
    }
    let activity = invoke(&window, "activity", json!({})).expect("activity");
    assert!(activity["requests"].is_array() && activity["cache"]["enabled"].is_boolean());
    let err = invoke(&window, "daemon", json!({ "action": "restart" })).expect_err("disabled");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("supervise")),
        "{err}"
    );

    let addr = url.trim_start_matches("http://").to_owned();
    invoke(&window, "tray_action", json!({ "action": "pause" })).expect("pause");
    assert_eq!(
        invoke(&window, "app_status", json!({})).expect("status")["state"],
        "paused"
    );
    assert!(
        TcpStream::connect(&addr).is_err(),
        "paused: the port is closed"
    );
    invoke(&window, "tray_action", json!({ "action": "resume" })).expect("resume");
    assert_eq!(
        invoke(&window, "app_status", json!({})).expect("status")["state"],
        "running"
    );
    assert!(TcpStream::connect(&addr).is_ok(), "the same address again");
    stop(&app);
}

#[test]
fn tray_action_open_creates_the_window_once() {
    let app = mock_app(None);
    assert!(app.get_webview_window(tray::MAIN_WINDOW).is_none());
    tauri::async_runtime::block_on(crate::actions::perform(app.handle(), TrayAction::Open))
        .expect("open");
    let window = app
        .get_webview_window(tray::MAIN_WINDOW)
        .expect("window created");
    assert!(window.is_visible().expect("visible"));
    tauri::async_runtime::block_on(crate::actions::perform(app.handle(), TrayAction::Open))
        .expect("again");
    assert_eq!(app.webview_windows().len(), 1);
}

#[test]
fn status_is_pushed_as_an_event_until_the_gateway_stops() {
    let sim = simulator();
    let state = running_state(&sim.url());
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
        events::push_status(app.handle()).expect("push"),
        "a running gateway stays live"
    );
    let payload: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).expect("event"))
            .expect("JSON payload");
    assert_eq!(payload["state"], "running");

    stop(&app);
    assert!(
        TcpStream::connect(addr).is_err(),
        "the gateway still accepts after stop"
    );
    assert!(
        !events::push_status(app.handle()).expect("push"),
        "the emitter ends after stop"
    );
    let payload: Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).expect("event"))
            .expect("JSON payload");
    assert_eq!(payload["state"], "stopped");
}

/// The menu: a disabled status line, Open, a "Keep warm" check item per
/// model, Pause (or Resume), the daemon's three actions enabled as its state
/// allows, Quit.
#[test]
fn the_tray_menu_lists_every_action_and_a_warm_toggle_per_model() {
    let app = mock_app(None);
    let snapshot = Snapshot {
        line: "Warmline on 127.0.0.1:11435 · Ollama running · 1 warm".into(),
        look: Look::Ok,
        paused: false,
        daemon: Some(warmline::supervisor::DaemonState::Running),
        models: vec![
            ("llama3.2:latest".into(), true),
            ("qwen3:0.6b".into(), false),
        ],
    };
    let menu = tray::menu(&app, &snapshot).expect("menu builds");
    let items = menu.items().expect("items");
    let described: Vec<String> = items
        .iter()
        .map(|item| match item {
            MenuItemKind::MenuItem(i) => format!(
                "{}:{}:{}",
                i.id().as_ref(),
                i.text().expect("text"),
                i.is_enabled().expect("enabled")
            ),
            MenuItemKind::Submenu(s) => {
                let inner: Vec<String> = s
                    .items()
                    .expect("items")
                    .iter()
                    .filter_map(|i| i.as_check_menuitem().cloned())
                    .map(|c| format!("{}={}", c.id().as_ref(), c.is_checked().expect("checked")))
                    .collect();
                format!("{}[{}]", s.text().expect("text"), inner.join(","))
            }
            MenuItemKind::Predefined(_) => "---".into(),
            _ => "?".into(),
        })
        .collect();
    assert_eq!(
        described,
        [
            "status:Warmline on 127.0.0.1:11435 · Ollama running · 1 warm:false",
            "---",
            "open:Open dashboard:true",
            "Keep warm[warm:llama3.2:latest=true,warm:qwen3:0.6b=false]",
            "---",
            "pause:Pause gateway:true",
            "daemon_start:Start Ollama:false",
            "daemon_stop:Stop Ollama:true",
            "daemon_restart:Restart Ollama:true",
            "---",
            "quit:Quit Warmline:true",
        ]
    );

    // Paused, with a daemon that was stopped: Resume, and only Start.
    let paused = Snapshot {
        paused: true,
        daemon: Some(warmline::supervisor::DaemonState::Stopped),
        ..snapshot
    };
    let items = tray::menu(&app, &paused)
        .expect("menu")
        .items()
        .expect("items");
    let text = |i: usize| match &items[i] {
        MenuItemKind::MenuItem(item) => (
            item.text().expect("text"),
            item.is_enabled().expect("enabled"),
        ),
        _ => panic!("not an item"),
    };
    assert_eq!(text(5), ("Resume gateway".into(), true));
    assert_eq!(text(6), ("Start Ollama".into(), true));
    assert_eq!(text(7), ("Stop Ollama".into(), false));
}

#[test]
fn menu_ids_round_trip_and_the_window_sends_the_same_ones() {
    for action in TrayAction::ALL {
        assert_eq!(TrayAction::from_id(action.id()), Some(action));
        assert_eq!(serde_json::to_value(action).expect("json"), action.id());
    }
    assert_eq!(TrayAction::from_id(tray::STATUS_ITEM_ID), None);
    assert_eq!(TrayAction::from_id("warm:llama3.2:latest"), None);
}

/// The icon and status line follow the gateway: ok, degraded (an alert), down,
/// paused, not running.
#[test]
fn the_tray_look_follows_the_state() {
    let sim = simulator();
    let state = running_state(&sim.url());
    let status = state.status();
    let snapshot = Snapshot::of(&status, vec![("llama3.2:latest".into(), true)]);
    assert!(
        snapshot.line.starts_with("Warmline on 127.0.0.1:"),
        "{}",
        snapshot.line
    );
    assert!(snapshot.line.ends_with("· 1 warm"), "{}", snapshot.line);
    let mut degraded = status.clone();
    if let Some(health) = &mut degraded.health {
        health.status = warmline::HealthStatus::Degraded;
    }
    assert_eq!(Snapshot::of(&degraded, Vec::new()).look, Look::Degraded);
    let mut down = status.clone();
    if let Some(health) = &mut down.health {
        health.status = warmline::HealthStatus::Down;
    }
    assert_eq!(Snapshot::of(&down, Vec::new()).look, Look::Down);
    let paused = AppStatus {
        state: "paused",
        ..status
    };
    let snapshot = Snapshot::of(&paused, Vec::new());
    assert_eq!(snapshot.look, Look::Paused);
    assert!(snapshot.paused && snapshot.line.starts_with("Paused"));
    let failed = AppState::failed(
        None,
        UiError {
            code: "address_in_use",
            message: "cannot listen on 127.0.0.1:11435".into(),
            hint: None,
            field: None,
        },
    );
    let snapshot = Snapshot::of(&failed.status(), Vec::new());
    assert_eq!(
        (snapshot.line.as_str(), snapshot.look),
        ("Gateway not running", Look::Down)
    );
    tauri::async_runtime::block_on(state.stop());
}

/// Settings: a change through the window applies at once, is kept in the
/// store and comes back on the next start; an invalid one names its field and
/// changes nothing; a damaged store file is moved aside and the app starts
/// with defaults; stored settings this version refuses are set aside too.
#[test]
fn settings_persist_across_starts_and_a_damaged_store_is_recovered() {
    let sim = simulator();
    let app = mock_app(None);
    let store_file = settings::store_path(&app).expect("a settings directory");
    assert!(
        store_file.ends_with("config/warmline/settings.json"),
        "{store_file:?}"
    );
    let _ = std::fs::remove_file(&store_file);
    // Where an older version kept it: moved, once, on the next load.
    let old_file = app
        .path()
        .app_data_dir()
        .expect("data dir")
        .join(settings::STORE_FILE);
    std::fs::create_dir_all(old_file.parent().expect("dir")).expect("old dir");
    std::fs::write(&old_file, br#"{"version":1,"settings":{}}"#).expect("old store");
    let loaded = settings::load(&app);
    assert!(
        !old_file.exists() && store_file.exists(),
        "moved to {store_file:?}"
    );
    assert_eq!(loaded.notice, None);
    let mut config = loaded.config.expect("defaults are valid");
    assert!(
        config.daemon.supervise,
        "the app supervises Ollama by default"
    );
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.upstreams = Config::with_upstreams([sim.url().parse().expect("url")]).upstreams;
    config.daemon.supervise = false;
    let state = tauri::async_runtime::block_on(AppState::start(Ok(config), None));
    app.manage(state);
    let window = main_window(&app);

    let applied = invoke(
        &window,
        "update_settings",
        json!({ "patch": { "cache": { "max_size": "32MiB" }, "rate_limit": { "burst": 7 } } }),
    )
    .expect("valid settings");
    assert_eq!(
        applied["changed"],
        json!(["cache.max_size", "rate_limit.burst"])
    );
    let err = invoke(
        &window,
        "update_settings",
        json!({ "patch": { "cache": { "max_size": "lots" } } }),
    )
    .expect_err("invalid");
    assert_eq!(err["code"], "invalid_setting");
    assert_eq!(err["field"], "cache.max_size");
    let shown = invoke(&window, "settings", json!({})).expect("settings");
    assert_eq!(shown["settings"]["cache"]["max_size"], "32MiB");
    assert_eq!(shown["autostart"], false);
    stop(&app);

    // The next start reads them back.
    let text = std::fs::read_to_string(&store_file).expect("the store was written");
    assert!(text.contains("32MiB"), "{text}");
    let loaded = settings::load(&app);
    assert_eq!(loaded.notice, None);
    let config = loaded.config.expect("valid");
    assert_eq!(config.cache.max_bytes, 32 << 20);
    assert_eq!(config.rate_limit.burst.get(), 7);

    // A damaged file: moved aside (kept), defaults, a notice naming the copy.
    std::fs::write(&store_file, b"{\"settings\": {\"cache\": ").expect("damage");
    let app2 = mock_app(None);
    let loaded = settings::load(&app2);
    let notice = loaded.notice.expect("a notice");
    assert!(notice.contains("could not be read"), "{notice}");
    let copy = notice
        .split("kept at ")
        .nth(1)
        .map(|p| p.trim_end_matches('.'))
        .expect("a path");
    assert_eq!(
        std::fs::read(copy).expect("the copy"),
        b"{\"settings\": {\"cache\": "
    );
    assert_eq!(loaded.config.expect("defaults").cache.max_bytes, 256 << 20);

    // Settings an older or newer version wrote that this one refuses.
    std::fs::write(
        &store_file,
        br#"{"version":1,"settings":{"cache":{"max_sise":"1GiB"}},"warm":["llama3.2:latest"]}"#,
    )
    .expect("write");
    let app3 = mock_app(None);
    let loaded = settings::load(&app3);
    let notice = loaded.notice.expect("a notice");
    assert!(notice.contains("max_sise"), "{notice}");
    assert!(loaded.config.is_ok(), "the defaults start");
    assert_eq!(settings::stored(&app3), json!({}), "set back to defaults");
    // The warm set an older version kept in the store moves to the state file.
    let warm = settings::warm_set(&app3).expect("a state directory");
    assert_eq!(
        warm.load().expect("readable").map(|p| p.warm),
        Some(vec!["llama3.2:latest".to_owned()]),
        "the warm set survives"
    );
    let text = std::fs::read_to_string(&store_file).expect("store");
    assert!(
        !text.contains("llama3.2"),
        "moved out of the settings: {text}"
    );
    let state = warmline::state::default_state_file().expect("state file");
    assert!(state.ends_with("state/warmline/state.json"), "{state:?}");
}
