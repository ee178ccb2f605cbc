//! Observability: Server-Timing on every answer, the rolling history, recent
//! requests, the log tail, alerts in /warmline/health, the Prometheus exposition
//! the Grafana dashboard relies on, and charts from `warmline report` and
//! `warmline bench --report`.

use std::collections::BTreeSet;
use std::time::Duration;

use warmline_tests::{
    AsAdmin as _, bin, eventually, gateway, sim_daemon, simulator, simulator_with, temp_dir,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn chat(url: &str, content: &str, temperature: f64) -> reqwest::Response {
    let body = format!(
        r#"{{"model":"llama3.2","messages":[{{"role":"user","content":"{content}"}}],"stream":false,"options":{{"temperature":{temperature}}}}}"#
    );
    client()
        .post(format!("{url}/api/chat"))
        .body(body)
        .send()
        .await
        .expect("answer")
}

/// `name;dur=N` of a Server-Timing header, in milliseconds.
fn timing(header: &str, name: &str) -> Option<f64> {
    header.split(',').map(str::trim).find_map(|part| {
        let rest = part.strip_prefix(name)?.strip_prefix(";dur=")?;
        rest.parse().ok()
    })
}

#[tokio::test]
async fn every_answer_says_where_its_time_went() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;

    let miss = chat(&gw.url(), "timing", 0.0).await;
    let header = miss.headers()["server-timing"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        timing(&header, "overhead").is_some_and(|ms| ms >= 0.0),
        "{header}"
    );
    assert!(timing(&header, "upstream").is_some(), "{header}");
    assert!(timing(&header, "queue").is_some(), "{header}");
    assert!(header.contains("cache;desc=miss"), "{header}");
    let _ = miss.bytes().await;

    let hit = chat(&gw.url(), "timing", 0.0).await;
    let header = hit.headers()["server-timing"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        header.contains("cache;desc=hit") && timing(&header, "upstream").is_none(),
        "{header}"
    );

    let tags = client()
        .get(format!("{}/api/tags", gw.url()))
        .send()
        .await
        .expect("tags");
    assert!(
        tags.headers().contains_key("server-timing"),
        "non-generation routes too"
    );

    // Answers Warmline gives by itself say `overhead` alone: its own routes,
    // an upstream error it produced, a refused origin.
    let own = client()
        .get(format!("{}/warmline/health", gw.url()))
        .send()
        .await
        .expect("health");
    let header = own.headers()["server-timing"].to_str().expect("ascii");
    assert!(timing(header, "overhead").is_some(), "{header}");
    let refused = client()
        .get(format!("{}/api/tags", gw.url()))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 403);
    let header = refused.headers()["server-timing"].to_str().expect("ascii");
    assert!(timing(header, "overhead").is_some(), "{header}");
    let dead = gateway(&[warmline_tests::dead_url().await], |_| {}).await;
    let unreachable = chat(&dead.url(), "nobody home", 0.0).await;
    assert_eq!(unreachable.status(), 502);
    let header = unreachable.headers()["server-timing"]
        .to_str()
        .expect("ascii");
    assert!(timing(header, "overhead").is_some(), "{header}");

    // A refused request is counted like any other (a 4xx), Warmline's own
    // routes are not traffic.
    let metrics = gw.prometheus();
    assert!(
        metrics.contains("warmline_responses_total{class=\"4xx\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warmline_requests_total{route=\"tags\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn history_and_recent_requests_follow_the_traffic() {
    let mut config = ollama_sim::SimConfig::default();
    config.knobs.token_delay = Duration::from_millis(2);
    let sim = simulator_with(config).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;
    for i in 0..20 {
        let answer = chat(&gw.url(), &format!("history {}", i % 5), 0.0).await;
        assert_eq!(answer.status(), 200);
        let _ = answer.bytes().await;
    }
    let stream = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"stream"}]}"#)
        .send()
        .await
        .expect("stream");
    let _ = stream.bytes().await;

    // The history closes its seconds as they pass.
    let mut history = serde_json::Value::Null;
    eventually(
        "the history to show the traffic",
        Duration::from_secs(5),
        async || {
            history = client()
                .get(format!("{}/warmline/history?window=5m", gw.url()))
                .send()
                .await
                .expect("history")
                .json()
                .await
                .expect("json");
            let points = history["points"].as_array().cloned().unwrap_or_default();
            points
                .iter()
                .map(|p| p["requests"].as_u64().unwrap_or(0))
                .sum::<u64>()
                >= 21
        },
    )
    .await;
    assert_eq!(history["step_s"], 1);
    let points = history["points"].as_array().expect("points");
    let hits: u64 = points.iter().map(|p| p["hits"].as_u64().unwrap_or(0)).sum();
    let misses: u64 = points
        .iter()
        .map(|p| p["misses"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        (hits, misses),
        (15, 5),
        "5 distinct prompts, each asked 4 times"
    );
    assert!(points.iter().any(|p| p["ttft_p50_ms"].is_number()));
    let models = history["models"].as_array().expect("models");
    assert!(
        models
            .iter()
            .any(|m| m["model"] == "llama3.2:latest" && m["tokens_per_s"].is_number()),
        "{models:?}"
    );

    let recent: serde_json::Value = client()
        .get(format!("{}/warmline/requests?limit=3", gw.url()))
        .admin()
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    let recent = recent.as_array().expect("list");
    assert_eq!(recent.len(), 3);
    assert!(
        recent
            .iter()
            .any(|r| r["ttft_ms"].is_number() && r["host"] == sim.url().as_str()),
        "{recent:?}"
    );
    assert!(
        recent
            .iter()
            .all(|r| r["route"] == "chat" && r["model"] == "llama3.2:latest")
    );

    let stats = gw.stats();
    let chat = &stats.routes["chat"];
    assert!(
        chat.ttft_p50_ms.is_some() && chat.overhead_p50_ms.is_some(),
        "{chat:?}"
    );
    assert!(stats.models["llama3.2:latest"].p50_ms.is_some());

    let png = client()
        .get(format!(
            "{}/warmline/charts/latency.svg?window=5m",
            gw.url()
        ))
        .send()
        .await
        .expect("chart");
    assert_eq!(png.headers()["content-type"], "image/svg+xml");
    let svg = png.text().await.expect("svg");
    assert!(svg.contains("Latency (p50 / p95 / p99)"));
}

#[tokio::test]
async fn alerts_raise_degraded_health_and_their_metric() {
    let mut failing = ollama_sim::SimConfig::default();
    failing.knobs.error_rate = 0.5;
    let sim = simulator_with(failing).await;
    let gw = gateway(&[sim.url()], |c| {
        c.alerts.min_requests = 10;
        c.breaker.enabled = false;
        c.warmth.mask_cold_starts = false;
    })
    .await;
    for i in 0..30 {
        let _ = chat(&gw.url(), &format!("alert {i}"), 0.8)
            .await
            .bytes()
            .await;
    }
    let health = gw.health();
    assert_eq!(
        health.status,
        warmline::HealthStatus::Degraded,
        "{health:?}"
    );
    let alert = health
        .alerts
        .iter()
        .find(|a| a.alert == "error_rate")
        .expect("error_rate alert");
    assert!(
        alert.message.contains("requests failed over the last 1m"),
        "{}",
        alert.message
    );
    assert!(
        gw.prometheus()
            .contains("warmline_alert_active{alert=\"error_rate\"} 1")
    );
    assert!(
        gw.prometheus()
            .contains("warmline_alert_active{alert=\"latency\"} 0")
    );
}

/// Metric names used by the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/warmline.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("warmline_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_uses_is_exported_from_the_start() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        !gw.models().is_empty()
    })
    .await;
    let text = gw.prometheus();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
        .collect();
    // Warmline's own series, and the standard process ones every exporter writes.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.starts_with("warmline_") || line.starts_with("process_"),
            "{line}"
        );
    }
    let used = dashboard_metrics();
    assert!(used.len() >= 12, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name.as_str()),
            "the dashboard uses {name}, which /metrics lacks"
        );
    }
    // Models appear as labels only for installed ones, at zero from the start.
    assert!(text.contains("warmline_model_cold_starts_total{model=\"llama3.2:latest\"} 0"));
    let _ = chat(&gw.url(), "x", 0.8).await;
    let _ = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(r#"{"model":"made-up-model","messages":[{"role":"user","content":"x"}]}"#)
        .send()
        .await;
    assert!(
        !gw.prometheus().contains("made-up-model"),
        "no label for a name a client made up"
    );
}

#[tokio::test]
async fn report_and_bench_write_charts() {
    let sim = sim_daemon(&[]);
    let mut command = std::process::Command::new(bin("warmline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &sim.url])
        .env("RUST_LOG", "warmline=info")
        .env_remove("WARMLINE_CONFIG");
    let gateway = warmline_tests::spawn_ready_logging(command, std::process::Stdio::null());
    // Warmline's own log tail, as the app shows it.
    let logs: serde_json::Value = client()
        .get(format!("{}/warmline/logs", gateway.url))
        .admin()
        .send()
        .await
        .expect("logs")
        .json()
        .await
        .expect("json");
    let lines = logs.as_array().expect("lines");
    assert!(
        lines.iter().any(|l| l["text"]
            .as_str()
            .is_some_and(|t| t.contains("gateway started"))
            && l["level"] == "INFO"),
        "{lines:?}"
    );
    let dir = temp_dir("report");
    let bench_png = dir.join("bench.png");
    let output = std::process::Command::new(bin("warmline"))
        .args([
            "bench",
            "--url",
            &gateway.url,
            "--scenario",
            "chat",
            "--rate",
            "50",
            "--duration",
            "3s",
            "--warmup",
            "0s",
            "--repeat",
            "0.5",
            "--report",
        ])
        .arg(&bench_png)
        .output()
        .expect("bench runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let png = std::fs::read(&bench_png).expect("bench report");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");

    let report_svg = dir.join("report.svg");
    let output = std::process::Command::new(bin("warmline"))
        .args(["report", "--url", &gateway.url, "--window", "5m", "--out"])
        .arg(&report_svg)
        .output()
        .expect("report runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let svg = std::fs::read_to_string(&report_svg).expect("report");
    for title in [
        "Latency (p50 / p95 / p99)",
        "Time to first token",
        "Cache hit rate",
        "Latency by model",
        "Summary",
    ] {
        assert!(svg.contains(title), "{title}");
    }
    let output = std::process::Command::new(bin("warmline"))
        .args(["report", "--url", &gateway.url, "--out"])
        .arg(dir.join("report.gif"))
        .output()
        .expect("report runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(".png or .svg"));
}

/// A host that fails every request: its breaker opens (a transition counted in
/// `/metrics`) and `breaker_open` is raised; the other host keeps the gateway
/// serving (degraded). With both hosts out, the gateway is `down` with
/// `upstream_down`. Every request also lands in the access log.
#[tokio::test]
async fn breaker_and_upstream_alerts_and_the_access_log() {
    let failing = warmline_tests::Mock::serve(axum::Router::new().route(
        "/api/version",
        axum::routing::get(|| async {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"boom"}"#,
            )
        }),
    ))
    .await;
    let sim = simulator().await;
    let log = warmline_tests::temp_dir("access-log").join("access.log");
    let gw = gateway(&[failing.url.clone(), sim.url()], |c| {
        c.access_log = Some(log.clone());
        c.breaker.failures = std::num::NonZeroU32::new(2).expect("2");
        c.failover = false;
    })
    .await;
    for _ in 0..6 {
        let _ = client()
            .get(format!("{}/api/version", gw.url()))
            .send()
            .await
            .expect("answer");
    }
    eventually("the breaker to open", Duration::from_secs(10), async || {
        gw.health().alerts.iter().any(|a| a.alert == "breaker_open")
    })
    .await;
    let health = gw.health();
    assert_eq!(
        health.status,
        warmline::HealthStatus::Degraded,
        "{health:?}"
    );
    let alert = health
        .alerts
        .iter()
        .find(|a| a.alert == "breaker_open")
        .expect("breaker_open");
    assert!(alert.message.contains(&failing.url), "{}", alert.message);
    let metrics = gw.prometheus();
    let opened = format!(
        "warmline_upstream_breaker_transitions_total{{upstream=\"{}\",to=\"open\"}} 1",
        failing.url
    );
    assert!(metrics.contains(&opened), "{metrics}");
    assert!(metrics.contains("warmline_alert_active{alert=\"breaker_open\"} 1"));

    eventually("the access log", Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|text| {
            text.lines().filter(|l| l.contains(" version ")).count() == 6
                && text.contains(" 500 version ")
                && text.contains(&format!("host={}", failing.url))
        })
    })
    .await;

    sim.shutdown().await;
    drop(failing);
    eventually("both hosts out", Duration::from_secs(10), async || {
        gw.health().status == warmline::HealthStatus::Down
    })
    .await;
    let health = gw.health();
    assert!(
        health.alerts.iter().any(|a| a.alert == "upstream_down"),
        "{health:?}"
    );
}

/// Beyond an hour, `/warmline/history` answers per minute.
#[tokio::test]
async fn long_windows_of_history_are_per_minute() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let _ = chat(&gw.url(), "minute", 0.0).await.bytes().await;
    let get = async |window: &str| -> serde_json::Value {
        client()
            .get(format!("{}/warmline/history?window={window}", gw.url()))
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("json")
    };
    assert_eq!(get("5m").await["step_s"], 1);
    let day = get("6h").await;
    assert_eq!(day["step_s"], 60, "{day}");
    assert!(day["points"].as_array().is_some_and(|p| p.len() <= 6 * 60));
    let bad = client()
        .get(format!("{}/warmline/history?window=soon", gw.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("soon")));
}

/// A request that paid a model load is a cold start in the recent requests and
/// the history, whichever path it took: a masked stream through the cache's
/// shared flight, a whole answer, a masked stream that bypasses the cache.
#[tokio::test]
async fn cold_starts_are_recorded_on_every_path() {
    let mut config = ollama_sim::SimConfig::default();
    config.knobs.load_delay = Duration::from_millis(300);
    config.models = vec![
        "llama3.2:latest".into(),
        "qwen3:0.6b".into(),
        "tinyllama:latest".into(),
    ];
    let sim = warmline_tests::simulator_with(config).await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    eventually("the model list", Duration::from_secs(10), async || {
        gw.models().len() == 3
    })
    .await;
    for body in [
        r#"{"model":"llama3.2","messages":[{"role":"user","content":"a"}],"options":{"temperature":0}}"#,
        r#"{"model":"qwen3:0.6b","messages":[{"role":"user","content":"b"}],"stream":false,"think":false,"options":{"temperature":0}}"#,
        r#"{"model":"tinyllama","messages":[{"role":"user","content":"c"}]}"#,
    ] {
        let answer = client()
            .post(format!("{}/api/chat", gw.url()))
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status(), 200);
        let _ = answer.bytes().await;
    }
    eventually(
        "three cold starts recorded",
        Duration::from_secs(5),
        async || {
            gw.recent_requests(10)
                .iter()
                .filter(|r| r.cold_start)
                .count()
                == 3
        },
    )
    .await;
    eventually(
        "cold starts in the history",
        Duration::from_secs(5),
        async || {
            let history = gw.history(Duration::from_secs(60));
            history.points.iter().map(|p| p.cold_starts).sum::<u64>() == 3
        },
    )
    .await;
}
