//! Admission limits: per-(host, model) concurrency with a bounded queue, the
//! per-client rate limit, and the cut-offs for slow or oversized requests (408,
//! 431; 413 is in `proxy`).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use futures_util::future::join_all;
use warmline_tests::{gateway, simulator_with};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn slow_sim() -> ollama_sim::SimConfig {
    let mut config = ollama_sim::SimConfig::default();
    config.knobs.token_delay = Duration::from_millis(30);
    config.knobs.tokens_per_reply = 10;
    config.ollama.num_parallel = 8;
    config
}

/// A sampled request (never cached or coalesced), distinct per `i`.
fn sampled(i: usize) -> String {
    format!(r#"{{"model":"llama3.2","prompt":"question {i}","stream":false}}"#)
}

async fn generate(url: &str, body: String) -> (u16, Option<String>, String) {
    let response = client()
        .post(format!("{url}/api/generate"))
        .body(body)
        .send()
        .await
        .expect("response");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        response.status().as_u16(),
        retry_after,
        response.text().await.expect("body"),
    )
}

/// The issue's concurrency run: a host whose `OLLAMA_NUM_PARALLEL` is 2 (told
/// to Warmline as the host's `parallel`, everything else at its default) never
/// has more than 2 generations in flight, though the simulator would take 8.
#[tokio::test]
async fn in_flight_generations_never_exceed_the_hosts_parallelism() {
    let sim = simulator_with(slow_sim()).await;
    let gw = gateway(&[sim.url()], |c| {
        c.upstreams[0].parallel = NonZeroUsize::new(2);
    })
    .await;
    let url = gw.url();
    let results = join_all((0..8).map(|i| generate(&url, sampled(i)))).await;
    assert!(
        results.iter().all(|(status, _, _)| *status == 200),
        "{results:?}"
    );
    let counters = sim.counters();
    let model = &counters.models["llama3.2:latest"];
    assert_eq!(model.max_in_flight, 2, "{counters:?}");
    assert!(
        gw.prometheus()
            .contains("warmline_queue_wait_seconds_count 8")
    );
    assert_eq!(gw.health().upstreams[0].parallel, 2);
}

#[test]
fn by_default_a_host_gets_exactly_its_parallelism() {
    let config = warmline::config::RawConfig::from_toml("[concurrency]\nper_model = 2")
        .expect("toml")
        .validate()
        .expect("valid");
    assert_eq!(
        warmline::admission::ConcurrencyConfig::for_host(&config.concurrency, None, None)
            .per_model
            .get(),
        2
    );
    let staged = warmline::config::RawConfig::from_toml("[concurrency]\nper_model = 2\nstaged = 3")
        .expect("toml")
        .validate()
        .expect("valid");
    assert_eq!(
        warmline::admission::ConcurrencyConfig::for_host(&staged.concurrency, None, None)
            .per_model
            .get(),
        5
    );
}

#[tokio::test]
async fn queue_overflow_is_a_503_with_retry_after_in_ollamas_shape() {
    let sim = simulator_with(slow_sim()).await;
    let gw = gateway(&[sim.url()], |c| {
        c.concurrency.per_model = Some(NonZeroUsize::MIN);
        c.concurrency.staged = 0;
        c.concurrency.queue = 1;
    })
    .await;
    let url = gw.url();
    let results = join_all((0..4).map(|i| generate(&url, sampled(i)))).await;
    let refused: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| *status == 503)
        .collect();
    assert_eq!(
        refused.len(),
        2,
        "one running, one queued, two refused: {results:?}"
    );
    for (_, retry_after, body) in refused {
        assert_eq!(retry_after.as_deref(), Some("1"));
        let body: serde_json::Value = serde_json::from_str(body).expect("json");
        assert!(
            body["error"].as_str().expect("message").contains("queued"),
            "{body}"
        );
    }
    assert_eq!(
        sim.counters().generations.started,
        2,
        "refused requests never went upstream"
    );
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let sim = simulator_with(ollama_sim::SimConfig::default()).await;
    let gw = gateway(&[sim.url()], |c| {
        c.rate_limit.per_second = NonZeroU32::MIN;
        c.rate_limit.burst = NonZeroU32::new(3).expect("3");
        c.rate_limit.exempt_loopback = false;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client()
            .get(format!("{}/api/tags", gw.url()))
            .send()
            .await
            .expect("response");
        statuses.push((
            response.status().as_u16(),
            response.headers().get("retry-after").cloned(),
        ));
    }
    assert_eq!(
        statuses.iter().filter(|(s, _)| *s == 200).count(),
        3,
        "{statuses:?}"
    );
    let (status, retry_after) = &statuses[4];
    assert_eq!(*status, 429);
    assert_eq!(
        retry_after.as_ref().map(|v| v.to_str().expect("ascii")),
        Some("1")
    );
    // The answer's body is Ollama's error shape, saying when to come back.
    let response = client()
        .get(format!("{}/api/tags", gw.url()))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 429);
    let body: serde_json::Value = response.json().await.expect("JSON error");
    let message = body["error"].as_str().expect("Ollama's error shape");
    assert!(
        message.starts_with("too many requests from this client address; retry in "),
        "{message}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");

    // Loopback clients are exempt by default.
    let exempt = gateway(&[sim.url()], |c| {
        c.rate_limit.per_second = NonZeroU32::MIN;
        c.rate_limit.burst = NonZeroU32::MIN;
    })
    .await;
    for _ in 0..10 {
        let response = client()
            .get(format!("{}/api/tags", exempt.url()))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
    }
}

/// Sends raw bytes on a fresh connection (in pieces, `pause` apart) and returns
/// everything the gateway answers until it closes.
async fn raw_exchange(addr: std::net::SocketAddr, pieces: &[&[u8]], pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    for piece in pieces {
        if stream.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn quick_limits(c: &mut warmline::Config) {
    c.timeouts.header = Duration::from_millis(300);
    c.timeouts.body = Duration::from_millis(300);
    c.limits.max_header = 2048;
}

#[tokio::test]
async fn slow_or_oversized_heads_and_stalled_bodies_are_cut_off_with_their_status() {
    let sim = simulator_with(ollama_sim::SimConfig::default()).await;
    let gw = gateway(&[sim.url()], quick_limits).await;
    let addr = gw.local_addr();

    // A head that never completes: 408 in Ollama's shape.
    let answer = raw_exchange(
        addr,
        &[b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\n"],
        Duration::ZERO,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains(
            "{\"error\":\"the request's headers did not arrive within 300ms (timeouts.header)\"}"
        ),
        "{answer}"
    );

    // A head over limits.max_header: 431 in Ollama's shape.
    let filler = format!("x-filler: {}\r\n", "y".repeat(500));
    let mut pieces: Vec<&[u8]> = vec![b"GET /api/tags HTTP/1.1\r\nHost: localhost\r\n"];
    pieces.extend(std::iter::repeat_n(filler.as_bytes(), 8));
    let answer = raw_exchange(addr, &pieces, Duration::from_millis(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(
        answer.ends_with(
            "\r\n\r\n{\"error\":\"request headers are larger than the configured limit of \
             2048 bytes (limits.max_header)\"}"
        ),
        "{answer}"
    );
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );

    // A body that stalls, on the cached path (read whole) and on a streamed route.
    let blob = format!("/api/blobs/sha256:{}", "0".repeat(64));
    for path in ["/api/chat", blob.as_str()] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\nContent-Type: application/json\r\n\r\n{{\"model\""
        );
        let answer = raw_exchange(addr, &[head.as_bytes()], Duration::from_millis(900)).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{path}: {answer}");
        assert!(
            answer.ends_with(
                "\r\n\r\n{\"error\":\"the request body stalled: nothing arrived for 300ms \
                 (timeouts.body)\"}"
            ),
            "{path}: {answer}"
        );
    }

    // Normal requests on the same gateway are unaffected.
    let (status, _, _) = generate(&gw.url(), sampled(1)).await;
    assert_eq!(status, 200);
    let metrics = gw.prometheus();
    for kind in ["header_timeout", "header_too_large", "body_timeout"] {
        assert!(
            !metrics.contains(&format!(
                "warmline_gateway_errors_total{{kind=\"{kind}\"}} 0"
            )),
            "{kind} counted"
        );
    }
}
