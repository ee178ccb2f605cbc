//! Warmth: the models kept loaded, and the task that keeps them so.
//!
//! Cold loads were the latency report's first cause (2–4 s of a 4.5 s average),
//! and a desktop user's models go cold whenever they pause for longer than
//! Ollama's five minutes. Warmline owns that problem:
//!
//! - **The warm set** ([`Warmth`]) is kept in the state file and changed by the
//!   warm/cool routes, the CLI and the app. Reads are one `ArcSwap` load, so the
//!   request path can ask "is this model warm?" for free.
//! - **Loading** ([`keep_warm`], a task): each warm model is loaded on every host
//!   that has it installed, at start, after every daemon (re)start and whenever a
//!   refresh of the hosts' model lists shows it missing. A load is a load-only
//!   request (`/api/generate` without a prompt; `/api/embed` with no input for an
//!   embedding model) that always carries an explicit `keep_alive` (default `-1`:
//!   resident while warm), so a daemon's own short `OLLAMA_KEEP_ALIVE` never makes
//!   a warm model cold, and that holds its connection until the load completes
//!   (closing it would abort Ollama's load). Loads send no `options`: an explicit
//!   `num_ctx` would force a reload of a model already loaded with another one.
//!   With a finite `warmth.keep_alive`, each model is loaded again at half that
//!   interval, which only resets Ollama's timer when it is still loaded.
//! - **Automatic warmth** ([`auto`], on by default): models the person is likely
//!   to use next, learned from the requests served ([`usage`]), are kept loaded
//!   too, within a memory budget ([`budget`], [`plan`]). They are loaded when not
//!   resident, or when their host would unload them within a minute; a model
//!   resident for longer is left to its host's own timer (the requests for it
//!   are pinned meanwhile). Models the person marked warm always come first.
//! - **Cooling** removes a model from the set and unloads it (`keep_alive: 0`);
//!   a model cooled is never kept by prediction until it is warmed again.
//! - **Pinning** (in the proxy): a request for a warm model that does not set its
//!   own `keep_alive` gets the pinned one, so one client cannot shorten a warm
//!   model's residency to Ollama's default. `/v1` requests cannot carry
//!   `keep_alive` at all (Ollama's compatibility layer drops it), and do not change
//!   a loaded model's; a `/v1` request for a warm model that is not loaded first
//!   waits for a pinned load, which it would have paid for anyway.

pub mod auto;
pub mod budget;
pub mod plan;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::{KeepAlive, WarmthConfig};
use crate::state::{Persisted, StateStore};
use crate::upstream::{Upstream, UpstreamSet};

/// How long one load may take before it is given up (it is retried on the next
/// round). Large models from slow disks take minutes.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A load that is due: the host, the model, and whether it is an embedding model.
type Due = (Arc<Upstream>, String, bool);

/// The warm set and what is being done about it.
#[derive(Debug)]
pub struct Warmth {
    config: ArcSwap<WarmthConfig>,
    set: ArcSwap<Vec<String>>,
    store: Arc<dyn StateStore>,
    /// Woken when the set changes, so the task acts at once.
    pub(crate) changed: Notify,
    /// Woken when a load finished, so the hosts' model lists are read again.
    pub(crate) loaded: Notify,
    /// Loads under way, by (host, model): aborting one drops its request, which
    /// closes the connection and so aborts Ollama's load.
    loading: Mutex<HashMap<(String, String), tokio::task::AbortHandle>>,
    /// When each (host, model) was last loaded by Warmline.
    warmed: Mutex<HashMap<(String, String), Instant>>,
    /// Models cooled but maybe still loaded somewhere.
    to_unload: Mutex<Vec<String>>,
    /// The last failure per model, for the models view.
    errors: Mutex<HashMap<String, String>>,
    /// Models the person cooled: never kept by prediction (kept in the state file).
    cooled: ArcSwap<Vec<String>>,
    /// Automatic warmth: what is learned, and the models kept by prediction.
    pub(crate) auto: auto::Auto,
    /// Models a host keeps loaded at once, as the last plan was told.
    model_cap: std::sync::atomic::AtomicUsize,
}

/// Why the warm set could not be changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WarmthError {
    #[error("model \"{0}\" is not a valid model name")]
    InvalidName(String),
    #[error("model '{0}' not found, try pulling it first")]
    NotInstalled(String),
    #[error("the warm set was changed but could not be saved: {0}")]
    Persist(String),
}

impl Warmth {
    /// The warm set from `store`, or from `config.models` when it has none yet.
    pub fn new(config: &WarmthConfig, store: Arc<dyn StateStore>) -> Warmth {
        let (set, cooled, usage) = match store.load() {
            Ok(Some(state)) => (state.warm, state.cooled, state.usage),
            Ok(None) => (config.models.clone(), Vec::new(), Default::default()),
            Err(err) => {
                tracing::warn!("{err}; starting from the configured warm set");
                (config.models.clone(), Vec::new(), Default::default())
            }
        };
        Warmth {
            config: ArcSwap::from_pointee(config.clone()),
            set: ArcSwap::from_pointee(set),
            store,
            changed: Notify::new(),
            loaded: Notify::new(),
            loading: Mutex::default(),
            warmed: Mutex::default(),
            to_unload: Mutex::default(),
            errors: Mutex::default(),
            cooled: ArcSwap::from_pointee(cooled),
            auto: auto::Auto::new(usage),
            model_cap: std::sync::atomic::AtomicUsize::new(auto::DEFAULT_MAX_MODELS),
        }
    }

    /// New settings (keep_alive, pin, masking); the set itself is unchanged.
    pub fn set_config(&self, config: &WarmthConfig) {
        if **self.config.load() != *config {
            self.config.store(Arc::new(config.clone()));
            // A new keep_alive must reach the loaded models: load them again.
            if let Ok(mut warmed) = self.warmed.lock() {
                warmed.clear();
            }
            self.changed.notify_one();
        }
    }

    pub fn config(&self) -> Arc<WarmthConfig> {
        self.config.load_full()
    }

    /// The warm models, in the order they were warmed.
    pub fn models(&self) -> Arc<Vec<String>> {
        self.set.load_full()
    }

    /// Whether `model` (a normalised name) is warm by the person's choice: one
    /// load, no lock.
    pub fn is_warm(&self, model: &str) -> bool {
        self.set.load().iter().any(|m| m == model)
    }

    /// Whether `model` is kept loaded by prediction now.
    pub fn is_predicted(&self, model: &str) -> bool {
        self.auto.kept.load().iter().any(|m| m == model)
    }

    /// Why `model` is kept by prediction (`"used 5 minutes ago"`), if it is.
    pub fn prediction_reason(&self, model: &str) -> Option<String> {
        self.auto.status().reasons.get(model).cloned()
    }

    /// The state of automatic warmth (budget, use, reasons).
    pub fn auto_status(&self) -> Arc<auto::AutoStatus> {
        self.auto.status()
    }

    /// The `keep_alive` to inject into a request for `model` that has none: the
    /// warm one, for a model warm by choice or by prediction.
    pub fn pinned(&self, model: &str) -> Option<KeepAlive> {
        let config = self.config.load();
        (config.pin && (self.is_warm(model) || self.is_predicted(model)))
            .then_some(config.keep_alive)
    }

    /// Whether streams for models still loading get their headers at once.
    pub fn masks_cold_starts(&self) -> bool {
        self.config.load().mask_cold_starts
    }

    /// Adds `model` to the set (idempotent) and saves it; `installed` says whether
    /// any host lists it (`None`: not known yet). Returns the normalised name.
    pub fn warm(&self, model: &str, installed: Option<bool>) -> Result<String, WarmthError> {
        let name = crate::cache::key::normalise_model_name(model)
            .map_err(|_| WarmthError::InvalidName(model.to_owned()))?;
        if installed == Some(false) {
            return Err(WarmthError::NotInstalled(name));
        }
        if let Ok(mut errors) = self.errors.lock() {
            errors.remove(&name);
        }
        if let Ok(mut pending) = self.to_unload.lock() {
            pending.retain(|m| *m != name);
        }
        self.cooled.rcu(|cooled| {
            let mut next = Vec::clone(cooled);
            next.retain(|m| *m != name);
            next
        });
        self.change(|set| {
            if !set.contains(&name) {
                set.push(name.clone());
            }
        })?;
        Ok(name)
    }

    /// Removes `model` from the set and has it unloaded. Returns the normalised name.
    pub fn cool(&self, model: &str) -> Result<String, WarmthError> {
        let name = crate::cache::key::normalise_model_name(model)
            .map_err(|_| WarmthError::InvalidName(model.to_owned()))?;
        if let Ok(mut pending) = self.to_unload.lock()
            && !pending.contains(&name)
        {
            pending.push(name.clone());
        }
        if let Ok(mut warmed) = self.warmed.lock() {
            warmed.retain(|(_, m), _| *m != name);
        }
        // A load still under way would leave the model resident for ever once
        // it completes: stop it (the unload that follows covers a load that
        // finished a moment ago).
        if let Ok(mut loading) = self.loading.lock() {
            loading.retain(|(_, m), load| {
                let keep = *m != name;
                if !keep {
                    load.abort();
                }
                keep
            });
        }
        self.cooled.rcu(|cooled| {
            let mut next = Vec::clone(cooled);
            if !next.contains(&name) {
                next.push(name.clone());
            }
            next
        });
        self.auto.kept.rcu(|kept| {
            let mut next = Vec::clone(kept);
            next.retain(|m| *m != name);
            next
        });
        self.change(|set| set.retain(|m| *m != name))?;
        Ok(name)
    }

    /// Forgets what automatic warmth learned (and that models were cooled); the
    /// models kept by prediction are unloaded. Saved at once.
    pub fn forget(&self) -> Result<(), WarmthError> {
        let released = self.auto.forget();
        self.cooled.store(Arc::new(Vec::new()));
        if let Ok(mut pending) = self.to_unload.lock() {
            for model in released {
                if !self.is_warm(&model) && !pending.contains(&model) {
                    pending.push(model);
                }
            }
        }
        self.changed.notify_one();
        self.save()
    }

    /// Writes the warm set, the cooled models and what was learned.
    fn save(&self) -> Result<(), WarmthError> {
        let state = Persisted {
            cooled: Vec::clone(&self.cooled.load()),
            usage: self.auto.usage(),
            ..Persisted::with_warm(Vec::clone(&self.set.load()))
        };
        self.store.save(&state).map_err(WarmthError::Persist)
    }

    /// One round of automatic warmth (see [`auto`]); the models it lets go are
    /// queued for unloading.
    pub(crate) fn plan(
        &self,
        metrics: &crate::metrics::ModelMetrics,
        hosts: &UpstreamSet,
        max_models: usize,
    ) {
        let config = self.config.load_full();
        self.model_cap
            .store(max_models, std::sync::atomic::Ordering::Relaxed);
        let (released, save) = self.auto.round(
            &config,
            &self.set.load(),
            &self.cooled.load(),
            metrics,
            hosts,
            max_models,
        );
        if !released.is_empty() {
            if let Ok(mut pending) = self.to_unload.lock() {
                for model in released {
                    if !pending.contains(&model) {
                        pending.push(model);
                    }
                }
            }
            if let Ok(mut warmed) = self.warmed.lock() {
                warmed.retain(|(_, m), _| self.is_warm(m) || self.is_predicted(m));
            }
        }
        if save && let Err(err) = self.save() {
            tracing::warn!("{err}");
        }
    }

    /// Stops every warm load under way (the gateway is stopping).
    pub(crate) fn abort_loads(&self) {
        if let Ok(mut loading) = self.loading.lock() {
            loading.drain().for_each(|(_, load)| load.abort());
        }
    }

    fn change(&self, edit: impl Fn(&mut Vec<String>)) -> Result<(), WarmthError> {
        self.set.rcu(|current| {
            let mut next = Vec::clone(current);
            edit(&mut next);
            next
        });
        self.changed.notify_one();
        self.save()
    }

    /// Whether a load of `model` is under way on any host.
    pub fn is_loading(&self, model: &str) -> bool {
        self.loading
            .lock()
            .is_ok_and(|l| l.keys().any(|(_, m)| m == model))
    }

    /// The last load failure for `model`, if its last load failed.
    pub fn error(&self, model: &str) -> Option<String> {
        self.errors.lock().ok()?.get(model).cloned()
    }

    /// Forgets when models were loaded: the daemon restarted, so they are not.
    pub(crate) fn daemon_restarted(&self) {
        if let Ok(mut warmed) = self.warmed.lock() {
            warmed.clear();
        }
        self.changed.notify_one();
    }

    /// What one round should do now: loads `(host, model)` that are due, and
    /// models to unload.
    fn due(&self, hosts: &UpstreamSet) -> (Vec<Due>, Vec<String>) {
        let config = self.config.load();
        let refresh_after = match config.keep_alive {
            KeepAlive::Forever => None,
            KeepAlive::For(d) => Some(d / 2),
        };
        let loading = self.loading.lock().map(|l| l.clone()).unwrap_or_default();
        let warmed = self.warmed.lock().map(|w| w.clone()).unwrap_or_default();
        let (chosen, predicted) = (self.set.load(), self.auto.kept.load());
        let models_kept = chosen.iter().map(|m| (m, false)).chain(
            predicted
                .iter()
                .filter(|m| !chosen.contains(m))
                .map(|m| (m, true)),
        );
        let models_kept: Vec<(&String, bool)> = models_kept.collect();
        let mut loads = Vec::new();
        for host in hosts.hosts() {
            let models = host.models.snapshot();
            if !models.known || !host.is_reachable() {
                continue;
            }
            for &(model, by_prediction) in &models_kept {
                let Some(installed) = models.installed.get(model) else {
                    continue;
                };
                let key = (host.name().to_owned(), model.clone());
                if loading.contains_key(&key) {
                    continue;
                }
                let resident = models.loaded.get(model);
                // A model kept by prediction is loaded when it is not resident, or
                // when its host would unload it soon (the request that loaded it
                // came before the prediction, unpinned); one resident for a while
                // yet is left to its host's timer, as requests for it are pinned.
                if by_prediction {
                    let expiring = resident
                        .and_then(|l| l.expires_at.as_deref())
                        .and_then(crate::sys::clock::parse_rfc3339)
                        .is_some_and(|at| {
                            at <= std::time::SystemTime::now() + PREDICTED_REFRESH_AHEAD
                        });
                    // Never load one ahead into a host that is full: it would
                    // evict the model in use now, and the fight would go on.
                    let full = models.loaded.len()
                        >= self.model_cap.load(std::sync::atomic::Ordering::Relaxed);
                    if (resident.is_none() && !full) || expiring {
                        loads.push((Arc::clone(host), model.clone(), installed.is_embedding()));
                    }
                    continue;
                }
                let resident = resident.is_some();
                // An engine ignores keep_alive: its warm request is repeated.
                let refresh_after = match host.kind() {
                    crate::config::UpstreamKind::Ollama => refresh_after,
                    crate::config::UpstreamKind::OpenAi => Some(ENGINE_REFRESH),
                };
                let stale = match (warmed.get(&key), refresh_after) {
                    (None, _) => true,
                    (Some(at), Some(after)) => at.elapsed() >= after,
                    (Some(_), None) => false,
                };
                if !resident || stale {
                    loads.push((Arc::clone(host), model.clone(), installed.is_embedding()));
                }
            }
        }
        let unloads = self
            .to_unload
            .lock()
            .map(|mut pending| std::mem::take(&mut *pending))
            .unwrap_or_default();
        (loads, unloads)
    }
}

/// Keeps the warm set loaded on `hosts` (see the module docs): one round now, with
/// loads running as their own tasks so a slow one does not hold up the others.
pub(crate) async fn round(warmth: &Arc<Warmth>, hosts: &UpstreamSet, client: &reqwest::Client) {
    let (loads, unloads) = warmth.due(hosts);
    let keep_alive = warmth.config().keep_alive;
    for (host, model, embedding) in loads {
        let key = (host.name().to_owned(), model.clone());
        // Held while spawning, so the task's own removal comes after the insert.
        let Ok(mut loading) = warmth.loading.lock() else {
            continue;
        };
        if loading.contains_key(&key) {
            continue;
        }
        let (task_warmth, client) = (Arc::clone(warmth), client.clone());
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let (warmth, key) = (task_warmth, task_key);
            let result = load(&client, &host, &model, keep_alive.to_json(), embedding).await;
            if let Ok(mut loading) = warmth.loading.lock() {
                loading.remove(&key);
            }
            match result {
                // Cooled while it loaded: the unload that cooling queued follows.
                Ok(_) if !warmth.is_warm(&model) && !warmth.is_predicted(&model) => {}
                Ok(took) => {
                    let predicted = !warmth.is_warm(&model);
                    warmth.auto.loaded(&model, took, predicted);
                    tracing::info!(host = %key.0, model = %model, took_ms = took.as_millis() as u64, "warm model loaded");
                    host.models.note_loaded(&model);
                    if let Ok(mut warmed) = warmth.warmed.lock() {
                        warmed.insert(key, Instant::now());
                    }
                    if let Ok(mut errors) = warmth.errors.lock() {
                        errors.remove(&model);
                    }
                    warmth.loaded.notify_one();
                }
                Err(err) => {
                    tracing::warn!(host = %key.0, model = %model, "cannot load warm model: {err}");
                    if let Ok(mut errors) = warmth.errors.lock() {
                        errors.insert(model, err);
                    }
                }
            }
        });
        loading.insert(key, task.abort_handle());
    }
    for model in unloads {
        for host in hosts.hosts() {
            if (host.has_loaded(&model) || host.has_model(&model) == Some(true))
                && let Err(err) = unload(client, host, &model).await
            {
                tracing::warn!(host = host.name(), model = %model, "cannot unload: {err}");
            }
        }
    }
}

/// A model kept by prediction is loaded (with the warm `keep_alive`) once its
/// host would unload it within this long.
const PREDICTED_REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// How often a warm model's one-token request is repeated on an OpenAI-compatible
/// engine, which cannot be told to keep a model: often enough for engines that
/// unload a model idle for five minutes (Ollama's default, which some of them
/// copy), rare enough to cost nothing.
const ENGINE_REFRESH: Duration = Duration::from_secs(4 * 60);

/// A load-only request for `model` on `host` with `keep_alive`; resolves when the
/// model is loaded (the connection is held until then).
pub async fn load(
    client: &reqwest::Client,
    host: &Upstream,
    model: &str,
    keep_alive: serde_json::Value,
    embedding: bool,
) -> Result<Duration, String> {
    if host.kind() == crate::config::UpstreamKind::OpenAi {
        return load_openai(client, host, model, embedding).await;
    }
    let (path, body) = if embedding {
        (
            "/api/embed",
            serde_json::json!({ "model": model, "input": [], "keep_alive": keep_alive }),
        )
    } else {
        (
            "/api/generate",
            serde_json::json!({ "model": model, "keep_alive": keep_alive }),
        )
    };
    let started = std::time::Instant::now();
    post(client, host, path, &body).await?;
    Ok(started.elapsed())
}

/// An OpenAI-compatible engine has no load-only request: the smallest real one
/// (one output token, or one input to embed) under the engine's own id for the
/// model. It loads a model the engine loads on demand; an engine that holds its
/// model anyway answers it at once.
async fn load_openai(
    client: &reqwest::Client,
    host: &Upstream,
    model: &str,
    embedding: bool,
) -> Result<Duration, String> {
    let id = host.listed_name(model);
    let (path, body) = if embedding {
        (
            "/v1/embeddings",
            serde_json::json!({ "model": id, "input": "warm" }),
        )
    } else {
        (
            "/v1/chat/completions",
            serde_json::json!({
                "model": id,
                "messages": [{ "role": "user", "content": "hi" }],
                "max_tokens": 1,
            }),
        )
    };
    let started = std::time::Instant::now();
    post(client, host, path, &body).await?;
    Ok(started.elapsed())
}

/// Unloads `model` from `host` (`keep_alive: 0`, answered at once by Ollama).
/// An OpenAI-compatible engine has no way to be told: nothing is sent.
pub async fn unload(client: &reqwest::Client, host: &Upstream, model: &str) -> Result<(), String> {
    if host.kind() == crate::config::UpstreamKind::OpenAi {
        return Ok(());
    }
    let body = serde_json::json!({ "model": model, "keep_alive": 0 });
    post(client, host, "/api/generate", &body).await
}

async fn post(
    client: &reqwest::Client,
    host: &Upstream,
    path: &str,
    body: &serde_json::Value,
) -> Result<(), String> {
    let mut request = client
        .post(host.target(path))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(auth) = host.auth() {
        request = request.header(http::header::AUTHORIZATION, auth.clone());
    }
    let response = request
        .body(body.to_string())
        .timeout(LOAD_TIMEOUT)
        .send()
        .await
        .map_err(|e| crate::wire::describe(&e))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| crate::wire::describe(&e))?;
    if status.is_success() {
        return Ok(());
    }
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    Err(format!("{status}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemoryState;

    fn warmth(models: &[&str]) -> (Warmth, Arc<MemoryState>) {
        let mut config = crate::Config::default().warmth;
        config.models = models.iter().map(|m| (*m).to_owned()).collect();
        let store = Arc::new(MemoryState::default());
        (Warmth::new(&config, store.clone()), store)
    }

    #[test]
    fn the_set_is_seeded_from_config_then_kept_in_the_store() {
        let (warmth, store) = warmth(&["llama3.2:latest"]);
        assert!(warmth.is_warm("llama3.2:latest"));
        assert_eq!(
            warmth.warm("qwen3:0.6b", Some(true)).expect("warm"),
            "qwen3:0.6b"
        );
        assert_eq!(warmth.cool("llama3.2").expect("cool"), "llama3.2:latest");
        let saved = store.load().expect("readable").expect("saved");
        assert_eq!(saved.warm, ["qwen3:0.6b"]);
        // A second gateway on the same store starts from it, not from the config.
        let again = Warmth::new(&crate::Config::default().warmth, store);
        assert_eq!(*again.models(), ["qwen3:0.6b"]);
    }

    fn host_with(loaded: bool) -> UpstreamSet {
        let config = crate::Config::default();
        let set = UpstreamSet::new(&config.upstreams, &config.breaker, &config.concurrency);
        let installed = crate::upstream::Installed {
            name: "m:latest".into(),
            digest: "d".into(),
            size: 1,
            family: None,
            parameter_size: None,
            quantization_level: None,
            capabilities: vec!["completion".into()],
        };
        let resident = crate::upstream::Loaded {
            expires_at: None,
            size: 1,
            size_vram: 0,
            context_length: None,
        };
        set.hosts()[0].models.store(crate::upstream::HostModels {
            known: true,
            installed: [("m:latest".to_owned(), installed)].into_iter().collect(),
            loaded: if loaded {
                [("m:latest".to_owned(), resident)].into_iter().collect()
            } else {
                Default::default()
            },
        });
        set
    }

    fn mark_warmed(warmth: &Warmth, hosts: &UpstreamSet) {
        let key = (hosts.hosts()[0].name().to_owned(), "m:latest".to_owned());
        warmth
            .warmed
            .lock()
            .expect("lock")
            .insert(key, Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn a_finite_keep_alive_is_refreshed_at_half_its_length() {
        let (warmth, _) = warmth(&["m:latest"]);
        let mut config = crate::Config::default().warmth;
        config.keep_alive = KeepAlive::For(Duration::from_secs(600));
        warmth.set_config(&config);
        let hosts = host_with(true);
        assert_eq!(
            warmth.due(&hosts).0.len(),
            1,
            "never loaded by Warmline yet"
        );
        mark_warmed(&warmth, &hosts);
        assert!(warmth.due(&hosts).0.is_empty(), "just loaded");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(warmth.due(&hosts).0.is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(warmth.due(&hosts).0.len(), 1, "refresh at 5 of 10 minutes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resident_model_is_left_alone_until_it_is_gone() {
        let (warmth, _) = warmth(&["m:latest"]);
        let hosts = host_with(true);
        mark_warmed(&warmth, &hosts);
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(
            warmth.due(&hosts).0.is_empty(),
            "keep_alive -1 needs no refresh"
        );
        let evicted = host_with(false);
        mark_warmed(&warmth, &evicted);
        assert_eq!(warmth.due(&evicted).0.len(), 1, "evicted: load it again");
        warmth.cool("m").expect("cooled");
        let (loads, unloads) = warmth.due(&hosts);
        assert!(loads.is_empty());
        assert_eq!(unloads, ["m:latest"]);
    }

    #[test]
    fn only_installed_models_can_be_warmed_and_pinning_follows_the_set() {
        let (warmth, _) = warmth(&[]);
        assert!(matches!(
            warmth.warm("nope", Some(false)),
            Err(WarmthError::NotInstalled(name)) if name == "nope:latest"
        ));
        assert!(warmth.warm("bad name!", None).is_err());
        assert_eq!(warmth.pinned("llama3.2:latest"), None);
        warmth
            .warm("llama3.2", None)
            .expect("unknown installs are accepted");
        assert_eq!(warmth.pinned("llama3.2:latest"), Some(KeepAlive::Forever));
        let mut config = crate::Config::default().warmth;
        config.pin = false;
        warmth.set_config(&config);
        assert_eq!(warmth.pinned("llama3.2:latest"), None);
    }
}
