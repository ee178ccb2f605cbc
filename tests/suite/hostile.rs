//! Hostile neighbours: every attack of the security review (issue 15's table)
//! replayed against a running gateway, plus malformed and oversized input. Each
//! gets its documented refusal in Ollama's JSON shape, nothing runs, and
//! `/warmline/health` still answers afterwards.
//!
//! Slow and oversized heads and stalled bodies (408, 431) are in `limits`; body
//! limits on the proxy (413) in `proxy`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use warmline::GatewayHandle;
use warmline_tests::{
    AsAdmin as _, bin, eventually, gateway, sim_daemon, simulator, spawn_ready, temp_dir,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Status and JSON body of an answer; fails the test when the body is not JSON
/// in Ollama's `{"error": "..."}` shape for an error status.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: not JSON ({e}): {text:?}"));
    if status >= 400 {
        assert!(body["error"].is_string(), "not Ollama's shape: {body}");
    }
    (status, body)
}

/// `/warmline/health` still answers, and fast.
async fn still_healthy(url: &str) {
    let response = client()
        .get(format!("{url}/warmline/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("health answers");
    assert_eq!(response.status(), 200);
}

/// The patch of the first row: make the supervisor run `bash`, whose start-up
/// file runs `touch MARKER`.
fn command_execution_patch(marker: &Path) -> Value {
    json!({
        "daemon": {
            "supervise": true,
            "executable": "/bin/bash",
            "env": { "BASH_ENV": format!("$(touch {})", marker.display()) }
        }
    })
}

async fn put_settings(url: &str, patch: &Value, origin: Option<&str>, admin: bool) -> (u16, Value) {
    let mut request = client()
        .put(format!("{url}/warmline/settings"))
        .body(patch.to_string());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if admin {
        request = request.admin();
    }
    answer(request.send().await.expect("response")).await
}

/// Rows 1–4: no command execution, open origins, redirected prompts or
/// appended files without the admin credential; with it, what runs a program
/// or writes a file is still refused over HTTP.
#[tokio::test]
async fn settings_cannot_be_turned_into_command_execution() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let url = gw.url();
    let dir = temp_dir("hostile");
    let marker = dir.join("pwned");
    let patch = command_execution_patch(&marker);

    // A web page on a built-in allowed origin (http://localhost:3000).
    let (status, body) = put_settings(&url, &patch, Some("http://localhost:3000"), false).await;
    assert_eq!(status, 403, "{body}");
    // ...even with the credential, if the page somehow had it.
    let (status, _) = put_settings(&url, &patch, Some("http://localhost:3000"), true).await;
    assert_eq!(status, 403);
    // A local process or another OS user over 127.0.0.1.
    let (status, body) = put_settings(&url, &patch, None, false).await;
    assert_eq!(status, 401, "{body}");
    // With the admin credential: the executable and env are file-only.
    let (status, body) = put_settings(&url, &patch, None, true).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("daemon."),
        "{body}"
    );
    // A preflight for the control plane is refused too.
    let preflight = client()
        .request(reqwest::Method::OPTIONS, format!("{url}/warmline/settings"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 403);

    // Row 3: opening every origin.
    let open = json!({ "origins": ["*"] });
    assert_eq!(put_settings(&url, &open, None, false).await.0, 401);
    assert_eq!(put_settings(&url, &open, None, true).await.0, 200);
    // The admin may open the data plane to every page; the control plane stays shut.
    let (status, _) = put_settings(
        &url,
        &json!({ "cache": { "sampled": true } }),
        Some("https://evil.example"),
        false,
    )
    .await;
    assert_eq!(status, 403);
    let data = client()
        .get(format!("{url}/api/tags"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("tags");
    assert_eq!(data.status(), 200, "the data plane follows `origins`");

    // Row 4: redirecting prompts and appending to files.
    let elsewhere = json!({ "upstreams": ["http://127.0.0.1:9"] });
    assert_eq!(put_settings(&url, &elsewhere, None, false).await.0, 401);
    let log = json!({ "access_log": dir.join("appended").display().to_string() });
    assert_eq!(put_settings(&url, &log, None, false).await.0, 401);
    let (status, body) = put_settings(&url, &log, None, true).await;
    assert_eq!(status, 403, "{body}");
    for field in ["state_file", "daemon.log_file"] {
        let (section, key) = field.split_once('.').unwrap_or(("", field));
        let patch = if section.is_empty() {
            json!({ key: "/tmp/x" })
        } else {
            json!({ section: { key: "/tmp/x" } })
        };
        assert_eq!(
            put_settings(&url, &patch, None, true).await.0,
            403,
            "{field}"
        );
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!marker.exists(), "a command ran");
    assert!(!dir.join("appended").exists(), "a file was written");
    assert!(gw.config().daemon.executable.is_none());
    assert!(gw.config().access_log.is_none());
    still_healthy(&url).await;
    gw.shutdown().await;
}

/// Row 5: with data-plane tokens configured, a loopback peer without the admin
/// credential reaches no control route, and a data token does not open one.
#[tokio::test]
async fn loopback_alone_does_not_open_the_control_plane() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |c| {
        c.tokens = vec![warmline::auth::Token {
            name: "alice".into(),
            secret: "alice-secret".into(),
        }];
    })
    .await;
    let url = gw.url();
    for path in [
        "/warmline/settings",
        "/warmline/logs",
        "/warmline/requests",
        "/warmline/daemon",
        "/warmline/models",
        "/warmline/cache",
    ] {
        let without = client()
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer(without).await.0, 401, "{path}");
        let data_token = client()
            .get(format!("{url}{path}"))
            .bearer_auth("alice-secret")
            .send()
            .await
            .expect("answer");
        assert_eq!(answer(data_token).await.0, 403, "{path}");
        let admin = client()
            .get(format!("{url}{path}"))
            .admin()
            .send()
            .await
            .expect("answer");
        assert_eq!(admin.status(), 200, "{path}");
    }
    // Monitoring stays open to this machine, and shows no secret.
    for path in ["/warmline/health", "/warmline/stats", "/metrics"] {
        let response = client()
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.expect("body");
        assert!(!text.contains("alice-secret"), "{path}: {text}");
        assert!(!text.contains(&warmline_tests::admin_token()), "{path}");
    }
    gw.shutdown().await;
}

/// Row 6: listening on every interface with a token, a browser page re-pointed
/// at 127.0.0.1 by its DNS (Host and Origin `evil.example:PORT`) is refused,
/// preflight included.
#[tokio::test]
async fn dns_rebinding_is_refused_on_an_unspecified_listen_address() {
    let sim = simulator().await;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut config = warmline::Config::with_upstreams([url::Url::parse(&sim.url()).expect("url")]);
    config.listen = format!("0.0.0.0:{port}").parse().expect("addr");
    config.tokens = vec![warmline::auth::Token {
        name: "default".into(),
        secret: "a-long-token".into(),
    }];
    let gw = warmline::Gateway::serve(listener, config)
        .await
        .expect("gateway");
    let evil = format!("evil.example:{port}");
    for request in [
        format!(
            "PUT /warmline/settings HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\n\
             Authorization: Bearer {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            warmline_tests::admin_token()
        ),
        format!(
            "OPTIONS /warmline/settings HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\n\
             Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST /api/chat HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\n\
             Authorization: Bearer a-long-token\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    ] {
        let text = raw(port, request.as_bytes()).await;
        assert!(text.starts_with("HTTP/1.1 403"), "{request}\n→ {text}");
        assert!(text.contains("DNS-rebinding"), "{text}");
    }
    // The same through a name of this machine works.
    let ok = raw(
        port,
        b"GET /warmline/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // A page of a foreign origin through a name of this machine: refused too.
    let foreign = raw(
        port,
        format!(
            "POST /api/chat HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://evil.example\r\n\
             Authorization: Bearer a-long-token\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    // Each refusal is counted once, by its kind.
    let metrics = gw.prometheus();
    for counted in [
        "warmline_gateway_errors_total{kind=\"host_forbidden\"} 3",
        "warmline_gateway_errors_total{kind=\"origin_forbidden\"} 1",
    ] {
        assert!(metrics.contains(counted), "{counted} in\n{metrics}");
    }
    gw.shutdown().await;
}

/// Sends `bytes` to 127.0.0.1:`port` and reads the answer until the close.
async fn raw(port: u16, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Row 7: durations that would overflow a deadline are refused with their
/// field's name; the gateway keeps serving.
#[tokio::test]
async fn out_of_range_settings_are_refused_by_name_and_nothing_panics() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let url = gw.url();
    for (patch, field) in [
        (
            json!({ "timeouts": { "header": "300000000000y" } }),
            "timeouts.header",
        ),
        (
            json!({ "timeouts": { "first_byte": "300000000000y" } }),
            "timeouts.first_byte",
        ),
        (
            json!({ "breaker": { "open_for": "300000000000y" } }),
            "breaker.open_for",
        ),
        (
            json!({ "timeouts": { "client_idle": "31d" } }),
            "timeouts.client_idle",
        ),
        (
            json!({ "warmth": { "keep_alive": "99999999999999s" } }),
            "warmth.keep_alive",
        ),
        (
            json!({ "cache": { "max_size": "2000000GiB" } }),
            "cache.max_size",
        ),
        (
            json!({ "concurrency": { "queue": 4_000_000_000u64 } }),
            "concurrency.queue",
        ),
        (
            json!({ "daemon": { "log_lines": 1_000_000_000u64 } }),
            "daemon.log_lines",
        ),
        (
            json!({ "limits": { "max_connections": 0 } }),
            "limits.max_connections",
        ),
    ] {
        let (status, body) = put_settings(&url, &patch, None, true).await;
        assert_eq!(status, 400, "{patch}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{patch}: {message}");
    }
    // The longest accepted values work end to end: a request, a stream.
    let longest = json!({
        "timeouts": { "header": "30days", "first_byte": "30days", "client_idle": "30days" },
        "breaker": { "open_for": "30days" },
    });
    assert_eq!(put_settings(&url, &longest, None, true).await.0, 200);
    let chat = client()
        .post(format!("{url}/api/chat"))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .expect("chat");
    assert_eq!(chat.status(), 200);
    assert!(chat.text().await.expect("stream").contains("\"done\":true"));
    still_healthy(&url).await;
    gw.shutdown().await;
}

/// Rows 8–9: a connection that sends nothing, or only `P`, is cut off after
/// `timeouts.header` from accept; meanwhile health answers.
#[tokio::test]
async fn silent_and_half_preface_connections_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |c| {
        c.timeouts.header = Duration::from_millis(500)
    })
    .await;
    let addr = gw.local_addr();
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut half = tokio::net::TcpStream::connect(addr).await.expect("connect");
    half.write_all(b"P").await.expect("write");
    still_healthy(&gw.url()).await;
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut out)).await;
    assert!(read.is_ok() && out.is_empty(), "closed quietly: {out:?}");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), half.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    still_healthy(&gw.url()).await;
    gw.shutdown().await;
}

/// Rows 10–12, with the real `warmline serve` supervising a daemon that writes a
/// line that is not UTF-8: the output keeps being read (the daemon's later
/// lines arrive), `daemon.env` values are masked in settings and logs, and the
/// daemon's environment has none of Warmline's own variables.
#[tokio::test]
async fn the_supervisor_survives_bad_bytes_and_keeps_secrets_from_the_daemon() {
    let dir = temp_dir("hostile-daemon");
    let port = warmline_tests::free_port();
    let script = dir.join("ollama");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > '{env}'\nprintf 'bad \\377\\376 bytes\\n' >&2\nexec '{sim}' \"$@\"\n",
            env = dir.join("env.txt").display(),
            sim = bin("ollama-sim").display()
        ),
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let config = dir.join("warmline.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nupstreams = [\"http://127.0.0.1:{port}\"]\n\
             [daemon]\nsupervise = true\nexecutable = '{}'\n\
             env = {{ HTTPS_PROXY = \"http://user:pw-SECRET@proxy.invalid:3128\", SIM_QUIET = \"0\" }}\n",
            script.display()
        ),
    )
    .expect("config");
    let mut command = Command::new(bin("warmline"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("WARMLINE_TOKEN", "a-data-plane-token")
        .env("WARMLINE_EXTRA_FOR_TEST", "warmline-only")
        .env_remove("WARMLINE_LISTEN")
        .env_remove("WARMLINE_UPSTREAMS")
        .env_remove("WARMLINE_CONFIG");
    let mut gw = spawn_ready(command);
    let url = gw.url.clone();
    let get = async |path: &str| -> Value {
        let response = client()
            .get(format!("{url}{path}"))
            .admin()
            .send()
            .await
            .expect("answer");
        answer(response).await.1
    };
    eventually("the daemon running", Duration::from_secs(20), async || {
        get("/warmline/daemon").await["state"] == "running"
    })
    .await;
    eventually(
        "its later output read",
        Duration::from_secs(10),
        async || {
            let logs = get("/warmline/daemon/logs?lines=200").await.to_string();
            logs.contains("bad \u{fffd}\u{fffd} bytes") && logs.contains("Listening on")
        },
    )
    .await;
    let logs = get("/warmline/daemon/logs?lines=200").await.to_string();
    assert!(!logs.contains("pw-SECRET"), "{logs}");
    assert!(logs.contains("HTTPS_PROXY=***"), "{logs}");
    let settings = get("/warmline/settings").await;
    assert_eq!(
        settings["daemon"]["env"]["HTTPS_PROXY"], "***",
        "{settings}"
    );
    assert!(!settings.to_string().contains("pw-SECRET"));

    let env = std::fs::read_to_string(dir.join("env.txt")).expect("env dump");
    assert!(
        env.contains("HTTPS_PROXY=http://user:pw-SECRET@"),
        "the daemon gets its env"
    );
    assert!(!env.contains("WARMLINE_"), "{env}");

    // Still answering, through the gateway, after all that.
    let tags = client()
        .get(format!("{url}/api/tags"))
        .bearer_auth("a-data-plane-token")
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.status(), 200);
    assert!(gw.terminate(Duration::from_secs(15)).is_some());
}

/// Row 13 and malformed input: a 100,000-deep JSON body, broken JSON, bytes
/// that are not UTF-8 and an oversized body each get a JSON answer; the real
/// simulator survives the deep one, and so does the gateway.
#[tokio::test]
async fn malformed_deep_and_huge_bodies_are_answered_in_ollamas_shape() {
    let sim = sim_daemon(&[]);
    let gw = gateway(std::slice::from_ref(&sim.url), |c| {
        c.limits.max_body = 1 << 20
    })
    .await;
    let url = gw.url();
    let deep = format!(
        "{{\"model\":\"llama3.2\",\"messages\":{}",
        "[".repeat(100_000)
    );
    let bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("deep", deep.into_bytes(), 400),
        (
            "broken",
            b"{\"model\": \"llama3.2\", \"messages\": [".to_vec(),
            400,
        ),
        ("not utf-8", b"{\"model\": \"\xff\xfe\"}".to_vec(), 400),
        ("huge", vec![b' '; 2 << 20], 413),
    ];
    for (what, body, expected) in bodies {
        let response = client()
            .post(format!("{url}/api/chat"))
            .body(body)
            .send()
            .await
            .expect("answer");
        let (status, body) = answer(response).await;
        assert_eq!(status, expected, "{what}: {body}");
    }
    // The simulator (a real process) is alive and answering.
    let version = client()
        .get(format!("{}/api/version", sim.url))
        .send()
        .await
        .expect("simulator alive");
    assert_eq!(version.status(), 200);
    still_healthy(&url).await;
    gw.shutdown().await;
}

/// Warmline's own routes refuse in the same JSON shape as the rest: a bad
/// query, a body over the limit, a wrong method, an unknown route.
#[tokio::test]
async fn control_plane_refusals_are_json_too() {
    let sim = simulator().await;
    let gw: GatewayHandle = gateway(&[sim.url()], |_| {}).await;
    let url = gw.url();
    let c = client();
    let cases = [
        (c.get(format!("{url}/warmline/requests?limit=many")), 400),
        (c.get(format!("{url}/warmline/history?window=soon")), 400),
        (
            c.put(format!("{url}/warmline/settings"))
                .body(vec![b' '; 3 << 20]),
            413,
        ),
        (c.put(format!("{url}/warmline/settings")).body("[1,"), 400),
        (
            c.post(format!("{url}/warmline/models/warm")).body("{}"),
            400,
        ),
        (c.delete(format!("{url}/warmline/settings")), 405),
        (c.get(format!("{url}/warmline/nope")), 404),
    ];
    for (request, expected) in cases {
        let response = request.admin().send().await.expect("answer");
        let (status, body) = answer(response).await;
        assert_eq!(status, expected, "{body}");
    }
    still_healthy(&url).await;
    gw.shutdown().await;
}

/// Valid configurations at the bounds of every duration, size and count,
/// generated: each drives a request, a stream, a breaker trip (a dead second
/// host, opened for up to the longest accepted time) and a settings change
/// through a running gateway. None panics: the gateway still answers after each.
#[test]
fn configurations_at_the_bounds_never_panic() {
    use proptest::prelude::*;
    use proptest::sample::select;
    let duration = || select(vec!["1ms", "250ms", "30days"]);
    let strategy = (
        prop::collection::vec(duration(), 13),
        select(vec![1u32, 1_000_000]),
        select(vec![1usize, 1024]),
        select(vec![0usize, 1024]),
        select(vec![0usize, 1_000_000]),
        select(vec!["1KiB", "1TiB"]),
        select(vec![1usize, 8, 1 << 20]),
        select(vec!["-1", "0", "30days"]),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime.block_on(simulator());
    let dead = runtime.block_on(warmline_tests::dead_url());
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 24,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    runner
        .run(
            &strategy,
            |(d, count, parallel, staged, queue, size, connections, keep_alive)| {
                let raw = json!({
                    "listen": "127.0.0.1:0",
                    "upstreams": [sim.url(), dead.clone()],
                    "timeouts": {
                        "connect": d[0], "first_byte": d[1], "idle": d[2], "header": d[3],
                        "body": d[4], "drain": "1ms", "health_interval": d[5],
                        "client_idle": d[6],
                    },
                    "pool": { "idle_timeout": d[7] },
                    "breaker": { "failures": count.min(2), "open_for": d[8] },
                    "concurrency": {
                        "per_model": parallel, "staged": staged, "queue": queue, "max_wait": d[9],
                    },
                    "rate_limit": { "per_second": count, "burst": count, "loopback": true },
                    "limits": {
                        "max_body": size, "retry_body": size, "max_connections": connections,
                    },
                    "cache": {
                        "max_size": size, "ttl_generation": d[10], "ttl_embedding": d[11],
                        "ttl_show": d[12], "redis_timeout": d[0],
                    },
                    "warmth": { "keep_alive": keep_alive },
                    "alerts": { "latency": d[1], "window": d[2] },
                });
                let config: warmline::config::RawConfig =
                    serde_json::from_value(raw.clone()).expect("raw shape");
                let config = config.validate().map_err(|e| {
                    TestCaseError::fail(format!("a configuration at the bounds was refused: {e}"))
                })?;
                runtime.block_on(drive(config));
                Ok(())
            },
        )
        .expect("no configuration at the bounds panics");
}

/// A request, a stream, a breaker trip and a settings change through a gateway
/// with `config`; whatever the answers, the gateway must still answer.
async fn drive(config: warmline::Config) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gw = warmline::Gateway::serve(listener, config)
        .await
        .expect("gateway starts");
    let url = gw.url();
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let chat = |stream: bool| {
        c.post(format!("{url}/api/chat"))
            .body(
                json!({
                    "model": "llama3.2",
                    "messages": [{ "role": "user", "content": "hi" }],
                    "stream": stream,
                    "options": { "temperature": 0 },
                })
                .to_string(),
            )
            .send()
    };
    // Both hosts get traffic: the dead one fails, trips its breaker.
    for i in 0..4 {
        if let Ok(response) = chat(i % 2 == 0).await {
            let _ = response.bytes().await;
        }
    }
    let _ = gw
        .update_settings(
            &json!({ "cache": { "sampled": true }, "breaker": { "open_for": "30days" } }),
        )
        .await;
    if let Ok(response) = chat(true).await {
        let _ = response.bytes().await;
    }
    let health = gw.health();
    assert!(!health.upstreams.is_empty());
    // Still serving: back at ordinary connection limits (at 1 ms of
    // `timeouts.header` from accept, or one connection at most, refusing a
    // client is the setting doing its job), a fresh connection is answered.
    gw.update_settings(&json!({
        "timeouts": { "header": "10s", "client_idle": "5m" },
        "limits": { "max_connections": 1000 },
    }))
    .await
    .expect("ordinary limits apply");
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let answered = fresh.get(format!("{url}/warmline/health")).send().await;
    assert!(answered.is_ok(), "the gateway still answers: {answered:?}");
    gw.shutdown().await;
}
