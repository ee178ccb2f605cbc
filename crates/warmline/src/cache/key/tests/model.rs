//! Model names: the spellings Ollama resolves alike share a key, others never do.

use super::{canon, differ, key, refused, same};
use crate::cache::key::{CacheKey, KeyError, KeyRoute, normalise_model_name};
use KeyRoute::*;

#[test]
fn model_name_spellings_that_ollama_resolves_alike_share_a_key() {
    let forms = [
        "llama3.2",
        "llama3.2:latest",
        "library/llama3.2",
        "registry.ollama.ai/library/llama3.2:latest",
        "registry.ollama.ai/library/llama3.2",
        "LLAMA3.2:Latest",
        "Library/Llama3.2",
        "https://registry.ollama.ai/library/llama3.2",
        "http://llama3.2",
    ];
    let first = canon(Generate, r#"{"model":"llama3.2","prompt":"hi"}"#);
    assert_eq!(first.model, "llama3.2:latest");
    for form in forms {
        assert_eq!(
            normalise_model_name(form).as_deref(),
            Ok("llama3.2:latest"),
            "{form}"
        );
        let c = canon(Generate, &format!(r#"{{"model":"{form}","prompt":"hi"}}"#));
        assert_eq!(c.key, first.key, "{form}");
        assert_eq!(c.model, "llama3.2:latest");
    }
}

#[test]
fn model_display_keeps_non_default_namespace_and_host() {
    let cases = [
        ("myns/coder", "myns/coder:latest"),
        ("registry.ollama.ai/myns/coder:7b", "myns/coder:7b"),
        ("example.com:5000/team/m:Q4", "example.com:5000/team/m:q4"),
        ("example.com/library/m", "example.com/library/m:latest"),
        (
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            "hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m",
        ),
        ("qwen3:8b", "qwen3:8b"),
    ];
    for (raw, display) in cases {
        assert_eq!(normalise_model_name(raw).as_deref(), Ok(display), "{raw}");
    }
}

#[test]
fn different_models_and_tags_do_not_share() {
    let body = |m: &str| format!(r#"{{"model":"{m}","prompt":"hi"}}"#);
    let keys: Vec<CacheKey> = [
        "llama3.2",
        "llama3.2:1b",
        "myns/llama3.2",
        "example.com/library/llama3.2",
    ]
    .iter()
    .map(|m| key(Generate, &body(m)))
    .collect();
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn invalid_model_names_are_refused_not_trimmed() {
    for raw in [
        " llama3.2",
        "llama3.2 ",
        "llama 3.2",
        "a/b/c/d",
        "m:t:u",
        "m..x",
        "ns.x/m",
        "m:",
        ":t",
        "/m",
        "ns//m",
        "m+Q4_0",
        "m@sha256-abc",
        "ns:1/m",
        "llamä",
        "http://",
    ] {
        assert!(
            matches!(normalise_model_name(raw), Err(KeyError::InvalidModel(_))),
            "{raw:?}"
        );
        let body = format!(
            r#"{{"model":{},"prompt":"hi"}}"#,
            serde_json::to_string(raw).expect("json")
        );
        assert_eq!(refused(Generate, &body).kind(), "invalid_model", "{raw:?}");
    }
    assert!(normalise_model_name(&"x".repeat(129)).is_err());
    assert!(normalise_model_name(&"x".repeat(128)).is_ok());
    assert_eq!(refused(Generate, r#"{"prompt":"hi"}"#), KeyError::NoModel);
    assert_eq!(
        refused(Generate, r#"{"model":"","prompt":"hi"}"#),
        KeyError::NoModel
    );
    assert_eq!(refused(Chat, r#"{"model":null}"#), KeyError::NoModel);
    assert_eq!(refused(Chat, r#"{"model":7}"#).field(), Some("model"));
}

#[test]
fn show_accepts_the_deprecated_name_field() {
    same(
        (Show, r#"{"name":"llama3.2"}"#),
        (Show, r#"{"model":"llama3.2:latest"}"#),
    );
    same(
        (Show, r#"{"model":"","name":"llama3.2"}"#),
        (Show, r#"{"model":"llama3.2"}"#),
    );
    same(
        (Show, r#"{"model":"qwen3","name":"llama3.2"}"#),
        (Show, r#"{"model":"qwen3"}"#),
    );
    // Only /api/show has the fallback.
    assert_eq!(
        refused(Generate, r#"{"name":"llama3.2","prompt":"hi"}"#),
        KeyError::NoModel
    );
}

#[test]
fn show_keys_verbose_system_template_and_options() {
    let base = r#"{"model":"llama3.2"}"#;
    same(
        (Show, base),
        (
            Show,
            r#"{"model":"llama3.2","verbose":false,"system":"","options":null}"#,
        ),
    );
    differ(
        (Show, base),
        (Show, r#"{"model":"llama3.2","verbose":true}"#),
    );
    differ((Show, base), (Show, r#"{"model":"llama3.2","system":"s"}"#));
    differ(
        (Show, base),
        (Show, r#"{"model":"llama3.2","template":"t"}"#),
    );
    differ(
        (Show, base),
        (Show, r#"{"model":"llama3.2","options":{"a":1}}"#),
    );
    same(
        (Show, r#"{"model":"llama3.2","options":{"a":1,"b":[2.0]}}"#),
        (Show, r#"{"model":"llama3.2","options":{"b":[2],"a":1e0}}"#),
    );
    let c = canon(Show, base);
    assert!(c.deterministic && !c.load_only && !c.stream);
}
