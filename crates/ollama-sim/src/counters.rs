//! What the simulator has seen: request, generation and scheduler counters.
//!
//! Everything on the request path is an atomic; the only lock is the
//! per-model gauge map, taken when a model is *loaded* (not per request)
//! because each runner keeps its own `Arc<ModelGauge>`.
//! [`GenerationGuard`] and [`InFlightGuard`] are RAII guards, so a client
//! that disconnects mid-generation is counted as `cancelled` simply because
//! the handler future or the response body was dropped before completion.
//!
//! [`Counters`] is the serialisable snapshot served by `GET /_sim/counters`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// Route labels counted by `requests` (the matched path template).
pub(crate) const ROUTES: &[&str] = &[
    "/",
    "/api/version",
    "/api/status",
    "/api/tags",
    "/api/ps",
    "/api/show",
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/api/pull",
    "/api/push",
    "/api/create",
    "/api/copy",
    "/api/delete",
    "/api/blobs/{digest}",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/models/{model}",
    "/_sim/counters",
    "/_sim/reset",
    "/_sim/knobs",
];

/// Label for requests that matched no route.
const UNMATCHED: usize = ROUTES.len();

/// A point-in-time copy of every counter (`GET /_sim/counters`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Requests per route template (`/api/chat`, `unmatched`, …), any outcome.
    pub requests: BTreeMap<String, u64>,
    /// Generation requests (generate, chat, `/v1` chat and completions).
    pub generations: GenerationCounters,
    /// Embedding requests that produced vectors.
    pub embeddings: u64,
    /// Model loads completed (including reloads).
    pub loads: u64,
    /// Model unloads (expiry, explicit unload, eviction, reload).
    pub unloads: u64,
    /// Unloads forced to make room under `OLLAMA_MAX_LOADED_MODELS`.
    pub evictions: u64,
    /// Unloads forced by a request with different runner options (`num_ctx`).
    pub reloads: u64,
    /// Requests refused with 503 because the pending queue was full.
    pub rejected_busy: u64,
    /// Per-model concurrency, keyed by model name.
    pub models: BTreeMap<String, ModelCounters>,
    /// The `OLLAMA_*` environment the process saw at start.
    pub env: BTreeMap<String, String>,
    /// The process's command line (`ollama-sim serve`, or as a supervisor ran it).
    #[serde(default)]
    pub argv: Vec<String>,
}

/// Outcomes of generation requests. `started` = `completed` + `cancelled` +
/// `failed` + those still running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationCounters {
    pub started: u64,
    pub completed: u64,
    /// The client went away (while waiting for a load or slot, or mid-stream).
    pub cancelled: u64,
    /// Answered with an error after starting (busy, injected fault, load failure).
    pub failed: u64,
    /// Streams deliberately cut by `abort_rate`.
    pub aborted: u64,
}

/// Concurrency of one model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelCounters {
    /// Requests holding a parallel slot right now.
    pub in_flight: u64,
    /// Highest `in_flight` seen since start or the last reset.
    pub max_in_flight: u64,
    /// Loads of this model.
    pub loads: u64,
}

/// Live concurrency gauge of one model.
#[derive(Debug, Default)]
pub(crate) struct ModelGauge {
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    loads: AtomicU64,
}

impl ModelGauge {
    pub(crate) fn loaded(&self) {
        self.loads.fetch_add(1, Relaxed);
    }

    /// Marks a request as holding a slot until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        InFlightGuard(self.clone())
    }
}

/// Decrements the model's in-flight gauge on drop.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<ModelGauge>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// The live counters.
#[derive(Debug)]
pub(crate) struct CounterSet {
    requests: Box<[AtomicU64]>,
    pub(crate) started: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    aborted: AtomicU64,
    pub(crate) embeddings: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) unloads: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) rejected_busy: AtomicU64,
    models: RwLock<BTreeMap<String, Arc<ModelGauge>>>,
    env: BTreeMap<String, String>,
    argv: Vec<String>,
}

impl CounterSet {
    pub(crate) fn new(env: BTreeMap<String, String>, argv: Vec<String>) -> Self {
        Self {
            requests: (0..=ROUTES.len()).map(|_| AtomicU64::new(0)).collect(),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            embeddings: AtomicU64::new(0),
            loads: AtomicU64::new(0),
            unloads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            rejected_busy: AtomicU64::new(0),
            models: RwLock::new(BTreeMap::new()),
            env,
            argv,
        }
    }

    /// Counts one request for the matched route template (`None` = no match).
    pub(crate) fn request(&self, matched: Option<&str>) {
        let idx = matched
            .and_then(|p| ROUTES.iter().position(|r| *r == p))
            .unwrap_or(UNMATCHED);
        if let Some(c) = self.requests.get(idx) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The gauge of `model`, created on first use.
    pub(crate) fn model(&self, model: &str) -> Arc<ModelGauge> {
        if let Ok(map) = self.models.read()
            && let Some(g) = map.get(model)
        {
            return g.clone();
        }
        let mut map = self.models.write().unwrap_or_else(|p| p.into_inner());
        map.entry(model.to_owned()).or_default().clone()
    }

    /// Starts counting one generation.
    pub(crate) fn generation(self: &Arc<Self>) -> GenerationGuard {
        self.started.fetch_add(1, Relaxed);
        GenerationGuard {
            counters: self.clone(),
            settled: false,
        }
    }

    pub(crate) fn snapshot(&self) -> Counters {
        let mut requests = BTreeMap::new();
        for (i, c) in self.requests.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let label = ROUTES.get(i).copied().unwrap_or("unmatched");
                requests.insert(label.to_owned(), n);
            }
        }
        let models = self
            .models
            .read()
            .map(|m| {
                m.iter()
                    .map(|(k, g)| {
                        (
                            k.clone(),
                            ModelCounters {
                                in_flight: g.in_flight.load(Relaxed),
                                max_in_flight: g.max_in_flight.load(Relaxed),
                                loads: g.loads.load(Relaxed),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Counters {
            requests,
            generations: GenerationCounters {
                started: self.started.load(Relaxed),
                completed: self.completed.load(Relaxed),
                cancelled: self.cancelled.load(Relaxed),
                failed: self.failed.load(Relaxed),
                aborted: self.aborted.load(Relaxed),
            },
            embeddings: self.embeddings.load(Relaxed),
            loads: self.loads.load(Relaxed),
            unloads: self.unloads.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            rejected_busy: self.rejected_busy.load(Relaxed),
            models,
            env: self.env.clone(),
            argv: self.argv.clone(),
        }
    }

    /// Zeroes every counter; live in-flight gauges keep their value and
    /// their maximum restarts from it.
    pub(crate) fn reset(&self) {
        for c in self.requests.iter() {
            c.store(0, Relaxed);
        }
        for c in [
            &self.started,
            &self.completed,
            &self.cancelled,
            &self.failed,
            &self.aborted,
            &self.embeddings,
            &self.loads,
            &self.unloads,
            &self.evictions,
            &self.reloads,
            &self.rejected_busy,
        ] {
            c.store(0, Relaxed);
        }
        if let Ok(map) = self.models.read() {
            for g in map.values() {
                g.max_in_flight.store(g.in_flight.load(Relaxed), Relaxed);
                g.loads.store(0, Relaxed);
            }
        }
    }
}

/// How a generation ended, if not by being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed,
    Failed,
    Aborted,
}

/// Counts a generation as cancelled unless it is settled before being dropped.
#[derive(Debug)]
pub(crate) struct GenerationGuard {
    counters: Arc<CounterSet>,
    settled: bool,
}

impl GenerationGuard {
    pub(crate) fn settle(mut self, outcome: Outcome) {
        self.settle_in_place(outcome);
    }

    /// Like [`settle`](Self::settle) for guards owned by a stream state.
    pub(crate) fn settle_in_place(&mut self, outcome: Outcome) {
        if self.settled {
            return;
        }
        self.settled = true;
        let c = match outcome {
            Outcome::Completed => &self.counters.completed,
            Outcome::Failed => &self.counters.failed,
            Outcome::Aborted => &self.counters.aborted,
        };
        c.fetch_add(1, Relaxed);
    }
}

impl Drop for GenerationGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.counters.cancelled.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_outcomes() {
        let c = Arc::new(CounterSet::new(BTreeMap::new(), Vec::new()));
        c.generation().settle(Outcome::Completed);
        drop(c.generation());
        c.generation().settle(Outcome::Failed);
        let s = c.snapshot();
        assert_eq!(s.generations.started, 3);
        assert_eq!(s.generations.completed, 1);
        assert_eq!(s.generations.cancelled, 1);
        assert_eq!(s.generations.failed, 1);
    }

    #[test]
    fn gauges_track_max_and_reset_keeps_live_value() {
        let c = CounterSet::new(BTreeMap::new(), Vec::new());
        let g = c.model("m");
        let a = g.enter();
        let b = g.enter();
        drop(a);
        let s = c.snapshot();
        assert_eq!(s.models["m"].in_flight, 1);
        assert_eq!(s.models["m"].max_in_flight, 2);
        c.reset();
        assert_eq!(c.snapshot().models["m"].max_in_flight, 1);
        drop(b);
        assert_eq!(c.snapshot().models["m"].in_flight, 0);
    }

    #[test]
    fn requests_are_labelled_by_route() {
        let c = CounterSet::new(BTreeMap::new(), Vec::new());
        c.request(Some("/api/chat"));
        c.request(Some("/api/chat"));
        c.request(None);
        let s = c.snapshot();
        assert_eq!(s.requests["/api/chat"], 2);
        assert_eq!(s.requests["unmatched"], 1);
    }
}
