//! Per-model counters: requests, cold starts (requests that paid a model load),
//! load time and when each model was last used.
//!
//! Model names come from clients, so they are only recorded for models a host
//! lists as installed (the caller checks): arbitrary names cannot grow this map
//! or create metric series. Each model's counters are atomics behind an `Arc`;
//! the map itself is read-locked on the request path and write-locked only the
//! first time a model is seen.
//!
//! These are plain counters since start-up; the per-model distributions
//! (latency, time to first token, tokens per second) live in the aggregator
//! (`recorder`), and `Metrics::stats` joins the two into one [`ModelStats`].
//! Entries are never removed: a model deleted from every host keeps its counters
//! until the gateway restarts (the set is still bounded by what was installed).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A cold load shorter than this is not counted: Ollama reports a few
/// milliseconds of `load_duration` even for a loaded model (scheduling).
/// The proxy applies it to the `load_duration` an answer reports before calling
/// [`ModelMetrics::cold_start`].
pub const COLD_LOAD_THRESHOLD: Duration = Duration::from_millis(50);

/// One model's counters; shared by `Arc` so the map's lock is not held while
/// they are updated.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    cold_starts: AtomicU64,
    /// Total load time paid by requests, microseconds.
    load_micros: AtomicU64,
    /// When a request last went upstream for it, ms since the Unix epoch.
    last_used_ms: AtomicU64,
}

/// Counters for every model seen. All methods take `&self`, never panic, and
/// recover from a poisoned lock (the counters are plain numbers, never half
/// written).
#[derive(Debug, Default)]
pub struct ModelMetrics {
    models: RwLock<HashMap<String, Arc<Counters>>>,
}

/// One model's counters, for `/warmline/stats` and `/warmline/models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    /// Requests for it sent upstream: each attempt, so a retry on another host
    /// counts twice; cache hits are not counted.
    pub requests: u64,
    /// Requests that paid a model load.
    pub cold_starts: u64,
    /// Total time spent loading it for requests, milliseconds.
    pub load_ms: u64,
    /// Milliseconds since the Unix epoch; 0 if never used.
    pub last_used_ms: u64,
    /// From the distributions (`Metrics::stats` fills them in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// Median time to first body byte, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50_ms: Option<f64>,
    /// Output tokens per second of generation, where answers reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
}

impl ModelMetrics {
    /// The counters of `model`, created on first use: a read lock in the common
    /// case, a write lock only the first time.
    fn counters(&self, model: &str) -> Arc<Counters> {
        if let Ok(models) = self.models.read()
            && let Some(counters) = models.get(model)
        {
            return Arc::clone(counters);
        }
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(models.entry(model.to_owned()).or_default())
    }

    /// A request for an installed `model` went upstream: counts it and stamps
    /// `last_used_ms`. The caller must check that `model` is installed (this is
    /// what bounds the map).
    pub fn request(&self, model: &str) {
        let counters = self.counters(model);
        counters.requests.fetch_add(1, Relaxed);
        counters
            .last_used_ms
            .store(crate::sys::clock::epoch_ms(), Relaxed);
    }

    /// A request for `model` paid a load of `took` (a cold start). Does not count
    /// a request: [`ModelMetrics::request`] did that when it was sent.
    pub fn cold_start(&self, model: &str, took: Duration) {
        let counters = self.counters(model);
        counters.cold_starts.fetch_add(1, Relaxed);
        counters
            .load_micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// One model's counters (zeros if never seen).
    pub fn get(&self, model: &str) -> ModelStats {
        self.models
            .read()
            .ok()
            .and_then(|m| m.get(model).map(|c| snapshot(c)))
            .unwrap_or_default()
    }

    /// Every model seen, by name.
    pub fn all(&self) -> BTreeMap<String, ModelStats> {
        self.models
            .read()
            .map(|m| m.iter().map(|(k, c)| (k.clone(), snapshot(c))).collect())
            .unwrap_or_default()
    }
}

/// The counters as [`ModelStats`], with the distribution fields left `None`.
fn snapshot(counters: &Counters) -> ModelStats {
    ModelStats {
        requests: counters.requests.load(Relaxed),
        cold_starts: counters.cold_starts.load(Relaxed),
        load_ms: counters.load_micros.load(Relaxed) / 1000,
        last_used_ms: counters.last_used_ms.load(Relaxed),
        ..ModelStats::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_model() {
        let metrics = ModelMetrics::default();
        metrics.request("a:latest");
        metrics.request("a:latest");
        metrics.cold_start("a:latest", Duration::from_millis(1500));
        let a = metrics.get("a:latest");
        assert_eq!((a.requests, a.cold_starts, a.load_ms), (2, 1, 1500));
        assert!(a.last_used_ms > 0);
        assert_eq!(metrics.get("b:latest"), ModelStats::default());
        assert_eq!(metrics.all().len(), 1);
    }
}
