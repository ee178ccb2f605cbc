//! Decoders for the native `/api/*` bodies.
//!
//! `canonical` (in `mod.rs`) picks one of these by route and hands it the members of
//! the top-level object. Each decoder reads the body the way Ollama's handler binds
//! it into its Go request struct, and returns a `request::Decoded`: the canonical
//! tree of the native request plus `model`, `stream`, `deterministic` and
//! `load_only`.
//!
//! How each decoder mirrors Go:
//!
//! - The `names` list holds the Go struct's JSON field names that matter, including
//!   ones that are not keyed (`stream`, `keep_alive`). Listing a field makes it
//!   case-insensitive, refuses it when given twice, and type-checks it: a bad
//!   `keep_alive` makes Ollama answer 400, and a cached 200 must not pre-empt that.
//! - Members not in the list are ignored, as Go ignores unknown fields, and so are
//!   not keyed: `{"prompt":"hi","foo":1}` and `{"prompt":"hi"}` share a key. (A
//!   field a newer Ollama reads must be added to the list and to `request`.)
//! - Absent and `null` give Go's zero values; the `*bool` fields `stream`,
//!   `truncate` and `shift` default to true when absent, as in Ollama.
//!
//! Which fields are keyed, and why the others are left out, is listed in the `key`
//! module doc. The `/v1` routes have their own decoders in `openai`, which end in the
//! same `request` structs for generate, chat and embed.

use std::borrow::Cow;

use super::KeyError;
use super::field::{
    Obj, Path, array, boolean, check_keep_alive, go_struct, int32, integer, object, opt_bool,
    opt_integer, string, string_array,
};
use super::json::J;
use super::options::Options;
use super::request::{
    ChatRequest, Decoded, EmbedRequest, Format, GenerateRequest, Message, Think, ToolCall,
    embed_input, lower_role, tools,
};
use super::tree::{C, exact, go_any, obj};

/// `/api/generate`: Ollama's `api.GenerateRequest`.
///
/// Keys the prompt, suffix, system, template, `raw`, `format`, images (in order),
/// `context`, `think`, options, `truncate`, `shift`, `logprobs`, `top_logprobs`,
/// `_debug_render_only` and the image-generation `width`/`height`/`steps`.
/// `context` keeps `null` apart from `[]` (Ollama skips the Modelfile's messages when
/// it is non-nil); each of its elements must be an integer literal. `stream` defaults
/// to true. An empty prompt makes the request `load_only`.
pub(super) fn generate<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = [
        "model",
        "prompt",
        "suffix",
        "system",
        "template",
        "context",
        "stream",
        "raw",
        "format",
        "keep_alive",
        "images",
        "options",
        "think",
        "truncate",
        "shift",
        "_debug_render_only",
        "logprobs",
        "top_logprobs",
        "width",
        "height",
        "steps",
    ];
    let [
        model,
        prompt,
        suffix,
        system,
        template,
        context,
        stream,
        raw,
        format,
        keep_alive,
        images,
        options,
        think,
        truncate,
        shift,
        debug,
        logprobs,
        top_logprobs,
        width,
        height,
        steps,
    ] = go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    let keep_alive = check_keep_alive(keep_alive, &f("keep_alive"))?;
    let context = match array(context, &f("context"))? {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let p = f("context");
                    opt_integer(Some(t), &p.index(i))?.ok_or_else(|| p.index(i).wrong("integer"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let request = GenerateRequest {
        prompt: string(prompt, &f("prompt"))?,
        suffix: string(suffix, &f("suffix"))?,
        system: string(system, &f("system"))?,
        template: string(template, &f("template"))?,
        raw: boolean(raw, &f("raw"))?,
        format: Format::from_raw(format, &f("format"))?,
        images: string_array(images, &f("images"))?,
        context,
        think: Think::from_native(think, &f("think"))?,
        options: Options::native(options, &f("options"))?,
        truncate: opt_bool(truncate, &f("truncate"))?.unwrap_or(true),
        shift: opt_bool(shift, &f("shift"))?.unwrap_or(true),
        logprobs: boolean(logprobs, &f("logprobs"))?,
        top_logprobs: integer(top_logprobs, &f("top_logprobs"))?,
        debug_render_only: boolean(debug, &f("_debug_render_only"))?,
        width: int32(width, &f("width"))?,
        height: int32(height, &f("height"))?,
        steps: int32(steps, &f("steps"))?,
    };
    let stream = opt_bool(stream, &f("stream"))?.unwrap_or(true);
    Ok(request
        .into_decoded(string(model, &f("model"))?, stream)
        .keeping_alive(keep_alive))
}

/// `/api/chat`: Ollama's `api.ChatRequest`.
///
/// Keys the messages (see `message`), tools, `format`, `think`, options, `truncate`,
/// `shift`, `logprobs`, `top_logprobs` and `_debug_render_only`. `stream` defaults
/// to true. No messages (absent, `null` or `[]`) makes the request `load_only`.
pub(super) fn chat<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = [
        "model",
        "messages",
        "stream",
        "format",
        "keep_alive",
        "tools",
        "options",
        "think",
        "truncate",
        "shift",
        "_debug_render_only",
        "logprobs",
        "top_logprobs",
    ];
    let [
        model,
        messages,
        stream,
        format,
        keep_alive,
        tool_list,
        options,
        think,
        truncate,
        shift,
        debug,
        logprobs,
        top_logprobs,
    ] = go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    let keep_alive = check_keep_alive(keep_alive, &f("keep_alive"))?;
    let list_path = f("messages");
    let messages = array(messages, &list_path)?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| message(m, &list_path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let request = ChatRequest {
        messages,
        tools: tools(tool_list, &f("tools"))?,
        format: Format::from_raw(format, &f("format"))?,
        think: Think::from_native(think, &f("think"))?,
        options: Options::native(options, &f("options"))?,
        truncate: opt_bool(truncate, &f("truncate"))?.unwrap_or(true),
        shift: opt_bool(shift, &f("shift"))?.unwrap_or(true),
        logprobs: boolean(logprobs, &f("logprobs"))?,
        top_logprobs: integer(top_logprobs, &f("top_logprobs"))?,
        debug_render_only: boolean(debug, &f("_debug_render_only"))?,
    };
    let stream = opt_bool(stream, &f("stream"))?.unwrap_or(true);
    Ok(request
        .into_decoded(string(model, &f("model"))?, stream)
        .keeping_alive(keep_alive))
}

/// One element of `messages`: Ollama's `api.Message`.
///
/// Must be an object. Its role is lower-cased (ASCII) as Ollama does; content,
/// thinking, images, tool calls, `tool_name` and `tool_call_id` are kept as given.
/// Unknown members are ignored.
fn message<'j>(v: &'j J<'j>, p: &Path<'_>) -> Result<Message<'j>, KeyError> {
    let J::Obj(members) = v else {
        return Err(p.wrong("object"));
    };
    let names = [
        "role",
        "content",
        "thinking",
        "images",
        "tool_calls",
        "tool_name",
        "tool_call_id",
    ];
    let [
        role,
        content,
        thinking,
        images,
        tool_calls,
        tool_name,
        tool_call_id,
    ] = go_struct(members, &names, p)?;
    let f = |name: &'static str| p.field(name);
    let calls_path = f("tool_calls");
    let tool_calls = array(tool_calls, &calls_path)?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, call)| tool_call(call, &calls_path.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        role: lower_role(string(role, &f("role"))?),
        content: string(content, &f("content"))?,
        thinking: string(thinking, &f("thinking"))?,
        images: string_array(images, &f("images"))?,
        tool_calls,
        tool_name: string(tool_name, &f("tool_name"))?,
        tool_call_id: string(tool_call_id, &f("tool_call_id"))?,
    })
}

/// One element of a message's `tool_calls`: `{"id", "function": {"index", "name",
/// "arguments"}}`.
///
/// A missing or `null` `function` reads as an empty one. `arguments` must be an
/// object when given (copied in order, as it is rendered into the prompt); when
/// absent it is keyed as `{}`, which is how Ollama renders it.
fn tool_call<'j>(v: &'j J<'j>, p: &Path<'_>) -> Result<ToolCall<'j>, KeyError> {
    let J::Obj(members) = v else {
        return Err(p.wrong("object"));
    };
    let [id, function] = go_struct(members, &["id", "function"], p)?;
    let fp = p.field("function");
    let function = object(function, &fp)?.unwrap_or_default();
    let [index, name, arguments] = go_struct(function, &["index", "name", "arguments"], &fp)?;
    let ap = fp.field("arguments");
    let arguments = match arguments {
        // Ollama renders absent arguments as `{}`.
        None => C::Ordered(Vec::new()),
        Some(args @ J::Obj(_)) => exact(args, &ap)?,
        Some(_) => return Err(ap.wrong("object")),
    };
    Ok(ToolCall {
        id: string(id, &p.field("id"))?,
        index: integer(index, &fp.field("index"))?,
        name: string(name, &fp.field("name"))?,
        arguments,
    })
}

/// `/api/embed`: Ollama's `api.EmbedRequest`.
///
/// Keys `input` (`"a"` ≡ `["a"]`; absent, `null`, `""` and `[]` are all "no input"),
/// `truncate` (default true), `dimensions` and options. Never a stream, always
/// deterministic; no input makes the request `load_only`.
pub(super) fn embed<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = [
        "model",
        "input",
        "keep_alive",
        "truncate",
        "dimensions",
        "options",
    ];
    let [model, input, keep_alive, truncate, dimensions, options] =
        go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    let keep_alive = check_keep_alive(keep_alive, &f("keep_alive"))?;
    let request = EmbedRequest {
        input: embed_input(input, &f("input"))?,
        truncate: opt_bool(truncate, &f("truncate"))?.unwrap_or(true),
        dimensions: integer(dimensions, &f("dimensions"))?,
        options: Options::native(options, &f("options"))?,
    };
    Ok(request
        .into_decoded(string(model, &f("model"))?, false, false)
        .keeping_alive(keep_alive))
}

/// `/api/embeddings`, the legacy endpoint: `{"model", "prompt", "keep_alive",
/// "options"}`.
///
/// Its own family, never shared with `/api/embed`: the legacy handler returns
/// vectors that are not normalised, so the same text gives different bytes there.
/// Keys the prompt and options; an empty prompt makes the request `load_only`.
pub(super) fn embeddings<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let [model, prompt, keep_alive, options] = go_struct(
        members,
        &["model", "prompt", "keep_alive", "options"],
        &root,
    )?;
    let f = |name: &'static str| root.field(name);
    let keep_alive = check_keep_alive(keep_alive, &f("keep_alive"))?;
    let prompt = string(prompt, &f("prompt"))?;
    let request = obj(vec![
        ("options", Options::native(options, &f("options"))?.into_c()),
        ("prompt", C::Str(Cow::Borrowed(prompt))),
    ]);
    Ok(Decoded {
        model: string(model, &f("model"))?,
        stream: false,
        deterministic: true,
        load_only: prompt.is_empty(),
        keep_alive,
        request,
    })
}

/// `/api/show`: Ollama's `api.ShowRequest`.
///
/// The model comes from `model`, or from the deprecated `name` when `model` is
/// empty, as in Ollama. Keys `system`, `template`, `verbose` (it changes how much the
/// answer contains) and `options`, the latter as a Go
/// `map[string]any` (sorted, numbers as `float64`). The request has no
/// `keep_alive`. Never a stream, always deterministic, never load-only: the answer
/// describes the installed model, whose digest is in the key.
pub(super) fn show<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let names = ["model", "system", "template", "verbose", "options", "name"];
    let [model, system, template, verbose, options, name] = go_struct(members, &names, &root)?;
    let f = |name: &'static str| root.field(name);
    let model = match string(model, &f("model"))? {
        "" => string(name, &f("name"))?, // deprecated spelling
        m => m,
    };
    let options = match options {
        None | Some(J::Null) => C::Null,
        Some(o @ J::Obj(_)) => go_any(o, &f("options"))?,
        Some(_) => return Err(f("options").wrong("object")),
    };
    let request = obj(vec![
        ("options", options),
        (
            "system",
            C::Str(Cow::Borrowed(string(system, &f("system"))?)),
        ),
        (
            "template",
            C::Str(Cow::Borrowed(string(template, &f("template"))?)),
        ),
        ("verbose", C::Bool(boolean(verbose, &f("verbose"))?)),
    ]);
    Ok(Decoded {
        model,
        stream: false,
        deterministic: true,
        load_only: false,
        keep_alive: false,
        request,
    })
}
