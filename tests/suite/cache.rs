//! The response cache and request coalescing, end to end on the simulator, whose
//! counters say how many generations really ran upstream.

use std::time::Duration;

use futures_util::future::join_all;
use warmline::GatewayHandle;
use warmline_tests::{AsAdmin as _, gateway, simulator_with};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn sim_config(token_delay_ms: u64) -> ollama_sim::SimConfig {
    let mut config = ollama_sim::SimConfig::default();
    config.knobs.token_delay = Duration::from_millis(token_delay_ms);
    config.knobs.tokens_per_reply = 20;
    config.ollama.num_parallel = 4;
    config
}

/// Waits until the gateway knows the simulator's model digests (cache keys need them).
async fn ready(gw: &GatewayHandle, sim_url: &str) {
    let body = r#"{"model":"nomic-embed-text","input":"warm-up"}"#;
    for _ in 0..200 {
        let response = post(gw, "/api/embed", body).await;
        if response.headers()["x-warmline-cache"] != "bypass" {
            let _ = response.bytes().await;
            gw.purge_cache(None).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway never learned the models of {sim_url}");
}

async fn post(gw: &GatewayHandle, path: &str, body: &str) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gw.url()))
        .body(body.to_owned())
        .send()
        .await
        .expect("response")
}

async fn exchange(gw: &GatewayHandle, path: &str, body: &str) -> (String, u16, Vec<u8>) {
    let response = post(gw, path, body).await;
    let outcome = response.headers()["x-warmline-cache"]
        .to_str()
        .expect("ascii")
        .to_owned();
    // The standard header (RFC 9211) says the same.
    let standard = match outcome.as_str() {
        "hit" => "warmline; hit",
        "miss" => "warmline; fwd=uri-miss",
        "coalesced" => "warmline; fwd=uri-miss; collapsed",
        _ => "warmline; fwd=bypass",
    };
    assert_eq!(response.headers()["cache-status"], standard);
    let status = response.status().as_u16();
    (
        outcome,
        status,
        response.bytes().await.expect("body").to_vec(),
    )
}

const CHAT_T0: &str = r#"{"model":"llama3.2","messages":[{"role":"user","content":"cache me"}],"options":{"temperature":0}}"#;

#[tokio::test]
async fn a_hit_replays_the_original_stream_byte_for_byte() {
    let sim = simulator_with(sim_config(0)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;

    let (first_outcome, status, first) = exchange(&gw, "/api/chat", CHAT_T0).await;
    assert_eq!((first_outcome.as_str(), status), ("miss", 200));
    let (second_outcome, _, second) = exchange(&gw, "/api/chat", CHAT_T0).await;
    assert_eq!(second_outcome, "hit");
    assert_eq!(first, second, "byte-identical replay");
    assert_eq!(sim.counters().generations.started, 1);

    // Same generation, other stream flag: assembled from the cached stream.
    let whole = CHAT_T0.replace(r#""options""#, r#""stream":false,"options""#);
    let (outcome, _, body) = exchange(&gw, "/api/chat", &whole).await;
    assert_eq!(outcome, "hit");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let streamed: String = String::from_utf8_lossy(&first)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["message"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(body["message"]["content"], streamed.as_str());
    assert_eq!(body["done"], true);
    assert_eq!(sim.counters().generations.started, 1);
}

#[tokio::test]
async fn a_hundred_identical_requests_share_one_generation() {
    let sim = simulator_with(sim_config(30)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;
    let before = sim.counters().generations.started;
    let stats_before = gw.cache_stats().await;

    let requests = (0..100).map(|_| exchange(&gw, "/api/chat", CHAT_T0));
    let results = join_all(requests).await;
    let first_body = &results[0].2;
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for (outcome, status, body) in &results {
        assert_eq!(*status, 200);
        assert_eq!(body, first_body, "every client gets the same answer");
        *outcomes.entry(outcome.clone()).or_default() += 1;
    }
    assert_eq!(
        sim.counters().generations.started - before,
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.get("miss"), Some(&1), "{outcomes:?}");
    let stats = gw.cache_stats().await;
    assert_eq!(stats.misses - stats_before.misses, 1);
    assert_eq!(
        (stats.coalesced + stats.hits) - (stats_before.coalesced + stats_before.hits),
        99
    );
}

#[tokio::test]
async fn sampled_requests_are_never_served_from_cache() {
    let sim = simulator_with(sim_config(0)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;
    let sampled = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"options":{"temperature":0.8}}"#;
    let omitted = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#;
    let v1 = r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#;
    for _ in 0..2 {
        assert_eq!(exchange(&gw, "/api/chat", sampled).await.0, "bypass");
        assert_eq!(exchange(&gw, "/api/chat", omitted).await.0, "bypass");
        assert_eq!(exchange(&gw, "/v1/chat/completions", v1).await.0, "bypass");
    }
    assert_eq!(sim.counters().generations.started, 6);
}

#[tokio::test]
async fn upstream_errors_and_aborted_streams_are_never_cached() {
    let sim = simulator_with(sim_config(0)).await;
    // Statuses as Ollama sends them: no cold-start masking (the model is not loaded
    // yet, and a masked stream would turn the 500 into a 200 with an error line).
    let gw = gateway(&[sim.url()], |c| c.warmth.mask_cold_starts = false).await;
    ready(&gw, &sim.url()).await;

    let mut knobs = sim.knobs();
    knobs.error_rate = 1.0;
    sim.set_knobs(knobs.clone());
    let (outcome, status, _) = exchange(&gw, "/api/chat", CHAT_T0).await;
    assert_eq!((outcome.as_str(), status), ("miss", 500));

    knobs.error_rate = 0.0;
    knobs.abort_rate = 1.0;
    sim.set_knobs(knobs.clone());
    let (outcome, status, body) = exchange(&gw, "/api/chat", CHAT_T0).await;
    assert_eq!(outcome, "miss");
    // Cut before the first chunk went out: a 502 naming the upstream; after it:
    // a 200 stream that ends with Ollama's in-stream error line.
    let last = String::from_utf8_lossy(&body)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        status == 502 || (status == 200 && last.contains("\"error\"")),
        "{status} {last}"
    );

    knobs.abort_rate = 0.0;
    sim.set_knobs(knobs);
    let (outcome, status, _) = exchange(&gw, "/api/chat", CHAT_T0).await;
    assert_eq!(
        (outcome.as_str(), status),
        ("miss", 200),
        "neither failure was stored"
    );
    assert_eq!(exchange(&gw, "/api/chat", CHAT_T0).await.0, "hit");
}

#[tokio::test]
async fn cache_control_is_honoured() {
    let sim = simulator_with(sim_config(0)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;
    let send = |control: &'static str| {
        client()
            .post(format!("{}/api/generate", gw.url()))
            .header("cache-control", control)
            .body(r#"{"model":"llama3.2","prompt":"why","stream":false,"options":{"seed":7}}"#)
            .send()
    };
    let outcome = |r: &reqwest::Response| {
        r.headers()["x-warmline-cache"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    assert_eq!(outcome(&send("no-store").await.expect("r")), "bypass");
    assert_eq!(outcome(&send("max-age=60").await.expect("r")), "miss");
    assert_eq!(outcome(&send("max-age=60").await.expect("r")), "hit");
    assert_eq!(
        outcome(&send("no-cache").await.expect("r")),
        "miss",
        "revalidates"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        outcome(&send("max-age=0").await.expect("r")),
        "miss",
        "too old for the client"
    );
    assert_eq!(sim.counters().generations.started, 4);
}

#[tokio::test]
async fn embeddings_and_show_are_cached_and_purgeable() {
    let sim = simulator_with(sim_config(0)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;
    let embed = r#"{"model":"nomic-embed-text","input":["a","b"]}"#;
    let show = r#"{"model":"llama3.2"}"#;
    let (_, _, first) = exchange(&gw, "/api/embed", embed).await;
    let (outcome, _, second) = exchange(&gw, "/api/embed", embed).await;
    assert_eq!(outcome, "hit");
    assert_eq!(first, second);
    exchange(&gw, "/api/show", show).await;
    assert_eq!(exchange(&gw, "/api/show", show).await.0, "hit");

    let stats = gw.cache_stats().await;
    assert_eq!(stats.entries, 2);
    assert!(stats.bytes > 0);
    let purged = gw.purge_cache(Some("nomic-embed-text")).await;
    assert_eq!(purged.removed, 1);
    assert_eq!(exchange(&gw, "/api/embed", embed).await.0, "miss");
    assert_eq!(exchange(&gw, "/api/show", show).await.0, "hit");

    // The HTTP admin routes are the same handle methods.
    let stats: serde_json::Value = client()
        .get(format!("{}/warmline/cache", gw.url()))
        .admin()
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["entries"], 2);
    let purged: serde_json::Value = client()
        .delete(format!("{}/warmline/cache", gw.url()))
        .admin()
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(purged["removed"], 2);
}

#[tokio::test]
async fn coalesced_generation_outlives_its_first_client_but_not_its_last() {
    let sim = simulator_with(sim_config(50)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;
    let body = r#"{"model":"llama3.2","prompt":"long","options":{"temperature":0}}"#;

    // Two clients share a generation; the first leaves after one chunk.
    let mut first = post(&gw, "/api/generate", body).await;
    first.chunk().await.expect("chunk");
    let second = post(&gw, "/api/generate", body).await;
    assert_eq!(second.headers()["x-warmline-cache"], "coalesced");
    drop(first);
    let text = second
        .text()
        .await
        .expect("the follower gets the whole stream");
    assert!(
        text.trim_end().ends_with('}') && text.contains("\"done\":true"),
        "{text}"
    );
    assert_eq!(sim.counters().generations.completed, 1);

    // A lone client leaving cancels the upstream generation.
    let other = body.replace("long", "other");
    let mut only = post(&gw, "/api/generate", &other).await;
    only.chunk().await.expect("chunk");
    drop(only);
    for _ in 0..200 {
        if sim.counters().generations.cancelled == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the upstream generation kept running: {:?}",
        sim.counters().generations
    );
}

#[tokio::test]
async fn every_response_says_what_the_cache_did() {
    let sim = simulator_with(sim_config(0)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let response = client()
        .get(format!("{}/api/tags", gw.url()))
        .send()
        .await
        .expect("r");
    assert_eq!(response.headers()["x-warmline-cache"], "bypass");
    let gw_off = gateway(&[sim.url()], |c| c.cache.enabled = false).await;
    let response = post(&gw_off, "/api/chat", CHAT_T0).await;
    assert_eq!(response.headers()["x-warmline-cache"], "bypass");
    assert!(!gw_off.cache_stats().await.enabled);
}

/// Regression: compressing a cached-path answer polled its body stream once more
/// after the end, which panicked and cut the connection (found by the Python client
/// suite, which always sends `Accept-Encoding`).
#[tokio::test]
async fn compressed_misses_and_hits_complete() {
    let sim = simulator_with(sim_config(0)).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    ready(&gw, &sim.url()).await;
    for expected in ["miss", "hit"] {
        let response = client()
            .post(format!("{}/api/show", gw.url()))
            .header("accept-encoding", "gzip")
            .body(r#"{"model":"llama3.2"}"#)
            .send()
            .await
            .expect("response");
        assert_eq!(response.headers()["x-warmline-cache"], expected);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let body = response.bytes().await.expect("the whole compressed body");
        assert!(body.starts_with(&[0x1f, 0x8b]), "gzip magic");
    }
}
