//! Decoders for the `/v1/*` bodies, mapped the way Ollama's compatibility
//! middleware (`openai/openai.go`) rewrites them into native requests.
//!
//! Ollama serves `/v1` through a middleware that rewrites each body into the native
//! request and then runs the native handler. These decoders repeat that rewrite
//! and fill the same `request` structs the native decoders fill, so a `/v1` request
//! and the native request it becomes get the same key. The route is not in the key;
//! the cache stores answers per route (`StoreKey` in `cache/mod.rs`), so a `/v1`
//! client is always answered in the OpenAI shape.
//!
//! The mapping, where it matters for the key:
//!
//! | OpenAI field                          | native                                    |
//! |---------------------------------------|-------------------------------------------|
//! | `temperature`, `top_p`                | options, default 1.0, *always* sent       |
//! | `max_tokens`                          | `options.num_predict`                     |
//! | `seed`, `frequency_penalty`, `presence_penalty` | options of the same name        |
//! | `stop` (string or array)              | `options.stop` (array)                    |
//! | `response_format`                     | `format` (`"json"` or the schema)         |
//! | `reasoning.effort`, `reasoning_effort`| `think`                                   |
//! | messages with content parts           | one native message per part               |
//! | `image_url` parts (`data:` URIs only) | the message's `images`                    |
//! | tool-call `arguments` (a string)      | an arguments object, parsed               |
//!
//! Because the middleware always sends `temperature` and `top_p`, a `/v1` request
//! never means "the model's default"; that is why `/v1` and native requests share
//! keys only when the native one spells those two values out.
//!
//! Not keyed: `stream` (a flag on the result), `stream_options` and
//! `encoding_format` (validated; they change the answer's bytes, not the
//! generation, and the cache keeps such answers apart by a response variant), and
//! any field the middleware does not read. Content parts other than text and images
//! are refused rather than guessed at.

use std::borrow::Cow;

use super::KeyError;
use super::field::{
    Field, Obj, Path, array, boolean, check_object, go_map, go_struct, integer, object, opt_f32,
    opt_f64, opt_integer, string,
};
use super::json::{self, J};
use super::options::Options;
use super::request::{
    ChatRequest, Decoded, EmbedRequest, Format, GenerateRequest, Message, Think, ToolCall,
    embed_input, lower_role, tools,
};
use super::tree::{exact, strs};

/// `/v1/chat/completions` → the native chat request (`FromChatRequest`).
///
/// `stream` defaults to false; `truncate` and `shift` are always true (the OpenAI
/// API has neither). The temperature and `top_p` are read as `float64` and converted
/// to the `float32` the native options hold. No messages makes the request
/// `load_only`.
pub(super) fn chat<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = [
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "seed",
        "stop",
        "temperature",
        "frequency_penalty",
        "presence_penalty",
        "top_p",
        "response_format",
        "tools",
        "reasoning",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "_debug_render_only",
    ];
    let [
        model,
        messages,
        stream,
        stream_options,
        max_tokens,
        seed,
        stop,
        temperature,
        frequency_penalty,
        presence_penalty,
        top_p,
        response_format,
        tool_list,
        reasoning,
        reasoning_effort,
        logprobs,
        top_logprobs,
        debug,
    ] = go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    check_object(stream_options, &f("stream_options"))?;

    let list_path = f("messages");
    let wire = array(messages, &list_path)?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| wire_message(m, i, &list_path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let messages = native_messages(&wire)?;

    let mut options = Options::default();
    if let Some(stop) = stop_list(stop, &f("stop"), false)? {
        options.members.push(("stop", strs(&stop)));
    }
    if let Some(n) = opt_integer(max_tokens, &f("max_tokens"))? {
        options.int("num_predict", n);
    }
    let temperature = opt_f64(temperature, &f("temperature"))?.unwrap_or(1.0);
    options.float("temperature", temperature as f32);
    if let Some(s) = opt_integer(seed, &f("seed"))? {
        options.int("seed", s);
    }
    if let Some(v) = opt_f64(frequency_penalty, &f("frequency_penalty"))? {
        options.float("frequency_penalty", v as f32);
    }
    if let Some(v) = opt_f64(presence_penalty, &f("presence_penalty"))? {
        options.float("presence_penalty", v as f32);
    }
    let top_p = opt_f64(top_p, &f("top_p"))?.unwrap_or(1.0);
    options.float("top_p", top_p as f32);

    let request = ChatRequest {
        messages,
        tools: tools(tool_list, &f("tools"))?,
        format: response_format_of(response_format, &f("response_format"))?,
        think: think_of(reasoning, reasoning_effort, &root)?,
        options,
        truncate: true,
        shift: true,
        logprobs: boolean(logprobs, &f("logprobs"))?,
        top_logprobs: integer(top_logprobs, &f("top_logprobs"))?,
        debug_render_only: boolean(debug, &f("_debug_render_only"))?,
    };
    let stream = boolean(stream, &f("stream"))?;
    Ok(request.into_decoded(string(model, &f("model"))?, stream))
}

/// One OpenAI message as Go's `openai.Message` holds it.
///
/// Kept in this intermediate form because the rewrite needs the whole list at once:
/// a `tool` message may take its tool name from an earlier message's call.
struct WireMessage<'j> {
    /// Position in `messages`, for error paths.
    index: usize,
    role: &'j str,
    /// Unconverted: a string, an array of content parts, or absent/`null`.
    content: Field<'j>,
    /// `reasoning`: becomes the native message's `thinking`.
    reasoning: &'j str,
    /// `None` when absent or null (Go nil), `Some(vec![])` for `[]`.
    tool_calls: Option<Vec<WireToolCall<'j>>>,
    /// `name`: for a `tool` message, the tool's name (becomes `tool_name`).
    name: &'j str,
    tool_call_id: &'j str,
}

/// One OpenAI tool call: `{"id", "index", "type", "function": {"name",
/// "arguments"}}`, of which `id`, the name and the argument *string* are kept.
struct WireToolCall<'j> {
    id: &'j str,
    name: &'j str,
    /// The arguments as the JSON text OpenAI sends; parsed in `native_tool_calls`.
    arguments: &'j str,
}

/// Reads one element of `messages` (`index` is its position, `p` its path).
/// Must be an object; unknown members are ignored.
fn wire_message<'j>(v: &'j J<'j>, index: usize, p: &Path<'_>) -> Result<WireMessage<'j>, KeyError> {
    let J::Obj(members) = v else {
        return Err(p.wrong("object"));
    };
    let names = [
        "role",
        "content",
        "reasoning",
        "tool_calls",
        "name",
        "tool_call_id",
    ];
    let [role, content, reasoning, tool_calls, name, tool_call_id] = go_struct(members, &names, p)?;
    let f = |name: &'static str| p.field(name);
    let calls_path = f("tool_calls");
    let tool_calls = match array(tool_calls, &calls_path)? {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, call)| wire_tool_call(call, &calls_path.index(i)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(WireMessage {
        index,
        role: string(role, &f("role"))?,
        content,
        reasoning: string(reasoning, &f("reasoning"))?,
        tool_calls,
        name: string(name, &f("name"))?,
        tool_call_id: string(tool_call_id, &f("tool_call_id"))?,
    })
}

/// Reads one element of a message's `tool_calls`. `index` and `type` are
/// type-checked but dropped, as the middleware drops them.
fn wire_tool_call<'j>(v: &'j J<'j>, p: &Path<'_>) -> Result<WireToolCall<'j>, KeyError> {
    let J::Obj(members) = v else {
        return Err(p.wrong("object"));
    };
    let [id, index, kind, function] = go_struct(members, &["id", "index", "type", "function"], p)?;
    integer(index, &p.field("index"))?; // not copied, but a bad one is a 400
    string(kind, &p.field("type"))?;
    let fp = p.field("function");
    let function = object(function, &fp)?.unwrap_or_default();
    let [name, arguments] = go_struct(function, &["name", "arguments"], &fp)?;
    Ok(WireToolCall {
        id: string(id, &p.field("id"))?,
        name: string(name, &fp.field("name"))?,
        arguments: string(arguments, &fp.field("arguments"))?,
    })
}

/// `FromCompletionToolCall`: the id and name are copied, the index is not, the
/// argument string is parsed into an (ordered) object.
///
/// Arguments that are not a JSON object (including `""`) are refused with a
/// `KeyError::InvalidValue` naming `messages[i].tool_calls[n].function.arguments`.
/// The parsed object outlives the string's parse tree, so it is made owned.
fn native_tool_calls<'j>(
    calls: &[WireToolCall<'j>],
    message: usize,
) -> Result<Vec<ToolCall<'j>>, KeyError> {
    calls
        .iter()
        .enumerate()
        .map(|(n, call)| {
            let bad = || KeyError::InvalidValue {
                field: format!("messages[{message}].tool_calls[{n}].function.arguments"),
                reason: "tool call arguments must be a JSON object",
            };
            let parsed = json::parse(call.arguments).map_err(|_| bad())?;
            if !matches!(parsed, J::Obj(_)) {
                return Err(bad());
            }
            let arguments = exact(&parsed, &Path::ROOT).map_err(|_| bad())?.into_owned();
            Ok(ToolCall {
                id: call.id,
                index: 0,
                name: call.name,
                arguments,
            })
        })
        .collect()
}

/// The tool name of a `tool` message without `name`: the name of the tool call with
/// the same id, searching the whole conversation from its end, so the last such call
/// wins (`nameFromToolCallID`). `""` when no call has that id.
fn name_from_tool_call_id<'j>(wire: &[WireMessage<'j>], id: &str) -> &'j str {
    wire.iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|call| call.id == id)
        .map_or("", |call| call.name)
}

/// `FromChatRequest`'s message loop, quirks included: each content part becomes
/// its own native message (text parts are not concatenated), and tool calls of
/// a multi-part message go onto the last native message produced so far.
///
/// Per message: string content gives one native message with the tool calls,
/// reasoning (as `thinking`) and, for a `tool` role, its tool name. Array content
/// gives one message per part. Absent or `null` content is accepted only when
/// `tool_calls` is present (even as `[]`), else it is a `KeyError::WrongType`.
fn native_messages<'j>(wire: &[WireMessage<'j>]) -> Result<Vec<Message<'j>>, KeyError> {
    let mut out: Vec<Message<'j>> = Vec::with_capacity(wire.len());
    for (i, m) in wire.iter().enumerate() {
        let root = Path::ROOT;
        let list = root.field("messages");
        let p = list.index(i);
        let tool_name = if m.role.eq_ignore_ascii_case("tool") {
            if m.name.is_empty() && !m.tool_call_id.is_empty() {
                name_from_tool_call_id(wire, m.tool_call_id)
            } else {
                m.name
            }
        } else {
            ""
        };
        let role = lower_role(m.role);
        match m.content {
            Some(J::Str(content)) => {
                let calls = m.tool_calls.as_deref().unwrap_or_default();
                out.push(Message {
                    role,
                    content: content.as_ref(),
                    thinking: m.reasoning,
                    tool_calls: native_tool_calls(calls, m.index)?,
                    tool_name,
                    tool_call_id: m.tool_call_id,
                    ..Message::default()
                });
            }
            Some(J::Arr(parts)) => {
                let cp = p.field("content");
                for (n, part) in parts.iter().enumerate() {
                    out.push(content_part(part, role.clone(), &cp.index(n))?);
                }
                let calls = m.tool_calls.as_deref().unwrap_or_default();
                if !calls.is_empty() {
                    let calls = native_tool_calls(calls, m.index)?;
                    if let Some(last) = out.last_mut() {
                        last.tool_calls = calls;
                        last.tool_name = tool_name;
                        last.tool_call_id = m.tool_call_id;
                        last.thinking = m.reasoning;
                    }
                }
            }
            _ => {
                // Content is optional only when tool_calls is present (even `[]`).
                let Some(calls) = &m.tool_calls else {
                    return Err(p.field("content").wrong("string or array of parts"));
                };
                out.push(Message {
                    role,
                    thinking: m.reasoning,
                    tool_calls: native_tool_calls(calls, m.index)?,
                    tool_call_id: m.tool_call_id,
                    ..Message::default()
                });
            }
        }
    }
    Ok(out)
}

/// One content part of a message, as its own native message with `role`.
///
/// Parts are decoded as a Go `map[string]any` (exact member names, a repeated one
/// refused). Type `text` needs a string `text` and gives a text message. Type
/// `image_url` needs `image_url` as `{"url": ...}` or as a plain string, and gives a
/// message with one image (see `image_data`). Any other part type (audio, files...)
/// is refused: a bypass, never a guess at what Ollama does.
fn content_part<'j>(
    part: &'j J<'j>,
    role: Cow<'j, str>,
    p: &Path<'_>,
) -> Result<Message<'j>, KeyError> {
    let J::Obj(members) = part else {
        return Err(p.wrong("object"));
    };
    let members = go_map(members, p)?;
    let get = |k: &str| members.iter().find(|(name, _)| name == k).map(|(_, v)| v);
    match get("type") {
        Some(J::Str(t)) if t == "text" => match get("text") {
            Some(J::Str(text)) => Ok(Message {
                role,
                content: text.as_ref(),
                ..Message::default()
            }),
            _ => Err(p.field("text").wrong("string")),
        },
        Some(J::Str(t)) if t == "image_url" => {
            let ip = p.field("image_url");
            let url = match get("image_url") {
                Some(J::Obj(inner)) => {
                    let inner = go_map(inner, &ip)?;
                    match inner.iter().find(|(k, _)| k == "url").map(|(_, v)| v) {
                        Some(J::Str(url)) => url.as_ref(),
                        _ => return Err(ip.field("url").wrong("string")),
                    }
                }
                Some(J::Str(url)) => url.as_ref(),
                _ => return Err(ip.wrong("object or string")),
            };
            Ok(Message {
                role,
                images: vec![image_data(url, &ip)?],
                ..Message::default()
            })
        }
        _ => Err(p
            .field("type")
            .invalid("only \"text\" and \"image_url\" parts are keyed")),
    }
}

/// `decodeImageURL`: only base64 data URIs of the listed types; the payload is the
/// same base64 text a native `images` entry carries.
///
/// So a `/v1` image and the native request carrying the same base64 share a key.
/// An `http(s)` URL is refused (`KeyError::InvalidValue`); the base64 itself is not
/// validated here.
fn image_data<'j>(url: &'j str, p: &Path<'_>) -> Result<&'j str, KeyError> {
    const PREFIXES: [&str; 5] = [
        "data:;base64,",
        "data:image/jpeg;base64,",
        "data:image/jpg;base64,",
        "data:image/png;base64,",
        "data:image/webp;base64,",
    ];
    PREFIXES
        .iter()
        .find_map(|prefix| url.strip_prefix(prefix))
        .ok_or_else(|| p.invalid("only base64 data: URIs of jpeg, png or webp images"))
}

/// `stop`: a string becomes a one-element list; an array keeps its strings (chat
/// drops other elements, completions refuse them); an empty result is no stop at
/// all (a nil slice marshals to `null`); any other type is ignored.
fn stop_list<'j>(
    v: Field<'j>,
    p: &Path<'_>,
    strict: bool,
) -> Result<Option<Vec<&'j str>>, KeyError> {
    let list = match v {
        Some(J::Str(s)) => vec![s.as_ref()],
        Some(J::Arr(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    J::Str(s) => out.push(s.as_ref()),
                    _ if strict => return Err(p.index(i).wrong("string")),
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    };
    Ok((!list.is_empty()).then_some(list))
}

/// `response_format` → `format`.
///
/// `type` is compared trimmed and lower-cased: `json_object` is JSON mode;
/// `json_schema` with a `json_schema` object uses its `schema` member, read like a
/// native `format`; anything else (`text`, unknown types, a `json_schema` without
/// its object) leaves the output unconstrained.
fn response_format_of<'j>(v: Field<'j>, p: &Path<'_>) -> Result<Format<'j>, KeyError> {
    let Some(members) = object(v, p)? else {
        return Ok(Format::Unset);
    };
    let [kind, schema_holder] = go_struct(members, &["type", "json_schema"], p)?;
    let kind = string(kind, &p.field("type"))?.trim().to_ascii_lowercase();
    let hp = p.field("json_schema");
    let holder = object(schema_holder, &hp)?;
    match (kind.as_str(), holder) {
        ("json_object", _) => Ok(Format::Json),
        ("json_schema", Some(holder)) => {
            let [schema] = go_struct(holder, &["schema"], &hp)?;
            Format::from_raw(schema, &hp.field("schema"))
        }
        _ => Ok(Format::Unset),
    }
}

/// `reasoning.effort` wins over `reasoning_effort` whenever `reasoning` is present.
///
/// Efforts map onto `think`: `""` leaves it unset (the model's default), `none` is
/// `false`, `minimal` is `low`, `xhigh` and `ultra` are `max`, and `low`, `medium`,
/// `high` and `max` are themselves. Any other effort is a `KeyError::InvalidValue`.
fn think_of(reasoning: Field<'_>, effort: Field<'_>, root: &Path<'_>) -> Result<Think, KeyError> {
    let rp = root.field("reasoning");
    let ep = root.field("reasoning_effort");
    let (effort, p) = match object(reasoning, &rp)? {
        Some(members) => {
            let [e] = go_struct(members, &["effort"], &rp)?;
            (string(e, &rp.field("effort"))?, rp.field("effort"))
        }
        None => (string(effort, &ep)?, ep),
    };
    Ok(match effort {
        "" => Think::Unset,
        "none" => Think::Bool(false),
        "minimal" => Think::Level("low"),
        "xhigh" | "ultra" => Think::Level("max"),
        e => Think::Level(Think::level(e).ok_or_else(|| p.invalid("unknown reasoning effort"))?),
    })
}

/// `/v1/completions` → the native generate request (`FromCompleteRequest`).
///
/// Unlike chat, the numeric fields are `float32` in Go's request struct, both
/// penalties are always sent (default 0), a `top_p` of 0 (or absent) becomes 1.0,
/// and a non-string `stop` element is an error rather than dropped. OpenAI's
/// integer `logprobs` becomes `logprobs: true` with that `top_logprobs` when it is
/// positive. `stream` defaults to false; an empty prompt makes it `load_only`.
pub(super) fn completions<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = [
        "model",
        "prompt",
        "frequency_penalty",
        "max_tokens",
        "presence_penalty",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "suffix",
        "logprobs",
        "_debug_render_only",
    ];
    let [
        model,
        prompt,
        frequency_penalty,
        max_tokens,
        presence_penalty,
        seed,
        stop,
        stream,
        stream_options,
        temperature,
        top_p,
        suffix,
        logprobs,
        debug,
    ] = go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    check_object(stream_options, &f("stream_options"))?;

    // FromCompleteRequest: float32 fields, both penalties always sent, top_p 0 → 1.
    let mut options = Options::default();
    if let Some(stop) = stop_list(stop, &f("stop"), true)? {
        options.members.push(("stop", strs(&stop)));
    }
    if let Some(n) = opt_integer(max_tokens, &f("max_tokens"))? {
        options.int("num_predict", n);
    }
    options.float(
        "temperature",
        opt_f32(temperature, &f("temperature"))?.unwrap_or(1.0),
    );
    if let Some(s) = opt_integer(seed, &f("seed"))? {
        options.int("seed", s);
    }
    options.float(
        "frequency_penalty",
        opt_f32(frequency_penalty, &f("frequency_penalty"))?.unwrap_or(0.0),
    );
    options.float(
        "presence_penalty",
        opt_f32(presence_penalty, &f("presence_penalty"))?.unwrap_or(0.0),
    );
    let top_p = opt_f32(top_p, &f("top_p"))?.unwrap_or(0.0);
    options.float("top_p", if top_p == 0.0 { 1.0 } else { top_p });
    let top_logprobs = opt_integer(logprobs, &f("logprobs"))?.filter(|n| *n > 0);

    let request = GenerateRequest {
        prompt: string(prompt, &f("prompt"))?,
        suffix: string(suffix, &f("suffix"))?,
        system: "",
        template: "",
        raw: false,
        format: Format::Unset,
        images: Vec::new(),
        context: None,
        think: Think::Unset,
        options,
        truncate: true,
        shift: true,
        logprobs: top_logprobs.is_some(),
        top_logprobs: top_logprobs.unwrap_or(0),
        debug_render_only: boolean(debug, &f("_debug_render_only"))?,
        width: 0,
        height: 0,
        steps: 0,
    };
    let stream = boolean(stream, &f("stream"))?;
    Ok(request.into_decoded(string(model, &f("model"))?, stream))
}

/// `/v1/embeddings` → the native embed request.
///
/// Keys `input` and `dimensions`, with `truncate` true and no options, so it shares
/// keys with `/api/embed` requests that say the same. `encoding_format` must be
/// empty, `float` or `base64` (any case) and is not keyed: base64 is the same
/// float32 vectors re-encoded. An absent, `null` or `[]` input is refused by the
/// middleware with a 400, so such a request is keyed but `load_only` (never cached).
pub(super) fn embeddings<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = ["input", "model", "dimensions", "encoding_format"];
    let [input, model, dimensions, encoding_format] = go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    // Not keyed: base64 is the same float32 vectors, little-endian, re-encoded.
    let encoding = string(encoding_format, &f("encoding_format"))?;
    if !(encoding.is_empty()
        || encoding.eq_ignore_ascii_case("float")
        || encoding.eq_ignore_ascii_case("base64"))
    {
        return Err(f("encoding_format").invalid("must be \"float\" or \"base64\""));
    }
    // The middleware refuses absent, null and [] input with 400: keyed, load-only.
    let refused =
        matches!(input, None | Some(J::Null)) || matches!(input, Some(J::Arr(a)) if a.is_empty());
    let request = EmbedRequest {
        input: embed_input(input, &f("input"))?,
        truncate: true,
        dimensions: integer(dimensions, &f("dimensions"))?,
        options: Options::default(),
    };
    Ok(request.into_decoded(string(model, &f("model"))?, false, refused))
}
