//! Automatic warmth: learning how models are used and keeping loaded, within the
//! memory budget, the ones a person is likely to use next (`warmth.auto`, on by
//! default), so no request pays a cold start for a model that person uses.
//!
//! Runs in the warmth task, once per round, never on the request path:
//!
//! 1. **Observe**: the per-model counters (`metrics::ModelMetrics`, which the
//!    pipeline keeps anyway) are polled; a model whose request count moved was
//!    used now, and its cold starts say how long its loads take. The hosts'
//!    inventories say how much memory each loaded model takes.
//! 2. **Expect**: each installed model's [`ModelUsage::outlook`] (coming back
//!    from an idle gap, or the week's rhythm): over [`KEEP_HORIZON`] for a model
//!    loaded now (is it still in use today?), over [`HORIZON`] for one not loaded
//!    (is it worth loading ahead now?).
//! 3. **Plan**: [`plan::plan`] within the budget ([`budget`]), the chosen
//!    models first, at most as many models as the host keeps loaded at once.
//! 4. **Act**: the predicted set replaces the last one (it is read by pinning on
//!    the request path, one `ArcSwap` load); the warm rounds load what it adds,
//!    and what it drops is unloaded.
//!
//! What is learned is saved with the warm set in the state file, at most once a
//! minute (and whenever the predicted set changes), and can be cleared.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::budget::{self, Memory};
use super::plan::{self, Candidate};
use super::usage::{LearningClock, ModelUsage};
use crate::config::WarmthConfig;
use crate::metrics::ModelMetrics;
use crate::upstream::UpstreamSet;

/// How far ahead a use must be expected to load a model ahead of it (learning
/// time): far enough to load before it, near enough not to load for nothing.
pub const HORIZON: u64 = 30 * 60;
/// How far ahead a use must be expected to keep a loaded model: a model in use
/// today stays through a lunch break, and goes when the evening comes.
pub const KEEP_HORIZON: u64 = 2 * 3600;
/// How often what was learned is saved at most (wall time).
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Models an Ollama host keeps loaded at once by default (`OLLAMA_MAX_LOADED_MODELS`
/// is 3 per GPU, or 3 on a CPU-only machine).
pub const DEFAULT_MAX_MODELS: usize = 3;
/// Models learned about, at most (the least recently used are forgotten first).
const MAX_LEARNED: usize = 256;
/// A warm load shorter than this found the model resident already.
const COUNTED_LOAD: std::time::Duration = std::time::Duration::from_millis(100);

/// The learner's state and its last plan.
#[derive(Debug)]
pub(crate) struct Auto {
    clock: LearningClock,
    learned: Mutex<Learned>,
    /// The models kept by prediction now, in plan order.
    pub(super) kept: ArcSwap<Vec<String>>,
    /// The last plan, as `/warmline/warmth` and the models view show it.
    status: ArcSwap<AutoStatus>,
    /// The machine's memory as last read, and when (read at most every
    /// [`MEMORY_EVERY`]: sysinfo's reading costs more than the rest of a round).
    memory: Mutex<Option<(std::time::Instant, Memory)>>,
}

/// How often the machine's memory is read again (wall time).
const MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Default)]
struct Learned {
    usage: BTreeMap<String, ModelUsage>,
    /// Each model's counters at the last poll: requests, cold starts, load ms.
    polled: HashMap<String, (u64, u64, u64)>,
    changed: bool,
    saved_at: Option<std::time::Instant>,
    /// Models loaded by prediction that no request has used since.
    unused: std::collections::HashSet<String>,
    loads: u64,
    wasted_loads: u64,
}

/// The state of automatic warmth, as `GET /warmline/warmth` serves it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoStatus {
    /// Whether models are kept by prediction (`warmth.auto`).
    pub auto: bool,
    /// The memory warm models may take, bytes.
    pub budget: u64,
    /// What the chosen and predicted models take, bytes.
    pub used: u64,
    /// The models marked warm alone need more than the budget.
    pub chosen_over_budget: bool,
    /// Why each predicted model is kept (`"used 5 minutes ago"`).
    pub reasons: BTreeMap<String, String>,
    /// What the person should know, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Loads made because a use was predicted, since start-up.
    pub loads: u64,
    /// Of those, loads no request used before the model was let go: the cost of
    /// predicting wrong.
    pub wasted_loads: u64,
}

impl Auto {
    pub(crate) fn new(usage: BTreeMap<String, ModelUsage>) -> Auto {
        let usage = usage.into_iter().filter(|(_, u)| u.is_sound()).collect();
        Auto {
            clock: LearningClock::from_env(),
            learned: Mutex::new(Learned {
                usage,
                ..Learned::default()
            }),
            kept: ArcSwap::from_pointee(Vec::new()),
            status: ArcSwap::from_pointee(AutoStatus::default()),
            memory: Mutex::new(None),
        }
    }

    /// What was learned, for the state file.
    pub(crate) fn usage(&self) -> BTreeMap<String, ModelUsage> {
        self.learned
            .lock()
            .map(|l| l.usage.clone())
            .unwrap_or_default()
    }

    /// The machine's memory, read again when the last reading is old.
    fn memory(&self) -> Memory {
        let Ok(mut last) = self.memory.lock() else {
            return Memory::read();
        };
        match *last {
            Some((at, memory)) if at.elapsed() < MEMORY_EVERY => memory,
            _ => {
                let memory = Memory::read();
                *last = Some((std::time::Instant::now(), memory));
                memory
            }
        }
    }

    pub(crate) fn status(&self) -> Arc<AutoStatus> {
        self.status.load_full()
    }

    /// Forgets everything learned; the predicted models are let go on the next
    /// round. Returns what was kept by prediction.
    pub(crate) fn forget(&self) -> Vec<String> {
        if let Ok(mut learned) = self.learned.lock() {
            learned.usage.clear();
            learned.changed = true;
        }
        let kept = self.kept.swap(Arc::new(Vec::new()));
        Vec::clone(&kept)
    }

    /// A warm load Warmline made took `took`: a load time learned; a load made
    /// for a prediction waits for a request to prove it useful.
    pub(crate) fn loaded(&self, model: &str, took: std::time::Duration, predicted: bool) {
        let Ok(mut learned) = self.learned.lock() else {
            return;
        };
        if let Some(usage) = learned.usage.get_mut(model) {
            usage.loaded(took);
        }
        // A load of a model still resident only moves its expiry: not a load that
        // can be wasted (Ollama answers those at once).
        if predicted && took >= COUNTED_LOAD {
            learned.loads += 1;
            if !learned.unused.insert(model.to_owned()) {
                learned.wasted_loads += 1;
            }
        }
    }

    /// One round: observe, expect, plan (see the module docs). Returns the
    /// models no longer kept by prediction, to unload, and whether what was
    /// learned should be saved now.
    pub(crate) fn round(
        &self,
        config: &WarmthConfig,
        chosen: &[String],
        cooled: &[String],
        metrics: &ModelMetrics,
        hosts: &UpstreamSet,
        max_models: usize,
    ) -> (Vec<String>, bool) {
        let now = self.clock.now();
        let offset = self.clock.utc_offset(now);
        let Ok(mut learned) = self.learned.lock() else {
            return (Vec::new(), false);
        };
        learned.observe(metrics, now, offset);

        // Every installed model, with where it is loaded and what it takes.
        let mut installed: BTreeMap<String, (bool, u64)> = BTreeMap::new();
        for host in hosts.hosts() {
            let models = host.models.snapshot();
            for (name, model) in &models.installed {
                let loaded = models.loaded.get(name);
                let entry = installed.entry(name.clone()).or_insert((false, 0));
                entry.0 |= loaded.is_some();
                let estimate = loaded.map_or(model.size.saturating_mul(5) / 4, |l| l.size);
                entry.1 = entry.1.max(estimate);
                if let Some(l) = loaded.filter(|l| l.size > 0)
                    && let Some(usage) = learned.usage.get_mut(name)
                {
                    usage.memory = l.size;
                }
            }
        }
        // A model used a moment ago counts as loaded (it was, for that request),
        // even if its host has let it go already or the inventory has not caught up.
        let just_used = ((3.0 * self.clock.scale()) as u64).max(120);
        let mut reasons = BTreeMap::new();
        let candidates: Vec<Candidate> = installed
            .iter()
            .map(|(name, (loaded, estimate))| {
                let usage = learned.usage.get(name);
                let loaded =
                    *loaded || usage.is_some_and(|u| now.saturating_sub(u.last_use) <= just_used);
                let horizon = if loaded { KEEP_HORIZON } else { HORIZON };
                let outlook = usage
                    .map(|u| u.outlook(now, horizon, offset))
                    .unwrap_or_default();
                if let Some(reason) = outlook.reason.describe() {
                    reasons.insert(name.clone(), reason);
                }
                Candidate {
                    name: name.clone(),
                    chosen: chosen.contains(name),
                    cooled: cooled.contains(name),
                    loaded,
                    memory: usage.map_or(0, |u| u.memory).max(*estimate),
                    p: outlook.p,
                    load_secs: usage
                        .and_then(|u| u.load_secs)
                        .unwrap_or(plan::DEFAULT_LOAD_SECS),
                }
            })
            .collect();
        let kept = self.kept.load_full();
        let held: u64 = candidates
            .iter()
            .filter(|c| c.loaded && (c.chosen || kept.contains(&c.name)))
            .map(|c| c.memory)
            .sum();
        let budget = budget::bytes(config.budget, self.memory(), held);
        // With `auto` off, the plan still weighs the chosen models against the budget.
        let eligible: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| config.auto || c.chosen)
            .collect();
        let plan = plan::plan(&eligible, budget, max_models.max(1));
        reasons.retain(|name, _| plan.predicted.contains(name));
        let released: Vec<String> = kept
            .iter()
            .filter(|m| !plan.predicted.contains(m) && !chosen.contains(m))
            .cloned()
            .collect();
        for model in &released {
            if learned.unused.remove(model) {
                learned.wasted_loads += 1;
            }
        }
        // The order follows the values, which move every round: only a different
        // set of models is a change.
        let changed =
            kept.len() != plan.predicted.len() || kept.iter().any(|m| !plan.predicted.contains(m));
        if changed {
            tracing::info!(predicted = ?plan.predicted, released = ?released, budget, "warm by prediction");
            self.kept.store(Arc::new(plan.predicted.clone()));
        }
        self.status.store(Arc::new(AutoStatus {
            auto: config.auto,
            budget,
            used: plan.used,
            chosen_over_budget: plan.chosen_over_budget,
            reasons,
            loads: learned.loads,
            wasted_loads: learned.wasted_loads,
            message: plan.chosen_over_budget.then(|| {
                format!(
                    "the models marked warm take {} but the budget is {}: Ollama would unload \
                     and reload them in turn; mark fewer warm, or raise warmth.budget",
                    gb(plan.used),
                    gb(budget)
                )
            }),
        }));
        let save = learned.changed
            && (changed || learned.saved_at.is_none_or(|at| at.elapsed() >= SAVE_EVERY));
        if save {
            learned.changed = false;
            learned.saved_at = Some(std::time::Instant::now());
        }
        (released, save)
    }
}

impl Learned {
    /// Folds the counters' movement since the last poll into what is learned.
    fn observe(&mut self, metrics: &ModelMetrics, now: u64, offset: i32) {
        for (name, stats) in metrics.all() {
            let now_counts = (stats.requests, stats.cold_starts, stats.load_ms);
            let before = self
                .polled
                .insert(name.clone(), now_counts)
                .unwrap_or_default();
            let requests = now_counts.0.saturating_sub(before.0);
            if requests == 0 {
                continue;
            }
            // A request proves a load made for it useful.
            self.unused.remove(&name);
            let usage = self
                .usage
                .entry(name)
                .or_insert_with(|| ModelUsage::new(now));
            usage.used(now, requests, offset);
            let colds = now_counts.1.saturating_sub(before.1);
            let load_ms = now_counts.2.saturating_sub(before.2);
            if colds > 0 && load_ms > 0 {
                usage.loaded(std::time::Duration::from_millis(load_ms / colds));
            }
            self.changed = true;
        }
        if self.usage.len() > MAX_LEARNED {
            let mut by_use: Vec<(u64, String)> = self
                .usage
                .iter()
                .map(|(n, u)| (u.last_use, n.clone()))
                .collect();
            by_use.sort();
            for (_, name) in by_use.into_iter().take(self.usage.len() - MAX_LEARNED) {
                self.usage.remove(&name);
            }
        }
    }
}

/// `12.3 GB` (decimal, as Ollama prints sizes).
fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}
