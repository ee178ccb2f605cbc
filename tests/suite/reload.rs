//! Live configuration: SIGHUP and `POST /warmline/reload` re-read the file, `PUT
//! /warmline/settings` patches the running settings; each applies whole or not at
//! all, and requests already running finish under the configuration they began
//! with.

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use warmline::ConfigSource;
use warmline_tests::{
    AsAdmin as _, Daemon, bin, eventually, gateway, simulator, simulator_with, temp_dir,
};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

fn write(path: &std::path::Path, text: &str) {
    let mut file = std::fs::File::create(path).expect("create config");
    file.write_all(text.as_bytes()).expect("write config");
}

async fn chat_status(url: &str) -> u16 {
    client()
        .post(format!("{url}/api/chat"))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}"#)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn sighup_rereads_the_file_and_an_invalid_one_changes_nothing() {
    let (a, b) = (simulator().await, simulator().await);
    let dir = temp_dir("reload");
    let file = dir.join("warmline.toml");
    write(&file, &format!("upstreams = [\"{}\"]\n", a.url()));
    let mut command = Command::new(bin("warmline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("RUST_LOG", "warmline=info")
        .env_remove("WARMLINE_LISTEN")
        .env_remove("WARMLINE_UPSTREAMS");
    let daemon = warmline_tests::spawn_ready(command);
    let url = daemon.url.clone();
    assert_eq!(chat_status(&url).await, 200);
    assert_eq!(a.counters().generations.started, 1);

    write(&file, &format!("upstreams = [\"{}\"]\n", b.url()));
    hup(&daemon);
    eventually(
        "traffic to move to the new upstream",
        Duration::from_secs(10),
        async || chat_status(&url).await == 200 && b.counters().generations.started > 0,
    )
    .await;

    // An invalid file: refused, logged with the field, and the old settings stay.
    write(
        &file,
        &format!(
            "upstreams = [\"{}\"]\n[timeouts]\nconnect = \"soon\"\n",
            a.url()
        ),
    );
    hup(&daemon);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.counters().generations.started;
    assert_eq!(chat_status(&url).await, 200);
    assert_eq!(b.counters().generations.started, before + 1, "still on b");
    let settings: serde_json::Value = client()
        .get(format!("{url}/warmline/settings"))
        .admin()
        .send()
        .await
        .expect("settings")
        .json()
        .await
        .expect("json");
    assert_eq!(settings["timeouts"]["connect"], "500ms");
    assert_eq!(settings["upstreams"][0], b.url().as_str());
}

fn hup(daemon: &Daemon) {
    let pid = daemon.child.id().to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn the_reload_route_names_what_changed_or_the_invalid_field() {
    let sim = simulator().await;
    let dir = temp_dir("reload");
    let file = dir.join("warmline.toml");
    write(&file, &format!("upstreams = [\"{}\"]\n", sim.url()));
    let gw = gateway(&[sim.url()], |_| {}).await;
    gw.set_source(ConfigSource {
        file: Some(file.clone()),
        optional: false,
        overrides: warmline::Overrides {
            listen: Some(gw.local_addr().to_string()),
            ..warmline::Overrides::default()
        },
    });
    let reload = async || {
        let response = client()
            .post(format!("{}/warmline/reload", gw.url()))
            .admin()
            .send()
            .await
            .expect("reload");
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().await.expect("json"),
        )
    };

    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body}");
    // The in-memory config listened on 127.0.0.1:11435 by default; the source
    // names the address actually bound, so only that field differs.
    assert_eq!(body["changed"], serde_json::json!(["listen"]), "{body}");

    write(
        &file,
        &format!(
            "upstreams = [\"{}\"]\n[cache]\nsampled = true\n[timeouts]\nconnect = \"2s\"\n",
            sim.url()
        ),
    );
    let (status, body) = reload().await;
    assert_eq!(status, 200);
    assert_eq!(
        body["changed"],
        serde_json::json!(["cache.sampled", "timeouts.connect"])
    );
    assert_eq!(
        gw.config().timeouts.connect,
        Duration::from_secs(2),
        "applied to the running gateway"
    );

    write(&file, "[limits]\nmax_body = \"lots\"\n");
    let (status, body) = reload().await;
    assert_eq!(status, 400);
    let message = body["error"].as_str().expect("Ollama's error shape");
    assert!(message.starts_with("limits.max_body: "), "{message}");
    assert_eq!(
        gw.config().timeouts.connect,
        Duration::from_secs(2),
        "unchanged"
    );

    write(&file, "[timeouts]\nconect = \"1s\"\n");
    let (status, body) = reload().await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("message").contains("conect"));
}

#[tokio::test]
async fn settings_changes_apply_live_and_invalid_ones_are_refused() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |_| {}).await;
    let put = async |url: &str, patch: serde_json::Value| {
        let response = client()
            .put(format!("{url}/warmline/settings"))
            .admin()
            .json(&patch)
            .send()
            .await
            .expect("put");
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().await.expect("json"),
        )
    };
    let url = gw.url();

    let (status, body) = put(&url, serde_json::json!({ "cache": { "enabled": false } })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], serde_json::json!(["cache.enabled"]));
    let response = client()
        .post(format!("{url}/api/embed"))
        .body(r#"{"model":"nomic-embed-text","input":"x"}"#)
        .send()
        .await
        .expect("embed");
    assert_eq!(response.headers()["x-warmline-cache"], "bypass");

    let (status, body) = put(&url, serde_json::json!({ "rate_limit": { "burst": 0 } })).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "rate_limit.burst: must be at least 1");
    let (status, body) = put(&url, serde_json::json!({ "auth": { "token": "x" } })).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = put(&url, serde_json::json!("not an object")).await;
    assert_eq!(status, 400);

    // A new listen address: the new one serves, the old one stops accepting.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let (status, body) = put(&url, serde_json::json!({ "listen": free.to_string() })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["listen"], format!("http://{free}"));
    assert_eq!(gw.url(), format!("http://{free}"));
    assert_eq!(chat_status(&gw.url()).await, 200);
    eventually(
        "the old listener to close",
        Duration::from_secs(10),
        async || std::net::TcpStream::connect(gw_old_addr(&url)).is_err(),
    )
    .await;
}

fn gw_old_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().expect("addr")
}

#[tokio::test]
async fn a_stream_running_across_a_reload_finishes_under_its_old_settings() {
    let mut slow = ollama_sim::SimConfig::default();
    slow.knobs.token_delay = Duration::from_millis(40);
    slow.knobs.tokens_per_reply = 20;
    let (a, b) = (simulator_with(slow).await, simulator().await);
    let gw = gateway(&[a.url()], |_| {}).await;
    let mut stream = client()
        .post(format!("{}/api/chat", gw.url()))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .expect("stream starts");
    let first = stream.chunk().await.expect("chunk").expect("first chunk");
    assert!(!first.is_empty());

    let applied = gw
        .update_settings(&serde_json::json!({ "upstreams": [b.url()] }))
        .await
        .expect("applied");
    assert_eq!(applied.changed, ["upstreams"]);

    let mut rest = Vec::new();
    while let Some(chunk) = stream.chunk().await.expect("chunk") {
        rest.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(rest).expect("utf8");
    assert!(
        text.trim_end().ends_with('}') && text.contains("\"done\":true"),
        "{text}"
    );
    assert_eq!(chat_status(&gw.url()).await, 200);
    assert_eq!(b.counters().generations.started, 1, "new requests go to b");
    assert_eq!(
        a.counters().generations.completed,
        1,
        "the old stream finished on a"
    );
}
