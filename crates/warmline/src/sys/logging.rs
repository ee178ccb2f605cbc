//! Log output shared by every front end: `tracing` to stderr, filtered by
//! `RUST_LOG` (default `warmline=info`), colored only on a terminal, and the same
//! lines kept in memory ([`tail`]) for `GET /warmline/logs` and the app's log
//! view. The headless CLI and the desktop app call [`init`] once at start, so
//! their logs read alike.
//!
//! What is logged never carries a secret: tokens are not logged at all, and
//! URLs are shown with their passwords masked (see `config::redacted`).
//!
//! The in-memory tail is a process-wide ring of [`TAIL_LINES`] lines behind a
//! mutex, filled by a `tracing` layer on every event that passes the filter. It
//! is process-wide rather than per gateway because the subscriber is global too:
//! a process runs one subscriber, whichever gateway logs through it. Logging
//! never fails the caller: a poisoned ring lock drops the line, and the stderr
//! layer ignores write errors.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// Lines of Warmline's own log kept in memory.
pub const TAIL_LINES: usize = 1000;

/// One line of Warmline's log, as `GET /warmline/logs` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// The module that logged it (`warmline::proxy`).
    pub target: String,
    /// The message and its fields (`message key=value ...`).
    pub text: String,
}

/// The process-wide ring of recent lines, created on first use.
fn ring() -> &'static Mutex<VecDeque<LogLine>> {
    static RING: OnceLock<Mutex<VecDeque<LogLine>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(TAIL_LINES)))
}

/// The last `n` lines of Warmline's log, oldest first (empty before [`init`]).
/// At most [`TAIL_LINES`]; copies them, so the lock is held only briefly.
pub fn tail(n: usize) -> Vec<LogLine> {
    ring()
        .lock()
        .map(|lines| {
            let skip = lines.len().saturating_sub(n);
            lines.iter().skip(skip).cloned().collect()
        })
        .unwrap_or_default()
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event, with a timestamp unless journald is the sink
    /// (it stamps each line itself).
    #[default]
    Text,
    /// One JSON object per event (`timestamp`, `level`, `target`, `fields`), for
    /// log shippers.
    Json,
}

/// Installs the global subscriber with text lines; a second call is a no-op.
pub fn init() {
    init_with(LogFormat::Text);
}

/// Installs the global subscriber; a second call is a no-op.
///
/// Two layers, each with its own copy of the filter: lines to stderr in `format`
/// (ANSI colours only when stderr is a terminal) and the in-memory tail.
/// `RUST_LOG` is read when this runs; an unset or invalid `RUST_LOG` falls back to
/// `warmline=info`. If another global subscriber is already installed (by an
/// embedding program or a test), this one is silently not installed.
pub fn init_with(format: LogFormat) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warmline=info"))
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let stderr = match format {
        LogFormat::Json => lines.json().with_filter(filter()).boxed(),
        LogFormat::Text if stderr_is_journal() => {
            lines.without_time().with_filter(filter()).boxed()
        }
        LogFormat::Text => lines.with_filter(filter()).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(Tail.with_filter(filter()))
        .try_init();
}

/// Whether stderr is connected to journald: systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it connected, and a child that inherited the
/// variable but writes elsewhere (a pipe, a file) must still get timestamps.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    journal_matches(
        &stream.to_string_lossy(),
        std::fs::metadata("/proc/self/fd/2").ok(),
    )
}

fn journal_matches(stream: &str, stderr: Option<std::fs::Metadata>) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let Some((dev, ino)) = stream.split_once(':') else {
            return false;
        };
        stderr.is_some_and(|m| {
            dev.parse::<u64>().is_ok_and(|d| d == m.dev())
                && ino.parse::<u64>().is_ok_and(|i| i == m.ino())
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (stream, stderr);
        false
    }
}

/// The layer that copies each event into the in-memory tail (dropping the
/// oldest line when full). Span fields are not included, only the event's own.
struct Tail;

impl<S: tracing::Subscriber> Layer<S> for Tail {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        let metadata = event.metadata();
        let line = LogLine {
            at_ms: super::clock::epoch_ms(),
            level: metadata.level().to_string(),
            target: metadata.target().to_owned(),
            text: text.0,
        };
        if let Ok(mut lines) = ring().lock() {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }
}

/// An event's message first, then its other fields as `key=value` (values in
/// their `Debug` form, so strings are quoted), whatever order they are visited in.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !rest.is_empty() {
                self.0.push(' ');
                self.0.push_str(&rest);
            }
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_with_message_first() {
        let subscriber = tracing_subscriber::registry().with(Tail);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                host = "http://h:1",
                "upstream unreachable: connection refused"
            );
        });
        let last = tail(1).pop().expect("a line");
        assert_eq!(last.level, "WARN");
        assert_eq!(
            last.text,
            "upstream unreachable: connection refused host=\"http://h:1\""
        );
    }

    #[cfg(unix)]
    #[test]
    fn journald_is_the_sink_only_when_the_stream_is_this_one() {
        use std::os::unix::fs::MetadataExt as _;
        let file = std::env::temp_dir().join(format!("wl-journal-{}", std::process::id()));
        std::fs::write(&file, b"").expect("write");
        let meta = std::fs::metadata(&file).expect("metadata");
        let same = format!("{}:{}", meta.dev(), meta.ino());
        let other = format!("{}:{}", meta.dev(), meta.ino() + 1);
        assert!(journal_matches(&same, Some(meta.clone())));
        assert!(!journal_matches(&other, Some(meta.clone())));
        assert!(!journal_matches("garbage", Some(meta)));
        assert!(!journal_matches(&same, None));
        let _ = std::fs::remove_file(file);
    }
}
