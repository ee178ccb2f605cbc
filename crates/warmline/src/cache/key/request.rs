//! The native requests every route is mapped onto: generate, chat and embed as
//! Ollama holds them after decoding, with `format`, `think`, messages and tool
//! calls, each turned into its canonical tree.

use std::borrow::Cow;

use super::KeyError;
use super::field::{Field, Path, array, string_array};
use super::json::J;
use super::options::Options;
use super::tree::{C, exact, obj, strs};

/// What a route decoder hands back: the native request in canonical form plus the
/// facts the gateway needs.
pub(super) struct Decoded<'j> {
    pub(super) model: &'j str,
    pub(super) stream: bool,
    pub(super) deterministic: bool,
    pub(super) load_only: bool,
    pub(super) request: C<'j>,
}

/// `format` as Ollama reads its `json.RawMessage`: raw `null`/`""` mean unset, raw
/// `"json"` means JSON mode, an object is a schema; anything else fails in Ollama.
pub(super) enum Format<'j> {
    Unset,
    Json,
    Schema(C<'j>),
}

impl<'j> Format<'j> {
    pub(super) fn from_raw(v: Field<'j>, p: &Path<'_>) -> Result<Self, KeyError> {
        match v {
            None | Some(J::Null) => Ok(Format::Unset),
            // Raw comparison in Ollama: an escaped spelling of "json" is an error there.
            Some(J::Str(Cow::Borrowed(""))) => Ok(Format::Unset),
            Some(J::Str(Cow::Borrowed("json"))) => Ok(Format::Json),
            Some(schema @ J::Obj(_)) => Ok(Format::Schema(exact(schema, p)?)),
            Some(_) => Err(p.invalid("expected \"json\" or a JSON schema object")),
        }
    }

    fn into_c(self) -> C<'j> {
        match self {
            Format::Unset => C::Null,
            Format::Json => C::Str(Cow::Borrowed("json")),
            Format::Schema(schema) => schema,
        }
    }
}

/// `think`: absent (model default), a bool, or a level.
#[derive(Clone, Copy)]
pub(super) enum Think {
    Unset,
    Bool(bool),
    Level(&'static str),
}

impl Think {
    pub(super) fn level(s: &str) -> Option<&'static str> {
        ["low", "medium", "high", "max"]
            .into_iter()
            .find(|l| *l == s)
    }

    pub(super) fn from_native(v: Field<'_>, p: &Path<'_>) -> Result<Self, KeyError> {
        match v {
            None | Some(J::Null) => Ok(Think::Unset),
            Some(J::Bool(b)) => Ok(Think::Bool(*b)),
            Some(J::Str(s)) => Think::level(s).map(Think::Level).ok_or_else(|| {
                p.invalid("think must be true, false, \"low\", \"medium\", \"high\" or \"max\"")
            }),
            Some(_) => Err(p.wrong("boolean or string")),
        }
    }

    fn into_c<'j>(self) -> C<'j> {
        match self {
            Think::Unset => C::Null,
            Think::Bool(b) => C::Bool(b),
            Think::Level(l) => C::Str(Cow::Borrowed(l)),
        }
    }
}

pub(super) struct GenerateRequest<'j> {
    pub(super) prompt: &'j str,
    pub(super) suffix: &'j str,
    pub(super) system: &'j str,
    pub(super) template: &'j str,
    pub(super) raw: bool,
    pub(super) format: Format<'j>,
    pub(super) images: Vec<&'j str>,
    /// `Some(vec![])` differs from `None`: Ollama skips the Modelfile messages when
    /// `context` is non-nil.
    pub(super) context: Option<Vec<i64>>,
    pub(super) think: Think,
    pub(super) options: Options<'j>,
    pub(super) truncate: bool,
    pub(super) shift: bool,
    pub(super) logprobs: bool,
    pub(super) top_logprobs: i64,
    pub(super) debug_render_only: bool,
    pub(super) width: i64,
    pub(super) height: i64,
    pub(super) steps: i64,
}

impl<'j> GenerateRequest<'j> {
    pub(super) fn into_decoded(self, model: &'j str, stream: bool) -> Decoded<'j> {
        let deterministic = self.options.deterministic();
        let load_only = self.prompt.is_empty();
        let request = obj(vec![
            (
                "context",
                self.context
                    .map_or(C::Null, |c| C::Arr(c.into_iter().map(C::Int).collect())),
            ),
            ("debug_render_only", C::Bool(self.debug_render_only)),
            ("format", self.format.into_c()),
            ("height", C::Int(self.height)),
            ("images", strs(&self.images)),
            ("logprobs", C::Bool(self.logprobs)),
            ("options", self.options.into_c()),
            ("prompt", C::Str(Cow::Borrowed(self.prompt))),
            ("raw", C::Bool(self.raw)),
            ("shift", C::Bool(self.shift)),
            ("steps", C::Int(self.steps)),
            ("suffix", C::Str(Cow::Borrowed(self.suffix))),
            ("system", C::Str(Cow::Borrowed(self.system))),
            ("template", C::Str(Cow::Borrowed(self.template))),
            ("think", self.think.into_c()),
            ("top_logprobs", C::Int(self.top_logprobs)),
            ("truncate", C::Bool(self.truncate)),
            ("width", C::Int(self.width)),
        ]);
        Decoded {
            model,
            stream,
            deterministic,
            load_only,
            request,
        }
    }
}

pub(super) struct ToolCall<'j> {
    pub(super) id: &'j str,
    pub(super) index: i64,
    pub(super) name: &'j str,
    /// Ordered object (Ollama keeps argument order into the prompt).
    pub(super) arguments: C<'j>,
}

impl<'j> ToolCall<'j> {
    fn into_c(self) -> C<'j> {
        obj(vec![
            (
                "function",
                obj(vec![
                    ("arguments", self.arguments),
                    ("index", C::Int(self.index)),
                    ("name", C::Str(Cow::Borrowed(self.name))),
                ]),
            ),
            ("id", C::Str(Cow::Borrowed(self.id))),
        ])
    }
}

#[derive(Default)]
pub(super) struct Message<'j> {
    pub(super) role: Cow<'j, str>,
    pub(super) content: &'j str,
    pub(super) thinking: &'j str,
    pub(super) images: Vec<&'j str>,
    pub(super) tool_calls: Vec<ToolCall<'j>>,
    pub(super) tool_name: &'j str,
    pub(super) tool_call_id: &'j str,
}

impl<'j> Message<'j> {
    fn into_c(self) -> C<'j> {
        obj(vec![
            ("content", C::Str(Cow::Borrowed(self.content))),
            ("images", strs(&self.images)),
            ("role", C::Str(self.role)),
            ("thinking", C::Str(Cow::Borrowed(self.thinking))),
            ("tool_call_id", C::Str(Cow::Borrowed(self.tool_call_id))),
            (
                "tool_calls",
                C::Arr(self.tool_calls.into_iter().map(ToolCall::into_c).collect()),
            ),
            ("tool_name", C::Str(Cow::Borrowed(self.tool_name))),
        ])
    }
}

/// Ollama lower-cases roles on decode (`strings.ToLower`). Only ASCII is folded here:
/// two roles we fold together are folded together by Go too; the reverse may miss.
pub(super) fn lower_role(role: &str) -> Cow<'_, str> {
    if role.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(role.to_ascii_lowercase())
    } else {
        Cow::Borrowed(role)
    }
}

pub(super) struct ChatRequest<'j> {
    pub(super) messages: Vec<Message<'j>>,
    pub(super) tools: C<'j>,
    pub(super) format: Format<'j>,
    pub(super) think: Think,
    pub(super) options: Options<'j>,
    pub(super) truncate: bool,
    pub(super) shift: bool,
    pub(super) logprobs: bool,
    pub(super) top_logprobs: i64,
    pub(super) debug_render_only: bool,
}

impl<'j> ChatRequest<'j> {
    pub(super) fn into_decoded(self, model: &'j str, stream: bool) -> Decoded<'j> {
        let deterministic = self.options.deterministic();
        let load_only = self.messages.is_empty();
        let request = obj(vec![
            ("debug_render_only", C::Bool(self.debug_render_only)),
            ("format", self.format.into_c()),
            ("logprobs", C::Bool(self.logprobs)),
            (
                "messages",
                C::Arr(self.messages.into_iter().map(Message::into_c).collect()),
            ),
            ("options", self.options.into_c()),
            ("shift", C::Bool(self.shift)),
            ("think", self.think.into_c()),
            ("tools", self.tools),
            ("top_logprobs", C::Int(self.top_logprobs)),
            ("truncate", C::Bool(self.truncate)),
        ]);
        Decoded {
            model,
            stream,
            deterministic,
            load_only,
            request,
        }
    }
}

/// `tools`: an array of objects, kept exactly (order is kept into the prompt); an
/// empty list is the same as none (Ollama checks `len(req.Tools) > 0`).
pub(super) fn tools<'j>(v: Field<'j>, p: &Path<'_>) -> Result<C<'j>, KeyError> {
    match array(v, p)? {
        None | Some([]) => Ok(C::Null),
        Some(items) => Ok(C::Arr(
            items
                .iter()
                .enumerate()
                .map(|(i, tool)| match tool {
                    J::Obj(_) => exact(tool, &p.index(i)),
                    _ => Err(p.index(i).wrong("object")),
                })
                .collect::<Result<_, _>>()?,
        )),
    }
}

pub(super) struct EmbedRequest<'j> {
    pub(super) input: Vec<&'j str>,
    pub(super) truncate: bool,
    pub(super) dimensions: i64,
    pub(super) options: Options<'j>,
}

impl<'j> EmbedRequest<'j> {
    pub(super) fn into_decoded(self, model: &'j str, stream: bool, load_only: bool) -> Decoded<'j> {
        let request = obj(vec![
            ("dimensions", C::Int(self.dimensions)),
            ("input", strs(&self.input)),
            ("options", self.options.into_c()),
            ("truncate", C::Bool(self.truncate)),
        ]);
        Decoded {
            model,
            stream,
            deterministic: true,
            load_only: load_only || self.input.is_empty(),
            request,
        }
    }
}

/// `input` as the embed handler reads it: a string (empty means none) or an array
/// of strings. `"a"` and `["a"]` become the same one-element list.
pub(super) fn embed_input<'j>(v: Field<'j>, p: &Path<'_>) -> Result<Vec<&'j str>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(Vec::new()),
        Some(J::Str(s)) if s.is_empty() => Ok(Vec::new()),
        Some(J::Str(s)) => Ok(vec![s.as_ref()]),
        Some(J::Arr(_)) => string_array(v, p),
        Some(_) => Err(p.wrong("string or array of strings")),
    }
}
