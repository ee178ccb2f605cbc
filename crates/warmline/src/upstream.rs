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

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::admission::{ConcurrencyConfig, ModelSlots, Slots};
use crate::breaker::{Breaker, BreakerConfig, Snapshot, State};
use url::Url;

/// No probe has measured a latency yet.
const NO_LATENCY: u64 = u64::MAX;

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
    models: ArcSwap<HostModels>,
    /// The URL as a prefix for request paths: scheme, authority and any base path,
    /// without a trailing slash.
    base: String,
    in_flight: AtomicUsize,
    reachable: AtomicBool,
    last_latency_micros: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Upstream {
    /// Needs a tokio runtime: the host's breaker task is spawned here.
    pub fn new(url: Url, breaker: BreakerConfig, concurrency: ConcurrencyConfig) -> Upstream {
        let base = url.as_str().trim_end_matches('/').to_owned();
        let span = tracing::info_span!("upstream", host = %base);
        let (breaker, _task) = span.in_scope(|| Breaker::spawn(breaker));
        Upstream {
            url,
            breaker,
            slots: Slots::new(concurrency),
            models: ArcSwap::from_pointee(HostModels::default()),
            base,
            in_flight: AtomicUsize::new(0),
            // Optimistic until the first probe says otherwise: a gateway started
            // just before its daemon should not refuse the first requests.
            reachable: AtomicBool::new(true),
            last_latency_micros: AtomicU64::new(NO_LATENCY),
            last_error: Mutex::new(None),
        }
    }

    /// The upstream's URL as configured (displayed in errors and health).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:11434`.
    pub fn base(&self) -> &str {
        &self.base
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
        let models = self.models.load();
        models.known.then(|| models.installed.contains(model))
    }

    /// Whether `model` is loaded (in memory) on this host, as last seen.
    pub fn has_loaded(&self, model: &str) -> bool {
        self.models.load().loaded.contains(model)
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

    /// A snapshot for `/warmline/health`.
    pub fn health(&self) -> UpstreamHealth {
        let micros = self.last_latency_micros.load(Relaxed);
        UpstreamHealth {
            url: self.base.clone(),
            reachable: self.is_reachable(),
            last_latency_ms: (micros != NO_LATENCY).then(|| micros as f64 / 1000.0),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            in_flight: self.in_flight(),
            breaker: self.breaker.snapshot(),
            models: self.slots.snapshot(),
            loaded: {
                let mut loaded: Vec<String> = self.models.load().loaded.iter().cloned().collect();
                loaded.sort();
                loaded
            },
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
}

/// What a host has installed and loaded (normalised model names).
#[derive(Debug, Default)]
struct HostModels {
    known: bool,
    installed: std::collections::HashSet<String>,
    loaded: std::collections::HashSet<String>,
}

/// The configured upstreams.
#[derive(Debug)]
pub struct UpstreamSet {
    hosts: Vec<Arc<Upstream>>,
}

impl UpstreamSet {
    /// Builds the set; `urls` is non-empty (config validation guarantees it).
    /// Needs a tokio runtime (each host's breaker runs as a task).
    pub fn new(
        urls: &[Url],
        breaker: &BreakerConfig,
        concurrency: &ConcurrencyConfig,
    ) -> UpstreamSet {
        UpstreamSet {
            hosts: urls
                .iter()
                .cloned()
                .map(|u| Arc::new(Upstream::new(u, *breaker, *concurrency)))
                .collect(),
        }
    }

    pub fn hosts(&self) -> &[Arc<Upstream>] {
        &self.hosts
    }

    /// The host for the next request for `model` (if the request names one).
    ///
    /// Candidates are the hosts whose breaker is not open; for a model, only those
    /// that have it installed when any host is known to (otherwise all, so the
    /// upstream's own 404 reaches the client). Among them, reachable hosts first,
    /// then hosts that already have the model loaded (no cold load), then the
    /// fewest outstanding requests; the first listed wins ties. An unreachable host
    /// is still chosen when it is the only candidate, so the client learns the real
    /// cause from the attempt. `None` when every host's breaker is open.
    pub fn pick(&self, model: Option<&str>) -> Option<&Arc<Upstream>> {
        self.candidates(model, None).min_by_key(|h| {
            (
                !h.is_reachable(),
                model.is_some_and(|m| !h.has_loaded(m)),
                h.in_flight(),
            )
        })
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
            h.breaker.state() != State::Open
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
                format!("{} (retry in {}s)", h.base(), retry.as_secs_f64().ceil())
            })
            .collect();
        (hosts.join(", "), soonest)
    }

    /// The best reachable host other than `tried`, for a retry.
    pub fn pick_other(&self, tried: &Arc<Upstream>, model: Option<&str>) -> Option<&Arc<Upstream>> {
        self.candidates(model, Some(tried))
            .filter(|h| h.is_reachable())
            .min_by_key(|h| (model.is_some_and(|m| !h.has_loaded(m)), h.in_flight()))
    }

    /// A reachable host other than `tried` known to have `model` installed: where
    /// a "model not found" answer is retried.
    pub fn pick_with_model(&self, tried: &Arc<Upstream>, model: &str) -> Option<&Arc<Upstream>> {
        self.pick_other(tried, Some(model))
            .filter(|h| h.has_model(model) == Some(true))
    }

    pub fn health(&self) -> Vec<UpstreamHealth> {
        self.hosts.iter().map(|h| h.health()).collect()
    }
}

/// Keeps every host's installed and loaded models fresh from its `/api/tags` and
/// `/api/ps`, each `interval`, until the task is aborted. A host that does not
/// answer keeps its last lists.
pub async fn run_model_refresh(set: Arc<UpstreamSet>, client: reqwest::Client, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let refreshes = set.hosts().iter().map(|host| refresh_models(host, &client));
        futures_util::future::join_all(refreshes).await;
    }
}

async fn refresh_models(host: &Upstream, client: &reqwest::Client) {
    let (Some(installed), Some(loaded)) = (
        model_names(client, &host.target("/api/tags")).await,
        model_names(client, &host.target("/api/ps")).await,
    ) else {
        return;
    };
    host.models.store(Arc::new(HostModels {
        known: true,
        installed,
        loaded,
    }));
}

/// The normalised `model` names of an Ollama model list, `None` on any failure.
async fn model_names(
    client: &reqwest::Client,
    url: &str,
) -> Option<std::collections::HashSet<String>> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let list: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    Some(
        list.get("models")?
            .as_array()?
            .iter()
            .filter_map(|m| m.get("model").or_else(|| m.get("name"))?.as_str())
            .filter_map(|name| crate::cache::key::normalise_model_name(name).ok())
            .collect(),
    )
}

/// Probes every upstream with `HEAD /` each `interval` until the task is aborted.
/// A probe that does not answer within `timeout` marks the host down.
pub async fn run_health_checks(
    set: Arc<UpstreamSet>,
    client: reqwest::Client,
    interval: Duration,
    timeout: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let probes = set.hosts().iter().map(|host| probe(host, &client, timeout));
        futures_util::future::join_all(probes).await;
    }
}

async fn probe(host: &Upstream, client: &reqwest::Client, timeout: Duration) {
    let started = Instant::now();
    let request = client.head(host.target("/")).timeout(timeout).send();
    match request.await {
        Ok(response) if !response.status().is_server_error() => {
            host.mark_up(Some(started.elapsed()));
        }
        Ok(response) => host.mark_down(format!("health check answered {}", response.status())),
        Err(err) if err.is_timeout() => host.mark_down(format!(
            "health check timed out after {}",
            humantime::format_duration(timeout)
        )),
        Err(err) => host.mark_down(crate::proxy::describe(&err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> UpstreamSet {
        let urls: Vec<Url> = (0..n)
            .map(|i| Url::parse(&format!("http://127.0.0.1:{}", 10_000 + i)).expect("url"))
            .collect();
        UpstreamSet::new(
            &urls,
            &BreakerConfig::default(),
            &ConcurrencyConfig::default(),
        )
    }

    #[tokio::test]
    async fn picks_the_least_busy_reachable_host() {
        let set = set(3);
        let _a = set.hosts()[0].begin();
        let _b = set.hosts()[1].begin();
        assert_eq!(
            set.pick(None).expect("a host").base(),
            "http://127.0.0.1:10002"
        );
        set.hosts()[2].mark_down("refused".into());
        assert_eq!(
            set.pick(None).expect("a host").base(),
            "http://127.0.0.1:10000"
        );
    }

    #[tokio::test]
    async fn falls_back_to_an_unreachable_host_when_all_are_down() {
        let set = set(2);
        for host in set.hosts() {
            host.mark_down("refused".into());
        }
        let _busy = set.hosts()[0].begin();
        assert_eq!(
            set.pick(None).expect("a host").base(),
            "http://127.0.0.1:10001"
        );
    }

    #[tokio::test]
    async fn a_retry_goes_to_another_reachable_host_or_nowhere() {
        let set = set(3);
        let first = Arc::clone(set.pick(None).expect("a host"));
        let other = set.pick_other(&first, None).expect("another host");
        assert!(!Arc::ptr_eq(other, &first));
        for host in set.hosts().iter().filter(|h| !Arc::ptr_eq(h, &first)) {
            host.mark_down("refused".into());
        }
        assert!(set.pick_other(&first, None).is_none());
        let single = UpstreamSet::new(
            &[first.url().clone()],
            &BreakerConfig::default(),
            &ConcurrencyConfig::default(),
        );
        let only = single.pick(None).expect("a host");
        assert!(single.pick_other(only, None).is_none());
    }

    #[tokio::test]
    async fn hosts_with_an_open_breaker_are_skipped_and_reported() {
        let config = BreakerConfig {
            failures: std::num::NonZeroU32::MIN,
            open_for: std::time::Duration::from_secs(60),
        };
        let urls = [
            Url::parse("http://127.0.0.1:1").expect("url"),
            Url::parse("http://127.0.0.1:2").expect("url"),
        ];
        let set = UpstreamSet::new(&urls, &config, &ConcurrencyConfig::default());
        for host in set.hosts() {
            host.breaker.admit().expect("closed").failure();
        }
        for _ in 0..100 {
            if set.hosts().iter().all(|h| h.breaker.state() == State::Open) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(set.pick(None).is_none());
        let (named, retry) = set.all_open();
        assert!(
            named.contains("http://127.0.0.1:1 (retry in 60s)"),
            "{named}"
        );
        assert!(retry > std::time::Duration::from_secs(59));
    }

    fn knows(host: &Upstream, installed: &[&str], loaded: &[&str]) {
        host.models.store(Arc::new(HostModels {
            known: true,
            installed: installed.iter().map(|m| (*m).to_owned()).collect(),
            loaded: loaded.iter().map(|m| (*m).to_owned()).collect(),
        }));
    }

    #[tokio::test]
    async fn a_model_goes_to_a_host_that_has_it_loaded_if_possible() {
        let set = set(3);
        let [a, b, c] = [&set.hosts()[0], &set.hosts()[1], &set.hosts()[2]];
        knows(a, &["x:latest"], &[]);
        knows(b, &["x:latest", "y:latest"], &["y:latest"]);
        knows(c, &["y:latest"], &["y:latest"]);
        assert_eq!(
            set.pick(Some("z:latest")).expect("host").base(),
            a.base(),
            "nobody has it: all"
        );
        let _busy = b.begin();
        assert_eq!(set.pick(Some("x:latest")).expect("host").base(), a.base());
        assert_eq!(
            set.pick(Some("y:latest")).expect("host").base(),
            c.base(),
            "loaded, then least busy"
        );
        let _busier = c.begin();
        let _busiest = c.begin();
        assert_eq!(set.pick(Some("y:latest")).expect("host").base(), b.base());
        assert_eq!(
            set.pick_with_model(b, "x:latest").expect("host").base(),
            a.base()
        );
        assert!(set.pick_with_model(a, "z:latest").is_none());
    }

    #[tokio::test]
    async fn in_flight_guard_decrements_on_drop() {
        let set = set(1);
        let host = &set.hosts()[0];
        let guard = host.begin();
        assert_eq!(host.in_flight(), 1);
        drop(guard);
        assert_eq!(host.in_flight(), 0);
    }

    #[tokio::test]
    async fn health_reports_the_last_error_and_latency() {
        let set = set(1);
        let host = &set.hosts()[0];
        host.mark_up(Some(Duration::from_micros(1500)));
        host.mark_down("connection refused".into());
        let health = host.health();
        assert!(!health.reachable);
        assert_eq!(health.last_latency_ms, Some(1.5));
        assert_eq!(health.last_error.as_deref(), Some("connection refused"));
        assert_eq!(health.url, "http://127.0.0.1:10000");
        host.mark_up(None);
        assert_eq!(host.health().last_error, None);
    }
}
