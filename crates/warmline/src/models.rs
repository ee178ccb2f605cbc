//! The models view: every model installed on any host, joined with where it is
//! loaded (until when, in how much memory), whether it is warm, and its counters.
//! `GET /warmline/models`, `warmline models` and the app's model list all show it.
//!
//! It is a join computed on demand, off the request path, from three sources
//! that each keep their own state: the hosts' inventories (`upstream::inventory`,
//! refreshed in the background), the warm set (`warmth`) and the per-model
//! counters (`metrics`). Nothing is cached here, so a view is as fresh as its
//! sources (the inventories lag a load or a pull by up to one refresh).
//!
//! Models are keyed by normalised name, so the same model installed on several
//! hosts is one entry with one [`ModelOnHost`] per host. Where hosts disagree on
//! a model's details (size, family, ...) the first host in configuration order
//! wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::ModelMetrics;
use crate::upstream::UpstreamSet;
use crate::warmth::Warmth as WarmSet;

/// One model, as the models view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    /// Normalised name (`llama3.2:latest`).
    pub name: String,
    /// In the warm set: the person asked Warmline to keep it loaded.
    pub warm: bool,
    /// Why it is kept loaded, or not: `choice` (in the warm set), `prediction`
    /// (automatic warmth expects it to be used soon) or `cold`.
    pub warmth: Warmth,
    /// For `prediction`, why (`"used 5 minutes ago"`, `"used weekdays 09:00–10:00"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmth_reason: Option<String>,
    /// A warm load is under way.
    pub loading: bool,
    /// Loaded on at least one host.
    pub loaded: bool,
    /// Bytes on disk (0 when no host lists it).
    pub size: u64,
    /// From the host's `details` (`llama`, `qwen3`, ...).
    pub family: Option<String>,
    /// From the host's `details` (`3.2B`).
    pub parameter_size: Option<String>,
    /// From the host's `details` (`Q4_K_M`).
    pub quantization_level: Option<String>,
    /// `completion`, `embedding`, `tools`, ... (empty when the host does not say).
    pub capabilities: Vec<String>,
    /// Bytes in memory over the hosts where it is loaded, and of those on GPUs.
    pub memory: u64,
    pub memory_vram: u64,
    /// The latest expiry over the hosts where it is loaded (RFC 3339; compared as
    /// text, which orders timestamps of one offset and format correctly). `None` when
    /// not loaded, or known loaded only because an answer proved it.
    pub expires_at: Option<String>,
    /// Requests for it sent upstream through Warmline since start-up.
    pub requests: u64,
    /// Those that paid a model load.
    pub cold_starts: u64,
    /// Milliseconds since the Unix epoch; 0 if never used through Warmline.
    pub last_used_ms: u64,
    /// Why the last warm load failed, if it did.
    pub error: Option<String>,
    /// Every host that lists it as installed, in configuration order (empty for
    /// a warm model no host has).
    pub hosts: Vec<ModelOnHost>,
}

/// Why a model is kept loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Warmth {
    /// The person marked it warm.
    Choice,
    /// Automatic warmth expects it to be used soon.
    Prediction,
    /// Not kept: its host's own keep-alive decides.
    #[default]
    Cold,
}

/// A model on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOnHost {
    /// The host's URL as shown to people (any password masked).
    pub url: String,
    /// Loaded on this host, as last seen (`/api/ps`, or a successful answer).
    pub loaded: bool,
    /// When this host will unload it (RFC 3339), if loaded and known.
    pub expires_at: Option<String>,
    /// Bytes in memory on this host, and of those on its GPUs (0 if not loaded).
    pub memory: u64,
    pub memory_vram: u64,
    /// The context length it was loaded with, if loaded and reported.
    pub context_length: Option<u64>,
}

/// The view over `hosts`, by name. A model warm but not installed anywhere (yet)
/// is listed too, so a warm set entry never silently disappears.
///
/// Sorted by name. Cheap enough to call per request of the view (it copies the
/// inventories' snapshots), and never fails: a host not refreshed yet simply
/// contributes no models.
pub fn view(hosts: &UpstreamSet, warmth: &WarmSet, metrics: &ModelMetrics) -> Vec<ModelView> {
    let mut models: BTreeMap<String, ModelView> = BTreeMap::new();
    for host in hosts.hosts() {
        let inventory = host.models.snapshot();
        for (name, installed) in &inventory.installed {
            let entry = models.entry(name.clone()).or_insert_with(|| ModelView {
                size: installed.size,
                family: installed.family.clone(),
                parameter_size: installed.parameter_size.clone(),
                quantization_level: installed.quantization_level.clone(),
                capabilities: installed.capabilities.clone(),
                ..unlisted(name)
            });
            let loaded = inventory.loaded.get(name);
            entry.hosts.push(ModelOnHost {
                url: host.name().to_owned(),
                loaded: loaded.is_some(),
                expires_at: loaded.and_then(|l| l.expires_at.clone()),
                memory: loaded.map_or(0, |l| l.size),
                memory_vram: loaded.map_or(0, |l| l.size_vram),
                context_length: loaded.and_then(|l| l.context_length),
            });
        }
    }
    for name in warmth.models().iter() {
        models.entry(name.clone()).or_insert_with(|| unlisted(name));
    }
    models
        .into_values()
        .map(|mut model| {
            let counters = metrics.get(&model.name);
            model.warm = warmth.is_warm(&model.name);
            (model.warmth, model.warmth_reason) = if model.warm {
                (Warmth::Choice, None)
            } else if warmth.is_predicted(&model.name) {
                (Warmth::Prediction, warmth.prediction_reason(&model.name))
            } else {
                (Warmth::Cold, None)
            };
            model.loading = warmth.is_loading(&model.name);
            model.error = warmth.error(&model.name);
            model.loaded = model.hosts.iter().any(|h| h.loaded);
            model.memory = model.hosts.iter().map(|h| h.memory).sum();
            model.memory_vram = model.hosts.iter().map(|h| h.memory_vram).sum();
            model.expires_at = model
                .hosts
                .iter()
                .filter_map(|h| h.expires_at.clone())
                .max();
            model.requests = counters.requests;
            model.cold_starts = counters.cold_starts;
            model.last_used_ms = counters.last_used_ms;
            model
        })
        .collect()
}

/// A model with nothing known but its name: every flag false, every figure zero.
/// The starting point of [`view`]'s entries, and the answer for a model no host
/// lists (for example right after it was warmed, before the next refresh).
pub(crate) fn unlisted(name: &str) -> ModelView {
    ModelView {
        name: name.to_owned(),
        warm: false,
        warmth: Warmth::Cold,
        warmth_reason: None,
        loading: false,
        loaded: false,
        size: 0,
        family: None,
        parameter_size: None,
        quantization_level: None,
        capabilities: Vec::new(),
        memory: 0,
        memory_vram: 0,
        expires_at: None,
        requests: 0,
        cold_starts: 0,
        last_used_ms: 0,
        error: None,
        hosts: Vec::new(),
    }
}
