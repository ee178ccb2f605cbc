//! Request metrics: counters, latency histograms per route kind, and their two
//! renderings — the JSON [`Stats`] snapshot and the Prometheus text exposition.
//!
//! Latency is recorded once per request, when its response body ends (so a stream's
//! latency is the whole stream, and a client that walked away is counted too), into
//! an HDR histogram per [`RouteKind`] with microsecond resolution from 1 µs to
//! 10 minutes at 3 significant digits. Each histogram sits behind its own mutex that
//! is held only for the `record` call, never across an `.await`; counters are
//! atomics. Every series exists from start-up, at zero, so dashboards and alerts
//! never see a missing series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

mod models;

pub use models::{COLD_LOAD_THRESHOLD, ModelMetrics, ModelStats};

use crate::route::RouteKind;
use crate::upstream::UpstreamHealth;

/// Highest latency the histograms track: 10 minutes, in microseconds.
const MAX_MICROS: u64 = 600_000_000;

/// Gateway error kinds counted in `warmline_gateway_errors_total`; see `Error::kind`.
pub const GATEWAY_ERROR_KINDS: &[&str] = &[
    "upstream_unreachable",
    "connect_timeout",
    "first_byte_timeout",
    "upstream_protocol",
    "body_too_large",
    "breaker_open",
    "queue_full",
    "queue_timeout",
    "rate_limited",
    "body_timeout",
    "header_timeout",
    "header_too_large",
    "client_body",
    "origin_forbidden",
    "host_forbidden",
    "idle_timeout",
    "stream_aborted",
];

/// All of the gateway's measurements. Shared by reference; every method is `&self`.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    in_flight: AtomicI64,
    routes: Vec<RouteMetrics>,
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    status_classes: [AtomicU64; 5],
    gateway_errors: Vec<AtomicU64>,
    upstream_requests: AtomicU64,
    /// Requests re-sent to another upstream after the first failed.
    upstream_retries: AtomicU64,
    /// Time generations waited for a model slot in Warmline's queue.
    queue_wait: Mutex<Histogram<u64>>,
    queue_wait_sum_micros: AtomicU64,
    /// New TCP connections to upstreams, counted by the client's connector.
    upstream_connects: Arc<AtomicU64>,
    /// Requests, cold starts and load time per installed model.
    pub models: ModelMetrics,
}

#[derive(Debug)]
struct RouteMetrics {
    requests: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    latency_sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let routes = RouteKind::ALL
            .iter()
            .map(|_| RouteMetrics {
                requests: AtomicU64::new(0),
                latency: Mutex::new(new_histogram()),
                latency_sum_micros: AtomicU64::new(0),
            })
            .collect();
        Metrics {
            started: Instant::now(),
            in_flight: AtomicI64::new(0),
            routes,
            status_classes: Default::default(),
            gateway_errors: GATEWAY_ERROR_KINDS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            upstream_requests: AtomicU64::new(0),
            upstream_retries: AtomicU64::new(0),
            queue_wait: Mutex::new(new_histogram()),
            queue_wait_sum_micros: AtomicU64::new(0),
            upstream_connects: Arc::new(AtomicU64::new(0)),
            models: ModelMetrics::default(),
        }
    }

    /// The counter the upstream client's connector increments per new connection.
    pub fn connect_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.upstream_connects)
    }

    /// A request of `kind` arrived.
    pub fn request_started(&self, kind: RouteKind) {
        self.routes[kind.index()].requests.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A request was sent to an upstream.
    pub fn upstream_request(&self) {
        self.upstream_requests.fetch_add(1, Relaxed);
    }

    /// A generation waited `waited` for a model slot (zero when one was free).
    pub fn queue_wait(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);
        self.queue_wait_sum_micros.fetch_add(micros, Relaxed);
        if let Ok(mut histogram) = self.queue_wait.lock() {
            histogram.saturating_record(micros);
        }
    }

    /// A request was re-sent to another upstream.
    pub fn upstream_retry(&self) {
        self.upstream_retries.fetch_add(1, Relaxed);
    }

    /// A request of `kind` finished (its response body ended or was dropped).
    pub fn request_finished(&self, kind: RouteKind, status: u16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.status_classes[class].fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MICROS);
        let route = &self.routes[kind.index()];
        route.latency_sum_micros.fetch_add(micros, Relaxed);
        if let Ok(mut histogram) = route.latency.lock() {
            histogram.saturating_record(micros);
        }
    }

    /// Counts an error Warmline itself produced or observed, by its static kind.
    pub fn gateway_error(&self, kind: &'static str) {
        if let Some(i) = GATEWAY_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.gateway_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// A point-in-time JSON snapshot.
    pub fn stats(&self) -> Stats {
        let mut routes = BTreeMap::new();
        let mut requests = 0;
        for (kind, route) in RouteKind::ALL.iter().zip(&self.routes) {
            let count = route.requests.load(Relaxed);
            requests += count;
            if count == 0 {
                continue;
            }
            let (p50, p95, p99, max) = match route.latency.lock() {
                Ok(h) => (
                    h.value_at_quantile(0.50),
                    h.value_at_quantile(0.95),
                    h.value_at_quantile(0.99),
                    h.max(),
                ),
                Err(_) => (0, 0, 0, 0),
            };
            routes.insert(
                kind.as_str().to_owned(),
                RouteStats {
                    count,
                    p50_ms: millis(p50),
                    p95_ms: millis(p95),
                    p99_ms: millis(p99),
                    max_ms: millis(max),
                },
            );
        }
        let class = |i: usize| self.status_classes[i].load(Relaxed);
        let gateway_errors: BTreeMap<String, u64> = GATEWAY_ERROR_KINDS
            .iter()
            .zip(&self.gateway_errors)
            .map(|(k, v)| ((*k).to_owned(), v.load(Relaxed)))
            .filter(|(_, v)| *v > 0)
            .collect();
        let upstream_requests = self.upstream_requests.load(Relaxed);
        let connects = self.upstream_connects.load(Relaxed);
        Stats {
            uptime_s: self.started.elapsed().as_secs_f64(),
            requests,
            errors: class(4)
                + gateway_errors.get("stream_aborted").copied().unwrap_or(0)
                + gateway_errors.get("idle_timeout").copied().unwrap_or(0),
            in_flight: self.in_flight.load(Relaxed).max(0) as u64,
            responses: StatusClasses {
                informational: class(0),
                success: class(1),
                redirect: class(2),
                client_error: class(3),
                server_error: class(4),
            },
            gateway_errors,
            routes,
            upstream: UpstreamStats {
                requests: upstream_requests,
                connections_opened: connects,
                retries: self.upstream_retries.load(Relaxed),
                reuse_ratio: if upstream_requests == 0 {
                    0.0
                } else {
                    1.0 - (connects.min(upstream_requests) as f64 / upstream_requests as f64)
                },
            },
            models: self.models.all(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4). Every metric name starts with
    /// `warmline_`; labels are route kinds, status classes, error kinds and upstream
    /// URLs — all bounded sets.
    pub fn render_prometheus(&self, upstreams: &[UpstreamHealth], installed: &[String]) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let w = &mut out;
        header(
            w,
            "warmline_requests_total",
            "counter",
            "Requests received, by route kind.",
        );
        for (kind, route) in RouteKind::ALL.iter().zip(&self.routes) {
            let _ = writeln!(
                w,
                "warmline_requests_total{{route=\"{}\"}} {}",
                kind.as_str(),
                route.requests.load(Relaxed)
            );
        }
        header(
            w,
            "warmline_responses_total",
            "counter",
            "Responses sent, by status class.",
        );
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let _ = writeln!(
                w,
                "warmline_responses_total{{class=\"{class}\"}} {}",
                self.status_classes[i].load(Relaxed)
            );
        }
        header(
            w,
            "warmline_gateway_errors_total",
            "counter",
            "Errors produced or observed by the gateway itself, by kind.",
        );
        for (kind, count) in GATEWAY_ERROR_KINDS.iter().zip(&self.gateway_errors) {
            let _ = writeln!(
                w,
                "warmline_gateway_errors_total{{kind=\"{kind}\"}} {}",
                count.load(Relaxed)
            );
        }
        header(
            w,
            "warmline_in_flight_requests",
            "gauge",
            "Requests currently being served.",
        );
        let _ = writeln!(
            w,
            "warmline_in_flight_requests {}",
            self.in_flight.load(Relaxed).max(0)
        );
        header(
            w,
            "warmline_request_duration_seconds",
            "summary",
            "Time from request to the end of the response body, by route kind.",
        );
        for (kind, route) in RouteKind::ALL.iter().zip(&self.routes) {
            let label = kind.as_str();
            let (quantiles, count) = match route.latency.lock() {
                Ok(h) => (
                    [0.5, 0.9, 0.95, 0.99].map(|q| (q, h.value_at_quantile(q))),
                    h.len(),
                ),
                Err(_) => ([0.5, 0.9, 0.95, 0.99].map(|q| (q, 0)), 0),
            };
            for (q, micros) in quantiles {
                let _ = writeln!(
                    w,
                    "warmline_request_duration_seconds{{route=\"{label}\",quantile=\"{q}\"}} {}",
                    seconds(micros)
                );
            }
            let _ = writeln!(
                w,
                "warmline_request_duration_seconds_sum{{route=\"{label}\"}} {}",
                seconds(route.latency_sum_micros.load(Relaxed))
            );
            let _ = writeln!(
                w,
                "warmline_request_duration_seconds_count{{route=\"{label}\"}} {count}"
            );
        }
        header(
            w,
            "warmline_upstream_requests_total",
            "counter",
            "Requests sent to upstreams.",
        );
        let _ = writeln!(
            w,
            "warmline_upstream_requests_total {}",
            self.upstream_requests.load(Relaxed)
        );
        header(
            w,
            "warmline_queue_wait_seconds",
            "summary",
            "Time generations waited in Warmline's per-model queue for a slot on their upstream.",
        );
        let (quantiles, count) = match self.queue_wait.lock() {
            Ok(h) => ([0.5, 0.99].map(|q| (q, h.value_at_quantile(q))), h.len()),
            Err(_) => ([0.5, 0.99].map(|q| (q, 0)), 0),
        };
        for (q, micros) in quantiles {
            let _ = writeln!(
                w,
                "warmline_queue_wait_seconds{{quantile=\"{q}\"}} {}",
                seconds(micros)
            );
        }
        let _ = writeln!(
            w,
            "warmline_queue_wait_seconds_sum {}",
            seconds(self.queue_wait_sum_micros.load(Relaxed))
        );
        let _ = writeln!(w, "warmline_queue_wait_seconds_count {count}");
        header(
            w,
            "warmline_upstream_retries_total",
            "counter",
            "Requests re-sent to another upstream after a refused connection, a connect timeout, a reset or a 5xx.",
        );
        let _ = writeln!(
            w,
            "warmline_upstream_retries_total {}",
            self.upstream_retries.load(Relaxed)
        );
        header(
            w,
            "warmline_upstream_connections_opened_total",
            "counter",
            "New TCP connections opened to upstreams (the rest reused the pool).",
        );
        let _ = writeln!(
            w,
            "warmline_upstream_connections_opened_total {}",
            self.upstream_connects.load(Relaxed)
        );
        header(
            w,
            "warmline_upstream_up",
            "gauge",
            "1 if the upstream answered its last health check.",
        );
        for u in upstreams {
            let _ = writeln!(
                w,
                "warmline_upstream_up{{upstream=\"{}\"}} {}",
                escape(&u.url),
                u8::from(u.reachable)
            );
        }
        header(
            w,
            "warmline_upstream_breaker_open",
            "gauge",
            "Circuit breaker state per upstream: 0 closed, 0.5 half-open (probing), 1 open.",
        );
        for u in upstreams {
            let value = match u.breaker.state {
                crate::breaker::State::Closed => "0",
                crate::breaker::State::HalfOpen => "0.5",
                crate::breaker::State::Open => "1",
            };
            let _ = writeln!(
                w,
                "warmline_upstream_breaker_open{{upstream=\"{}\"}} {value}",
                escape(&u.url)
            );
        }
        header(
            w,
            "warmline_upstream_breaker_opened_total",
            "counter",
            "Times each upstream's circuit breaker opened.",
        );
        for u in upstreams {
            let _ = writeln!(
                w,
                "warmline_upstream_breaker_opened_total{{upstream=\"{}\"}} {}",
                escape(&u.url),
                u.breaker.opened
            );
        }
        header(
            w,
            "warmline_upstream_health_check_seconds",
            "gauge",
            "Latency of the upstream's last successful health check.",
        );
        for u in upstreams {
            let value = u.last_latency_ms.map_or(f64::NAN, |ms| ms / 1000.0);
            let _ = writeln!(
                w,
                "warmline_upstream_health_check_seconds{{upstream=\"{}\"}} {value}",
                escape(&u.url)
            );
        }
        header(
            w,
            "warmline_model_requests_total",
            "counter",
            "Requests sent upstream per installed model.",
        );
        let models: Vec<(&String, ModelStats)> =
            installed.iter().map(|m| (m, self.models.get(m))).collect();
        for (model, stats) in &models {
            let _ = writeln!(
                w,
                "warmline_model_requests_total{{model=\"{}\"}} {}",
                escape(model),
                stats.requests
            );
        }
        header(
            w,
            "warmline_model_cold_starts_total",
            "counter",
            "Requests that paid a model load, per installed model.",
        );
        for (model, stats) in &models {
            let _ = writeln!(
                w,
                "warmline_model_cold_starts_total{{model=\"{}\"}} {}",
                escape(model),
                stats.cold_starts
            );
        }
        header(
            w,
            "warmline_model_load_seconds_total",
            "counter",
            "Time requests spent waiting for their model to load, per installed model.",
        );
        for (model, stats) in &models {
            let _ = writeln!(
                w,
                "warmline_model_load_seconds_total{{model=\"{}\"}} {}",
                escape(model),
                stats.load_ms as f64 / 1000.0
            );
        }
        header(
            w,
            "warmline_uptime_seconds",
            "gauge",
            "Seconds since the gateway started.",
        );
        let _ = writeln!(
            w,
            "warmline_uptime_seconds {}",
            self.started.elapsed().as_secs_f64()
        );
        out
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The JSON served at `GET /warmline/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub uptime_s: f64,
    /// Requests received (all route kinds).
    pub requests: u64,
    /// 5xx responses plus streams that broke after their status was sent.
    pub errors: u64,
    pub in_flight: u64,
    pub responses: StatusClasses,
    /// Errors Warmline itself produced or observed, by kind (only non-zero ones).
    pub gateway_errors: BTreeMap<String, u64>,
    /// Latency per route kind that has seen traffic.
    pub routes: BTreeMap<String, RouteStats>,
    pub upstream: UpstreamStats,
    /// Requests and cold starts per installed model that has seen traffic.
    pub models: BTreeMap<String, ModelStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirect: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteStats {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpstreamStats {
    pub requests: u64,
    /// Requests re-sent to another upstream.
    pub retries: u64,
    pub connections_opened: u64,
    /// Share of upstream requests that reused a pooled connection.
    pub reuse_ratio: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_report_percentiles_per_route() {
        let metrics = Metrics::new();
        for ms in 1..=100 {
            metrics.request_started(RouteKind::Chat);
            metrics.request_finished(RouteKind::Chat, 200, Duration::from_millis(ms));
        }
        metrics.request_started(RouteKind::Tags);
        metrics.request_finished(RouteKind::Tags, 502, Duration::from_millis(1));
        let stats = metrics.stats();
        assert_eq!(stats.requests, 101);
        assert_eq!(stats.errors, 1);
        assert_eq!(stats.in_flight, 0);
        let chat = &stats.routes["chat"];
        assert_eq!(chat.count, 100);
        assert!((chat.p50_ms - 50.0).abs() < 0.1, "{chat:?}");
        assert!((chat.p99_ms - 99.0).abs() < 0.1, "{chat:?}");
        assert!(!stats.routes.contains_key("generate"));
    }

    #[test]
    fn prometheus_output_has_every_series_from_the_start() {
        let text = Metrics::new().render_prometheus(&[], &["llama3.2:latest".to_owned()]);
        assert!(text.contains("warmline_model_cold_starts_total{model=\"llama3.2:latest\"} 0"));
        for kind in RouteKind::ALL {
            assert!(text.contains(&format!(
                "warmline_requests_total{{route=\"{}\"}} 0",
                kind.as_str()
            )));
        }
        assert!(text.contains("warmline_gateway_errors_total{kind=\"upstream_unreachable\"} 0"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("warmline_"), "{line}");
        }
    }

    #[test]
    fn reuse_ratio_counts_pooled_requests() {
        let metrics = Metrics::new();
        for _ in 0..10 {
            metrics.upstream_request();
        }
        metrics.connect_counter().fetch_add(1, Relaxed);
        assert!((metrics.stats().upstream.reuse_ratio - 0.9).abs() < 1e-9);
    }
}
