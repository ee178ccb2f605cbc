//! Tests of [`canonical`] as the gateway calls it, one file per concern; this one
//! holds the helpers they share, the refusal contract, the envelope (partition,
//! digest, pinned canonical form) and the cost measurement.

use super::{CacheKey, Canonical, KeyError, KeyRoute, canonical};
use KeyRoute::*;

mod model;
mod native;
mod openai;
mod options;

pub(super) fn digests(model: &str) -> Option<String> {
    Some(format!("sha256-{model}"))
}

pub(super) fn canon(route: KeyRoute, body: &str) -> Canonical {
    canonical(route, body.as_bytes(), "", digests)
        .unwrap_or_else(|e| panic!("refused: {e}\n{body}"))
        .expect("digest is known")
}

fn key(route: KeyRoute, body: &str) -> CacheKey {
    canon(route, body).key
}

#[track_caller]
fn same(a: (KeyRoute, &str), b: (KeyRoute, &str)) {
    let (x, y) = (canon(a.0, a.1), canon(b.0, b.1));
    assert_eq!(x.key, y.key, "\n{}\n{}", x.canonical, y.canonical);
}

#[track_caller]
fn differ(a: (KeyRoute, &str), b: (KeyRoute, &str)) {
    let (x, y) = (canon(a.0, a.1), canon(b.0, b.1));
    assert_ne!(x.key, y.key, "\n{}\n{}", x.canonical, y.canonical);
}

#[track_caller]
fn refused(route: KeyRoute, body: &str) -> KeyError {
    canonical(route, body.as_bytes(), "", digests).expect_err("should be refused")
}

fn with_options(options: &str) -> String {
    format!(r#"{{"model":"llama3.2","prompt":"hi","options":{options}}}"#)
}

// -- malformed input ------------------------------------------------------

#[test]
fn unknown_digest_is_not_cacheable() {
    let r = canonical(Generate, br#"{"model":"m","prompt":"hi"}"#, "", |_| None);
    assert_eq!(r, Ok(None));
}

#[test]
fn malformed_bodies_are_refused_with_the_field_named() {
    let not_json: [&[u8]; 9] = [
        b"",
        b"not json",
        br#"{"model":"m"} x"#,
        br#"{"model":"m",}"#,
        b"{\"model\":\"m\xff\"}",
        br#"{"model":"\ud800"}"#,
        br#"{"model":"m","prompt":"a
b"}"#,
        br#"{"model":01}"#,
        b"\xef\xbb\xbf{}",
    ];
    for body in not_json {
        let e = canonical(Generate, body, "", digests).expect_err("refused");
        assert_eq!(e.kind(), "not_json", "{}", String::from_utf8_lossy(body));
    }
    assert_eq!(refused(Generate, "[1]"), KeyError::NotAnObject);
    assert_eq!(refused(Generate, r#""s""#), KeyError::NotAnObject);
    let deep = "[".repeat(100_000);
    assert_eq!(refused(Generate, &deep).kind(), "not_json");
    for (route, body, field) in [
        (Generate, r#"{"model":"m","prompt":5}"#, "prompt"),
        (
            Generate,
            r#"{"model":"m","prompt":"x","stream":"yes"}"#,
            "stream",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","think":"extreme"}"#,
            "think",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","format":"yaml"}"#,
            "format",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","format":5}"#,
            "format",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","format":"js\u006fn"}"#,
            "format",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","top_logprobs":1.5}"#,
            "top_logprobs",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","top_logprobs":2.0}"#,
            "top_logprobs",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","context":[1,2.5]}"#,
            "context[1]",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","context":[1,null]}"#,
            "context[1]",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","images":[5]}"#,
            "images[0]",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","width":5000000000}"#,
            "width",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","prompt":"y"}"#,
            "prompt",
        ),
        (
            Generate,
            r#"{"model":"m","prompt":"x","Prompt":"y"}"#,
            "prompt",
        ),
        (Chat, r#"{"model":"m","messages":{}}"#, "messages"),
        (Chat, r#"{"model":"m","messages":[null]}"#, "messages[0]"),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":5}]}"#,
            "messages[1].content",
        ),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"user","images":[7]}]}"#,
            "messages[0].images[0]",
        ),
        (
            Chat,
            r#"{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"arguments":"{}"}}]}]}"#,
            "messages[0].tool_calls[0].function.arguments",
        ),
        (Chat, r#"{"model":"m","tools":[1]}"#, "tools[0]"),
        (Chat, r#"{"model":"m","tools":{"a":1}}"#, "tools"),
        (Show, r#"{"model":"m","verbose":"yes"}"#, "verbose"),
        (
            OpenAiChat,
            r#"{"model":"m","messages":[],"stream_options":true}"#,
            "stream_options",
        ),
        (
            OpenAiChat,
            r#"{"model":"m","messages":[],"temperature":"0"}"#,
            "temperature",
        ),
        (
            OpenAiCompletions,
            r#"{"model":"m","prompt":"p","temperature":1e39}"#,
            "temperature",
        ),
    ] {
        let e = refused(route, body);
        assert_eq!(e.field(), Some(field), "{route:?} {body}: {e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

// -- the envelope ---------------------------------------------------------

#[test]
fn partitions_and_digests_separate_keys() {
    let body = br#"{"model":"m","prompt":"hi"}"#;
    let k = |partition: &str, digest: &str| {
        canonical(Generate, body, partition, |_| Some(digest.to_owned()))
            .expect("ok")
            .expect("some")
            .key
    };
    assert_eq!(k("", "d1"), k("", "d1"));
    assert_ne!(k("", "d1"), k("tenant-a", "d1"));
    assert_ne!(k("tenant-a", "d1"), k("tenant-b", "d1"));
    assert_ne!(k("", "d1"), k("", "d2"));
    // No way to smuggle one field into another.
    assert_ne!(k("a\",\"x", "d"), k("a", "d\",\"x"));
}

#[test]
fn canonical_form_is_compact_sorted_and_pinned() {
    let c = canon(
        Generate,
        "{ \"prompt\" : \"hi\\u0021\",\n \"options\": {\"top_k\": 10.0, \"temperature\": 5e-1},\"model\":\"Llama3.2\"}",
    );
    assert_eq!(
        c.canonical,
        concat!(
            r#"{"digest":"sha256-llama3.2:latest","family":"generate","model":"llama3.2:latest","partition":"","#,
            r#""request":{"context":null,"debug_render_only":false,"format":null,"height":0,"images":[],"logprobs":false,"#,
            r#""options":{"temperature":0.5,"top_k":10},"prompt":"hi!","raw":false,"shift":true,"steps":0,"suffix":"","#,
            r#""system":"","template":"","think":null,"top_logprobs":0,"truncate":true,"width":0},"v":1}"#
        )
    );
    // Pinned: a change here means the canonical form changed; bump KEY_FORMAT_VERSION.
    assert_eq!(c.key.to_hex(), GOLDEN_KEY);
}

const GOLDEN_KEY: &str = "d7404b1cc3e9481aed400a70ffe9ac3cd35ea75b483b5270fe4c63f88e305604";

#[test]
fn strings_are_kept_byte_for_byte() {
    let p = |s: &str| format!(r#"{{"model":"m","prompt":"{s}"}}"#);
    differ((Generate, &p("\u{e9}")), (Generate, &p("e\u{301}"))); // NFC vs NFD
    same((Generate, &p("\u{e9}")), (Generate, &p(r"\u00e9")));
    same((Generate, &p("😀")), (Generate, &p(r"\ud83d\ude00")));
    // Minimal escapes out; DEL and everything above it copied raw.
    let c = canon(Generate, &p(r#"a\"b\\c\n\u0001\u007f"#));
    assert!(
        c.canonical
            .contains("\"prompt\":\"a\\\"b\\\\c\\n\\u0001\u{7f}\""),
        "{}",
        c.canonical
    );
}

#[test]
fn cache_key_hex_is_64_lowercase_chars() {
    let hex = CacheKey([0xab; 32]).to_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(hex, "ab".repeat(32));
    assert_eq!(CacheKey([0x0f; 32]).to_string(), "0f".repeat(32));
}

#[test]
fn errors_have_static_kinds() {
    assert_eq!(KeyError::NotAnObject.kind(), "not_an_object");
    assert_eq!(KeyError::DuplicateField("a".into()).field(), Some("a"));
    assert_eq!(KeyError::NoModel.field(), None);
}

// -- cost ---------------------------------------------------------------------

/// A typical ~1 KB chat body: system prompt, a few turns, options.
fn typical_chat_body() -> String {
    let turn = "Could you explain how the scheduler decides which model to evict when memory runs out, and why?";
    let answer = "Ollama sorts loaded runners by keep-alive and picks the first idle one; if none is idle it waits.";
    format!(
        r#"{{"model":"llama3.2","stream":true,"options":{{"temperature":0,"num_ctx":8192,"top_p":0.9}},"messages":[{{"role":"system","content":"You are a concise assistant for operators of local LLM servers. Answer precisely."}},{{"role":"user","content":"{turn}"}},{{"role":"assistant","content":"{answer}"}},{{"role":"user","content":"{turn} Also: {answer}"}},{{"role":"assistant","content":"{answer}"}},{{"role":"user","content":"Thanks! One more: {turn}"}}]}}"#
    )
}

#[test]
#[ignore = "timing; run with --ignored --nocapture"]
fn cost_of_a_typical_chat_key() {
    let body = typical_chat_body();
    let digest = |_: &str| {
        Some("sha256:a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72".to_owned())
    };
    let iterations = 50_000u32;
    for _ in 0..1000 {
        std::hint::black_box(canonical(Chat, body.as_bytes(), "tenant", digest).ok());
    }
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(
            canonical(
                Chat,
                std::hint::black_box(body.as_bytes()),
                "tenant",
                digest,
            )
            .ok(),
        );
    }
    let per = start.elapsed() / iterations;
    println!(
        "canonical(): {} bytes of chat body -> {per:?} per key",
        body.len()
    );
}

#[test]
fn typical_body_is_about_a_kilobyte() {
    let body = typical_chat_body();
    assert!((900..1300).contains(&body.len()), "{}", body.len());
    assert!(canon(Chat, &body).deterministic);
}
