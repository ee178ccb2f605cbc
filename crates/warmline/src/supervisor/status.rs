//! What the supervisor reports: the daemon's state, its status snapshot as
//! `/warmline/daemon` and the app show it, and why a command was refused.

use serde::{Deserialize, Serialize};

use super::Resources;

/// Where the daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaemonState {
    /// Warmline does not supervise a daemon (`daemon.supervise` is off).
    Disabled,
    /// Started, not answering yet.
    Starting,
    /// Started by Warmline and answering.
    Running,
    /// Started by someone else and answering; Warmline only watches it.
    External,
    /// Exited unexpectedly; a restart is due after `retry_in_ms`.
    Restarting,
    /// Stopped on request.
    Stopped,
    /// Exited too often in a short time; Warmline stopped restarting it.
    CrashLoop,
    /// No `ollama` executable was found.
    NotFound,
    /// Could not be started (see `message`).
    Failed,
}

/// What the daemon said it runs with, next to what Warmline asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    /// `OLLAMA_KEEP_ALIVE`, `OLLAMA_NUM_PARALLEL`, `OLLAMA_MAX_LOADED_MODELS` as
    /// the daemon reported them.
    pub reported: std::collections::BTreeMap<String, String>,
    /// Settings that differ from what was asked for (empty: all took effect).
    pub mismatched: Vec<String>,
}

/// A snapshot of the supervisor, as `/warmline/daemon` and the app show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub state: DaemonState,
    /// The address it serves on (the first upstream).
    pub url: String,
    /// Whether Warmline started it (and so stops it when it stops).
    pub managed: bool,
    pub pid: Option<u32>,
    pub executable: Option<String>,
    /// `/api/version` of the daemon answering.
    pub version: Option<String>,
    /// When it last became ready, in milliseconds since the Unix epoch.
    pub up_since_ms: Option<u64>,
    /// Restarts after unexpected exits.
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// What a person should know about the state, in a sentence.
    pub message: Option<String>,
    /// Until the next restart attempt, while restarting.
    pub retry_in_ms: Option<u64>,
    pub settings: Option<Confirmed>,
    pub resources: Option<Resources>,
}

impl DaemonStatus {
    /// The status when nothing is supervised.
    pub fn disabled(url: &str) -> DaemonStatus {
        DaemonStatus {
            state: DaemonState::Disabled,
            url: url.to_owned(),
            managed: false,
            pid: None,
            executable: None,
            version: None,
            up_since_ms: None,
            restarts: 0,
            last_exit: None,
            message: Some(
                "Warmline does not supervise Ollama here (daemon.supervise is off)".to_owned(),
            ),
            retry_in_ms: None,
            settings: None,
            resources: None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "the Ollama at {0} was started outside Warmline; Warmline watches it but never stops \
         or restarts it"
    )]
    External(String),
    #[error("Warmline does not supervise Ollama here: set daemon.supervise = true")]
    NotSupervised,
    #[error("the supervisor has stopped")]
    Gone,
}
