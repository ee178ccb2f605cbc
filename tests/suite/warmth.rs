//! Warmth: warm models stay loaded through a daemon's short keep-alive, requests
//! for them get the pinned keep_alive, streams for a cold model get their headers
//! at once, and the warm/cool/models routes and CLI commands drive all of it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warmline_tests::{
    AsAdmin as _, Mock, bin, eventually, gateway, sim_daemon, simulator_with, spawn_ready, temp_dir,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn post(url: &str, body: &str) -> (u16, serde_json::Value) {
    let response = client()
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// `load_duration` of a non-streaming generation of `model`, in milliseconds.
async fn load_ms(gateway: &str, model: &str) -> f64 {
    let body = format!(r#"{{"model":"{model}","prompt":"hello","stream":false}}"#);
    let (status, answer) = post(&format!("{gateway}/api/generate"), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["load_duration"].as_f64().expect("load_duration") / 1e6
}

#[tokio::test]
async fn a_warm_model_never_pays_a_load_after_the_daemons_keep_alive_passed() {
    // An adopted daemon that unloads idle models after 2 s and loads in 1 s.
    let sim = sim_daemon(&[("OLLAMA_KEEP_ALIVE", "2s"), ("SIM_LOAD_DELAY_MS", "1000")]);
    let gw = gateway(std::slice::from_ref(&sim.url), |c| {
        c.warmth.models = vec!["llama3.2:latest".into()];
    })
    .await;
    eventually(
        "the warm model to load",
        Duration::from_secs(10),
        async || {
            gw.models()
                .iter()
                .any(|m| m.name == "llama3.2:latest" && m.loaded && !m.loading)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let warm = load_ms(&gw.url(), "llama3.2").await;
    let cold = load_ms(&gw.url(), "qwen3:0.6b").await;
    assert!(warm < 100.0, "the warm model paid a {warm} ms load");
    assert!(cold >= 900.0, "the unwarmed model loaded in {cold} ms?");
    let metrics = gw.prometheus();
    assert!(
        metrics.contains("warmline_model_cold_starts_total{model=\"qwen3:0.6b\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("warmline_model_cold_starts_total{model=\"llama3.2:latest\"} 0"));
}

/// A mock Ollama with one model that records every generate body it receives.
async fn recording_upstream() -> (Mock, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let router = axum::Router::new()
        .route(
            "/api/tags",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"models":[
                    {"name":"m:latest","model":"m:latest","digest":"abc","size":1,"details":{}},
                    {"name":"other:latest","model":"other:latest","digest":"def","size":1,"details":{}}
                ]}))
            }),
        )
        .route(
            "/api/ps",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"models":[]})) }),
        )
        .route(
            "/api/generate",
            axum::routing::post(move |body: String| {
                let record = Arc::clone(&record);
                async move {
                    record.lock().expect("lock").push(body);
                    axum::Json(serde_json::json!({"model":"m","response":"ok","done":true}))
                }
            }),
        );
    (Mock::serve(router).await, seen)
}

#[tokio::test]
async fn requests_for_a_warm_model_get_the_pinned_keep_alive() {
    let (upstream, seen) = recording_upstream().await;
    let gw = gateway(std::slice::from_ref(&upstream.url), |c| {
        c.warmth.models = vec!["m:latest".into()];
        c.timeouts.health_interval = Duration::from_millis(100);
    })
    .await;
    // The warm load itself: a load-only request with keep_alive -1.
    eventually("the warm load", Duration::from_secs(10), async || {
        seen.lock()
            .expect("lock")
            .iter()
            .any(|b| b == r#"{"model":"m:latest","keep_alive":-1}"#)
    })
    .await;
    seen.lock().expect("lock").clear();

    let url = format!("{}/api/generate", gw.url());
    for body in [
        r#"{"model":"m","prompt":"a","stream":false}"#,
        r#"{"model":"m","prompt":"b","stream":false,"keep_alive":"5m"}"#,
        r#"{"model":"other","prompt":"c","stream":false}"#,
    ] {
        assert_eq!(post(&url, body).await.0, 200);
    }
    let seen: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|b| b.contains("prompt"))
        .cloned()
        .collect();
    assert_eq!(
        seen,
        [
            r#"{"keep_alive":-1,"model":"m","prompt":"a","stream":false}"#,
            r#"{"model":"m","prompt":"b","stream":false,"keep_alive":"5m"}"#,
            r#"{"model":"other","prompt":"c","stream":false}"#,
        ],
        "pinned only when warm and unset; otherwise byte for byte"
    );
}

/// A new `warmth.keep_alive` (through the settings route) reaches the models
/// already warm at once: each is loaded again with it.
#[tokio::test]
async fn a_new_warm_keep_alive_reaches_the_loaded_models() {
    let (upstream, seen) = recording_upstream().await;
    let gw = gateway(std::slice::from_ref(&upstream.url), |c| {
        c.warmth.models = vec!["m:latest".into()];
    })
    .await;
    let loaded_with = |keep_alive: &'static str| {
        let seen = Arc::clone(&seen);
        async move || {
            let wanted = format!(r#"{{"model":"m:latest","keep_alive":{keep_alive}}}"#);
            seen.lock().expect("lock").contains(&wanted)
        }
    };
    eventually("the warm load", Duration::from_secs(10), loaded_with("-1")).await;
    let response = client()
        .put(format!("{}/warmline/settings", gw.url()))
        .admin()
        .body(r#"{"warmth":{"keep_alive":"2h"}}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let applied: serde_json::Value = response.json().await.expect("json");
    assert_eq!(applied["changed"], serde_json::json!(["warmth.keep_alive"]));
    eventually(
        "a load with the new keep-alive",
        Duration::from_secs(10),
        loaded_with("7200"),
    )
    .await;
}

#[tokio::test]
async fn a_stream_for_a_cold_model_gets_its_headers_before_the_load_ends() {
    let mut slow = ollama_sim::SimConfig::default();
    slow.knobs.load_delay = Duration::from_millis(1500);
    let sim = simulator_with(slow).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;

    for (path, body, content_type) in [
        (
            "/api/chat",
            r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#,
            "application/x-ndjson",
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"qwen3:0.6b","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
            "text/event-stream",
        ),
    ] {
        let sent = Instant::now();
        let mut response = client()
            .post(format!("{}{path}", gw.url()))
            .body(body)
            .send()
            .await
            .expect("headers");
        let headers_after = sent.elapsed();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.headers()["x-warmline-cold-start"], "masked");
        let mut text = Vec::new();
        let mut first_chunk_after = None;
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            first_chunk_after.get_or_insert(sent.elapsed());
            text.extend_from_slice(&chunk);
        }
        let first_chunk_after = first_chunk_after.expect("a body");
        assert!(
            headers_after < Duration::from_millis(1000)
                && first_chunk_after >= Duration::from_millis(1400),
            "{path}: headers after {headers_after:?}, first token after {first_chunk_after:?}"
        );
        let text = String::from_utf8(text).expect("utf8");
        assert!(
            text.contains("\"done\":true") || text.ends_with("data: [DONE]\n\n"),
            "{path}: {text}"
        );
    }

    // Loaded now: Ollama's own timing, no masking.
    let response = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"again"}]}"#)
        .send()
        .await
        .expect("answer");
    assert!(response.headers().get("x-warmline-cold-start").is_none());
    // An unknown model's 404 passes through unmasked.
    let (status, body) = post(
        &format!("{}/api/chat", gw.url()),
        r#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("model 'nope' not found"))
    );
    let metrics = gw.prometheus();
    assert!(
        metrics.contains("warmline_model_cold_starts_total{model=\"llama3.2:latest\"} 1"),
        "{metrics}"
    );
}

/// A `/v1` request cannot carry `keep_alive`: for a warm model that is not
/// loaded, Warmline first loads it with the pinned keep-alive (shown as the
/// `load` phase of `Server-Timing`), so it is resident for good, not for the
/// daemon's five minutes.
#[tokio::test]
async fn a_v1_request_for_an_unloaded_warm_model_loads_it_pinned_first() {
    let mut slow = ollama_sim::SimConfig::default();
    slow.knobs.load_delay = Duration::from_millis(1500);
    let sim = simulator_with(slow).await;
    let gw = gateway(&[sim.url()], |c| {
        c.warmth.models = vec!["llama3.2:latest".into()];
        // Masking would answer the stream's headers before any load.
        c.warmth.mask_cold_starts = false;
    })
    .await;
    // The warm load is under way: the lists are known and the model is not loaded.
    eventually(
        "the warm load to start",
        Duration::from_secs(10),
        async || {
            gw.models()
                .iter()
                .any(|m| m.name == "llama3.2:latest" && m.loading && !m.loaded)
        },
    )
    .await;
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let timing = response.headers()["server-timing"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let load_ms: f64 = timing
        .split(',')
        .find_map(|m| m.trim().strip_prefix("load;dur="))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no load phase in {timing}"));
    assert!(load_ms > 100.0, "{timing}");
    let ps: serde_json::Value = client()
        .get(format!("{}/api/ps", sim.url()))
        .send()
        .await
        .expect("ps")
        .json()
        .await
        .expect("json");
    let expires = ps["models"][0]["expires_at"].as_str().unwrap_or_default();
    assert!(expires > "2100", "resident for good, not 5 minutes: {ps}");

    // A model outside the warm set loads with the daemon's default, no pinned load.
    let response = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .body(r#"{"model":"qwen3:0.6b","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let timing = response.headers()["server-timing"].to_str().expect("ascii");
    assert!(!timing.contains("load;"), "{timing}");
}

/// Cooling a model while its warm load runs stops the load (the request is
/// dropped, which aborts Ollama's load): the model does not end up resident.
#[tokio::test]
async fn cooling_a_model_while_it_loads_cancels_the_load() {
    let mut slow = ollama_sim::SimConfig::default();
    slow.knobs.load_delay = Duration::from_millis(1500);
    let sim = simulator_with(slow).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;
    gw.warm("llama3.2", false).await.expect("warm");
    eventually(
        "the warm load to start",
        Duration::from_secs(10),
        async || {
            gw.models()
                .iter()
                .any(|m| m.name == "llama3.2:latest" && m.loading)
        },
    )
    .await;
    let view = gw.cool("llama3.2").await.expect("cool");
    assert!(!view.warm && !view.loading, "{view:?}");
    // Longer than the load would have taken.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let counters = sim.counters();
    assert_eq!(counters.loads, 0, "the load was aborted: {counters:?}");
    let ps: serde_json::Value = client()
        .get(format!("{}/api/ps", sim.url()))
        .send()
        .await
        .expect("ps")
        .json()
        .await
        .expect("json");
    assert_eq!(ps["models"], serde_json::json!([]), "{ps}");
}

#[tokio::test]
async fn a_masked_stream_that_fails_ends_with_an_error_line() {
    let mut failing = ollama_sim::SimConfig::default();
    failing.knobs.load_delay = Duration::from_millis(200);
    failing.knobs.error_rate = 1.0;
    let sim = simulator_with(failing).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;
    let response = client()
        .post(format!("{}/api/generate", gw.url()))
        .body(r#"{"model":"llama3.2","prompt":"hi"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    let last: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a line")).expect("json line");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("model runner has unexpectedly stopped")),
        "{text}"
    );
}

#[tokio::test]
async fn the_warm_routes_and_cli_drive_the_warm_set_and_keep_it_across_restarts() {
    let sim = sim_daemon(&[]);
    let state = temp_dir("warm-cli").join("state.json");
    let serve = |state: &std::path::Path| {
        let mut command = std::process::Command::new(bin("warmline"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &sim.url])
            .arg("--state-file")
            .arg(state)
            .env("RUST_LOG", "warn")
            .env_remove("WARMLINE_CONFIG");
        spawn_ready(command)
    };
    let cli = |url: &str, args: &[&str]| {
        let output = std::process::Command::new(bin("warmline"))
            .args(args)
            .args(["--url", url])
            .output()
            .expect("cli runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let mut first = serve(&state);
    eventually("the model list", Duration::from_secs(10), async || {
        cli(&first.url, &["models"]).1.contains("qwen3:0.6b")
    })
    .await;

    let (code, out, err) = cli(&first.url, &["warm", "qwen3:0.6b"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "qwen3:0.6b is warm and loaded\n");
    let (code, _, err) = cli(&first.url, &["warm", "no-such-model"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("404") && err.contains("not found, try pulling it first"),
        "{err}"
    );
    let (_, out, _) = cli(&first.url, &["status"]);
    assert!(out.contains("warm: qwen3:0.6b (loaded)"), "{out}");
    let saved = std::fs::read_to_string(&state).expect("state file");
    assert!(saved.contains("qwen3:0.6b"), "{saved}");
    let (code, json, _) = cli(&first.url, &["models", "--json"]);
    assert_eq!(code, Some(0));
    let models: serde_json::Value = serde_json::from_str(&json).expect("json");
    let qwen = models
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "qwen3:0.6b"))
        .expect("listed");
    assert_eq!(
        (qwen["warm"].as_bool(), qwen["loaded"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        qwen["expires_at"].as_str().is_some_and(|e| e > "2100"),
        "loaded for ever: {qwen}"
    );
    first.terminate(Duration::from_secs(10));

    // A new gateway on the same state file warms the same model again.
    let second = serve(&state);
    eventually(
        "the warm set to come back",
        Duration::from_secs(10),
        async || {
            cli(&second.url, &["status"])
                .1
                .contains("warm: qwen3:0.6b (loaded)")
        },
    )
    .await;
    let (code, out, _) = cli(&second.url, &["cool", "qwen3:0.6b"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no longer warm"), "{out}");
    eventually(
        "the model to be unloaded",
        Duration::from_secs(10),
        async || {
            let ps: serde_json::Value = client()
                .get(format!("{}/api/ps", sim.url))
                .send()
                .await
                .expect("ps")
                .json()
                .await
                .expect("json");
            !ps.to_string().contains("qwen3:0.6b")
        },
    )
    .await;
}

/// Status of automatic warmth, as `GET /warmline/warmth` serves it.
async fn warmth_status(gw: &str) -> serde_json::Value {
    client()
        .get(format!("{gw}/warmline/warmth"))
        .admin()
        .send()
        .await
        .expect("warmth")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_model_used_once_stays_loaded_by_prediction_with_nothing_configured() {
    // A daemon that unloads idle models after 2 s and loads in 1 s; the gateway
    // with its defaults (automatic warmth on, nothing warm).
    let sim = sim_daemon(&[("OLLAMA_KEEP_ALIVE", "2s"), ("SIM_LOAD_DELAY_MS", "1000")]);
    let gw = gateway(std::slice::from_ref(&sim.url), |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;
    let first = load_ms(&gw.url(), "qwen3:0.6b").await;
    assert!(first >= 900.0, "the first use pays its load ({first} ms)");
    // Well past the daemon's keep-alive: kept loaded, and the models view says why.
    eventually(
        "qwen3 kept by prediction",
        Duration::from_secs(10),
        async || {
            gw.models().iter().any(|m| {
                m.name == "qwen3:0.6b"
                    && m.warmth == warmline::models::Warmth::Prediction
                    && m.warmth_reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with("used "))
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = load_ms(&gw.url(), "qwen3:0.6b").await;
    assert!(again < 100.0, "the second use paid a {again} ms load");
    let status = warmth_status(&gw.url()).await;
    assert_eq!(status["auto"], true, "{status}");
    assert!(status["budget"].as_u64().is_some_and(|b| b > 0), "{status}");
    assert!(status["used"].as_u64().is_some_and(|u| u > 0), "{status}");
    assert!(status["reasons"]["qwen3:0.6b"].is_string(), "{status}");
    assert_eq!(status["wasted_loads"], 0, "{status}");
    // The model the person never used is not loaded ahead.
    assert!(
        !gw.models()
            .iter()
            .any(|m| m.name == "llama3.2:latest" && m.loaded)
    );

    // Cooled by the person: unloaded, and never kept by prediction again, even
    // when used.
    gw.cool("qwen3:0.6b").await.expect("cool");
    let _ = load_ms(&gw.url(), "qwen3:0.6b").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let cooled = load_ms(&gw.url(), "qwen3:0.6b").await;
    assert!(
        cooled >= 900.0,
        "a cooled model went cold as Ollama left it ({cooled} ms)"
    );
    assert!(
        gw.models()
            .iter()
            .any(|m| m.name == "qwen3:0.6b" && m.warmth == warmline::models::Warmth::Cold)
    );
    // Forgetting what was learned also forgets the cooling.
    let response = client()
        .delete(format!("{}/warmline/warmth", gw.url()))
        .admin()
        .send()
        .await
        .expect("forget");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn without_automatic_warmth_or_budget_a_used_model_goes_cold_as_ollama_leaves_it() {
    let sim = sim_daemon(&[("OLLAMA_KEEP_ALIVE", "2s"), ("SIM_LOAD_DELAY_MS", "1000")]);
    for (label, tweak) in [
        (
            "auto off",
            Box::new(|c: &mut warmline::Config| c.warmth.auto = false)
                as Box<dyn Fn(&mut warmline::Config)>,
        ),
        (
            "a 1 MiB budget",
            Box::new(|c: &mut warmline::Config| {
                c.warmth.budget = warmline::config::Budget::Bytes(1 << 20);
            }),
        ),
    ] {
        let gw = gateway(std::slice::from_ref(&sim.url), |c| tweak(c)).await;
        eventually("the model list", Duration::from_secs(10), async || {
            !gw.models().is_empty()
        })
        .await;
        let _ = load_ms(&gw.url(), "llama3.2").await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let again = load_ms(&gw.url(), "llama3.2").await;
        assert!(again >= 900.0, "{label}: kept loaded ({again} ms)");
        assert!(
            gw.models()
                .iter()
                .all(|m| m.warmth != warmline::models::Warmth::Prediction),
            "{label}"
        );
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn warm_models_over_the_budget_are_kept_and_reported() {
    let sim = sim_daemon(&[]);
    let gw = gateway(std::slice::from_ref(&sim.url), |c| {
        c.warmth.budget = warmline::config::Budget::Bytes(1 << 20);
    })
    .await;
    gw.warm("llama3.2", true).await.expect("warm");
    eventually(
        "the over-budget report",
        Duration::from_secs(10),
        async || {
            let status = warmth_status(&gw.url()).await;
            status["chosen_over_budget"] == true
                && status["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("budget is 0.0 GB"))
        },
    )
    .await;
    assert!(
        gw.models()
            .iter()
            .any(|m| m.name == "llama3.2:latest" && m.loaded && m.warm),
        "a model marked warm is loaded whatever the budget says"
    );
}
