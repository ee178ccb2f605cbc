//! The daemon's output: the last lines in memory (for `/warmline/daemon/logs` and
//! the app's log tail), and optionally a copy on disk, rotated by size.
//!
//! Ollama writes its server log (`slog` text) to stderr and Gin's access log to
//! stdout; both are kept, tagged with their stream. One line of the server log
//! matters to the supervisor: `msg="server config" env="map[OLLAMA_KEEP_ALIVE:30m0s
//! ...]"`, printed at start with every setting the daemon took, which is how
//! Warmline confirms the settings it asked for ([`ServerConfig`]).
//!
//! Where it sits: in the supervisor, off the request path. One reader task per
//! output stream pushes each line here as it arrives; the admin route, the app
//! and the supervisor's own "why did it exit" messages read the tail. Warmline's
//! notes about the daemon (started, ready, exited, restarting) go into the same
//! tail under the stream name `warmline`, so the story reads in order.
//!
//! Bounded: the tail holds the configured number of lines (`daemon.log_lines`),
//! each cut at [`MAX_LINE`] bytes; the file copy is rotated at [`ROTATE_AT`] with
//! [`ROTATIONS`] old files kept. The file is best effort: a file that cannot be
//! opened or written is skipped silently (the in-memory tail still works).

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A log file grows to this size (10 MiB) before it is renamed to `.1`.
const ROTATE_AT: u64 = 10 * 1024 * 1024;
/// Rotated files kept besides the current one.
const ROTATIONS: usize = 3;
/// Longest line kept; longer ones are cut (a runner can print megabytes at once).
const MAX_LINE: usize = 4096;

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `stdout` or `stderr` for the daemon's own output, `warmline` for a note
    /// from Warmline itself ([`Logs::note`]).
    pub stream: &'static str,
    /// The line without trailing whitespace; a longer line than 4,096 bytes is cut
    /// there (on a character boundary) and ends in `…`.
    pub text: String,
}

/// The last lines in memory, and the file. Shared by `Arc` between the output
/// readers and whoever reads the tail; every method takes `&self` and never fails
/// (a poisoned lock just skips the line or returns nothing).
#[derive(Debug)]
pub struct Logs {
    /// The tail, oldest first.
    lines: Mutex<VecDeque<LogLine>>,
    /// The most lines kept (at least 1).
    capacity: usize,
    /// The on-disk copy, if one was configured.
    file: Mutex<Option<Rotating>>,
}

impl Logs {
    /// An empty tail of `capacity` lines (at least 1; memory for at most 4,096 is
    /// reserved up front), copying lines to `file` when given. The file is opened
    /// lazily, on the first line.
    pub fn new(capacity: usize, file: Option<PathBuf>) -> Logs {
        Logs {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
            file: Mutex::new(file.map(Rotating::new)),
        }
    }

    /// Adds one line from `stream` (trailing whitespace removed, cut at
    /// `MAX_LINE` (4,096) bytes on a character boundary): to the file first, then to
    /// the tail, dropping the oldest line when full.
    pub fn push(&self, stream: &'static str, text: &str) {
        let mut text = text.trim_end().to_owned();
        if text.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        let at_ms = crate::sys::clock::epoch_ms();
        if let Ok(mut file) = self.file.lock()
            && let Some(file) = file.as_mut()
        {
            file.write(stream, &text);
        }
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() == self.capacity {
                lines.pop_front();
            }
            lines.push_back(LogLine {
                at_ms,
                stream,
                text,
            });
        }
    }

    /// A note from Warmline itself (start, exit, restart), in the same tail.
    pub fn note(&self, text: &str) {
        self.push("warmline", text);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|lines| {
                let skip = lines.len().saturating_sub(n);
                lines.iter().skip(skip).cloned().collect()
            })
            .unwrap_or_default()
    }

    /// The last line the daemon itself wrote (for "why did it exit" messages).
    pub fn last_daemon_line(&self) -> Option<String> {
        let lines = self.lines.lock().ok()?;
        lines
            .iter()
            .rev()
            .find(|l| l.stream != "warmline" && !l.text.is_empty())
            .map(|l| l.text.clone())
    }
}

/// A log file renamed to `.1`, `.2`, ... once it reaches [`ROTATE_AT`].
#[derive(Debug)]
struct Rotating {
    /// The current file; rotated ones are `path.1` (newest) to `path.3`.
    path: PathBuf,
    /// Open for appending; `None` before the first line, after a rotation, or
    /// while it cannot be opened.
    file: Option<std::fs::File>,
    /// Bytes in the current file (its size when opened, plus what was written).
    written: u64,
}

impl Rotating {
    /// Nothing opened yet.
    fn new(path: PathBuf) -> Rotating {
        Rotating {
            path,
            file: None,
            written: 0,
        }
    }

    /// Appends `[stream] text`, opening (and creating, with its directory) the
    /// file if needed, and rotates once it has reached [`ROTATE_AT`]. Errors are
    /// ignored; an unopenable file is retried on the next line. The file is created
    /// with the process's default mode (umask), not as a private file.
    fn write(&mut self, stream: &str, text: &str) {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
            self.written = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let line = format!("[{stream}] {text}\n");
        if file.write_all(line.as_bytes()).is_ok() {
            self.written += line.len() as u64;
        }
        if self.written >= ROTATE_AT {
            self.rotate();
        }
    }

    /// Closes the file and shifts `path.2` → `path.3`, `path.1` → `path.2`,
    /// `path` → `path.1` (the oldest is overwritten); the next line starts a new
    /// file. Rename errors (a missing `.N`) are ignored.
    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: usize| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..ROTATIONS).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
        self.written = 0;
    }
}

/// The settings a daemon reported in its `server config` line: variable name →
/// value as Go printed it (`30m0s`, `false`, `[a b]`, or empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerConfig(pub(crate) BTreeMap<String, String>);

impl ServerConfig {
    /// Reads `env="map[KEY:value KEY2:value2 ...]"` out of a `server config` line.
    /// Values may be Go slices with spaces inside (`OLLAMA_ORIGINS:[a b]`), so
    /// pairs end at whitespace outside brackets, and the map at its own `]`.
    pub(crate) fn parse(line: &str) -> Option<ServerConfig> {
        if !line.contains("server config") {
            return None;
        }
        let body = &line[line.find("map[")? + 4..];
        let mut settings = BTreeMap::new();
        let (mut depth, mut pair) = (0usize, String::new());
        let mut flush = |pair: &mut String| {
            if let Some((key, value)) = pair.split_once(':') {
                settings.insert(key.to_owned(), value.to_owned());
            }
            pair.clear();
        };
        for c in body.chars() {
            match c {
                ']' if depth == 0 => break,
                '[' => depth += 1,
                ']' => depth -= 1,
                c if c.is_whitespace() && depth == 0 => {
                    flush(&mut pair);
                    continue;
                }
                _ => {}
            }
            pair.push(c);
        }
        flush(&mut pair);
        Some(ServerConfig(settings))
    }

    /// The value of `key` (`OLLAMA_NUM_PARALLEL`), if the line had it.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let logs = Logs::new(3, None);
        for i in 0..5 {
            logs.push("stderr", &format!("line {i}\n"));
        }
        let tail: Vec<String> = logs.tail(10).into_iter().map(|l| l.text).collect();
        assert_eq!(tail, ["line 2", "line 3", "line 4"]);
        assert_eq!(logs.tail(1)[0].text, "line 4");
        logs.note("restarting");
        assert_eq!(logs.last_daemon_line().as_deref(), Some("line 4"));
    }

    #[test]
    fn the_file_rotates() {
        let dir = std::env::temp_dir().join(format!("warmline-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ollama.log");
        let mut file = Rotating::new(path.clone());
        let line = "x".repeat(1 << 20);
        for _ in 0..12 {
            file.write("stderr", &line);
        }
        assert!(path.with_extension("log.1").exists(), "rotated once");
        assert!(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < ROTATE_AT);
    }

    #[test]
    fn the_server_config_line_is_read() {
        let line = r#"time=2026-01-18T20:53:19.123Z level=INFO source=routes.go:1471 msg="server config" env="map[CUDA_VISIBLE_DEVICES: OLLAMA_KEEP_ALIVE:30m0s OLLAMA_MAX_LOADED_MODELS:0 OLLAMA_NUM_PARALLEL:2 OLLAMA_ORIGINS:[http://localhost app://*] OLLAMA_SCHED_SPREAD:false]""#;
        let config = ServerConfig::parse(line).expect("a server config line");
        assert_eq!(
            config.get("OLLAMA_ORIGINS"),
            Some("[http://localhost app://*]")
        );
        assert_eq!(config.get("OLLAMA_SCHED_SPREAD"), Some("false"));
        assert_eq!(config.get("OLLAMA_KEEP_ALIVE"), Some("30m0s"));
        assert_eq!(config.get("OLLAMA_NUM_PARALLEL"), Some("2"));
        assert_eq!(config.get("CUDA_VISIBLE_DEVICES"), Some(""));
        assert!(ServerConfig::parse("msg=\"Listening on 127.0.0.1:1\"").is_none());
    }
}
