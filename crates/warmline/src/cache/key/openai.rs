//! Decoders for the `/v1/*` bodies, mapped the way Ollama's compatibility
//! middleware (`openai/openai.go`) rewrites them into native requests.

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
struct WireMessage<'j> {
    index: usize,
    role: &'j str,
    content: Field<'j>,
    reasoning: &'j str,
    /// `None` when absent or null (Go nil), `Some(vec![])` for `[]`.
    tool_calls: Option<Vec<WireToolCall<'j>>>,
    name: &'j str,
    tool_call_id: &'j str,
}

struct WireToolCall<'j> {
    id: &'j str,
    name: &'j str,
    arguments: &'j str,
}

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

/// The tool name of a `tool` message without `name`: the last earlier tool call
/// with the same id (`nameFromToolCallID`).
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
