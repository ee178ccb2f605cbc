//! The `/v1` routes: each maps onto the native request Ollama's middleware builds.

use super::{canon, differ, refused, same};
use crate::cache::key::{Family, KeyRoute};
use KeyRoute::*;

const V1_HI: &str = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]"#;
const NATIVE_HI: &str = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]"#;

pub(super) fn v1(rest: &str) -> String {
    format!("{V1_HI}{rest}}}")
}

fn native(rest: &str) -> String {
    format!("{NATIVE_HI}{rest}}}")
}

#[test]
fn openai_chat_without_temperature_is_native_chat_with_temperature_and_top_p_one() {
    let c = canon(OpenAiChat, &v1(""));
    assert!(!c.deterministic, "omitted temperature on /v1 is 1.0");
    assert!(!c.stream);
    same(
        (OpenAiChat, &v1("")),
        (Chat, &native(r#","options":{"temperature":1,"top_p":1}"#)),
    );
    differ((OpenAiChat, &v1("")), (Chat, &native("")));
}

#[test]
fn openai_chat_temperature_zero_equals_native_with_top_p_one() {
    let c = canon(OpenAiChat, &v1(r#","temperature":0"#));
    assert!(c.deterministic);
    // /v1 sends top_p 1.0 when absent; native's own default (0.9 or the Modelfile's) differs.
    same(
        (OpenAiChat, &v1(r#","temperature":0"#)),
        (Chat, &native(r#","options":{"temperature":0,"top_p":1.0}"#)),
    );
    differ(
        (OpenAiChat, &v1(r#","temperature":0"#)),
        (Chat, &native(r#","options":{"temperature":0}"#)),
    );
    same(
        (OpenAiChat, &v1(r#","temperature":0,"top_p":0.9"#)),
        (Chat, &native(r#","options":{"temperature":0,"top_p":0.9}"#)),
    );
}

#[test]
fn openai_chat_maps_sampling_fields_onto_native_options() {
    same(
        (
            OpenAiChat,
            &v1(
                r#","max_tokens":50,"seed":7,"stop":"x","frequency_penalty":0.5,"presence_penalty":0.25,"top_p":0.5,"temperature":0.3,"n":3,"user":"u","stream":true,"stream_options":{"include_usage":true}"#,
            ),
        ),
        (
            Chat,
            &native(
                r#","options":{"num_predict":50,"seed":7,"stop":["x"],"frequency_penalty":0.5,"presence_penalty":0.25,"top_p":0.5,"temperature":0.3}"#,
            ),
        ),
    );
    // Chat drops non-string stop entries; an empty result is no stop at all.
    same(
        (OpenAiChat, &v1(r#","stop":[1,"a",null]"#)),
        (OpenAiChat, &v1(r#","stop":["a"]"#)),
    );
    same((OpenAiChat, &v1(r#","stop":[]"#)), (OpenAiChat, &v1("")));
    same((OpenAiChat, &v1(r#","stop":5"#)), (OpenAiChat, &v1("")));
    // Go `*int`: 50.0 is a decode error in Ollama.
    assert_eq!(
        refused(OpenAiChat, &v1(r#","max_tokens":50.0"#)).field(),
        Some("max_tokens")
    );
    same(
        (OpenAiChat, &v1(r#","logprobs":true,"top_logprobs":3"#)),
        (
            Chat,
            &native(r#","options":{"temperature":1,"top_p":1},"logprobs":true,"top_logprobs":3"#),
        ),
    );
}

#[test]
fn openai_chat_response_format_maps_to_format() {
    let t = r#","options":{"temperature":1,"top_p":1}"#;
    same(
        (
            OpenAiChat,
            &v1(r#","response_format":{"type":"json_object"}"#),
        ),
        (Chat, &native(&format!(r#"{t},"format":"json""#))),
    );
    same(
        (
            OpenAiChat,
            &v1(r#","response_format":{"type":" JSON_OBJECT "}"#),
        ),
        (
            OpenAiChat,
            &v1(r#","response_format":{"type":"json_object"}"#),
        ),
    );
    same(
        (
            OpenAiChat,
            &v1(
                r#","response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":{"type":"object","properties":{"a":{"type":"string"}}}}}"#,
            ),
        ),
        (
            Chat,
            &native(&format!(
                r#"{t},"format":{{"type":"object","properties":{{"a":{{"type":"string"}}}}}}"#
            )),
        ),
    );
    same(
        (OpenAiChat, &v1(r#","response_format":{"type":"text"}"#)),
        (OpenAiChat, &v1("")),
    );
    same(
        (
            OpenAiChat,
            &v1(r#","response_format":{"type":"json_schema"}"#),
        ),
        (OpenAiChat, &v1("")),
    );
}

#[test]
fn openai_reasoning_effort_maps_to_think() {
    let t = r#","options":{"temperature":1,"top_p":1}"#;
    same(
        (OpenAiChat, &v1(r#","reasoning_effort":"none""#)),
        (Chat, &native(&format!(r#"{t},"think":false"#))),
    );
    same(
        (OpenAiChat, &v1(r#","reasoning_effort":"minimal""#)),
        (Chat, &native(&format!(r#"{t},"think":"low""#))),
    );
    same(
        (OpenAiChat, &v1(r#","reasoning_effort":"high""#)),
        (Chat, &native(&format!(r#"{t},"think":"high""#))),
    );
    same(
        (OpenAiChat, &v1(r#","reasoning_effort":"xhigh""#)),
        (Chat, &native(&format!(r#"{t},"think":"max""#))),
    );
    same(
        (OpenAiChat, &v1(r#","reasoning":{"effort":"ultra"}"#)),
        (Chat, &native(&format!(r#"{t},"think":"max""#))),
    );
    // `reasoning` wins whenever present, even with an empty effort.
    same(
        (
            OpenAiChat,
            &v1(r#","reasoning":{"effort":"low"},"reasoning_effort":"high""#),
        ),
        (OpenAiChat, &v1(r#","reasoning_effort":"low""#)),
    );
    same(
        (
            OpenAiChat,
            &v1(r#","reasoning":{},"reasoning_effort":"high""#),
        ),
        (OpenAiChat, &v1("")),
    );
    same(
        (
            OpenAiChat,
            &v1(r#","reasoning":null,"reasoning_effort":"high""#),
        ),
        (OpenAiChat, &v1(r#","reasoning_effort":"high""#)),
    );
    assert_eq!(
        refused(OpenAiChat, &v1(r#","reasoning_effort":"bogus""#)).field(),
        Some("reasoning_effort")
    );
}

#[test]
fn openai_content_parts_become_separate_native_messages() {
    let t = r#""options":{"temperature":1,"top_p":1}"#;
    let parts = r#"{"model":"llama3.2","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
    same(
        (OpenAiChat, parts),
        (
            Chat,
            &format!(
                r#"{{"model":"llama3.2",{t},"messages":[{{"role":"user","content":"a"}},{{"role":"user","content":"b"}}]}}"#
            ),
        ),
    );
    differ(
        (OpenAiChat, parts),
        (
            Chat,
            &format!(r#"{{"model":"llama3.2",{t},"messages":[{{"role":"user","content":"ab"}}]}}"#),
        ),
    );
    let image = r#"{"model":"llama3.2","messages":[{"role":"user","content":[{"type":"text","text":"what?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}]}"#;
    same(
        (OpenAiChat, image),
        (
            Chat,
            &format!(
                r#"{{"model":"llama3.2",{t},"messages":[{{"role":"user","content":"what?"}},{{"role":"user","images":["iVBORw0K"]}}]}}"#
            ),
        ),
    );
    same(
        (OpenAiChat, image),
        (
            OpenAiChat,
            &image.replace(
                r#"{"url":"data:image/png;base64,iVBORw0K"}"#,
                r#""data:;base64,iVBORw0K""#,
            ),
        ),
    );
    for (bad, field) in [
        (
            image.replace("data:image/png;base64,", "https://example.com/x.png?"),
            "messages[0].content[1].image_url",
        ),
        (
            image.replace("data:image/png", "data:image/gif"),
            "messages[0].content[1].image_url",
        ),
        (
            parts.replace(r#""text":"a""#, r#""text":1"#),
            "messages[0].content[0].text",
        ),
        (
            parts.replace(r#""type":"text","text":"a""#, r#""type":"input_audio""#),
            "messages[0].content[0].type",
        ),
        (
            parts.replace(r#"{"type":"text","text":"a"}"#, "\"a\""),
            "messages[0].content[0]",
        ),
    ] {
        assert_eq!(refused(OpenAiChat, &bad).field(), Some(field), "{bad}");
    }
}

#[test]
fn openai_tool_calls_and_tool_messages_map_like_ollama() {
    let v1_body = r#"{"model":"llama3.2","tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"messages":[
        {"role":"user","content":"weather?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","index":3,"type":"function","function":{"name":"get","arguments":"{\"city\":\"Paris\",\"unit\":\"C\"}"}}]},
        {"role":"tool","tool_call_id":"c1","content":"20"}]}"#;
    let native_body = r#"{"model":"llama3.2","options":{"temperature":1,"top_p":1},"tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"messages":[
        {"role":"user","content":"weather?"},
        {"role":"assistant","tool_calls":[{"id":"c1","function":{"index":0,"name":"get","arguments":{"city":"Paris","unit":"C"}}}]},
        {"role":"tool","content":"20","tool_name":"get","tool_call_id":"c1"}]}"#;
    same((OpenAiChat, v1_body), (Chat, native_body));
    // Argument order reaches the prompt.
    differ(
        (OpenAiChat, v1_body),
        (
            OpenAiChat,
            &v1_body.replace(
                r#"{\"city\":\"Paris\",\"unit\":\"C\"}"#,
                r#"{\"unit\":\"C\",\"city\":\"Paris\"}"#,
            ),
        ),
    );
    // An explicit name wins over the lookup.
    differ(
        (OpenAiChat, v1_body),
        (
            OpenAiChat,
            &v1_body.replace(
                r#""tool_call_id":"c1","content""#,
                r#""tool_call_id":"c1","name":"other","content""#,
            ),
        ),
    );
    let bad = v1_body.replace(r#""{\"city\":\"Paris\",\"unit\":\"C\"}""#, r#""not json""#);
    assert_eq!(
        refused(OpenAiChat, &bad).field(),
        Some("messages[1].tool_calls[0].function.arguments")
    );
    // Content may be omitted only when tool_calls is present.
    assert_eq!(
        refused(
            OpenAiChat,
            r#"{"model":"m","messages":[{"role":"assistant"}]}"#
        )
        .field(),
        Some("messages[0].content")
    );
}

#[test]
fn openai_completions_map_onto_native_generate() {
    let v1c = r#"{"model":"llama3.2","prompt":"p","suffix":"s"}"#;
    let native_g = r#"{"model":"llama3.2","prompt":"p","suffix":"s","stream":false,"options":{"temperature":1,"top_p":1,"frequency_penalty":0,"presence_penalty":0}}"#;
    same((OpenAiCompletions, v1c), (Generate, native_g));
    differ(
        (OpenAiCompletions, v1c),
        (
            Generate,
            r#"{"model":"llama3.2","prompt":"p","suffix":"s"}"#,
        ),
    );
    // top_p 0 means "unset" there.
    same(
        (
            OpenAiCompletions,
            r#"{"model":"llama3.2","prompt":"p","suffix":"s","top_p":0}"#,
        ),
        (OpenAiCompletions, v1c),
    );
    same(
        (
            OpenAiCompletions,
            r#"{"model":"llama3.2","prompt":"p","suffix":"s","logprobs":3,"max_tokens":9,"seed":1,"stop":["a"]}"#,
        ),
        (
            Generate,
            r#"{"model":"llama3.2","prompt":"p","suffix":"s","logprobs":true,"top_logprobs":3,"options":{"temperature":1,"top_p":1,"frequency_penalty":0,"presence_penalty":0,"num_predict":9,"seed":1,"stop":["a"]}}"#,
        ),
    );
    same(
        (
            OpenAiCompletions,
            r#"{"model":"llama3.2","prompt":"p","suffix":"s","logprobs":0}"#,
        ),
        (OpenAiCompletions, v1c),
    );
    assert_eq!(
        refused(
            OpenAiCompletions,
            r#"{"model":"m","prompt":"p","stop":[1]}"#
        )
        .field(),
        Some("stop[0]")
    );
    assert_eq!(
        refused(OpenAiCompletions, r#"{"model":"m","prompt":["p"]}"#).field(),
        Some("prompt")
    );
    assert!(canon(OpenAiCompletions, r#"{"model":"m","prompt":""}"#).load_only);
    assert!(
        canon(
            OpenAiCompletions,
            r#"{"model":"m","prompt":"p","temperature":0}"#
        )
        .deterministic
    );
}

#[test]
fn openai_embeddings_share_with_native_embed_whatever_the_encoding() {
    let native_embed = r#"{"model":"nomic-embed-text","input":["a"]}"#;
    for body in [
        r#"{"model":"nomic-embed-text","input":"a"}"#,
        r#"{"model":"nomic-embed-text","input":["a"],"encoding_format":"float"}"#,
        r#"{"model":"nomic-embed-text","input":"a","encoding_format":"BASE64"}"#,
        r#"{"model":"nomic-embed-text","input":"a","user":"ignored"}"#,
    ] {
        same((OpenAiEmbeddings, body), (Embed, native_embed));
    }
    same(
        (Embed, native_embed),
        (
            Embed,
            r#"{"model":"nomic-embed-text","input":"a","truncate":true}"#,
        ),
    );
    same(
        (
            OpenAiEmbeddings,
            r#"{"model":"nomic-embed-text","input":"a","dimensions":64}"#,
        ),
        (
            Embed,
            r#"{"model":"nomic-embed-text","input":"a","dimensions":64}"#,
        ),
    );
    assert_eq!(
        refused(
            OpenAiEmbeddings,
            r#"{"model":"m","input":"a","encoding_format":"hex"}"#
        )
        .field(),
        Some("encoding_format")
    );
    for body in [
        r#"{"model":"m","input":[]}"#,
        r#"{"model":"m"}"#,
        r#"{"model":"m","input":null}"#,
    ] {
        assert!(canon(OpenAiEmbeddings, body).load_only, "{body}");
    }
}

#[test]
fn route_is_reported_even_when_keys_are_shared() {
    let a = canon(OpenAiChat, &v1(""));
    let b = canon(Chat, &native(r#","options":{"temperature":1,"top_p":1}"#));
    assert_eq!(a.key, b.key);
    assert_eq!((a.route, b.route), (OpenAiChat, Chat));
    assert_eq!(OpenAiChat.family(), Family::Chat);
    assert!(OpenAiChat.is_openai() && !Chat.is_openai());
}
