//! The response cache: which requests may be answered from memory, where answers
//! are kept, and for how long.
//!
//! **What is cached** (see [`Cache::plan`]): by default only deterministic work —
//! generations with temperature 0 or an explicit seed, embeddings, `/api/show`.
//! Ollama's default temperature is 0.8 (1.0 on `/v1`), so a request that omits it is
//! a random draw and is not cached unless `cache.sampled` opts in. Load-only and
//! unload requests, errors, and aborted or incomplete streams are never stored.
//! `/api/ps`, `/api/pull`, `/api/create`, `/api/delete`, `/api/copy` and every
//! other route are never cached (they are not [`KeyRoute`]s).
//!
//! **Keys**: a canonical form of every output-affecting field, hashed (see
//! [`key`]); the model's digest from `/api/tags` is part of it, so a re-pulled
//! model never serves old entries, and a model whose digest is not known yet is
//! not cached at all. Entries are stored per [`StoreKey`]: the generation identity
//! plus the route (native or OpenAI shape) and, on `/v1`, the fields that shape
//! the answer's bytes (stream flag, `include_usage`, `encoding_format`). A native
//! generate/chat stream also answers the same request with `"stream": false`, by
//! assembling it ([`entry`]); a whole answer never poses as a stream (Ollama sends
//! one chunk per token), so a stream request after a whole one goes upstream once
//! and its stream replaces the whole answer.
//!
//! **Tiers**: moka in process, bounded by a byte budget (a weigher counts each
//! entry's payload plus its overhead) with a per-entry TTL by kind; optionally
//! Redis behind it ([`redis`]), shared by several gateways.
//!
//! **Per request**: `Cache-Control: no-cache` skips the read (the answer is fetched
//! and stored afresh), `no-store` bypasses the cache entirely, `max-age=N` accepts
//! only entries younger than N seconds.

pub mod entry;
pub mod key;
pub mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::config::CacheConfig;
use crate::wire::route::RouteKind;
use entry::{Entry, Native, Replay};
pub use key::{CacheKey, Canonical, KeyRoute};
use redis::RedisTier;

/// Where an answer is stored: the generation identity and the shape of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreKey {
    pub key: CacheKey,
    pub route: KeyRoute,
    /// Answer-shaping fields outside the key; see [`response_variant`].
    pub variant: u8,
}

impl StoreKey {
    fn redis_key(&self) -> String {
        format!("{}:{:?}:{}", self.key.to_hex(), self.route, self.variant)
    }
}

/// Requests that may share one upstream exchange: the same stored answer, the
/// same stream flag, and (for requests that must not be shared) a unique nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlightKey {
    pub store: StoreKey,
    pub stream: bool,
    pub nonce: u64,
}

/// What to do with one request.
#[derive(Debug)]
pub enum Plan {
    /// Forward it untouched; the reason is for logs and metrics. The body's
    /// facts come along when the cache could read them.
    Bypass(&'static str, Option<Read>),
    /// Look it up, and store the answer.
    Use(Lookup),
}

/// What the cache read of a body that the upstream side needs too, so that the
/// body is parsed once: the model (normalised), whether the answer streams,
/// whether the request sets its own `keep_alive`, whether it only loads.
#[derive(Debug, Clone)]
pub struct Read {
    pub model: Arc<str>,
    pub stream: bool,
    pub keep_alive: bool,
    pub load_only: bool,
}

/// A cacheable request, resolved.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub store: StoreKey,
    pub stream: bool,
    pub model: Arc<str>,
    /// The request sets its own `keep_alive`.
    pub keep_alive: bool,
    pub ttl: Duration,
    /// Whether to answer from the cache (`Cache-Control: no-cache` says no).
    pub read: bool,
    /// Oldest acceptable entry (`Cache-Control: max-age`).
    pub max_age: Option<Duration>,
    /// Whether identical requests in flight may share one upstream exchange.
    pub coalesce: bool,
    pub native: Option<Native>,
}

impl Lookup {
    pub fn flight_key(&self) -> FlightKey {
        static NONCE: AtomicU64 = AtomicU64::new(1);
        FlightKey {
            store: self.store,
            stream: self.stream,
            nonce: if self.coalesce {
                0
            } else {
                NONCE.fetch_add(1, Relaxed)
            },
        }
    }
}

/// The route kinds the cache knows how to key.
pub fn key_route(kind: RouteKind) -> Option<KeyRoute> {
    Some(match kind {
        RouteKind::Generate => KeyRoute::Generate,
        RouteKind::Chat => KeyRoute::Chat,
        RouteKind::Embed => KeyRoute::Embed,
        RouteKind::Embeddings => KeyRoute::Embeddings,
        RouteKind::Show => KeyRoute::Show,
        RouteKind::OpenAiChat => KeyRoute::OpenAiChat,
        RouteKind::OpenAiCompletions => KeyRoute::OpenAiCompletions,
        RouteKind::OpenAiEmbeddings => KeyRoute::OpenAiEmbeddings,
        _ => return None,
    })
}

/// `Cache-Control` directives of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Control {
    pub no_cache: bool,
    pub no_store: bool,
    pub max_age: Option<u64>,
}

impl Control {
    pub fn of(headers: &HeaderMap) -> Control {
        let mut control = Control::default();
        // One pass over the few headers a request has, not two lookups.
        for (name, value) in headers {
            if *name == http::header::CACHE_CONTROL {
                let Ok(value) = value.to_str() else { continue };
                for directive in value.split(',').map(str::trim) {
                    let lower = directive.to_ascii_lowercase();
                    match lower.as_str() {
                        "no-cache" => control.no_cache = true,
                        "no-store" => control.no_store = true,
                        _ => {
                            if let Some(age) = lower.strip_prefix("max-age=") {
                                control.max_age = age.trim_matches('"').parse().ok();
                            }
                        }
                    }
                }
            } else if *name == http::header::PRAGMA
                && value.as_bytes().eq_ignore_ascii_case(b"no-cache")
            {
                control.no_cache = true;
            }
        }
        control
    }
}

/// Outcome counters, by the value of `x-warmline-cache`.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    bypass: AtomicU64,
    stores: AtomicU64,
    rejected_stores: AtomicU64,
}

/// Canonical keys of recently seen request bodies, by their exact bytes.
///
/// A repeated request (the case the cache exists for) is usually byte-identical to
/// an earlier one, so its canonical key is remembered: a lookup is one hash of the
/// body and one comparison instead of parsing, canonicalising and BLAKE3-hashing it
/// again (about a tenth of a cache hit's CPU time). Entries are tagged with the
/// digest index's generation, so a re-pulled model invalidates them. Bounded: only
/// bodies up to [`MEMO_MAX_BODY`] bytes, and the table is cleared when it reaches
/// [`MEMO_CAPACITY`] entries.
#[derive(Debug, Default)]
struct Memo {
    map: std::sync::Mutex<HashMap<(KeyRoute, Bytes), Memoized, foldhash::fast::RandomState>>,
}

#[derive(Debug, Clone)]
struct Memoized {
    generation: u64,
    partition: Box<str>,
    resolved: Resolved,
}

/// What the cache needs of a [`Canonical`] (not the canonical text itself).
#[derive(Debug, Clone)]
struct Resolved {
    key: CacheKey,
    model: Arc<str>,
    stream: bool,
    deterministic: bool,
    load_only: bool,
    keep_alive: bool,
}

impl Resolved {
    fn read(&self) -> Read {
        Read {
            model: Arc::clone(&self.model),
            stream: self.stream,
            keep_alive: self.keep_alive,
            load_only: self.load_only,
        }
    }
}

impl From<&Canonical> for Resolved {
    fn from(c: &Canonical) -> Resolved {
        Resolved {
            key: c.key,
            model: c.model.as_str().into(),
            stream: c.stream,
            deterministic: c.deterministic,
            load_only: c.load_only,
            keep_alive: c.keep_alive,
        }
    }
}

const MEMO_MAX_BODY: usize = 16 * 1024;
const MEMO_CAPACITY: usize = 4096;

impl Memo {
    fn get(
        &self,
        route: KeyRoute,
        body: &Bytes,
        partition: &str,
        generation: u64,
    ) -> Option<Resolved> {
        let map = self.map.lock().ok()?;
        let found = map.get(&(route, body.clone()))?;
        (found.generation == generation && &*found.partition == partition)
            .then(|| found.resolved.clone())
    }

    fn put(
        &self,
        route: KeyRoute,
        body: &Bytes,
        partition: &str,
        generation: u64,
        resolved: &Resolved,
    ) {
        if body.len() > MEMO_MAX_BODY {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MEMO_CAPACITY {
                map.clear();
            }
            map.insert(
                (route, body.clone()),
                Memoized {
                    generation,
                    partition: partition.into(),
                    resolved: resolved.clone(),
                },
            );
        }
    }
}

/// The cache (both tiers), the in-flight table and the model digests.
pub struct Cache {
    /// Keyed by a BLAKE3 digest, which no client can steer: a fast hasher is
    /// enough (moka's default is SipHash).
    store: moka::sync::Cache<StoreKey, Arc<Entry>, foldhash::fast::RandomState>,
    digests: ArcSwap<HashMap<String, String>>,
    /// Bumped whenever `digests` changes (invalidates the memo).
    generation: AtomicU64,
    memo: Memo,
    redis: Option<Arc<RedisTier>>,
    config: CacheConfig,
    counters: Counters,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.store.entry_count())
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

/// A single entry may use at most this share of the budget: one huge answer must
/// not evict everything else.
const MAX_ENTRY_SHARE: u64 = 8;

/// Per-entry TTL for moka.
struct EntryTtl;

impl moka::Expiry<StoreKey, Arc<Entry>> for EntryTtl {
    fn expire_after_create(
        &self,
        _: &StoreKey,
        entry: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl.saturating_sub(entry.age()))
    }
}

impl Cache {
    pub fn new(config: &CacheConfig) -> Result<Cache, String> {
        let store = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_: &StoreKey, entry: &Arc<Entry>| {
                u32::try_from(entry.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(EntryTtl)
            .support_invalidation_closures()
            .build_with_hasher(foldhash::fast::RandomState::default());
        let redis = match &config.redis {
            Some(url) => Some(Arc::new(RedisTier::new(url, config.redis_timeout)?)),
            None => None,
        };
        Ok(Cache {
            store,
            digests: ArcSwap::from_pointee(HashMap::new()),
            generation: AtomicU64::new(0),
            memo: Memo::default(),
            redis,
            config: config.clone(),
            counters: Counters::default(),
        })
    }

    /// The settings this cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Replaces the model → digest index (from the upstreams' `/api/tags`).
    pub fn set_digests(&self, digests: HashMap<String, String>) {
        let changed = **self.digests.load() != digests;
        if changed {
            self.digests.store(Arc::new(digests));
            self.generation.fetch_add(1, Relaxed);
        }
    }

    /// Decides how to treat a request to `route` with `body`.
    pub fn plan(
        &self,
        route: KeyRoute,
        headers: &HeaderMap,
        body: &Bytes,
        partition: &str,
    ) -> Plan {
        let control = Control::of(headers);
        if control.no_store {
            return Plan::Bypass("no_store", None);
        }
        let generation = self.generation.load(Relaxed);
        let canonical = match self.memo.get(route, body, partition, generation) {
            Some(canonical) => canonical,
            None => {
                let digests = self.digests.load();
                match key::canonical(route, body, partition, |model| digests.get(model).cloned()) {
                    Ok(Some(canonical)) => {
                        let resolved = Resolved::from(&canonical);
                        self.memo.put(route, body, partition, generation, &resolved);
                        resolved
                    }
                    Ok(None) => return Plan::Bypass("unknown_model", None),
                    Err(err) => {
                        tracing::debug!("not caching: {err}");
                        return Plan::Bypass("unparsable", None);
                    }
                }
            }
        };
        if canonical.load_only {
            return Plan::Bypass("load_only", Some(canonical.read()));
        }
        if !canonical.deterministic && !self.config.sampled {
            return Plan::Bypass("sampled", Some(canonical.read()));
        }
        let (ttl, native) = match route {
            KeyRoute::Generate => (self.config.ttl_generation, Some(Native::Generate)),
            KeyRoute::Chat => (self.config.ttl_generation, Some(Native::Chat)),
            KeyRoute::OpenAiChat | KeyRoute::OpenAiCompletions => {
                (self.config.ttl_generation, None)
            }
            KeyRoute::Embed | KeyRoute::Embeddings | KeyRoute::OpenAiEmbeddings => {
                (self.config.ttl_embedding, None)
            }
            KeyRoute::Show => (self.config.ttl_show, None),
        };
        let variant = response_variant(route, canonical.stream, body);
        Plan::Use(Lookup {
            store: StoreKey {
                key: canonical.key,
                route,
                variant,
            },
            stream: canonical.stream,
            keep_alive: canonical.keep_alive,
            model: canonical.model,
            ttl,
            read: !control.no_cache,
            max_age: control.max_age.map(Duration::from_secs),
            coalesce: canonical.deterministic || self.config.coalesce_sampled,
            native,
        })
    }

    /// Finds an answer for `lookup` in memory, then in Redis.
    pub async fn lookup(&self, lookup: &Lookup) -> Option<(Replay, Duration)> {
        let fresh = |age: Duration| lookup.max_age.is_none_or(|max| age <= max);
        if let Some(entry) = self.store.get(&lookup.store) {
            let age = entry.age();
            if fresh(age)
                && let Some(replay) = entry.replay(lookup.stream, lookup.native)
            {
                return Some((replay, age));
            }
        }
        let redis = self.redis.as_ref()?;
        let entry = redis.get(&lookup.store.redis_key()).await?;
        let age = entry.age();
        if !fresh(age) {
            return None;
        }
        let replay = entry.replay(lookup.stream, lookup.native)?;
        self.store.insert(lookup.store, Arc::new(entry));
        Some((replay, age))
    }

    /// Stores a complete, successful answer.
    pub async fn insert(
        &self,
        lookup: &Lookup,
        content_type: http::HeaderValue,
        chunks: Vec<Bytes>,
    ) {
        let entry = Entry {
            model: lookup.model.to_string(),
            stream: lookup.stream,
            content_type,
            chunks,
            stored_at: SystemTime::now(),
            ttl: lookup.ttl,
        };
        if entry.weight() > self.config.max_bytes / MAX_ENTRY_SHARE {
            self.counters.rejected_stores.fetch_add(1, Relaxed);
            return;
        }
        self.counters.stores.fetch_add(1, Relaxed);
        if let Some(redis) = &self.redis {
            redis.put(lookup.store.redis_key(), &entry);
        }
        self.store.insert(lookup.store, Arc::new(entry));
    }

    /// Counts one response by its `x-warmline-cache` value.
    pub fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Hit => &self.counters.hits,
            Outcome::Miss => &self.counters.misses,
            Outcome::Coalesced => &self.counters.coalesced,
            Outcome::Bypass => &self.counters.bypass,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Removes every entry, or one model's, from both tiers.
    pub async fn purge(&self, model: Option<&str>) -> Purged {
        let model = model.map(|m| key::normalise_model_name(m).unwrap_or_else(|_| m.to_owned()));
        let before = self.store.entry_count();
        match &model {
            Some(model) => {
                let model = model.clone();
                if let Err(err) = self
                    .store
                    .invalidate_entries_if(move |_, entry| entry.model == model)
                {
                    tracing::warn!("cannot purge by model: {err}");
                }
            }
            None => self.store.invalidate_all(),
        }
        self.store.run_pending_tasks();
        let removed = before.saturating_sub(self.store.entry_count());
        let redis_removed = match &self.redis {
            Some(redis) => redis.purge(model.as_deref()).await.ok(),
            None => None,
        };
        Purged {
            model,
            removed,
            redis_removed,
        }
    }

    /// Counters and sizes for `/warmline/cache`.
    pub async fn stats(&self) -> CacheStats {
        self.store.run_pending_tasks();
        let c = &self.counters;
        CacheStats {
            enabled: true,
            entries: self.store.entry_count(),
            bytes: self.store.weighted_size(),
            max_bytes: self.config.max_bytes,
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            coalesced: c.coalesced.load(Relaxed),
            bypass: c.bypass.load(Relaxed),
            stores: c.stores.load(Relaxed),
            // Flights belong to the pipeline, which fills this in.
            in_flight: 0,
            redis: self.redis.as_ref().map(|r| RedisStats {
                url: r.url().to_owned(),
                up: !r.is_down(),
                hits: r.hits.load(Relaxed),
                misses: r.misses.load(Relaxed),
                errors: r.errors.load(Relaxed),
            }),
        }
    }

    /// Counters for the Prometheus exposition: (outcome, count).
    pub fn outcome_counts(&self) -> [(&'static str, u64); 4] {
        let c = &self.counters;
        [
            ("hit", c.hits.load(Relaxed)),
            ("miss", c.misses.load(Relaxed)),
            ("coalesced", c.coalesced.load(Relaxed)),
            ("bypass", c.bypass.load(Relaxed)),
        ]
    }

    /// Bytes held and entries, without waiting for pending maintenance.
    pub fn size(&self) -> (u64, u64) {
        (self.store.weighted_size(), self.store.entry_count())
    }

    /// Redis read failures so far (0 without Redis).
    pub fn redis_errors(&self) -> u64 {
        self.redis.as_ref().map_or(0, |r| r.errors.load(Relaxed))
    }
}

/// The value of `x-warmline-cache` on a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    Coalesced,
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Bypass => "bypass",
        }
    }

    /// The outcome as the standard `Cache-Status` value (RFC 9211), Warmline
    /// being the cache: a hit, or forwarded because nothing was stored
    /// (`uri-miss`; `collapsed` when it joined a request already in flight) or
    /// because the cache was not to be used (`bypass`).
    pub fn cache_status(self) -> &'static str {
        match self {
            Outcome::Hit => "warmline; hit",
            Outcome::Miss => "warmline; fwd=uri-miss",
            Outcome::Coalesced => "warmline; fwd=uri-miss; collapsed",
            Outcome::Bypass => "warmline; fwd=bypass",
        }
    }
}

/// Appends the cache's series to a Prometheus exposition (zeros when disabled, so
/// the series always exist).
pub fn render_prometheus(cache: Option<&Cache>, out: &mut String) {
    use std::fmt::Write as _;
    let counts = cache.map_or(
        [("hit", 0), ("miss", 0), ("coalesced", 0), ("bypass", 0)],
        Cache::outcome_counts,
    );
    let (bytes, entries) = cache.map_or((0, 0), Cache::size);
    let _ = writeln!(
        out,
        "# HELP warmline_cache_requests_total Cacheable-route responses by cache outcome."
    );
    let _ = writeln!(out, "# TYPE warmline_cache_requests_total counter");
    for (outcome, count) in counts {
        let _ = writeln!(
            out,
            "warmline_cache_requests_total{{outcome=\"{outcome}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP warmline_cache_bytes Bytes held by the in-process cache."
    );
    let _ = writeln!(out, "# TYPE warmline_cache_bytes gauge");
    let _ = writeln!(out, "warmline_cache_bytes {bytes}");
    let _ = writeln!(
        out,
        "# HELP warmline_cache_entries Entries in the in-process cache."
    );
    let _ = writeln!(out, "# TYPE warmline_cache_entries gauge");
    let _ = writeln!(out, "warmline_cache_entries {entries}");
    let _ = writeln!(
        out,
        "# HELP warmline_cache_redis_errors_total Redis operations that failed or timed out (requests went on without it)."
    );
    let _ = writeln!(out, "# TYPE warmline_cache_redis_errors_total counter");
    let _ = writeln!(
        out,
        "warmline_cache_redis_errors_total {}",
        cache.map_or(0, Cache::redis_errors)
    );
}

/// Request fields that change the bytes of a `/v1` answer without changing the
/// generation (so they are not in the key): the stream flag and
/// `stream_options.include_usage` on completions, `encoding_format` on embeddings.
/// Native answers have none: their stream and whole forms convert.
fn response_variant(route: KeyRoute, stream: bool, body: &[u8]) -> u8 {
    if !route.is_openai() {
        return 0;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    match route {
        KeyRoute::OpenAiEmbeddings => {
            u8::from(value.get("encoding_format").and_then(|f| f.as_str()) == Some("base64"))
        }
        _ => {
            let usage = value
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            u8::from(stream) | (u8::from(usage) << 1)
        }
    }
}

/// The JSON served at `GET /warmline/cache`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheStats {
    pub enabled: bool,
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub bypass: u64,
    pub stores: u64,
    /// Upstream exchanges currently shared by coalescing.
    pub in_flight: u64,
    pub redis: Option<RedisStats>,
}

impl CacheStats {
    /// What a gateway with the cache turned off reports.
    pub fn disabled() -> CacheStats {
        CacheStats {
            enabled: false,
            entries: 0,
            bytes: 0,
            max_bytes: 0,
            hits: 0,
            misses: 0,
            coalesced: 0,
            bypass: 0,
            stores: 0,
            in_flight: 0,
            redis: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RedisStats {
    pub url: String,
    pub up: bool,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
}

/// The JSON answered by `DELETE /warmline/cache`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Purged {
    pub model: Option<String>,
    pub removed: u64,
    pub redis_removed: Option<u64>,
}

#[cfg(test)]
mod tests;
