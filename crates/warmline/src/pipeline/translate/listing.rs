//! The models OpenAI-compatible engines serve, in Ollama's lists: `/api/tags`
//! and `/api/ps` show them beside Ollama's own, and `/api/show` describes one.
//!
//! With Ollama hosts too, their answer is kept as it is and the engines' entries
//! are added to its `models`; with engines only, Warmline writes the whole list.
//! An engine says little of its models: an entry has the engine's id as its
//! name, the digest Warmline made from the listing (see
//! `upstream::inventory::fetch_openai`), size 0 and empty details; `/api/ps`
//! lists every model of an engine that answers (they hold what they serve) with
//! no expiry.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::UpstreamKind;
use crate::upstream::UpstreamSet;

/// Whether any upstream is an OpenAI-compatible engine (only then do Ollama's
/// lists need anything added).
pub(crate) fn has_engines(upstreams: &UpstreamSet) -> bool {
    upstreams
        .hosts()
        .iter()
        .any(|h| h.kind() == UpstreamKind::OpenAi)
}

/// The engines' entries for `/api/tags` (`loaded: false`) or `/api/ps`
/// (`loaded: true`), one per model even if several engines serve it.
pub(crate) fn entries(upstreams: &UpstreamSet, loaded: bool) -> Vec<Value> {
    let mut seen = std::collections::BTreeMap::new();
    for host in upstreams
        .hosts()
        .iter()
        .filter(|h| h.kind() == UpstreamKind::OpenAi)
    {
        if loaded && !host.is_reachable() {
            continue;
        }
        for (key, installed) in &host.models.snapshot().installed {
            seen.entry(key.clone()).or_insert_with(|| {
                let details = json!({
                    "parent_model": "", "format": "", "family": "", "families": null,
                    "parameter_size": "", "quantization_level": "",
                });
                if loaded {
                    json!({
                        "name": installed.name, "model": installed.name, "size": 0,
                        "digest": installed.digest, "details": details,
                        "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0,
                    })
                } else {
                    json!({
                        "name": installed.name, "model": installed.name,
                        "modified_at": "0001-01-01T00:00:00Z", "size": 0,
                        "digest": installed.digest, "details": details,
                    })
                }
            });
        }
    }
    seen.into_values().collect()
}

/// An Ollama list answer with `extra` entries added to its `models`; `None` if
/// the body is not such a list.
pub(crate) fn splice(body: &[u8], extra: Vec<Value>) -> Option<Bytes> {
    let mut list: Value = serde_json::from_slice(body).ok()?;
    let models = list.get_mut("models")?.as_array_mut()?;
    let known: Vec<String> = models
        .iter()
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    models.extend(extra.into_iter().filter(|e| {
        e.get("name")
            .and_then(Value::as_str)
            .is_none_or(|n| !known.iter().any(|k| k == n))
    }));
    serde_json::to_vec(&list).ok().map(Bytes::from)
}

/// `/api/show` of a model an engine serves: what can be said of it.
pub(crate) fn show(engine_model: &str, engine: &str) -> Value {
    json!({
        "license": "",
        "modelfile": format!("# Served by the OpenAI-compatible engine at {engine}\nFROM {engine_model}\n"),
        "parameters": "",
        "template": "",
        "details": {
            "parent_model": "", "format": "", "family": "", "families": null,
            "parameter_size": "", "quantization_level": "",
        },
        "model_info": {},
        "capabilities": ["completion"],
        "modified_at": "0001-01-01T00:00:00Z",
    })
}

/// The answer to `/api/tags` or `/api/ps` with the engines' models in it:
/// Ollama's `answer` (if there is an Ollama host) with them added, else a list
/// of them alone.
pub(crate) async fn answer(
    answer: Option<axum::response::Response>,
    upstreams: &UpstreamSet,
    loaded: bool,
) -> axum::response::Response {
    let extra = entries(upstreams, loaded);
    let Some(answer) = answer else {
        let body = serde_json::to_vec(&json!({ "models": extra })).unwrap_or_default();
        let mut response = axum::response::Response::new(axum::body::Body::from(body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        return response;
    };
    if !answer.status().is_success() {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    // A list is small; one that is not (or not a list) passes as it came.
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
        return axum::response::Response::from_parts(parts, axum::body::Body::empty());
    };
    let body = splice(&bytes, extra).unwrap_or(bytes);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}
