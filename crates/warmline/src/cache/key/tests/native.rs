//! The native routes' fields: which are keyed, which share, which are only
//! validated, and how Go's decoding rules (case folding, `null`) apply.

use super::openai::v1;
use super::{canon, differ, refused, same};
use crate::cache::key::KeyRoute;
use KeyRoute::*;

// -- embed ----------------------------------------------------------------

#[test]
fn embed_single_string_and_one_element_array_share() {
    let a = r#"{"model":"m","input":"a"}"#;
    same((Embed, a), (Embed, r#"{"model":"m","input":["a"]}"#));
    differ((Embed, a), (Embed, r#"{"model":"m","input":["a","a"]}"#));
    differ(
        (Embed, r#"{"model":"m","input":["a","b"]}"#),
        (Embed, r#"{"model":"m","input":["b","a"]}"#),
    );
    differ(
        (Embed, a),
        (Embed, r#"{"model":"m","input":"a","truncate":false}"#),
    );
    differ(
        (Embed, a),
        (Embed, r#"{"model":"m","input":"a","dimensions":128}"#),
    );
    differ(
        (Embed, a),
        (
            Embed,
            r#"{"model":"m","input":"a","options":{"num_ctx":512}}"#,
        ),
    );
    same(
        (Embed, a),
        (
            Embed,
            r#"{"model":"m","input":"a","keep_alive":"1h","options":{"num_thread":2}}"#,
        ),
    );
    assert_eq!(
        refused(Embed, r#"{"model":"m","input":5}"#).field(),
        Some("input")
    );
    assert_eq!(
        refused(Embed, r#"{"model":"m","input":["a",1]}"#).field(),
        Some("input[1]")
    );
    assert!(!canon(Embed, a).stream);
}

#[test]
fn embed_and_legacy_embeddings_never_share() {
    differ(
        (Embed, r#"{"model":"m","input":"a"}"#),
        (Embeddings, r#"{"model":"m","prompt":"a"}"#),
    );
    differ(
        (Embeddings, r#"{"model":"m","prompt":"a"}"#),
        (Embeddings, r#"{"model":"m","prompt":"b"}"#),
    );
    differ(
        (Embeddings, r#"{"model":"m","prompt":"a"}"#),
        (
            Embeddings,
            r#"{"model":"m","prompt":"a","options":{"num_ctx":64}}"#,
        ),
    );
}

// -- load-only ------------------------------------------------------------

#[test]
fn load_and_unload_requests_are_marked_load_only() {
    for (route, body) in [
        (Generate, r#"{"model":"m"}"#),
        (Generate, r#"{"model":"m","prompt":""}"#),
        (Generate, r#"{"model":"m","prompt":null,"keep_alive":0}"#),
        (
            Generate,
            r#"{"model":"m","keep_alive":"0s","options":{"num_ctx":8192}}"#,
        ),
        (Chat, r#"{"model":"m"}"#),
        (Chat, r#"{"model":"m","messages":[],"keep_alive":0}"#),
        (Embed, r#"{"model":"m"}"#),
        (Embed, r#"{"model":"m","input":""}"#),
        (Embed, r#"{"model":"m","input":[]}"#),
        (Embeddings, r#"{"model":"m","prompt":""}"#),
        (OpenAiChat, r#"{"model":"m","messages":[]}"#),
    ] {
        assert!(canon(route, body).load_only, "{route:?} {body}");
    }
    for (route, body) in [
        (Generate, r#"{"model":"m","prompt":"hi","keep_alive":0}"#),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":""}],"keep_alive":0}"#,
        ),
        (Embed, r#"{"model":"m","input":[""]}"#),
        (Embeddings, r#"{"model":"m","prompt":"x"}"#),
    ] {
        assert!(!canon(route, body).load_only, "{route:?} {body}");
    }
}

#[test]
fn keep_alive_is_not_keyed_but_must_be_valid() {
    let base = r#"{"model":"m","prompt":"hi"}"#;
    for ka in [
        "\"5m\"",
        "-1",
        "0",
        "300",
        "\"1h30m\"",
        "\".5s\"",
        "\"1.5h\"",
        "\"-1m\"",
        "\"0\"",
        "null",
        "2.5",
        "\"10\u{b5}s\"",
    ] {
        same(
            (Generate, base),
            (
                Generate,
                &format!(r#"{{"model":"m","prompt":"hi","keep_alive":{ka}}}"#),
            ),
        );
    }
    for ka in [
        "\"300\"",
        "true",
        "\"5 m\"",
        "\"\"",
        "\"5d\"",
        "\".s\"",
        "[1]",
        "\"99999999999h\"",
    ] {
        let e = refused(
            Generate,
            &format!(r#"{{"model":"m","prompt":"hi","keep_alive":{ka}}}"#),
        );
        assert_eq!(e.field(), Some("keep_alive"), "{ka}");
    }
}

// -- Go decoding rules and keyed fields ------------------------------------

#[test]
fn go_case_insensitive_field_names_are_honoured() {
    same(
        (
            Generate,
            r#"{"MODEL":"llama3.2","Prompt":"hi","OPTIONS":{"temperature":0},"Think":true}"#,
        ),
        (
            Generate,
            r#"{"model":"llama3.2","prompt":"hi","options":{"temperature":0},"think":true}"#,
        ),
    );
    // KELVIN SIGN folds onto k in Go's encoding/json.
    same(
        (
            Generate,
            "{\"model\":\"m\",\"prompt\":\"hi\",\"thin\u{212A}\":true}",
        ),
        (Generate, r#"{"model":"m","prompt":"hi","think":true}"#),
    );
    same(
        (
            Chat,
            r#"{"model":"m","messages":[{"ROLE":"user","Content":"x"}]}"#,
        ),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        ),
    );
}

#[test]
fn roles_are_lower_cased() {
    same(
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"USER","content":"x"}]}"#,
        ),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        ),
    );
    differ(
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#,
        ),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        ),
    );
}

#[test]
fn think_absent_false_true_and_levels_are_all_distinct() {
    let bodies: Vec<String> = [
        "",
        r#","think":false"#,
        r#","think":true"#,
        r#","think":"low""#,
        r#","think":"high""#,
        r#","think":"max""#,
    ]
    .iter()
    .map(|t| format!(r#"{{"model":"m","prompt":"hi"{t}}}"#))
    .collect();
    for (i, a) in bodies.iter().enumerate() {
        for b in &bodies[i + 1..] {
            differ((Generate, a), (Generate, b));
        }
    }
    same(
        (Generate, &bodies[0]),
        (Generate, r#"{"model":"m","prompt":"hi","think":null}"#),
    );
}

#[test]
fn format_null_and_empty_are_unset_json_and_schemas_are_distinct() {
    let base = r#"{"model":"m","prompt":"hi"}"#;
    same(
        (Generate, base),
        (Generate, r#"{"model":"m","prompt":"hi","format":null}"#),
    );
    same(
        (Generate, base),
        (Generate, r#"{"model":"m","prompt":"hi","format":""}"#),
    );
    differ(
        (Generate, base),
        (Generate, r#"{"model":"m","prompt":"hi","format":"json"}"#),
    );
    differ(
        (Generate, r#"{"model":"m","prompt":"hi","format":"json"}"#),
        (
            Generate,
            r#"{"model":"m","prompt":"hi","format":{"type":"object"}}"#,
        ),
    );
}

#[test]
fn schema_member_order_and_number_class_are_kept() {
    let fmt = |schema: &str| format!(r#"{{"model":"m","prompt":"hi","format":{schema}}}"#);
    differ(
        (
            Generate,
            &fmt(
                r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#,
            ),
        ),
        (
            Generate,
            &fmt(
                r#"{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string"}}}"#,
            ),
        ),
    );
    differ(
        (Generate, &fmt(r#"{"enum":[1]}"#)),
        (Generate, &fmt(r#"{"enum":[1.0]}"#)),
    );
    same(
        (Generate, &fmt(r#"{"enum":[1.0]}"#)),
        (Generate, &fmt(r#"{"enum":[1e0]}"#)),
    );
    differ(
        (Generate, &fmt(r#"{"enum":[0]}"#)),
        (Generate, &fmt(r#"{"enum":[-0]}"#)),
    );
    same(
        (Generate, &fmt(r#"{"type":"object","required":["a"]}"#)),
        (
            Generate,
            &fmt("{ \"type\" :\n\"object\",\t\"required\": [ \"a\" ] }"),
        ),
    );
}

#[test]
fn native_tool_call_arguments_keep_their_order_and_default_to_empty() {
    let call = |args: &str| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"assistant","tool_calls":[{{"function":{{"name":"f"{args}}}}}]}}]}}"#
        )
    };
    differ(
        (Chat, &call(r#","arguments":{"a":1,"b":2}"#)),
        (Chat, &call(r#","arguments":{"b":2,"a":1}"#)),
    );
    same((Chat, &call("")), (Chat, &call(r#","arguments":{}"#)));
    same(
        (Chat, &call(r#","arguments":{}"#)),
        (Chat, &call(r#","arguments":{},"index":0"#)),
    );
    differ(
        (Chat, &call(r#","arguments":{}"#)),
        (Chat, &call(r#","arguments":{},"index":1"#)),
    );
}

#[test]
fn context_empty_differs_from_absent() {
    let base = r#"{"model":"m","prompt":"hi"}"#;
    same(
        (Generate, base),
        (Generate, r#"{"model":"m","prompt":"hi","context":null}"#),
    );
    differ(
        (Generate, base),
        (Generate, r#"{"model":"m","prompt":"hi","context":[]}"#),
    );
    differ(
        (Generate, r#"{"model":"m","prompt":"hi","context":[1,2]}"#),
        (Generate, r#"{"model":"m","prompt":"hi","context":[2,1]}"#),
    );
}

#[test]
fn images_keep_their_order_and_an_empty_list_is_none() {
    let g = |imgs: &str| format!(r#"{{"model":"m","prompt":"hi","images":{imgs}}}"#);
    differ(
        (Generate, &g(r#"["QQ==","Qg=="]"#)),
        (Generate, &g(r#"["Qg==","QQ=="]"#)),
    );
    same(
        (Generate, &g("[]")),
        (Generate, r#"{"model":"m","prompt":"hi"}"#),
    );
    // JSON escapes are decoded before Ollama base64-decodes.
    same(
        (Generate, &g(r#"["a\/b="]"#)),
        (Generate, &g(r#"["a/b="]"#)),
    );
}

#[test]
fn generate_fields_each_change_the_key() {
    let base = r#"{"model":"m","prompt":"hi"}"#;
    for extra in [
        r#""suffix":"s""#,
        r#""system":"s""#,
        r#""template":"t""#,
        r#""raw":true"#,
        r#""truncate":false"#,
        r#""shift":false"#,
        r#""logprobs":true"#,
        r#""top_logprobs":2"#,
        r#""_debug_render_only":true"#,
        r#""width":64"#,
        r#""height":64"#,
        r#""steps":4"#,
        r#""images":["QQ=="]"#,
    ] {
        differ(
            (Generate, base),
            (
                Generate,
                &format!(r#"{{"model":"m","prompt":"hi",{extra}}}"#),
            ),
        );
    }
    for default in [
        r#""truncate":true"#,
        r#""shift":true"#,
        r#""raw":false"#,
        r#""suffix":"""#,
        r#""top_logprobs":0"#,
    ] {
        same(
            (Generate, base),
            (
                Generate,
                &format!(r#"{{"model":"m","prompt":"hi",{default}}}"#),
            ),
        );
    }
}

#[test]
fn stream_is_not_keyed_but_is_reported() {
    let native_default = canon(Generate, r#"{"model":"m","prompt":"hi"}"#);
    let native_off = canon(Generate, r#"{"model":"m","prompt":"hi","stream":false}"#);
    assert!(native_default.stream && !native_off.stream);
    assert_eq!(native_default.key, native_off.key);
    let v1_default = canon(OpenAiChat, &v1(""));
    let v1_on = canon(OpenAiChat, &v1(r#","stream":true"#));
    assert!(!v1_default.stream && v1_on.stream);
    assert_eq!(v1_default.key, v1_on.key);
    assert!(canon(Chat, r#"{"model":"m","stream":null}"#).stream);
}

#[test]
fn unknown_top_level_fields_are_ignored() {
    same(
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x","extra":1}]}"#,
        ),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"x-client":"abc","metadata":{"a":[1]}}"#,
        ),
    );
}
