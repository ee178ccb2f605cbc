//! Ollama's native API in front of an OpenAI-compatible engine: a native
//! request for a model that an `kind = "openai"` host serves is sent to it in
//! the OpenAI form, and the answer comes back in Ollama's shape.
//!
//! ```text
//!  /api/chat        ─▶ /v1/chat/completions   (messages as they are)
//!  /api/generate    ─▶ /v1/chat/completions   (system + the prompt as a user message)
//!    raw: true      ─▶ /v1/completions        (the prompt as written, with any suffix)
//!  /api/embed       ─▶ /v1/embeddings         (vectors L2-normalised, as Ollama's are)
//!  /api/embeddings  ─▶ /v1/embeddings         (one vector, as given)
//! ```
//!
//! The translation changes neither the messages nor the sampling, so the same
//! request in either API gets the same answer at temperature 0. Options:
//! `temperature`, `top_p`, `top_k`, `min_p`, `seed`, `stop`, `presence_penalty`,
//! `frequency_penalty`, `repeat_penalty` keep their names, `num_predict` becomes
//! `max_tokens` (negative: no limit). `format: "json"` becomes `response_format:
//! {"type": "json_object"}`. `keep_alive` is Warmline's own (see `warmth`) and not
//! sent: these engines keep their model. Everything else a request may carry
//! has no OpenAI equivalent — images, tools and tool calls, `think`, `logprobs`,
//! a JSON-schema `format`, `template`, `context`, a `suffix` without `raw`, any
//! other option (`num_ctx` and the rest of the load-time ones are the engine's
//! own settings) — and is refused with 400 in Ollama's shape, naming the field,
//! rather than dropped. A request with no prompt, messages or input only loads
//! the model in Ollama; here it is answered at once (`done_reason: "load"`).
//!
//! The answer side is in [`answer`]; `/api/tags`, `/api/ps` and `/api/show` in
//! [`listing`].

pub(crate) mod answer;
pub(crate) mod listing;

use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::wire::route::RouteKind;

/// Which native answer to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Native {
    Chat,
    Generate,
    Embed,
    Embeddings,
}

impl Native {
    /// The native routes a translation exists for.
    pub(crate) fn of(kind: RouteKind) -> Option<Native> {
        match kind {
            RouteKind::Chat => Some(Native::Chat),
            RouteKind::Generate => Some(Native::Generate),
            RouteKind::Embed => Some(Native::Embed),
            RouteKind::Embeddings => Some(Native::Embeddings),
            _ => None,
        }
    }
}

/// What the answer's translation needs to know of the request.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) native: Native,
    /// Whether the native answer streams (NDJSON).
    pub(crate) stream: bool,
    /// The model as the client named it (Ollama's answers echo it).
    pub(crate) model: String,
    /// When the request was sent: the base of the durations the answer reports.
    pub(crate) started: Instant,
}

/// A native request, translated.
#[derive(Debug)]
pub(crate) enum Translated {
    /// Send `body` to the engine's `path`.
    Send {
        path: &'static str,
        body: Bytes,
        shape: Shape,
    },
    /// A load-only request: answered without the engine.
    LoadOnly(Shape),
}

/// Translates a native request of `native` kind for an engine that knows the
/// model as `engine_model`. The error names what cannot be sent.
pub(crate) fn request(
    native: Native,
    body: &[u8],
    engine_model: &str,
) -> Result<Translated, String> {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return Err("the request body is not a JSON object".into());
    };
    let model = match fields.remove("model") {
        Some(Value::String(model)) => model,
        _ => return Err("the request names no model".into()),
    };
    // Warmline's own (warm models are pinned with it); an engine keeps its model.
    fields.remove("keep_alive");
    let stream = match fields.remove("stream") {
        None | Some(Value::Null) => matches!(native, Native::Chat | Native::Generate),
        Some(Value::Bool(stream)) => stream && matches!(native, Native::Chat | Native::Generate),
        Some(_) => return Err("stream must be true or false".into()),
    };
    let shape = Shape {
        native,
        stream,
        model,
        started: Instant::now(),
    };
    let mut out = Map::new();
    out.insert("model".into(), Value::String(engine_model.to_owned()));
    let path = match native {
        Native::Chat => {
            let messages = chat_messages(fields.remove("messages"))?;
            if messages.is_empty() {
                return Ok(Translated::LoadOnly(shape));
            }
            out.insert("messages".into(), Value::Array(messages));
            "/v1/chat/completions"
        }
        Native::Generate => {
            let prompt = text(fields.remove("prompt"), "prompt")?;
            let system = text(fields.remove("system"), "system")?;
            let suffix = text(fields.remove("suffix"), "suffix")?;
            let raw = matches!(fields.remove("raw"), Some(Value::Bool(true)));
            if prompt.is_empty() {
                return Ok(Translated::LoadOnly(shape));
            }
            if raw {
                if !system.is_empty() {
                    return Err("system has no meaning with raw: true".into());
                }
                out.insert("prompt".into(), Value::String(prompt));
                if !suffix.is_empty() {
                    out.insert("suffix".into(), Value::String(suffix));
                }
                "/v1/completions"
            } else {
                if !suffix.is_empty() {
                    return Err(
                        "suffix can only be sent to an OpenAI-compatible engine with raw: true"
                            .into(),
                    );
                }
                let mut messages = Vec::new();
                if !system.is_empty() {
                    messages.push(json!({ "role": "system", "content": system }));
                }
                messages.push(json!({ "role": "user", "content": prompt }));
                out.insert("messages".into(), Value::Array(messages));
                "/v1/chat/completions"
            }
        }
        Native::Embed | Native::Embeddings => {
            let key = if native == Native::Embed {
                "input"
            } else {
                "prompt"
            };
            let input = match fields.remove(key) {
                None | Some(Value::Null) => Value::Array(Vec::new()),
                Some(Value::String(s)) if s.is_empty() => Value::Array(Vec::new()),
                Some(Value::String(s)) => Value::String(s),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                    Value::Array(items)
                }
                Some(_) => return Err(format!("{key} must be a string or a list of strings")),
            };
            if input.as_array().is_some_and(Vec::is_empty) {
                return Ok(Translated::LoadOnly(shape));
            }
            out.insert("input".into(), input);
            if let Some(dimensions) = fields.remove("dimensions").filter(|d| !d.is_null()) {
                out.insert("dimensions".into(), dimensions);
            }
            // Ollama truncates long inputs by default; so do these engines.
            fields.remove("truncate");
            "/v1/embeddings"
        }
    };
    if let Some(format) = fields.remove("format") {
        match format {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::String(s) if s == "json" => {
                out.insert("response_format".into(), json!({ "type": "json_object" }));
            }
            _ => {
                return Err(
                    "format: only \"json\" can be sent to an OpenAI-compatible engine".into(),
                );
            }
        }
    }
    if let Some(options) = fields.remove("options") {
        sampling(options, &mut out)?;
    }
    for (name, value) in &fields {
        // Fields at their zero value say nothing: Ollama's clients send some.
        let unset = match value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Number(n) => n.as_f64() == Some(0.0),
        };
        if !unset {
            return Err(format!(
                "{name} cannot be sent to an OpenAI-compatible engine"
            ));
        }
    }
    if shape.stream {
        out.insert("stream".into(), Value::Bool(true));
        // The counts Ollama's final chunk carries.
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let body = Bytes::from(serde_json::to_vec(&Value::Object(out)).unwrap_or_default());
    Ok(Translated::Send { path, body, shape })
}

/// A string field, empty when absent.
fn text(value: Option<Value>, name: &str) -> Result<String, String> {
    match value {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// Native chat messages as OpenAI's: role and text content only.
fn chat_messages(messages: Option<Value>) -> Result<Vec<Value>, String> {
    let messages = match messages {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err("messages must be a list".into()),
    };
    messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let Value::Object(mut message) = message else {
                return Err(format!("messages[{i}] must be an object"));
            };
            let role = text(message.remove("role"), "role")?;
            if !matches!(role.as_str(), "system" | "user" | "assistant") {
                return Err(format!(
                    "messages[{i}].role {role:?} cannot be sent to an OpenAI-compatible engine"
                ));
            }
            let content = text(message.remove("content"), "content")?;
            if let Some((name, _)) = message.iter().find(|(_, v)| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            }) {
                return Err(format!(
                    "messages[{i}].{name} cannot be sent to an OpenAI-compatible engine"
                ));
            }
            Ok(json!({ "role": role, "content": content }))
        })
        .collect()
}

/// Ollama's sampling options under their OpenAI (or llama.cpp) names.
fn sampling(options: Value, out: &mut Map<String, Value>) -> Result<(), String> {
    let options = match options {
        Value::Null => return Ok(()),
        Value::Object(options) => options,
        _ => return Err("options must be an object".into()),
    };
    for (name, value) in options {
        if value.is_null() {
            continue;
        }
        match name.as_str() {
            "temperature" | "top_p" | "top_k" | "min_p" | "seed" | "stop" | "presence_penalty"
            | "frequency_penalty" | "repeat_penalty" => {
                out.insert(name, value);
            }
            "num_predict" => {
                if value.as_i64().is_some_and(|n| n >= 0) {
                    out.insert("max_tokens".into(), value);
                } else if value.as_i64().is_none() {
                    return Err("options.num_predict must be a whole number".into());
                }
            }
            _ => {
                return Err(format!(
                    "options.{name} cannot be sent to an OpenAI-compatible engine"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
