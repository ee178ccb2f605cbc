//! The real binaries as processes: ready lines, configuration precedence, graceful
//! shutdown with in-flight requests drained, and the simulator as `ollama serve`.

use std::process::Command;
use std::time::Duration;

use warmline_tests::{bin, sim_daemon, spawn_ready, warmline_daemon};

fn get_json(url: &str) -> serde_json::Value {
    let text = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", url])
        .output()
        .expect("curl runs");
    serde_json::from_slice(&text.stdout).unwrap_or_else(|e| {
        panic!(
            "{url}: not JSON ({e}): {}",
            String::from_utf8_lossy(&text.stdout)
        )
    })
}

#[test]
fn warmline_serve_prints_its_port_and_proxies_to_the_simulator() {
    let sim = sim_daemon(&[]);
    let gw = warmline_daemon(&sim.url, &[]);
    let tags = get_json(&format!("{}/api/tags", gw.url));
    assert!(
        tags["models"].as_array().is_some_and(|m| !m.is_empty()),
        "{tags}"
    );
    let health = get_json(&format!("{}/warmline/health", gw.url));
    assert_eq!(health["upstreams"][0]["url"], sim.url.as_str());
    let stats = get_json(&format!("{}/warmline/stats", gw.url));
    assert_eq!(stats["routes"]["tags"]["count"], 1);
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_stream_before_exiting() {
    let sim = sim_daemon(&[("SIM_TOKEN_DELAY_MS", "60"), ("SIM_TOKENS", "12")]);
    let mut gw = warmline_daemon(&sim.url, &[]);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut response = client
        .post(format!("{}/api/generate", gw.url))
        .body(r#"{"model":"llama3.2","prompt":"a long answer","options":{"temperature":0}}"#)
        .send()
        .await
        .expect("response");
    let mut body = response
        .chunk()
        .await
        .expect("chunk")
        .expect("first chunk")
        .to_vec();

    let pid = gw.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    while let Some(chunk) = response
        .chunk()
        .await
        .expect("stream completes despite SIGTERM")
    {
        body.extend_from_slice(&chunk);
    }
    let last = String::from_utf8_lossy(&body)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let last: serde_json::Value = serde_json::from_str(&last).expect("json line");
    assert_eq!(last["done"], true, "the stream ran to its final chunk");

    let status = gw
        .terminate(Duration::from_secs(10))
        .expect("exits after draining");
    assert!(status.success(), "{status:?}");
}

#[test]
fn environment_is_used_and_flags_win() {
    let sim = sim_daemon(&[]);
    // WARMLINE_UPSTREAMS names a dead upstream; the --upstream flag must win.
    let mut command = Command::new(bin("warmline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &sim.url])
        .env("WARMLINE_UPSTREAMS", "http://127.0.0.1:9")
        .env_remove("WARMLINE_CONFIG");
    let gw = spawn_ready(command);
    let health = get_json(&format!("{}/warmline/health", gw.url));
    assert_eq!(health["upstreams"].as_array().map(Vec::len), Some(1));
    assert_eq!(health["upstreams"][0]["url"], sim.url.as_str());
}

#[test]
fn invalid_config_file_is_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("warmline-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("warmline.toml");
    std::fs::write(&file, "[timeouts]\nconnect = \"whenever\"\n").expect("write");
    let output = Command::new(bin("warmline"))
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("timeouts.connect"), "{stderr}");

    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nupstream = \"typo\"\n").expect("write");
    let output = Command::new(bin("warmline"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("upstream"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_simulator_answers_as_ollama_serve_through_a_link_named_ollama() {
    let dir = std::env::temp_dir().join(format!("warmline-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let link = dir.join("ollama");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(bin("ollama-sim"), &link).expect("symlink");
    let mut command = Command::new(&link);
    command
        .arg("serve")
        .env("OLLAMA_HOST", "127.0.0.1:0")
        .env("SIM_QUIET", "1")
        .env("OLLAMA_NUM_PARALLEL", "3");
    let sim = warmline_tests::spawn_logged(command);
    let version = get_json(&format!("{}/api/version", sim.url));
    assert!(version["version"].is_string(), "{version}");
    let counters = get_json(&format!("{}/_sim/counters", sim.url));
    assert_eq!(counters["env"]["OLLAMA_NUM_PARALLEL"], "3", "{counters}");
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CLI manages a local gateway with nothing to set up: it finds the admin
/// credential the gateway made; a wrong one is refused with the reason.
#[test]
fn the_cli_manages_a_local_gateway_without_setup() {
    let sim = sim_daemon(&[]);
    let gw = warmline_daemon(&sim.url, &[]);
    let cli = |args: &[&str], admin: Option<&str>| {
        let mut command = Command::new(bin("warmline"));
        command.args(args).args(["--url", &gw.url]);
        command
            .env_remove("WARMLINE_ADMIN_TOKEN")
            .env_remove("WARMLINE_TOKEN");
        if let Some(token) = admin {
            command.env("WARMLINE_ADMIN_TOKEN", token);
        }
        let output = command.output().expect("cli runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for args in [
        &["status"][..],
        &["models"],
        &["warm", "llama3.2"],
        &["cool", "llama3.2"],
        &["daemon", "status"],
    ] {
        let (ok, out, err) = cli(args, None);
        assert!(ok, "warmline {args:?}: {out}{err}");
    }
    let (_, out, _) = cli(&["models", "--json"], None);
    assert!(out.contains("llama3.2:latest"), "{out}");
    let (ok, _, err) = cli(&["models"], Some("not-the-token"));
    assert!(!ok);
    assert!(
        err.contains("401") && err.contains("admin credential"),
        "{err}"
    );
}
