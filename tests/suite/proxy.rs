//! Proxy behaviour against in-process mock upstreams that count their hits:
//! streaming, cancellation, headers, bodies and every gateway-made error.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{any, post};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};
use warmline_tests::{AsAdmin as _, Mock, dead_url, gateway, ndjson};

/// Sets a flag when dropped: tells a test that the mock's work was abandoned.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn first_chunk_reaches_the_client_before_the_upstream_finishes() {
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let mock = Mock::serve(Router::new().route(
        "/api/chat",
        post(move || {
            let gate = Arc::clone(&gate);
            async move {
                let stream = futures_util::stream::unfold(0, move |step| {
                    let gate = Arc::clone(&gate);
                    async move {
                        match step {
                            0 => Some((Ok::<_, Infallible>(Bytes::from_static(b"{\"n\":1}\n")), 1)),
                            1 => {
                                gate.notified().await;
                                Some((Ok(Bytes::from_static(b"{\"n\":2,\"done\":true}\n")), 2))
                            }
                            _ => None,
                        }
                    }
                });
                ndjson(stream)
            }
        }),
    ))
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;

    let mut response = client()
        .post(format!("{}/api/chat", gw.url()))
        .body("{}")
        .send()
        .await
        .expect("response headers");
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("first chunk arrives while the upstream is still generating")
        .expect("chunk")
        .expect("some bytes");
    assert_eq!(&first[..], b"{\"n\":1}\n");
    release.notify_one();
    let rest = response.chunk().await.expect("chunk").expect("bytes");
    assert_eq!(&rest[..], b"{\"n\":2,\"done\":true}\n");
    assert!(response.chunk().await.expect("end").is_none());
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_the_upstream_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let mock = Mock::serve(Router::new().route(
        "/api/generate",
        post(move || {
            let guard = DropFlag(Arc::clone(&flag));
            async move {
                let ticks = tokio_stream_ticks(guard);
                ndjson(ticks)
            }
        }),
    ))
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;

    let mut response = client()
        .post(format!("{}/api/generate", gw.url()))
        .body("{}")
        .send()
        .await
        .expect("headers");
    response.chunk().await.expect("chunk").expect("bytes");
    drop(response);
    wait_until("the upstream's stream is dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
}

/// An endless NDJSON stream, one line per 20 ms, holding `guard` while alive.
fn tokio_stream_ticks(
    guard: DropFlag,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures_util::stream::unfold(guard, |guard| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((
            Ok(Bytes::from_static(b"{\"response\":\"x\",\"done\":false}\n")),
            guard,
        ))
    })
}

#[tokio::test]
async fn client_disconnect_before_headers_cancels_the_upstream_request() {
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Notify::new());
    let (flag, signal) = (Arc::clone(&dropped), Arc::clone(&started));
    let mock = Mock::serve(Router::new().route(
        "/api/chat",
        post(move || {
            let guard = DropFlag(Arc::clone(&flag));
            let signal = Arc::clone(&signal);
            async move {
                signal.notify_one();
                // A model "loading" for a long time; the guard drops if we're cancelled.
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(guard);
                "late"
            }
        }),
    ))
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;

    let url = format!("{}/api/chat", gw.url());
    let request = tokio::spawn(async move { client().post(url).body("{}").send().await });
    started.notified().await;
    request.abort();
    wait_until("the upstream handler is cancelled", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
}

#[tokio::test]
async fn request_bodies_stream_upstream_without_being_buffered() {
    let received = Arc::new(AtomicU64::new(0));
    let total = Arc::clone(&received);
    let mock = Mock::serve(Router::new().route(
        "/api/blobs/{digest}",
        post(move |request: Request| {
            let total = Arc::clone(&total);
            async move {
                let mut body = request.into_body().into_data_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.expect("chunk");
                    total.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                }
                (axum::http::StatusCode::CREATED, "")
            }
        }),
    ))
    .await;
    // A limit far below the upload: blob uploads are exempt from max_body.
    let gw = gateway(std::slice::from_ref(&mock.url), |c| {
        c.limits.max_body = 1024
    })
    .await;

    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let url = format!("{}/api/blobs/sha256:{}", gw.url(), "0".repeat(64));
    let upload = tokio::spawn(async move { client().post(url).body(body).send().await });

    let piece = Bytes::from(vec![7u8; 256 * 1024]);
    tx.send(Ok(piece.clone())).await.expect("send");
    // The first piece must reach the upstream while the client is still uploading.
    wait_until("the first piece reaches the upstream", || {
        received.load(Ordering::SeqCst) >= piece.len() as u64
    })
    .await;
    for _ in 0..15 {
        tx.send(Ok(piece.clone())).await.expect("send");
    }
    drop(tx);
    let response = upload.await.expect("join").expect("response");
    assert_eq!(response.status(), 201);
    assert_eq!(received.load(Ordering::SeqCst), 16 * piece.len() as u64);
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A mock that answers every request with what it received, as JSON.
async fn echo() -> Mock {
    Mock::serve(
        Router::new().fallback(any(|headers: HeaderMap, request: Request| async move {
            let uri = request.uri().to_string();
            let method = request.method().to_string();
            let body = axum::body::to_bytes(request.into_body(), usize::MAX)
                .await
                .expect("body");
            let headers: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            axum::Json(serde_json::json!({
                "method": method,
                "uri": uri,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            }))
        })),
    )
    .await
}

#[tokio::test]
async fn host_is_rewritten_and_origin_is_not_forwarded() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    let response = client()
        .post(format!("{}/api/show?verbose=1", gw.url()))
        .header("origin", "http://localhost:3000")
        .header("x-custom", "kept")
        .body(r#"{"model":"m"}"#)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(
        response
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );
    let seen: serde_json::Value = response.json().await.expect("json");
    let upstream_authority = mock.url.trim_start_matches("http://");
    assert_eq!(seen["headers"]["host"], upstream_authority);
    assert!(seen["headers"].get("origin").is_none(), "{seen}");
    assert_eq!(seen["headers"]["x-custom"], "kept");
    assert_eq!(seen["uri"], "/api/show?verbose=1");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], r#"{"model":"m"}"#);
}

#[tokio::test]
async fn requests_without_content_type_are_forwarded() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    let response = client()
        .post(format!("{}/api/generate", gw.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"model":"m","prompt":"hi"}"#)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let seen: serde_json::Value = response.json().await.expect("json");
    assert_eq!(seen["body"], r#"{"model":"m","prompt":"hi"}"#);
}

#[tokio::test]
async fn disallowed_origin_gets_403_and_never_reaches_the_upstream() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    for path in ["/api/tags", "/v1/models"] {
        let response = client()
            .get(format!("{}{path}", gw.url()))
            .header("origin", "https://evil.example")
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.expect("json");
        let message = if path.starts_with("/v1") {
            body["error"]["message"].as_str()
        } else {
            body["error"].as_str()
        };
        assert!(
            message.expect("message").contains("https://evil.example"),
            "{body}"
        );
    }
    assert_eq!(mock.hits(), 0);

    // An allowed preflight is answered by Warmline alone.
    let response = client()
        .request(reqwest::Method::OPTIONS, format!("{}/api/chat", gw.url()))
        .header("origin", "tauri://localhost")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 204);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "tauri://localhost"
    );
    assert_eq!(mock.hits(), 0);
}

/// `origins` adds to Ollama's built-in list, as `OLLAMA_ORIGINS` does: a listed
/// page gets CORS headers (and may read Warmline's own headers), others a 403.
#[tokio::test]
async fn configured_origins_get_cors_answers_and_others_are_refused() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |c| {
        c.origins = vec!["https://*.app.example".to_owned()];
    })
    .await;
    let response = client()
        .get(format!("{}/api/version", gw.url()))
        .header("origin", "https://chat.app.example")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://chat.app.example"
    );
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .expect("ascii");
    assert!(exposed.contains("x-warmline-cache"), "{exposed}");
    assert!(exposed.contains("cache-status"), "{exposed}");
    assert!(exposed.contains("server-timing"), "{exposed}");
    assert_eq!(mock.hits(), 1);

    let preflight = client()
        .request(reqwest::Method::OPTIONS, format!("{}/api/chat", gw.url()))
        .header("origin", "https://chat.app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("response");
    assert_eq!(preflight.status(), 204);
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("Content-Type")
    );

    for refused in ["https://app.example.evil", "https://app.example"] {
        let response = client()
            .get(format!("{}/api/version", gw.url()))
            .header("origin", refused)
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 403, "{refused}");
    }
    assert_eq!(mock.hits(), 1, "refused origins never reach the upstream");
}

#[tokio::test]
async fn compressed_upstream_bodies_pass_through_untouched() {
    // Not valid gzip on purpose: the gateway must not even try to decode it.
    let payload: &'static [u8] = b"\x1f\x8b\x08\x00opaque-bytes";
    let mock = Mock::serve(Router::new().route(
        "/api/tags",
        any(move || async move {
            Response::builder()
                .header("content-encoding", "gzip")
                .header("content-type", "application/json; charset=utf-8")
                .body(Body::from(payload))
                .expect("response")
        }),
    ))
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    let response = client()
        .get(format!("{}/api/tags", gw.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("response");
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(
        response.headers()["content-length"],
        payload.len().to_string()
    );
    assert_eq!(&response.bytes().await.expect("body")[..], payload);
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_naming_it_even_when_known_down() {
    let dead = dead_url().await;
    let gw = gateway(std::slice::from_ref(&dead), |c| {
        c.timeouts.health_interval = Duration::from_millis(50);
    })
    .await;
    // Let the health checker mark it down first: the client still learns the cause.
    wait_until("the health check marks the host down", || {
        !gw.health().upstreams[0].reachable
    })
    .await;
    let response = client()
        .post(format!("{}/api/chat", gw.url()))
        .body("{}")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["error"],
        format!("upstream {dead} is unreachable: connection refused")
    );

    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .body("{}")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["type"], "api_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains(&dead)
    );
    assert_eq!(gw.health().status, warmline::HealthStatus::Down);
}

#[tokio::test]
async fn silent_upstream_is_a_504_naming_the_timeout() {
    let mock = Mock::serve(Router::new().route(
        "/api/generate",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    ))
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |c| {
        c.timeouts.first_byte = Duration::from_millis(200);
    })
    .await;
    let response = client()
        .post(format!("{}/api/generate", gw.url()))
        .body("{}")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["error"],
        format!(
            "upstream {} sent no response within 200ms (timeouts.first_byte)",
            mock.url
        )
    );
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_an_ollama_error_line() {
    let mock = Mock::serve(Router::new().route(
        "/api/chat",
        post(|| async {
            let stream = futures_util::stream::once(async {
                Ok::<_, Infallible>(Bytes::from_static(
                    b"{\"message\":{\"content\":\"a\"},\"done\":false}\n",
                ))
            })
            .chain(futures_util::stream::pending());
            ndjson(stream)
        }),
    ))
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |c| {
        c.timeouts.idle = Duration::from_millis(200);
    })
    .await;
    let response = client()
        .post(format!("{}/api/chat", gw.url()))
        .body("{}")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream ends cleanly");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let last: serde_json::Value = serde_json::from_str(lines[1]).expect("json line");
    assert_eq!(
        last["error"],
        "upstream sent nothing for 200ms mid-response (timeouts.idle)"
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_declared_or_streamed() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |c| {
        c.limits.max_body = 1000
    })
    .await;

    let response = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .expect("msg")
            .contains("limits.max_body")
    );
    assert_eq!(
        mock.hits(),
        0,
        "a declared oversize body never goes upstream"
    );

    // Chunked, no Content-Length: cut off once the count passes the limit.
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'y'; 400]))),
    );
    let response = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"error":"request body is larger than the configured limit of 1000 bytes (limits.max_body)"}"#
    );
    // On /v1 the same refusal comes in OpenAI's error shape.
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        body["error"]["message"],
        "request body is larger than the configured limit of 1000 bytes (limits.max_body)"
    );
}

#[tokio::test]
async fn unknown_warmline_paths_are_not_forwarded() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    let response = client()
        .get(format!("{}/warmline/nope", gw.url()))
        .admin()
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 404);
    assert_eq!(mock.hits(), 0);
    // ...while unknown Ollama paths are.
    let response = client()
        .get(format!("{}/api/experimental/whatever", gw.url()))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn connections_to_the_upstream_are_pooled() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    let client = client();
    for _ in 0..50 {
        let response = client
            .get(format!("{}/api/tags", gw.url()))
            .send()
            .await
            .expect("response");
        response.bytes().await.expect("body");
    }
    let stats = gw.stats();
    assert_eq!(stats.upstream.requests, 50);
    // A few connections: the requests' own, plus the health checker's and the
    // model lister's, which share the pool.
    assert!(
        stats.upstream.connections_opened <= 4,
        "{:?}",
        stats.upstream
    );
    assert_eq!(stats.routes["tags"].count, 50);
    assert!(
        gw.prometheus()
            .contains("warmline_requests_total{route=\"tags\"} 50")
    );
}

#[tokio::test]
async fn foreign_host_names_are_refused_on_loopback() {
    let mock = echo().await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;
    let url = format!("{}/api/tags", gw.url());
    let response = client()
        .get(&url)
        .header("host", "evil.example")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("evil.example"),
        "{body}"
    );
    assert_eq!(mock.hits(), 0);
    for host in ["localhost:11435", "my-box.local", "127.0.0.1"] {
        let response = client()
            .get(&url)
            .header("host", host)
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn whole_answers_are_compressed_on_request_and_streams_never_are() {
    let big = serde_json::json!({ "models": vec!["x".repeat(64); 100] }).to_string();
    let whole = big.clone();
    let mock = Mock::serve(
        Router::new()
            .route(
                "/api/tags",
                any(move || {
                    let whole = whole.clone();
                    async move {
                        Response::builder()
                            .header("content-type", "application/json; charset=utf-8")
                            .body(Body::from(whole))
                            .expect("response")
                    }
                }),
            )
            .route(
                "/api/chat",
                post(move || async move {
                    let lines = (0..50).map(|i| {
                        Ok::<_, Infallible>(Bytes::from(format!(
                            "{{\"n\":{i},\"pad\":\"{}\"}}\n",
                            "y".repeat(64)
                        )))
                    });
                    ndjson(futures_util::stream::iter(lines))
                }),
            ),
    )
    .await;
    let gw = gateway(std::slice::from_ref(&mock.url), |_| {}).await;

    let raw = client()
        .get(format!("{}/api/tags", gw.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("response");
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    let compressed = raw.bytes().await.expect("body");
    assert!(
        compressed.len() < big.len() / 4,
        "{} vs {}",
        compressed.len(),
        big.len()
    );

    let raw = client()
        .get(format!("{}/api/tags", gw.url()))
        .header("accept-encoding", "br")
        .send()
        .await
        .expect("response");
    assert_eq!(raw.headers()["content-encoding"], "br");
    let compressed = raw.bytes().await.expect("body");
    assert!(compressed.len() < big.len() / 4);
    let mut decoded = String::new();
    std::io::Read::read_to_string(
        &mut brotli_decompressor::Decompressor::new(&compressed[..], 4096),
        &mut decoded,
    )
    .expect("valid brotli");
    assert_eq!(decoded, big, "brotli round-trips to the upstream's bytes");

    let plain = client()
        .get(format!("{}/api/tags", gw.url()))
        .send()
        .await
        .expect("response");
    assert!(
        plain.headers().get("content-encoding").is_none(),
        "only when asked"
    );
    assert_eq!(plain.text().await.expect("body"), big);

    let stream = client()
        .post(format!("{}/api/chat", gw.url()))
        .header("accept-encoding", "gzip, br")
        .body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"options":{"temperature":0.8}}"#)
        .send()
        .await
        .expect("response");
    assert!(
        stream.headers().get("content-encoding").is_none(),
        "streams are never compressed"
    );
    assert_eq!(stream.text().await.expect("body").lines().count(), 50);
}
