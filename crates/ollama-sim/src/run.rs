//! A generation in progress: its runner slot, its planned reply and its clock,
//! and the steps it is rendered from.
//!
//! The leaf of the generation path: `inference` starts a [`Running`], `stream`
//! drives it step by step ([`Event`]), `frames` and the native renderers turn each
//! step into bytes, and `embeddings` shares the prefill [`sleep`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::Metrics;
use crate::counters::{GenerationGuard, Outcome};
use crate::generation::Reply;
use crate::knobs::Knobs;
use crate::scheduler::Lease;

/// A generation holding its runner slot, with the reply planned.
#[derive(Debug)]
pub(crate) struct Running {
    pub lease: Option<Lease>,
    pub guard: Option<GenerationGuard>,
    pub reply: Reply,
    pub knobs: Arc<Knobs>,
    pub started: Instant,
    pub load_duration: Duration,
    pub prompt_tokens: u64,
    /// `/api/generate`'s `context` (empty for chat and raw mode).
    pub context: Vec<u32>,
    /// The model name as typed, echoed in every chunk.
    pub model: String,
}

/// One step of a generation, before rendering.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event<'a> {
    Thinking(&'a str),
    Content(&'a str),
    ToolCalls,
    Done(Metrics),
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

impl Running {
    /// Final metrics; durations are at least 1ns so none is omitted.
    pub(crate) fn metrics(&self, prefill: Duration, eval: Duration) -> Metrics {
        Metrics {
            total_duration: nanos(self.started.elapsed()),
            load_duration: nanos(self.load_duration),
            prompt_eval_count: self.prompt_tokens.max(1),
            prompt_eval_duration: nanos(prefill),
            eval_count: self.reply.eval_count,
            eval_duration: nanos(eval),
        }
    }

    /// Generation time of the whole reply at the current knobs.
    pub(crate) fn eval_time(&self) -> Duration {
        self.knobs.token_delay * self.reply.eval_count.min(u64::from(u32::MAX)) as u32
    }

    /// Non-streaming: wait as long as streaming would take, release the slot,
    /// count the completion and return the metrics.
    pub(crate) async fn finish(&mut self) -> Metrics {
        let prefill_start = Instant::now();
        sleep(self.knobs.prefill_delay).await;
        let eval_start = Instant::now();
        sleep(self.eval_time()).await;
        let m = self.metrics(eval_start - prefill_start, eval_start.elapsed());
        self.lease = None;
        if let Some(g) = self.guard.take() {
            g.settle(Outcome::Completed);
        }
        m
    }
}

/// `sleep` that costs nothing for zero.
pub(crate) async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}
