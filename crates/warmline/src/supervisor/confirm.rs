//! Whether the daemon runs with what Warmline asked for: its own report of its
//! settings (the `server config` line Ollama logs at start) compared with the
//! daemon settings Warmline started it with.

use std::time::Duration;

use super::ServerConfig;
use super::status::Confirmed;
use crate::config::{DaemonConfig, KeepAlive};

/// Compares the settings a daemon reported with those it was started with.
pub(super) fn confirm(asked: &DaemonConfig, reported: &ServerConfig) -> Confirmed {
    let mut mismatched = Vec::new();
    let mut shown = std::collections::BTreeMap::new();
    type Check<'a> = (&'static str, Box<dyn Fn(&str) -> bool + 'a>);
    let checks: [Check<'_>; 3] = [
        (
            "OLLAMA_KEEP_ALIVE",
            Box::new(|value: &str| match (asked.keep_alive, go_duration(value)) {
                (KeepAlive::Forever, Some(d)) => d > Duration::from_secs(100 * 365 * 86_400),
                (KeepAlive::For(want), Some(d)) => d.as_secs() == want.as_secs(),
                (_, None) => false,
            }),
        ),
        (
            "OLLAMA_NUM_PARALLEL",
            Box::new(|value: &str| value == asked.num_parallel.to_string()),
        ),
        (
            "OLLAMA_MAX_LOADED_MODELS",
            Box::new(|value: &str| value == asked.max_loaded_models.to_string()),
        ),
    ];
    for (key, matches) in checks {
        if let Some(value) = reported.get(key) {
            shown.insert(key.to_owned(), value.to_owned());
            if !matches(value) {
                mismatched.push(format!("{key}={value}"));
            }
        }
    }
    Confirmed {
        reported: shown,
        mismatched,
    }
}

/// Parses a Go duration as Ollama prints it (`30m0s`, `2562047h47m16.854775807s`).
pub(super) fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    // A bare number is seconds (how OLLAMA_KEEP_ALIVE may be given).
    if let Ok(seconds) = rest.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(split);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = next;
    }
    Some(Duration::from_secs_f64(total))
}
