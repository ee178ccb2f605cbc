use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::answer::Translating;
use super::*;

fn send(native: Native, body: Value) -> (&'static str, Value, Shape) {
    match request(native, body.to_string().as_bytes(), "engine-id").expect("translated") {
        Translated::Send { path, body, shape } => {
            (path, serde_json::from_slice(&body).expect("json"), shape)
        }
        Translated::LoadOnly(_) => panic!("load only"),
    }
}

#[test]
fn a_native_chat_keeps_its_messages_and_sampling() {
    let (path, body, shape) = send(
        Native::Chat,
        json!({
            "model": "tiny", "stream": false, "keep_alive": "5m",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "images": null}],
            "options": {"temperature": 0, "seed": 4, "num_predict": 12, "stop": ["\n"], "top_k": 3},
        }),
    );
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(
        body,
        json!({
            "model": "engine-id",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "temperature": 0, "seed": 4, "max_tokens": 12, "stop": ["\n"], "top_k": 3,
        })
    );
    assert!(!shape.stream);
    assert_eq!(shape.model, "tiny");
}

#[test]
fn a_stream_asks_for_usage_and_generate_maps_to_chat_unless_raw() {
    let (path, body, shape) = send(
        Native::Generate,
        json!({"model": "m", "prompt": "hello", "system": "s", "format": "json"}),
    );
    assert_eq!(path, "/v1/chat/completions");
    assert!(shape.stream, "native generate streams by default");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "s"}, {"role": "user", "content": "hello"}])
    );
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["response_format"], json!({"type": "json_object"}));

    let (path, body, _) = send(
        Native::Generate,
        json!({"model": "m", "prompt": "def f(", "suffix": "return x", "raw": true, "stream": false}),
    );
    assert_eq!(path, "/v1/completions");
    assert_eq!(
        body,
        json!({"model": "engine-id", "prompt": "def f(", "suffix": "return x"})
    );
}

#[test]
fn what_cannot_be_mapped_is_refused_by_name() {
    for (native, body, field) in [
        (
            Native::Chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}),
            "messages[0].images",
        ),
        (
            Native::Chat,
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            Native::Chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}),
            "tools",
        ),
        (
            Native::Chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "think": true}),
            "think",
        ),
        (
            Native::Chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "options": {"num_ctx": 8192}}),
            "options.num_ctx",
        ),
        (
            Native::Chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "format": {"type": "object"}}),
            "format",
        ),
        (
            Native::Generate,
            json!({"model": "m", "prompt": "x", "context": [1, 2]}),
            "context",
        ),
        (
            Native::Generate,
            json!({"model": "m", "prompt": "x", "suffix": "y"}),
            "suffix",
        ),
    ] {
        let err = request(native, body.to_string().as_bytes(), "e").expect_err("refused");
        assert!(err.starts_with(field), "{err} should name {field}");
    }
    // Zero values say nothing: clients send some of them always.
    let (_, _, _) = send(
        Native::Chat,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "think": false, "tools": [], "format": ""}),
    );
}

#[test]
fn requests_without_a_prompt_only_load() {
    for (native, body) in [
        (Native::Chat, json!({"model": "m"})),
        (Native::Chat, json!({"model": "m", "messages": []})),
        (Native::Generate, json!({"model": "m", "prompt": ""})),
        (Native::Embed, json!({"model": "m", "input": []})),
    ] {
        let translated = request(native, body.to_string().as_bytes(), "e").expect("translated");
        assert!(matches!(translated, Translated::LoadOnly(_)), "{body}");
    }
    let shape = Shape {
        native: Native::Chat,
        stream: true,
        model: "m".into(),
        started: Instant::now(),
    };
    let line: Value = serde_json::from_slice(&answer::load_only(&shape)).expect("json");
    assert_eq!(line["done_reason"], "load");
    assert_eq!(line["done"], true);
}

/// A frame as a pooled body yields it.
type Frame = Result<http_body::Frame<Bytes>, std::io::Error>;

/// The engine's body, in the chunks given (as a pooled body would deliver them).
fn engine_body(
    chunks: &[&str],
) -> http_body_util::StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Frame>>> {
    let frames: Vec<Frame> = chunks
        .iter()
        .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c.as_bytes()))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
}

async fn translate(native: Native, stream: bool, chunks: &[&str]) -> Vec<Value> {
    let shape = Shape {
        native,
        stream,
        model: "tiny".into(),
        started: Instant::now(),
    };
    let body = Translating::new(engine_body(chunks), shape);
    let bytes = body.collect().await.expect("body").to_bytes();
    let text = std::str::from_utf8(&bytes).expect("utf-8");
    if !stream {
        return vec![serde_json::from_str(text).expect("json")];
    }
    assert!(text.ends_with('\n'), "NDJSON: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[tokio::test]
async fn an_sse_stream_becomes_ndjson_lines_with_a_final_chunk() {
    // CRLF events split across chunks anywhere, as llama-cpp-python sends them.
    let sse = concat!(
        "data: {\"choices\": [{\"delta\": {\"role\": \"assistant\"}, \"finish_reason\": null}]}\r\n\r\n",
        "data: {\"choices\": [{\"delta\": {\"content\": \" many\"}, \"finish_reason\": null}]}\r\n\r\n",
        "data: {\"choices\": [{\"delta\": {\"content\": \" world\"}, \"finish_reason\": null}]}\r\n\r\n",
        "data: {\"choices\": [{\"delta\": {}, \"finish_reason\": \"length\"}]}\r\n\r\n",
        "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 9, \"completion_tokens\": 2}}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    );
    let (a, b) = sse.split_at(101);
    let lines = translate(Native::Chat, true, &[a, b]).await;
    let texts: Vec<&str> = lines[..2]
        .iter()
        .map(|l| l["message"]["content"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, [" many", " world"]);
    let last = &lines[2];
    assert_eq!(
        (last["done"].clone(), last["done_reason"].clone()),
        (json!(true), json!("length"))
    );
    assert_eq!(
        (
            last["prompt_eval_count"].clone(),
            last["eval_count"].clone()
        ),
        (json!(9), json!(2))
    );
    assert!(last.get("load_duration").is_none());
    let keys: Vec<&String> = last.as_object().expect("object").keys().collect();
    assert_eq!(
        keys[..5],
        ["model", "created_at", "message", "done_reason", "done"]
    );
}

#[tokio::test]
async fn a_stream_cut_short_or_broken_off_ends_with_an_error_line() {
    let early = translate(
        Native::Generate,
        true,
        &["data: {\"choices\": [{\"text\": \"a\", \"finish_reason\": null}]}\n\ndata: [DONE]\n\n"],
    )
    .await;
    assert_eq!(early[0]["response"], "a");
    assert!(
        early[1]["error"]
            .as_str()
            .expect("error")
            .contains("before it finished")
    );
    let cut = translate(
        Native::Chat,
        true,
        &["data: {\"choices\": [{\"delta\": {\"content\": \"a\"}}]}\n\n"],
    )
    .await;
    assert!(
        cut[1]["error"]
            .as_str()
            .expect("error")
            .contains("without [DONE]")
    );
}

#[tokio::test]
async fn whole_answers_take_ollamas_shape() {
    let chat = translate(
        Native::Generate,
        false,
        &[r#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#],
    )
    .await;
    let keys: Vec<&String> = chat[0].as_object().expect("object").keys().collect();
    assert_eq!(
        keys[..5],
        ["model", "created_at", "response", "done", "done_reason"]
    );
    assert_eq!(chat[0]["response"], "hi");
    assert_eq!(chat[0]["eval_count"], 1);

    let embed = translate(
        Native::Embed,
        false,
        &[r#"{"data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}],"usage":{"prompt_tokens":4}}"#],
    )
    .await;
    assert_eq!(embed[0]["embeddings"], json!([[0.6, 0.8], [0.0, 1.0]]));
    assert_eq!(embed[0]["prompt_eval_count"], 4);
    let legacy = translate(
        Native::Embeddings,
        false,
        &[r#"{"data":[{"embedding":[3,4]}]}"#],
    )
    .await;
    assert_eq!(legacy[0], json!({"embedding": [3.0, 4.0]}));
}

#[test]
fn engine_errors_become_ollamas() {
    let openai = answer::error(
        http::StatusCode::BAD_REQUEST,
        br#"{"error":{"message":"too long","type":"x"}}"#,
    );
    assert_eq!(&openai[..], br#"{"error":"too long"}"#);
    let fastapi = answer::error(
        http::StatusCode::UNPROCESSABLE_ENTITY,
        br#"{"detail":"bad"}"#,
    );
    assert_eq!(&fastapi[..], br#"{"error":"bad"}"#);
    let empty = answer::error(http::StatusCode::BAD_GATEWAY, b"");
    assert_eq!(&empty[..], br#"{"error":"bad gateway"}"#);
}
