//! Alerts: the latency report's thresholds, judged over a recent window.
//!
//! - `latency`: average latency above `alerts.latency` (1 s);
//! - `error_rate`: more than `alerts.error_rate` (5 %) of requests failed;
//! - `hit_rate`: fewer than `alerts.hit_rate` (50 %) of cache lookups answered
//!   without a generation — judged only once there were `alerts.min_lookups`
//!   lookups, because a handful of first requests are all misses;
//! - `breaker_open`: some upstream's circuit breaker is open;
//! - `upstream_down`: some upstream does not answer;
//! - `daemon_down`: the Ollama Warmline supervises is not running.
//!
//! The rates need `alerts.min_requests` requests in the window before they are
//! judged. Active alerts appear in `/warmline/health` (with a sentence each), make
//! its status `degraded` (or `down` when nothing can serve), and are exported as
//! `warmline_alert_active{alert="..."}`.

use serde::{Deserialize, Serialize};

use crate::metrics::Point;
use crate::supervisor::{DaemonState, DaemonStatus};
use crate::upstream::UpstreamHealth;

/// Every alert, in the order they are reported.
pub const ALERTS: [&str; 6] = [
    "latency",
    "error_rate",
    "hit_rate",
    "breaker_open",
    "upstream_down",
    "daemon_down",
];

pub use crate::config::AlertConfig;

/// One active alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert: String,
    pub message: String,
}

/// The active alerts, given the window's totals and the hosts' and daemon's state.
pub fn evaluate(
    config: &AlertConfig,
    window: &Point,
    upstreams: &[UpstreamHealth],
    daemon: &DaemonStatus,
) -> Vec<Alert> {
    let mut active = Vec::new();
    let mut raise = |alert: &str, message: String| {
        active.push(Alert {
            alert: alert.to_owned(),
            message,
        });
    };
    let secs = humantime::format_duration(config.window);
    if window.requests >= config.min_requests {
        if let Some(mean) = window.mean_ms
            && mean > config.latency.as_secs_f64() * 1000.0
        {
            raise(
                "latency",
                format!(
                    "average latency {mean:.0} ms over the last {secs} (threshold {})",
                    humantime::format_duration(config.latency)
                ),
            );
        }
        if let Some(rate) = window.error_rate()
            && rate > config.error_rate
        {
            raise(
                "error_rate",
                format!(
                    "{:.1} % of {} requests failed over the last {secs} (threshold {:.1} %)",
                    rate * 100.0,
                    window.requests,
                    config.error_rate * 100.0
                ),
            );
        }
    }
    if window.hits + window.misses >= config.min_lookups
        && let Some(rate) = window.hit_rate()
        && rate < config.hit_rate
    {
        raise(
            "hit_rate",
            format!(
                "cache hit rate {:.0} % over the last {secs} (threshold {:.0} %)",
                rate * 100.0,
                config.hit_rate * 100.0
            ),
        );
    }
    let open: Vec<&str> = upstreams
        .iter()
        .filter(|u| u.breaker.state == crate::breaker::State::Open)
        .map(|u| u.url.as_str())
        .collect();
    if !open.is_empty() {
        raise(
            "breaker_open",
            format!("circuit breaker open for {}", open.join(", ")),
        );
    }
    let down: Vec<String> = upstreams
        .iter()
        .filter(|u| !u.reachable)
        .map(|u| match &u.last_error {
            Some(why) => format!("{} ({why})", u.url),
            None => u.url.clone(),
        })
        .collect();
    if !down.is_empty() {
        raise(
            "upstream_down",
            format!("not answering: {}", down.join(", ")),
        );
    }
    if daemon_is_down(daemon) {
        let why = daemon
            .message
            .clone()
            .unwrap_or_else(|| format!("the daemon is {:?}", daemon.state).to_lowercase());
        raise("daemon_down", why);
    }
    active
}

/// Whether a supervised daemon is not serving.
pub fn daemon_is_down(daemon: &DaemonStatus) -> bool {
    matches!(
        daemon.state,
        DaemonState::Stopped
            | DaemonState::CrashLoop
            | DaemonState::NotFound
            | DaemonState::Failed
            | DaemonState::Restarting
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(requests: u64, errors: u64, mean_ms: f64, hits: u64, misses: u64) -> Point {
        Point {
            requests,
            errors,
            hits,
            misses,
            mean_ms: Some(mean_ms),
            ..Point::default()
        }
    }

    fn names(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.alert.as_str()).collect()
    }

    #[test]
    fn the_reports_thresholds_raise_alerts_once_there_is_traffic_to_judge() {
        let config = AlertConfig::default();
        let daemon = DaemonStatus::disabled("http://127.0.0.1:11434");
        let quiet = evaluate(&config, &window(5, 5, 5000.0, 1, 9), &[], &daemon);
        assert!(quiet.is_empty(), "too little traffic: {quiet:?}");
        let bad = evaluate(&config, &window(100, 6, 1200.0, 40, 60), &[], &daemon);
        assert_eq!(names(&bad), ["latency", "error_rate", "hit_rate"]);
        assert!(bad[0].message.contains("1200 ms"), "{}", bad[0].message);
        let good = evaluate(&config, &window(100, 1, 300.0, 80, 20), &[], &daemon);
        assert!(good.is_empty());
    }

    #[test]
    fn a_down_daemon_is_an_alert_a_disabled_one_is_not() {
        let config = AlertConfig::default();
        let mut daemon = DaemonStatus::disabled("http://127.0.0.1:11434");
        assert!(evaluate(&config, &Point::default(), &[], &daemon).is_empty());
        daemon.state = DaemonState::CrashLoop;
        daemon.message = Some("ollama serve exited 5 times".into());
        let alerts = evaluate(&config, &Point::default(), &[], &daemon);
        assert_eq!(names(&alerts), ["daemon_down"]);
        assert_eq!(alerts[0].message, "ollama serve exited 5 times");
    }
}
