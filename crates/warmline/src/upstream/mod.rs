//! Upstreams: the Ollama hosts behind the gateway, their health, and which one a
//! request goes to.
//!
//! Each [`Upstream`] carries its own health cell (reachable, last probe latency,
//! last error) and an in-flight counter. Health is learned two ways: a background
//! task probes every host with `HEAD /` (Ollama's own liveness check) on an interval,
//! and the proxy reports what it sees on real requests (a refused connection marks
//! the host down at once; any answer marks it up). The request path only reads
//! atomics: [`UpstreamSet::pick`] takes the least-busy reachable host, or, when none
//! is reachable, still the least-busy host so the client learns the real cause from
//! the attempt (a 502 naming that host) rather than a generic refusal.

pub mod discover;
mod endpoint;
mod inventory;

pub use endpoint::{Endpoint, Target};
pub use inventory::{HostModels, Installed, Inventory, Loaded};

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::PathAndQuery;
use serde::{Deserialize, Serialize};

use crate::admission::{ConcurrencyConfig, ModelSlots, Slots};
use crate::breaker::{Breaker, BreakerConfig, Snapshot};
use crate::config::{Concurrency, UpstreamConfig, UpstreamKind};
use url::Url;

/// No probe has measured a latency yet.
const NO_LATENCY: u64 = u64::MAX;

/// Fixed-point scale of [`Upstream::load`]: in-flight counts per unit of weight.
const WEIGHT_SCALE: u64 = 1 << 16;

/// One Ollama host.
#[derive(Debug)]
pub struct Upstream {
    url: Url,
    /// Stops sending requests to a host that keeps failing (see [`crate::breaker`]).
    pub breaker: Breaker,
    /// Bounds requests in flight per model on this host (see [`crate::admission`]).
    pub slots: Slots,
    /// Models installed and loaded on this host, refreshed from `/api/tags` and
    /// `/api/ps` ([`run_model_refresh`]); unknown until the first refresh.
    pub models: Inventory,
    /// The URL as a prefix for request paths: scheme, authority and any base path,
    /// without a trailing slash.
    base: String,
    /// Where its connections go (`None` for a URL that is not `http://`).
    endpoint: Option<Endpoint>,
    /// The API it speaks.
    kind: UpstreamKind,
    /// `Bearer <api_key>`, for a host that wants one (marked sensitive).
    auth: Option<http::HeaderValue>,
    /// The URL's path without its trailing slash (usually empty): request paths
    /// go under it.
    base_path: String,
    /// The URL as shown in errors, logs and health (any password masked).
    name: Arc<str>,
    /// Share of the traffic relative to the other hosts.
    weight: u32,
    in_flight: AtomicUsize,
    reachable: AtomicBool,
    last_latency_micros: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Requests sent to this host (every attempt), for its metrics.
    requests: AtomicU64,
    /// Requests this host failed that were then sent to another.
    retried: AtomicU64,
}

impl Upstream {
    /// Needs a tokio runtime: the host's breaker task is spawned here.
    pub fn new(
        config: &UpstreamConfig,
        breaker: BreakerConfig,
        concurrency: ConcurrencyConfig,
    ) -> Upstream {
        let url = config.url.clone();
        let base = url.as_str().trim_end_matches('/').to_owned();
        let name: Arc<str> = config.name().into();
        let endpoint = Endpoint::of(&url);
        let auth = bearer(config);
        let base_path = url.path().trim_end_matches('/').to_owned();
        let span = tracing::info_span!("upstream", host = %name);
        let (breaker, _task) = span.in_scope(|| Breaker::spawn(breaker));
        Upstream {
            url,
            breaker,
            slots: Slots::new(concurrency),
            models: Inventory::default(),
            base,
            endpoint,
            kind: config.kind,
            auth,
            base_path,
            name,
            weight: config.weight.get(),
            in_flight: AtomicUsize::new(0),
            // Optimistic until the first probe says otherwise: a gateway started
            // just before its daemon should not refuse the first requests.
            reachable: AtomicBool::new(true),
            last_latency_micros: AtomicU64::new(NO_LATENCY),
            last_error: Mutex::new(None),
            requests: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        }
    }

    /// Counts a request sent to this host (each attempt).
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// Counts a request this host failed that goes to another host now.
    pub fn count_retry(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    /// The upstream's URL as configured (with any password: not for display).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The base URL as shown to people, without a trailing slash, e.g.
    /// `http://127.0.0.1:11434` (a password in it masked).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// [`Upstream::name`], shared (for traces and leases, without a copy).
    pub fn shared_name(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Share of the traffic relative to the other hosts.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Outstanding requests per unit of weight, scaled to stay an integer: the
    /// balancer's measure of how busy a host is.
    fn load(&self) -> u64 {
        (self.in_flight() as u64).saturating_mul(WEIGHT_SCALE) / u64::from(self.weight)
    }

    /// The API this host speaks.
    pub fn kind(&self) -> UpstreamKind {
        self.kind
    }

    /// The `Authorization` value its requests carry (`Bearer <api_key>`), for a
    /// host configured with a key.
    pub fn auth(&self) -> Option<&http::HeaderValue> {
        self.auth.as_ref()
    }

    /// The id under which this host lists `model` (an engine's own spelling of
    /// a normalised name); the name itself if it lists no such model.
    pub fn listed_name(&self, model: &str) -> String {
        self.models
            .snapshot()
            .installed
            .get(model)
            .map_or_else(|| model.to_owned(), |installed| installed.name.clone())
    }

    /// Where this host's connections go; `None` for a URL Warmline cannot
    /// connect to (not `http://`).
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// The request target (origin form) for a request's path and query: the
    /// same, under the URL's own path if it has one.
    pub fn request_target(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, String> {
        let path_and_query = path_and_query
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if self.base_path.is_empty() {
            return Ok(Uri::from(path_and_query));
        }
        let mut target = self.base_path.clone();
        target.push_str(path_and_query.as_str());
        Uri::try_from(target).map_err(|err| err.to_string())
    }

    /// The full URL for a request's path and query.
    pub fn target(&self, path_and_query: &str) -> String {
        let mut target = String::with_capacity(self.base.len() + path_and_query.len());
        target.push_str(&self.base);
        target.push_str(path_and_query);
        target
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// Whether this host has `model` installed; `None` until its list is known.
    pub fn has_model(&self, model: &str) -> Option<bool> {
        self.models.has_model(model)
    }

    /// Whether `model` is loaded (in memory) on this host, as last seen.
    pub fn has_loaded(&self, model: &str) -> bool {
        self.models.has_loaded(model)
    }

    /// Counts a request as outstanding on this host until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(Arc::clone(self))
    }

    /// The host answered (a probe, or a real request).
    pub fn mark_up(&self, probe_latency: Option<Duration>) {
        // Only the transition takes the lock: the request path calls this per answer.
        if !self.reachable.swap(true, Relaxed)
            && let Ok(mut last) = self.last_error.lock()
        {
            *last = None;
        }
        if let Some(latency) = probe_latency {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(NO_LATENCY - 1);
            self.last_latency_micros.store(micros, Relaxed);
        }
    }

    /// The host could not be reached; `reason` is kept for the health report.
    pub fn mark_down(&self, reason: String) {
        self.reachable.store(false, Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason);
        }
    }

    /// Reads the parallelism of the daemon behind this host when it runs on this
    /// machine (see `discover`), for a host whose parallelism is neither stated
    /// nor supervised; says so in the log when what is known changes. Blocking.
    pub fn discover_parallelism(&self) {
        use crate::parallelism::Source;
        if matches!(
            self.slots.config().source,
            Source::Stated | Source::Supervised
        ) {
            return;
        }
        let found = discover::daemon(&self.url);
        let before = self.slots.parallelism();
        let now = match &found {
            discover::Found::Daemon {
                num_parallel: Some(n),
                ..
            } => Some(*n),
            _ => None,
        };
        self.slots.discovered(now);
        let after = self.slots.parallelism();
        if (before.source, before.parallel) != (after.source, after.parallel)
            && let (discover::Found::Daemon { pid, .. }, Some(n)) = (&found, now)
        {
            tracing::info!(
                upstream = %self.name,
                pid,
                "OLLAMA_NUM_PARALLEL={n} read from the daemon's environment"
            );
        }
    }

    /// A snapshot for `/warmline/health`.
    pub fn health(&self) -> UpstreamHealth {
        let micros = self.last_latency_micros.load(Relaxed);
        let parallelism = self.slots.parallelism();
        UpstreamHealth {
            url: self.name.to_string(),
            weight: self.weight,
            parallel: parallelism.parallel,
            parallel_source: parallelism.source,
            parallel_learned: parallelism.learned.into_iter().collect(),
            reachable: self.is_reachable(),
            last_latency_ms: (micros != NO_LATENCY).then(|| micros as f64 / 1000.0),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            in_flight: self.in_flight(),
            breaker: self.breaker.snapshot(),
            models: self.slots.snapshot(),
            loaded: {
                let mut loaded: Vec<String> =
                    self.models.snapshot().loaded.keys().cloned().collect();
                loaded.sort();
                loaded
            },
            requests: self.requests.load(Relaxed),
            retried: self.retried.load(Relaxed),
            connections_opened: self.endpoint.as_ref().map_or(0, Endpoint::opened),
        }
    }
}

/// RAII guard for one outstanding request on an upstream.
#[derive(Debug)]
pub struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Health of one upstream as reported by `/warmline/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpstreamHealth {
    pub url: String,
    /// Share of the traffic relative to the other hosts.
    pub weight: u32,
    /// Requests the host runs at once per model (its `OLLAMA_NUM_PARALLEL`).
    pub parallel: usize,
    /// How `parallel` is known: stated, supervised, adopted or learned.
    pub parallel_source: crate::parallelism::Source,
    /// While learning: each model's learned parallelism.
    #[serde(default)]
    pub parallel_learned: std::collections::BTreeMap<String, usize>,
    pub reachable: bool,
    /// Latency of the last successful `HEAD /` probe.
    pub last_latency_ms: Option<f64>,
    /// Why the host is considered unreachable (`None` while it is reachable).
    pub last_error: Option<String>,
    pub in_flight: usize,
    pub breaker: Snapshot,
    /// Per model with requests in flight or queued: slots in use and queue length.
    pub models: Vec<ModelSlots>,
    /// Models loaded on this host, as `/api/ps` last said.
    pub loaded: Vec<String>,
    /// Requests sent to this host so far (every attempt, retries included).
    #[serde(default)]
    pub requests: u64,
    /// Requests this host failed that were re-sent to another host.
    #[serde(default)]
    pub retried: u64,
    /// TCP connections opened to this host (the rest reused the pool).
    #[serde(default)]
    pub connections_opened: u64,
}

/// The configured upstreams.
#[derive(Debug)]
pub struct UpstreamSet {
    hosts: Vec<Arc<Upstream>>,
    /// Every host is an OpenAI-compatible engine (no Ollama to send the rest to).
    engines_only: bool,
}

impl UpstreamSet {
    /// Builds the set; `urls` is non-empty (config validation guarantees it).
    /// Needs a tokio runtime (each host's breaker runs as a task).
    pub fn new(
        upstreams: &[UpstreamConfig],
        breaker: &BreakerConfig,
        concurrency: &Concurrency,
    ) -> UpstreamSet {
        UpstreamSet::reusing(upstreams, breaker, concurrency, None, None)
    }

    /// Builds the set for a new configuration, keeping each host of `previous`
    /// whose settings did not change (with its health, breaker state, slots and
    /// model lists), so a reload does not forget what it learned.
    /// `supervised`: the first host runs a daemon Warmline starts, with this
    /// `OLLAMA_NUM_PARALLEL`.
    pub fn reusing(
        upstreams: &[UpstreamConfig],
        breaker: &BreakerConfig,
        concurrency: &Concurrency,
        supervised: Option<NonZeroUsize>,
        previous: Option<&UpstreamSet>,
    ) -> UpstreamSet {
        let hosts = upstreams
            .iter()
            .enumerate()
            .map(|(i, config)| {
                let slots = ConcurrencyConfig::for_host(
                    concurrency,
                    config.parallel,
                    supervised.filter(|_| i == 0),
                );
                let kept = previous.and_then(|set| {
                    set.hosts.iter().find(|h| {
                        h.url == config.url
                            && h.kind == config.kind
                            && h.auth == bearer(config)
                            && h.weight == config.weight.get()
                            && h.breaker.config() == *breaker
                            && h.slots.config() == slots
                    })
                });
                match kept {
                    Some(host) => Arc::clone(host),
                    None => Arc::new(Upstream::new(config, *breaker, slots)),
                }
            })
            .collect::<Vec<Arc<Upstream>>>();
        let engines_only = hosts.iter().all(|h| h.kind == UpstreamKind::OpenAi);
        UpstreamSet {
            hosts,
            engines_only,
        }
    }

    pub fn hosts(&self) -> &[Arc<Upstream>] {
        &self.hosts
    }

    /// The host for the next request for `model` (if the request names one).
    ///
    /// Candidates are the hosts whose breaker would let a request through (not
    /// open, and not half-open with its one probe already out); for a model, only those
    /// that have it installed when any host is known to (otherwise all, so the
    /// upstream's own 404 reaches the client). Among them, reachable hosts first,
    /// then hosts that already have the model loaded (no cold load), then the
    /// fewest outstanding requests per unit of weight, then the heavier host; the
    /// first listed wins ties. An unreachable host
    /// is still chosen when it is the only candidate, so the client learns the real
    /// cause from the attempt. `None` when every host's breaker is open.
    pub fn pick(&self, model: Option<&str>) -> Option<&Arc<Upstream>> {
        // One host (the usual setup): it is the pick whenever its breaker admits
        // (and, for an engine, it serves the model).
        if let [only] = self.hosts.as_slice() {
            return (only.breaker.admits() && self.may_serve(only, model)).then_some(only);
        }
        self.candidates(model, None).min_by_key(|h| {
            (
                !h.is_reachable(),
                model.is_some_and(|m| !h.has_loaded(m)),
                h.load(),
                std::cmp::Reverse(h.weight),
            )
        })
    }

    /// Whether every host is an OpenAI-compatible engine.
    pub fn engines_only(&self) -> bool {
        self.engines_only
    }

    /// Whether a request for `model` (or for none) may go to `host`: anything
    /// may go to Ollama; an OpenAI-compatible engine answers for the models it
    /// lists (no pulls, no unknown names) and, when there is no Ollama host,
    /// requests that name no model (`/v1/models`).
    fn may_serve(&self, host: &Upstream, model: Option<&str>) -> bool {
        host.kind == UpstreamKind::Ollama
            || match model {
                Some(m) => host.has_model(m) == Some(true),
                None => self.engines_only,
            }
    }

    /// Hosts that may serve `model`, excluding `tried`.
    fn candidates<'a, 'm>(
        &'a self,
        model: Option<&'m str>,
        tried: Option<&'m Arc<Upstream>>,
    ) -> impl Iterator<Item = &'a Arc<Upstream>> + 'm
    where
        'a: 'm,
    {
        let someone_has_it =
            model.is_some_and(|m| self.hosts.iter().any(|h| h.has_model(m) == Some(true)));
        self.hosts.iter().filter(move |h| {
            h.breaker.admits()
                && self.may_serve(h, model)
                && tried.is_none_or(|t| !Arc::ptr_eq(h, t))
                && !(someone_has_it && model.is_some_and(|m| h.has_model(m) != Some(true)))
        })
    }

    /// Why no host can be tried: every breaker is open. Names each host and when it
    /// will be tried again.
    pub fn all_open(&self) -> (String, std::time::Duration) {
        let mut soonest = std::time::Duration::MAX;
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                let retry = h
                    .breaker
                    .snapshot()
                    .retry_in_ms
                    .map_or(std::time::Duration::ZERO, std::time::Duration::from_millis);
                soonest = soonest.min(retry);
                format!("{} (retry in {}s)", h.name(), retry.as_secs_f64().ceil())
            })
            .collect();
        (hosts.join(", "), soonest)
    }

    /// The best reachable host other than `tried`, for a retry.
    pub fn pick_other(&self, tried: &Arc<Upstream>, model: Option<&str>) -> Option<&Arc<Upstream>> {
        if self.hosts.len() < 2 {
            return None;
        }
        self.candidates(model, Some(tried))
            .filter(|h| h.is_reachable())
            .min_by_key(|h| {
                (
                    model.is_some_and(|m| !h.has_loaded(m)),
                    h.load(),
                    std::cmp::Reverse(h.weight),
                )
            })
    }

    /// A reachable host other than `tried` known to have `model` installed: where
    /// a "model not found" answer is retried.
    pub fn pick_with_model(&self, tried: &Arc<Upstream>, model: &str) -> Option<&Arc<Upstream>> {
        self.pick_other(tried, Some(model))
            .filter(|h| h.has_model(model) == Some(true))
    }

    /// Whether any host lists `model` as installed.
    pub fn is_installed(&self, model: &str) -> bool {
        self.hosts.iter().any(|h| h.has_model(model) == Some(true))
    }

    pub fn health(&self) -> Vec<UpstreamHealth> {
        self.hosts.iter().map(|h| h.health()).collect()
    }
}

/// `Bearer <api_key>` for a host configured with a key, marked sensitive.
fn bearer(config: &UpstreamConfig) -> Option<http::HeaderValue> {
    let key = config.api_key.as_ref()?;
    let mut value = http::HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Refreshes every host's installed and loaded models at once; a host that does
/// not answer keeps its last lists.
pub async fn refresh_models(set: &UpstreamSet, client: &reqwest::Client) {
    let refreshes = set.hosts().iter().map(|host| async move {
        let fetched = match host.kind {
            UpstreamKind::Ollama => inventory::fetch(client, &host.base).await,
            UpstreamKind::OpenAi => {
                inventory::fetch_openai(client, &host.base, host.auth.as_ref()).await
            }
        };
        if let Some(models) = fetched {
            host.models.store(models);
        }
    });
    futures_util::future::join_all(refreshes).await;
}

/// Every model installed on any host (normalised names, sorted): the models
/// that may appear as metric labels.
pub fn installed_models(set: &UpstreamSet) -> Vec<String> {
    let mut names: Vec<String> = set
        .hosts()
        .iter()
        .flat_map(|h| {
            h.models
                .snapshot()
                .installed
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The model → digest index across hosts (the first host listing a model wins),
/// for the cache's keys.
pub fn digests(set: &UpstreamSet) -> std::collections::HashMap<String, String> {
    let mut digests = std::collections::HashMap::new();
    for host in set.hosts() {
        for (model, installed) in &host.models.snapshot().installed {
            digests
                .entry(model.clone())
                .or_insert_with(|| installed.digest.clone());
        }
    }
    digests
}

/// Probes every upstream with `HEAD /` once, all at the same time. A probe that
/// does not answer within `timeout` marks the host down.
pub async fn probe_all(set: &UpstreamSet, client: &reqwest::Client, timeout: Duration) {
    let probes = set.hosts().iter().map(|host| probe(host, client, timeout));
    futures_util::future::join_all(probes).await;
}

async fn probe(host: &Upstream, client: &reqwest::Client, timeout: Duration) {
    let started = Instant::now();
    // Ollama answers `HEAD /`; an OpenAI-compatible engine may have nothing at
    // `/` (llama-cpp-python answers 404), but always lists its models.
    let request = match host.kind {
        UpstreamKind::Ollama => client.head(host.target("/")),
        UpstreamKind::OpenAi => {
            let request = client.get(host.target("/v1/models"));
            match &host.auth {
                Some(auth) => request.header(http::header::AUTHORIZATION, auth.clone()),
                None => request,
            }
        }
    };
    let request = request.timeout(timeout).send();
    match request.await {
        Ok(response) if !response.status().is_server_error() => {
            host.mark_up(Some(started.elapsed()));
        }
        Ok(response) => host.mark_down(format!("health check answered {}", response.status())),
        Err(err) if err.is_timeout() => host.mark_down(format!(
            "health check timed out after {}",
            humantime::format_duration(timeout)
        )),
        Err(err) => host.mark_down(crate::wire::describe(&err)),
    }
}

#[cfg(test)]
mod tests;
