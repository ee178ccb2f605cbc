//! Failover across several upstreams: what is retried on another host, what never
//! is, and that a single host's answer passes through unchanged.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use warmline_tests::{Mock, dead_url, gateway, ndjson, simulator};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

const CHAT: &str =
    r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}"#;

async fn status_of(url: &str, path: &str, body: &str) -> (u16, String) {
    let response = client()
        .post(format!("{url}{path}"))
        .body(body.to_owned())
        .send()
        .await
        .expect("response");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// A mock answering every POST /api/chat with `status` and a JSON error, while
/// listing `llama3.2` as installed and loaded, so model-aware routing ranks it
/// with the simulator whatever the timing of the model refresh (ties go to the
/// first listed host: the mock).
async fn failing(status: StatusCode) -> Mock {
    Mock::serve(
        Router::new()
            .route(
                "/api/chat",
                post(move || async move { (status, r#"{"error":"mock failure"}"#) }),
            )
            .route(
                "/api/tags",
                axum::routing::get(|| async {
                    r#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","digest":"0"}]}"#
                }),
            )
            .route(
                "/api/ps",
                axum::routing::get(|| async {
                    r#"{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest"}]}"#
                }),
            ),
    )
    .await
}

#[tokio::test]
async fn a_refusing_host_costs_no_client_an_error() {
    let dead = dead_url().await;
    let sim = simulator().await;
    // A long health interval: the passive path alone must keep clients whole.
    let gw = gateway(&[dead.clone(), sim.url()], |c| {
        c.timeouts.health_interval = Duration::from_secs(3600);
    })
    .await;
    for _ in 0..50 {
        let (status, body) = status_of(&gw.url(), "/api/chat", CHAT).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        !gw.health().upstreams[0].reachable,
        "the refusing host left the rotation"
    );
}

#[tokio::test]
async fn a_5xx_is_retried_once_on_the_other_host() {
    let bad = failing(StatusCode::INTERNAL_SERVER_ERROR).await;
    let sim = simulator().await;
    let gw = gateway(&[bad.url.clone(), sim.url()], |_| {}).await;
    for _ in 0..10 {
        let (status, body) = status_of(&gw.url(), "/api/chat", CHAT).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(gw.stats().upstream.retries >= 1);
    assert!(gw.prometheus().contains("warmline_upstream_retries_total"));
}

#[tokio::test]
async fn a_4xx_is_never_retried() {
    let picky = failing(StatusCode::BAD_REQUEST).await;
    let other = failing(StatusCode::BAD_REQUEST).await;
    let gw = gateway(&[picky.url.clone(), other.url.clone()], |_| {}).await;
    let (status, body) = status_of(&gw.url(), "/api/chat", CHAT).await;
    assert_eq!(
        (status, body.as_str()),
        (400, r#"{"error":"mock failure"}"#)
    );
    assert_eq!(picky.hits() + other.hits(), 1, "one attempt only");
}

#[tokio::test]
async fn a_single_hosts_5xx_passes_through_unchanged() {
    let bad = failing(StatusCode::SERVICE_UNAVAILABLE).await;
    let gw = gateway(std::slice::from_ref(&bad.url), |_| {}).await;
    let (status, body) = status_of(&gw.url(), "/api/chat", CHAT).await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"mock failure"}"#)
    );
    assert_eq!(bad.hits(), 1);
}

#[tokio::test]
async fn both_hosts_failing_gives_the_second_answer() {
    let a = failing(StatusCode::INTERNAL_SERVER_ERROR).await;
    let b = failing(StatusCode::BAD_GATEWAY).await;
    let gw = gateway(&[a.url.clone(), b.url.clone()], |_| {}).await;
    let (status, _) = status_of(&gw.url(), "/api/chat", CHAT).await;
    assert!(status == 500 || status == 502, "{status}");
    assert_eq!(a.hits() + b.hits(), 2, "exactly one retry");
}

#[tokio::test]
async fn a_stream_that_already_started_is_never_retried() {
    let breaking = Mock::serve(Router::new().route(
        "/api/generate",
        post(|| async {
            let stream = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(
                    b"{\"response\":\"a\",\"done\":false}\n",
                ))
            })
            .chain(futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("host died"))
            }));
            ndjson(stream)
        }),
    ))
    .await;
    let healthy = Mock::serve(Router::new().route(
        "/api/generate",
        post(|| async { Ok::<_, Infallible>("{}") }),
    ))
    .await;
    // Both idle: ties go to the first listed host, the breaking one.
    let gw = gateway(&[breaking.url.clone(), healthy.url.clone()], |_| {}).await;
    let (status, body) =
        status_of(&gw.url(), "/api/generate", r#"{"model":"m","prompt":"p"}"#).await;
    assert_eq!(status, 200);
    let last = body.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("{\"error\":"),
        "the stream ends with Ollama's error line: {body}"
    );
    assert_eq!(
        healthy.hits(),
        0,
        "no silent retry once bytes reached the client"
    );
}

#[tokio::test]
async fn a_failing_hosts_breaker_opens_and_then_everything_is_a_503_with_retry_after() {
    let bad = failing(StatusCode::INTERNAL_SERVER_ERROR).await;
    let gw = gateway(std::slice::from_ref(&bad.url), |_| {}).await;
    for _ in 0..5 {
        assert_eq!(status_of(&gw.url(), "/api/chat", CHAT).await.0, 500);
    }
    // The breaker's task counts asynchronously: give it a moment to open.
    let mut response = None;
    for _ in 0..100 {
        let r = client()
            .post(format!("{}/api/chat", gw.url()))
            .body(CHAT)
            .send()
            .await
            .expect("response");
        if r.status() == 503 {
            response = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let response = response.expect("the breaker opened");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((55..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("json");
    let message = body["error"].as_str().expect("message");
    assert!(
        message.contains(&bad.url) && message.contains("circuit breaker"),
        "{message}"
    );
    let hits = bad.hits();
    assert_eq!(status_of(&gw.url(), "/api/chat", CHAT).await.0, 503);
    assert_eq!(bad.hits(), hits, "an open breaker sends nothing upstream");
    let health = gw.health();
    assert_eq!(
        health.upstreams[0].breaker.state,
        warmline::breaker::State::Open
    );
    assert_eq!(health.status, warmline::HealthStatus::Down);
    let metrics = gw.prometheus();
    assert!(
        metrics.contains(&format!(
            "warmline_upstream_breaker_open{{upstream=\"{}\"}} 1",
            bad.url
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn traffic_leaves_a_host_whose_breaker_opened() {
    let bad = failing(StatusCode::INTERNAL_SERVER_ERROR).await;
    let sim = simulator().await;
    let gw = gateway(&[bad.url.clone(), sim.url()], |_| {}).await;
    for _ in 0..40 {
        let (status, body) = status_of(&gw.url(), "/api/chat", CHAT).await;
        assert_eq!(status, 200, "{body}");
    }
    let hits = bad.hits();
    assert!(
        hits >= 5,
        "the failing host was tried until its breaker opened: {hits}"
    );
    for _ in 0..20 {
        assert_eq!(status_of(&gw.url(), "/api/chat", CHAT).await.0, 200);
    }
    assert_eq!(
        bad.hits(),
        hits,
        "no more traffic to the host with the open breaker"
    );
}

/// The issue's fault run, with real simulator daemons: one host answers 10 % of
/// generations with a 500; over 5,000 non-streaming requests the client sees at
/// most 0.1 % errors.
#[tokio::test]
async fn a_flaky_host_costs_clients_almost_nothing() {
    let flaky = warmline_tests::sim_daemon(&[("SIM_ERROR_RATE", "0.1")]);
    let steady = warmline_tests::sim_daemon(&[]);
    let gw = gateway(&[flaky.url.clone(), steady.url.clone()], |c| {
        c.cache.enabled = false
    })
    .await;
    let url = gw.url();
    let client = client();
    let mut errors = 0usize;
    for batch in 0..250 {
        let requests = (0..20).map(|i| {
            let body = format!(
                r#"{{"model":"llama3.2","prompt":"q{}","stream":false}}"#,
                batch * 20 + i
            );
            client.post(format!("{url}/api/generate")).body(body).send()
        });
        for response in futures_util::future::join_all(requests).await {
            let ok = response.is_ok_and(|r| r.status() == 200);
            errors += usize::from(!ok);
        }
    }
    assert!(errors <= 5, "{errors} of 5000 requests failed");
    assert!(
        gw.stats().upstream.retries > 0,
        "the flaky host's 500s were retried"
    );
}

/// A host killed mid-stream: the native stream ends with Ollama's in-stream error
/// line (no hang), and nothing is cached.
#[tokio::test]
async fn a_host_killed_mid_stream_ends_the_stream_with_an_error_line() {
    let mut sim = warmline_tests::sim_daemon(&[("SIM_TOKEN_DELAY_MS", "50"), ("SIM_TOKENS", "40")]);
    let gw = gateway(std::slice::from_ref(&sim.url), |_| {}).await;
    let body = r#"{"model":"llama3.2","prompt":"long","options":{"temperature":0}}"#;
    let mut response = client()
        .post(format!("{}/api/generate", gw.url()))
        .body(body)
        .send()
        .await
        .expect("response");
    let mut text = response
        .chunk()
        .await
        .expect("chunk")
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let _ = sim.child.kill();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.extend_from_slice(&chunk);
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream ended instead of hanging");
    let text = String::from_utf8_lossy(&text);
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("{\"error\":"), "{text}");
    assert_eq!(
        gw.cache_stats().await.stores,
        0,
        "a broken stream is never cached"
    );
}

fn sim_with_models(models: &[&str]) -> ollama_sim::SimConfig {
    ollama_sim::SimConfig {
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        ..ollama_sim::SimConfig::default()
    }
}

/// Model-aware routing: a request goes only to hosts that have its model, and a
/// "model not found" from a host that does not is retried where the model is.
#[tokio::test]
async fn requests_go_to_hosts_that_have_their_model() {
    let only_llama = warmline_tests::simulator_with(sim_with_models(&["llama3.2:latest"])).await;
    let only_qwen = warmline_tests::simulator_with(sim_with_models(&["qwen3:0.6b"])).await;
    let gw = gateway(&[only_llama.url(), only_qwen.url()], |c| {
        c.timeouts.health_interval = Duration::from_millis(50);
    })
    .await;
    let qwen = r#"{"model":"qwen3:0.6b","messages":[{"role":"user","content":"hi"}],"stream":false,"think":false}"#;
    // Let the model lists be read (every 50 ms here) a few times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    only_llama.reset_counters();
    only_qwen.reset_counters();
    for _ in 0..20 {
        let (status, body) = status_of(&gw.url(), "/api/chat", qwen).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = status_of(&gw.url(), "/api/chat", CHAT).await;
        assert_eq!(status, 200, "{body}");
    }
    let chats = |sim: &ollama_sim::SimHandle| {
        sim.counters()
            .requests
            .get("/api/chat")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        chats(&only_qwen),
        20,
        "only qwen requests reached the qwen host"
    );
    assert_eq!(
        chats(&only_llama),
        20,
        "only llama requests reached the llama host"
    );
    assert_eq!(
        gw.stats().upstream.retries,
        0,
        "no request was sent to the wrong host"
    );
    // An unknown model still gets the upstream's own 404.
    let missing =
        r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
    let (status, body) = status_of(&gw.url(), "/api/chat", missing).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no-such-model"), "{body}");
}
