//! The model scheduler: which fake models are "loaded", who may use them, and
//! when they go away. A model of `server/sched.go` (§3 and §5 of the reference).
//!
//! ```text
//!  request ──► fast path: loaded, compatible, not being evicted?
//!                │ yes: attach (refs += 1, expiry timer stops) ──┐
//!                │ no                                            │
//!                ▼                                               ▼
//!        pending queue (bounded, OLLAMA_MAX_QUEUE)     wait until ready
//!        full ⇒ 503 "server busy…"                              │
//!                │                                               ▼
//!                ▼                                   slot semaphore (FIFO,
//!        loader task (one load at a time):           OLLAMA_NUM_PARALLEL)
//!          reload? evict? wait for unload ─► load_delay ─► ready ──► Lease
//! ```
//!
//! * **State** lives in one `std::sync::Mutex<State>` that is never held
//!   across an `.await`; waiting is done on `watch` channels (readiness per
//!   runner, a global "something unloaded" epoch) and a `Notify` for the
//!   reaper.
//! * **Two background tasks own the timing**: the *loader* drains the pending
//!   queue one request at a time (so a slow load or an eviction wait blocks
//!   every other request that needs a load — Ollama's head-of-line
//!   behaviour), and the *reaper* unloads idle models whose keep-alive ran
//!   out. Both use tokio time, so tests run on paused clocks.
//! * **RAII does the bookkeeping**: a [`Lease`] holds a reference on the
//!   runner (stopping its expiry timer), a parallel slot and the in-flight
//!   gauge. Dropping it — normally, or because the client went away — starts
//!   the keep-alive timer when the last reference goes. A load whose only
//!   requester disconnects is aborted, as in Ollama (#7408).
//! * Keep-alive is sticky: the env default applies when a model is loaded,
//!   afterwards only requests that carry `keep_alive` change it.
//! * Differences from Ollama, on purpose: no memory-fit model (only the
//!   `OLLAMA_MAX_LOADED_MODELS` count), and a runner marked for eviction or
//!   reload accepts no new requests, so an eviction always makes progress.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catalog::Installed;
use crate::counters::{CounterSet, InFlightGuard, ModelGauge};
use crate::keepalive::KeepAlive;
use crate::knobs::KnobStore;

/// Scheduler limits, resolved from [`crate::OllamaEnv`].
#[derive(Debug, Clone)]
pub(crate) struct SchedConfig {
    pub num_parallel: u32,
    pub max_loaded: usize,
    pub max_queue: usize,
    pub default_keep_alive: KeepAlive,
    pub default_ctx: u32,
}

/// Why no runner could be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SchedError {
    /// The pending queue is full (503).
    #[error("server busy, please try again.  maximum pending requests exceeded")]
    Busy,
    /// The scheduler is shutting down (500).
    #[error("scheduler is shutting down")]
    Stopped,
}

/// What a request asks of the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct SchedRequest {
    pub model: Arc<Installed>,
    /// Explicit `num_ctx`, `None` for automatic.
    pub num_ctx: Option<u32>,
    /// The request's `keep_alive`, `None` when not given (sticky).
    pub keep_alive: Option<KeepAlive>,
}

/// A loaded (or loading) model.
#[derive(Debug)]
pub(crate) struct Runner {
    id: u64,
    pub model: Arc<Installed>,
    pub num_ctx: u32,
    ctx_explicit: bool,
    slots: Arc<Semaphore>,
    num_parallel: u32,
    ready: watch::Receiver<LoadState>,
    gauge: Arc<ModelGauge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadState {
    Loading,
    Ready,
    Failed,
}

/// When an idle runner unloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No idle period yet (first load still running).
    NotStarted,
    At(Instant),
    Never,
}

#[derive(Debug)]
struct Slot {
    runner: Arc<Runner>,
    refs: usize,
    keep_alive: KeepAlive,
    expiry: Expiry,
    /// Being evicted or replaced: no new attachments.
    retiring: bool,
    loading: bool,
}

impl Slot {
    fn idle(&self) -> bool {
        self.refs == 0 && !self.loading
    }
}

#[derive(Debug, Default)]
struct State {
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Pending {
    req: SchedRequest,
    reply: oneshot::Sender<RunnerRef>,
}

#[derive(Debug)]
struct Inner {
    cfg: SchedConfig,
    state: Mutex<State>,
    pending: mpsc::Sender<Pending>,
    reaper: Notify,
    unloaded: watch::Sender<u64>,
    counters: Arc<CounterSet>,
    knobs: Arc<KnobStore>,
    next_id: AtomicU64,
}

/// Handle to the scheduler; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Scheduler {
    inner: Arc<Inner>,
}

/// One row of `/api/ps`.
#[derive(Debug, Clone)]
pub(crate) struct PsEntry {
    pub model: Arc<Installed>,
    pub size: u64,
    pub expires_at: SystemTime,
    pub context_length: u32,
}

impl Scheduler {
    /// Starts the loader and reaper tasks on the current runtime; they stop
    /// when `shutdown` is cancelled.
    pub(crate) fn start(
        cfg: SchedConfig,
        counters: Arc<CounterSet>,
        knobs: Arc<KnobStore>,
        shutdown: CancellationToken,
    ) -> Scheduler {
        let (tx, rx) = mpsc::channel(cfg.max_queue.max(1));
        let inner = Arc::new(Inner {
            cfg,
            state: Mutex::new(State::default()),
            pending: tx,
            reaper: Notify::new(),
            unloaded: watch::Sender::new(0),
            counters,
            knobs,
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(loader(inner.clone(), rx, shutdown.clone()));
        tokio::spawn(reaper(inner.clone(), shutdown));
        Scheduler { inner }
    }

    /// Waits for a ready runner and a free parallel slot on it.
    ///
    /// `started` is when the handler began: `load_duration` runs from there
    /// to "runner ready" and excludes the slot wait, as in Ollama.
    pub(crate) async fn acquire(
        &self,
        req: SchedRequest,
        started: Instant,
    ) -> Result<Lease, SchedError> {
        let runner = self.attach(req).await?;
        let load_duration = started.elapsed();
        let permit = runner
            .runner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SchedError::Stopped)?;
        let in_flight = runner.runner.gauge.enter();
        Ok(Lease {
            runner,
            _permit: permit,
            _in_flight: in_flight,
            load_duration,
        })
    }

    /// Load (or just reference) the model without taking a slot: the
    /// "load only" requests (empty prompt/messages/input).
    pub(crate) async fn load_only(&self, req: SchedRequest) -> Result<(), SchedError> {
        self.attach(req).await.map(drop)
    }

    /// A referenced, ready runner: fast path if possible, else via the queue.
    async fn attach(&self, req: SchedRequest) -> Result<RunnerRef, SchedError> {
        loop {
            let fast = {
                let mut st = self.inner.lock();
                attach_compatible(&self.inner, &mut st, &req)
            };
            if let Some(r) = fast {
                if r.wait_ready().await {
                    return Ok(r);
                }
                // The load it was waiting for was aborted: try again.
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let pending = Pending {
                req: req.clone(),
                reply: tx,
            };
            match self.inner.pending.try_send(pending) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.inner.counters.rejected_busy.fetch_add(1, Relaxed);
                    return Err(SchedError::Busy);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(SchedError::Stopped),
            }
            return rx.await.map_err(|_| SchedError::Stopped);
        }
    }

    /// Explicit unload (`keep_alive: 0` with an empty prompt): the model
    /// goes as soon as its in-flight requests finish. `false` if not loaded.
    pub(crate) fn unload(&self, model: &Installed) -> bool {
        let mut st = self.inner.lock();
        let now = Instant::now();
        let mut found = false;
        let mut removed = 0;
        st.slots.retain_mut(|slot| {
            if slot.runner.model.name != model.name {
                return true;
            }
            found = true;
            slot.keep_alive = KeepAlive::For(Duration::ZERO);
            slot.expiry = Expiry::At(now);
            if slot.idle() {
                removed += 1;
                return false;
            }
            true
        });
        drop(st);
        self.inner.unloaded_n(removed);
        found
    }

    /// The loaded models for `/api/ps`, latest expiry first.
    pub(crate) fn ps(&self) -> Vec<PsEntry> {
        let st = self.inner.lock();
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut out: Vec<PsEntry> = st
            .slots
            .iter()
            .map(|slot| {
                let later = |d: Duration| wall.checked_add(d).unwrap_or(wall);
                let expires_at = match slot.expiry {
                    Expiry::NotStarted => later(slot.keep_alive.as_duration()),
                    Expiry::Never => later(KeepAlive::Forever.as_duration()),
                    Expiry::At(t) if t >= now => later(t - now),
                    Expiry::At(t) => wall.checked_sub(now - t).unwrap_or(wall),
                };
                let r = &slot.runner;
                let kv = r.model.spec.kv_bytes_per_token()
                    * u64::from(r.num_ctx)
                    * u64::from(r.num_parallel);
                PsEntry {
                    model: r.model.clone(),
                    size: r.model.size + kv,
                    expires_at,
                    context_length: r.num_ctx,
                }
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.expires_at));
        out
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in a
        // way worse than refusing every later request would be.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn effective_ctx(&self, req: &SchedRequest) -> u32 {
        req.num_ctx
            .unwrap_or(self.cfg.default_ctx)
            .min(req.model.spec.context_length)
            .max(1)
    }

    fn compatible(&self, runner: &Runner, req: &SchedRequest) -> bool {
        runner.model.name == req.model.name
            && ((!runner.ctx_explicit && req.num_ctx.is_none())
                || runner.num_ctx == self.effective_ctx(req))
    }

    /// Counts `n` unloads and wakes whoever waits for room.
    fn unloaded_n(&self, n: u64) {
        if n > 0 {
            self.counters.unloads.fetch_add(n, Relaxed);
            self.unloaded.send_modify(|e| *e += n);
        }
    }

    /// Called when a [`RunnerRef`] drops.
    fn release(&self, id: u64) {
        let mut st = self.lock();
        let Some(i) = st.slots.iter().position(|s| s.runner.id == id) else {
            return;
        };
        let slot = &mut st.slots[i];
        slot.refs = slot.refs.saturating_sub(1);
        if !slot.idle() {
            return;
        }
        if slot.retiring || slot.keep_alive.is_zero() {
            st.slots.remove(i);
            drop(st);
            self.unloaded_n(1);
            return;
        }
        slot.expiry = match slot.keep_alive {
            KeepAlive::Forever => Expiry::Never,
            KeepAlive::For(d) => Expiry::At(Instant::now() + d),
        };
        drop(st);
        self.reaper.notify_one();
    }

    /// Resolves when runner `id` is gone.
    async fn wait_gone(&self, id: u64) {
        let mut epoch = self.unloaded.subscribe();
        loop {
            if !self.lock().slots.iter().any(|s| s.runner.id == id) {
                return;
            }
            if epoch.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Fast path: reference a loaded, compatible runner that is not retiring.
fn attach_compatible(inner: &Arc<Inner>, st: &mut State, req: &SchedRequest) -> Option<RunnerRef> {
    let slot = st
        .slots
        .iter_mut()
        .find(|s| !s.retiring && inner.compatible(&s.runner, req))?;
    slot.refs += 1;
    if let Some(ka) = req.keep_alive {
        slot.keep_alive = ka;
    }
    Some(RunnerRef {
        inner: inner.clone(),
        runner: slot.runner.clone(),
    })
}

// ---------------------------------------------------------------------------
// Background tasks

async fn loader(inner: Arc<Inner>, mut rx: mpsc::Receiver<Pending>, shutdown: CancellationToken) {
    loop {
        let Pending { req, mut reply } = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        // A queued request whose client has gone away is skipped.
        if reply.is_closed() {
            continue;
        }
        let runner = tokio::select! {
            r = schedule_one(&inner, &req) => r,
            // The requester went away: drop the in-progress load (LoadGuard
            // cleans up) rather than finishing a load nobody waits for.
            _ = reply.closed() => continue,
            _ = shutdown.cancelled() => return,
        };
        // If the client left just now the RunnerRef comes back and drops,
        // which starts the model's keep-alive timer.
        let _ = reply.send(runner);
    }
}

/// Makes room if needed and loads the model for one pending request.
async fn schedule_one(inner: &Arc<Inner>, req: &SchedRequest) -> RunnerRef {
    loop {
        let step = {
            let mut st = inner.lock();
            match attach_compatible(inner, &mut st, req) {
                Some(r) => Err(r),
                None => Ok(make_room(inner, &mut st, req)),
            }
        };
        match step {
            Err(attached) => {
                if attached.wait_ready().await {
                    return attached;
                }
            }
            Ok(Room::Ready) => return load(inner, req).await,
            Ok(Room::WaitFor(id)) => inner.wait_gone(id).await,
        }
    }
}

enum Room {
    Ready,
    WaitFor(u64),
}

/// Retires an incompatible copy of the model or an eviction victim.
fn make_room(inner: &Inner, st: &mut State, req: &SchedRequest) -> Room {
    let now = Instant::now();
    let retire = |slot: &mut Slot| {
        slot.retiring = true;
        slot.keep_alive = KeepAlive::For(Duration::ZERO);
        slot.expiry = Expiry::At(now);
    };
    // The same model loaded with other runner options: reload (§5.4).
    if let Some(slot) = st
        .slots
        .iter_mut()
        .find(|s| s.runner.model.name == req.model.name)
    {
        if !slot.retiring {
            retire(slot);
            inner.counters.reloads.fetch_add(1, Relaxed);
        }
        return remove_if_idle(inner, st, req.model.name.as_str());
    }
    if st.slots.len() < inner.cfg.max_loaded {
        return Room::Ready;
    }
    // Already waiting for someone to leave? Wait for them.
    if let Some(slot) = st.slots.iter().find(|s| s.retiring) {
        return Room::WaitFor(slot.runner.id);
    }
    // §5.3: shortest keep-alive first, then name; idle ones before busy ones.
    let mut order: Vec<usize> = (0..st.slots.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&st.slots[a], &st.slots[b]);
        a.keep_alive
            .cmp(&b.keep_alive)
            .then_with(|| a.runner.model.name.cmp(&b.runner.model.name))
    });
    let victim = order
        .iter()
        .copied()
        .find(|&i| st.slots[i].idle())
        .or_else(|| order.first().copied());
    let Some(v) = victim else { return Room::Ready };
    retire(&mut st.slots[v]);
    inner.counters.evictions.fetch_add(1, Relaxed);
    let name = st.slots[v].runner.model.name.clone();
    remove_if_idle(inner, st, &name)
}

fn remove_if_idle(inner: &Inner, st: &mut State, model: &str) -> Room {
    let Some(i) = st
        .slots
        .iter()
        .position(|s| s.runner.model.name == model && s.retiring)
    else {
        return Room::Ready;
    };
    if st.slots[i].idle() {
        st.slots.remove(i);
        inner.unloaded_n(1);
        Room::Ready
    } else {
        Room::WaitFor(st.slots[i].runner.id)
    }
}

/// Inserts a loading runner, pays `load_delay`, marks it ready.
async fn load(inner: &Arc<Inner>, req: &SchedRequest) -> RunnerRef {
    let id = inner.next_id.fetch_add(1, Relaxed);
    let spec = req.model.spec;
    let num_parallel = if spec.has("embedding") {
        1
    } else {
        inner.cfg.num_parallel.max(1)
    };
    let (ready_tx, ready_rx) = watch::channel(LoadState::Loading);
    let runner = Arc::new(Runner {
        id,
        model: req.model.clone(),
        num_ctx: inner.effective_ctx(req),
        ctx_explicit: req.num_ctx.is_some(),
        slots: Arc::new(Semaphore::new(num_parallel as usize)),
        num_parallel,
        ready: ready_rx,
        gauge: inner.counters.model(&req.model.name),
    });
    inner.lock().slots.push(Slot {
        runner: runner.clone(),
        refs: 1,
        keep_alive: req.keep_alive.unwrap_or(inner.cfg.default_keep_alive),
        expiry: Expiry::NotStarted,
        retiring: false,
        loading: true,
    });
    let reference = RunnerRef {
        inner: inner.clone(),
        runner,
    };
    let mut guard = LoadGuard {
        inner,
        id,
        ready: ready_tx,
        done: false,
    };
    let delay = inner.knobs.load().load_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    guard.finish();
    reference
}

/// Marks a load finished, or — if dropped first — aborts it.
struct LoadGuard<'a> {
    inner: &'a Inner,
    id: u64,
    ready: watch::Sender<LoadState>,
    done: bool,
}

impl LoadGuard<'_> {
    fn finish(&mut self) {
        let mut st = self.inner.lock();
        if let Some(slot) = st.slots.iter_mut().find(|s| s.runner.id == self.id) {
            slot.loading = false;
            slot.runner.gauge.loaded();
        }
        drop(st);
        self.inner.counters.loads.fetch_add(1, Relaxed);
        self.done = true;
        self.ready.send_replace(LoadState::Ready);
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.inner.lock().slots.retain(|s| s.runner.id != self.id);
        self.ready.send_replace(LoadState::Failed);
        self.inner.unloaded.send_modify(|e| *e += 1);
    }
}

async fn reaper(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        let next = {
            let mut st = inner.lock();
            let now = Instant::now();
            let before = st.slots.len();
            st.slots
                .retain(|s| !(s.idle() && matches!(s.expiry, Expiry::At(t) if t <= now)));
            let removed = (before - st.slots.len()) as u64;
            let next = st
                .slots
                .iter()
                .filter(|s| s.idle())
                .filter_map(|s| match s.expiry {
                    Expiry::At(t) => Some(t),
                    _ => None,
                })
                .min();
            drop(st);
            inner.unloaded_n(removed);
            next
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inner.reaper.notified() => {}
            _ = sleep_until_opt(next) => {}
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------
// References and leases

/// A counted reference on a runner; dropping the last one starts keep-alive.
#[derive(Debug)]
pub(crate) struct RunnerRef {
    inner: Arc<Inner>,
    runner: Arc<Runner>,
}

impl RunnerRef {
    /// `true` once loaded, `false` if the load was aborted.
    async fn wait_ready(&self) -> bool {
        let mut rx = self.runner.ready.clone();
        match rx.wait_for(|s| *s != LoadState::Loading).await {
            Ok(state) => *state == LoadState::Ready,
            Err(_) => false,
        }
    }
}

impl Drop for RunnerRef {
    fn drop(&mut self) {
        self.inner.release(self.runner.id);
    }
}

/// A ready runner plus one of its parallel slots, held for one request.
#[derive(Debug)]
pub(crate) struct Lease {
    runner: RunnerRef,
    _permit: OwnedSemaphorePermit,
    _in_flight: InFlightGuard,
    /// Handler start → runner ready.
    pub load_duration: Duration,
}

impl Lease {
    pub(crate) fn runner(&self) -> &Runner {
        &self.runner.runner
    }
}

#[cfg(test)]
mod tests;
