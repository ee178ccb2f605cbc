//! What a request leaves behind: its metrics event, recorded exactly once, and its
//! `Server-Timing` header.
//!
//! A [`Finish`] is created when a request enters the pipeline and records the
//! request when it is dropped — by the pipeline for an answer that is whole (an
//! error, a cache hit), or by the response body ([`Measured`]) when a streamed
//! answer ends or the client goes away. Whatever path a request takes, it is
//! counted once.
//!
//! The upstream side writes what it learns (host, model, queue wait, time to the
//! upstream's headers, the load the answer paid, its tokens) into a shared
//! [`Trace`]; a coalesced follower reads the flight leader's trace instead of
//! having one of its own.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use http::HeaderValue;

use crate::cache::Outcome;
use crate::metrics::Metrics;
use crate::wire::headers::push_timing;
use crate::wire::route::RouteKind;

/// What the upstream side of a request learned, for its metrics: written by
/// `attempt` and the response body, read when the request is recorded.
#[derive(Debug, Default, Clone)]
pub(crate) struct UpstreamFacts {
    pub(crate) host: Option<Arc<str>>,
    /// The installed model the request named.
    pub(crate) model: Option<Arc<str>>,
    pub(crate) queue: Option<Duration>,
    /// A load Warmline waited for before sending (a pinned `/v1` load).
    pub(crate) pinned_load: Option<Duration>,
    /// From sending to the upstream's response headers.
    pub(crate) upstream_head: Option<Duration>,
    /// The load the answer paid (a cold start), and its output tokens.
    pub(crate) load: Option<Duration>,
    pub(crate) tokens: Option<(u64, Duration)>,
    /// The stream broke after its status was sent.
    pub(crate) broken: bool,
}

/// Shared between a request's `Finish` and its upstream exchange (a few short,
/// uncontended lock sections per request).
#[derive(Debug, Default)]
pub(crate) struct TraceCell(std::sync::Mutex<UpstreamFacts>);

pub(crate) type Trace = Arc<TraceCell>;

impl TraceCell {
    /// Changes the facts in place (a short, uncontended lock).
    pub(crate) fn update(&self, change: impl FnOnce(&mut UpstreamFacts)) {
        if let Ok(mut facts) = self.0.lock() {
            change(&mut facts);
        }
    }

    /// Reads the facts in place (no copy of their names).
    pub(crate) fn with<T>(&self, read: impl FnOnce(&UpstreamFacts) -> T) -> T {
        match self.0.lock() {
            Ok(facts) => read(&facts),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// A copy of the facts as they are now.
    pub(crate) fn get(&self) -> UpstreamFacts {
        self.0.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// The status recorded for a request whose client went away before its
/// response headers (nginx's "client closed request").
pub const CLIENT_CLOSED: u16 = 499;

/// Records a request's outcome in the metrics exactly once: when dropped.
#[derive(Debug)]
pub(crate) struct Finish {
    metrics: Arc<Metrics>,
    kind: RouteKind,
    status: u16,
    started: Instant,
    /// Told when a model-changing request succeeded (the cache re-reads digests).
    models_changed: Option<Arc<tokio::sync::Notify>>,
    /// The upstream exchange's facts (the flight's, for a shared one).
    pub(crate) trace: Trace,
    /// What the cache did (`hit`, `miss`, `coalesced`, `bypass`); `None` with the
    /// cache off. Set by the pipeline's one `settle` step.
    pub(crate) cache: Option<Outcome>,
    /// A coalesced follower: the load and tokens belong to the leader.
    pub(crate) follower: bool,
    head_at: Option<Instant>,
    first_byte: Option<Instant>,
    /// When a whole answer was recorded (its end); `None` while a body streams.
    ended: Option<Instant>,
    broken: bool,
}

impl Finish {
    /// Starts the record of a request of `kind` that arrived at `started`.
    /// `models_changed` is told when the request succeeds (a pull, create, copy or
    /// delete: the cache re-reads model digests).
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        kind: RouteKind,
        started: Instant,
        models_changed: Option<Arc<tokio::sync::Notify>>,
    ) -> Finish {
        Finish {
            metrics,
            kind,
            status: 0,
            started,
            models_changed,
            trace: Arc::default(),
            cache: None,
            follower: false,
            head_at: None,
            first_byte: None,
            ended: None,
            broken: false,
        }
    }

    /// Records the outcome now: the response is whole (an error, a cache hit).
    pub(crate) fn record(mut self, status: u16) {
        let now = Instant::now();
        self.status = status;
        self.head_at = Some(now);
        self.first_byte = Some(now);
        self.ended = Some(now);
    }

    /// The response headers are ready now; the outcome is recorded when the
    /// returned value (held by the body) is dropped.
    pub(crate) fn on_drop(mut self, status: u16) -> Finish {
        self.status = status;
        self.head_at = Some(Instant::now());
        self
    }

    /// Warmline's own time so far, without the upstream's and the queue's.
    fn overhead(&self, facts: &UpstreamFacts) -> Duration {
        let until = self.head_at.unwrap_or_else(Instant::now);
        let spent = until.saturating_duration_since(self.started);
        [facts.upstream_head, facts.queue, facts.pinned_load]
            .into_iter()
            .flatten()
            .fold(spent, Duration::saturating_sub)
    }

    /// The `Server-Timing` header for the response about to be sent.
    pub(crate) fn server_timing(&self) -> HeaderValue {
        // One buffer, written in place and handed to the header without a copy:
        // this runs for every answer.
        let mut value = Vec::with_capacity(96);
        let (overhead, queue, load, upstream) = self.trace.with(|facts| {
            let phases = (facts.queue, facts.pinned_load, facts.upstream_head);
            (self.overhead(facts), phases.0, phases.1, phases.2)
        });
        push_timing(&mut value, "overhead", Some(overhead));
        push_timing(&mut value, "queue", queue);
        push_timing(&mut value, "load", load);
        push_timing(&mut value, "upstream", upstream);
        if let Some(cache) = self.cache {
            value.extend_from_slice(b", cache;desc=");
            value.extend_from_slice(cache.as_str().as_bytes());
        }
        HeaderValue::from_maybe_shared(Bytes::from(value))
            .unwrap_or(HeaderValue::from_static("overhead"))
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let facts = self.trace.get();
        let started = self.started;
        let since = |at: Option<Instant>| at.map(|at| at.saturating_duration_since(started));
        let broken = self.broken || facts.broken;
        // No status yet: the client left before the response headers (counted
        // as nginx does, 499 "client closed request", not as an error of ours).
        let status = if self.status == 0 {
            CLIENT_CLOSED
        } else {
            self.status
        };
        self.metrics.finished(crate::metrics::Event {
            kind: self.kind,
            status,
            failed: status >= 500 || broken,
            // A whole answer ended when it was recorded (no second clock read).
            latency: self.ended.map_or_else(
                || started.elapsed(),
                |at| at.saturating_duration_since(started),
            ),
            ttft: since(self.first_byte),
            overhead: self.head_at.map(|_| self.overhead(&facts)),
            queue: facts.queue,
            load: if self.follower { None } else { facts.load },
            cache: self.cache.map(Outcome::as_str),
            model: facts.model,
            host: facts.host,
            tokens: if self.follower { None } else { facts.tokens },
        });
        if let Some(changed) = &self.models_changed
            && (200..300).contains(&self.status)
        {
            changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way to the client, holding the request's `Finish`
    /// until it ends: notes the first byte (time to first token) and a break.
    pub(crate) struct Measured<S> {
        #[pin]
        inner: S,
        finish: Finish,
    }
}

impl<S> Measured<S> {
    /// Wraps `inner`; `finish` is recorded when the body is dropped.
    pub(crate) fn new(inner: S, finish: Finish) -> Measured<S> {
        Measured { inner, finish }
    }
}

impl<S, E> Stream for Measured<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let polled = this.inner.poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) if !chunk.is_empty() => {
                this.finish.first_byte.get_or_insert_with(Instant::now);
            }
            Poll::Ready(Some(Err(_))) => this.finish.broken = true,
            _ => {}
        }
        polled
    }
}
