//! The inner request pipeline: what happens to a request Warmline forwards, from
//! the moment the outer stack (`gateway::router`) hands it over to the moment its
//! answer is on its way back.
//!
//! [`serve`] is the whole path in order, one step per line:
//!
//! ```text
//!   request ─▶ record (once, whatever happens)
//!     │
//!     ├─ not a cacheable POST ─────────────────────────────▶ pass through (streamed)
//!     ▼
//!   read the body once (≤ limits.max_body)
//!     ▼
//!   derive: cache plan (key, determinism) + facts (model, stream, keep_alive)
//!     │
//!     ├─ bypass (sampled, disabled, unkeyable) ─▶ pin, mask? ─▶ pass through
//!     ▼
//!   cache lookup ─── hit ─▶ replay the stored answer
//!     ▼
//!   join the flight for the key ── follower ─▶ share the leader's answer
//!     ▼ leader
//!   pin keep_alive, mask a cold start?, drive the exchange in its own task
//!     ▼
//!   exchange: slot (host, model) ─▶ breaker ─▶ send ─▶ failover once ─▶ headers
//!     ▼
//!   respond: stream chunks back as they arrive; store when whole
//! ```
//!
//! The cache outcome (`hit`, `miss`, `coalesced`, `bypass`) is decided in one
//! place, [`Pipeline::settle`], which returns the [`Settled`] token every path must
//! hand back with its response; [`forward`] turns it into the `x-warmline-cache`
//! header. Errors become responses through [`Pipeline::refuse`], which logs and
//! counts them once.
//!
//! The parts, each one concern: [`body`] (reading and limiting request bodies),
//! [`facts`] (what a body says, keep-alive pinning), [`exchange`] (hosts, slots,
//! breaker, failover), [`respond`] (the answer streamed back), [`coalesce`] and
//! [`flight`] (shared exchanges, replay, storing), [`coldstart`] (answering before
//! a model has loaded), [`record`] (metrics and `Server-Timing`), [`client`] (the
//! pooled HTTP client).
//!
//! Failure handling, in the order it can happen:
//! - body larger than `limits.max_body` → 413 (by `Content-Length` up front, or
//!   mid-stream by counting);
//! - upstream refuses or cannot be resolved → 502 naming it, host marked down;
//! - connect takes longer than `timeouts.connect` → 504 naming that timeout;
//! - no response headers within `timeouts.first_byte` → 504 naming that timeout;
//! - with several upstreams, a refused or reset connection, a connect timeout or a
//!   5xx answer is retried once on another reachable host — only before anything
//!   reached the client, within the same `timeouts.first_byte` budget, and only for
//!   bodies held whole (up to `limits.retry_body`); a 404 for a model is retried on
//!   a host that lists the model; other 4xx answers are never retried;
//! - the upstream goes silent mid-stream for `timeouts.idle`, or breaks the
//!   connection: see [`respond`].
//!
//! "Unchanged" is the contract for what passes through: method, path, query,
//! status, headers (minus hop-by-hop ones) and body bytes. A client that goes away
//! cancels its upstream request: the handler future or the response body is
//! dropped, which drops reqwest's request and closes that connection, which is how
//! Ollama learns to stop generating.

pub(crate) mod body;
pub(crate) mod client;
pub(crate) mod coalesce;
pub(crate) mod coldstart;
pub(crate) mod exchange;
pub mod facts;
pub(crate) mod flight;
pub(crate) mod record;
pub(crate) mod respond;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;

use self::body::{OutBody, read_body};
use self::client::build_client;
use self::coalesce::{Flights, Joined};
use self::exchange::{Exchange, send};
use self::facts::{Facts, pin_keep_alive};
use self::flight::{Flight, drive, hit, respond};
use self::record::Finish;
use self::respond::into_client_response;
use crate::cache::{self, Cache, FlightKey, Outcome, Plan};
use crate::config::Config;
use crate::error::{Error, ProxyError};
use crate::metrics::Metrics;
use crate::upstream::UpstreamSet;
use crate::wire::headers::{CACHE_HEADER, SERVER_TIMING};
use crate::wire::route::RouteKind;
use crate::wire::{Flavor, describe};

/// Everything the pipeline needs, shared by all requests; rebuilt on a reload
/// (see [`Pipeline::build`]).
#[derive(Debug)]
pub struct Pipeline {
    pub client: reqwest::Client,
    pub upstreams: Arc<UpstreamSet>,
    pub metrics: Arc<Metrics>,
    /// The response cache, unless `cache.enabled` is off.
    pub cache: Option<Arc<Cache>>,
    /// Notified when a request that changes the installed models went through.
    pub models_changed: Arc<tokio::sync::Notify>,
    /// The warm set: pinning and cold-start masking read it per request.
    pub warmth: Arc<crate::warmth::Warmth>,
    /// The flights in progress, by key: kept across reloads, like the cache.
    pub(crate) flights: Arc<Flights<FlightKey>>,
    pool: crate::config::PoolConfig,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_body: u64,
    pub(crate) max_blob_body: Option<u64>,
    /// Bodies up to this size are held so a failed attempt can be re-sent.
    pub(crate) retry_body: u64,
    /// Longest silence between two chunks of a client's request body.
    pub(crate) body_timeout: Duration,
    /// Whether a failed attempt is retried on another host.
    pub(crate) failover: bool,
    /// Whether generations wait for a slot of their model on their host.
    pub(crate) slots: bool,
}

impl Pipeline {
    /// The pipeline for `config`. Parts of `previous` whose settings did not change are
    /// kept — the connection pool, each upstream host with its health and breaker,
    /// the cache with its entries — so a reload forgets only what it must.
    pub fn build(
        config: &Config,
        metrics: Arc<Metrics>,
        previous: Option<&Pipeline>,
        models_changed: Arc<tokio::sync::Notify>,
        warmth: Arc<crate::warmth::Warmth>,
    ) -> Result<Pipeline, Error> {
        let reuse_client = previous
            .filter(|p| p.pool == config.pool && p.connect_timeout == config.timeouts.connect);
        let client = match reuse_client {
            Some(previous) => previous.client.clone(),
            None => build_client(config, metrics.connect_counter()).map_err(|e| {
                Error::Proxy(ProxyError::Protocol {
                    upstream: "(client)".into(),
                    reason: describe(&e),
                })
            })?,
        };
        let kept_cache = previous
            .and_then(|p| p.cache.as_ref())
            .filter(|cache| config.cache.enabled && *cache.config() == config.cache);
        let cache = match kept_cache {
            Some(cache) => Some(Arc::clone(cache)),
            None if config.cache.enabled => {
                let cache = Cache::new(&config.cache).map_err(|reason| {
                    Error::Config(crate::config::ConfigError::Invalid {
                        field: "cache.redis".into(),
                        message: reason,
                    })
                })?;
                Some(Arc::new(cache))
            }
            None => None,
        };
        // A daemon Warmline supervises runs daemon.num_parallel requests per model.
        let upstreams = UpstreamSet::reusing(
            &config.upstreams,
            &config.breaker,
            &config.concurrency,
            config
                .daemon
                .supervise
                .then_some(config.daemon.num_parallel),
            previous.map(|p| &*p.upstreams),
        );
        Ok(Pipeline {
            client,
            upstreams: Arc::new(upstreams),
            metrics,
            cache,
            models_changed,
            warmth,
            flights: previous.map_or_else(Arc::default, |p| Arc::clone(&p.flights)),
            pool: config.pool.clone(),
            first_byte_timeout: config.timeouts.first_byte,
            idle_timeout: config.timeouts.idle,
            connect_timeout: config.timeouts.connect,
            max_body: config.limits.max_body,
            max_blob_body: config.limits.max_blob_body,
            retry_body: config.limits.retry_body,
            body_timeout: config.timeouts.body,
            failover: config.failover,
            slots: config.concurrency.enabled,
        })
    }
}

/// A response extension: this request went through the pipeline, which recorded
/// it in the metrics (the outer layers count only requests refused before it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded;

/// Proof that a request's cache outcome was decided (by [`Pipeline::settle`]),
/// handed back with its response so [`forward`] can label it.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(crate) struct Settled(Outcome);

/// The fallback handler: serves the request through the pipeline and labels the
/// answer with its cache outcome.
pub async fn forward(pipeline: Arc<Pipeline>, request: Request) -> Response {
    let (Settled(outcome), mut response) = serve(pipeline, request).await;
    let headers = response.headers_mut();
    headers.insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
    response.extensions_mut().insert(Recorded);
    response
}

/// The inner pipeline, in order (see the module docs).
async fn serve(pipeline: Arc<Pipeline>, request: Request) -> (Settled, Response) {
    let p = &pipeline;
    let kind = RouteKind::of(request.uri().path());
    let flavor = Flavor::of(request.uri().path());
    // Recorded exactly once, when `finish` is dropped, whatever path it takes.
    let mut finish = p.begin(kind);
    // Only a POST on a keyable route can share an answer; the rest streams through
    // untouched (blob uploads are never held in memory).
    let route = (request.method() == http::Method::POST)
        .then(|| cache::key_route(kind))
        .flatten();
    let (parts, body) = request.into_parts();
    let Some(route) = route else {
        let settled = p.settle(&mut finish, Outcome::Bypass);
        let exchange = p.exchange(parts, OutBody::Stream(body), kind, None, &finish);
        return (settled, p.pass(exchange, flavor, finish, false).await);
    };
    // The body, read once, whole and bounded: everything below derives from it.
    let body = match read_body(body, &parts.headers, p.max_body, p.body_timeout).await {
        Ok(body) => body,
        Err(err) => {
            let settled = p.settle(&mut finish, Outcome::Bypass);
            return (settled, p.refuse(&err, flavor, finish));
        }
    };
    // What the cache makes of it (key, determinism) and what the upstream side
    // needs (model, streaming, keep_alive).
    let plan = p.plan(route, &parts, &body);
    let (cache, lookup) = match (plan, &p.cache) {
        (Plan::Use(lookup), Some(cache)) => (Arc::clone(cache), lookup),
        (plan, _) => {
            if let Plan::Bypass(reason) = plan {
                tracing::trace!(reason, "cache bypass");
            }
            let facts = Facts::of(kind, &body);
            p.note_model(&finish, facts.model.as_deref());
            let settled = p.settle(&mut finish, Outcome::Bypass);
            let masked = coldstart::masks_cold_start(p, &facts);
            let body = OutBody::Bytes(pin_keep_alive(p, kind, &facts, body));
            let exchange = p.exchange(parts, body, kind, facts.model, &finish);
            return (settled, p.pass(exchange, flavor, finish, masked).await);
        }
    };
    // The model for the request's metrics, as the key read it (a hit never
    // reaches a host).
    p.note_model(&finish, Some(&lookup.model));
    // The lookup, before any work only a miss needs (the body's other facts,
    // picking a host, pinning).
    if lookup.read
        && let Some((replay, age)) = cache.lookup(&lookup).await
    {
        let settled = p.settle(&mut finish, Outcome::Hit);
        let timing = finish.server_timing();
        finish.record(http::StatusCode::OK.as_u16());
        let mut response = hit(replay, age);
        response.headers_mut().insert(SERVER_TIMING, timing);
        return (settled, response);
    }
    // Identical requests in flight share one exchange: the first leads it.
    let joined = p.flights.join(&lookup.flight_key());
    let facts = Facts::of(kind, &body);
    let masked = coldstart::masks_cold_start(p, &facts);
    let (outcome, subscription) = match joined {
        Joined::Leader(publisher, subscription) => {
            let body = OutBody::Bytes(pin_keep_alive(p, kind, &facts, body));
            let model = Some(lookup.model.to_string());
            let mut exchange = p.exchange(parts, body, kind, model, &finish);
            // The flight keeps its own trace: each subscriber reads it.
            exchange.trace = Arc::default();
            let flight = Flight {
                cache,
                lookup,
                publisher,
                flavor,
            };
            tokio::spawn(drive(Arc::clone(p), exchange, flight));
            (Outcome::Miss, subscription)
        }
        Joined::Follower(subscription) => (Outcome::Coalesced, subscription),
    };
    let settled = p.settle(&mut finish, outcome);
    finish.follower = outcome == Outcome::Coalesced;
    if masked {
        return (
            settled,
            coldstart::masked_flight(subscription, flavor, finish),
        );
    }
    (settled, respond(subscription, flavor, finish).await)
}

impl Pipeline {
    /// Starts the record of a request of `kind` (see [`record`]).
    fn begin(&self, kind: RouteKind) -> Finish {
        self.metrics.request_started(kind);
        let changes_models = matches!(
            kind,
            RouteKind::Pull | RouteKind::Create | RouteKind::Copy | RouteKind::Delete
        );
        Finish::new(
            Arc::clone(&self.metrics),
            kind,
            Instant::now(),
            changes_models.then(|| Arc::clone(&self.models_changed)),
        )
    }

    /// What the cache makes of a request: identities never share entries or
    /// flights, so the identity is the key's partition ("" without tokens).
    fn plan(&self, route: cache::KeyRoute, parts: &http::request::Parts, body: &Bytes) -> Plan {
        let Some(cache) = &self.cache else {
            return Plan::Bypass("disabled");
        };
        let identity = parts.extensions.get::<crate::auth::Identity>();
        let partition = identity.map_or("", |identity| &identity.0);
        cache.plan(route, &parts.headers, body, partition)
    }

    /// Names the request's model in its metrics, if a host has it installed.
    fn note_model(&self, finish: &Finish, model: Option<&str>) {
        if let Some(model) = model
            && self.upstreams.is_installed(model)
        {
            finish.trace.update(|t| t.model = Some(Arc::from(model)));
        }
    }

    /// The one place a request's cache outcome is set: in its metrics record, in
    /// the cache's counters, and (through the returned token) in its answer's
    /// `x-warmline-cache` header. With the cache off, only the header says
    /// `bypass`.
    fn settle(&self, finish: &mut Finish, outcome: Outcome) -> Settled {
        if let Some(cache) = &self.cache {
            cache.count(outcome);
            finish.cache = Some(outcome);
        }
        Settled(outcome)
    }

    /// An exchange for the upstream side, writing into the request's trace.
    fn exchange(
        &self,
        parts: http::request::Parts,
        body: OutBody,
        kind: RouteKind,
        model: Option<String>,
        finish: &Finish,
    ) -> Exchange {
        Exchange {
            parts,
            body,
            kind,
            model,
            trace: Arc::clone(&finish.trace),
        }
    }

    /// Sends an exchange no one else shares and streams its answer back; `masked`
    /// answers at once and streams the tokens when the model has loaded.
    async fn pass(
        self: &Arc<Self>,
        exchange: Exchange,
        flavor: Flavor,
        finish: Finish,
        masked: bool,
    ) -> Response {
        if masked {
            let owner = Arc::clone(self);
            let sent = async move { send(&owner, exchange).await };
            return coldstart::masked_response(self, sent, flavor, finish);
        }
        match send(self, exchange).await {
            Ok((upstream, lease)) => into_client_response(self, upstream, flavor, finish, lease),
            Err(err) => self.refuse(&err, flavor, finish),
        }
    }

    /// Logs and counts an error once, renders it for the client and records the
    /// request with its status.
    fn refuse(&self, err: &Error, flavor: Flavor, finish: Finish) -> Response {
        self.report(err);
        let response = err.to_response(flavor);
        finish.record(response.status().as_u16());
        response
    }

    /// Logs and counts an error once: where it becomes an answer (or the end of a
    /// stream already under way).
    fn report(&self, err: &Error) {
        self.metrics.gateway_error(err.kind());
        tracing::warn!(kind = err.kind(), "{err}");
    }
}
