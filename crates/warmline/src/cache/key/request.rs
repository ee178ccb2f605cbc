//! The native requests every route is mapped onto: generate, chat and embed as
//! Ollama holds them after decoding, with `format`, `think`, messages and tool
//! calls, each turned into its canonical tree.
//!
//! This is the meeting point of the two decoders. `native` fills these structs from
//! an `/api/*` body; `openai` fills the *same* structs from a `/v1/*` body, the way
//! Ollama's compatibility middleware rewrites it. Because both end in one type with
//! one `into_decoded`, a `/v1/chat/completions` request and the `/api/chat` request
//! it becomes produce byte-identical canonical trees, and so the same key. (The
//! legacy `/api/embeddings` and `/api/show` are native-only and build their small
//! trees directly in `native`.)
//!
//! Each struct holds every field that can change Ollama's answer, and nothing else:
//! adding a field here is how a new Ollama request field becomes part of the key
//! (bump `KEY_FORMAT_VERSION` when the canonical form changes). Strings borrow from
//! the parsed body, so building a request copies no prompt text.
//!
//! The same module also says, per family, which requests are `load_only` (no prompt,
//! no messages, no input: Ollama only loads or unloads the model) and which are
//! `deterministic` (see `options`; embeddings always are).

use std::borrow::Cow;

use super::KeyError;
use super::field::{Field, Path, array, string_array};
use super::json::J;
use super::options::Options;
use super::tree::{C, exact, obj, strs};

/// What a route decoder hands back: the native request in canonical form plus the
/// facts the gateway needs.
///
/// `canonical` turns it into the public `Canonical`: the model name is normalised
/// and looked up, the request wrapped in the envelope and hashed, and the three
/// flags copied through.
pub(super) struct Decoded<'j> {
    /// The model as the client wrote it (`""` when absent, which `canonical`
    /// refuses); not yet normalised.
    pub(super) model: &'j str,
    /// Whether the client asked for a stream, after the route's default (native:
    /// true, `/v1`: false; embeddings and show never stream). Not part of the key.
    pub(super) stream: bool,
    /// A replay would be a faithful answer: temperature 0, a fixed seed, or a family
    /// that does not sample.
    pub(super) deterministic: bool,
    /// The request only loads or unloads the model; it is keyed but never cached.
    pub(super) load_only: bool,
    /// The request sets its own `keep_alive` (native routes; not keyed).
    pub(super) keep_alive: bool,
    /// The native request as a canonical tree: the `request` member of the envelope.
    pub(super) request: C<'j>,
}

impl Decoded<'_> {
    /// The same, noting whether the request sets its own `keep_alive`.
    pub(super) fn keeping_alive(self, keep_alive: bool) -> Self {
        Decoded { keep_alive, ..self }
    }
}

/// `format` as Ollama reads its `json.RawMessage`: raw `null`/`""` mean unset, raw
/// `"json"` means JSON mode, an object is a schema; anything else fails in Ollama.
pub(super) enum Format<'j> {
    /// No constraint on the output; keyed as `null`.
    Unset,
    /// JSON mode (any JSON value); keyed as `"json"`.
    Json,
    /// A JSON schema, copied with its member order and number classes (`tree::exact`),
    /// because Ollama turns it into a grammar in that order.
    Schema(C<'j>),
}

impl<'j> Format<'j> {
    /// Reads `format` (or, on `/v1`, `response_format.json_schema.schema`).
    ///
    /// The comparison is on the raw text, as in Ollama: only the unescaped spellings
    /// `""` and `"json"` are accepted, so `"js\u006fn"` is a `KeyError::InvalidValue`
    /// (Ollama answers it with an error). Arrays, numbers and other strings are
    /// refused the same way.
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

    /// The canonical value: `null`, `"json"` or the schema.
    fn into_c(self) -> C<'j> {
        match self {
            Format::Unset => C::Null,
            Format::Json => C::Str(Cow::Borrowed("json")),
            Format::Schema(schema) => schema,
        }
    }
}

/// `think`: absent (model default), a bool, or a level.
///
/// Absent is kept apart from `false`: a thinking model thinks by default, so
/// leaving `think` out and sending `false` can give different output.
#[derive(Clone, Copy)]
pub(super) enum Think {
    /// Not given: the model's default; keyed as `null`.
    Unset,
    /// `true` or `false`.
    Bool(bool),
    /// One of the effort levels named by [`Think::level`].
    Level(&'static str),
}

impl Think {
    /// The level named `s`, if it is one Ollama accepts: `low`, `medium`, `high` or
    /// `max` (exact, lower-case). Returned as `&'static str` so the key never borrows
    /// the client's spelling.
    pub(super) fn level(s: &str) -> Option<&'static str> {
        ["low", "medium", "high", "max"]
            .into_iter()
            .find(|l| *l == s)
    }

    /// Reads a native `think`: absent or `null` is `Unset`, a boolean is itself, a
    /// string must be a level (else `KeyError::InvalidValue`), any other type is a
    /// `KeyError::WrongType`. (`/v1` maps `reasoning_effort` instead, in `openai`.)
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

    /// The canonical value: `null`, a boolean, or the level's name.
    fn into_c<'j>(self) -> C<'j> {
        match self {
            Think::Unset => C::Null,
            Think::Bool(b) => C::Bool(b),
            Think::Level(l) => C::Str(Cow::Borrowed(l)),
        }
    }
}

/// Ollama's `api.GenerateRequest`, reduced to what can change the answer.
///
/// Filled by `native::generate` and by `openai::completions`, which leaves what the
/// OpenAI API lacks (`system`, `template`, `raw`, `format`, `images`, `context`,
/// `think`, the image-generation fields) at its zero value. `model`, `stream` and
/// `keep_alive` are not here: the first two are passed to `into_decoded`, the last
/// is never keyed.
pub(super) struct GenerateRequest<'j> {
    /// The prompt; empty means the request only loads (or unloads) the model.
    pub(super) prompt: &'j str,
    pub(super) suffix: &'j str,
    pub(super) system: &'j str,
    pub(super) template: &'j str,
    /// `raw`: the prompt is sent without the model's template.
    pub(super) raw: bool,
    pub(super) format: Format<'j>,
    /// Base64 images, in order (order reaches the model).
    pub(super) images: Vec<&'j str>,
    /// `Some(vec![])` differs from `None`: Ollama skips the Modelfile messages when
    /// `context` is non-nil.
    pub(super) context: Option<Vec<i64>>,
    pub(super) think: Think,
    pub(super) options: Options<'j>,
    /// Truncate a prompt longer than the context (Ollama's default: true).
    pub(super) truncate: bool,
    /// Shift the context window when generation runs out of room (default: true).
    pub(super) shift: bool,
    /// Return token log-probabilities: changes the answer's bytes, so it is keyed.
    pub(super) logprobs: bool,
    pub(super) top_logprobs: i64,
    /// `_debug_render_only`: Ollama answers with the rendered prompt instead of a
    /// generation, a different answer for the same prompt.
    pub(super) debug_render_only: bool,
    /// Image-generation size and step count (Go `int32`; 0 when not given).
    pub(super) width: i64,
    pub(super) height: i64,
    pub(super) steps: i64,
}

impl<'j> GenerateRequest<'j> {
    /// The canonical tree of this request plus its flags: deterministic as the
    /// options say, load-only when the prompt is empty.
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
            keep_alive: false,
            request,
        }
    }
}

/// One tool call of an assistant message, as Ollama's `api.ToolCall` holds it.
///
/// Past tool calls are rendered into the prompt by the model's template, so every
/// part of them is keyed.
pub(super) struct ToolCall<'j> {
    /// The call's id (`""` when none); `tool` messages refer back to it.
    pub(super) id: &'j str,
    /// `function.index`; always 0 for calls that came through `/v1` (the middleware
    /// does not copy it).
    pub(super) index: i64,
    /// `function.name`.
    pub(super) name: &'j str,
    /// Ordered object (Ollama keeps argument order into the prompt).
    pub(super) arguments: C<'j>,
}

impl<'j> ToolCall<'j> {
    /// The canonical `{"function":{"arguments","index","name"},"id"}` object.
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

/// One chat message, as Ollama's `api.Message` holds it. Every field is rendered
/// into the prompt by the template, so every field is keyed; the zero value of each
/// is keyed too (`Default` is the empty message the `/v1` mapping starts from).
#[derive(Default)]
pub(super) struct Message<'j> {
    /// The role, lower-cased as Ollama does on decode (see [`lower_role`]).
    pub(super) role: Cow<'j, str>,
    pub(super) content: &'j str,
    /// The model's earlier reasoning, when a client sends it back.
    pub(super) thinking: &'j str,
    /// Base64 images attached to this message, in order.
    pub(super) images: Vec<&'j str>,
    pub(super) tool_calls: Vec<ToolCall<'j>>,
    /// For a `tool` message: which tool produced this result.
    pub(super) tool_name: &'j str,
    /// For a `tool` message: which call it answers.
    pub(super) tool_call_id: &'j str,
}

impl<'j> Message<'j> {
    /// The canonical message object, every field present.
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
///
/// Borrows when there is nothing to fold (the usual case), so `"user"` costs no
/// allocation.
pub(super) fn lower_role(role: &str) -> Cow<'_, str> {
    if role.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(role.to_ascii_lowercase())
    } else {
        Cow::Borrowed(role)
    }
}

/// Ollama's `api.ChatRequest`, reduced to what can change the answer.
///
/// Filled by `native::chat` and by `openai::chat`; the `/v1` mapping always sets
/// `truncate` and `shift` to their defaults (the OpenAI API has neither).
pub(super) struct ChatRequest<'j> {
    /// The conversation, in order; empty means load-only.
    pub(super) messages: Vec<Message<'j>>,
    /// The tool definitions as built by [`tools`]: `null` or a list of exact copies.
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
    /// The canonical tree of this request plus its flags: deterministic as the
    /// options say, load-only when there are no messages.
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
            keep_alive: false,
            request,
        }
    }
}

/// `tools`: an array of objects, kept exactly (order is kept into the prompt); an
/// empty list is the same as none (Ollama checks `len(req.Tools) > 0`).
///
/// Each element must be an object (else `KeyError::WrongType` at `tools[i]`); its
/// content is not checked against Ollama's tool schema, only copied with member order
/// and number classes intact.
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

/// Ollama's `api.EmbedRequest`, reduced to what can change the answer. Filled by
/// `native::embed` and `openai::embeddings` (whose `encoding_format` is validated
/// there but not kept: it only re-encodes the same vectors).
pub(super) struct EmbedRequest<'j> {
    /// The texts to embed, in order (see [`embed_input`]); empty means load-only.
    pub(super) input: Vec<&'j str>,
    pub(super) truncate: bool,
    /// Requested vector length; 0 means the model's own.
    pub(super) dimensions: i64,
    pub(super) options: Options<'j>,
}

impl<'j> EmbedRequest<'j> {
    /// The canonical tree plus its flags. Embeddings are always deterministic (no
    /// sampling). `load_only` is true when the caller says so (the `/v1` middleware
    /// refuses a missing input, which must not be cached) or the input is empty.
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
            keep_alive: false,
            request,
        }
    }
}

/// `input` as the embed handler reads it: a string (empty means none) or an array
/// of strings. `"a"` and `["a"]` become the same one-element list.
///
/// Absent, `null`, `""` and `[]` all give the empty list. Any other type, or a
/// non-string element, is a `KeyError::WrongType` (so arrays of token ids are not
/// keyed).
pub(super) fn embed_input<'j>(v: Field<'j>, p: &Path<'_>) -> Result<Vec<&'j str>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(Vec::new()),
        Some(J::Str(s)) if s.is_empty() => Ok(Vec::new()),
        Some(J::Str(s)) => Ok(vec![s.as_ref()]),
        Some(J::Arr(_)) => string_array(v, p),
        Some(_) => Err(p.wrong("string or array of strings")),
    }
}
