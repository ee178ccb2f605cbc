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
    pub content_type: HeaderValue,
    pub chunks: Vec<Bytes>,
    pub stored_at: SystemTime,
    pub ttl: Duration,
}

/// What a hit sends back.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub content_type: HeaderValue,
    pub chunks: Vec<Bytes>,
    pub stream: bool,
}

/// Bytes an entry costs beyond its chunks: key, moka node, vectors, strings.
pub const ENTRY_OVERHEAD: u64 = 320;
/// Bytes each chunk costs beyond its payload (the `Bytes` handle and its Arc).
pub const CHUNK_OVERHEAD: u64 = 64;

impl Entry {
    /// Memory this entry holds, as the cache's weigher counts it.
    pub fn weight(&self) -> u64 {
        let payload: u64 = self
            .chunks
            .iter()
            .map(|c| c.len() as u64 + CHUNK_OVERHEAD)
            .sum();
        ENTRY_OVERHEAD + payload + (self.model.len() + self.content_type.len()) as u64
    }

    /// Total body length.
    pub fn body_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Seconds since the entry was stored.
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.stored_at)
            .unwrap_or_default()
    }

    /// The response for a request asking for `stream`, if this entry can give it.
    /// `native` says whether the route is Ollama's native generate or chat (the
    /// only ones synthesised across stream flags).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    Generate,
    Chat,
}

/// Builds the `"stream": false` answer from NDJSON stream chunks.
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
