//! OpenAI request bodies and their translation to native fields.
//!
//! Decoding mirrors Ollama's middleware (`openai/openai.go`): typed structs,
//! Go decode errors, then `temperature`/`top_p` defaulting to 1.0,
//! `max_tokens` → `num_predict`, `stop` as string or string array, content
//! parts joined into one message, and `reasoning_effort` → `think`.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{Message, Tool};
use crate::body::{BOOL, FLOAT64, GoStruct, GoType, INT, STRING};
use crate::error::ApiError;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ChatCompletionRequest {
    pub(super) model: Option<String>,
    pub(super) messages: Option<Vec<OaiMessage>>,
    pub(super) stream: Option<bool>,
    pub(super) stream_options: Option<StreamOptions>,
    pub(super) max_tokens: Option<i64>,
    pub(super) seed: Option<i64>,
    pub(super) stop: Option<Value>,
    pub(super) temperature: Option<f64>,
    pub(super) top_p: Option<f64>,
    pub(super) frequency_penalty: Option<f64>,
    pub(super) presence_penalty: Option<f64>,
    pub(super) response_format: Option<ResponseFormat>,
    pub(super) tools: Option<Vec<Tool>>,
    pub(super) reasoning: Option<Reasoning>,
    pub(super) reasoning_effort: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct OaiMessage {
    pub(super) role: Option<String>,
    pub(super) content: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct StreamOptions {
    pub(super) include_usage: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ResponseFormat {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) json_schema: Option<JsonSchema>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct JsonSchema {
    pub(super) schema: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Reasoning {
    pub(super) effort: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CompletionRequest {
    pub(super) model: Option<String>,
    pub(super) prompt: Option<String>,
    pub(super) suffix: Option<String>,
    pub(super) max_tokens: Option<i64>,
    pub(super) temperature: Option<f64>,
    pub(super) top_p: Option<f64>,
    pub(super) seed: Option<i64>,
    pub(super) stop: Option<Value>,
    pub(super) frequency_penalty: Option<f64>,
    pub(super) presence_penalty: Option<f64>,
    pub(super) stream: Option<bool>,
    pub(super) stream_options: Option<StreamOptions>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct EmbedRequest {
    pub(super) model: Option<String>,
    pub(super) input: Option<Value>,
    pub(super) dimensions: Option<i64>,
    pub(super) encoding_format: Option<String>,
}

pub(super) static CHAT_GO: GoStruct = GoStruct {
    name: "openai.ChatCompletionRequest",
    fields: &[
        ("model", STRING),
        ("messages", GoType::Slice(&GoType::Any, "[]openai.Message")),
        ("stream", BOOL),
        ("max_tokens", INT),
        ("seed", INT),
        ("temperature", FLOAT64),
        ("top_p", FLOAT64),
        ("frequency_penalty", FLOAT64),
        ("presence_penalty", FLOAT64),
        ("reasoning_effort", STRING),
    ],
};

pub(super) static COMPLETION_GO: GoStruct = GoStruct {
    name: "openai.CompletionRequest",
    fields: &[
        ("model", STRING),
        ("prompt", STRING),
        ("suffix", STRING),
        ("stream", BOOL),
        ("max_tokens", INT),
        ("seed", INT),
        ("temperature", FLOAT64),
        ("top_p", FLOAT64),
        ("frequency_penalty", FLOAT64),
        ("presence_penalty", FLOAT64),
    ],
};

pub(super) static EMBED_GO: GoStruct = GoStruct {
    name: "openai.EmbedRequest",
    fields: &[
        ("model", STRING),
        ("input", GoType::Any),
        ("dimensions", INT),
        ("encoding_format", STRING),
    ],
};

/// The native `options` an OpenAI request maps to.
pub(super) fn native_options(
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<i64>,
    seed: Option<i64>,
    stop: Option<Vec<String>>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert(
        "temperature".into(),
        Value::from(temperature.unwrap_or(1.0)),
    );
    o.insert("top_p".into(), Value::from(top_p.unwrap_or(1.0)));
    if let Some(n) = max_tokens {
        o.insert("num_predict".into(), Value::from(n));
    }
    if let Some(s) = seed {
        o.insert("seed".into(), Value::from(s));
    }
    if let Some(stop) = stop {
        o.insert("stop".into(), Value::from(stop));
    }
    if let Some(f) = frequency_penalty {
        o.insert("frequency_penalty".into(), Value::from(f));
    }
    if let Some(p) = presence_penalty {
        o.insert("presence_penalty".into(), Value::from(p));
    }
    o
}

pub(super) fn stop_list(stop: Option<Value>) -> Result<Option<Vec<String>>, ApiError> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s])),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(ApiError::BadRequest(format!(
                    "invalid type for 'stop' field: {}",
                    go_type_name(&other)
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid type for 'stop' field: {}",
            go_type_name(&other)
        ))),
    }
}

pub(super) fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Converts one OpenAI message to a native one (text parts joined, images kept).
pub(super) fn native_message(m: OaiMessage) -> Result<Message, ApiError> {
    let mut out = Message {
        role: m.role.map(|r| r.to_ascii_lowercase()),
        content: None,
        images: None,
    };
    match m.content {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.content = Some(s),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            let mut images = Vec::new();
            for part in parts {
                let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                match kind {
                    "text" => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                    "image_url" => {
                        let url = part
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if url.starts_with("http://") || url.starts_with("https://") {
                            return Err(ApiError::bad(
                                "image URLs are not currently supported, please use base64 encoded data instead",
                            ));
                        }
                        images.push(url.to_owned());
                    }
                    "input_audio" => {}
                    _ => return Err(ApiError::bad("invalid message format")),
                }
            }
            out.content = Some(text);
            if !images.is_empty() {
                out.images = Some(images);
            }
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid message content type: {}",
                go_type_name(&other)
            )));
        }
    }
    Ok(out)
}

/// `reasoning_effort` / `reasoning.effort` to native `think`.
pub(super) fn think_from_effort(effort: Option<String>) -> Result<Option<bool>, ApiError> {
    match effort.as_deref() {
        None => Ok(None),
        Some("none") => Ok(Some(false)),
        Some("minimal" | "low" | "medium" | "high" | "max" | "xhigh" | "ultra") => Ok(Some(true)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid reasoning value: '{other}' (must be \"none\", \"minimal\", \"low\", \"medium\", \"high\", \"xhigh\", \"max\" or \"ultra\")"
        ))),
    }
}
