//! Per-model counters: requests, cold starts (requests that paid a model load),
//! load time and when each model was last used.
//!
//! Model names come from clients, so they are only recorded for models a host
//! lists as installed (the caller checks): arbitrary names cannot grow this map
//! or create metric series. Each model's counters are atomics behind an `Arc`;
//! the map itself is read-locked on the request path and write-locked only the
//! first time a model is seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A cold load shorter than this is not counted: Ollama reports a few
/// milliseconds of `load_duration` even for a loaded model (scheduling).
pub const COLD_LOAD_THRESHOLD: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    cold_starts: AtomicU64,
    load_micros: AtomicU64,
    last_used_ms: AtomicU64,
}

/// Counters for every model seen.
#[derive(Debug, Default)]
pub struct ModelMetrics {
    models: RwLock<HashMap<String, Arc<Counters>>>,
}

/// One model's counters, for `/warmline/stats` and `/warmline/models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub requests: u64,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
}

impl ModelMetrics {
    fn counters(&self, model: &str) -> Arc<Counters> {
        if let Ok(models) = self.models.read()
            && let Some(counters) = models.get(model)
        {
            return Arc::clone(counters);
        }
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(models.entry(model.to_owned()).or_default())
    }

    /// A request for an installed `model` went upstream.
    pub fn request(&self, model: &str) {
        let counters = self.counters(model);
        counters.requests.fetch_add(1, Relaxed);
        counters.last_used_ms.store(now_ms(), Relaxed);
    }

    /// A request for `model` paid a load of `took`.
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

fn snapshot(counters: &Counters) -> ModelStats {
    ModelStats {
        requests: counters.requests.load(Relaxed),
        cold_starts: counters.cold_starts.load(Relaxed),
        load_ms: counters.load_micros.load(Relaxed) / 1000,
        last_used_ms: counters.last_used_ms.load(Relaxed),
        ..ModelStats::default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
