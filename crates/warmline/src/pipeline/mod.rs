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
//!   derive the cache plan (key, determinism, model)
//!     │
//!     ├─ bypass (sampled, disabled, unkeyable) ─▶ pin, mask? ─▶ pass through
//!     ▼
//!   cache lookup ─── hit ─▶ replay the stored answer
//!     ▼
//!   join the flight for the key ── follower ─▶ share the leader's answer
//!     ▼ leader
//!   the body's facts (stream, keep_alive); pin keep_alive, mask a cold start?,
//!   drive the exchange in its own task
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
pub mod pool;
pub(crate) mod record;
pub(crate) mod respond;
mod state;
pub(crate) mod translate;

pub use self::state::Pipeline;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;

use self::body::{OutBody, read_body};
use self::coalesce::Joined;
use self::exchange::{Exchange, send};
use self::facts::{Facts, pin_keep_alive};
use self::flight::{Flight, drive, hit, respond};
use self::record::Finish;
use self::respond::into_client_response;
use crate::cache::{self, Outcome, Plan};
use crate::error::Error;
use crate::wire::Flavor;
use crate::wire::headers::{CACHE_HEADER, CACHE_STATUS, SERVER_TIMING};
use crate::wire::route::RouteKind;

/// Proof that a request's cache outcome was decided (by [`Pipeline::settle`]),
/// handed back with its response so [`forward`] can label it.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(crate) struct Settled(Outcome);

/// The fallback handler: serves the request through the pipeline and labels the
/// answer with its cache outcome.
pub async fn forward(pipeline: Arc<Pipeline>, request: Request) -> Response {
    // Not boxed here: the gateway's front boxes the whole request's future
    // once (`gateway::router::Front`), and the exchange's future, most of this
    // one's size, is boxed where it is awaited.
    let (Settled(outcome), mut response) = serve(pipeline, request).await;
    let headers = response.headers_mut();
    headers.insert(CACHE_HEADER, HeaderValue::from_static(outcome.as_str()));
    headers.insert(
        CACHE_STATUS,
        HeaderValue::from_static(outcome.cache_status()),
    );
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
        // Ollama's lists show the models OpenAI-compatible engines serve too.
        let listed = matches!(kind, RouteKind::Tags | RouteKind::Ps)
            && translate::listing::has_engines(&p.upstreams);
        if listed && p.upstreams.engines_only() {
            finish.record(http::StatusCode::OK.as_u16());
            let list = translate::listing::answer(None, &p.upstreams, kind == RouteKind::Ps);
            return (settled, list.await);
        }
        let exchange = p.exchange(parts, OutBody::Stream(body), kind, None, &finish);
        // Boxed (both calls): the exchange's future is most of this function's,
        // which is boxed itself and moved as it is; a hit need not copy it.
        let answer = Box::pin(p.pass(exchange, flavor, finish, false)).await;
        if listed {
            let list =
                translate::listing::answer(Some(answer), &p.upstreams, kind == RouteKind::Ps);
            return (settled, list.await);
        }
        return (settled, answer);
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
            // The body's facts as the cache read them, else read here.
            let read = match plan {
                Plan::Bypass(reason, read) => {
                    tracing::trace!(reason, "cache bypass");
                    read
                }
                Plan::Use(_) => None,
            };
            let facts = read.map_or_else(|| Facts::of(kind, &body), Facts::from);
            p.note_model(&finish, facts.model.as_ref());
            let settled = p.settle(&mut finish, Outcome::Bypass);
            let masked = coldstart::masks_cold_start(p, &facts);
            let body = OutBody::Bytes(pin_keep_alive(p, kind, &facts, body));
            let exchange = p.exchange(parts, body, kind, facts.model, &finish);
            return (
                settled,
                Box::pin(p.pass(exchange, flavor, finish, masked)).await,
            );
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
    let facts = Facts::of_lookup(&lookup);
    let masked = coldstart::masks_cold_start(p, &facts);
    let (outcome, subscription) = match joined {
        Joined::Leader(publisher, subscription) => {
            let body = OutBody::Bytes(pin_keep_alive(p, kind, &facts, body));
            let model = Some(Arc::clone(&lookup.model));
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
            return Plan::Bypass("disabled", None);
        };
        let identity = parts.extensions.get::<crate::auth::Identity>();
        let partition = identity.map_or("", |identity| &identity.0);
        cache.plan(route, &parts.headers, body, partition)
    }

    /// Names the request's model in its metrics, if a host has it installed.
    fn note_model(&self, finish: &Finish, model: Option<&Arc<str>>) {
        if let Some(model) = model
            && self.upstreams.is_installed(model)
        {
            finish.trace.update(|t| t.model = Some(Arc::clone(model)));
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
        model: Option<Arc<str>>,
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
}
