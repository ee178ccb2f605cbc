//! Admission: which requests may go upstream now, which wait, and which are told to
//! come back later.
//!
//! Two limiters, each refusing early and cheaply so that work Ollama cannot take is
//! turned away before it has cost anything:
//!
//! - [`ClientLimiter`]: a token bucket per client IP (default 10 requests/s, the
//!   per-IP rate of the latency report's nginx plan, `limit_req_zone ... rate=10r/s`,
//!   with bursts of 20). Refusal:
//!   [`RateLimited`], a 429.
//! - [`Slots`], one per upstream host: at most `per_model` requests per model in
//!   flight, behind them a bounded FIFO queue with a deadline. Refusal: [`Rejected`],
//!   a 503.
//!
//! # Where they sit in the request path
//!
//! ```text
//!   client
//!     │
//!     ▼
//!   origin check + CORS
//!     │
//!     ▼
//!   ClientLimiter::check(peer IP)   429 before the body is read: the cheapest
//!     │                             refusal comes first (one map lookup)
//!     ▼
//!   proxy: model, cache, coalescing   cache hits and coalesced joiners stop here:
//!     │                               they cost Ollama nothing and must not queue
//!     ▼
//!   balancer picks a host
//!     │
//!     ▼
//!   Slots::acquire(model) on that host   503 when the model's queue is full or the
//!     │                                  wait passes max_wait; the Slot moves into
//!     ▼                                  the response body and is released when the
//!   Ollama                               last chunk is sent or the client leaves
//! ```
//!
//! # Why Warmline holds the queue
//!
//! Ollama runs `OLLAMA_NUM_PARALLEL` requests per loaded model and queues the rest,
//! but `OLLAMA_MAX_QUEUE` is not enforced once the model is loaded (ollama issue
//! #7758, a known trap of Ollama deployments): requests pile up without bound, each waiting
//! behind every generation queued before it, and the client learns nothing until its
//! own timeout fires. [`Slots`] keeps that queue in Warmline instead. Set `per_model`
//! to the host's `OLLAMA_NUM_PARALLEL` (Ollama's default is 1) and Ollama never has to
//! queue: Warmline forwards that many per model, keeps at most `queue` more waiting in
//! arrival order, and answers the rest at once with 503 and `Retry-After`. A request
//! whose client gives up while queued never reaches Ollama at all. A lower `per_model`
//! than the host's only costs throughput; a higher one lets Ollama queue the excess
//! again. Loading and swapping between models stays Ollama's scheduler's business.
//!
//! # Edges, exactly
//!
//! [`Slots`]:
//! - A model with a free slot and nobody queued is admitted at once with no timer and
//!   no channel: one short mutex section, and [`Slot::waited`] is zero.
//! - Newcomers never overtake: a free slot is handed to the oldest waiter in the same
//!   mutex section that frees it, so a free slot and a non-empty queue never coexist.
//! - With `queue` requests already waiting for a model, the next one gets
//!   [`Rejected::QueueFull`] immediately; `queue = 0` means never wait.
//! - A waiter still queued `max_wait` after it joined gets [`Rejected::TimedOut`]
//!   (tokio timers have millisecond resolution; `waited` is the measured wait).
//! - A waiter whose future is dropped (its client disconnected) leaves the queue on
//!   drop; if a slot was handed to it in that same instant, or as its deadline
//!   passed, the slot goes on to the next waiter. No slot is ever lost.
//! - [`Slots::set_per_model`] applies from the next grant: raising it admits queued
//!   waiters at once; lowering it revokes nothing, it only holds back grants until
//!   fewer than the new limit are in use.
//! - A host whose parallelism is learned (see `parallelism`) has a limit per
//!   model, and may get one request above it — a probe, at most one out at a
//!   time, only while requests wait and the learner allows — whose answer says
//!   whether the host had room. Each slot remembers how many were in flight when
//!   it was granted; its answer's durations are handed back ([`Slot::learn`]).
//! - A model's entry exists only while something is in use or queued for it, so
//!   arbitrary model names cost memory only as long as their requests live.
//!
//! [`ClientLimiter`]:
//! - A client may send `burst` requests at once, then one every `1/per_second`; a
//!   refusal carries the time until its next request would pass (100 ms at the
//!   defaults). Refused requests do not drain the bucket further.
//! - IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, as a dual-stack socket reports them)
//!   count as their IPv4 address: `::ffff:127.0.0.1` is loopback, and shares the
//!   bucket of `127.0.0.1` when loopback is limited.
//! - IPv6 clients are keyed by their `/64` (`ipv6_prefix`): one host usually owns a
//!   whole /64 and rotates addresses inside it, so a per-address key would be both
//!   trivial to evade and a way to fill memory with buckets.
//! - Loopback clients (the user's own tools) are exempt unless `exempt_loopback` is
//!   off.
//! - A bucket is kept until [`ClientLimiter::housekeep`] finds it full again. The
//!   gateway's background task calls that periodically (every 60 s is plenty), so
//!   memory is bounded by the distinct clients of one interval: a bucket is a
//!   32-byte map slot, 37 to 75 bytes with the map's control bytes and spare
//!   capacity (one million clients a minute: under 75 MB).
//!
//! Both limiters read tokio's clock, so their tests run on paused time.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::Concurrency;
use crate::parallelism::{Learner, Source};

/// What a 503 from [`Slots`] suggests as `Retry-After`. The bounded queue, not this
/// hint, is what protects Ollama; one second (the header's resolution) lets a client
/// come back as soon as a place may have opened, and clients that retry with backoff
/// spread themselves out.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Limits for one host's [`Slots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// Where `parallel` came from; [`Source::Learned`] learns it per model (see
    /// `parallelism`), starting from `parallel`.
    pub source: Source,
    /// Requests the host runs at once per model (its `OLLAMA_NUM_PARALLEL`); shown
    /// in health, while `per_model` is what is enforced.
    pub parallel: NonZeroUsize,
    /// Requests in flight per model at the host. Warmline's config sets it to the
    /// host's `OLLAMA_NUM_PARALLEL` (its `parallel`, else `concurrency.per_model`,
    /// default 1, Ollama's default) plus `concurrency.staged` (default 0): with
    /// staging, a few requests wait at the host itself, bounded by `staged`.
    pub per_model: NonZeroUsize,
    /// Requests that may wait per model once all its slots are taken (default 64).
    pub queue: usize,
    /// How long a request may wait in the queue before it is refused (default 30 s).
    pub max_wait: Duration,
}

impl ConcurrencyConfig {
    /// The slot settings (from `[concurrency]`) for a host whose `OLLAMA_NUM_PARALLEL` is `stated` (its
    /// `parallel`), else `per_model`, else `supervised` (the daemon Warmline starts
    /// there), else learned from its answers starting at Ollama's default, 1.
    pub fn for_host(
        settings: &Concurrency,
        stated: Option<NonZeroUsize>,
        supervised: Option<NonZeroUsize>,
    ) -> ConcurrencyConfig {
        let (parallel, source) = match (stated.or(settings.per_model), supervised) {
            (Some(n), _) => (n, Source::Stated),
            (None, Some(n)) => (n, Source::Supervised),
            (None, None) => (NonZeroUsize::MIN, Source::Learned),
        };
        ConcurrencyConfig {
            source,
            parallel,
            per_model: parallel.saturating_add(settings.staged),
            queue: settings.queue,
            max_wait: settings.max_wait,
        }
    }
}

impl Default for ConcurrencyConfig {
    fn default() -> ConcurrencyConfig {
        ConcurrencyConfig {
            source: Source::Stated,
            parallel: NonZeroUsize::MIN,
            per_model: NonZeroUsize::MIN,
            queue: 64,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// One upstream host's concurrency limit per model, with a bounded FIFO queue.
///
/// Cloning is cheap and shares the same slots.
#[derive(Clone)]
pub struct Slots {
    shared: Arc<Shared>,
}

struct Shared {
    /// As made (for telling whether a reload changed anything).
    configured: ConcurrencyConfig,
    queue: usize,
    max_wait: Duration,
    state: Mutex<State>,
}

struct State {
    /// The fixed per-model limit (parallel + staged), unless learning.
    per_model: NonZeroUsize,
    /// The host's parallelism as known, and where it came from.
    parallel: NonZeroUsize,
    source: Source,
    staged: usize,
    /// Per model, while `source` is [`Source::Learned`].
    learners: HashMap<Arc<str>, Learner, foldhash::fast::RandomState>,
    next_ticket: u64,
    models: HashMap<Arc<str>, Model, foldhash::fast::RandomState>,
}

/// The most models whose learned limits are kept per host; beyond it, those
/// with nothing in flight are forgotten (arbitrary model names cost nothing).
const MAX_LEARNERS: usize = 256;

/// One model's slots. Invariant: it is in the map iff it is not idle, and while
/// `waiters` is not empty, `in_use >= limit`.
struct Model {
    name: Arc<str>,
    in_use: usize,
    /// A request above the learned limit is out (see `parallelism`).
    probe: bool,
    waiters: VecDeque<Waiter>,
}

struct Waiter {
    ticket: u64,
    grant: oneshot::Sender<Grant>,
}

/// How a slot was granted: as the `k`-th in flight, and whether as a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    k: usize,
    probe: bool,
}

/// A model's limit now, and whether a probe above it may go.
#[derive(Debug, Clone, Copy)]
struct Limit {
    slots: usize,
    may_probe: bool,
}

/// What [`Slots::acquire`] decided under the lock.
enum Admission {
    Granted(Arc<str>, Grant),
    Full(usize),
    Queued(Arc<str>, u64, oneshot::Receiver<Grant>),
}

impl Model {
    fn admit(&mut self, limit: Limit, queue: usize, next_ticket: &mut u64) -> Admission {
        if self.in_use < limit.slots && self.waiters.is_empty() {
            self.in_use += 1;
            let grant = Grant {
                k: self.in_use,
                probe: false,
            };
            return Admission::Granted(self.name.clone(), grant);
        }
        if limit.may_probe && !self.probe && self.waiters.is_empty() && self.in_use == limit.slots {
            self.in_use += 1;
            self.probe = true;
            let grant = Grant {
                k: self.in_use,
                probe: true,
            };
            return Admission::Granted(self.name.clone(), grant);
        }
        if self.waiters.len() >= queue {
            return Admission::Full(self.waiters.len());
        }
        let (grant, granted) = oneshot::channel();
        let ticket = *next_ticket;
        *next_ticket += 1;
        self.waiters.push_back(Waiter { ticket, grant });
        Admission::Queued(self.name.clone(), ticket, granted)
    }

    /// Hands free slots to the oldest waiters (and, where allowed, one probe).
    fn grant_waiters(&mut self, limit: Limit) {
        while self.in_use < limit.slots {
            let Some(waiter) = self.waiters.pop_front() else {
                break;
            };
            // A waiter leaves the queue before its receiver is dropped, so this send
            // cannot fail; if it ever did, skipping that waiter is the right thing.
            let grant = Grant {
                k: self.in_use + 1,
                probe: false,
            };
            if waiter.grant.send(grant).is_ok() {
                self.in_use += 1;
            }
        }
        if limit.may_probe
            && !self.probe
            && self.in_use == limit.slots
            && let Some(waiter) = self.waiters.pop_front()
        {
            let grant = Grant {
                k: self.in_use + 1,
                probe: true,
            };
            if waiter.grant.send(grant).is_ok() {
                self.in_use += 1;
                self.probe = true;
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.in_use == 0 && self.waiters.is_empty()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only do counter and queue updates; state left by a
        // panicking holder is still consistent enough to keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// `model`'s limit now.
    fn limit(&self, model: &str) -> Limit {
        match self.source {
            Source::Learned => {
                let learner = self.learners.get(model);
                Limit {
                    slots: learner.map_or(self.parallel.get(), Learner::limit) + self.staged,
                    may_probe: learner.is_none_or(Learner::may_probe),
                }
            }
            _ => Limit {
                slots: self.per_model.get(),
                may_probe: false,
            },
        }
    }

    /// Hands out what every model's limit now allows.
    fn grant_all(&mut self) {
        let names: Vec<Arc<str>> = self.models.keys().cloned().collect();
        for name in names {
            let limit = self.limit(&name);
            if let Some(model) = self.models.get_mut(&name) {
                model.grant_waiters(limit);
            }
        }
    }

    /// Runs `f` on a model's entry, then drops the entry if that left it idle.
    fn update(&mut self, model: &str, f: impl FnOnce(&mut Model, Limit)) {
        let limit = self.limit(model);
        let Some(entry) = self.models.get_mut(model) else {
            return;
        };
        f(entry, limit);
        if entry.is_idle() {
            self.models.remove(model);
        }
    }
}

impl Slots {
    pub fn new(config: ConcurrencyConfig) -> Slots {
        Slots {
            shared: Arc::new(Shared {
                configured: config,
                queue: config.queue,
                max_wait: config.max_wait,
                state: Mutex::new(State {
                    per_model: config.per_model,
                    parallel: config.parallel,
                    source: config.source,
                    staged: config.per_model.get().saturating_sub(config.parallel.get()),
                    learners: HashMap::default(),
                    next_ticket: 0,
                    models: HashMap::default(),
                }),
            }),
        }
    }

    /// The settings these slots were made with.
    pub fn config(&self) -> ConcurrencyConfig {
        self.shared.configured
    }

    /// The host's own parallelism per model (its `OLLAMA_NUM_PARALLEL`): as
    /// known, or, while learning, the largest learned for any model.
    pub fn parallel(&self) -> NonZeroUsize {
        let state = self.shared.lock();
        match state.source {
            Source::Learned => state
                .learners
                .values()
                .map(Learner::limit)
                .max()
                .and_then(NonZeroUsize::new)
                .unwrap_or(state.parallel),
            _ => state.parallel,
        }
    }

    /// How the host's parallelism is known, with what was learned per model.
    pub fn parallelism(&self) -> Parallelism {
        let parallel = self.parallel().get();
        let state = self.shared.lock();
        let mut learned: Vec<(String, usize)> = state
            .learners
            .iter()
            .map(|(name, learner)| (name.to_string(), learner.limit()))
            .collect();
        learned.sort_unstable();
        Parallelism {
            parallel,
            source: state.source,
            learned: if state.source == Source::Learned {
                learned
            } else {
                Vec::new()
            },
        }
    }

    /// Takes a parallelism found at run time (an adopted daemon's
    /// `OLLAMA_NUM_PARALLEL`), or goes back to learning (`None`). Does nothing
    /// to a stated or supervised host.
    pub fn discovered(&self, parallel: Option<NonZeroUsize>) {
        if matches!(
            self.shared.configured.source,
            Source::Stated | Source::Supervised
        ) {
            return;
        }
        let mut state = self.shared.lock();
        match parallel {
            Some(n) => {
                state.source = Source::Adopted;
                state.parallel = n;
                state.per_model = n.saturating_add(state.staged);
            }
            None => {
                state.source = Source::Learned;
                state.parallel = self.shared.configured.parallel;
            }
        }
        state.grant_all();
    }

    /// The current per-model limit.
    pub fn per_model(&self) -> NonZeroUsize {
        self.shared.lock().per_model
    }

    /// Changes the per-model limit (e.g. to the `OLLAMA_NUM_PARALLEL` learned from
    /// the host). Raising it admits queued waiters at once; lowering it revokes no
    /// slot in use.
    pub fn set_per_model(&self, n: NonZeroUsize) {
        let mut state = self.shared.lock();
        state.per_model = n;
        state.grant_all();
    }

    /// Waits, in arrival order, for one of `model`'s slots.
    ///
    /// Cancel-safe: dropping the future leaves the queue (and passes on a slot that
    /// was granted but not yet seen). Never holds the lock across an `.await`.
    pub async fn acquire(&self, model: &str) -> Result<Slot, Rejected> {
        let admission = {
            let mut guard = self.shared.lock();
            let state = &mut *guard;
            let limit = state.limit(model);
            match state.models.get_mut(model) {
                Some(entry) => entry.admit(limit, self.shared.queue, &mut state.next_ticket),
                None => {
                    // An absent entry is idle: the first slot is free (limits >= 1).
                    let name: Arc<str> = Arc::from(model);
                    let entry = Model {
                        name: name.clone(),
                        in_use: 1,
                        probe: false,
                        waiters: VecDeque::new(),
                    };
                    state.models.insert(name.clone(), entry);
                    let grant = Grant { k: 1, probe: false };
                    Admission::Granted(name, grant)
                }
            }
        };
        let (name, ticket, granted) = match admission {
            Admission::Granted(name, grant) => {
                return Ok(self.slot(name, Duration::ZERO, grant));
            }
            Admission::Full(queued) => return Err(Rejected::QueueFull { queued }),
            Admission::Queued(name, ticket, granted) => (name, ticket, granted),
        };
        let joined = Instant::now();
        let mut waiting = Waiting {
            shared: &self.shared,
            name,
            ticket,
            granted,
            queued: true,
        };
        let outcome = tokio::time::timeout(self.shared.max_wait, &mut waiting.granted).await;
        let waited = joined.elapsed();
        match outcome {
            Ok(Ok(grant)) => {
                waiting.queued = false;
                Ok(self.slot(waiting.name.clone(), waited, grant))
            }
            // The sender is only dropped unsent when the waiter has already left the
            // queue, which cannot happen while this future runs; a timeout is the
            // least wrong answer if it ever did. `waiting` leaves the queue on drop.
            Ok(Err(_)) | Err(_) => Err(Rejected::TimedOut { waited }),
        }
    }

    /// Per model with anything in use or queued, by name.
    pub fn snapshot(&self) -> Vec<ModelSlots> {
        let mut models: Vec<ModelSlots> = {
            let state = self.shared.lock();
            state
                .models
                .values()
                .map(|m| ModelSlots {
                    model: m.name.to_string(),
                    in_use: m.in_use,
                    queued: m.waiters.len(),
                    limit: state.limit(&m.name).slots,
                })
                .collect()
        };
        models.sort_unstable_by(|a, b| a.model.cmp(&b.model));
        models
    }

    fn slot(&self, model: Arc<str>, waited: Duration, grant: Grant) -> Slot {
        Slot {
            shared: self.shared.clone(),
            model,
            waited,
            grant,
            granted_at: Instant::now(),
        }
    }
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("per_model", &self.per_model())
            .field("queue", &self.shared.queue)
            .field("max_wait", &self.shared.max_wait)
            .finish_non_exhaustive()
    }
}

/// A queued [`Slots::acquire`]: leaves the queue when dropped before its grant was
/// taken, or passes the grant on if one arrived in the meantime.
struct Waiting<'a> {
    shared: &'a Shared,
    name: Arc<str>,
    ticket: u64,
    granted: oneshot::Receiver<Grant>,
    queued: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        let ticket = self.ticket;
        let granted = &mut self.granted;
        self.shared.lock().update(&self.name, |model, limit| {
            if let Some(at) = model.waiters.iter().position(|w| w.ticket == ticket) {
                model.waiters.remove(at);
            } else if let Ok(grant) = granted.try_recv() {
                // Granted as the deadline passed or the client left: pass it on.
                model.in_use -= 1;
                if grant.probe {
                    model.probe = false;
                }
                model.grant_waiters(limit);
            }
        });
    }
}

/// One model's slot on one host, held for the whole upstream exchange (until the
/// last response chunk is sent or the client leaves); dropping it admits the next
/// waiter.
pub struct Slot {
    shared: Arc<Shared>,
    model: Arc<str>,
    waited: Duration,
    grant: Grant,
    /// When it was granted: when the request left for the host.
    granted_at: Instant,
}

impl Slot {
    /// How long the request waited in the queue (zero when a slot was free).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The model the slot is for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// How many of this host's requests for the model were in flight when this
    /// one was sent, itself included.
    pub fn in_flight_at_send(&self) -> usize {
        self.grant.k
    }

    /// Learns from the answer: it waited `wait` at the host for `work` of its
    /// own (see `parallelism`). Only a host whose parallelism is learned learns.
    pub fn learn(&self, wait: Duration, work: Duration) {
        let sent = self.granted_at;
        self.learn_by(|learner, k| {
            // Queued: every request in flight when it arrived held a slot; not
            // queued: only those still running when it started count.
            let started = if crate::parallelism::queued(wait, work) {
                Duration::ZERO
            } else {
                wait
            };
            let k = learner.concurrent(k, sent, started);
            learner.observe(k, wait, work)
        });
    }

    /// Learns from an answer without durations by its first byte (see
    /// `parallelism`).
    pub fn learn_first_byte(&self, first_byte: Duration) {
        let sent = self.granted_at;
        self.learn_by(|learner, k| {
            let k = learner.concurrent(k, sent, Duration::ZERO);
            learner.observe_first_byte(k, first_byte)
        });
    }

    fn learn_by(&self, observe: impl FnOnce(&mut Learner, usize) -> bool) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if state.source != Source::Learned {
            return;
        }
        if state.learners.len() >= MAX_LEARNERS && !state.learners.contains_key(&self.model) {
            let models = &state.models;
            state.learners.retain(|name, _| models.contains_key(name));
        }
        let start = state.parallel.get();
        let learner = state
            .learners
            .entry(self.model.clone())
            .or_insert_with(|| Learner::new(start));
        let changed = observe(learner, self.grant.k);
        if changed {
            let limit = state.limit(&self.model);
            if let Some(model) = state.models.get_mut(&self.model) {
                model.grant_waiters(limit);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let probe = self.grant.probe;
        let mut state = self.shared.lock();
        if let Some(learner) = state.learners.get_mut(&self.model) {
            learner.ended(Instant::now());
        }
        state.update(&self.model, |model, limit| {
            model.in_use -= 1;
            if probe {
                model.probe = false;
            }
            model.grant_waiters(limit);
        });
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("model", &self.model)
            .field("waited", &self.waited)
            .finish()
    }
}

/// One model's slots on one host, for `/warmline/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSlots {
    pub model: String,
    pub in_use: usize,
    pub queued: usize,
    /// Requests sent at once now (the host's parallelism plus any staging).
    pub limit: usize,
}

/// How a host's parallelism is known (see `parallelism`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parallelism {
    pub parallel: usize,
    pub source: Source,
    /// Per model, while learning.
    pub learned: Vec<(String, usize)>,
}

/// Why [`Slots::acquire`] refused. The request was not forwarded, so a retry is
/// always safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error(
        "the model is busy on its upstream and {queued} requests are already queued for it; \
         Warmline did not forward this one, retry later"
    )]
    QueueFull { queued: usize },
    #[error(
        "the model stayed busy on its upstream while this request waited {waited:.1?} in \
         Warmline's queue; it was not forwarded, retry later"
    )]
    TimedOut { waited: Duration },
}

impl Rejected {
    /// A `Retry-After` hint for the 503.
    pub fn retry_after(&self) -> Duration {
        RETRY_AFTER
    }

    /// A static label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejected::QueueFull { .. } => "queue_full",
            Rejected::TimedOut { .. } => "queue_timeout",
        }
    }
}

mod rate;
pub use rate::{ClientLimiter, RateConfig, RateLimited, RateSnapshot};

#[cfg(test)]
mod tests;
