//! The app's settings, kept with tauri-plugin-store in
//! `$XDG_CONFIG_HOME/warmline/settings.json`, beside the `config.toml` that
//! `warmline serve` reads:
//!
//! ```text
//! { "version": 1,
//!   "settings": { ...a JSON merge patch over the gateway's defaults... },
//!   "autostart": false }
//! ```
//!
//! Only what the user changed is stored (the patch), so a newer Warmline's new
//! defaults reach them. The configuration the app starts with is, in order: the
//! core's defaults, the config file (`WARMLINE_CONFIG`, else
//! `$XDG_CONFIG_HOME/warmline/config.toml` when it exists) and `WARMLINE_*` as for
//! `warmline serve`, the app's own defaults ([`app_defaults`]: supervise Ollama),
//! then the stored patch. The warm set is runtime state, not a setting: it lives in
//! `$XDG_STATE_HOME/warmline/state.json`, the same file `warmline serve` keeps.
//!
//! Older versions kept this file in `$XDG_DATA_HOME/dev.warmline.app/` with the
//! warm set inside it; [`adopt_old_places`] moves both, once.
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

/// The store's file name, in Warmline's settings directory.
pub const STORE_FILE: &str = "settings.json";

/// Where the store lives: `$XDG_CONFIG_HOME/warmline/settings.json`, or, on a
/// system without `XDG_CONFIG_HOME` and `HOME`, the app's data directory.
pub fn store_path<R: Runtime, M: Manager<R>>(app: &M) -> Option<PathBuf> {
    warmline::sys::os::config_dir()
        .or_else(|| app.path().app_data_dir().ok())
        .map(|dir| dir.join(STORE_FILE))
}

/// Moves what older versions kept in the app's data directory: the settings
/// file to [`store_path`], and the warm set inside it to the state file. Once:
/// nothing is moved over a file that exists. Returns what to tell the user when
/// something could not be moved.
pub fn adopt_old_places<R: Runtime, M: Manager<R>>(app: &M) -> Option<String> {
    let old = app.path().app_data_dir().ok()?.join(STORE_FILE);
    let new = store_path(app)?;
    match warmline::sys::os::move_private(&old, &new) {
        Ok(true) => {
            tracing::info!(from = %old.display(), to = %new.display(), "moved the app's settings");
            None
        }
        Ok(false) => None,
        Err(err) => Some(format!(
            "Your settings could not be moved from {} to {} ({err}).",
            old.display(),
            new.display()
        )),
    }
}
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
    let mut notices: Vec<String> = adopt_old_places(app).into_iter().collect();
    let path = store_path(app);
    if let Some(path) = &path
        && let Some(notice) = move_aside_if_unreadable(path)
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
                let copy = path.as_deref().and_then(|p| keep_copy(p, "invalid"));
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
    let named = std::env::var_os("WARMLINE_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let source = warmline::ConfigSource::new(named, warmline::Overrides::default());
    let mut raw = match source.file_in_use() {
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
    // An absolute path: the plugin resolves relative ones against the data directory.
    let path = store_path(app).unwrap_or_else(|| PathBuf::from(STORE_FILE));
    app.store_builder(path).disable_auto_save().build()
}

/// Writes the store to its file the way Warmline writes every private file
/// (`warmline::sys::os::write_private`: unique temp file, fsync, rename, 0600, no link
/// followed) instead of the plugin's plain overwrite: the settings may hold
/// secrets (tokens, `daemon.env`), and a crash mid-save must not lose them.
fn persist<R: Runtime, M: Manager<R>>(app: &M, store: &Store<R>) -> Result<(), String> {
    let path = store_path(app).ok_or("neither XDG_CONFIG_HOME nor HOME is set")?;
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

/// The warm set's store: the state file `warmline serve` keeps too
/// ([`warmline::state::default_state_file`]). A warm set an older version kept
/// in the settings store moves there first (when the state file has none yet);
/// `None` without a state directory, and the set is then kept in memory.
pub fn warm_set<R: Runtime, M: Manager<R>>(app: &M) -> Option<Arc<dyn StateStore>> {
    let file = warmline::state::FileState::new(warmline::state::default_state_file()?);
    if let Ok(store) = open(app)
        && let Some(old) = store.get(KEY_WARM)
    {
        let names: Vec<String> = old
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        let moved = match file.load() {
            Ok(Some(_)) => Ok(()),
            _ => file.save(&Persisted::with_warm(names)),
        };
        match moved {
            Ok(()) => {
                store.delete(KEY_WARM);
                let _ = persist(app, &store);
                tracing::info!(to = %file.path().display(), "moved the warm set to the state file");
            }
            Err(err) => tracing::warn!("cannot move the warm set to the state file: {err}"),
        }
    }
    Some(Arc::new(file))
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
