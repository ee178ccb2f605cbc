//! What Warmline keeps between runs: the warm set, the models cooled, and what
//! automatic warmth learned about each model's use.
//!
//! One small JSON document (`{"version":1,"warm":["llama3.2:latest"],...}`), behind a
//! [`StateStore`]: `warmline serve` and the desktop app keep it in a file under
//! the XDG state directory ([`FileState`], [`default_state_file`]), a library user
//! or a test in memory ([`MemoryState`]).
//!
//! A file that cannot be read as this document is not fatal: the gateway starts
//! from the configured warm set, says so in its log, and the next change rewrites
//! the file whole. The file is private and written atomically (see `os`): a
//! crash mid-write never leaves half a document, and a link planted in its place
//! is refused rather than followed.
//!
//! Where it sits: off the request path. `warmth` loads the document once when
//! the gateway starts (a stored set wins over the configured `warm` list; none
//! stored yet means the configured list) and saves it whole after every change
//! to the warm set. Errors are plain `String`s because they are only ever shown
//! (logged, or returned to whoever changed the set), never matched on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::warmth::usage::ModelUsage;

/// The document. Unknown fields are ignored and missing ones take their
/// defaults, so an older or newer file still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    /// The format's version: 1. Written, not checked on load. (A document missing
    /// it reads as 1, but `Persisted::default()` has 0; use [`Persisted::with_warm`]
    /// to build one to save.)
    #[serde(default = "version")]
    pub version: u32,
    /// Normalised model names, in the order they were warmed.
    #[serde(default)]
    pub warm: Vec<String>,
    /// Models the person cooled: automatic warmth leaves them alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cooled: Vec<String>,
    /// What automatic warmth learned, per model (counts and times, no prompt).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usage: BTreeMap<String, ModelUsage>,
}

/// The current format version, also the default for a document without one.
fn version() -> u32 {
    1
}

impl Persisted {
    /// A current-version document holding `warm` (normalised names, in order).
    pub fn with_warm(warm: Vec<String>) -> Persisted {
        Persisted {
            version: version(),
            warm,
            ..Persisted::default()
        }
    }
}

/// Where the document lives. Implemented here for a file and for memory, and by
/// the desktop app for its settings store; shared as `Arc<dyn StateStore>`.
///
/// Both methods are synchronous and may block briefly on I/O; they are called
/// rarely (start-up and warm-set changes), never per request.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The stored document; `Ok(None)` when nothing was stored yet. `Err` with a
    /// message fit for the log when something is stored but unreadable; the
    /// caller then starts from the configured warm set.
    fn load(&self) -> Result<Option<Persisted>, String>;
    /// Replaces the stored document whole. `Err` with a message fit to show when
    /// it could not be stored (`warmth` has changed its in-memory set regardless).
    fn save(&self, state: &Persisted) -> Result<(), String>;
}

/// In memory only: gone with the process. What `Gateway::serve` uses when no
/// `state_file` is configured, and what tests use.
#[derive(Debug, Default)]
pub struct MemoryState(Mutex<Option<Persisted>>);

impl StateStore for MemoryState {
    fn load(&self) -> Result<Option<Persisted>, String> {
        Ok(self.0.lock().map_err(|e| e.to_string())?.clone())
    }

    fn save(&self, state: &Persisted) -> Result<(), String> {
        *self.0.lock().map_err(|e| e.to_string())? = Some(state.clone());
        Ok(())
    }
}

/// A JSON file, written atomically and privately (0600, see `os`), pretty-printed
/// with a trailing newline so it reads well in an editor.
#[derive(Debug, Clone)]
pub struct FileState {
    path: PathBuf,
}

impl FileState {
    /// A store at `path`. Touches nothing yet: the file (and its directory) is
    /// created on the first save.
    pub fn new(path: impl Into<PathBuf>) -> FileState {
        FileState { path: path.into() }
    }

    /// Where the document is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateStore for FileState {
    fn load(&self) -> Result<Option<Persisted>, String> {
        let bytes = match crate::sys::os::read_private(&self.path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(err) => return Err(format!("cannot read the state file: {err}")),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            format!(
                "{} is not a Warmline state file: {err}",
                self.path.display()
            )
        })
    }

    fn save(&self, state: &Persisted) -> Result<(), String> {
        let text = serde_json::to_string_pretty(state).map_err(|e| e.to_string())?;
        crate::sys::os::write_private(&self.path, (text + "\n").as_bytes())
            .map_err(|e| format!("cannot write the state file: {e}"))
    }
}

/// `$XDG_STATE_HOME/warmline/state.json` (`~/.local/state/warmline/...`), beside
/// the admin credential; `None` without either variable. What `warmline serve`
/// and the desktop app use when neither the config file nor a flag names a state
/// file. Call [`adopt_old_state_file`] first: older versions kept it elsewhere.
pub fn default_state_file() -> Option<PathBuf> {
    crate::sys::os::state_dir().map(|dir| dir.join("state.json"))
}

/// Moves the warm set from where Warmline 0.1 kept it (`$XDG_CONFIG_HOME/
/// warmline/state.json`: settings and state were not yet apart) to
/// [`default_state_file`], once; says where it moved it from, if it did.
pub fn adopt_old_state_file() -> Option<PathBuf> {
    let old = crate::sys::os::config_dir()?.join("state.json");
    let new = default_state_file()?;
    match crate::sys::os::move_private(&old, &new) {
        Ok(true) => {
            tracing::info!(
                from = %old.display(),
                to = %new.display(),
                "moved the warm set to the state directory"
            );
            Some(old)
        }
        Ok(false) => None,
        Err(err) => {
            tracing::warn!("cannot move the warm set from {}: {err}", old.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("warmline-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("nested").join("state.json")
    }

    #[test]
    fn a_file_round_trips_and_starts_empty() {
        let store = FileState::new(temp_file("round"));
        assert_eq!(store.load(), Ok(None));
        let state = Persisted::with_warm(vec!["llama3.2:latest".into()]);
        store.save(&state).expect("saved");
        assert_eq!(store.load(), Ok(Some(state)));
    }

    #[test]
    fn a_corrupt_file_is_reported_not_fatal() {
        let path = temp_file("corrupt");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
        std::fs::write(&path, "{ not json").expect("write");
        let store = FileState::new(&path);
        let err = store.load().expect_err("corrupt");
        assert!(err.contains("is not a Warmline state file"), "{err}");
        // The next save replaces it whole.
        store.save(&Persisted::default()).expect("saved");
        assert_eq!(
            store.load().expect("readable").map(|s| s.warm),
            Some(vec![])
        );
    }

    #[test]
    fn older_documents_without_fields_still_load() {
        let state: Persisted = serde_json::from_str("{}").expect("empty object");
        assert_eq!(state, Persisted::with_warm(vec![]));
    }
}
