//! The tray icon and its menu: a disabled status line, "Open Warmline", "Quit".
//!
//! The menu's logic lives in plain functions ([`menu`], [`perform`]) over any
//! [`Runtime`], so it is unit-tested on Tauri's mock runtime: a headless Linux box
//! has no StatusNotifier host, the tray there is silently invisible, and nothing
//! can click it. For the same reason every action is also reachable from the
//! window, which sends the same [`TrayAction`] through the `tray_action` command.

use serde::{Deserialize, Serialize};
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

use crate::state::AppState;

/// The tray icon's id.
pub const TRAY_ID: &str = "warmline";
/// The menu id of the disabled status line.
pub const STATUS_ITEM_ID: &str = "status";
/// The label of the window created from `tauri.conf.json`.
pub const MAIN_WINDOW: &str = "main";

/// Something the tray menu (or the window) can ask the shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrayAction {
    /// Show and focus the status window, recreating it if it was destroyed.
    Open,
    /// Stop the gateway and exit.
    Quit,
}

impl TrayAction {
    /// Every action, in menu order.
    pub const ALL: [TrayAction; 2] = [TrayAction::Open, TrayAction::Quit];

    /// The menu item id, also the command argument the window sends.
    pub fn id(self) -> &'static str {
        match self {
            TrayAction::Open => "open",
            TrayAction::Quit => "quit",
        }
    }

    /// The menu item's text.
    pub fn label(self) -> &'static str {
        match self {
            TrayAction::Open => "Open Warmline",
            TrayAction::Quit => "Quit Warmline",
        }
    }

    /// The action behind a menu id; `None` for the status line and separators.
    pub fn from_id(id: &str) -> Option<TrayAction> {
        TrayAction::ALL.into_iter().find(|action| action.id() == id)
    }
}

/// The status line's text: where the gateway listens, or that it does not.
pub fn status_line(state: Option<&AppState>) -> String {
    match state.and_then(AppState::listen_url) {
        Some(url) => format!("Listening on {url}"),
        None => "Gateway not running".to_owned(),
    }
}

/// Builds the tray menu.
pub fn menu<R: Runtime, M: Manager<R>>(manager: &M, status_line: &str) -> tauri::Result<Menu<R>> {
    let status = MenuItem::with_id(manager, STATUS_ITEM_ID, status_line, false, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(manager)?;
    let open = action_item(manager, TrayAction::Open)?;
    let quit = action_item(manager, TrayAction::Quit)?;
    Menu::with_items(manager, &[&status, &separator, &open, &quit])
}

fn action_item<R: Runtime, M: Manager<R>>(
    manager: &M,
    action: TrayAction,
) -> tauri::Result<MenuItem<R>> {
    MenuItem::with_id(manager, action.id(), action.label(), true, None::<&str>)
}

/// Creates the tray icon. On a desktop without a StatusNotifier host this still
/// succeeds and shows nothing; the window covers every action.
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<TrayIcon<R>> {
    let status = status_line(app.try_state::<AppState>().as_deref());
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(tauri::include_image!("../icons/32x32.png"))
        .tooltip(format!("Warmline: {status}"))
        .menu(&menu(app, &status)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            if let Some(action) = TrayAction::from_id(event.id().as_ref())
                && let Err(err) = perform(app, action)
            {
                tracing::warn!("tray action {}: {err}", action.id());
            }
        })
        .build(app)
}

/// Carries out an action; shared by the tray menu and the `tray_action` command.
pub fn perform<R: Runtime>(app: &AppHandle<R>, action: TrayAction) -> tauri::Result<()> {
    match action {
        TrayAction::Open => show_main_window(app).map(|_| ()),
        // Exit runs `RunEvent::Exit`, where lib.rs stops the gateway gracefully.
        TrayAction::Quit => {
            app.exit(0);
            Ok(())
        }
    }
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

#[cfg(test)]
mod tests {
    use tauri::Manager;
    use tauri::menu::MenuItemKind;

    use super::*;
    use crate::error::UiError;
    use crate::tests::mock_app;

    #[test]
    fn menu_ids_round_trip_and_the_status_line_is_no_action() {
        for action in TrayAction::ALL {
            assert_eq!(TrayAction::from_id(action.id()), Some(action));
        }
        assert_eq!(TrayAction::from_id(STATUS_ITEM_ID), None);
        assert_eq!(TrayAction::from_id(""), None);
    }

    #[test]
    fn the_window_sends_the_same_ids_as_the_menu() {
        for action in TrayAction::ALL {
            let json = serde_json::to_value(action).expect("serialize");
            assert_eq!(json, action.id());
        }
    }

    #[test]
    fn menu_has_a_disabled_status_line_then_open_and_quit() {
        let app = mock_app(None);
        let menu = menu(&app, "Listening on http://127.0.0.1:11435").expect("menu builds");
        let items = menu.items().expect("items");

        let summary: Vec<(String, Option<(String, bool)>)> = items
            .iter()
            .map(|item| {
                let text = match item {
                    MenuItemKind::MenuItem(i) => {
                        Some((i.text().expect("text"), i.is_enabled().expect("enabled")))
                    }
                    _ => None,
                };
                (item.id().as_ref().to_owned(), text)
            })
            .collect();

        assert_eq!(summary.len(), 4, "{summary:?}");
        assert_eq!(
            summary[0],
            (
                STATUS_ITEM_ID.to_owned(),
                Some(("Listening on http://127.0.0.1:11435".to_owned(), false))
            )
        );
        assert!(summary[1].1.is_none(), "a separator: {summary:?}");
        assert_eq!(
            summary[2],
            ("open".to_owned(), Some(("Open Warmline".to_owned(), true)))
        );
        assert_eq!(
            summary[3],
            ("quit".to_owned(), Some(("Quit Warmline".to_owned(), true)))
        );
    }

    #[test]
    fn status_line_says_where_the_gateway_listens_or_that_it_does_not() {
        assert_eq!(status_line(None), "Gateway not running");
        let failed = AppState::failed(
            None,
            UiError {
                code: "address_in_use",
                message: "cannot listen on 127.0.0.1:11435".into(),
                hint: None,
            },
        );
        assert_eq!(status_line(Some(&failed)), "Gateway not running");
    }

    #[test]
    fn open_recreates_a_destroyed_window_from_the_config_and_never_duplicates() {
        let app = mock_app(None);
        assert!(app.get_webview_window(MAIN_WINDOW).is_none());

        perform(app.handle(), TrayAction::Open).expect("open");
        let window = app.get_webview_window(MAIN_WINDOW).expect("window created");
        assert!(window.is_visible().expect("visible"));

        perform(app.handle(), TrayAction::Open).expect("open again");
        assert_eq!(app.webview_windows().len(), 1);
    }
}
