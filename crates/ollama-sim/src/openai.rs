//! The OpenAI-compatible layer: `/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models` (§2B of the reference).
//!
//! Ollama implements these as middleware that rewrites the OpenAI request
//! into a native one, runs the native handler and rewrites its output. The
//! simulator does the same with types instead of byte rewriting: each handler
//! builds a [`GenInput`] (temperature and top_p default to 1.0, `max_tokens`
//! becomes `num_predict`, `keep_alive` and `options` cannot be expressed) and
//! renders the shared pipeline's result as OpenAI JSON or SSE. Errors keep
//! their status and move into OpenAI's error shape ([`OpenAiError`]).
//!
//! Streams: `data: {chunk}\n\n` per token, the role on the first delta only,
//! reasoning in `delta.reasoning`, a finish chunk with an empty delta, a
//! usage chunk (`"choices":[]`) when `stream_options.include_usage`, then
//! `data: [DONE]\n\n`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::body::bind;
use crate::catalog::{ModelName, v1_model_object};
use crate::embeddings::{self, EmbedJob};
use crate::error::{ApiError, OpenAiError};
use crate::frames::*;
use crate::generation::Options;
use crate::inference::{self, GenInput, Plan};
use crate::state::App;
use crate::stream::{self, Flavor};
use crate::wire;

mod request;

use request::{
    CHAT_GO, COMPLETION_GO, ChatCompletionRequest, CompletionRequest, EMBED_GO, EmbedRequest,
    ResponseFormat, native_message, native_options, stop_list, think_from_effort,
};

// ---------------------------------------------------------------------------
// Handlers

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let req: ChatCompletionRequest =
            bind(&body, &CHAT_GO).map_err(ApiError::from_bind_openai)?;
        let messages = req.messages.unwrap_or_default();
        if messages.is_empty() {
            return Err(ApiError::bad("[] is too short - 'messages'"));
        }
        let messages = messages
            .into_iter()
            .map(native_message)
            .collect::<Result<Vec<_>, _>>()?;
        let format = match req.response_format {
            Some(ResponseFormat {
                kind: Some(k),
                json_schema,
            }) => match k.as_str() {
                "json_object" => Some(Value::from("json")),
                "json_schema" => json_schema.and_then(|s| s.schema),
                _ => None,
            },
            _ => None,
        };
        let effort = req
            .reasoning_effort
            .or(req.reasoning.and_then(|r| r.effort));
        let think = think_from_effort(effort)?;
        let stop = stop_list(req.stop)?;
        let input = GenInput {
            chat: true,
            model: req.model.unwrap_or_default(),
            messages,
            tools: req.tools.unwrap_or_default(),
            format,
            options: Some(native_options(
                req.temperature,
                req.top_p,
                req.max_tokens,
                req.seed,
                stop,
                req.frequency_penalty,
                req.presence_penalty,
            )),
            keep_alive: None,
            think,
            stream: req.stream.unwrap_or(false),
            ..GenInput::default()
        };
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let meta = ChunkMeta::new("chatcmpl", include_usage);
        let stream = input.stream;
        let Plan::Generate(job) = inference::plan(&app, input)? else {
            // Unreachable: messages are non-empty and keep_alive is unset.
            return Err(ApiError::bad("[] is too short - 'messages'"));
        };
        let mut run = inference::start(&app, *job, started).await?;
        if stream {
            return Ok(stream::response(run, Flavor::OpenAiChat(meta)));
        }
        run.finish().await;
        let body = ChatCompletion {
            id: &meta.id,
            object: "chat.completion",
            created: meta.created,
            model: &run.model,
            system_fingerprint: FINGERPRINT,
            choices: [Choice {
                index: 0,
                message: OutMessage {
                    role: "assistant",
                    content: &run.reply.content,
                    reasoning: &run.reply.thinking,
                    tool_calls: tool_calls(&run.reply.tool_calls),
                },
                finish_reason: Some(finish_reason(&run)),
            }],
            usage: Usage::of(&run),
        };
        Ok(wire::json(StatusCode::OK, &body))
    }
    .await;
    result.unwrap_or_else(|e| OpenAiError(e).into_response())
}

/// `POST /v1/completions`.
pub(crate) async fn completions(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let req: CompletionRequest =
            bind(&body, &COMPLETION_GO).map_err(ApiError::from_bind_openai)?;
        let stop = stop_list(req.stop)?;
        let input = GenInput {
            chat: false,
            model: req.model.unwrap_or_default(),
            prompt: req.prompt.unwrap_or_default(),
            suffix: req.suffix.unwrap_or_default(),
            options: Some(native_options(
                req.temperature,
                req.top_p,
                req.max_tokens,
                req.seed,
                stop,
                req.frequency_penalty,
                req.presence_penalty,
            )),
            stream: req.stream.unwrap_or(false),
            ..GenInput::default()
        };
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let meta = ChunkMeta::new("cmpl", include_usage);
        let stream = input.stream;
        let model = input.model.clone();
        let job = match inference::plan(&app, input)? {
            Plan::Generate(job) => job,
            // An empty prompt only loads the model, as the native call does.
            Plan::Load(req) => {
                app.sched.load_only(req).await?;
                return Ok(load_completion(&meta, &model));
            }
            Plan::Unload => return Ok(load_completion(&meta, &model)),
        };
        let mut run = inference::start(&app, *job, started).await?;
        if stream {
            return Ok(stream::response(run, Flavor::OpenAiCompletion(meta)));
        }
        run.finish().await;
        let body = Completion {
            id: &meta.id,
            object: "text_completion",
            created: meta.created,
            model: &run.model,
            system_fingerprint: FINGERPRINT,
            choices: [CompletionChoice {
                text: &run.reply.content,
                index: 0,
                finish_reason: Some(run.reply.done_reason),
            }],
            usage: Usage::of(&run),
        };
        Ok(wire::json(StatusCode::OK, &body))
    }
    .await;
    result.unwrap_or_else(|e| OpenAiError(e).into_response())
}

fn load_completion(meta: &ChunkMeta, model: &str) -> Response {
    wire::json(
        StatusCode::OK,
        &Completion {
            id: &meta.id,
            object: "text_completion",
            created: meta.created,
            model,
            system_fingerprint: FINGERPRINT,
            choices: [CompletionChoice {
                text: "",
                index: 0,
                finish_reason: Some("load"),
            }],
            usage: Usage::default(),
        },
    )
}

#[derive(Debug, Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbedUsage,
}

#[derive(Debug, Serialize)]
struct EmbeddingItem {
    object: &'static str,
    embedding: Value,
    index: usize,
}

#[derive(Debug, Serialize)]
struct EmbedUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// `POST /v1/embeddings`.
pub(crate) async fn v1_embeddings(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let req: EmbedRequest = bind(&body, &EMBED_GO).map_err(ApiError::from_bind_openai)?;
        let inputs = match req.input {
            None | Some(Value::Null) => return Err(ApiError::bad("invalid input")),
            Some(Value::Array(a)) if a.is_empty() => return Err(ApiError::bad("invalid input")),
            Some(v) => embeddings::inputs(Some(v))?,
        };
        let base64 = match req.encoding_format.as_deref() {
            None | Some("") | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid value for 'encoding_format' = {other}. Supported values: ['float', 'base64']."
                )));
            }
        };
        let typed = req.model.unwrap_or_default();
        let model = embeddings::embed_model(&app, &typed)?;
        let job = EmbedJob {
            model,
            inputs,
            truncate: true,
            dimensions: req.dimensions.and_then(|d| usize::try_from(d).ok()),
            keep_alive: None,
            options: Options::default(),
        };
        let out = embeddings::run(&app, job, started).await?;
        let data = out
            .vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| EmbeddingItem {
                object: "embedding",
                embedding: if base64 {
                    Value::String(base64_f32(&v))
                } else {
                    Value::from(v)
                },
                index,
            })
            .collect();
        let body = EmbeddingList {
            object: "list",
            data,
            model: &typed,
            usage: EmbedUsage {
                prompt_tokens: out.prompt_tokens,
                total_tokens: out.prompt_tokens,
            },
        };
        Ok(wire::json(StatusCode::OK, &body))
    }
    .await;
    result.unwrap_or_else(|e| OpenAiError(e).into_response())
}

/// Little-endian `f32`s, standard base64 with padding.
fn base64_f32(v: &[f32]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET /v1/models`.
pub(crate) async fn models(State(app): State<App>) -> Response {
    wire::json_raw(StatusCode::OK, app.registry.snapshot().v1_models.clone())
}

/// `GET /v1/models/{model}`.
pub(crate) async fn model(State(app): State<App>, Path(name): Path<String>) -> Response {
    match app.registry.get(&name) {
        Some(m) => wire::json(StatusCode::OK, &v1_model_object(&m)),
        None => {
            let shown = ModelName::parse(&name).map_or(name, |n| n.display());
            OpenAiError(ApiError::NotFound(format!("model '{shown}' not found"))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_encoding() {
        // 1.0f32 = 00 00 80 3f
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 2.0]), "AACAPwAAAEA=");
    }

    #[test]
    fn stop_must_be_strings() {
        assert_eq!(
            stop_list(Some(Value::from("x"))).ok(),
            Some(Some(vec!["x".to_owned()]))
        );
        assert!(stop_list(Some(serde_json::json!(["a", 1]))).is_err());
    }
}
