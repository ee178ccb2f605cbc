//! Decoders for the native `/api/*` bodies.

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
    check_keep_alive(keep_alive, &f("keep_alive"))?;
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
    Ok(request.into_decoded(string(model, &f("model"))?, stream))
}

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
    check_keep_alive(keep_alive, &f("keep_alive"))?;
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
    Ok(request.into_decoded(string(model, &f("model"))?, stream))
}

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
    check_keep_alive(keep_alive, &f("keep_alive"))?;
    let request = EmbedRequest {
        input: embed_input(input, &f("input"))?,
        truncate: opt_bool(truncate, &f("truncate"))?.unwrap_or(true),
        dimensions: integer(dimensions, &f("dimensions"))?,
        options: Options::native(options, &f("options"))?,
    };
    Ok(request.into_decoded(string(model, &f("model"))?, false, false))
}

pub(super) fn embeddings<'j>(members: Obj<'j>) -> Result<Decoded<'j>, KeyError> {
    let root = Path::ROOT;
    let [model, prompt, keep_alive, options] = go_struct(
        members,
        &["model", "prompt", "keep_alive", "options"],
        &root,
    )?;
    let f = |name: &'static str| root.field(name);
    check_keep_alive(keep_alive, &f("keep_alive"))?;
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
        request,
    })
}

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
        request,
    })
}
