//! Ollama's native wire types.
//!
//! Requests are decoded leniently (every field optional, `null` = absent, as
//! Go does) and validated by the handlers so errors carry Ollama's wording.
//! Each request type has a [`GoStruct`] twin describing its Go field types,
//! used only to phrase decode errors (see [`crate::body`]).
//!
//! Responses are serialised from borrowed structs whose field order is the
//! order of Ollama's Go structs (`api/types.go`), because Go's
//! `encoding/json` emits fields in declaration order and clients diff bytes.
//! `omitempty` fields are skipped when empty or zero, exactly like Go.

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::body::{BOOL, GoStruct, GoType, INT, Kind, MAP, STRING};
use crate::clock::Timestamp;
use crate::keepalive::RawKeepAlive;

/// Ollama's version as reported by `/api/version` and the startup log.
pub const VERSION: &str = "0.33.0";

// ---------------------------------------------------------------------------
// Requests

/// `POST /api/generate`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct GenerateRequest {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub suffix: Option<String>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub context: Option<Vec<i64>>,
    pub stream: Option<bool>,
    pub raw: Option<bool>,
    pub format: Option<Value>,
    #[serde(default)]
    pub keep_alive: RawKeepAlive,
    pub images: Option<Vec<String>>,
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub think: RawThink,
    pub top_logprobs: Option<i64>,
}

/// `POST /api/chat`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ChatRequest {
    pub model: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub stream: Option<bool>,
    pub format: Option<Value>,
    #[serde(default)]
    pub keep_alive: RawKeepAlive,
    pub tools: Option<Vec<Tool>>,
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub think: RawThink,
    pub top_logprobs: Option<i64>,
}

/// A chat message as sent by a client.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Message {
    pub role: Option<String>,
    pub content: Option<String>,
    pub images: Option<Vec<String>>,
}

/// A tool definition (`{"type":"function","function":{…}}`).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Tool {
    pub function: Option<ToolFunction>,
}

/// The function part of a tool definition.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct ToolFunction {
    pub name: Option<String>,
    pub parameters: Option<Value>,
}

/// `POST /api/embed`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EmbedRequest {
    pub model: Option<String>,
    pub input: Option<Value>,
    pub truncate: Option<bool>,
    pub dimensions: Option<i64>,
    #[serde(default)]
    pub keep_alive: RawKeepAlive,
    pub options: Option<Map<String, Value>>,
}

/// `POST /api/embeddings` (legacy).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EmbeddingsRequest {
    pub model: Option<String>,
    pub prompt: Option<String>,
    #[serde(default)]
    pub keep_alive: RawKeepAlive,
    pub options: Option<Map<String, Value>>,
}

/// `POST /api/show`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ShowRequest {
    pub model: Option<String>,
    pub name: Option<String>,
    pub verbose: Option<bool>,
}

/// `POST /api/pull` and `POST /api/push`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TransferRequest {
    pub model: Option<String>,
    pub name: Option<String>,
    pub stream: Option<bool>,
}

/// `POST /api/create`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct CreateRequest {
    pub model: Option<String>,
    pub name: Option<String>,
    pub from: Option<String>,
    pub files: Option<Map<String, Value>>,
    pub system: Option<String>,
    pub stream: Option<bool>,
}

/// `POST /api/copy`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct CopyRequest {
    pub source: Option<String>,
    pub destination: Option<String>,
}

/// `DELETE /api/delete`.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct DeleteRequest {
    pub model: Option<String>,
    pub name: Option<String>,
}

/// The `think` field before validation: a bool, a level string or garbage.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum RawThink {
    #[default]
    Absent,
    Bool(bool),
    Level(String),
    /// Not a bool or a string.
    Invalid,
}

impl RawThink {
    /// Validates the value; `Ok(None)` when absent. Error text as Ollama's.
    pub(crate) fn resolve(&self) -> Result<Option<bool>, String> {
        match self {
            RawThink::Absent => Ok(None),
            RawThink::Bool(b) => Ok(Some(*b)),
            RawThink::Level(l) if matches!(l.as_str(), "high" | "medium" | "low" | "max") => {
                Ok(Some(true))
            }
            RawThink::Level(l) => Err(format!(
                "invalid think value: {} (must be \"high\", \"medium\", \"low\", \"max\", true, or false)",
                go_quote(l)
            )),
            RawThink::Invalid => Err("think must be a boolean or string".to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for RawThink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawThink;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a think value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawThink, E> {
                Ok(RawThink::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<RawThink, E> {
                Ok(RawThink::Absent)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawThink, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawThink, E> {
                Ok(RawThink::Bool(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawThink, E> {
                Ok(RawThink::Level(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawThink, E> {
                Ok(RawThink::Invalid)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawThink, E> {
                Ok(RawThink::Invalid)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawThink, E> {
                Ok(RawThink::Invalid)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawThink, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawThink::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawThink, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawThink::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// `cmp.Or(req.Model, req.Name)`: the current field, else the deprecated one.
pub(crate) fn model_or_name(model: Option<String>, name: Option<String>) -> String {
    model.filter(|m| !m.is_empty()).or(name).unwrap_or_default()
}

/// Go's `%q` for the plain strings that appear in error messages.
pub(crate) fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

// ---------------------------------------------------------------------------
// Go type descriptions, for decode error messages only.

static MESSAGE_GO: GoStruct = GoStruct {
    name: "api.Message",
    fields: &[
        ("role", STRING),
        ("content", STRING),
        ("thinking", STRING),
        ("images", GoType::Slice(&STRING, "[]api.ImageData")),
        ("tool_name", STRING),
        ("tool_call_id", STRING),
    ],
};
static MESSAGE_T: GoType = GoType::Struct(&MESSAGE_GO);
static TOOL_FUNCTION_GO: GoStruct = GoStruct {
    name: "api.ToolFunction",
    fields: &[("name", STRING), ("description", STRING)],
};
static TOOL_GO: GoStruct = GoStruct {
    name: "api.Tool",
    fields: &[
        ("type", STRING),
        ("function", GoType::Struct(&TOOL_FUNCTION_GO)),
    ],
};
static TOOL_T: GoType = GoType::Struct(&TOOL_GO);

pub(crate) static GENERATE_GO: GoStruct = GoStruct {
    name: "api.GenerateRequest",
    fields: &[
        ("model", STRING),
        ("prompt", STRING),
        ("suffix", STRING),
        ("system", STRING),
        ("template", STRING),
        ("context", GoType::Slice(&INT, "[]int")),
        ("stream", BOOL),
        ("raw", BOOL),
        ("format", GoType::Any),
        ("keep_alive", GoType::Any),
        ("images", GoType::Slice(&STRING, "[]api.ImageData")),
        ("options", MAP),
        ("think", GoType::Any),
        ("truncate", BOOL),
        ("shift", BOOL),
        ("logprobs", BOOL),
        ("top_logprobs", INT),
    ],
};

pub(crate) static CHAT_GO: GoStruct = GoStruct {
    name: "api.ChatRequest",
    fields: &[
        ("model", STRING),
        ("messages", GoType::Slice(&MESSAGE_T, "[]api.Message")),
        ("stream", BOOL),
        ("format", GoType::Any),
        ("keep_alive", GoType::Any),
        ("tools", GoType::Slice(&TOOL_T, "api.Tools")),
        ("options", MAP),
        ("think", GoType::Any),
        ("truncate", BOOL),
        ("shift", BOOL),
        ("logprobs", BOOL),
        ("top_logprobs", INT),
    ],
};

pub(crate) static EMBED_GO: GoStruct = GoStruct {
    name: "api.EmbedRequest",
    fields: &[
        ("model", STRING),
        ("input", GoType::Any),
        ("truncate", BOOL),
        ("dimensions", INT),
        ("keep_alive", GoType::Any),
        ("options", MAP),
    ],
};

pub(crate) static EMBEDDINGS_GO: GoStruct = GoStruct {
    name: "api.EmbeddingRequest",
    fields: &[
        ("model", STRING),
        ("prompt", STRING),
        ("keep_alive", GoType::Any),
        ("options", MAP),
    ],
};

pub(crate) static SHOW_GO: GoStruct = GoStruct {
    name: "api.ShowRequest",
    fields: &[
        ("model", STRING),
        ("name", STRING),
        ("system", STRING),
        ("template", STRING),
        ("verbose", BOOL),
        ("options", MAP),
    ],
};

pub(crate) static PULL_GO: GoStruct = GoStruct {
    name: "api.PullRequest",
    fields: &[
        ("model", STRING),
        ("name", STRING),
        ("insecure", BOOL),
        ("username", STRING),
        ("password", STRING),
        ("stream", BOOL),
    ],
};

pub(crate) static PUSH_GO: GoStruct = GoStruct {
    name: "api.PushRequest",
    fields: &[
        ("model", STRING),
        ("name", STRING),
        ("insecure", BOOL),
        ("username", STRING),
        ("password", STRING),
        ("stream", BOOL),
    ],
};

pub(crate) static CREATE_GO: GoStruct = GoStruct {
    name: "api.CreateRequest",
    fields: &[
        ("model", STRING),
        ("stream", BOOL),
        ("quantize", STRING),
        ("from", STRING),
        ("files", GoType::Scalar(Kind::Map, "map[string]string")),
        ("adapters", GoType::Scalar(Kind::Map, "map[string]string")),
        ("template", STRING),
        ("license", GoType::Any),
        ("system", STRING),
        ("parameters", MAP),
        ("messages", GoType::Slice(&MESSAGE_T, "[]api.Message")),
        ("name", STRING),
    ],
};

pub(crate) static COPY_GO: GoStruct = GoStruct {
    name: "api.CopyRequest",
    fields: &[("source", STRING), ("destination", STRING)],
};

pub(crate) static DELETE_GO: GoStruct = GoStruct {
    name: "api.DeleteRequest",
    fields: &[("model", STRING), ("name", STRING)],
};

// ---------------------------------------------------------------------------
// Responses

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Timing and token metrics of a finished generation (`api.Metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Metrics {
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration: u64,
    pub eval_count: u64,
    pub eval_duration: u64,
}

/// One `/api/generate` object (stream chunk or whole response).
#[derive(Debug, Serialize)]
pub(crate) struct GenerateChunk<'a> {
    pub model: &'a str,
    pub created_at: Timestamp,
    pub response: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub thinking: &'a str,
    pub done: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub done_reason: &'a str,
    #[serde(skip_serializing_if = "<[u32]>::is_empty")]
    pub context: &'a [u32],
    #[serde(skip_serializing_if = "is_zero")]
    pub total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_duration: u64,
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    pub tool_calls: &'a [ToolCall],
}

impl<'a> GenerateChunk<'a> {
    pub(crate) fn new(model: &'a str) -> Self {
        Self {
            model,
            created_at: Timestamp::now(),
            response: "",
            thinking: "",
            done: false,
            done_reason: "",
            context: &[],
            total_duration: 0,
            load_duration: 0,
            prompt_eval_count: 0,
            prompt_eval_duration: 0,
            eval_count: 0,
            eval_duration: 0,
            tool_calls: &[],
        }
    }

    pub(crate) fn with_metrics(mut self, m: Metrics) -> Self {
        self.total_duration = m.total_duration;
        self.load_duration = m.load_duration;
        self.prompt_eval_count = m.prompt_eval_count;
        self.prompt_eval_duration = m.prompt_eval_duration;
        self.eval_count = m.eval_count;
        self.eval_duration = m.eval_duration;
        self
    }
}

/// One `/api/chat` object. Note `done_reason` precedes `done` in Go's struct.
#[derive(Debug, Serialize)]
pub(crate) struct ChatChunk<'a> {
    pub model: &'a str,
    pub created_at: Timestamp,
    pub message: OutMessage<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub done_reason: &'a str,
    pub done: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub eval_duration: u64,
}

impl<'a> ChatChunk<'a> {
    pub(crate) fn new(model: &'a str) -> Self {
        Self {
            model,
            created_at: Timestamp::now(),
            message: OutMessage::default(),
            done_reason: "",
            done: false,
            total_duration: 0,
            load_duration: 0,
            prompt_eval_count: 0,
            prompt_eval_duration: 0,
            eval_count: 0,
            eval_duration: 0,
        }
    }

    pub(crate) fn with_metrics(mut self, m: Metrics) -> Self {
        self.total_duration = m.total_duration;
        self.load_duration = m.load_duration;
        self.prompt_eval_count = m.prompt_eval_count;
        self.prompt_eval_duration = m.prompt_eval_duration;
        self.eval_count = m.eval_count;
        self.eval_duration = m.eval_duration;
        self
    }
}

/// The assistant message of a chat response (`api.Message`).
#[derive(Debug, Serialize)]
pub(crate) struct OutMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub thinking: &'a str,
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    pub tool_calls: &'a [ToolCall],
}

impl Default for OutMessage<'_> {
    fn default() -> Self {
        Self {
            role: "assistant",
            content: "",
            thinking: "",
            tool_calls: &[],
        }
    }
}

/// A tool call produced by the model (`api.ToolCall`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ToolCall {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub function: ToolCallFunction,
}

/// `api.ToolCallFunction`: arguments are a JSON object, not a string.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ToolCallFunction {
    pub index: usize,
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// `api.ModelDetails`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelDetails<'a> {
    pub parent_model: &'a str,
    pub format: &'a str,
    pub family: &'a str,
    pub families: &'a [&'a str],
    pub parameter_size: &'a str,
    pub quantization_level: &'a str,
}

/// One `/api/tags` entry (`api.ListModelResponse`).
#[derive(Debug, Serialize)]
pub(crate) struct ListModel<'a> {
    pub name: &'a str,
    pub model: &'a str,
    pub modified_at: Timestamp,
    pub size: u64,
    pub digest: &'a str,
    pub details: ModelDetails<'a>,
    #[serde(skip_serializing_if = "<[&str]>::is_empty")]
    pub capabilities: &'a [&'a str],
}

/// One `/api/ps` entry (`api.ProcessModelResponse`).
#[derive(Debug, Serialize)]
pub(crate) struct ProcessModel<'a> {
    pub name: &'a str,
    pub model: &'a str,
    pub size: u64,
    pub digest: &'a str,
    pub details: ModelDetails<'a>,
    pub expires_at: Timestamp,
    pub size_vram: u64,
    pub context_length: u32,
}

/// `/api/show` response (`api.ShowResponse`); `model_info` keys sorted like a Go map.
#[derive(Debug, Serialize)]
pub(crate) struct ShowResponse<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub license: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub modelfile: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub parameters: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub template: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub system: &'a str,
    pub details: ModelDetails<'a>,
    pub model_info: &'a std::collections::BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "<[&str]>::is_empty")]
    pub capabilities: &'a [&'a str],
    pub modified_at: Timestamp,
}

/// `/api/tags` and `/api/ps` wrapper.
#[derive(Debug, Serialize)]
pub(crate) struct ModelList<T> {
    pub models: Vec<T>,
}

/// A progress line of pull/push/create (`api.ProgressResponse`).
#[derive(Debug, Serialize)]
pub(crate) struct Progress<'a> {
    pub status: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub digest: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub completed: u64,
}

impl<'a> Progress<'a> {
    pub(crate) fn status(status: &'a str) -> Self {
        Self {
            status,
            digest: "",
            total: 0,
            completed: 0,
        }
    }
}

/// `/api/embed` response (`api.EmbedResponse`).
#[derive(Debug, Serialize)]
pub(crate) struct EmbedResponse<'a> {
    pub model: &'a str,
    pub embeddings: &'a [Vec<f32>],
    #[serde(skip_serializing_if = "is_zero")]
    pub total_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub load_duration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
}

/// `/api/embeddings` response.
#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingResponse<'a> {
    pub embedding: &'a [f64],
}

/// `{"error": "..."}`.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: &'a str,
}
