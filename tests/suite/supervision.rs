//! Supervision of `ollama serve`, with the simulator linked as `ollama`: started
//! with the right environment, adopted when one already runs, restarted after a
//! crash (with the warm set loaded again), given up on in a crash loop, and never
//! left behind — not even when Warmline itself is killed.

use std::process::Command;
use std::time::Duration;

use warmline::supervisor::DaemonState;
use warmline::{Config, GatewayHandle};
use warmline_tests::{
    AsAdmin as _, eventually, free_port, gateway, ollama_link, pid_alive, sim_daemon, spawn_ready,
    temp_dir,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// GETs `url` as JSON, with the admin credential (ignored by the simulator).
async fn get_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .admin()
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json")
}

/// A gateway supervising a daemon at a free port, with `tweak` applied.
async fn supervising(tweak: impl FnOnce(&mut Config)) -> (GatewayHandle, String) {
    let (_dir, exe) = ollama_link();
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let gw = gateway(std::slice::from_ref(&upstream), |c| {
        c.daemon.supervise = true;
        c.daemon.executable = Some(exe);
        c.daemon.restart_backoff = Duration::from_millis(100);
        c.daemon.env.insert("SIM_QUIET".into(), "1".into());
        tweak(c);
    })
    .await;
    (gw, upstream)
}

async fn running(gw: &GatewayHandle) -> u32 {
    eventually("the daemon to run", Duration::from_secs(20), async || {
        gw.daemon_status().state == DaemonState::Running
    })
    .await;
    gw.daemon_status().pid.expect("a running daemon has a pid")
}

#[tokio::test]
async fn a_started_daemon_gets_the_tuned_environment_and_goes_with_the_gateway() {
    let (gw, upstream) = supervising(|c| {
        c.daemon
            .env
            .insert("OLLAMA_CONTEXT_LENGTH".into(), "8192".into());
    })
    .await;
    let pid = running(&gw).await;

    let counters = get_json(&format!("{upstream}/_sim/counters")).await;
    let env = &counters["env"];
    let port = upstream.rsplit(':').next().expect("port");
    assert_eq!(env["OLLAMA_HOST"], format!("127.0.0.1:{port}"), "{env}");
    assert_eq!(env["OLLAMA_KEEP_ALIVE"], "1800");
    assert_eq!(env["OLLAMA_NUM_PARALLEL"], "2");
    assert_eq!(env["OLLAMA_MAX_LOADED_MODELS"], "0");
    assert_eq!(env["OLLAMA_CONTEXT_LENGTH"], "8192");

    eventually(
        "the daemon's settings to be confirmed",
        Duration::from_secs(5),
        async || gw.daemon_status().settings.is_some(),
    )
    .await;
    let status = gw.daemon_status();
    assert!(status.managed);
    assert!(
        status
            .executable
            .as_deref()
            .is_some_and(|e| e.ends_with("/ollama"))
    );
    assert_eq!(
        status.settings.expect("confirmed").mismatched,
        Vec::<String>::new()
    );
    assert!(status.version.is_some());
    // The supervised host runs daemon.num_parallel requests per model.
    assert_eq!(gw.health().upstreams[0].parallel, 2);

    let answer = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 200);
    let logs = gw.daemon_logs(100);
    assert!(
        logs.iter().any(|l| l.text.contains("Listening on")),
        "{logs:?}"
    );

    gw.shutdown().await;
    assert!(!pid_alive(pid), "the daemon outlived a clean stop");
    assert!(std::net::TcpStream::connect(upstream.trim_start_matches("http://")).is_err());
}

#[tokio::test]
async fn a_running_ollama_is_adopted_never_stopped() {
    let sim = sim_daemon(&[]);
    let (_dir, exe) = ollama_link();
    let gw = gateway(std::slice::from_ref(&sim.url), |c| {
        c.daemon.supervise = true;
        c.daemon.executable = Some(exe);
    })
    .await;
    eventually(
        "the daemon to be adopted",
        Duration::from_secs(10),
        async || gw.daemon_status().state == DaemonState::External,
    )
    .await;
    let status = gw.daemon_status();
    assert!(!status.managed);
    assert_eq!(status.pid, None);

    let refused = client()
        .post(format!("{}/warmline/daemon/stop", gw.url()))
        .admin()
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status(), 409);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("started outside Warmline")),
        "{body}"
    );
    let applied = gw
        .update_settings(&serde_json::json!({ "daemon": { "num_parallel": 4 } }))
        .await
        .expect("applied");
    assert!(
        applied
            .notes
            .iter()
            .any(|n| n.contains("was started elsewhere")),
        "{applied:?}"
    );

    gw.shutdown().await;
    assert_eq!(
        reqwest::get(&sim.url).await.expect("still up").status(),
        200,
        "an adopted daemon is never stopped"
    );
}

#[tokio::test]
async fn a_crashed_daemon_is_restarted_and_its_warm_models_loaded_again() {
    let (gw, upstream) = supervising(|c| c.warmth.models = vec!["llama3.2:latest".into()]).await;
    let first = running(&gw).await;
    let loaded = async || {
        let ps = get_json(&format!("{upstream}/api/ps")).await;
        ps["models"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "llama3.2:latest"))
    };
    eventually("the warm model to load", Duration::from_secs(10), loaded).await;

    let status = Command::new("kill")
        .args(["-9", &first.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
    eventually("a restart", Duration::from_secs(20), async || {
        let status = gw.daemon_status();
        status.state == DaemonState::Running && status.pid.is_some_and(|p| p != first)
    })
    .await;
    let status = gw.daemon_status();
    assert_eq!(status.restarts, 1);
    assert!(status.last_exit.is_some_and(|e| e.contains("signal 9")));
    eventually(
        "the warm model to load again",
        Duration::from_secs(10),
        loaded,
    )
    .await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_crash_loop_stops_the_restarts_with_a_clear_status() {
    let dir = temp_dir("crashing");
    let exe = dir.join("ollama");
    std::fs::write(
        &exe,
        "#!/bin/sh\necho 'Error: could not load the GPU driver' >&2\nexit 1\n",
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let gw = gateway(std::slice::from_ref(&upstream), |c| {
        c.daemon.supervise = true;
        c.daemon.executable = Some(exe);
        c.daemon.restart_backoff = Duration::from_millis(50);
        c.daemon.crash_loop_restarts = 3;
    })
    .await;
    eventually(
        "the crash loop to be noticed",
        Duration::from_secs(20),
        async || gw.daemon_status().state == DaemonState::CrashLoop,
    )
    .await;
    let status = gw.daemon_status();
    let message = status.message.expect("a message");
    assert!(message.contains("exited 3 times within 1m"), "{message}");
    assert!(
        message.contains("could not load the GPU driver"),
        "{message}"
    );
    assert_eq!(status.last_exit.as_deref(), Some("exit status 1"));
    // It stays given up on: no further restarts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gw.daemon_status().restarts, status.restarts);
    gw.shutdown().await;
}

#[tokio::test]
async fn no_ollama_on_path_is_reported_with_how_to_install_it() {
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let gw = gateway(std::slice::from_ref(&upstream), |c| {
        c.daemon.supervise = true;
        c.daemon.executable = Some(temp_dir("empty").join("ollama"));
    })
    .await;
    eventually(
        "the missing executable to be reported",
        Duration::from_secs(10),
        async || gw.daemon_status().state == DaemonState::NotFound,
    )
    .await;
    let message = gw.daemon_status().message.expect("message");
    assert!(message.contains("daemon.executable"), "{message}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_daemon_dies_with_a_killed_warmline() {
    let (dir, _exe) = ollama_link();
    let upstream = format!("http://127.0.0.1:{}", free_port());
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(warmline_tests::bin("warmline"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--supervise",
            "--upstream",
            &upstream,
        ])
        .arg("--state-file")
        .arg(temp_dir("killed").join("state.json"))
        .env("PATH", path)
        .env("SIM_QUIET", "1")
        .env("RUST_LOG", "warn")
        .env_remove("WARMLINE_CONFIG");
    let mut warmline = spawn_ready(command);
    let url = warmline.url.clone();
    let mut pid = None;
    eventually("the daemon to run", Duration::from_secs(20), async || {
        let status = get_json(&format!("{url}/warmline/daemon")).await;
        pid = status["pid"]
            .as_u64()
            .filter(|_| status["state"] == "running");
        pid.is_some()
    })
    .await;
    let pid = pid.expect("pid") as u32;
    assert!(pid_alive(pid));

    warmline.child.kill().expect("SIGKILL warmline");
    let _ = warmline.child.wait();
    eventually(
        "the daemon to go too",
        Duration::from_secs(10),
        async || !pid_alive(pid),
    )
    .await;
}

/// The daemon runs as `EXECUTABLE serve` with no shell in between; what it
/// prints is served at `/warmline/daemon/logs` and copied to `daemon.log_file`;
/// what it costs (its process tree, the machine's memory) is in
/// `/warmline/daemon`.
#[tokio::test]
async fn the_daemon_runs_without_a_shell_and_its_logs_and_cost_are_served() {
    let log_file = temp_dir("daemon-log").join("ollama.log");
    let (gw, upstream) = supervising(|c| c.daemon.log_file = Some(log_file.clone())).await;
    running(&gw).await;

    let exe = gw.daemon_status().executable.expect("the executable");
    let counters = get_json(&format!("{upstream}/_sim/counters")).await;
    assert_eq!(
        counters["argv"],
        serde_json::json!([exe, "serve"]),
        "argv[0] is the executable's path as found, then `serve`"
    );

    let has_ready_line = |lines: &serde_json::Value| {
        lines.as_array().is_some_and(|lines| {
            lines.iter().any(|l| {
                l["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Listening on"))
            })
        })
    };
    let logs = get_json(&format!("{}/warmline/daemon/logs?lines=50", gw.url())).await;
    assert!(has_ready_line(&logs), "{logs}");
    assert!(
        logs.as_array().is_some_and(|l| l.len() <= 50),
        "bounded by ?lines"
    );
    eventually("the log file", Duration::from_secs(5), async || {
        std::fs::read_to_string(&log_file).is_ok_and(|text| text.contains("Listening on"))
    })
    .await;

    let url = format!("{}/warmline/daemon", gw.url());
    eventually("resource figures", Duration::from_secs(10), async || {
        !get_json(&url).await["resources"].is_null()
    })
    .await;
    let status = get_json(&url).await;
    let resources = &status["resources"];
    assert!(resources["rss_bytes"].as_u64() > Some(0), "{status}");
    assert!(resources["processes"].as_u64() >= Some(1), "{status}");
    let total = resources["system_total_bytes"].as_u64().unwrap_or(0);
    let available = resources["system_available_bytes"].as_u64().unwrap_or(0);
    assert!(total > 0 && available > 0 && available <= total, "{status}");
    assert!(resources["cpu_percent"].as_f64().is_some(), "{status}");
    gw.shutdown().await;
}

/// Ollama binds its port before it is ready to answer (it discovers GPUs
/// first): the supervisor keeps probing and calls it running only once it
/// answers.
#[tokio::test]
async fn a_daemon_that_binds_before_it_answers_is_ready_only_once_it_answers() {
    let (gw, upstream) = supervising(|c| {
        c.daemon
            .env
            .insert("SIM_READY_DELAY_MS".into(), "1500".into());
    })
    .await;
    let addr = upstream.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    eventually("the port to open", Duration::from_secs(10), async || {
        std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    assert_eq!(
        gw.daemon_status().state,
        DaemonState::Starting,
        "an open port is not a ready daemon"
    );
    running(&gw).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "ready after {:?}, before the daemon answered",
        started.elapsed()
    );
    gw.shutdown().await;
}

/// Changing a daemon setting restarts a daemon Warmline started, with the new
/// environment, and the host's slots follow its new OLLAMA_NUM_PARALLEL.
#[tokio::test]
async fn a_changed_daemon_setting_restarts_a_started_daemon_with_it() {
    let (gw, upstream) = supervising(|_| {}).await;
    let first = running(&gw).await;
    let applied = gw
        .update_settings(
            &serde_json::json!({ "daemon": { "num_parallel": 3, "keep_alive": "1h" } }),
        )
        .await
        .expect("valid settings");
    assert!(
        applied.changed.iter().any(|c| c == "daemon.num_parallel"),
        "{applied:?}"
    );
    eventually("the restart", Duration::from_secs(20), async || {
        let status = gw.daemon_status();
        status.state == DaemonState::Running && status.pid.is_some_and(|p| p != first)
    })
    .await;
    assert!(!pid_alive(first), "the old daemon is gone");
    let env = &get_json(&format!("{upstream}/_sim/counters")).await["env"];
    assert_eq!(env["OLLAMA_NUM_PARALLEL"], "3", "{env}");
    assert_eq!(env["OLLAMA_KEEP_ALIVE"], "3600", "{env}");
    assert_eq!(gw.health().upstreams[0].parallel, 3);
    assert_eq!(
        gw.daemon_status().restarts,
        0,
        "a restart asked for is not a crash"
    );
    gw.shutdown().await;
}
