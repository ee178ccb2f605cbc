//! Log output shared by every front end: `tracing` to stderr, filtered by
//! `RUST_LOG` (default `warmline=info`), colored only on a terminal. The headless
//! CLI and the desktop app call [`init`] once at start, so their logs read alike.

use std::io::IsTerminal as _;

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warmline=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
