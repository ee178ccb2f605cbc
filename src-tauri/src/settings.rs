//! The app's settings, kept with tauri-plugin-store in
//! `$XDG_DATA_HOME/dev.warmline.app/settings.json`:
//!
//! ```text
//! { "version": 1,
//!   "settings": { ...a JSON merge patch over the gateway's defaults... },
//!   "warm": ["llama3.2:latest", ...],       the preload (warm) set
//!   "autostart": false }
//! ```
//!
//! Only what the user changed is stored (the patch), so a newer Warmline's new
//! defaults reach them. The configuration the app starts with is, in order: the
//! core's defaults, `WARMLINE_CONFIG` and `WARMLINE_*` as for `warmline serve`, the
//! app's own defaults ([`app_defaults`]: supervise Ollama), then the stored patch.
//!
//! A damaged file is never lost and never stops the app: a file that is not JSON
//! is moved aside before the store plugin opens it (the plugin would start empty
//! and overwrite it on the next save), and stored settings this version cannot
//! accept (an old file, a hand edit) are copied aside and set back to defaults.
//! Either way [`Loaded::notice`] says what happened and where the copy is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tauri::{Manager, Runtime};
use tauri_plugin_store::{Store, StoreExt};
use warmline::config::{RawConfig, merge_patch};
use warmline::state::{Persisted, StateStore};
use warmline::{Config, ConfigError};

/// The store's file name, in the app's data directory.
pub const STORE_FILE: &str = "settings.json";
/// The layout version written to the store.
pub const VERSION: u64 = 1;

const KEY_VERSION: &str = "version";
const KEY_SETTINGS: &str = "settings";
const KEY_WARM: &str = "warm";
const KEY_AUTOSTART: &str = "autostart";

/// What the app adds to the gateway's defaults: the desktop app looks after
/// Ollama itself (adopting one that already runs).
pub fn app_defaults() -> Value {
    json!({ "daemon": { "supervise": true } })
}

/// The store, opened, with the configuration it gives.
#[derive(Debug)]
pub struct Loaded {
    pub config: Result<Config, ConfigError>,
    /// What the user should know about their settings file, if anything.
    pub notice: Option<String>,
}

/// Opens the store (recovering a damaged one) and builds the configuration.
pub fn load<R: Runtime, M: Manager<R>>(app: &M) -> Loaded {
    let dir = app.path().app_data_dir().ok();
    let mut notices = Vec::new();
    if let Some(dir) = &dir
        && let Some(notice) = move_aside_if_unreadable(&dir.join(STORE_FILE))
    {
        notices.push(notice);
    }
    let store = match open(app) {
        Ok(store) => Some(store),
        Err(err) => {
            notices.push(format!(
                "Your settings cannot be opened ({err}); defaults are in use and changes will not be saved."
            ));
            None
        }
    };
    let stored = store
        .as_ref()
        .and_then(|s| s.get(KEY_SETTINGS))
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let config = match build(&stored) {
        Ok(config) => Ok(config),
        Err(err) if stored.as_object().is_some_and(|o| !o.is_empty()) => {
            // The stored part is at fault when the same without it is valid.
            let without = build(&json!({}));
            if without.is_ok() {
                let copy = dir
                    .as_deref()
                    .and_then(|d| keep_copy(&d.join(STORE_FILE), "invalid"));
                if let Some(store) = &store {
                    store.set(KEY_SETTINGS, json!({}));
                    let _ = persist(app, store);
                }
                notices.push(format!(
                    "Your saved settings could not be used ({err}), so the defaults are in use{}.",
                    copy.map(|c| format!("; the old file was kept at {}", c.display()))
                        .unwrap_or_default()
                ));
            }
            without
        }
        Err(err) => Err(err),
    };
    if let Some(store) = &store {
        store.set(KEY_VERSION, VERSION);
    }
    Loaded {
        config,
        notice: (!notices.is_empty()).then(|| notices.join(" ")),
    }
}

/// The configuration from the environment (and `WARMLINE_CONFIG`), the app's
/// defaults and `stored`.
pub fn build(stored: &Value) -> Result<Config, ConfigError> {
    let file = std::env::var_os("WARMLINE_CONFIG").map(PathBuf::from);
    let mut raw = match &file {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    let mut defaults = app_defaults();
    // A config file's own choice about supervision wins over the app's default.
    if raw.daemon.supervise.is_some() {
        defaults = json!({});
    }
    raw = raw.patched(&defaults)?;
    raw.apply_env(|name| std::env::var(name).ok());
    raw.patched(stored)?.validate()
}

/// The store (the same instance on every call). Every change is saved at once
/// and explicitly, so the plugin's debounced auto-save is off: it could write a
/// stale copy over a file after the fact.
fn open<R: Runtime, M: Manager<R>>(app: &M) -> tauri_plugin_store::Result<Arc<Store<R>>> {
    app.store_builder(STORE_FILE).disable_auto_save().build()
}

/// Writes the store to its file the way Warmline writes every private file
/// (`warmline::sys::os::write_private`: unique temp file, fsync, rename, 0600, no link
/// followed) instead of the plugin's plain overwrite: the settings may hold
/// secrets (tokens, `daemon.env`), and a crash mid-save must not lose them.
fn persist<R: Runtime, M: Manager<R>>(app: &M, store: &Store<R>) -> Result<(), String> {
    let path = app
        .path()
        .app_data_dir()
        .map_err(|e| e.to_string())?
        .join(STORE_FILE);
    write_store(&path, store)
}

fn write_store<R: Runtime>(path: &Path, store: &Store<R>) -> Result<(), String> {
    let entries: serde_json::Map<String, Value> = store.entries().into_iter().collect();
    let bytes = serde_json::to_vec_pretty(&entries).map_err(|e| e.to_string())?;
    warmline::sys::os::write_private(path, &bytes).map_err(|e| e.to_string())
}

/// Adds `patch` (already applied to the running gateway) to the stored settings.
pub fn remember<R: Runtime, M: Manager<R>>(app: &M, patch: &Value) -> Result<(), String> {
    let store = open(app).map_err(|e| e.to_string())?;
    let mut stored = store
        .get(KEY_SETTINGS)
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    merge_patch(&mut stored, patch);
    store.set(KEY_SETTINGS, stored);
    persist(app, &store)
}

/// The stored settings patch (what the user changed).
pub fn stored<R: Runtime, M: Manager<R>>(app: &M) -> Value {
    open(app)
        .ok()
        .and_then(|s| s.get(KEY_SETTINGS))
        .unwrap_or_else(|| json!({}))
}

/// Whether the user asked to start Warmline at login (as stored).
pub fn autostart<R: Runtime, M: Manager<R>>(app: &M) -> bool {
    open(app)
        .ok()
        .and_then(|s| s.get(KEY_AUTOSTART))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Records the start-at-login choice.
pub fn set_autostart<R: Runtime, M: Manager<R>>(app: &M, enabled: bool) -> Result<(), String> {
    let store = open(app).map_err(|e| e.to_string())?;
    store.set(KEY_AUTOSTART, enabled);
    persist(app, &store)
}

/// The warm set, kept in the app's store (the core reads and writes it through
/// [`StateStore`]).
pub struct WarmSet<R: Runtime> {
    store: Arc<Store<R>>,
    path: PathBuf,
}

impl<R: Runtime> WarmSet<R> {
    pub fn open<M: Manager<R>>(app: &M) -> Option<WarmSet<R>> {
        let path = app.path().app_data_dir().ok()?.join(STORE_FILE);
        open(app).ok().map(|store| WarmSet { store, path })
    }
}

impl<R: Runtime> std::fmt::Debug for WarmSet<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WarmSet(settings.json)")
    }
}

impl<R: Runtime> StateStore for WarmSet<R> {
    fn load(&self) -> Result<Option<Persisted>, String> {
        match self.store.get(KEY_WARM) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(names)) => Ok(Some(Persisted::with_warm(
                names
                    .into_iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect(),
            ))),
            Some(other) => Err(format!("the saved warm set is not a list: {other}")),
        }
    }

    fn save(&self, state: &Persisted) -> Result<(), String> {
        self.store.set(KEY_WARM, state.warm.clone());
        write_store(&self.path, &self.store)
    }
}

/// Moves `path` aside when it exists but is not a JSON object, returning what
/// to tell the user.
fn move_aside_if_unreadable(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let readable = serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v.is_object());
    if readable {
        return None;
    }
    let kept = keep_copy(path, "corrupt")?;
    let _ = std::fs::remove_file(path);
    Some(format!(
        "Your settings file could not be read, so Warmline started with its defaults; the \
         damaged file was kept at {}.",
        kept.display()
    ))
}

/// Copies `path` to `<path>.<tag>-<unix seconds>`, returning the copy's path.
fn keep_copy(path: &Path, tag: &str) -> Option<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.file_name()?.to_os_string();
    name.push(format!(".{tag}-{stamp}"));
    let copy = path.with_file_name(name);
    std::fs::copy(path, &copy).ok()?;
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warmline-app-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn a_file_that_is_not_json_is_moved_aside_not_lost() {
        let dir = temp("corrupt");
        let file = dir.join(STORE_FILE);
        std::fs::write(&file, b"{\"settings\": {\"listen\": ").expect("write");
        let notice = move_aside_if_unreadable(&file).expect("a notice");
        assert!(
            !file.exists(),
            "the damaged file no longer blocks the store"
        );
        let kept: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            std::fs::read(&kept[0]).expect("copy"),
            b"{\"settings\": {\"listen\": "
        );
        assert!(notice.contains(&kept[0].display().to_string()), "{notice}");

        std::fs::write(&file, b"{\"version\":1}").expect("write");
        assert_eq!(move_aside_if_unreadable(&file), None);
        assert_eq!(move_aside_if_unreadable(&dir.join("absent.json")), None);
    }

    #[test]
    fn stored_settings_go_over_the_app_defaults() {
        let config = build(&json!({ "cache": { "max_size": "32MiB" } })).expect("valid");
        assert!(config.daemon.supervise, "the app supervises by default");
        assert_eq!(config.cache.max_bytes, 32 << 20);
        let config = build(&json!({ "daemon": { "supervise": false } })).expect("valid");
        assert!(!config.daemon.supervise);
        let err = build(&json!({ "cache": { "max_size": "lots" } })).expect_err("invalid");
        assert_eq!(err.field(), Some("cache.max_size"));
    }
}
