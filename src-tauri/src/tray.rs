//! The tray icon and its menu.
//!
//! ```text
//!   Warmline on 127.0.0.1:11435 · Ollama running · 2 warm   (status line, disabled)
//!   ─────────────
//!   Open dashboard
//!   Keep warm ▸  [x] llama3.2:latest  [ ] qwen3:0.6b  …      (one check item per model)
//!   ─────────────
//!   Pause gateway | Resume gateway
//!   Start Ollama · Stop Ollama · Restart Ollama             (enabled as the daemon allows)
//!   ─────────────
//!   Quit Warmline
//! ```
//!
//! The icon shows the state: the app icon when all is well, an amber dot when
//! degraded (an alert), a red dot on grey when nothing can serve, grey when
//! paused. The menu is rebuilt only when what it shows changed.
//!
//! The logic lives in plain functions over any [`Runtime`] ([`menu`],
//! [`Snapshot`], and `actions::perform` for what a click does), so it is unit-tested on Tauri's mock runtime: a
//! headless Linux box has no StatusNotifier host, the tray there is silently
//! invisible, and nothing can click it. For the same reason every action is
//! also reachable from the window, which sends the same [`TrayAction`] through
//! the `tray_action` command (and the warm toggles through `warm`/`cool`).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder};
use warmline::HealthStatus;
use warmline::models::ModelView;
use warmline::supervisor::DaemonState;

use crate::state::{AppState, AppStatus};

/// The tray icon's id.
pub const TRAY_ID: &str = "warmline";
/// The menu id of the disabled status line.
pub const STATUS_ITEM_ID: &str = "status";
/// The label of the window created from `tauri.conf.json`.
pub const MAIN_WINDOW: &str = "main";
/// Menu ids of the "Keep warm" items are this prefix and the model's name.
pub const WARM_PREFIX: &str = "warm:";

/// Something the tray menu (or the window) can ask the shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrayAction {
    /// Show and focus the dashboard, recreating the window if it was destroyed.
    Open,
    /// Stop accepting connections (everything else keeps running).
    Pause,
    Resume,
    DaemonStart,
    DaemonStop,
    DaemonRestart,
    /// Stop the gateway (and a daemon Warmline started) and exit.
    Quit,
}

impl TrayAction {
    /// Every action.
    pub const ALL: [TrayAction; 7] = [
        TrayAction::Open,
        TrayAction::Pause,
        TrayAction::Resume,
        TrayAction::DaemonStart,
        TrayAction::DaemonStop,
        TrayAction::DaemonRestart,
        TrayAction::Quit,
    ];

    /// The menu item id, also the command argument the window sends.
    pub fn id(self) -> &'static str {
        match self {
            TrayAction::Open => "open",
            TrayAction::Pause => "pause",
            TrayAction::Resume => "resume",
            TrayAction::DaemonStart => "daemon_start",
            TrayAction::DaemonStop => "daemon_stop",
            TrayAction::DaemonRestart => "daemon_restart",
            TrayAction::Quit => "quit",
        }
    }

    /// The menu item's text.
    pub fn label(self) -> &'static str {
        match self {
            TrayAction::Open => "Open dashboard",
            TrayAction::Pause => "Pause gateway",
            TrayAction::Resume => "Resume gateway",
            TrayAction::DaemonStart => "Start Ollama",
            TrayAction::DaemonStop => "Stop Ollama",
            TrayAction::DaemonRestart => "Restart Ollama",
            TrayAction::Quit => "Quit Warmline",
        }
    }

    /// The action behind a menu id; `None` for the status line, separators and
    /// the warm items.
    pub fn from_id(id: &str) -> Option<TrayAction> {
        TrayAction::ALL.into_iter().find(|action| action.id() == id)
    }
}

/// Everything the tray shows; the menu is rebuilt when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub line: String,
    pub look: Look,
    pub paused: bool,
    /// Whether Warmline supervises a daemon it can start/stop (not an adopted one).
    pub daemon: Option<DaemonState>,
    /// Installed models and whether each is warm.
    pub models: Vec<(String, bool)>,
}

/// The icon's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Look {
    #[default]
    Ok,
    Degraded,
    Down,
    Paused,
}

impl Snapshot {
    /// What the tray shows for `status` (models are kept from the last snapshot).
    pub fn of(status: &AppStatus, models: Vec<(String, bool)>) -> Snapshot {
        let warm = models.iter().filter(|(_, w)| *w).count();
        let host = status
            .listen
            .as_deref()
            .map(|l| l.trim_start_matches("http://").to_owned());
        let daemon = status.daemon.as_ref().map(|d| d.state);
        let ollama = match daemon {
            _ if status.demo => "demo Ollama".to_owned(),
            Some(DaemonState::Running) => "Ollama running".to_owned(),
            Some(DaemonState::External) => "Ollama running (external)".to_owned(),
            Some(DaemonState::Starting | DaemonState::Restarting) => "Ollama starting".to_owned(),
            Some(DaemonState::NotFound) => "Ollama not installed".to_owned(),
            Some(DaemonState::Disabled) | None => match &status.health {
                Some(h) if h.upstreams.iter().any(|u| u.reachable) => "Ollama up".to_owned(),
                _ => "Ollama down".to_owned(),
            },
            Some(_) => "Ollama down".to_owned(),
        };
        let (line, look) = match status.state {
            "running" => {
                let look = match status.health.as_ref().map(|h| h.status) {
                    Some(HealthStatus::Ok) => Look::Ok,
                    Some(HealthStatus::Degraded) => Look::Degraded,
                    _ => Look::Down,
                };
                let host = host.unwrap_or_default();
                (format!("Warmline on {host} · {ollama} · {warm} warm"), look)
            }
            "paused" => (format!("Paused · {ollama} · {warm} warm"), Look::Paused),
            "failed" => ("Gateway not running".to_owned(), Look::Down),
            _ => ("Warmline is stopping".to_owned(), Look::Down),
        };
        Snapshot {
            line,
            look,
            paused: status.state == "paused",
            daemon: daemon.filter(|d| *d != DaemonState::Disabled),
            models,
        }
    }
}

/// Models as the tray lists them: installed ones, by name, with their warm flag.
pub fn tray_models(models: &[ModelView]) -> Vec<(String, bool)> {
    let mut list: Vec<(String, bool)> = models
        .iter()
        .filter(|m| !m.hosts.is_empty() || m.warm)
        .map(|m| (m.name.clone(), m.warm))
        .collect();
    list.sort();
    list
}

/// Builds the tray menu for `snapshot`.
pub fn menu<R: Runtime, M: Manager<R>>(manager: &M, snapshot: &Snapshot) -> tauri::Result<Menu<R>> {
    let status = MenuItem::with_id(manager, STATUS_ITEM_ID, &snapshot.line, false, None::<&str>)?;
    let open = action_item(manager, TrayAction::Open, true)?;
    let warm_items = snapshot
        .models
        .iter()
        .map(|(name, warm)| {
            CheckMenuItem::with_id(
                manager,
                format!("{WARM_PREFIX}{name}"),
                name,
                true,
                *warm,
                None::<&str>,
            )
        })
        .collect::<tauri::Result<Vec<_>>>()?;
    let keep_warm = if warm_items.is_empty() {
        Submenu::with_items(manager, "Keep warm (no models yet)", false, &[])?
    } else {
        let refs: Vec<&dyn tauri::menu::IsMenuItem<R>> = warm_items
            .iter()
            .map(|i| i as &dyn tauri::menu::IsMenuItem<R>)
            .collect();
        Submenu::with_items(manager, "Keep warm", true, &refs)?
    };
    let pause = if snapshot.paused {
        action_item(manager, TrayAction::Resume, true)?
    } else {
        action_item(manager, TrayAction::Pause, true)?
    };
    let (can_start, can_stop) = match snapshot.daemon {
        Some(DaemonState::Stopped | DaemonState::CrashLoop | DaemonState::Failed) => (true, false),
        Some(DaemonState::Running | DaemonState::Starting | DaemonState::Restarting) => {
            (false, true)
        }
        _ => (false, false),
    };
    let start = action_item(manager, TrayAction::DaemonStart, can_start)?;
    let stop = action_item(manager, TrayAction::DaemonStop, can_stop)?;
    let restart = action_item(manager, TrayAction::DaemonRestart, can_stop)?;
    let quit = action_item(manager, TrayAction::Quit, true)?;
    let separator = || PredefinedMenuItem::separator(manager);
    Menu::with_items(
        manager,
        &[
            &status,
            &separator()?,
            &open,
            &keep_warm,
            &separator()?,
            &pause,
            &start,
            &stop,
            &restart,
            &separator()?,
            &quit,
        ],
    )
}

fn action_item<R: Runtime, M: Manager<R>>(
    manager: &M,
    action: TrayAction,
    enabled: bool,
) -> tauri::Result<MenuItem<R>> {
    MenuItem::with_id(manager, action.id(), action.label(), enabled, None::<&str>)
}

/// The icon for a look.
fn icon(look: Look) -> Image<'static> {
    match look {
        Look::Ok => tauri::include_image!("../icons/tray-ok.png"),
        Look::Degraded => tauri::include_image!("../icons/tray-degraded.png"),
        Look::Down => tauri::include_image!("../icons/tray-down.png"),
        Look::Paused => tauri::include_image!("../icons/tray-paused.png"),
    }
}

/// What the tray shows now (managed, so a refresh can tell what changed).
#[derive(Debug, Default)]
pub struct Shown(Mutex<Snapshot>);

/// Creates the tray icon; a click on a menu item calls `on_click` with the item's
/// id (see `actions::on_menu`). On a desktop without a StatusNotifier host this
/// still succeeds and shows nothing; the window covers every action.
pub fn create<R: Runtime>(
    app: &AppHandle<R>,
    on_click: impl Fn(&AppHandle<R>, &str) + Send + Sync + 'static,
) -> tauri::Result<TrayIcon<R>> {
    let snapshot = app
        .try_state::<AppState>()
        .map(|s| Snapshot::of(&s.status(), Vec::new()))
        .unwrap_or_default();
    app.manage(Shown(Mutex::new(snapshot.clone())));
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(snapshot.look))
        .tooltip(format!("Warmline: {}", snapshot.line))
        .menu(&menu(app, &snapshot)?)
        .show_menu_on_left_click(true)
        .on_menu_event(move |app, event| on_click(app, event.id().as_ref()))
        .build(app)
}

/// Brings the tray up to date with `status`, when it changed.
pub fn refresh<R: Runtime>(app: &AppHandle<R>, status: &AppStatus) {
    update(app, |shown| Snapshot::of(status, shown.models.clone()));
}

/// Brings the tray's model items up to date.
pub fn refresh_models<R: Runtime>(app: &AppHandle<R>, models: &[ModelView]) {
    let models = tray_models(models);
    update(app, |shown| Snapshot {
        models: models.clone(),
        ..shown.clone()
    });
}

fn update<R: Runtime>(app: &AppHandle<R>, next: impl FnOnce(&Snapshot) -> Snapshot) {
    let Some(shown) = app.try_state::<Shown>() else {
        return;
    };
    let Ok(mut current) = shown.0.lock() else {
        return;
    };
    let snapshot = next(&current);
    if snapshot == *current {
        return;
    }
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let result = menu(app, &snapshot)
            .and_then(|menu| tray.set_menu(Some(menu)))
            .and_then(|()| tray.set_tooltip(Some(format!("Warmline: {}", snapshot.line))))
            .and_then(|()| {
                if snapshot.look == current.look {
                    Ok(())
                } else {
                    tray.set_icon(Some(icon(snapshot.look)))
                }
            });
        if let Err(err) = result {
            tracing::warn!("cannot update the tray: {err}");
        }
    }
    *current = snapshot;
}

/// Shows and focuses the main window, rebuilding it from the config if it was
/// destroyed, so "Open" always ends with exactly one visible window.
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<WebviewWindow<R>> {
    let window = match app.get_webview_window(MAIN_WINDOW) {
        Some(window) => window,
        None => {
            let config = app
                .config()
                .app
                .windows
                .iter()
                .find(|w| w.label == MAIN_WINDOW)
                .cloned();
            match config {
                Some(config) => WebviewWindowBuilder::from_config(app, &config)?.build()?,
                None => WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::default())
                    .title("Warmline")
                    .build()?,
            }
        }
    };
    window.unminimize()?;
    window.show()?;
    window.set_focus()?;
    Ok(window)
}
