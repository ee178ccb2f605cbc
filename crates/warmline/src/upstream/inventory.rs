//! What each Ollama host has installed (`/api/tags`) and loaded (`/api/ps`), kept
//! fresh by one background task that refreshes every host at once.
//!
//! Three readers share this one view: routing (a model's requests go to hosts that
//! have it, loaded ones first), the cache (a model's digest is part of every key,
//! so a re-pulled model never answers from old entries) and warmth (which models
//! are loaded, until when, in how much memory). The request path only ever loads
//! the current snapshot (an `ArcSwap`); the refresh replaces it whole.
//!
//! Between refreshes the view can only be told one thing: a successful generation
//! proves its model is loaded on the host that answered ([`Inventory::note_loaded`]),
//! so routing prefers that host from the next request on rather than two seconds
//! later.
//!
//! The refresh itself (`upstream::refresh_models`, driven by the gateway) reads
//! each host's lists every `timeouts.health_interval` (but no more often than
//! every 2 s), and at once after a pull, create, copy or delete or a warm load.
//! A host that does not answer keeps its last lists: stale is better than empty,
//! which would make routing think no host has any model.
//!
//! Invariants: every key is a normalised model name (`cache::key`), so lookups
//! by a client's spelling (`llama3.2` vs `llama3.2:latest`) agree once the caller
//! normalises; a snapshot is never modified in place, so a reader holding one
//! sees a consistent pair of lists.

use std::collections::HashMap;

/// The hasher of the model maps: they are read several times per request (is the
/// model installed, loaded, where), and SipHash's DoS resistance buys nothing
/// for names that come from the hosts' own lists.
type Fast = foldhash::fast::RandomState;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// An installed model, from `/api/tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    /// The name as the host lists it (`llama3.2:latest`).
    pub name: String,
    /// The model's digest as the host lists it; part of every cache key, so a model
    /// pulled again under the same name gets fresh cache entries. Empty if absent.
    pub digest: String,
    /// Bytes on disk.
    pub size: u64,
    /// `details.family` (`llama`, `bert`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// `details.parameter_size` (`3.2B`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_size: Option<String>,
    /// `details.quantization_level` (`Q4_K_M`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization_level: Option<String>,
    /// `completion`, `embedding`, `tools`, ... (empty when the host does not say).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl Installed {
    /// Whether this is an embedding model (loaded with an embed request, not a
    /// generate request). Judged by the `embedding` capability, or by a family
    /// containing `bert` or `nomic` (for hosts that do not list capabilities).
    pub fn is_embedding(&self) -> bool {
        self.capabilities.iter().any(|c| c == "embedding")
            || self
                .family
                .as_deref()
                .is_some_and(|f| f.contains("bert") || f.contains("nomic"))
    }
}

/// A loaded model, from `/api/ps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loaded {
    /// RFC 3339, as Ollama reports it; `None` when only a response proved it loaded.
    pub expires_at: Option<String>,
    /// Bytes in memory, and of those on the GPU.
    pub size: u64,
    pub size_vram: u64,
    /// The context length it was loaded with, where the host reports it.
    pub context_length: Option<u64>,
}

/// One host's models. Keys are normalised names (`llama3.2:latest`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HostModels {
    /// Whether a refresh has succeeded yet (before that, nothing is known).
    pub known: bool,
    /// Installed models, by normalised name.
    pub installed: HashMap<String, Installed, Fast>,
    /// Loaded models, by normalised name: from `/api/ps`, plus any a successful
    /// answer proved loaded since (until the next refresh replaces the map).
    pub loaded: HashMap<String, Loaded, Fast>,
}

/// The latest [`HostModels`] of one host: an `ArcSwap`, so readers on the
/// request path take no lock and writers replace the whole snapshot.
#[derive(Debug, Default)]
pub struct Inventory {
    current: ArcSwap<HostModels>,
}

impl Inventory {
    /// The current lists, shared: cheap (one reference count), and unaffected by
    /// later refreshes.
    pub fn snapshot(&self) -> Arc<HostModels> {
        self.current.load_full()
    }

    /// Whether `model` (a normalised name) is installed; `None` until the first
    /// refresh, so callers can tell "not installed" from "not known yet".
    pub fn has_model(&self, model: &str) -> Option<bool> {
        let models = self.current.load();
        models.known.then(|| models.installed.contains_key(model))
    }

    /// Whether `model` (a normalised name) is loaded, as last seen. False before
    /// the first refresh.
    pub fn has_loaded(&self, model: &str) -> bool {
        self.current.load().loaded.contains_key(model)
    }

    /// A successful answer for `model` came from this host: it is loaded now. Cheap
    /// when it already was (one load, no write). Otherwise adds an entry with no
    /// expiry or sizes (the next refresh fills them in), with a compare-and-swap
    /// loop so a concurrent refresh is not lost.
    pub fn note_loaded(&self, model: &str) {
        if self.has_loaded(model) {
            return;
        }
        self.current.rcu(|current| {
            let mut next = HostModels::clone(current);
            next.loaded.entry(model.to_owned()).or_insert(Loaded {
                expires_at: None,
                size: 0,
                size_vram: 0,
                context_length: None,
            });
            next
        });
    }

    /// Replaces the view (a refresh). Anything `note_loaded` added since the last
    /// refresh is dropped unless the new lists have it too.
    pub fn store(&self, models: HostModels) {
        self.current.store(Arc::new(models));
    }
}

/// Reads a host's `/api/tags` and `/api/ps`; `None` if either fails.
///
/// Each request has a 5 s timeout and must answer 2xx with JSON holding a
/// `models` array. Entries without a usable name (`model`, else `name`, that
/// normalises) are skipped; missing numbers read as 0 and missing details as
/// `None`. The result has `known` set.
pub async fn fetch(client: &reqwest::Client, base: &str) -> Option<HostModels> {
    let tags = get_json(client, &format!("{base}/api/tags"), None).await?;
    let ps = get_json(client, &format!("{base}/api/ps"), None).await?;
    let mut models = HostModels {
        known: true,
        ..HostModels::default()
    };
    for entry in tags.get("models")?.as_array()? {
        let Some((key, name)) = name_of(entry) else {
            continue;
        };
        let details = entry.get("details");
        let detail = |field: &str| {
            details
                .and_then(|d| d.get(field))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        models.installed.insert(
            key,
            Installed {
                name,
                digest: str_field(entry, "digest").unwrap_or_default(),
                size: entry.get("size").and_then(|v| v.as_u64()).unwrap_or(0),
                family: detail("family"),
                parameter_size: detail("parameter_size"),
                quantization_level: detail("quantization_level"),
                capabilities: entry
                    .get("capabilities")
                    .and_then(|c| c.as_array())
                    .map(|c| {
                        c.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        );
    }
    for entry in ps.get("models")?.as_array()? {
        let Some((key, _)) = name_of(entry) else {
            continue;
        };
        let number = |field: &str| entry.get(field).and_then(|v| v.as_u64());
        models.loaded.insert(
            key,
            Loaded {
                expires_at: str_field(entry, "expires_at"),
                size: number("size").unwrap_or(0),
                size_vram: number("size_vram").unwrap_or(0),
                context_length: number("context_length"),
            },
        );
    }
    Some(models)
}

/// Reads an OpenAI-compatible engine's `/v1/models` (with its API key, if it
/// has one); `None` if that fails.
///
/// Such an engine lists model ids and nothing else Ollama's lists carry: no
/// digest, size or load state. Each listed model is installed, and loaded for
/// as long as the engine answers (these engines serve what they hold, or load
/// on demand without saying so). Its digest, part of every cache key, is made
/// from the entry as listed (`openai:` and a hash of its id, `created` and
/// `owned_by`): an engine restarted with another model under the same id lists
/// a new `created`, so old answers are not replayed for it.
pub async fn fetch_openai(
    client: &reqwest::Client,
    base: &str,
    auth: Option<&http::HeaderValue>,
) -> Option<HostModels> {
    let list = get_json(client, &format!("{base}/v1/models"), auth).await?;
    let mut models = HostModels {
        known: true,
        ..HostModels::default()
    };
    for entry in list.get("data")?.as_array()? {
        let Some(id) = str_field(entry, "id") else {
            continue;
        };
        let Ok(key) = crate::cache::key::normalise_model_name(&id) else {
            continue;
        };
        let listed = format!(
            "{id}\n{}\n{}",
            entry
                .get("created")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            str_field(entry, "owned_by").unwrap_or_default()
        );
        let digest = format!("openai:{}", blake3::hash(listed.as_bytes()).to_hex());
        models.loaded.insert(
            key.clone(),
            Loaded {
                expires_at: None,
                size: 0,
                size_vram: 0,
                context_length: None,
            },
        );
        models.installed.insert(
            key,
            Installed {
                name: id,
                digest,
                size: 0,
                family: None,
                parameter_size: None,
                quantization_level: None,
                capabilities: Vec::new(),
            },
        );
    }
    Some(models)
}

/// An entry's normalised name (the map key) and its name as listed.
fn name_of(entry: &serde_json::Value) -> Option<(String, String)> {
    let name = str_field(entry, "model").or_else(|| str_field(entry, "name"))?;
    let key = crate::cache::key::normalise_model_name(&name).ok()?;
    Some((key, name))
}

/// A string field of a JSON object, owned.
fn str_field(entry: &serde_json::Value, field: &str) -> Option<String> {
    entry.get(field)?.as_str().map(str::to_owned)
}

/// GETs `url` (with `auth` as its `Authorization`, if any) and parses its body
/// as JSON; `None` on any error, timeout (5 s) or non-2xx status.
async fn get_json(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&http::HeaderValue>,
) -> Option<serde_json::Value> {
    let mut request = client.get(url).timeout(Duration::from_secs(5));
    if let Some(auth) = auth {
        request = request.header(http::header::AUTHORIZATION, auth.clone());
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successful_answer_marks_its_model_loaded_once() {
        let inventory = Inventory::default();
        assert!(!inventory.has_loaded("m:latest"));
        assert_eq!(
            inventory.has_model("m:latest"),
            None,
            "unknown before a refresh"
        );
        inventory.note_loaded("m:latest");
        let first = inventory.snapshot();
        assert!(first.loaded.contains_key("m:latest"));
        inventory.note_loaded("m:latest");
        assert!(
            Arc::ptr_eq(&first, &inventory.snapshot()),
            "no write when already loaded"
        );
    }

    #[test]
    fn embedding_models_are_told_apart() {
        let model = |capabilities: &[&str], family: &str| Installed {
            name: "x".into(),
            digest: String::new(),
            size: 0,
            family: Some(family.into()),
            parameter_size: None,
            quantization_level: None,
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        };
        assert!(model(&["embedding"], "llama").is_embedding());
        assert!(model(&[], "nomic-bert").is_embedding());
        assert!(!model(&["completion", "tools"], "llama").is_embedding());
    }
}
