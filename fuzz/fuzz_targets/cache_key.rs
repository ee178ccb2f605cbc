//! The cache-key canonicaliser on any request body, for every route: it never
//! panics, it is deterministic, and what it hashes is valid JSON (but for the
//! token float32 infinity is keyed as).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::cache::key::{KeyRoute, canonical};

const ROUTES: [KeyRoute; 8] = [
    KeyRoute::Generate,
    KeyRoute::Chat,
    KeyRoute::Embed,
    KeyRoute::Embeddings,
    KeyRoute::Show,
    KeyRoute::OpenAiChat,
    KeyRoute::OpenAiCompletions,
    KeyRoute::OpenAiEmbeddings,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[usize::from(selector) % ROUTES.len()];
    let digest = |_: &str| Some("sha256:0123".to_owned());
    let first = canonical(route, body, "", digest);
    let second = canonical(route, body, "", digest);
    assert_eq!(first, second, "the key of a body is always the same");
    if let Ok(Some(key)) = first {
        // JSON, but for one deliberate token: an option Ollama holds as float32
        // and that overflows it (temperature 1e100) is +Inf there, keyed `1e999`.
        let parseable = key.canonical.replace("1e999", "1e308");
        assert!(
            serde_json::from_str::<serde_json::Value>(&parseable).is_ok(),
            "the canonical form is JSON: {}",
            key.canonical
        );
        assert!(!key.model.is_empty());
    }
});
