//! The rolling history behind the charts: one [`Point`] per second for the last
//! hour and one per minute for the last day, each a summary (counts and
//! percentiles), never raw samples, so memory stays fixed: 3,600 + 1,440 points of
//! a few dozen bytes, about 400 KB in all.
//!
//! The same [`History`] shape is what `GET /warmline/history` serves, what
//! `warmline report` fetches and draws, and what `warmline bench --report` builds
//! from its own run.

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Points kept per resolution.
pub const SECONDS_KEPT: usize = 3600;
pub const MINUTES_KEPT: usize = 1440;

/// One interval's summary. Latencies in milliseconds; `None` when the interval
/// had no such sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the interval, seconds since the Unix epoch.
    pub t: u64,
    pub requests: u64,
    /// 5xx answers and streams that broke after their status was sent.
    pub errors: u64,
    /// Cache lookups answered without a generation (hits and coalesced joins),
    /// and those that needed one (misses).
    pub hits: u64,
    pub misses: u64,
    pub cold_starts: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
}

impl Point {
    /// Requests per second over an interval of `step` seconds.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub step_s: u64,
    pub points: Vec<Point>,
    #[serde(default)]
    pub models: Vec<ModelSummary>,
}

/// One model over the whole window, for the per-model comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub model: String,
    pub requests: u64,
    pub cold_starts: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub tokens_per_s: Option<f64>,
}

/// Counts and distributions of the interval being filled.
#[derive(Debug)]
pub(crate) struct Accumulator {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) cold_starts: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) ttft: Histogram<u64>,
}

impl Accumulator {
    pub(crate) fn new() -> Accumulator {
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
    pub(crate) fn take(&mut self, t: u64) -> Point {
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
    pub(crate) fn peek(&self, t: u64) -> Point {
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

/// A bounded ring of points.
#[derive(Debug)]
pub(crate) struct Ring {
    points: VecDeque<Point>,
    capacity: usize,
}

impl Ring {
    pub(crate) fn new(capacity: usize) -> Ring {
        Ring {
            points: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub(crate) fn push(&mut self, point: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// Points with `t >= since`, oldest first.
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
