//! Request metrics: counters, distributions, the rolling history, recent requests,
//! and their renderings — the JSON [`Stats`] snapshot, [`History`] series and
//! the Prometheus exposition (`prometheus`).
//!
//! Counters are atomics, updated where things happen. Everything with a
//! distribution is measured once per request, when its response body ends (so a
//! stream's latency is the whole stream, and a client that walked away is counted
//! too): the request path builds one `Event` and hands it to the aggregator
//! thread (`recorder`) without taking a lock. Every series exists from start-up,
//! at zero, so dashboards and alerts never see a missing series.
//!
//! Where it sits: one [`Metrics`] is created per gateway and shared by `Arc`. The
//! request path only calls the cheap recorders (`request_started`,
//! `upstream_request`, `gateway_error`, and `finished` from the response body's
//! drop guard); the readers — `/warmline/stats`, `/warmline/history`,
//! `/warmline/requests`, `/metrics`, the alerts and the desktop app's charts — call
//! `stats`, `history`, `recent`, `window_total` and `render_prometheus`.
//!
//! ```text
//!   request path ──atomics──▶ Metrics counters ───────────────┐
//!        │                                                    ├──▶ stats / Prometheus
//!        └─finished(Event)─▶ recorder channel ─▶ Aggregate ───┘     history / recent
//! ```
//!
//! Invariants:
//! - labels come from fixed sets ([`RouteKind::ALL`], [`GATEWAY_ERROR_KINDS`],
//!   installed models), never from what a client sent, so cardinality is bounded;
//! - `in_flight` is incremented by `request_started` and decremented by `finished`:
//!   every started request must be finished exactly once (the proxy's `Finish` drop
//!   guard and the router's `observe` middleware do this);
//! - nothing here panics or blocks on the request path; a reader holds the
//!   aggregate's mutex only while it applies queued events and copies what it needs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub(crate) mod history;
mod models;
mod prometheus;
mod recorder;

pub use history::{Accumulator, History, ModelSummary, Point, total};
pub use models::{COLD_LOAD_THRESHOLD, ModelMetrics, ModelStats};
pub use prometheus::{Context, Daemon};
use recorder::{Dists, Recorder};
pub use recorder::{Event, RecentRequest};

use crate::wire::route::RouteKind;

/// Highest latency the histograms track: 10 minutes, in microseconds. Longer
/// values are clamped to it (a stream longer than that counts as 10 minutes).
const MAX_MICROS: u64 = 600_000_000;

/// Gateway error kinds counted in `warmline_gateway_errors_total`; see `Error::kind`.
///
/// The order is the order of the counters (and of the Prometheus series). A kind
/// passed to [`Metrics::gateway_error`] that is not in this list is ignored, so a
/// new `Error::kind` must be added here to be counted.
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
///
/// Counters are relaxed atomics: each is exact on its own, but a snapshot taken
/// while requests run may see one counter a request ahead of another.
#[derive(Debug)]
pub struct Metrics {
    /// When the metrics (and so the gateway) started, for `uptime_s`.
    started: Instant,
    /// Requests started and not yet finished. Signed so a stray extra `finished`
    /// cannot wrap it; readers clamp it at zero.
    in_flight: AtomicI64,
    /// Requests received, by route kind (index: [`RouteKind::index`]).
    requests: Vec<AtomicU64>,
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    status_classes: [AtomicU64; 5],
    /// One counter per entry of [`GATEWAY_ERROR_KINDS`], same index.
    gateway_errors: Vec<AtomicU64>,
    /// Requests sent to an upstream (retries included).
    upstream_requests: AtomicU64,
    /// Requests re-sent to another upstream after the first failed.
    upstream_retries: AtomicU64,
    /// New TCP connections to upstreams, counted by the client's connector.
    upstream_connects: Arc<AtomicU64>,
    /// Requests, cold starts and load time per installed model.
    pub models: ModelMetrics,
    /// Distributions, history and recent requests (see `recorder`).
    recorder: Recorder,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every counter at zero. Starts the aggregator thread too (`warmline-metrics`);
    /// it ends when the metrics are dropped. If the thread cannot be started the
    /// metrics still work: readers then apply queued events themselves.
    pub fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            in_flight: AtomicI64::new(0),
            requests: RouteKind::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            status_classes: Default::default(),
            gateway_errors: GATEWAY_ERROR_KINDS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            upstream_requests: AtomicU64::new(0),
            upstream_retries: AtomicU64::new(0),
            upstream_connects: Arc::new(AtomicU64::new(0)),
            models: ModelMetrics::default(),
            recorder: Recorder::start(),
        }
    }

    /// The counter the upstream client's connector increments per new connection.
    /// Shared (not copied), so the connector and `stats` see the same value; the
    /// reuse ratio in [`Stats`] is derived from it.
    pub fn connect_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.upstream_connects)
    }

    /// A request of `kind` arrived: counts it and raises `in_flight`. Must be
    /// paired with exactly one [`Metrics::finished`] (or `request_finished`).
    pub fn request_started(&self, kind: RouteKind) {
        self.requests[kind.index()].fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A request was sent to an upstream (each attempt counts, retries included).
    pub fn upstream_request(&self) {
        self.upstream_requests.fetch_add(1, Relaxed);
    }

    /// A request was re-sent to another upstream.
    pub fn upstream_retry(&self) {
        self.upstream_retries.fetch_add(1, Relaxed);
    }

    /// A request finished (its response body ended or was dropped): lowers
    /// `in_flight`, counts its status class (a status below 100 counts as 1xx, one
    /// of 600 or above as 5xx) and hands the event to the aggregator. Never blocks;
    /// if the aggregator's queue is full the event's distributions are dropped and
    /// counted in `events_dropped`, but the counters here stay exact.
    pub fn finished(&self, event: Event) {
        self.in_flight.fetch_sub(1, Relaxed);
        let class = usize::from(event.status / 100).clamp(1, 5) - 1;
        self.status_classes[class].fetch_add(1, Relaxed);
        self.recorder.record(event);
    }

    /// [`Metrics::finished`] knowing only the kind, status and latency.
    pub fn request_finished(&self, kind: RouteKind, status: u16, elapsed: Duration) {
        self.finished(Event::basic(kind, status, elapsed));
    }

    /// Counts an error Warmline itself produced or observed, by its static kind.
    /// A kind missing from [`GATEWAY_ERROR_KINDS`] is silently ignored.
    pub fn gateway_error(&self, kind: &'static str) {
        if let Some(i) = GATEWAY_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.gateway_errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Everything in the last `window`, summed into one point, including the
    /// interval still being filled: what alerts judge.
    ///
    /// Windows up to an hour are summed from per-second points, longer ones from
    /// per-minute points (so a long window starts on a minute boundary). Intervals
    /// without any request are left out before summing; percentiles in the result
    /// are the worst interval's p95/p99 (see `history::total`), and `p50_ms` and the
    /// TTFT fields stay `None`.
    pub fn window_total(&self, window: Duration) -> Point {
        let aggregate = self.recorder.read();
        let since = unix_now().saturating_sub(window.as_secs());
        let mut points = if window <= Duration::from_secs(3600) {
            let mut points = aggregate.seconds.since(since);
            points.push(aggregate.current_second());
            points
        } else {
            let mut points = aggregate.minutes.since(since);
            points.push(aggregate.current_minute());
            points
        };
        points.retain(|p| p.requests > 0 || p.hits + p.misses > 0);
        total(&points)
    }

    /// The last `window` of history for the charts: per second up to an hour, per
    /// minute beyond (at most a day is kept, whatever `window` asks). Only closed
    /// intervals are included, never the one still being filled.
    ///
    /// The per-model summaries are not limited to `window`: they come from the
    /// per-model distributions, which cover every request since start-up (and the
    /// cold-start counts from [`ModelMetrics`], likewise since start-up).
    pub fn history(&self, window: Duration) -> History {
        let aggregate = self.recorder.read();
        let since = unix_now().saturating_sub(window.as_secs());
        let (step_s, points) = if window <= Duration::from_secs(3600) {
            (1, aggregate.seconds.since(since))
        } else {
            (60, aggregate.minutes.since(since))
        };
        let mut models: Vec<ModelSummary> = aggregate
            .models
            .iter()
            .map(|(name, d)| {
                let counters = self.models.get(name);
                ModelSummary {
                    model: name.to_string(),
                    requests: d.latency.len(),
                    cold_starts: counters.cold_starts,
                    p50_ms: quantile_ms(&d.latency, 0.5),
                    p95_ms: quantile_ms(&d.latency, 0.95),
                    ttft_p50_ms: quantile_ms(&d.ttft, 0.5),
                    tokens_per_s: d.tokens_per_second(),
                }
            })
            .collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));
        History {
            step_s,
            points,
            models,
        }
    }

    /// Appends one line per finished request to `path` from now on (`None`: stop).
    /// Calling it again with the same path keeps the open file. A file that cannot
    /// be opened is logged once and then ignored; nothing is returned, since the
    /// access log is best-effort and must never fail a request.
    pub fn set_access_log(&self, path: Option<&std::path::Path>) {
        let mut aggregate = self.recorder.read();
        if aggregate.access_log.as_ref().map(|l| l.path.as_path()) != path {
            aggregate.access_log = path.map(|p| recorder::AccessLog::new(p.to_path_buf()));
        }
    }

    /// Closes the access log and opens its path again, for log rotation: after
    /// `mv access.log access.log.1` (logrotate), the next line starts a new
    /// `access.log`. Lines already buffered go to the old file first.
    pub fn reopen_access_log(&self) {
        let mut aggregate = self.recorder.read();
        if let Some(old) = aggregate.access_log.take() {
            let path = old.path.clone();
            drop(old);
            aggregate.access_log = Some(recorder::AccessLog::new(path));
        }
    }

    /// The last `n` finished requests, newest first (at most `recorder::RECENT`
    /// are kept). Includes every request that finished before the call.
    pub fn recent(&self, n: usize) -> Vec<RecentRequest> {
        self.recorder
            .read()
            .recent
            .iter()
            .rev()
            .take(n)
            .cloned()
            .collect()
    }

    /// A point-in-time JSON snapshot, served at `/warmline/stats`. Routes that saw
    /// no request are left out of `routes`, and error kinds at zero out of
    /// `gateway_errors` (the Prometheus exposition, by contrast, writes them all).
    pub fn stats(&self) -> Stats {
        let aggregate = self.recorder.read();
        let mut routes = BTreeMap::new();
        let mut requests = 0;
        for (kind, count) in RouteKind::ALL.iter().zip(&self.requests) {
            let count = count.load(Relaxed);
            requests += count;
            if count == 0 {
                continue;
            }
            let dists = aggregate.routes[kind.index()].as_deref();
            let q = |pick: fn(&Dists) -> &Histogram<u64>, quantile| {
                dists.and_then(|d| quantile_ms(pick(d), quantile))
            };
            routes.insert(
                kind.as_str().to_owned(),
                RouteStats {
                    count,
                    p50_ms: q(|d| &d.latency, 0.50).unwrap_or(0.0),
                    p95_ms: q(|d| &d.latency, 0.95).unwrap_or(0.0),
                    p99_ms: q(|d| &d.latency, 0.99).unwrap_or(0.0),
                    max_ms: dists.map_or(0.0, |d| millis(d.latency.max())),
                    ttft_p50_ms: q(|d| &d.ttft, 0.50),
                    ttft_p95_ms: q(|d| &d.ttft, 0.95),
                    overhead_p50_ms: q(|d| &d.overhead, 0.50),
                    overhead_p99_ms: q(|d| &d.overhead, 0.99),
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
        let mut models = self.models.all();
        for (name, stats) in &mut models {
            if let Some(d) = aggregate.models.get(name.as_str()) {
                stats.p50_ms = quantile_ms(&d.latency, 0.5);
                stats.p95_ms = quantile_ms(&d.latency, 0.95);
                stats.ttft_p50_ms = quantile_ms(&d.ttft, 0.5);
                stats.tokens_per_s = d.tokens_per_second();
            }
        }
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
            queue_wait_p99_ms: quantile_ms(&aggregate.all.queue, 0.99),
            overhead_p50_ms: quantile_ms(&aggregate.all.overhead, 0.5),
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
            models,
            events_dropped: self.recorder.dropped.load(Relaxed),
        }
    }
}

/// A quantile in milliseconds; `None` for an empty histogram.
fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| millis(histogram.value_at_quantile(quantile)))
}

/// An empty histogram of 1 µs to [`MAX_MICROS`] at 3 significant digits: the one
/// shape every distribution in this module uses, so they can be compared.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

/// Microseconds as fractional milliseconds.
fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The JSON served at `GET /warmline/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// Seconds since the gateway (its metrics) started.
    pub uptime_s: f64,
    /// Requests received (all route kinds).
    pub requests: u64,
    /// 5xx responses plus streams that broke after their status was sent.
    pub errors: u64,
    /// Requests started and not yet finished (a streaming answer counts until its
    /// body ends).
    pub in_flight: u64,
    /// Responses by status class (a client that left before the headers counts as
    /// a 499 in `4xx`).
    pub responses: StatusClasses,
    /// Errors Warmline itself produced or observed, by kind (only non-zero ones).
    pub gateway_errors: BTreeMap<String, u64>,
    /// Latency per route kind that has seen traffic.
    pub routes: BTreeMap<String, RouteStats>,
    /// Over every request: Warmline's own time (p50) and queue wait (p99).
    pub overhead_p50_ms: Option<f64>,
    /// p99 of the wait for a model slot, over requests that took one (generations
    /// with a known model; a slot granted at once counts as a wait of ~0).
    pub queue_wait_p99_ms: Option<f64>,
    /// Requests to upstreams and how well their connections were reused.
    pub upstream: UpstreamStats,
    /// Requests, cold starts and latency per installed model that has seen traffic.
    pub models: BTreeMap<String, ModelStats>,
    /// Requests not recorded in the distributions (the metrics thread fell behind).
    pub events_dropped: u64,
}

/// Responses sent, by status class; serialised with the class as the key
/// (`{"1xx": 0, "2xx": 120, ...}`).
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

/// One route kind's request count and latency, since start-up. Latencies are in
/// milliseconds at the histograms' 3-significant-digit precision; they are 0.0
/// (not absent) if the distribution has no sample yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteStats {
    /// Requests received of this kind (the counter, not the histogram).
    pub count: u64,
    /// Latency (arrival to the end of the response body) percentiles.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// The longest latency recorded.
    pub max_ms: f64,
    /// Time to the first body byte; `None` when no request of this kind sent one.
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    /// Warmline's own time per request, up to the response headers.
    pub overhead_p50_ms: Option<f64>,
    pub overhead_p99_ms: Option<f64>,
}

/// What the gateway asked of its upstreams, over all hosts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpstreamStats {
    /// Requests sent to upstreams (retries included).
    pub requests: u64,
    /// Requests re-sent to another upstream.
    pub retries: u64,
    /// New TCP connections opened (health checks and model refreshes included,
    /// since they share the client).
    pub connections_opened: u64,
    /// Share of upstream requests that reused a pooled connection:
    /// `1 - connections / requests`, clamped to 0..=1; 0.0 before any request.
    pub reuse_ratio: f64,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    fn the_alert_window_includes_the_second_still_being_filled() {
        let metrics = Metrics::new();
        for status in [200, 500, 500] {
            metrics.request_started(RouteKind::Chat);
            metrics.request_finished(RouteKind::Chat, status, Duration::from_millis(5));
        }
        // No second has closed yet (unless one just did): both count them all.
        let window = metrics.window_total(Duration::from_secs(60));
        assert_eq!((window.requests, window.errors), (3, 2), "{window:?}");
        let long = metrics.window_total(Duration::from_secs(7200));
        assert_eq!((long.requests, long.errors), (3, 2), "{long:?}");
    }

    #[test]
    fn prometheus_output_has_every_series_from_the_start() {
        let installed = ["llama3.2:latest".to_owned()];
        let text = Metrics::new().render_prometheus(&Context {
            installed: &installed,
            alerts: &[("latency", false)],
            ..Context::default()
        });
        assert!(text.contains("warmline_alert_active{alert=\"latency\"} 0"));
        assert!(text.contains("warmline_model_ttft_seconds_count{model=\"llama3.2:latest\"} 0"));
        assert!(
            text.contains("warmline_request_ttft_seconds_bucket{route=\"chat\",le=\"0.25\"} 0")
        );
        assert!(text.contains("warmline_model_cold_starts_total{model=\"llama3.2:latest\"} 0"));
        for kind in RouteKind::ALL {
            assert!(text.contains(&format!(
                "warmline_requests_total{{route=\"{}\"}} 0",
                kind.as_str()
            )));
        }
        assert!(text.contains("warmline_gateway_errors_total{kind=\"upstream_unreachable\"} 0"));
        // Warmline's own series, and the standard ones of any exporter's process.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.starts_with("warmline_") || line.starts_with("process_"),
                "{line}"
            );
        }
        assert!(text.contains("\nwarmline_build_info{version=\""), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
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
