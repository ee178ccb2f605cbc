//! Recording without locks on the request path: each finished request becomes one
//! [`Event`], sent on a bounded channel; the events are applied to the aggregate
//! (HDR histograms per route kind and per model, the rolling history, the ring
//! of recent requests) in batches, off the request path.
//!
//! The request path pays one `try_send` (a lock-free array queue): no histogram,
//! no mutex, no allocation beyond the event itself, and no wake-up of another
//! thread. Nobody waits on the channel: a metrics thread wakes every
//! [`BATCH_EVERY`] (and at each second boundary, to close the second) and applies
//! what has queued up, and a reader applies whatever is still queued before it
//! reads, under the aggregate's mutex, so it always sees every request that
//! finished before it asked. (Waking a thread per event cost more than all of
//! Warmline's own work on a request: two context switches per request on a
//! 2-core machine.) If events ever pile up to [`CAPACITY`], new ones are dropped
//! and counted (`warmline_metrics_events_dropped_total`) rather than slowing
//! requests down.
//!
//! Histograms record microseconds from 1 µs to 10 minutes at 3 significant
//! digits, and are allocated the first time their route or model is seen, so
//! unused routes cost nothing. Distributions per model exist only for installed
//! models (the caller checks), so client-chosen names cannot grow them.
//!
//! Memory is bounded throughout: the channel holds at most [`CAPACITY`] events,
//! the history rings are fixed (see `history`), the recent-request ring holds
//! [`RECENT`] lines, and histograms have a fixed size whatever they record.
//!
//! Time: intervals are stamped with wall-clock seconds (`SystemTime`), because
//! the history is served with Unix timestamps; if the clock steps backwards, the
//! interval being filled simply stays open until the clock passes it again.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::history::{Accumulator, MINUTES_KEPT, Point, Ring, SECONDS_KEPT};
use crate::wire::route::RouteKind;

/// Events that may wait to be applied; one more is dropped and counted.
pub const CAPACITY: usize = 64 * 1024;
/// How often the metrics thread applies what queued up.
pub const BATCH_EVERY: Duration = Duration::from_millis(100);
/// Recent requests kept for `/warmline/requests`.
pub const RECENT: usize = 500;

/// One finished request, as the request path saw it.
///
/// Built once per request when its response body ends or is dropped (by the
/// proxy's `Finish` guard, or the router's `observe` middleware for requests the
/// proxy never saw) and handed to [`super::Metrics::finished`]. Optional fields are
/// `None` when the request never reached that stage.
#[derive(Debug, Clone)]
pub struct Event {
    /// The route kind, the label of every per-route distribution.
    pub kind: RouteKind,
    /// The status sent (499 when the client left before the response headers).
    pub status: u16,
    /// A 5xx, or a stream that broke after its status was sent.
    pub failed: bool,
    /// Request arrival to the end of the response body.
    pub latency: Duration,
    /// Request arrival to the first body byte sent.
    pub ttft: Option<Duration>,
    /// Time spent in Warmline itself (up to the response headers, without the
    /// upstream's time and the queue).
    pub overhead: Option<Duration>,
    /// Wait for a model slot.
    pub queue: Option<Duration>,
    /// The model load this request paid (a cold start).
    pub load: Option<Duration>,
    /// `hit`, `miss`, `coalesced`, `bypass`; `None` when the cache was not asked.
    /// Hits and coalesced joins count as hits in the history, misses as misses.
    pub cache: Option<&'static str>,
    /// An installed model's normalised name. Only set for installed models, which
    /// is what keeps the per-model distributions bounded.
    pub model: Option<Arc<str>>,
    /// The upstream that answered: its URL as shown to people (password masked).
    pub host: Option<Arc<str>>,
    /// Output tokens and the time Ollama spent generating them.
    pub tokens: Option<(u64, Duration)>,
}

impl Event {
    /// A request with nothing known but its kind, status and latency; `failed`
    /// is set for a 5xx. Use struct update syntax to add what else is known.
    pub fn basic(kind: RouteKind, status: u16, latency: Duration) -> Event {
        Event {
            kind,
            status,
            failed: status >= 500,
            latency,
            ttft: None,
            overhead: None,
            queue: None,
            load: None,
            cache: None,
            model: None,
            host: None,
            tokens: None,
        }
    }
}

/// One line of `/warmline/requests` (and of the access log): an [`Event`] in
/// owned, serialisable form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentRequest {
    /// When it was applied by the aggregator, milliseconds since the Unix epoch:
    /// up to `BATCH_EVERY` after it finished (all events of a batch share it).
    pub at_ms: u64,
    /// The route kind's label (`chat`, `openai_chat`, ...).
    pub route: Cow<'static, str>,
    /// The installed model's normalised name, if any.
    pub model: Option<Arc<str>>,
    pub status: u16,
    /// A 5xx, or a stream that broke after its status was sent.
    pub failed: bool,
    /// Arrival to the end of the response body.
    pub latency_ms: f64,
    /// Arrival to the first body byte sent.
    pub ttft_ms: Option<f64>,
    /// The cache outcome (`hit`, `miss`, `coalesced`, `bypass`).
    pub cache: Option<Cow<'static, str>>,
    /// The upstream that answered.
    pub host: Option<Arc<str>>,
    /// The request paid a model load.
    pub cold_start: bool,
}

/// The distributions of one route kind or model, since start-up. Boxed where
/// kept, so an unused slot costs a pointer, not six histograms.
#[derive(Debug)]
pub(crate) struct Dists {
    /// Arrival to the end of the response body, µs.
    pub(crate) latency: Histogram<u64>,
    /// The exact sum of the (clamped) latencies, µs. Kept but not read at present:
    /// the Prometheus `_sum` is derived from the histogram's mean instead.
    pub(crate) latency_sum_micros: u64,
    /// Arrival to the first body byte, µs.
    pub(crate) ttft: Histogram<u64>,
    /// Warmline's own time up to the response headers, µs.
    pub(crate) overhead: Histogram<u64>,
    /// Wait for a model slot, µs.
    pub(crate) queue: Histogram<u64>,
    /// Model loads requests paid (cold starts), µs.
    pub(crate) load: Histogram<u64>,
    /// Output tokens over every answer that reported them with a duration.
    pub(crate) output_tokens: u64,
    /// Ollama's generation time for those tokens, µs.
    pub(crate) generation_micros: u64,
}

impl Dists {
    /// Empty distributions, boxed.
    fn new() -> Box<Dists> {
        Box::new(Dists {
            latency: super::new_histogram(),
            latency_sum_micros: 0,
            ttft: super::new_histogram(),
            overhead: super::new_histogram(),
            queue: super::new_histogram(),
            load: super::new_histogram(),
            output_tokens: 0,
            generation_micros: 0,
        })
    }

    /// Adds one event: its latency always, the other durations when present.
    fn record(&mut self, event: &Event) {
        let micros = record(&mut self.latency, event.latency);
        self.latency_sum_micros = self.latency_sum_micros.saturating_add(micros);
        for (histogram, value) in [
            (&mut self.ttft, event.ttft),
            (&mut self.overhead, event.overhead),
            (&mut self.queue, event.queue),
            (&mut self.load, event.load),
        ] {
            if let Some(value) = value {
                record(histogram, value);
            }
        }
        if let Some((tokens, took)) = event.tokens {
            self.output_tokens += tokens;
            self.generation_micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        }
    }

    /// Adds only an event's queue wait and overhead (what the figures over
    /// every request show).
    fn record_waits(&mut self, event: &Event) {
        for (histogram, value) in [
            (&mut self.overhead, event.overhead),
            (&mut self.queue, event.queue),
        ] {
            if let Some(value) = value {
                record(histogram, value);
            }
        }
    }

    /// Output tokens per second of generation, over every answer that said
    /// (total tokens over total generation time, not a mean of rates); `None`
    /// before any such answer.
    pub(crate) fn tokens_per_second(&self) -> Option<f64> {
        (self.generation_micros > 0)
            .then(|| self.output_tokens as f64 / (self.generation_micros as f64 / 1e6))
    }
}

/// Records `value` in microseconds, clamped to the histograms' range (1 µs to
/// `MAX_MICROS`), so recording never fails; returns what was recorded.
fn record(histogram: &mut Histogram<u64>, value: Duration) -> u64 {
    let micros = u64::try_from(value.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, super::MAX_MICROS);
    histogram.saturating_record(micros);
    micros
}

/// Everything the aggregator keeps, behind one mutex (see [`Recorder::read`]).
#[derive(Debug)]
pub(crate) struct Aggregate {
    /// Per route kind, indexed by `RouteKind::index`; `None` until first seen.
    pub(crate) routes: Vec<Option<Box<Dists>>>,
    /// Per installed model (normalised name), created when first seen.
    /// Keyed by installed models' names (not by anything a client makes up).
    pub(crate) models: HashMap<Arc<str>, Box<Dists>, foldhash::fast::RandomState>,
    /// Every request, for the global queue-wait and overhead figures (only
    /// those two of its distributions are filled).
    pub(crate) all: Box<Dists>,
    /// The second and the minute being filled.
    second: Accumulator,
    minute: Accumulator,
    /// The second and minute being filled (seconds since the epoch).
    second_start: u64,
    minute_start: u64,
    /// Closed seconds (the last hour) and minutes (the last day).
    pub(crate) seconds: Ring,
    pub(crate) minutes: Ring,
    /// The last [`RECENT`] requests, oldest first.
    pub(crate) recent: VecDeque<RecentRequest>,
    /// Events waiting to be applied (whoever holds the lock applies them).
    incoming: Receiver<Event>,
    /// Where each request is also written as one line, if anywhere.
    pub(crate) access_log: Option<AccessLog>,
}

/// An open access log file: one text line per finished request, appended, and
/// flushed after each batch of events (so a line can lag its request by up to
/// `BATCH_EVERY`). Not rotated here.
#[derive(Debug)]
pub(crate) struct AccessLog {
    /// Where it was asked to go (compared to tell a reload that changes it).
    pub(crate) path: std::path::PathBuf,
    /// `None` if the file could not be opened: lines are then discarded.
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl Drop for AccessLog {
    /// What is still buffered goes to the file this log was opened on.
    fn drop(&mut self) {
        self.flush();
    }
}

impl AccessLog {
    /// Opens (creating if needed) `path` for appending. A failure is logged as a
    /// warning and leaves the log closed; it never returns an error.
    pub(crate) fn new(path: std::path::PathBuf) -> AccessLog {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| tracing::warn!("cannot open the access log {}: {e}", path.display()))
            .ok()
            .map(std::io::BufWriter::new);
        AccessLog { path, file }
    }

    /// Writes one line (`at_ms status route model=... latency=...`, `-` for
    /// unknown fields); write errors are ignored.
    fn write(&mut self, line: &RecentRequest) {
        use std::io::Write as _;
        let Some(file) = &mut self.file else { return };
        fn opt<S: AsRef<str>>(v: &Option<S>) -> &str {
            v.as_ref().map_or("-", AsRef::as_ref)
        }
        let ttft = line.ttft_ms.map_or("-".to_owned(), |t| format!("{t:.1}ms"));
        let _ = writeln!(
            file,
            "{} {} {} model={} latency={:.1}ms ttft={ttft} cache={} host={}{}",
            line.at_ms,
            line.status,
            line.route,
            opt(&line.model),
            line.latency_ms,
            opt(&line.cache),
            opt(&line.host),
            if line.cold_start { " cold_start" } else { "" }
        );
    }

    /// Flushes the buffer to the file; errors are ignored.
    fn flush(&mut self) {
        use std::io::Write as _;
        if let Some(file) = &mut self.file {
            let _ = file.flush();
        }
    }
}

impl Aggregate {
    /// Empty, with the second being filled starting at `now` and the minute at
    /// the start of `now`'s minute.
    fn new(now: u64, incoming: Receiver<Event>) -> Aggregate {
        Aggregate {
            routes: (0..RouteKind::ALL.len()).map(|_| None).collect(),
            models: HashMap::default(),
            all: Dists::new(),
            second: Accumulator::new(),
            minute: Accumulator::new(),
            second_start: now,
            minute_start: now - now % 60,
            seconds: Ring::new(SECONDS_KEPT),
            minutes: Ring::new(MINUTES_KEPT),
            recent: VecDeque::with_capacity(RECENT),
            incoming,
            access_log: None,
        }
    }

    /// The second still being filled, so far (charts leave it out; alerts judge
    /// it too, so a burst of failures shows at once rather than a second later).
    pub(crate) fn current_second(&self) -> Point {
        self.second.peek(self.second_start)
    }

    /// The minute still being filled, so far.
    pub(crate) fn current_minute(&self) -> Point {
        self.minute.peek(self.minute_start)
    }

    /// Closes every interval that ended before `now` (seconds since the epoch).
    /// Empty intervals are pushed too, so the rings stay evenly spaced. After a
    /// gap longer than a ring holds, the intervals that would fall out anyway are
    /// skipped rather than pushed one by one, so a long sleep costs at most one
    /// ring's worth of work.
    pub(crate) fn roll(&mut self, now: u64) {
        // After a long quiet spell, skip straight to the last hour.
        if now > self.second_start + SECONDS_KEPT as u64 {
            let skipped = self.second.take(self.second_start);
            self.seconds.push(skipped);
            self.second_start = now - SECONDS_KEPT as u64;
        }
        while self.second_start < now {
            let point = self.second.take(self.second_start);
            self.seconds.push(point);
            self.second_start += 1;
        }
        if now > self.minute_start + 60 * MINUTES_KEPT as u64 {
            let skipped = self.minute.take(self.minute_start);
            self.minutes.push(skipped);
            self.minute_start = now - now % 60 - 60 * MINUTES_KEPT as u64;
        }
        while self.minute_start + 60 <= now {
            let point = self.minute.take(self.minute_start);
            self.minutes.push(point);
            self.minute_start += 60;
        }
    }

    /// Applies every queued event and closes the intervals that ended. False
    /// once every sender is gone.
    fn catch_up(&mut self) -> bool {
        let (now_s, now_ms) = now_secs_ms();
        self.roll(now_s);
        let connected = loop {
            match self.incoming.try_recv() {
                Ok(event) => self.apply(event, now_ms),
                Err(TryRecvError::Empty) => break true,
                Err(TryRecvError::Disconnected) => break false,
            }
        };
        if let Some(log) = &mut self.access_log {
            log.flush();
        }
        connected
    }

    /// Adds one event to every distribution it belongs to, to the second and the
    /// minute being filled, to the recent ring and to the access log.
    fn apply(&mut self, event: Event, now_ms: u64) {
        self.routes[event.kind.index()]
            .get_or_insert_with(Dists::new)
            .record(&event);
        // Read only for the global queue-wait and overhead figures.
        self.all.record_waits(&event);
        if let Some(model) = &event.model {
            match self.models.get_mut(model) {
                Some(dists) => dists.record(&event),
                None => {
                    let mut dists = Dists::new();
                    dists.record(&event);
                    self.models.insert(Arc::clone(model), dists);
                }
            }
        }
        for acc in [&mut self.second, &mut self.minute] {
            acc.requests += 1;
            acc.errors += u64::from(event.failed);
            match event.cache {
                Some("hit" | "coalesced") => acc.hits += 1,
                Some("miss") => acc.misses += 1,
                _ => {}
            }
            acc.cold_starts += u64::from(event.load.is_some());
            record(&mut acc.latency, event.latency);
            if let Some(ttft) = event.ttft {
                record(&mut acc.ttft, ttft);
            }
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let line = RecentRequest {
            at_ms: now_ms,
            route: Cow::Borrowed(event.kind.as_str()),
            model: event.model.clone(),
            status: event.status,
            failed: event.failed,
            latency_ms: ms(event.latency),
            ttft_ms: event.ttft.map(ms),
            cache: event.cache.map(Cow::Borrowed),
            host: event.host.clone(),
            cold_start: event.load.is_some(),
        };
        if let Some(log) = &mut self.access_log {
            log.write(&line);
        }
        self.recent.push_back(line);
    }
}

/// The sending side, held by [`super::Metrics`]; the metrics thread ends soon
/// after it is dropped (it holds only a `Weak` to the aggregate).
#[derive(Debug)]
pub(crate) struct Recorder {
    /// The bounded channel into the aggregate.
    events: SyncSender<Event>,
    /// The aggregate; use [`Recorder::read`], which applies queued events first.
    pub(crate) aggregate: Arc<Mutex<Aggregate>>,
    /// Events dropped because the channel was full.
    pub(crate) dropped: std::sync::atomic::AtomicU64,
}

impl Recorder {
    /// Creates the channel and the aggregate and starts the `warmline-metrics`
    /// thread. If the thread cannot be spawned, that is logged and readers apply
    /// the queued events themselves (the channel still bounds them).
    pub(crate) fn start() -> Recorder {
        let (events, incoming) = std::sync::mpsc::sync_channel(CAPACITY);
        let aggregate = Arc::new(Mutex::new(Aggregate::new(now().as_secs(), incoming)));
        let shared = Arc::downgrade(&aggregate);
        let spawned = std::thread::Builder::new()
            .name("warmline-metrics".into())
            .spawn(move || apply_in_batches(&shared));
        if let Err(err) = spawned {
            // Readers still apply events as they read.
            tracing::error!("cannot start the metrics thread: {err}; history updates when read");
        }
        Recorder {
            events,
            aggregate,
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Hands an event over, or counts it dropped. Never blocks, never wakes anyone.
    pub(crate) fn record(&self, event: Event) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.events.try_send(event)
        {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The aggregate with every event sent before this call applied and every
    /// interval up to now closed: a reader sees the requests that finished
    /// before it asked. Holds the lock only as long as applying a batch takes
    /// (microseconds), never waits for another thread.
    pub(crate) fn read(&self) -> MutexGuard<'_, Aggregate> {
        let mut aggregate = self
            .aggregate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        aggregate.catch_up();
        aggregate
    }
}

/// The metrics thread: applies queued events every [`BATCH_EVERY`] and at each
/// second boundary (to close the second for the history), until the recorder
/// is gone.
fn apply_in_batches(aggregate: &Weak<Mutex<Aggregate>>) {
    loop {
        let now = now();
        let to_next_second = Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()));
        std::thread::sleep(BATCH_EVERY.min(to_next_second));
        let Some(aggregate) = aggregate.upgrade() else {
            return;
        };
        let connected = aggregate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .catch_up();
        if !connected {
            return;
        }
    }
}

/// Wall-clock time since the Unix epoch (zero if the clock is before it).
fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// [`now`] as whole seconds and whole milliseconds.
fn now_secs_ms() -> (u64, u64) {
    let now = now();
    (now.as_secs(), now.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ms: u64, cache: Option<&'static str>) -> Event {
        Event {
            ttft: Some(Duration::from_millis(ms / 2)),
            cache,
            model: Some(Arc::from("m:latest")),
            ..Event::basic(RouteKind::Chat, 200, Duration::from_millis(ms))
        }
    }

    #[test]
    fn events_reach_the_distributions_history_and_recent_ring() {
        let recorder = Recorder::start();
        for ms in 1..=50 {
            recorder.record(event(ms, Some(if ms % 2 == 0 { "hit" } else { "miss" })));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let aggregate = recorder.read();
            if aggregate.recent.len() == 50 {
                let chat = aggregate.routes[RouteKind::Chat.index()]
                    .as_ref()
                    .expect("chat seen");
                assert_eq!(chat.latency.len(), 50);
                assert!(
                    aggregate.routes[RouteKind::Tags.index()].is_none(),
                    "unused: not allocated"
                );
                assert_eq!(aggregate.models["m:latest"].ttft.len(), 50);
                break;
            }
            drop(aggregate);
            assert!(std::time::Instant::now() < deadline, "events never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Within two seconds the interval closes into the history.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let aggregate = recorder.read();
            let points = aggregate.seconds.since(0);
            let total = super::super::history::total(&points);
            if total.requests == 50 {
                assert_eq!((total.hits, total.misses), (25, 25));
                break;
            }
            drop(aggregate);
            assert!(std::time::Instant::now() < deadline, "history never closed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_quiet_hour_keeps_the_history_bounded() {
        let (_events, incoming) = std::sync::mpsc::sync_channel(1);
        let mut aggregate = Aggregate::new(1_000_000, incoming);
        aggregate.roll(1_000_000 + 10 * 3600);
        assert_eq!(aggregate.seconds.since(0).len(), SECONDS_KEPT);
        assert!(aggregate.minutes.since(0).len() <= MINUTES_KEPT);
    }
}
