//! An OpenAI-compatible engine's answer in Ollama's shape (see the module
//! above for the requests).
//!
//! - A whole answer is read to its end and rewritten as Ollama's object.
//! - A stream (SSE) is rewritten event by event as it arrives, one NDJSON line
//!   per token, then Ollama's final line with `done: true`, its `done_reason` and
//!   its counts. A stream that ends without saying why it finished (an engine
//!   that cut it short) or without `[DONE]` ends with an error line instead, so
//!   it is never taken for whole (nor cached).
//! - An error answer becomes `{"error": "..."}` with the engine's status.
//!
//! Counts and durations: `prompt_eval_count` and `eval_count` are the engine's
//! `usage` (a stream without it counts its token events for `eval_count` and
//! leaves `prompt_eval_count` out); `total_duration` is
//! measured by Warmline from sending the request to the answer's end; a stream's
//! `prompt_eval_duration` is the time to its first token and `eval_duration` the
//! rest; a whole answer reports the engine's own `timings` where it sends them
//! (llama.cpp's server does), else all of its time as `eval_duration`.
//! `load_duration` is left out: these engines do not say, and Warmline learns a
//! host's parallelism from the time to first token when it is missing.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use serde_json::{Map, Value, json};

use super::{Native, Shape};
use crate::pipeline::pool::PooledBody;

/// The most of a whole answer (or of one stream event) held to translate it.
const MAX_WHOLE: usize = 64 << 20;

/// The headers of a translated answer: Ollama's content types, nothing of the
/// engine's.
pub(crate) fn headers(shape: &Shape) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    let content_type = if shape.stream {
        "application/x-ndjson"
    } else {
        "application/json; charset=utf-8"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers
}

/// Ollama's answer to a request that only loads the model.
pub(crate) fn load_only(shape: &Shape) -> Bytes {
    let model = Value::String(shape.model.clone());
    let object = match shape.native {
        Native::Chat => json!({
            "model": model, "created_at": now(),
            "message": { "role": "assistant", "content": "" },
            "done_reason": "load", "done": true,
        }),
        Native::Generate => json!({
            "model": model, "created_at": now(), "response": "", "done": true, "done_reason": "load",
        }),
        Native::Embed => json!({ "model": model, "embeddings": [] }),
        Native::Embeddings => json!({ "embedding": [] }),
    };
    line(&object, shape.stream)
}

/// An engine's error answer as Ollama's `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, body: &[u8]) -> Bytes {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            let error = v.get("error").or_else(|| v.get("detail"))?;
            error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .map(str::to_owned)
                .or_else(|| Some(error.to_string()))
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("engine error")
                    .to_ascii_lowercase()
            } else {
                text
            }
        });
    line(&json!({ "error": message }), false)
}

/// The engine's body (a pooled connection's, or any other), becoming Ollama's
/// as it is read.
pub(crate) struct Translating<B = PooledBody> {
    inner: B,
    shape: Shape,
    /// Bytes not yet translated: the whole answer, or a stream's partial event.
    pending: Vec<u8>,
    stream: StreamState,
    done: bool,
}

#[derive(Default)]
struct StreamState {
    finish: Option<String>,
    usage: Option<(u64, u64)>,
    tokens: u64,
    first_token: Option<Instant>,
    finished: bool,
}

impl<B> Translating<B> {
    pub(crate) fn new(inner: B, shape: Shape) -> Translating<B> {
        Translating {
            inner,
            shape,
            pending: Vec::new(),
            stream: StreamState::default(),
            done: false,
        }
    }

    /// Translates the complete events in `pending` into NDJSON lines.
    fn events(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((end, gap)) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end + gap).take(end).collect();
            for data in event
                .split(|b| *b == b'\n')
                .filter_map(|l| l.strip_prefix(b"data:"))
                .map(<[u8]>::trim_ascii)
            {
                if data == b"[DONE]" {
                    out.extend_from_slice(&self.finish());
                    continue;
                }
                if let Ok(chunk) = serde_json::from_slice::<Value>(data) {
                    out.extend_from_slice(&self.chunk(&chunk));
                }
            }
        }
        out
    }

    /// One SSE chunk: a token line for its text; its finish reason and usage
    /// are kept for the final line.
    fn chunk(&mut self, chunk: &Value) -> Vec<u8> {
        if let Some(usage) = usage(chunk) {
            self.stream.usage = Some(usage);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Vec::new();
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stream.finish = Some(reason.to_owned());
        }
        let text = choice
            .get("delta")
            .and_then(|d| d.get("content"))
            .or_else(|| choice.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if text.is_empty() {
            return Vec::new();
        }
        self.stream.tokens += 1;
        self.stream.first_token.get_or_insert_with(Instant::now);
        let model = Value::String(self.shape.model.clone());
        let object = match self.shape.native {
            Native::Generate => {
                json!({ "model": model, "created_at": now(), "response": text, "done": false })
            }
            _ => json!({
                "model": model, "created_at": now(),
                "message": { "role": "assistant", "content": text }, "done": false,
            }),
        };
        line(&object, true).to_vec()
    }

    /// The stream's last line: Ollama's final chunk if the engine said why it
    /// finished, else an error (it was cut short).
    fn finish(&mut self) -> Vec<u8> {
        self.stream.finished = true;
        let Some(reason) = self.stream.finish.take() else {
            return error_line("the engine ended the stream before it finished");
        };
        let total = self.shape.started.elapsed();
        let prompt_eval = self
            .stream
            .first_token
            .map_or(Duration::ZERO, |t| t.duration_since(self.shape.started));
        let (prompt_tokens, eval_tokens) = match self.stream.usage {
            Some((prompt, eval)) => (Some(prompt), eval),
            None => (None, self.stream.tokens),
        };
        let mut object = self.final_head(&reason, "");
        counts(
            &mut object,
            total,
            prompt_tokens,
            prompt_eval,
            eval_tokens,
            total.saturating_sub(prompt_eval),
        );
        line(&Value::Object(object), true).to_vec()
    }

    /// `model`, `created_at`, the (empty) text and `done`/`done_reason`, in
    /// Ollama's order for the route.
    fn final_head(&self, reason: &str, text: &str) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("model".into(), Value::String(self.shape.model.clone()));
        object.insert("created_at".into(), Value::String(now()));
        let reason = Value::String(done_reason(reason).to_owned());
        if self.shape.native == Native::Generate {
            object.insert("response".into(), Value::String(text.to_owned()));
            object.insert("done".into(), Value::Bool(true));
            object.insert("done_reason".into(), reason);
        } else {
            object.insert(
                "message".into(),
                json!({ "role": "assistant", "content": text }),
            );
            object.insert("done_reason".into(), reason);
            object.insert("done".into(), Value::Bool(true));
        }
        object
    }

    /// The whole answer, rewritten.
    fn whole(&self, body: &[u8]) -> Bytes {
        let Ok(answer) = serde_json::from_slice::<Value>(body) else {
            return Bytes::from(error_line("the engine's answer is not JSON"));
        };
        let total = self.shape.started.elapsed();
        let model = Value::String(self.shape.model.clone());
        let (prompt_tokens, eval_tokens) = match usage(&answer) {
            Some((prompt, eval)) => (Some(prompt), eval),
            None => (None, 0),
        };
        match self.shape.native {
            Native::Embed | Native::Embeddings => {
                let mut vectors: Vec<(u64, Vec<f64>)> = answer
                    .get("data")
                    .and_then(Value::as_array)
                    .map(|data| {
                        data.iter()
                            .enumerate()
                            .map(|(i, item)| {
                                let index = item
                                    .get("index")
                                    .and_then(Value::as_u64)
                                    .unwrap_or(i as u64);
                                let vector = item
                                    .get("embedding")
                                    .and_then(Value::as_array)
                                    .map(|v| v.iter().filter_map(Value::as_f64).collect())
                                    .unwrap_or_default();
                                (index, vector)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                vectors.sort_by_key(|(index, _)| *index);
                if self.shape.native == Native::Embeddings {
                    let first = vectors
                        .into_iter()
                        .next()
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    return line(&json!({ "embedding": first }), false);
                }
                let embeddings: Vec<Vec<f64>> =
                    vectors.into_iter().map(|(_, v)| normalised(v)).collect();
                let object = json!({
                    "model": model, "embeddings": embeddings,
                    "total_duration": nanos(total), "prompt_eval_count": prompt_tokens.unwrap_or(0),
                });
                line(&object, false)
            }
            Native::Chat | Native::Generate => {
                let choice = answer.get("choices").and_then(|c| c.get(0));
                let text = choice
                    .and_then(|c| {
                        c.get("message")
                            .and_then(|m| m.get("content"))
                            .or_else(|| c.get("text"))
                    })
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let reason = choice
                    .and_then(|c| c.get("finish_reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("stop");
                // llama.cpp's server reports its own split of the time.
                let timing = |key: &str| {
                    answer
                        .get("timings")
                        .and_then(|t| t.get(key))
                        .and_then(Value::as_f64)
                        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
                };
                let (prompt_eval, eval) = match (timing("prompt_ms"), timing("predicted_ms")) {
                    (Some(prompt), Some(predicted)) => (prompt, predicted),
                    _ => (Duration::ZERO, total),
                };
                let mut object = self.final_head(reason, text);
                counts(
                    &mut object,
                    total,
                    prompt_tokens,
                    prompt_eval,
                    eval_tokens,
                    eval,
                );
                line(&Value::Object(object), false)
            }
        }
    }
}

impl<B> Body for Translating<B>
where
    B: Body<Data = Bytes, Error = std::io::Error> + Unpin,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if this.pending.len() + data.len() > MAX_WHOLE {
                        this.done = true;
                        let message = "the engine's answer is too large to translate";
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(error_line(
                            message,
                        ))))));
                    }
                    this.pending.extend_from_slice(&data);
                    if this.shape.stream {
                        let out = this.events();
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                }
                Some(Err(err)) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(err)));
                }
                None => {
                    this.done = true;
                    let last = if !this.shape.stream {
                        let whole = std::mem::take(&mut this.pending);
                        this.whole(&whole)
                    } else if this.stream.finished {
                        return Poll::Ready(None);
                    } else {
                        // Ended without [DONE]: whatever the engine meant, not whole.
                        Bytes::from(error_line("the engine's stream ended without [DONE]"))
                    };
                    return Poll::Ready(Some(Ok(Frame::data(last))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Where the first complete SSE event in `buf` ends, and the length of the
/// blank line after it (LF or CRLF line ends).
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// `usage.prompt_tokens` and `usage.completion_tokens`.
fn usage(value: &Value) -> Option<(u64, u64)> {
    let usage = value.get("usage")?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    Some((count("prompt_tokens"), count("completion_tokens")))
}

/// Ollama's counts and durations (nanoseconds), in its order; the prompt's
/// count only where the engine reported it.
fn counts(
    object: &mut Map<String, Value>,
    total: Duration,
    prompt_tokens: Option<u64>,
    prompt_eval: Duration,
    eval_tokens: u64,
    eval: Duration,
) {
    object.insert("total_duration".into(), nanos(total).into());
    if let Some(prompt_tokens) = prompt_tokens {
        object.insert("prompt_eval_count".into(), prompt_tokens.into());
    }
    object.insert("prompt_eval_duration".into(), nanos(prompt_eval).into());
    object.insert("eval_count".into(), eval_tokens.into());
    object.insert("eval_duration".into(), nanos(eval).into());
}

/// OpenAI's finish reasons as Ollama's `done_reason`.
fn done_reason(reason: &str) -> &str {
    match reason {
        "length" => "length",
        "stop" | "tool_calls" | "function_call" | "eos" => "stop",
        other => other,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A vector scaled to length 1, as Ollama's `/api/embed` returns them.
fn normalised(vector: Vec<f64>) -> Vec<f64> {
    let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return vector;
    }
    vector.into_iter().map(|x| x / norm).collect()
}

/// Now, as Ollama writes `created_at`.
fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// A JSON object as a body: an NDJSON line (newline-terminated) for a stream,
/// the bare object otherwise.
fn line(value: &Value, stream: bool) -> Bytes {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    if stream {
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// An in-stream error line in Ollama's shape.
fn error_line(message: &str) -> Vec<u8> {
    line(&json!({ "error": message }), true).to_vec()
}
