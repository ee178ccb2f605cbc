//! Connection-level faults across two hosts: a host that refuses, one that never
//! accepts (connect timeout), one that resets, one that stops answering, a host
//! killed mid-stream on `/v1`; what each costs a client, and that one request's
//! time budget holds across its two attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use warmline_tests::{Mock, eventually, gateway, sim_daemon, simulator};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

const CHAT: &str =
    r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}"#;

async fn chat(url: &str) -> (u16, String) {
    let response = client()
        .post(format!("{url}/api/chat"))
        .body(CHAT)
        .send()
        .await
        .expect("response");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// `GET /api/version`: a request that names no model, so it may go to a host
/// whose model list is unknown (the fault hosts here have none).
async fn version(url: &str) -> (u16, String) {
    let response = client()
        .get(format!("{url}/api/version"))
        .send()
        .await
        .expect("response");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// A host whose accept queue is full: the kernel drops further SYNs, so a
/// connect hangs until the client's connect timeout, as with a host that
/// vanished from the network. Keep the returned values alive.
async fn black_hole() -> (String, TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr");
    // Backlog 0 queues one connection; a second one makes sure it is full.
    let mut fillers = Vec::new();
    for _ in 0..2 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            fillers.push(stream);
        }
    }
    (format!("http://{addr}"), listener, fillers)
}

/// A host that accepts, reads the request head, then resets the connection
/// (RST, not a clean close): what a crashing daemon's socket does.
async fn resetting() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    url
}

/// A host that accepts and reads but never answers.
async fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

/// Whether the simulator daemon at `url` has started a generation.
async fn has_generated(url: &str) -> bool {
    let counters: serde_json::Value = client()
        .get(format!("{url}/_sim/counters"))
        .send()
        .await
        .expect("counters")
        .json()
        .await
        .expect("JSON");
    counters["generations"]["started"].as_u64().unwrap_or(0) > 0
}

/// The issue's fault run with two real simulator daemons: the host that has
/// been serving (the one routing prefers, its model loaded) is killed, its port
/// now refuses, and 400 concurrent requests still all succeed, the passive path
/// taking the dead host out at its first refusal.
#[tokio::test]
async fn a_killed_daemon_costs_no_client_an_error() {
    let mut a = sim_daemon(&[]);
    let mut b = sim_daemon(&[]);
    let gw = gateway(&[a.url.clone(), b.url.clone()], |c| {
        c.cache.enabled = false;
        // Only the passive path: the probe must not get there first.
        c.timeouts.health_interval = Duration::from_secs(3600);
    })
    .await;
    let (status, body) = chat(&gw.url()).await;
    assert_eq!(status, 200, "{body}");
    let (dead, index) = if has_generated(&a.url).await {
        (&mut a, 0)
    } else {
        (&mut b, 1)
    };
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let url = gw.url();
    let mut errors = Vec::new();
    for _ in 0..20 {
        let batch = (0..20).map(|_| chat(&url));
        for (status, body) in futures_util::future::join_all(batch).await {
            if status != 200 {
                errors.push(format!("{status} {body}"));
            }
        }
    }
    assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
    assert!(
        !gw.health().upstreams[index].reachable,
        "the dead host is out"
    );
    assert!(gw.stats().upstream.retries >= 1, "its refusal was retried");
}

/// A connect timeout is retried on the other host, and the client waits about
/// one connect timeout longer, not a first-byte timeout.
#[tokio::test]
async fn a_connect_timeout_fails_over_to_the_other_host() {
    let (hole, _listener, _fillers) = black_hole().await;
    let sim = simulator().await;
    let gw = gateway(&[hole, sim.url()], |c| {
        c.timeouts.connect = Duration::from_millis(300);
        c.timeouts.health_interval = Duration::from_secs(3600);
    })
    .await;
    let started = Instant::now();
    let (status, body) = version(&gw.url()).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(gw.stats().upstream.retries, 1);
    let health = &gw.health().upstreams[0];
    assert!(!health.reachable, "{health:?}");
    assert!(
        health
            .last_error
            .as_deref()
            // The request's connect or the startup probe, whichever said it last.
            .is_some_and(|e| e.contains("timed out")),
        "{health:?}"
    );
}

/// With a single host, a connect timeout is a 504 in Ollama's shape naming it.
#[tokio::test]
async fn a_connect_timeout_alone_is_a_504_naming_the_timeout() {
    let (hole, _listener, _fillers) = black_hole().await;
    let gw = gateway(std::slice::from_ref(&hole), |c| {
        c.timeouts.connect = Duration::from_millis(300);
    })
    .await;
    let (status, body) = version(&gw.url()).await;
    assert_eq!(status, 504, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    let message = error["error"].as_str().expect("Ollama's error shape");
    assert!(message.contains(&hole), "{message}");
    assert!(message.contains("connect"), "{message}");
}

/// A reset connection (before any byte of an answer) is retried elsewhere.
#[tokio::test]
async fn a_reset_connection_fails_over_to_the_other_host() {
    let reset = resetting().await;
    let sim = simulator().await;
    let gw = gateway(&[reset, sim.url()], |c| {
        c.timeouts.health_interval = Duration::from_secs(3600);
    })
    .await;
    for _ in 0..5 {
        let (status, body) = version(&gw.url()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(gw.stats().upstream.retries >= 1);
}

/// One budget per request: a first attempt that ends in a connect timeout and
/// a second that never answers end together at the first-byte deadline, counted
/// from the request's start (the timeouts do not add up).
#[tokio::test]
async fn both_attempts_share_one_first_byte_budget() {
    let (hole, _listener, _fillers) = black_hole().await;
    let mute = silent().await;
    let gw = gateway(&[hole, mute.clone()], |c| {
        c.timeouts.connect = Duration::from_millis(400);
        c.timeouts.first_byte = Duration::from_millis(1500);
        c.timeouts.health_interval = Duration::from_secs(3600);
    })
    .await;
    let started = Instant::now();
    let (status, body) = version(&gw.url()).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        body.contains(&mute),
        "the answer names the host that timed out: {body}"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(1850),
        "one 1.5 s budget for both attempts, not 0.4 s + 1.5 s: took {took:?}"
    );
}

/// A "model not found" from a host whose list is stale is retried on a host
/// that lists the model.
#[tokio::test]
async fn a_404_for_the_model_is_retried_where_the_model_is() {
    let stale = Mock::serve(
        axum::Router::new()
            .route(
                "/api/chat",
                axum::routing::post(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        r#"{"error":"model 'llama3.2' not found"}"#,
                    )
                }),
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
    .await;
    let sim = simulator().await;
    let gw = gateway(&[stale.url.clone(), sim.url()], |c| {
        c.timeouts.health_interval = Duration::from_millis(50);
    })
    .await;
    // Both hosts list the model once their lists were read.
    eventually(
        "both model lists read",
        Duration::from_secs(5),
        async || {
            gw.models()
                .iter()
                .any(|m| m.name == "llama3.2:latest" && m.hosts.len() == 2)
        },
    )
    .await;
    for _ in 0..5 {
        let (status, body) = chat(&gw.url()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(stale.hits() >= 1, "the stale host was tried");
    assert_eq!(gw.stats().upstream.retries as usize, stale.hits());
}

/// A host that stops answering leaves the rotation within 2 s with the default
/// probe interval, and comes back once it answers again.
#[tokio::test]
async fn a_host_that_stops_answering_leaves_within_two_seconds_and_comes_back() {
    let quiet = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&quiet);
    let host = Mock::serve(axum::Router::new().route(
        "/",
        axum::routing::head(move || {
            let quiet = flag.load(Ordering::SeqCst);
            async move {
                if quiet {
                    // Hung: accepts and reads, never answers.
                    std::future::pending::<()>().await;
                }
            }
        }),
    ))
    .await;
    let sim = simulator().await;
    let gw = gateway(&[host.url.clone(), sim.url()], |_| {}).await;
    eventually("the host is up", Duration::from_secs(5), async || {
        gw.health().upstreams[0].reachable
    })
    .await;

    quiet.store(true, Ordering::SeqCst);
    let went_quiet = Instant::now();
    eventually(
        "the quiet host leaves",
        Duration::from_secs(10),
        async || !gw.health().upstreams[0].reachable,
    )
    .await;
    let left_after = went_quiet.elapsed();
    // 2 s by design; the margin is for a busy test machine.
    assert!(
        left_after < Duration::from_millis(3000),
        "left the rotation after {left_after:?}"
    );

    quiet.store(false, Ordering::SeqCst);
    eventually("the host comes back", Duration::from_secs(5), async || {
        gw.health().upstreams[0].reachable
    })
    .await;
}

/// A `/v1` stream whose host is killed mid-answer is closed (no hang, no
/// `[DONE]`), with two hosts: it is never silently retried on the other one,
/// and nothing is cached.
#[tokio::test]
async fn a_v1_stream_whose_host_dies_is_closed_not_retried() {
    let slow = [("SIM_TOKEN_DELAY_MS", "50"), ("SIM_TOKENS", "40")];
    let mut a = sim_daemon(&slow);
    let mut b = sim_daemon(&slow);
    let gw = gateway(&[a.url.clone(), b.url.clone()], |_| {}).await;
    let body = r#"{"model":"llama3.2","messages":[{"role":"user","content":"long"}],"stream":true,"temperature":0}"#;
    let mut response = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .body(body)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let mut text = response
        .chunk()
        .await
        .expect("chunk")
        .map(|c| c.to_vec())
        .unwrap_or_default();
    // Kill whichever host is generating.
    let victim = if has_generated(&a.url).await {
        &mut a
    } else {
        assert!(has_generated(&b.url).await, "one host generates");
        &mut b
    };
    let _ = victim.child.kill();
    let _ = victim.child.wait();
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.extend_from_slice(&chunk);
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream ended instead of hanging");
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("data: "), "{text}");
    assert!(
        !text.contains("[DONE]"),
        "a broken stream never claims to be done: {text}"
    );
    assert_eq!(
        gw.stats().upstream.retries,
        0,
        "never retried once streaming"
    );
    assert_eq!(gw.cache_stats().await.stores, 0, "nothing cached");
}
