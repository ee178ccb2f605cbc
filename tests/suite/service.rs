//! Warmline as a service: systemd's readiness protocol under the packaged unit's
//! own command line, health and readiness a load balancer can act on, the
//! monitoring listener, the process and per-host metrics Prometheus scrapes,
//! JSON logs, and Ollama's habits (`OLLAMA_ORIGINS`, `OLLAMA_HOST`-style listen
//! addresses, the default config file).

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use warmline_tests::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// `KEY=VALUE` settings of a unit file's `[Service]` section, in order.
fn unit_settings(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_system_unit_reports_ready_once_listening_and_stopping_at_drain() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/systemd/system/warmline.service"),
    )
    .expect("the packaged unit");
    assert_eq!(unit_settings(&unit, "Type"), ["notify"]);
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=warmline",
    ] {
        assert!(unit.lines().any(|l| l == hardening), "{hardening}");
    }
    // The unit's own command line, with the binary built here; its XDG
    // directories (/etc, /var/lib) moved under a temporary root.
    let exec = unit_settings(&unit, "ExecStart").pop().expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/warmline"));
    let args: Vec<&str> = words.collect();
    let root = temp_dir("unit");
    let sim = sim_daemon(&[]);
    let mut command = Command::new(bin("warmline"));
    command.args(&args);
    for assignment in unit_settings(&unit, "Environment")
        .iter()
        .flat_map(|line| line.split_whitespace())
    {
        let (name, value) = assignment.split_once('=').expect("NAME=value");
        let moved = root.join(value.trim_start_matches('/'));
        command.env(name, &moved);
    }
    // systemd creates the state directory with the unit's mode before the start.
    let mode = unit_settings(&unit, "StateDirectoryMode")
        .pop()
        .expect("StateDirectoryMode");
    let state = root.join("var/lib/warmline");
    std::fs::create_dir_all(&state).expect("state dir");
    let mode = u32::from_str_radix(&mode, 8).expect("octal mode");
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .expect("chmod");
    // What an administrator writes in /etc/warmline/config.toml.
    let etc = root.join("etc/warmline");
    std::fs::create_dir_all(&etc).expect("etc");
    std::fs::write(
        etc.join("config.toml"),
        format!("listen = \"127.0.0.1:0\"\nupstreams = [\"{}\"]\n", sim.url),
    )
    .expect("config");
    let socket_path = root.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    command
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "warn")
        .env_remove("WARMLINE_CONFIG")
        .env_remove("WARMLINE_LISTEN")
        .env_remove("WARMLINE_UPSTREAMS");
    let mut serve = spawn_ready(command);

    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY within 20 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(
        ready,
        format!("READY=1\nSTATUS=listening on {}", serve.url),
        "sent once listening, naming the URL"
    );
    // The state directory holds the credential (and the warm set, once there is
    // one); the `warmline` group's administrators may read it.
    let token = std::fs::metadata(state.join("admin-token")).expect("the credential");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&token.permissions()) & 0o777,
        0o640
    );

    let status = serve.terminate(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
    let n = socket.recv(&mut buf).expect("STOPPING");
    assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=draining");
}

#[tokio::test]
async fn health_is_503_when_down_and_ready_follows_probes_pauses_and_drains() {
    // Nothing answers: down, and not ready.
    let dead = dead_url().await;
    let gw = gateway(&[dead], |_| {}).await;
    eventually(
        "the host probed down",
        Duration::from_secs(10),
        async || get(&format!("{}/warmline/health", gw.url())).await.0 == 503,
    )
    .await;
    let (status, body) = get(&format!("{}/warmline/health", gw.url())).await;
    assert_eq!(status, 503);
    let health: Value = serde_json::from_str(&body).expect("the same JSON body");
    assert_eq!(health["status"], "down");
    let (status, body) = get(&format!("{}/warmline/ready", gw.url())).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["ready"],
        false
    );
    gw.shutdown().await;

    // A host that answers, and a monitoring listener that outlives a drain.
    let mut config = ollama_sim::SimConfig::default();
    config.knobs.token_delay = Duration::from_millis(100);
    config.knobs.tokens_per_reply = 30;
    let sim = simulator_with(config).await;
    let gw = gateway(&[sim.url()], |c| {
        c.monitoring = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let monitor = format!("http://{}", gw.monitoring_addr().expect("monitoring bound"));
    eventually(
        "ready once a probe answered",
        Duration::from_secs(10),
        async || get(&format!("{monitor}/warmline/ready")).await.0 == 200,
    )
    .await;
    assert_eq!(get(&format!("{}/warmline/ready", gw.url())).await.0, 200);
    assert_eq!(get(&format!("{monitor}/warmline/health")).await.0, 200);

    // Only health, readiness and metrics are there, with no credential.
    let (status, metrics) = get(&format!("{monitor}/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("warmline_build_info{"), "metrics");
    for path in [
        "/api/tags",
        "/warmline/settings",
        "/warmline/logs",
        "/warmline/stats",
        "/",
    ] {
        let (status, body) = get(&format!("{monitor}{path}")).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            serde_json::from_str::<Value>(&body).expect("Ollama's shape")["error"].is_string(),
            "{path}: {body}"
        );
    }

    // Paused: the port is closed, the monitoring listener says why.
    gw.pause().await;
    let (status, body) = get(&format!("{monitor}/warmline/ready")).await;
    assert_eq!(status, 503);
    assert!(body.contains("paused"), "{body}");
    gw.resume().await.expect("resume");
    assert_eq!(get(&format!("{monitor}/warmline/ready")).await.0, 200);

    // Draining: a slow stream keeps the drain going; readiness is 503 throughout.
    let stream = client()
        .post(format!("{}/api/generate", gw.url()))
        .body(r#"{"model":"qwen3:0.6b","prompt":"slow"}"#)
        .send()
        .await
        .expect("a stream starts");
    let draining = tokio::spawn({
        let gw = gw.clone();
        async move { gw.shutdown().await }
    });
    eventually("draining reported", Duration::from_secs(5), async || {
        let (status, body) = get(&format!("{monitor}/warmline/ready")).await;
        status == 503 && body.contains("draining")
    })
    .await;
    let body = stream
        .text()
        .await
        .expect("the stream finishes during the drain");
    assert!(body.contains("\"done\":true"), "{body}");
    draining.await.expect("shutdown");
    assert!(
        client()
            .get(format!("{monitor}/warmline/ready"))
            .send()
            .await
            .is_err(),
        "the monitoring listener closes last"
    );
}

#[tokio::test]
async fn metrics_carry_build_process_and_per_host_series() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let response = client()
        .post(format!("{}/api/generate", gw.url()))
        .body(r#"{"model":"qwen3:0.6b","prompt":"hi","stream":false}"#)
        .send()
        .await
        .expect("generate");
    assert_eq!(response.status(), 200);
    let text = gw.prometheus();
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };
    let host = format!("upstream=\"{}\"", sim.url());
    assert!(value(&format!("warmline_upstream_requests_total{{{host}}}")) >= 1.0);
    assert_eq!(
        value(&format!("warmline_upstream_retries_total{{{host}}}")),
        0.0
    );
    assert!(
        value(&format!(
            "warmline_upstream_connections_opened_total{{{host}}}"
        )) >= 1.0
    );
    assert_eq!(
        value(&format!(
            "warmline_build_info{{version=\"{}\",os=\"linux\",arch=\"{}\"}}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )),
        1.0
    );
    assert!(value("process_resident_memory_bytes ") > 1e6);
    assert!(value("process_open_fds ") >= 3.0);
    assert!(value("process_cpu_seconds_total ") > 0.0);
    assert!(value("process_start_time_seconds ") > 1.6e9);
    assert!(!text.contains("warmline_daemon_up"), "no daemon supervised");
}

#[tokio::test]
async fn json_logs_ollama_origins_and_ollama_host_style_listen() {
    let sim = sim_daemon(&[]);
    let dir = temp_dir("service-env");
    let log = dir.join("stderr.log");
    let mut command = Command::new(bin("warmline"));
    command
        .args(["serve", "--log-format", "json", "--upstream", &sim.url])
        // OLLAMA_HOST's forms: a name Ollama accepts, port 0 for the test.
        .env("WARMLINE_LISTEN", "http://localhost:0")
        .env(
            "OLLAMA_ORIGINS",
            "chrome-extension://*, https://app.example",
        )
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("RUST_LOG", "warmline=info")
        .env_remove("WARMLINE_CONFIG")
        .env_remove("WARMLINE_UPSTREAMS");
    let gw = spawn_ready_logging(
        command,
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    assert!(gw.url.starts_with("http://127.0.0.1:"), "{}", gw.url);

    // Every stderr line is one JSON object; the ready line stayed on stdout.
    eventually("a log line", Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() > 0)
    })
    .await;
    for line in std::fs::read_to_string(&log).expect("log").lines() {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["level"].is_string() && event["fields"].is_object(),
            "{line}"
        );
    }

    // A browser extension the user allowed in OLLAMA_ORIGINS reaches Ollama's API,
    // never the control plane; an origin not listed is refused.
    let ask = |path: &'static str, origin: &'static str, admin: bool| {
        let url = format!("{}{path}", gw.url);
        async move {
            let mut request = client().get(url).header("origin", origin);
            if admin {
                request = request.bearer_auth(admin_token());
            }
            request.send().await.expect("request")
        }
    };
    let allowed = ask("/api/tags", "chrome-extension://abcdef", false).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "chrome-extension://abcdef"
    );
    assert_eq!(
        ask("/api/tags", "https://app.example", false)
            .await
            .status(),
        200
    );
    assert_eq!(
        ask("/api/tags", "https://evil.example", false)
            .await
            .status(),
        403
    );
    assert_eq!(
        ask("/warmline/settings", "chrome-extension://abcdef", true)
            .await
            .status(),
        403,
        "OLLAMA_ORIGINS never opens the control plane"
    );
}

#[tokio::test]
async fn a_reload_reopens_the_access_log_after_rotation() {
    let sim = simulator().await;
    let dir = temp_dir("access-log");
    let log = dir.join("access.log");
    let gw = gateway(&[sim.url()], |c| c.access_log = Some(log.clone())).await;
    let tags = async || {
        let response = client()
            .get(format!("{}/api/tags", gw.url()))
            .send()
            .await
            .expect("tags");
        assert_eq!(response.status(), 200);
    };
    tags().await;
    eventually("the first line", Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 1)
    })
    .await;
    // logrotate moves the file away; the gateway keeps writing into the moved file
    // until a reload (SIGHUP) reopens the path.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let _ = gw.reload().await;
    tags().await;
    eventually(
        "a new file at the old path",
        Duration::from_secs(5),
        async || std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 1),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&rotated)
            .expect("rotated")
            .lines()
            .count(),
        1,
        "the rotated file keeps what it had"
    );
}
