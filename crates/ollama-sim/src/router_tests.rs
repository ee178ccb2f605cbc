//! Router tests: the whole stack through `tower::ServiceExt::oneshot`, no
//! sockets (except the Host-check test, which needs a loopback listener).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Knobs, SimConfig};

fn sim() -> Router {
    crate::router(SimConfig::default())
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, String, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1:11434")
        .body(Body::from(body.to_owned()))
        .unwrap_or_default();
    let resp = app.clone().oneshot(req).await.unwrap_or_default();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, ctype, String::from_utf8_lossy(&bytes).into_owned())
}

async fn post(app: &Router, path: &str, body: Value) -> (StatusCode, String, String) {
    call(app, Method::POST, path, &body.to_string()).await
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

#[tokio::test]
async fn root_version_and_gin_fallbacks() {
    let app = sim();
    let (s, ct, body) = call(&app, Method::GET, "/", "").await;
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "Ollama is running"
        )
    );
    assert_eq!(call(&app, Method::HEAD, "/", "").await.0, StatusCode::OK);
    let (_, ct, body) = call(&app, Method::GET, "/api/version", "").await;
    assert_eq!(
        (ct.as_str(), body.as_str()),
        ("application/json; charset=utf-8", r#"{"version":"0.33.0"}"#)
    );
    let (s, _, body) = call(&app, Method::GET, "/nope", "").await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found")
    );
    let (s, _, body) = call(&app, Method::GET, "/api/chat", "").await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed")
    );
    assert_eq!(
        call(&app, Method::HEAD, "/api/ps", "").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(&app, Method::HEAD, "/api/tags", "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, Method::GET, "/api/tags/", "").await.0,
        StatusCode::MOVED_PERMANENTLY
    );
}

#[tokio::test]
async fn chat_non_stream_has_go_field_order() {
    let app = sim();
    let (s, ct, body) = post(
        &app,
        "/api/chat",
        json!({"model":"llama3.2","stream":false,
        "messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/json; charset=utf-8");
    assert!(
        body.starts_with(r#"{"model":"llama3.2","created_at":""#),
        "{body}"
    );
    assert!(
        body.contains(r#"},"done_reason":"stop","done":true,"total_duration":"#),
        "{body}"
    );
    for field in [
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(body.contains(field), "{field} missing in {body}");
    }
    let v = parse(&body);
    assert_eq!(v["message"]["role"], "assistant");
    assert_eq!(v["eval_count"], 8);
}

#[tokio::test]
async fn generate_stream_is_ndjson_with_a_final_context() {
    let app = sim();
    let (s, ct, body) = post(
        &app,
        "/api/generate",
        json!({"model":"llama3.2","prompt":"hi"}),
    )
    .await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "application/x-ndjson"));
    let lines: Vec<Value> = body.lines().map(parse).collect();
    assert_eq!(lines.len(), 9, "{body}");
    assert!(body.ends_with('\n'));
    assert!(
        lines[..8]
            .iter()
            .all(|l| l["done"] == false && l.get("total_duration").is_none())
    );
    let last = &lines[8];
    assert_eq!(
        (last["done"].clone(), last["done_reason"].clone()),
        (json!(true), json!("stop"))
    );
    assert!(last["context"].as_array().is_some_and(|c| !c.is_empty()));
    let text: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert!(text.ends_with('.'));
}

#[tokio::test]
async fn thinking_model_streams_thinking_first() {
    let app = sim();
    let (_, _, body) = post(
        &app,
        "/api/chat",
        json!({"model":"qwen3:0.6b",
        "messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    let lines: Vec<Value> = body.lines().map(parse).collect();
    assert!(lines[0]["message"]["thinking"].is_string(), "{body}");
    assert_eq!(lines[0]["message"]["content"], "");
    let (s, _, body) = post(
        &app,
        "/api/chat",
        json!({"model":"llama3.2","think":true,
        "messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!(
        (s, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"\"llama3.2\" does not support thinking"}"#
        )
    );
}

#[tokio::test]
async fn error_texts_match_ollama() {
    let app = sim();
    let cases = [
        (
            "/api/generate",
            json!({"model":"nope","prompt":"x"}),
            404,
            "model 'nope' not found",
        ),
        (
            "/api/generate",
            json!({"prompt":"x"}),
            404,
            "model '' not found",
        ),
        (
            "/api/chat",
            json!({"messages":[]}),
            400,
            "model is required",
        ),
        (
            "/api/chat",
            json!({"model":"Nope:1b","messages":[{"role":"user","content":"x"}]}),
            404,
            "model 'Nope:1b' not found",
        ),
        (
            "/api/embed",
            json!({"model":"nope","input":"x"}),
            404,
            "model \"nope\" not found, try pulling it first",
        ),
        (
            "/api/show",
            json!({"model":"nope"}),
            404,
            "model 'nope:latest' not found",
        ),
        (
            "/api/generate",
            json!({"model":"llama3.2","keep_alive":"300"}),
            400,
            "time: missing unit in duration \"300\"",
        ),
        (
            "/api/generate",
            json!({"model":"llama3.2","stream":"yes"}),
            400,
            "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool",
        ),
        (
            "/api/generate",
            json!({"model":"nomic-embed-text","prompt":"x"}),
            400,
            "\"nomic-embed-text\" does not support generate",
        ),
        (
            "/api/chat",
            json!({"model":"tinyllama"}),
            404,
            "model 'tinyllama' not found",
        ),
        (
            "/api/generate",
            json!({"model":"llama3.2","prompt":"x","options":{"temperature":"hot"}}),
            500,
            "option \"temperature\" must be of type float32",
        ),
    ];
    for (path, body, status, msg) in cases {
        let (s, _, got) = post(&app, path, body.clone()).await;
        assert_eq!(s.as_u16(), status, "{path} {body}: {got}");
        assert_eq!(parse(&got)["error"], msg, "{path} {body}");
    }
    let (s, _, got) = call(&app, Method::POST, "/api/chat", "").await;
    assert_eq!(
        (s, got.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"missing request body"}"#
        )
    );
    let (_, _, got) = call(&app, Method::POST, "/api/chat", "{\"model\":").await;
    assert_eq!(got, r#"{"error":"unexpected EOF"}"#);
}

#[tokio::test]
async fn load_and_unload_requests() {
    let app = sim();
    let (_, ct, body) = post(&app, "/api/generate", json!({"model":"llama3.2"})).await;
    assert_eq!(ct, "application/json; charset=utf-8", "never streamed");
    let v = parse(&body);
    assert_eq!(
        (v["done_reason"].clone(), v["response"].clone()),
        (json!("load"), json!(""))
    );
    assert!(v.get("total_duration").is_none());
    let (_, _, ps) = call(&app, Method::GET, "/api/ps", "").await;
    let ps = parse(&ps);
    assert_eq!(ps["models"][0]["name"], "llama3.2:latest");
    assert_eq!(ps["models"][0]["context_length"], 4096);
    let (_, _, body) = post(
        &app,
        "/api/chat",
        json!({"model":"llama3.2","keep_alive":0}),
    )
    .await;
    assert!(
        body.contains(
            r#""message":{"role":"assistant","content":""},"done_reason":"unload","done":true"#
        ),
        "{body}"
    );
    let (_, _, ps) = call(&app, Method::GET, "/api/ps", "").await;
    assert_eq!(ps, r#"{"models":[]}"#);
}

#[tokio::test]
async fn temperature_zero_is_deterministic() {
    let app = sim();
    let req = json!({"model":"llama3.2","stream":false,"options":{"temperature":0},
        "messages":[{"role":"user","content":"same"}]});
    let a = parse(&post(&app, "/api/chat", req.clone()).await.2);
    let b = parse(&post(&app, "/api/chat", req).await.2);
    assert_eq!(a["message"]["content"], b["message"]["content"]);
    let c = parse(
        &post(
            &app,
            "/api/chat",
            json!({"model":"llama3.2","stream":false,"options":{"temperature":0},
        "messages":[{"role":"user","content":"different"}]}),
        )
        .await
        .2,
    );
    assert_ne!(a["message"]["content"], c["message"]["content"]);
}

#[tokio::test]
async fn openai_stream_framing() {
    let app = sim();
    let (s, ct, body) = post(
        &app,
        "/v1/chat/completions",
        json!({"model":"llama3.2","stream":true,
        "stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}),
    )
    .await;
    assert_eq!((s, ct.as_str()), (StatusCode::OK, "text/event-stream"));
    let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.iter().all(|e| e.starts_with("data: ")), "{body}");
    assert_eq!(events.last().copied(), Some("data: [DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| parse(&e[6..]))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[1]["choices"][0]["delta"].get("role").is_none());
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.get("usage").is_none())
    );
    assert!(body.contains(r#""object":"chat.completion.chunk""#));
}

#[tokio::test]
async fn openai_errors_and_defaults() {
    let app = sim();
    let (s, _, body) = post(
        &app,
        "/v1/chat/completions",
        json!({"model":"llama3.2","messages":[]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"error":{"message":"[] is too short - 'messages'","type":"invalid_request_error","param":null,"code":null}}"#
    );
    let (s, _, body) = post(
        &app,
        "/v1/chat/completions",
        json!({"model":"nope","messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(parse(&body)["error"]["type"], "not_found_error");
    let (s, _, body) = post(
        &app,
        "/v1/chat/completions",
        json!({"model":"llama3.2","messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v = parse(&body);
    assert_eq!(
        (v["object"].clone(), v["system_fingerprint"].clone()),
        (json!("chat.completion"), json!("fp_ollama"))
    );
    assert!(
        v["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    let (_, _, body) = call(&app, Method::GET, "/v1/models", "").await;
    assert_eq!(parse(&body)["data"][0]["id"], "llama3.2:latest");
    let (_, _, body) = post(
        &app,
        "/v1/embeddings",
        json!({"model":"nomic-embed-text","input":["a","b"]}),
    )
    .await;
    let v = parse(&body);
    assert_eq!(
        v["data"][1]["embedding"].as_array().map(Vec::len),
        Some(768)
    );
}

#[tokio::test]
async fn tools_yield_a_tool_call_then_text() {
    let app = sim();
    let tools = json!([{"type":"function","function":{"name":"get_weather","parameters":{
        "type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]);
    let (_, _, body) = post(
        &app,
        "/v1/chat/completions",
        json!({"model":"llama3.2","tools":tools,
        "messages":[{"role":"user","content":"weather?"}]}),
    )
    .await;
    let v = parse(&body);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(
        call["function"]["arguments"]
            .as_str()
            .is_some_and(|a| a.contains("city"))
    );
    let (_, _, body) = post(
        &app,
        "/api/chat",
        json!({"model":"llama3.2","tools":tools,"stream":false,
        "messages":[{"role":"user","content":"weather?"},{"role":"tool","content":"sunny"}]}),
    )
    .await;
    let v = parse(&body);
    assert!(
        v["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let (s, _, _) = post(
        &app,
        "/api/chat",
        json!({"model":"nomic-embed-text","tools":tools,
        "messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pull_installs_and_unknown_names_fail() {
    let app = sim();
    let (_, ct, body) = post(&app, "/api/pull", json!({"model":"tinyllama"})).await;
    assert_eq!(ct, "application/x-ndjson");
    let lines: Vec<Value> = body.lines().map(parse).collect();
    assert_eq!(lines[0], json!({"status":"pulling manifest"}));
    assert!(
        lines
            .iter()
            .any(|l| l["completed"].is_u64() && l["total"].is_u64())
    );
    assert_eq!(lines.last(), Some(&json!({"status":"success"})));
    let (_, _, tags) = call(&app, Method::GET, "/api/tags", "").await;
    assert_eq!(parse(&tags)["models"][0]["name"], "tinyllama:latest");
    let (_, _, body) = post(&app, "/api/pull", json!({"model":"no-such"})).await;
    assert_eq!(
        body,
        "{\"status\":\"pulling manifest\"}\n{\"error\":\"pull model manifest: file does not exist\"}\n"
    );
    let (s, _, body) = post(
        &app,
        "/api/pull",
        json!({"model":"all-minilm","stream":false}),
    )
    .await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::OK, r#"{"status":"success"}"#)
    );
    let (s, _, body) = post(&app, "/api/pull", json!({"model":"no-such","stream":false})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
}

#[tokio::test]
async fn knobs_and_counters_routes() {
    let app = sim();
    let (s, _, body) = call(
        &app,
        Method::PUT,
        "/_sim/knobs",
        r#"{"tokens_per_reply":3,"error_rate":1}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(parse(&body)["tokens_per_reply"], 3);
    let (s, _, body) = post(
        &app,
        "/api/chat",
        json!({"model":"llama3.2","messages":[{"role":"user","content":"x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        parse(&body)["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("model runner has unexpectedly stopped"))
    );
    let (_, _, c) = call(&app, Method::GET, "/_sim/counters", "").await;
    let c = parse(&c);
    assert_eq!(c["requests"]["/api/chat"], 1);
    assert_eq!(c["generations"]["failed"], 1);
    assert_eq!(c["loads"], 1);
    let (s, _, _) = call(&app, Method::PUT, "/_sim/knobs", r#"{"bogus":1}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, _, c) = call(&app, Method::POST, "/_sim/reset", "").await;
    assert_eq!(parse(&c)["generations"]["failed"], 0);
}

#[tokio::test]
async fn dropping_a_stream_counts_a_cancellation() {
    let app = sim();
    let (_, _, _) = call(&app, Method::PUT, "/_sim/knobs", r#"{"token_delay_ms":20}"#).await;
    let req = Request::post("/api/chat")
        .body(Body::from(
            json!({"model":"llama3.2","messages":[{"role":"user","content":"x"}]}).to_string(),
        ))
        .unwrap_or_default();
    let resp = app.clone().oneshot(req).await.unwrap_or_default();
    let mut body = resp.into_body();
    let first = body.frame().await;
    assert!(first.is_some_and(|f| f.is_ok()));
    let (_, _, c) = call(&app, Method::GET, "/_sim/counters", "").await;
    assert_eq!(parse(&c)["models"]["llama3.2:latest"]["in_flight"], 1);
    drop(body);
    let (_, _, c) = call(&app, Method::GET, "/_sim/counters", "").await;
    let c = parse(&c);
    assert_eq!(c["generations"]["cancelled"], 1);
    assert_eq!(c["models"]["llama3.2:latest"]["in_flight"], 0);
}

#[tokio::test]
async fn cors_preflight_and_rejection() {
    let app = sim();
    let req = |origin: &str, method: Method| {
        Request::builder()
            .method(method)
            .uri("/api/tags")
            .header(header::HOST, "127.0.0.1:11434")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap_or_default()
    };
    let resp = app
        .clone()
        .oneshot(req("http://localhost:5173", Method::OPTIONS))
        .await
        .unwrap_or_default();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:5173"
    );
    let resp = app
        .clone()
        .oneshot(req("tauri://localhost", Method::GET))
        .await
        .unwrap_or_default();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "tauri://localhost"
    );
    let resp = app
        .clone()
        .oneshot(req("https://evil.example", Method::GET))
        .await
        .unwrap_or_default();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn loopback_listener_rejects_foreign_host_headers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
    let Ok(sim) = crate::Simulator::bind(addr, SimConfig::default()).await else {
        panic!("bind 127.0.0.1:0");
    };
    let local = sim.local_addr();
    let raw = move |host: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(local).await.ok()?;
        let req = format!("GET /api/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    let ok = raw("localhost:11434").await.unwrap_or_default();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let denied = raw("evil.example.com").await.unwrap_or_default();
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(denied.ends_with("\r\n\r\n"), "empty body: {denied}");
    assert_eq!(sim.counters().requests.get("/api/version"), Some(&2));
    sim.set_knobs(Knobs {
        first_byte_stall: Duration::from_millis(1),
        ..sim.knobs()
    });
    assert_eq!(sim.knobs().first_byte_stall, Duration::from_millis(1));
    sim.shutdown().await;
}
