//! The OpenAI-compatible answers' shapes: whole responses and the SSE frames of a
//! stream, rendered from a running generation.
//!
//! Kept apart from the handlers in `openai` so the stream driver (`stream`) can
//! render OpenAI frames without depending on the handlers that start streams.

use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::api::ToolCall;
use crate::clock::unix_secs;
use crate::run::{Event, Running};
use crate::wire;

/// Identity shared by every chunk of one OpenAI stream.
#[derive(Debug, Clone)]
pub(crate) struct ChunkMeta {
    pub id: String,
    pub created: i64,
    pub include_usage: bool,
}

impl ChunkMeta {
    pub(crate) fn new(prefix: &str, include_usage: bool) -> Self {
        ChunkMeta {
            id: format!("{prefix}-{}", rand::random_range(0..999)),
            created: unix_secs(SystemTime::now()),
            include_usage,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) total_tokens: u64,
}

impl Usage {
    pub(crate) fn of(run: &Running) -> Usage {
        let prompt = run.prompt_tokens.max(1);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: run.reply.eval_count,
            total_tokens: prompt + run.reply.eval_count,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct OaiToolCall<'a> {
    pub(crate) id: &'a str,
    pub(crate) index: usize,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: OaiFunction<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OaiFunction<'a> {
    pub(crate) name: &'a str,
    pub(crate) arguments: String,
}

pub(crate) fn tool_calls(calls: &[ToolCall]) -> Vec<OaiToolCall<'_>> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| OaiToolCall {
            id: &c.id,
            index: i,
            kind: "function",
            function: OaiFunction {
                name: &c.function.name,
                arguments: serde_json::to_string(&c.function.arguments)
                    .unwrap_or_else(|_| "{}".into()),
            },
        })
        .collect()
}

pub(crate) fn finish_reason(run: &Running) -> &'static str {
    if !run.reply.tool_calls.is_empty() && run.reply.done_reason == "stop" {
        "tool_calls"
    } else {
        run.reply.done_reason
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatCompletion<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: i64,
    pub(crate) model: &'a str,
    pub(crate) system_fingerprint: &'static str,
    pub(crate) choices: [Choice<'a>; 1],
    pub(crate) usage: Usage,
}

#[derive(Debug, Serialize)]
pub(crate) struct Choice<'a> {
    pub(crate) index: u32,
    pub(crate) message: OutMessage<'a>,
    pub(crate) finish_reason: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OutMessage<'a> {
    pub(crate) role: &'static str,
    pub(crate) content: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) reasoning: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<OaiToolCall<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChatChunk<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: i64,
    pub(crate) model: &'a str,
    pub(crate) system_fingerprint: &'static str,
    pub(crate) choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub(crate) index: u32,
    pub(crate) delta: Delta<'a>,
    pub(crate) finish_reason: Option<&'a str>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<OaiToolCall<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Completion<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: i64,
    pub(crate) model: &'a str,
    pub(crate) system_fingerprint: &'static str,
    pub(crate) choices: [CompletionChoice<'a>; 1],
    pub(crate) usage: Usage,
}

#[derive(Debug, Serialize)]
pub(crate) struct CompletionChoice<'a> {
    pub(crate) text: &'a str,
    pub(crate) index: u32,
    pub(crate) finish_reason: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CompletionChunk<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: i64,
    pub(crate) choices: &'a [CompletionChoice<'a>],
    pub(crate) model: &'a str,
    pub(crate) system_fingerprint: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
}

pub(crate) const FINGERPRINT: &str = "fp_ollama";

/// One SSE frame (or the closing frames) of a chat completion stream.
pub(crate) fn chat_frame(
    meta: &ChunkMeta,
    run: &Running,
    ev: Event<'_>,
    first: bool,
) -> Option<Bytes> {
    let chunk = |choices: &[ChunkChoice<'_>], usage: Option<Usage>| {
        wire::sse_frame(&ChatChunk {
            id: &meta.id,
            object: "chat.completion.chunk",
            created: meta.created,
            model: &run.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
        })
    };
    let role = first.then_some("assistant");
    let delta = match ev {
        Event::Thinking(t) => Delta {
            role,
            content: Some(""),
            reasoning: Some(t),
            ..Delta::default()
        },
        Event::Content(t) => Delta {
            role,
            content: Some(t),
            ..Delta::default()
        },
        Event::ToolCalls => Delta {
            role,
            content: Some(""),
            tool_calls: tool_calls(&run.reply.tool_calls),
            ..Delta::default()
        },
        Event::Done(_) => {
            let mut out = BytesMut::new();
            let finish = [ChunkChoice {
                index: 0,
                delta: Delta::default(),
                finish_reason: Some(finish_reason(run)),
            }];
            out.put(chunk(&finish, None));
            if meta.include_usage {
                out.put(chunk(&[], Some(Usage::of(run))));
            }
            out.put_slice(wire::SSE_DONE);
            return Some(out.freeze());
        }
    };
    Some(chunk(
        &[ChunkChoice {
            index: 0,
            delta,
            finish_reason: None,
        }],
        None,
    ))
}

/// One SSE frame (or the closing frames) of a legacy completion stream.
pub(crate) fn completion_frame(meta: &ChunkMeta, run: &Running, ev: Event<'_>) -> Option<Bytes> {
    let zero = meta.include_usage.then(Usage::default);
    let chunk = |choices: &[CompletionChoice<'_>], usage: Option<Usage>| {
        wire::sse_frame(&CompletionChunk {
            id: &meta.id,
            object: "text_completion",
            created: meta.created,
            choices,
            model: &run.model,
            system_fingerprint: FINGERPRINT,
            usage,
        })
    };
    match ev {
        Event::Thinking(_) | Event::ToolCalls => None,
        Event::Content(t) => Some(chunk(
            &[CompletionChoice {
                text: t,
                index: 0,
                finish_reason: None,
            }],
            zero,
        )),
        Event::Done(_) => {
            let mut out = BytesMut::new();
            out.put(chunk(
                &[CompletionChoice {
                    text: "",
                    index: 0,
                    finish_reason: Some(run.reply.done_reason),
                }],
                zero,
            ));
            if meta.include_usage {
                out.put(chunk(&[], Some(Usage::of(run))));
            }
            out.put_slice(wire::SSE_DONE);
            Some(out.freeze())
        }
    }
}
