//! Cached responses and how they are replayed.
//!
//! An [`Entry`] keeps a successful upstream response exactly as it arrived: its
//! content type and its body as the list of chunks the upstream sent. Replaying it
//! for a request with the same route and stream flag gives back the same bytes in
//! the same chunks, so a hit is byte-identical to the original.
//!
//! For Ollama's native generate and chat, a cached stream also answers the same
//! request with `"stream": false`, assembled the way Ollama builds its whole answer:
//! the final chunk (with `done_reason`, metrics and `context`) with the text fields
//! replaced by the concatenation of every chunk's text, thinking, tool calls and
//! logprobs. The other way round is not done: Ollama streams one chunk per token,
//! and a whole answer cannot say where the token boundaries were, so a stream
//! request is never answered from a whole one (it goes upstream instead).
//!
//! Strings are re-escaped as Go's `encoding/json` writes them (`<`, `>`, `&`,
//! U+2028, U+2029 as `\u` escapes), so synthesised bodies read like Ollama's.
//!
//! # Where it sits
//!
//! `Cache::insert` (in `cache/mod.rs`) builds an `Entry` from the chunks the request
//! pipeline recorded while it streamed them to the client, once the upstream's answer
//! has ended cleanly with status 200 and is complete (a native stream ends with its
//! `done: true` line, an SSE stream with `data: [DONE]`). `Cache::lookup` finds it
//! (in moka, as an `Arc<Entry>`, or decoded from Redis by `redis::decode`) and calls
//! [`Entry::replay`]; the pipeline sends the [`Replay`] with an `Age` header and
//! `x-warmline-cache: hit`.
//!
//! # Invariants
//!
//! - An entry is never modified after it is built; a fresher answer replaces it.
//! - Chunks are `Bytes`, so a replay clones reference counts, never payloads.
//! - Only the native NDJSON streams of generate and chat are ever converted, and only
//!   from a stream to a whole answer. Every other replay is the stored bytes as they
//!   are, so a `/v1` answer (SSE or JSON) is only ever served to a request of the same
//!   shape; the cache's `StoreKey` keeps those shapes apart.
//! - A synthesised answer is built from a stream that ended with `"done": true`;
//!   a truncated stream (or any line that is not a JSON object) gives no answer.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Map, Value};

/// A stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Normalised model name (for purging one model).
    pub model: String,
    /// Whether the body is a stream (NDJSON or SSE).
    pub stream: bool,
    /// The upstream's `Content-Type` (`application/octet-stream` if it sent none),
    /// sent back unchanged on a same-shape replay.
    pub content_type: HeaderValue,
    /// The body, in the chunks the upstream sent it in. Chunk boundaries are kept
    /// because a streaming client sees them (one NDJSON line or SSE event per token).
    pub chunks: Vec<Bytes>,
    /// When the answer was stored. Wall-clock time, not `Instant`, because it travels
    /// through Redis to other processes; `age` treats a clock that went backwards as
    /// age zero.
    pub stored_at: SystemTime,
    /// How long the entry lives from `stored_at` (`cache.ttl_generation`,
    /// `ttl_embedding` or `ttl_show`, by route). Both tiers expire it on their own.
    pub ttl: Duration,
}

/// What a hit sends back.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The response's `Content-Type`: the stored one, or JSON for an assembled answer.
    pub content_type: HeaderValue,
    /// The body; a single chunk for an assembled answer.
    pub chunks: Vec<Bytes>,
    /// Whether the body is a stream (the gateway sets its headers accordingly).
    pub stream: bool,
}

/// Bytes an entry costs beyond its chunks: key, moka node, vectors, strings.
///
/// A fixed estimate: it keeps many tiny entries (short embeddings, `/api/show`)
/// from looking free to the byte budget.
pub const ENTRY_OVERHEAD: u64 = 320;
/// Bytes each chunk costs beyond its payload (the `Bytes` handle and its Arc).
///
/// A streamed answer has one chunk per token, so this is counted once per token.
pub const CHUNK_OVERHEAD: u64 = 64;

impl Entry {
    /// Memory this entry holds, as the cache's weigher counts it.
    ///
    /// The payload plus [`CHUNK_OVERHEAD`] per chunk, [`ENTRY_OVERHEAD`], and the
    /// model and content-type strings. The cache refuses to store an entry heavier
    /// than an eighth of its budget, so one huge answer cannot evict everything.
    pub fn weight(&self) -> u64 {
        let payload: u64 = self
            .chunks
            .iter()
            .map(|c| c.len() as u64 + CHUNK_OVERHEAD)
            .sum();
        ENTRY_OVERHEAD + payload + (self.model.len() + self.content_type.len()) as u64
    }

    /// Total body length in bytes (the sum of the chunks).
    pub fn body_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Time since the entry was stored; zero if the wall clock is now earlier than
    /// `stored_at` (a clock step, or another host's clock in Redis).
    ///
    /// Used for `Cache-Control: max-age`, the `Age` of a hit, and the time left to
    /// live when an entry is copied from Redis into memory.
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.stored_at)
            .unwrap_or_default()
    }

    /// The response for a request asking for `stream`, if this entry can give it.
    /// `native` says whether the route is Ollama's native generate or chat (the
    /// only ones synthesised across stream flags).
    ///
    /// - Same stream flag: the stored content type and chunks, unchanged.
    /// - Whole answer wanted, stream stored, `native` given: the answer assembled as
    ///   Ollama builds it, as one chunk of `application/json; charset=utf-8`, or
    ///   `None` if the stream is incomplete or not NDJSON objects.
    /// - Stream wanted, whole answer stored: `None`; the token boundaries are lost.
    ///
    /// `None` is a miss: the request goes upstream and its answer replaces the entry.
    pub fn replay(&self, stream: bool, native: Option<Native>) -> Option<Replay> {
        if stream == self.stream {
            return Some(Replay {
                content_type: self.content_type.clone(),
                chunks: self.chunks.clone(),
                stream,
            });
        }
        let native = native?;
        if !self.stream {
            return None;
        }
        let whole = assemble(&self.chunks, native)?;
        Some(Replay {
            content_type: HeaderValue::from_static("application/json; charset=utf-8"),
            chunks: vec![whole],
            stream: false,
        })
    }
}

/// Ollama's native generation routes, whose stream and whole forms convert.
///
/// The `/v1` routes have no variant: their streams are SSE with a different shape,
/// and they are stored per stream flag instead (see `response_variant` in
/// `cache/mod.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// `/api/generate`: the text is each chunk's top-level `response`.
    Generate,
    /// `/api/chat`: the text is each chunk's `message.content`.
    Chat,
}

/// Builds the `"stream": false` answer from NDJSON stream chunks.
///
/// The chunks are joined and split into lines (a line may span chunks); every
/// non-empty line must be a JSON object and the last one must say `"done": true`,
/// else `None`. The last object is the template: its text field is replaced by the
/// concatenated text of all lines, and `thinking`, `tool_calls` and the top-level
/// `logprobs` are replaced by the concatenation over all lines, or removed when
/// there is none. Other fields (`done_reason`, durations, counts, `context`) are the
/// final chunk's, which is where Ollama puts them. Numbers are re-printed by
/// serde_json, so a value may be spelled differently from Go (the same value).
fn assemble(chunks: &[Bytes], native: Native) -> Option<Bytes> {
    let body: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let mut objects = Vec::new();
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        objects.push(serde_json::from_slice::<Map<String, Value>>(line).ok()?);
    }
    let mut whole = objects.last()?.clone();
    if whole.get("done") != Some(&Value::Bool(true)) {
        return None;
    }
    let mut text = String::new();
    let mut thinking = String::new();
    let mut tool_calls = Vec::new();
    let mut logprobs = Vec::new();
    for object in &objects {
        let part = match native {
            Native::Generate => Some(object),
            Native::Chat => object.get("message").and_then(Value::as_object),
        };
        if let Some(part) = part {
            let text_key = if native == Native::Generate {
                "response"
            } else {
                "content"
            };
            text.push_str(
                part.get(text_key)
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            thinking.push_str(
                part.get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            if let Some(Value::Array(calls)) = part.get("tool_calls") {
                tool_calls.extend(calls.iter().cloned());
            }
        }
        if let Some(Value::Array(lp)) = object.get("logprobs") {
            logprobs.extend(lp.iter().cloned());
        }
    }
    let target = match native {
        Native::Generate => &mut whole,
        Native::Chat => whole.get_mut("message")?.as_object_mut()?,
    };
    let text_key = if native == Native::Generate {
        "response"
    } else {
        "content"
    };
    target.insert(text_key.into(), Value::String(text));
    set_or_remove(
        target,
        "thinking",
        (!thinking.is_empty()).then_some(Value::String(thinking)),
    );
    set_or_remove(
        target,
        "tool_calls",
        (!tool_calls.is_empty()).then_some(Value::Array(tool_calls)),
    );
    set_or_remove(
        &mut whole,
        "logprobs",
        (!logprobs.is_empty()).then_some(Value::Array(logprobs)),
    );
    Some(Bytes::from(go_json(&Value::Object(whole))))
}

/// Sets `key` in place (keeping its position) or removes it.
fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            if let Some(slot) = map.get_mut(key) {
                *slot = value;
            } else {
                map.insert(key.into(), value);
            }
        }
        None => {
            map.shift_remove(key);
        }
    }
}

/// Serialises like Go's `encoding/json`: HTML-sensitive characters escaped.
///
/// serde_json writes compact JSON with these characters raw; each is replaced by the
/// `\u` escape Go writes by default (`SetEscapeHTML(true)`). Outside strings these
/// characters cannot occur, so the replacement is safe on the whole text.
fn go_json(value: &Value) -> Vec<u8> {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(stream: bool, chunks: &[&str]) -> Entry {
        Entry {
            model: "llama3.2:latest".into(),
            stream,
            content_type: HeaderValue::from_static(if stream {
                "application/x-ndjson"
            } else {
                "application/json; charset=utf-8"
            }),
            chunks: chunks.iter().map(|c| Bytes::from(c.to_string())).collect(),
            stored_at: SystemTime::now(),
            ttl: Duration::from_secs(60),
        }
    }

    const CHAT_STREAM: &[&str] = &[
        "{\"model\":\"m\",\"created_at\":\"t1\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
        "{\"model\":\"m\",\"created_at\":\"t2\",\"message\":{\"role\":\"assistant\",\"content\":\"lo <b>\"},\"done\":false}\n",
        "{\"model\":\"m\",\"created_at\":\"t3\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":5,\"eval_count\":2}\n",
    ];

    #[test]
    fn same_stream_flag_replays_the_exact_chunks() {
        let e = entry(true, CHAT_STREAM);
        let replay = e.replay(true, Some(Native::Chat)).expect("replay");
        assert_eq!(replay.chunks, e.chunks);
        assert_eq!(replay.content_type, "application/x-ndjson");
    }

    #[test]
    fn a_stream_assembles_into_the_whole_answer() {
        let e = entry(true, CHAT_STREAM);
        let replay = e.replay(false, Some(Native::Chat)).expect("assembled");
        assert_eq!(
            String::from_utf8_lossy(&replay.chunks[0]),
            "{\"model\":\"m\",\"created_at\":\"t3\",\"message\":{\"role\":\"assistant\",\"content\":\"Hello \\u003cb\\u003e\"},\"done_reason\":\"stop\",\"done\":true,\"total_duration\":5,\"eval_count\":2}"
        );
        assert!(
            e.replay(false, None).is_none(),
            "OpenAI shapes are not synthesised"
        );
    }

    #[test]
    fn a_whole_answer_never_poses_as_a_stream() {
        let whole = "{\"model\":\"m\",\"created_at\":\"t\",\"response\":\"Hi\",\"done\":true}";
        let e = entry(false, &[whole]);
        assert!(e.replay(true, Some(Native::Generate)).is_none());
        assert_eq!(
            e.replay(false, Some(Native::Generate))
                .expect("same form")
                .chunks,
            e.chunks
        );
    }

    #[test]
    fn an_unfinished_stream_is_never_assembled() {
        let e = entry(true, &CHAT_STREAM[..2]);
        assert!(e.replay(false, Some(Native::Chat)).is_none());
    }

    #[test]
    fn weight_counts_payload_and_overhead() {
        let e = entry(true, CHAT_STREAM);
        let payload: usize = CHAT_STREAM.iter().map(|c| c.len()).sum();
        assert!(e.weight() >= payload as u64 + 3 * CHUNK_OVERHEAD + ENTRY_OVERHEAD);
    }
}
