//! Streaming a [`Running`] generation: pacing, framing and fault injection.
//!
//! One state machine serves all four streaming flavours (native generate and
//! chat as NDJSON, OpenAI chat and completions as SSE); only the frame
//! rendering differs. The body is a `futures_util::stream::unfold` over the
//! state, so there is no task or channel per stream, and the state's guards
//! do the accounting: if the client disconnects the body is dropped, the
//! [`GenerationGuard`](crate::counters::GenerationGuard) counts a
//! cancellation and the lease frees the runner slot.
//!
//! Timing: `prefill_delay` before the first token, `token_delay` before each
//! token. With `abort_rate`, a stream yields an error after 1..=n frames,
//! which makes hyper close the connection without the terminating chunk —
//! what a crashed proxy or runner looks like to a client.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use tokio::time::Instant;

use crate::api::{ChatChunk, GenerateChunk};
use crate::counters::Outcome;
use crate::frames::{self, ChunkMeta};
use crate::run::{Event, Running, sleep};
use crate::wire;

/// How frames are rendered.
#[derive(Debug, Clone)]
pub(crate) enum Flavor {
    Generate,
    Chat,
    OpenAiChat(ChunkMeta),
    OpenAiCompletion(ChunkMeta),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prefill,
    Thinking(usize),
    Content(usize),
    Tools,
    Final,
    Done,
}

struct StreamState {
    run: Running,
    flavor: Flavor,
    phase: Phase,
    sent: usize,
    abort_at: Option<usize>,
    prefill: Duration,
    eval_started: Instant,
}

/// The streaming response for `run`.
pub(crate) fn response(run: Running, flavor: Flavor) -> Response {
    let content_type = match flavor {
        Flavor::Generate | Flavor::Chat => wire::NDJSON,
        Flavor::OpenAiChat(_) | Flavor::OpenAiCompletion(_) => wire::SSE,
    };
    let abort_at = (run.knobs.abort_rate > 0.0 && rand::random::<f64>() < run.knobs.abort_rate)
        .then(|| {
            let thinking = match flavor {
                Flavor::OpenAiCompletion(_) => 0,
                _ => run.reply.thinking_spans.len(),
            };
            let frames = thinking
                + run.reply.content_spans.len()
                + usize::from(!run.reply.tool_calls.is_empty());
            if frames == 0 {
                0
            } else {
                1 + rand::random_range(0..frames)
            }
        });
    let state = StreamState {
        run,
        flavor,
        phase: Phase::Prefill,
        sent: 0,
        abort_at,
        prefill: Duration::ZERO,
        eval_started: Instant::now(),
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    }));
    wire::response(StatusCode::OK, content_type, body)
}

impl StreamState {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            match self.phase {
                Phase::Prefill => {
                    let t = Instant::now();
                    sleep(self.run.knobs.prefill_delay).await;
                    self.prefill = t.elapsed();
                    self.eval_started = Instant::now();
                    self.phase = Phase::Thinking(0);
                }
                Phase::Thinking(i) => {
                    if i >= self.run.reply.thinking_spans.len() {
                        self.phase = Phase::Content(0);
                        continue;
                    }
                    sleep(self.run.knobs.token_delay).await;
                    self.phase = Phase::Thinking(i + 1);
                    let ev = Event::Thinking(self.run.reply.thinking_token(i));
                    if let Some(frame) = render(&self.flavor, &self.run, ev, self.sent == 0) {
                        return Some(self.emit(frame));
                    }
                }
                Phase::Content(i) => {
                    if i >= self.run.reply.content_spans.len() {
                        self.phase = Phase::Tools;
                        continue;
                    }
                    sleep(self.run.knobs.token_delay).await;
                    self.phase = Phase::Content(i + 1);
                    let ev = Event::Content(self.run.reply.content_token(i));
                    if let Some(frame) = render(&self.flavor, &self.run, ev, self.sent == 0) {
                        return Some(self.emit(frame));
                    }
                }
                Phase::Tools => {
                    self.phase = Phase::Final;
                    if !self.run.reply.tool_calls.is_empty()
                        && let Some(frame) =
                            render(&self.flavor, &self.run, Event::ToolCalls, self.sent == 0)
                    {
                        return Some(self.emit(frame));
                    }
                }
                Phase::Final => {
                    if self.abort_at == Some(self.sent) {
                        return Some(self.abort());
                    }
                    let metrics = self.run.metrics(self.prefill, self.eval_started.elapsed());
                    // Free the slot before the client can see the last frame,
                    // so counters read right after it are already settled.
                    self.run.lease = None;
                    if let Some(g) = self.run.guard.take() {
                        g.settle(Outcome::Completed);
                    }
                    self.phase = Phase::Done;
                    let first = self.sent == 0;
                    return render(&self.flavor, &self.run, Event::Done(metrics), first).map(Ok);
                }
                Phase::Done => return None,
            }
        }
    }

    fn emit(&mut self, frame: Bytes) -> io::Result<Bytes> {
        if self.abort_at == Some(self.sent) {
            return self.abort();
        }
        self.sent += 1;
        Ok(frame)
    }

    fn abort(&mut self) -> io::Result<Bytes> {
        self.phase = Phase::Done;
        self.run.lease = None;
        if let Some(g) = self.run.guard.take() {
            g.settle(Outcome::Aborted);
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "ollama-sim: simulated connection abort (abort_rate)",
        ))
    }
}

/// Renders one event in `flavor`; `None` when the flavour shows nothing for
/// it. `first` is true until a frame has been sent.
fn render(flavor: &Flavor, run: &Running, ev: Event<'_>, first: bool) -> Option<Bytes> {
    match flavor {
        Flavor::Generate => Some(native_generate(run, ev)),
        Flavor::Chat => Some(native_chat(run, ev)),
        Flavor::OpenAiChat(meta) => frames::chat_frame(meta, run, ev, first),
        Flavor::OpenAiCompletion(meta) => frames::completion_frame(meta, run, ev),
    }
}

fn native_generate(run: &Running, ev: Event<'_>) -> Bytes {
    let mut c = GenerateChunk::new(&run.model);
    match ev {
        Event::Thinking(t) => c.thinking = t,
        Event::Content(t) => c.response = t,
        Event::ToolCalls => c.tool_calls = &run.reply.tool_calls,
        Event::Done(m) => {
            c = c.with_metrics(m);
            c.done = true;
            c.done_reason = run.reply.done_reason;
            c.context = &run.context;
        }
    }
    wire::ndjson_line(&c)
}

fn native_chat(run: &Running, ev: Event<'_>) -> Bytes {
    let mut c = ChatChunk::new(&run.model);
    match ev {
        Event::Thinking(t) => c.message.thinking = t,
        Event::Content(t) => c.message.content = t,
        Event::ToolCalls => c.message.tool_calls = &run.reply.tool_calls,
        Event::Done(m) => {
            c = c.with_metrics(m);
            c.done = true;
            c.done_reason = run.reply.done_reason;
        }
    }
    wire::ndjson_line(&c)
}
