//! Circuit breaker: one per upstream host, so a host that keeps failing is left
//! alone for a while instead of costing every client a connect timeout.
//!
//! Defaults come from the latency report: open after 5 consecutive failures, stay
//! open 60 s, then let exactly one probe through. What counts as a failure
//! (connect error, timeout, 5xx) is the caller's decision; the breaker only counts.
//!
//! ```text
//!             success: count = 0
//!              ┌─────┐
//!              │     ▼
//!           ┌────────────┐  `failures` failures in a row  ┌────────────┐
//!   start ─▶│   Closed   │ ─────────────────────────────▶ │    Open    │
//!           │ admit all  │                                │ refuse all │
//!           └────────────┘                                └────────────┘
//!                 ▲                                          │      ▲
//!                 │                        `open_for` passed │      │ probe failed:
//!                 │                                          ▼      │ a full `open_for`
//!                 │       probe succeeded                 ┌────────────┐
//!                 └────────────────────────────────────── │  HalfOpen  │
//!                                                         │ admit one  │
//!                                                         │   probe    │
//!                                                         └────────────┘
//!                                                            │      ▲
//!                                                            └──────┘
//!                                           probe dropped unreported: re-armed
//! ```
//!
//! # Who owns what
//!
//! The state machine runs on its own task ([`Breaker::spawn`]) and is the only
//! writer of the state, with one exception below. The request path touches two
//! cheap things and never waits:
//!
//! - **The gate**: one `AtomicU64` holding the state tag and its payload (the
//!   period's epoch while closed, the reopen instant while open). [`Breaker::admit`]
//!   is one atomic load while closed, so a healthy host costs a load, an `Arc`
//!   clone and one `try_send` per request. The exception to "only the task writes": in half-open the
//!   request path takes the probe slot with a compare-exchange, so exactly one
//!   concurrent request wins it with no lock and no round trip through the task.
//! - **The event channel**: a bounded `mpsc`; a [`Permit`] reports its outcome with
//!   `try_send`.
//!
//! # Why the choices
//!
//! - **Outcomes are counted only for their own closed period.** Each closed period
//!   has an epoch, and a permit remembers the epoch it was admitted in. A slow
//!   request admitted before the breaker opened that fails after the probe has
//!   closed it again describes the old outage, not the recovered host, so it is
//!   ignored, as is every ordinary outcome while open or half-open. Only the probe
//!   decides half-open.
//! - **Ordinary outcomes may be dropped; the probe's never is.** The channel holds
//!   [`EVENT_CAPACITY`] events; it fills only if more than that many requests
//!   finish between two polls of the task, which on a host with tens of concurrent
//!   generations means the task is starved. Dropping then makes the count
//!   approximate in either direction (a lost failure delays opening by one, a lost
//!   success can let failures that were not quite consecutive open it), which is an
//!   acceptable error for a heuristic; drops are counted in
//!   [`Snapshot::events_dropped`] so they are visible. The probe is different: a
//!   lost probe outcome would leave the breaker half-open with its only slot taken,
//!   refusing forever. So a probe reserves its channel slot when it is admitted
//!   (`try_reserve_owned`) and always delivers exactly one event; if no slot is
//!   free, the probe is not handed out and the next request tries again.
//! - **A permit dropped without an outcome counts as neither.** The client went
//!   away or the request was cancelled; that says nothing about the upstream. An
//!   ordinary permit then sends nothing; a dropped probe sends "abandoned" and the
//!   task re-arms half-open so the next request probes.
//! - **A probe in flight is not timed out here.** Callers already bound requests
//!   with their own timeouts and report a timeout as a failure; a second timer
//!   would only disagree with them.
//! - **The open period does not back off.** The report asks for a fixed 60 s;
//!   linkerd2-proxy doubles it per failed probe, which is easy to add in
//!   `Machine::enter` if a host proves to flap.
//! - **Time is tokio's**, so every transition is tested on paused time.
//!
//! Structure follows linkerd2-proxy's consecutive-failures breaker: one `async fn`
//! per state, each returning the next state, and a loop in `Machine::run`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant};
use tracing::Instrument;

/// How many outcome events may wait for the task before new ones are dropped.
///
/// An event is a few words, so this is a few KiB per upstream host: far more than
/// the requests a local Ollama host has in flight.
pub const EVENT_CAPACITY: usize = 1024;

/// What a refused request is told while the probe is in flight. The probe's
/// outcome decides the state and an LLM request takes seconds, so "soon" is the
/// honest answer, and it is the smallest useful `Retry-After`.
pub const PROBING_RETRY_IN: Duration = Duration::from_secs(1);

pub use crate::config::BreakerConfig;

/// The breaker's state, as health and metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    /// A static label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// The breaker refused a request: the upstream host is presumed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open; retry in {} ms", .retry_in.as_millis())]
pub struct Refused {
    /// When to try again: the rest of the open period, or [`PROBING_RETRY_IN`]
    /// while a probe is deciding.
    pub retry_in: Duration,
}

impl Refused {
    /// `retry_in` in whole seconds for a `Retry-After` header: rounded up, so a
    /// client never comes back early, and at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_in.as_secs() + u64::from(self.retry_in.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A point-in-time view for health and metrics. The state and the counters are
/// read separately, so a snapshot taken mid-transition may show the new state
/// with the old counters for a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: State,
    /// Failures in a row: those counted while closed, plus failed probes since.
    pub consecutive_failures: u32,
    /// While open: milliseconds until the probe is let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Transitions into each state since the breaker was created.
    pub opened: u64,
    pub half_opened: u64,
    pub closed: u64,
    /// Ordinary outcomes dropped because the event channel was full.
    pub events_dropped: u64,
}

/// Handle to one host's breaker; cheap to clone. The task ends once every handle
/// and every [`Permit`] is gone.
#[derive(Debug, Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    gate: Arc<GateCell>,
    events: mpsc::Sender<Event>,
    counters: watch::Receiver<Counters>,
    dropped: AtomicU64,
    enabled: bool,
    config: BreakerConfig,
}

impl Breaker {
    /// Creates a breaker and spawns its task in the current tracing span (so its
    /// log lines carry the caller's upstream host). Needs a tokio runtime.
    pub fn spawn(config: BreakerConfig) -> (Breaker, JoinHandle<()>) {
        let (breaker, task) = Breaker::new(config);
        (breaker, tokio::spawn(task.in_current_span()))
    }

    /// Creates a breaker and the task future that drives it, for callers that
    /// spawn and supervise their own tasks.
    pub fn new(config: BreakerConfig) -> (Breaker, impl Future<Output = ()> + Send + 'static) {
        Breaker::with_capacity(config, EVENT_CAPACITY)
    }

    fn with_capacity(
        config: BreakerConfig,
        capacity: usize,
    ) -> (Breaker, impl Future<Output = ()> + Send + 'static) {
        let gate = Arc::new(GateCell::new());
        let (events_tx, events_rx) = mpsc::channel(capacity);
        let (counters_tx, counters_rx) = watch::channel(Counters::default());
        let machine = Machine {
            config,
            gate: gate.clone(),
            events: events_rx,
            counters: counters_tx,
            epoch: 0,
            open_until: Instant::now(),
        };
        let breaker = Breaker {
            inner: Arc::new(Inner {
                gate,
                events: events_tx,
                counters: counters_rx,
                dropped: AtomicU64::new(0),
                enabled: config.enabled,
                config,
            }),
        };
        (breaker, machine.run())
    }

    /// Asks to send one request upstream. On `Ok`, report how it went with
    /// [`Permit::success`] or [`Permit::failure`].
    pub fn admit(&self) -> Result<Permit, Refused> {
        match self.inner.gate.load() {
            Gate::Closed { epoch } => Ok(self.permit(Role::Counted { epoch })),
            Gate::Open { until } => Err(Refused {
                retry_in: until.saturating_duration_since(Instant::now()),
            }),
            Gate::HalfOpen => self.take_probe(),
            Gate::Probing => Err(Refused {
                retry_in: PROBING_RETRY_IN,
            }),
        }
    }

    /// Half-open: the first request to win the compare-exchange is the probe.
    fn take_probe(&self) -> Result<Permit, Refused> {
        let busy = Refused {
            retry_in: PROBING_RETRY_IN,
        };
        if !self.inner.gate.take_probe() {
            return Err(busy);
        }
        // Reserve the outcome's slot now, so it cannot be lost later.
        match self.inner.events.clone().try_reserve_owned() {
            Ok(slot) => Ok(self.permit(Role::Probe { slot: Some(slot) })),
            Err(_) => {
                self.inner.gate.release_probe();
                Err(busy)
            }
        }
    }

    fn permit(&self, role: Role) -> Permit {
        Permit {
            inner: self.inner.clone(),
            role,
        }
    }

    /// The settings this breaker runs with.
    pub fn config(&self) -> BreakerConfig {
        self.inner.config
    }

    /// The current state: one atomic load, cheap enough for upstream selection.
    pub fn state(&self) -> State {
        match self.inner.gate.load() {
            Gate::Closed { .. } => State::Closed,
            Gate::Open { .. } => State::Open,
            Gate::HalfOpen | Gate::Probing => State::HalfOpen,
        }
    }

    /// Whether a request sent now could be let through: closed, or half-open with
    /// its probe slot still free. One atomic load, for upstream selection, so a
    /// host whose one probe is already out is passed over like an open one.
    pub fn admits(&self) -> bool {
        !matches!(self.inner.gate.load(), Gate::Open { .. } | Gate::Probing)
    }

    /// Puts the gate in a state directly, behind the task's back: for tests of
    /// what reads the gate (upstream selection), never for the machine's own.
    #[cfg(test)]
    pub(crate) fn force(&self, state: State, probe_taken: bool) {
        let gate = match state {
            State::Closed => Gate::Closed { epoch: 0 },
            State::Open => Gate::Open {
                until: crate::sys::clock::after(self.inner.config.open_for),
            },
            State::HalfOpen if probe_taken => Gate::Probing,
            State::HalfOpen => Gate::HalfOpen,
        };
        self.inner.gate.store(gate);
    }

    /// The current state and counters. Reads a lock the task holds only briefly;
    /// meant for health and metrics, not for the request path.
    pub fn snapshot(&self) -> Snapshot {
        let counters = *self.inner.counters.borrow();
        let (state, retry_in_ms) = match self.inner.gate.load() {
            Gate::Closed { .. } => (State::Closed, None),
            Gate::Open { until } => {
                let retry_in = until.saturating_duration_since(Instant::now());
                let ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
                (State::Open, Some(ms))
            }
            Gate::HalfOpen | Gate::Probing => (State::HalfOpen, None),
        };
        Snapshot {
            state,
            consecutive_failures: counters.consecutive_failures,
            retry_in_ms,
            opened: counters.opened,
            half_opened: counters.half_opened,
            closed: counters.closed,
            events_dropped: self.inner.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Leave to send one request. Report its outcome with [`success`](Permit::success)
/// or [`failure`](Permit::failure); dropping it unreported counts as neither.
#[derive(Debug)]
#[must_use = "report the outcome with success() or failure(); dropping counts as neither"]
pub struct Permit {
    inner: Arc<Inner>,
    role: Role,
}

#[derive(Debug)]
enum Role {
    /// Admitted while closed; counts toward that closed period only.
    Counted { epoch: u64 },
    /// The half-open probe, holding the channel slot its outcome will use. `None`
    /// once reported.
    Probe {
        slot: Option<mpsc::OwnedPermit<Event>>,
    },
}

impl Permit {
    /// The upstream answered well.
    pub fn success(mut self) {
        self.report(true);
    }

    /// The upstream failed, by the caller's definition (connect error, timeout,
    /// 5xx).
    pub fn failure(mut self) {
        self.report(false);
    }

    /// Whether this permit is the half-open probe.
    pub fn is_probe(&self) -> bool {
        matches!(self.role, Role::Probe { .. })
    }

    fn report(&mut self, success: bool) {
        match &mut self.role {
            Role::Counted { .. } if !self.inner.enabled => {}
            Role::Counted { epoch } => {
                let pending = &self.inner.gate.failures_pending;
                if success && !pending.load(Ordering::Acquire) {
                    return;
                }
                if !success {
                    pending.store(true, Ordering::Release);
                }
                let event = Event::Outcome {
                    epoch: *epoch,
                    success,
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = self.inner.events.try_send(event) {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Role::Probe { slot } => {
                let probe = if success {
                    Probe::Succeeded
                } else {
                    Probe::Failed
                };
                if let Some(slot) = slot.take() {
                    slot.send(Event::Probe(probe));
                }
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        // Only an unreported probe still holds its slot.
        if let Role::Probe { slot } = &mut self.role
            && let Some(slot) = slot.take()
        {
            slot.send(Event::Probe(Probe::Abandoned));
        }
    }
}

/// What a permit tells the task.
#[derive(Debug)]
enum Event {
    Outcome { epoch: u64, success: bool },
    Probe(Probe),
}

#[derive(Debug)]
enum Probe {
    Succeeded,
    Failed,
    Abandoned,
}

/// Task-owned figures, published for [`Breaker::snapshot`].
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    consecutive_failures: u32,
    opened: u64,
    half_opened: u64,
    closed: u64,
}

// === The gate: what the request path reads ===

/// The gate's states. `HalfOpen` has its probe slot free, `Probing` has it taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Closed { epoch: u64 },
    Open { until: Instant },
    HalfOpen,
    Probing,
}

/// The gate packed into one word: the low two bits are the tag, the rest the
/// payload (the epoch while closed, the reopen time in milliseconds since `start`
/// while open). 62 bits outlast any process.
///
/// All accesses are `Relaxed`: nothing else is published through this word, and
/// "exactly one probe" rests on the compare-exchange being atomic, not on ordering.
#[derive(Debug)]
struct GateCell {
    word: AtomicU64,
    start: Instant,
    /// Whether the closed-period failure count may be above zero. A success only
    /// matters when it resets a count, so while this is false a success sends no
    /// event: a healthy host costs no channel traffic and no task wake-up per
    /// request. The request path sets it before reporting a failure; the task
    /// sets it to "count > 0" after each closed-period outcome. A success that
    /// races with a failure still in the channel may be skipped, which at worst
    /// lets a run of failures count one success short — the same order of error
    /// the channel's drop policy already accepts.
    failures_pending: std::sync::atomic::AtomicBool,
}

const TAG_BITS: u32 = 2;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const PROBING: u64 = 3;

impl GateCell {
    fn new() -> GateCell {
        GateCell {
            word: AtomicU64::new(CLOSED),
            start: Instant::now(),
            failures_pending: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn load(&self) -> Gate {
        self.unpack(self.word.load(Ordering::Relaxed))
    }

    fn store(&self, gate: Gate) {
        self.word.store(self.pack(gate), Ordering::Relaxed);
    }

    /// Half-open → probing; true for exactly one caller per free slot.
    fn take_probe(&self) -> bool {
        self.word
            .compare_exchange(HALF_OPEN, PROBING, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Probing → half-open, for a probe that was taken but never handed out.
    fn release_probe(&self) {
        // Only the holder of the slot can be here, so this cannot fail; the
        // compare-exchange just refuses to clobber anything else if it ever did.
        let (from, to) = (PROBING, HALF_OPEN);
        let _ = self
            .word
            .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn pack(&self, gate: Gate) -> u64 {
        match gate {
            Gate::Closed { epoch } => (epoch << TAG_BITS) | CLOSED,
            Gate::Open { until } => {
                // Rounded up, so a refused client is never told to come back early.
                let nanos = until.saturating_duration_since(self.start).as_nanos();
                let ms = u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX >> TAG_BITS);
                (ms << TAG_BITS) | OPEN
            }
            Gate::HalfOpen => HALF_OPEN,
            Gate::Probing => PROBING,
        }
    }

    fn unpack(&self, word: u64) -> Gate {
        let payload = word >> TAG_BITS;
        match word & TAG_MASK {
            CLOSED => Gate::Closed { epoch: payload },
            OPEN => Gate::Open {
                until: self.start + Duration::from_millis(payload),
            },
            HALF_OPEN => Gate::HalfOpen,
            _ => Gate::Probing,
        }
    }
}

// === The state machine: owned by the task ===

struct Machine {
    config: BreakerConfig,
    gate: Arc<GateCell>,
    events: mpsc::Receiver<Event>,
    counters: watch::Sender<Counters>,
    /// The current closed period; permits admitted in earlier ones are stale.
    epoch: u64,
    /// When the current open period ends.
    open_until: Instant,
}

impl Machine {
    /// Runs until every handle and permit is gone (each state returns `None`).
    async fn run(mut self) {
        let mut state = State::Closed;
        loop {
            let next = match state {
                State::Closed => self.closed().await,
                State::Open => self.open().await,
                State::HalfOpen => self.half_open().await,
            };
            let Some(next) = next else { return };
            self.enter(next);
            state = next;
        }
    }

    /// The edges of the diagram: publish the new gate and count the transition.
    fn enter(&mut self, state: State) {
        match state {
            State::Closed => {
                self.epoch += 1;
                self.gate.store(Gate::Closed { epoch: self.epoch });
                self.counters.send_modify(|c| {
                    c.closed += 1;
                    c.consecutive_failures = 0;
                });
                tracing::info!("circuit breaker closed: probe succeeded");
            }
            State::Open => {
                self.open_until = crate::sys::clock::after(self.config.open_for);
                self.gate.store(Gate::Open {
                    until: self.open_until,
                });
                self.counters.send_modify(|c| c.opened += 1);
                tracing::info!(
                    failures = self.counters.borrow().consecutive_failures,
                    open_for = ?self.config.open_for,
                    "circuit breaker opened",
                );
            }
            State::HalfOpen => {
                self.gate.store(Gate::HalfOpen);
                self.counters.send_modify(|c| c.half_opened += 1);
                tracing::debug!("circuit breaker half-open: next request probes");
            }
        }
    }

    /// Closed: everything is admitted; open after `failures` failures in a row
    /// among requests admitted in this closed period.
    async fn closed(&mut self) -> Option<State> {
        let threshold = self.config.failures.get();
        loop {
            match self.events.recv().await? {
                Event::Outcome { epoch, success } if epoch == self.epoch => {
                    let failures = if success {
                        0
                    } else {
                        self.counters
                            .borrow()
                            .consecutive_failures
                            .saturating_add(1)
                    };
                    self.counters.send_if_modified(|c| {
                        let changed = c.consecutive_failures != failures;
                        c.consecutive_failures = failures;
                        changed
                    });
                    self.gate
                        .failures_pending
                        .store(failures > 0, Ordering::Release);
                    if failures >= threshold {
                        return Some(State::Open);
                    }
                }
                stale => tracing::trace!(?stale, "breaker closed: stale outcome ignored"),
            }
        }
    }

    /// Open: everything is refused until `open_until`. Outcomes still arriving
    /// from requests admitted earlier are drained so they cannot fill the channel.
    async fn open(&mut self) -> Option<State> {
        let reopen = time::sleep_until(self.open_until);
        tokio::pin!(reopen);
        loop {
            tokio::select! {
                biased;
                () = &mut reopen => return Some(State::HalfOpen),
                event = self.events.recv() => {
                    let event = event?;
                    tracing::trace!(?event, "breaker open: outcome ignored");
                }
            }
        }
    }

    /// Half-open: only the probe's outcome counts. Success closes, failure opens
    /// for a full period, an abandoned probe frees the slot for the next request.
    async fn half_open(&mut self) -> Option<State> {
        loop {
            match self.events.recv().await? {
                Event::Probe(Probe::Succeeded) => return Some(State::Closed),
                Event::Probe(Probe::Failed) => {
                    self.counters.send_modify(|c| {
                        c.consecutive_failures = c.consecutive_failures.saturating_add(1);
                    });
                    return Some(State::Open);
                }
                Event::Probe(Probe::Abandoned) => {
                    tracing::debug!("breaker probe dropped unreported; next request probes");
                    self.gate.store(Gate::HalfOpen);
                }
                stale => tracing::trace!(?stale, "breaker half-open: outcome ignored"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
