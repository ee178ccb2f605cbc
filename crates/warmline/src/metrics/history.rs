//! The rolling history behind the charts: one [`Point`] per second for the last
//! hour and one per minute for the last day, each a summary (counts and
//! percentiles), never raw samples, so memory stays fixed: 3,600 + 1,440 points of
//! 144 bytes each (six `u64` and six `Option<f64>`), about 725 KB in all.
//!
//! The aggregator (`recorder`) fills an [`Accumulator`] per resolution and, when
//! an interval ends, turns it into a [`Point`] and pushes it onto a [`Ring`]. A
//! point is immutable once closed; percentiles cannot be merged exactly, so a
//! window summed with [`total`] reports the worst interval's percentiles instead.
//!
//! The same [`History`] shape is what `GET /warmline/history` serves, what
//! `warmline report` fetches and draws, and what `warmline bench --report` builds
//! from its own run.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Per-second points kept: one hour.
pub const SECONDS_KEPT: usize = 3600;
/// Per-minute points kept: one day.
pub const MINUTES_KEPT: usize = 1440;

/// One interval's summary. Latencies in milliseconds; `None` when the interval
/// had no such sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the interval, seconds since the Unix epoch.
    pub t: u64,
    /// Requests that finished in the interval (not those that started in it),
    /// give or take the aggregator's batching (`recorder::BATCH_EVERY`).
    pub requests: u64,
    /// 5xx answers and streams that broke after their status was sent.
    pub errors: u64,
    /// Cache lookups answered without a generation (hits and coalesced joins),
    /// and those that needed one (misses).
    pub hits: u64,
    pub misses: u64,
    /// Requests that paid a model load.
    pub cold_starts: u64,
    /// Latency (arrival to the end of the body) percentiles of the interval.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Mean latency of the interval (from the histogram, so at its precision).
    pub mean_ms: Option<f64>,
    /// Time to first body byte percentiles of the interval.
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
}

impl Point {
    /// Requests per second over an interval of `step` seconds (a `step` of 0 is
    /// treated as 1, so this never divides by zero).
    pub fn rps(&self, step: u64) -> f64 {
        self.requests as f64 / step.max(1) as f64
    }

    /// Share of requests that failed, if there were any.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// Share of cache lookups answered without a generation, if there were any.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// A series of points `step` seconds apart, oldest first, plus per-model totals.
///
/// Served as JSON by `GET /warmline/history`, drawn by `charts`, and built by
/// `warmline bench --report` from its own run: whoever builds one decides what
/// the model summaries cover (the gateway's cover its whole uptime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Seconds between points: 1 (per-second history) or 60 (per-minute).
    pub step_s: u64,
    /// Closed intervals, oldest first. Intervals without traffic are included
    /// (with zero counts and `None` percentiles), so gaps show as gaps.
    pub points: Vec<Point>,
    /// One summary per model, sorted by name. Absent in older documents.
    #[serde(default)]
    pub models: Vec<ModelSummary>,
}

/// One model's totals, for the per-model comparison chart.
///
/// `Metrics::history` fills these from the per-model distributions, which cover
/// every request since start-up, not only the history's window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The normalised model name (`llama3.2:latest`).
    pub model: String,
    /// Requests recorded in the model's latency distribution.
    pub requests: u64,
    /// Requests that paid a model load.
    pub cold_starts: u64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    /// Median time to first body byte, milliseconds.
    pub ttft_p50_ms: Option<f64>,
    /// Output tokens per second of generation, where answers reported it.
    pub tokens_per_s: Option<f64>,
}

/// Counts and distributions of the interval being filled. The aggregator adds
/// to the fields directly; [`Accumulator::take`] closes the interval.
#[derive(Debug)]
pub struct Accumulator {
    /// Requests that ended in the interval.
    pub requests: u64,
    /// Of those, failed ones (5xx, or a stream that broke).
    pub errors: u64,
    /// Answers from the cache (hits and coalesced followers).
    pub hits: u64,
    /// Cacheable requests that went upstream.
    pub misses: u64,
    /// Requests that paid a model load.
    pub cold_starts: u64,
    /// Latency to the end of the answer, microseconds.
    pub latency: Histogram<u64>,
    /// Time to the first byte of the answer, microseconds.
    pub ttft: Histogram<u64>,
}

impl Default for Accumulator {
    fn default() -> Accumulator {
        Accumulator::new()
    }
}

impl Accumulator {
    /// An empty interval (two histograms allocated once and reused).
    pub fn new() -> Accumulator {
        Accumulator {
            requests: 0,
            errors: 0,
            hits: 0,
            misses: 0,
            cold_starts: 0,
            latency: super::new_histogram(),
            ttft: super::new_histogram(),
        }
    }

    /// The summary of what was added since the last reset, stamped `t`; resets.
    pub fn take(&mut self, t: u64) -> Point {
        let point = self.peek(t);
        self.requests = 0;
        self.errors = 0;
        self.hits = 0;
        self.misses = 0;
        self.cold_starts = 0;
        self.latency.reset();
        self.ttft.reset();
        point
    }

    /// The summary so far of the interval still being filled, stamped `t`.
    pub fn peek(&self, t: u64) -> Point {
        let ms = |h: &Histogram<u64>, q: f64| {
            (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
        };
        Point {
            t,
            requests: self.requests,
            errors: self.errors,
            hits: self.hits,
            misses: self.misses,
            cold_starts: self.cold_starts,
            p50_ms: ms(&self.latency, 0.50),
            p95_ms: ms(&self.latency, 0.95),
            p99_ms: ms(&self.latency, 0.99),
            mean_ms: (!self.latency.is_empty()).then(|| self.latency.mean() / 1000.0),
            ttft_p50_ms: ms(&self.ttft, 0.50),
            ttft_p95_ms: ms(&self.ttft, 0.95),
        }
    }
}

/// A bounded ring of points, oldest first: pushing onto a full ring drops the
/// oldest point.
#[derive(Debug)]
pub(crate) struct Ring {
    points: VecDeque<Point>,
    /// The most points kept (allocated up front).
    capacity: usize,
}

impl Ring {
    /// An empty ring holding at most `capacity` points.
    pub(crate) fn new(capacity: usize) -> Ring {
        Ring {
            points: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `point` (the newest), dropping the oldest when full.
    pub(crate) fn push(&mut self, point: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// Copies of the points with `t >= since`, oldest first.
    pub(crate) fn since(&self, since: u64) -> Vec<Point> {
        self.points
            .iter()
            .filter(|p| p.t >= since)
            .cloned()
            .collect()
    }
}

/// Sums a window of points into one (percentiles: the worst of the window's,
/// weighted means for the mean): what alerts judge.
///
/// Counts are added; `mean_ms` is the mean of the points' means weighted by
/// their requests; `p95_ms` and `p99_ms` are the highest of the points'. The
/// result's `t`, `p50_ms` and TTFT percentiles are left at their defaults
/// (0 and `None`): they have no meaningful sum. An empty slice gives zeros.
pub fn total(points: &[Point]) -> Point {
    let mut sum = Point::default();
    let mut weighted = 0.0;
    for p in points {
        sum.requests += p.requests;
        sum.errors += p.errors;
        sum.hits += p.hits;
        sum.misses += p.misses;
        sum.cold_starts += p.cold_starts;
        if let Some(mean) = p.mean_ms {
            weighted += mean * p.requests as f64;
        }
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        sum.p95_ms = max(sum.p95_ms, p.p95_ms);
        sum.p99_ms = max(sum.p99_ms, p.p99_ms);
    }
    sum.mean_ms = (sum.requests > 0).then(|| weighted / sum.requests as f64);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_summarises_and_resets() {
        let mut acc = Accumulator::new();
        for ms in 1..=100 {
            acc.requests += 1;
            let _ = acc.latency.record(ms * 1000);
        }
        acc.errors = 5;
        acc.hits = 3;
        acc.misses = 1;
        let point = acc.take(1_700_000_000);
        assert_eq!(point.requests, 100);
        assert!((point.p50_ms.expect("p50") - 50.0).abs() < 0.1);
        assert_eq!(point.error_rate(), Some(0.05));
        assert_eq!(point.hit_rate(), Some(0.75));
        assert_eq!(point.ttft_p50_ms, None);
        let empty = acc.take(1_700_000_001);
        assert_eq!((empty.requests, empty.p50_ms), (0, None));
    }

    #[test]
    fn the_ring_is_bounded_and_totals_add_up() {
        let mut ring = Ring::new(3);
        for t in 0..5 {
            ring.push(Point {
                t,
                requests: 10,
                errors: t,
                mean_ms: Some(t as f64),
                ..Point::default()
            });
        }
        let kept = ring.since(0);
        assert_eq!(kept.iter().map(|p| p.t).collect::<Vec<_>>(), [2, 3, 4]);
        let sum = total(&kept);
        assert_eq!((sum.requests, sum.errors), (30, 9));
        assert_eq!(sum.mean_ms, Some(3.0));
    }
}
