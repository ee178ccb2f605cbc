//! Every Ollama route, direct vs through the gateway, on the simulator: the gateway
//! must be invisible. Routes whose answers have no volatile fields are compared
//! byte for byte; generations are compared after blanking timestamps, durations
//! and random ids (the only fields that differ between two identical calls to
//! Ollama itself).

use std::time::{Duration, Instant};

use warmline_tests::{gateway, simulator, simulator_with};

/// Status, content type and raw body of one exchange.
#[derive(Debug, PartialEq)]
struct Exchange {
    status: u16,
    content_type: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
}

async fn exchange(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Exchange {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.expect("response");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, content_type, content_length) = (
        response.status().as_u16(),
        header("content-type"),
        header("content-length"),
    );
    Exchange {
        status,
        content_type,
        content_length,
        body: response.bytes().await.expect("body").to_vec(),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Requests whose answers contain nothing volatile: must match byte for byte.
const STATIC_CASES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/", None),
    ("HEAD", "/", None),
    ("GET", "/api/version", None),
    ("GET", "/api/tags", None),
    ("HEAD", "/api/tags", None),
    ("POST", "/api/show", Some(r#"{"model":"llama3.2"}"#)),
    ("POST", "/api/show", Some(r#"{"model":"no-such-model"}"#)),
    ("POST", "/api/show", Some(r#"{}"#)),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/llama3.2", None),
    ("GET", "/v1/models/no-such-model", None),
    ("GET", "/no/such/path", None),
    ("GET", "/api/chat", None),
    ("POST", "/api/chat", None),
    ("POST", "/api/chat", Some("{not json")),
    (
        "POST",
        "/api/chat",
        Some(r#"{"messages":[{"role":"user","content":"hi"}]}"#),
    ),
    (
        "POST",
        "/api/chat",
        Some(r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#),
    ),
    (
        "POST",
        "/api/generate",
        Some(r#"{"model":"no-such-model","prompt":"hi"}"#),
    ),
    (
        "POST",
        "/api/generate",
        Some(r#"{"model":"llama3.2","prompt":"hi","keep_alive":"300"}"#),
    ),
    (
        "POST",
        "/api/embed",
        Some(r#"{"model":"no-such-model","input":"hi"}"#),
    ),
    (
        "POST",
        "/v1/chat/completions",
        Some(r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#),
    ),
    (
        "POST",
        "/v1/chat/completions",
        Some(r#"{"model":"llama3.2","messages":[]}"#),
    ),
    (
        "POST",
        "/v1/embeddings",
        Some(r#"{"model":"nomic-embed-text","input":[]}"#),
    ),
    (
        "HEAD",
        "/api/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        None,
    ),
];

#[tokio::test]
async fn static_routes_and_errors_pass_through_byte_for_byte() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let client = client();
    for (method, path, body) in STATIC_CASES {
        let direct = exchange(&client, method, &format!("{}{path}", sim.url()), *body).await;
        let through = exchange(&client, method, &format!("{}{path}", gw.url()), *body).await;
        assert_eq!(direct, through, "{method} {path} {body:?}");
    }
}

/// Blanks the fields that differ between two identical calls to Ollama (and, for
/// `modified_at`, between two simulators started a moment apart).
fn normalize(value: &mut serde_json::Value) {
    const VOLATILE: &[&str] = &[
        "created_at",
        "modified_at",
        "expires_at",
        "created",
        "id",
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ];
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if VOLATILE.contains(&key.as_str()) {
                    *v = serde_json::Value::Null;
                } else {
                    normalize(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Splits a body into its JSON documents (NDJSON lines, SSE `data:` events, or one
/// JSON value) with volatile fields blanked; non-JSON parts are kept as text.
fn documents(body: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(body);
    let pieces: Vec<&str> = if text.starts_with("data: ") {
        text.split("\n\n").filter(|p| !p.is_empty()).collect()
    } else {
        text.split('\n').filter(|p| !p.is_empty()).collect()
    };
    pieces
        .into_iter()
        .map(|piece| {
            let json = piece.strip_prefix("data: ").unwrap_or(piece);
            match serde_json::from_str::<serde_json::Value>(json) {
                Ok(mut value) => {
                    normalize(&mut value);
                    value
                }
                Err(_) => serde_json::Value::String(piece.to_owned()),
            }
        })
        .collect()
}

const GENERATION_CASES: &[(&str, &str)] = &[
    (
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"Why is the sky blue?","options":{"temperature":0}}"#,
    ),
    (
        "/api/generate",
        r#"{"model":"llama3.2","prompt":"Why is the sky blue?","stream":false,"options":{"seed":42}}"#,
    ),
    ("/api/generate", r#"{"model":"llama3.2"}"#),
    ("/api/generate", r#"{"model":"llama3.2","keep_alive":0}"#),
    (
        "/api/chat",
        r#"{"model":"qwen3:0.6b","messages":[{"role":"user","content":"hello"}],"options":{"temperature":0}}"#,
    ),
    (
        "/api/chat",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}],"stream":false,"options":{"temperature":0}}"#,
    ),
    (
        "/api/embed",
        r#"{"model":"nomic-embed-text","input":["a","b"]}"#,
    ),
    (
        "/api/embeddings",
        r#"{"model":"nomic-embed-text","prompt":"a"}"#,
    ),
    (
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}],"temperature":0}"#,
    ),
    (
        "/v1/chat/completions",
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}],"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#,
    ),
    (
        "/v1/completions",
        r#"{"model":"llama3.2","prompt":"once upon a time","temperature":0}"#,
    ),
    (
        "/v1/completions",
        r#"{"model":"llama3.2","prompt":"once upon a time","temperature":0,"stream":true}"#,
    ),
    (
        "/v1/embeddings",
        r#"{"model":"nomic-embed-text","input":"hello"}"#,
    ),
];

#[tokio::test]
async fn generations_and_embeddings_match_direct_answers() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let client = client();
    for (path, body) in GENERATION_CASES {
        let direct = exchange(&client, "POST", &format!("{}{path}", sim.url()), Some(body)).await;
        let through = exchange(&client, "POST", &format!("{}{path}", gw.url()), Some(body)).await;
        assert_eq!(direct.status, through.status, "{path} {body}");
        assert_eq!(direct.content_type, through.content_type, "{path} {body}");
        let (d, t) = (documents(&direct.body), documents(&through.body));
        assert!(!d.is_empty(), "{path} {body}: empty answer");
        assert_eq!(d, t, "{path} {body}");
    }
}

/// Mutating routes change the simulator's state, so each side gets its own
/// simulator, started identically.
#[tokio::test]
async fn model_management_routes_match_direct_answers() {
    let (direct_sim, gw_sim) = (simulator().await, simulator().await);
    let gw = gateway(&[gw_sim.url()], |_| {}).await;
    let client = client();
    let blob = "/api/blobs/sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    let steps: &[(&str, &str, Option<&str>)] = &[
        ("POST", "/api/pull", Some(r#"{"model":"tinyllama"}"#)),
        (
            "POST",
            "/api/pull",
            Some(r#"{"model":"all-minilm","stream":false}"#),
        ),
        (
            "POST",
            "/api/pull",
            Some(r#"{"model":"no-such-model-anywhere"}"#),
        ),
        ("GET", "/api/tags", None),
        (
            "POST",
            "/api/copy",
            Some(r#"{"source":"llama3.2","destination":"my-llama"}"#),
        ),
        (
            "POST",
            "/api/copy",
            Some(r#"{"source":"no-such-model","destination":"x"}"#),
        ),
        ("DELETE", "/api/delete", Some(r#"{"model":"my-llama"}"#)),
        ("DELETE", "/api/delete", Some(r#"{"model":"my-llama"}"#)),
        ("POST", blob, Some("hello")),
        ("HEAD", blob, None),
        ("GET", "/api/tags", None),
        ("GET", "/api/ps", None),
    ];
    for (method, path, body) in steps {
        let direct = exchange(
            &client,
            method,
            &format!("{}{path}", direct_sim.url()),
            *body,
        )
        .await;
        let through = exchange(&client, method, &format!("{}{path}", gw.url()), *body).await;
        assert_eq!(direct.status, through.status, "{method} {path}");
        assert_eq!(direct.content_type, through.content_type, "{method} {path}");
        assert_eq!(
            documents(&direct.body),
            documents(&through.body),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn simulator_tokens_arrive_as_they_are_generated() {
    let mut config = ollama_sim::SimConfig::default();
    config.knobs.token_delay = Duration::from_millis(40);
    config.knobs.tokens_per_reply = 10;
    let sim = simulator_with(config).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let started = Instant::now();
    let mut response = client()
        .post(format!("{}/api/generate", gw.url()))
        .body(r#"{"model":"llama3.2","prompt":"count","options":{"temperature":0}}"#)
        .send()
        .await
        .expect("response");
    let mut arrivals = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        arrivals.push((started.elapsed(), chunk));
    }
    assert!(
        arrivals.len() >= 10,
        "one chunk per token, got {}",
        arrivals.len()
    );
    let first = arrivals[0].0;
    let last = arrivals[arrivals.len() - 1].0;
    // Ten tokens 40 ms apart: the first must not wait for the last.
    assert!(
        last - first >= Duration::from_millis(250),
        "first {first:?} last {last:?}"
    );
}
