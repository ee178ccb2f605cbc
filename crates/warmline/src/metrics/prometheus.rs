//! The Prometheus text exposition (format 0.0.4) served at `/metrics`.
//!
//! Conventions: every name starts with `warmline_` (but the standard `process_*`
//! series every exporter writes, and `warmline_build_info`), counters end in `_total`,
//! durations are `_seconds`; labels come from bounded sets only (route kinds,
//! status classes, error kinds, configured upstreams, installed models, alert
//! names); and every series is written from start-up, at zero, so dashboards and
//! alert rules never see one missing. Distributions are histograms with fixed
//! buckets from 100 µs to 10 min, read off the aggregator's HDR histograms at
//! scrape time; a dashboard takes percentiles over any window with
//! `histogram_quantile(0.95, sum by (le) (rate(..._bucket[1m])))`, where a
//! summary's quantiles would cover everything since start-up.
//!
//! Rendering is done on each scrape, in one `String` (about 16 KB to start), from
//! the counters and one read of the aggregate (`recorder::Recorder::read`),
//! so a scrape sees every request that finished before it. Nothing here can fail:
//! writing to a `String` does not, and the results of `writeln!` are discarded.
//!
//! What the exposition approximates: bucket counts are read off HDR histograms
//! (0.1 % precision, see `cumulative`), and a histogram's `_sum` is its mean times
//! its count, so it carries the same precision rather than being an exact sum.
//! Per-model series exist only for models in [`Context::installed`]: a model that
//! is no longer installed anywhere drops out of the exposition.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use hdrhistogram::Histogram;

use super::recorder::Dists;
use super::{GATEWAY_ERROR_KINDS, Metrics};
use crate::upstream::UpstreamHealth;
use crate::wire::route::RouteKind;

/// What the exposition needs besides the metrics themselves: the gateway's
/// current view of its hosts, models and alerts, borrowed for one render.
#[derive(Debug, Default)]
pub struct Context<'a> {
    /// Every configured upstream: the only values of the `upstream` label.
    pub upstreams: &'a [UpstreamHealth],
    /// Installed models: the only values of the `model` label.
    pub installed: &'a [String],
    /// Every alert name, and whether it is active.
    pub alerts: &'a [(&'static str, bool)],
    /// The supervised daemon, while Warmline supervises one.
    pub daemon: Option<Daemon>,
}

/// The supervised daemon's figures, as the supervisor last read them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Daemon {
    /// Whether it runs and answers (started by Warmline or adopted).
    pub up: bool,
    /// Times Warmline restarted it after a crash.
    pub restarts: u64,
    /// CPU of its process tree, in cores (1 = one full core), if measured.
    pub cpu_cores: Option<f64>,
    /// Resident memory of its process tree, bytes, if measured.
    pub resident_bytes: Option<u64>,
}

/// A per-upstream counter: its name, its help, and where each host's value is.
type PerHost = (&'static str, &'static str, fn(&UpstreamHealth) -> u64);

/// Upper bounds of the histogram buckets, in seconds: fine where a gateway's
/// own overhead and cache hits live, coarse where generations and model loads do.
const BUCKETS: [f64; 21] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

impl Metrics {
    /// The whole exposition for `GET /metrics`, text format 0.0.4: every series
    /// listed in the module docs, each preceded by its `# HELP` and `# TYPE`
    /// lines. Label values that come from configuration or hosts (upstream URLs,
    /// model names) are escaped; everything else is from fixed sets. Never fails
    /// and never panics.
    pub fn render_prometheus(&self, context: &Context<'_>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let w = &mut out;
        let aggregate = self.recorder.read();

        header(
            w,
            "warmline_requests_total",
            "counter",
            "Requests received, by route kind.",
        );
        for (kind, count) in RouteKind::ALL.iter().zip(&self.requests) {
            let _ = writeln!(
                w,
                "warmline_requests_total{{route=\"{}\"}} {}",
                kind.as_str(),
                count.load(Relaxed)
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

        let per_route = |pick: fn(&Dists) -> &Histogram<u64>| {
            RouteKind::ALL
                .iter()
                .map(|kind| {
                    (
                        format!("route=\"{}\"", kind.as_str()),
                        aggregate.routes[kind.index()].as_deref().map(pick),
                    )
                })
                .collect::<Vec<_>>()
        };
        histogram(
            w,
            "warmline_request_duration_seconds",
            "Time from request to the end of the response body, by route kind.",
            &per_route(|d| &d.latency),
        );
        histogram(
            w,
            "warmline_request_ttft_seconds",
            "Time from request to the first body byte sent (time to first token for streams), by route kind.",
            &per_route(|d| &d.ttft),
        );
        histogram(
            w,
            "warmline_gateway_overhead_seconds",
            "Time spent in Warmline itself up to the response headers, without the upstream and the queue, by route kind.",
            &per_route(|d| &d.overhead),
        );
        histogram(
            w,
            "warmline_queue_wait_seconds",
            "Time generations waited in Warmline's per-model queue for a slot on their upstream.",
            &[(String::new(), Some(&aggregate.all.queue))],
        );

        let per_model = |pick: fn(&Dists) -> &Histogram<u64>| {
            context
                .installed
                .iter()
                .map(|m| {
                    (
                        format!("model=\"{}\"", escape(m)),
                        aggregate.models.get(m.as_str()).map(|d| pick(d)),
                    )
                })
                .collect::<Vec<_>>()
        };
        histogram(
            w,
            "warmline_model_request_duration_seconds",
            "Time from request to the end of the response body, per installed model.",
            &per_model(|d| &d.latency),
        );
        histogram(
            w,
            "warmline_model_ttft_seconds",
            "Time to first token, per installed model.",
            &per_model(|d| &d.ttft),
        );
        histogram(
            w,
            "warmline_model_load_seconds",
            "Model loads requests paid (cold starts), per installed model.",
            &per_model(|d| &d.load),
        );
        let models: Vec<_> = context
            .installed
            .iter()
            .map(|m| (m, self.models.get(m)))
            .collect();
        header(
            w,
            "warmline_model_requests_total",
            "counter",
            "Requests sent upstream per installed model.",
        );
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
            "warmline_model_output_tokens_total",
            "counter",
            "Tokens generated, per installed model (rate() over generation seconds gives tokens/s).",
        );
        for model in context.installed {
            let tokens = aggregate
                .models
                .get(model.as_str())
                .map_or(0, |d| d.output_tokens);
            let _ = writeln!(
                w,
                "warmline_model_output_tokens_total{{model=\"{}\"}} {tokens}",
                escape(model)
            );
        }
        header(
            w,
            "warmline_model_generation_seconds_total",
            "counter",
            "Time Ollama spent generating those tokens, per installed model.",
        );
        for model in context.installed {
            let micros = aggregate
                .models
                .get(model.as_str())
                .map_or(0, |d| d.generation_micros);
            let _ = writeln!(
                w,
                "warmline_model_generation_seconds_total{{model=\"{}\"}} {}",
                escape(model),
                seconds(micros)
            );
        }

        let hosts = context.upstreams;
        let per_host: [PerHost; 3] = [
            (
                "warmline_upstream_requests_total",
                "Requests sent to each upstream (every attempt, retries included).",
                |u| u.requests,
            ),
            (
                "warmline_upstream_retries_total",
                "Requests each upstream failed (refused connection, connect timeout, reset, 5xx, \
                 model missing) that were re-sent to another upstream.",
                |u| u.retried,
            ),
            (
                "warmline_upstream_connections_opened_total",
                "New TCP connections opened to each upstream (the rest reused the pool).",
                |u| u.connections_opened,
            ),
        ];
        for (name, help, value) in per_host {
            header(w, name, "counter", help);
            for u in hosts {
                let _ = writeln!(w, "{name}{{upstream=\"{}\"}} {}", escape(&u.url), value(u));
            }
        }
        header(
            w,
            "warmline_upstream_up",
            "gauge",
            "1 if the upstream answered its last health check.",
        );
        for u in hosts {
            let _ = writeln!(
                w,
                "warmline_upstream_up{{upstream=\"{}\"}} {}",
                escape(&u.url),
                u8::from(u.reachable)
            );
        }
        header(
            w,
            "warmline_upstream_parallel",
            "gauge",
            "Requests per model each upstream runs at once (OLLAMA_NUM_PARALLEL), and how \
             it is known: stated, supervised, adopted or learned (then per model).",
        );
        for u in hosts {
            let (url, source) = (escape(&u.url), u.parallel_source.as_str());
            if u.parallel_learned.is_empty() {
                let _ = writeln!(
                    w,
                    "warmline_upstream_parallel{{upstream=\"{url}\",source=\"{source}\",model=\"\"}} {}",
                    u.parallel
                );
            }
            for (model, parallel) in &u.parallel_learned {
                let _ = writeln!(
                    w,
                    "warmline_upstream_parallel{{upstream=\"{url}\",source=\"{source}\",model=\"{}\"}} {parallel}",
                    escape(model)
                );
            }
        }
        header(
            w,
            "warmline_upstream_in_flight_requests",
            "gauge",
            "Requests outstanding on each upstream.",
        );
        for u in hosts {
            let _ = writeln!(
                w,
                "warmline_upstream_in_flight_requests{{upstream=\"{}\"}} {}",
                escape(&u.url),
                u.in_flight
            );
        }
        header(
            w,
            "warmline_upstream_breaker_open",
            "gauge",
            "Circuit breaker state per upstream: 0 closed, 0.5 half-open (probing), 1 open.",
        );
        for u in hosts {
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
            "warmline_upstream_breaker_transitions_total",
            "counter",
            "Circuit breaker transitions per upstream, by the state entered.",
        );
        for u in hosts {
            for (to, count) in [
                ("open", u.breaker.opened),
                ("half_open", u.breaker.half_opened),
                ("closed", u.breaker.closed),
            ] {
                let _ = writeln!(
                    w,
                    "warmline_upstream_breaker_transitions_total{{upstream=\"{}\",to=\"{to}\"}} {count}",
                    escape(&u.url)
                );
            }
        }
        header(
            w,
            "warmline_upstream_breaker_opened_total",
            "counter",
            "Times each upstream's circuit breaker opened.",
        );
        for u in hosts {
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
        for u in hosts {
            let value = u.last_latency_ms.map_or(f64::NAN, |ms| ms / 1000.0);
            let _ = writeln!(
                w,
                "warmline_upstream_health_check_seconds{{upstream=\"{}\"}} {value}",
                escape(&u.url)
            );
        }

        header(
            w,
            "warmline_alert_active",
            "gauge",
            "1 while the alert holds (see /warmline/health for why).",
        );
        for (alert, active) in context.alerts {
            let _ = writeln!(
                w,
                "warmline_alert_active{{alert=\"{alert}\"}} {}",
                u8::from(*active)
            );
        }
        counter(
            w,
            "warmline_metrics_events_dropped_total",
            "Finished requests not recorded because the metrics thread fell behind.",
            self.recorder.dropped.load(Relaxed),
        );
        self.render_process(w, context.daemon);
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

impl Metrics {
    /// `warmline_build_info`, the standard `process_*` series of this process,
    /// and the supervised daemon's, each only where it can be read.
    fn render_process(&self, w: &mut String, daemon: Option<Daemon>) {
        header(
            w,
            "warmline_build_info",
            "gauge",
            "Always 1; the labels say which Warmline this is.",
        );
        let _ = writeln!(
            w,
            "warmline_build_info{{version=\"{}\",os=\"{}\",arch=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        let process = crate::sys::process::sample(self.started);
        let gauges: [(&str, &str, &str, Option<f64>); 5] = [
            (
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                process.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                process.resident_bytes.map(|b| b as f64),
            ),
            (
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                process.open_fds.map(|n| n as f64),
            ),
            (
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                process.max_fds.map(|n| n as f64),
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                Some(process.start_time_seconds),
            ),
        ];
        for (name, kind, help, value) in gauges {
            if let Some(value) = value {
                header(w, name, kind, help);
                let _ = writeln!(w, "{name} {value}");
            }
        }
        let Some(daemon) = daemon else {
            return;
        };
        header(
            w,
            "warmline_daemon_up",
            "gauge",
            "1 while the supervised Ollama daemon runs and answers.",
        );
        let _ = writeln!(w, "warmline_daemon_up {}", u8::from(daemon.up));
        counter(
            w,
            "warmline_daemon_restarts_total",
            "Times Warmline restarted the supervised daemon after it crashed.",
            daemon.restarts,
        );
        if let Some(cores) = daemon.cpu_cores {
            header(
                w,
                "warmline_daemon_cpu_cores",
                "gauge",
                "CPU of the daemon and its model runners, in cores (1 = one full core).",
            );
            let _ = writeln!(w, "warmline_daemon_cpu_cores {cores}");
        }
        if let Some(bytes) = daemon.resident_bytes {
            header(
                w,
                "warmline_daemon_resident_memory_bytes",
                "gauge",
                "Resident memory of the daemon and its model runners, bytes.",
            );
            let _ = writeln!(w, "warmline_daemon_resident_memory_bytes {bytes}");
        }
    }
}

/// A histogram with one series per label set (`""` for none); a missing
/// distribution is written as zeros.
///
/// Writes `name_bucket` for every bound in [`BUCKETS`] plus `+Inf`, then
/// `name_sum` (seconds) and `name_count`. `labels` is already formatted
/// (`route="chat"`) and escaped by the caller.
fn histogram(w: &mut String, name: &str, help: &str, series: &[(String, Option<&Histogram<u64>>)]) {
    header(w, name, "histogram", help);
    for (labels, histogram) in series {
        let sep = if labels.is_empty() { "" } else { "," };
        let counts = histogram.map_or([0; BUCKETS.len()], cumulative);
        for (bound, count) in BUCKETS.iter().zip(counts) {
            let _ = writeln!(w, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let (sum, count) =
            histogram.map_or((0.0, 0), |h| (h.mean() * h.len() as f64 / 1e6, h.len()));
        let _ = writeln!(w, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(w, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(w, "{name}_count{} {count}", braces(labels));
    }
}

/// How many recorded values are at or below each bucket bound: one pass over
/// the histogram's non-empty slots (a value is counted in a bucket when its slot
/// lies within it, so the error is the HDR precision, 0.1 %).
fn cumulative(h: &Histogram<u64>) -> [u64; BUCKETS.len()] {
    let bounds = BUCKETS.map(|b| (b * 1e6).round() as u64);
    let mut counts = [0u64; BUCKETS.len()];
    for slot in h.iter_recorded() {
        let value = h.lowest_equivalent(slot.value_iterated_to());
        if let Some(first) = bounds.iter().position(|b| value <= *b) {
            counts[first] += slot.count_at_value();
        }
    }
    let mut running = 0;
    for count in &mut counts {
        running += *count;
        *count = running;
    }
    counts
}

/// A counter without labels: its header and its one sample.
fn counter(w: &mut String, name: &str, help: &str, value: u64) {
    header(w, name, "counter", help);
    let _ = writeln!(w, "{name} {value}");
}

/// The `# HELP` and `# TYPE` lines of a metric family. `help` is written as is,
/// so it must not contain a newline or a backslash.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Microseconds as fractional seconds, the exposition's unit for durations.
fn seconds(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Escapes a Prometheus label value: backslash, double quote and newline, the
/// three characters the text format requires escaped inside quotes.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_every_value_at_or_below_their_bound() {
        let mut h = crate::metrics::new_histogram();
        for micros in [50, 100, 101, 900, 1_000, 2_500, 7_000_000, 599_000_000] {
            h.record(micros).expect("in range");
        }
        let counts = cumulative(&h);
        let at = |bound: f64| counts[BUCKETS.iter().position(|b| *b == bound).expect("a bound")];
        assert_eq!(at(0.0001), 2, "50 µs and exactly 100 µs");
        assert_eq!(at(0.00025), 3);
        assert_eq!(at(0.001), 5);
        assert_eq!(at(0.0025), 6, "2.5 ms is inside its bucket");
        assert_eq!(at(5.0), 6);
        assert_eq!(at(10.0), 7);
        assert_eq!(at(600.0), 8);
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    }

    #[test]
    fn a_histogram_is_written_with_every_bucket_even_when_empty() {
        let mut out = String::new();
        histogram(
            &mut out,
            "x_seconds",
            "help",
            &[("route=\"chat\"".into(), None)],
        );
        assert!(out.contains("# TYPE x_seconds histogram"));
        assert!(out.contains("x_seconds_bucket{route=\"chat\",le=\"0.0001\"} 0"));
        assert!(out.contains("x_seconds_bucket{route=\"chat\",le=\"+Inf\"} 0"));
        assert!(out.contains("x_seconds_count{route=\"chat\"} 0"));
        assert_eq!(out.matches("_bucket{").count(), BUCKETS.len() + 1);
    }
}
