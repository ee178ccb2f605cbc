//! Bearer tokens: required off loopback, checked before anything else, never
//! forwarded, and identities never share cache entries.

use std::process::Command;
use std::time::Duration;

use warmline::auth::Token;
use warmline_tests::{AsAdmin as _, bin, gateway, simulator};

fn token(name: &str, secret: &str) -> Token {
    Token {
        name: name.into(),
        secret: secret.into(),
    }
}

async fn chat(url: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{url}/api/chat"))
        .body(r#"{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"temperature":0}}"#);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.expect("response")
}

#[tokio::test]
async fn requests_need_a_valid_token_and_identities_never_share_entries() {
    let sim = simulator().await;
    let gw = gateway(&[sim.url()], |c| {
        c.tokens = vec![token("alice", "alice-secret"), token("bob", "bob-secret")];
    })
    .await;
    let url = gw.url();

    let missing = chat(&url, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = missing.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .expect("message")
            .contains("bearer token"),
        "{body}"
    );
    assert_eq!(chat(&url, Some("nope")).await.status(), 401);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let purge = |client: &reqwest::Client| client.delete(format!("{url}/warmline/cache"));
    let without = purge(&client).send().await.expect("response");
    assert_eq!(
        without.status(),
        401,
        "the control plane needs the admin credential, even from this machine"
    );
    let with_data_token = purge(&client)
        .bearer_auth("alice-secret")
        .send()
        .await
        .expect("response");
    assert_eq!(
        with_data_token.status(),
        403,
        "a data-plane token does not open the control plane"
    );
    let admin = purge(&client).admin().send().await.expect("response");
    assert_eq!(admin.status(), 200, "the admin credential does");
    assert_eq!(
        sim.counters().generations.started,
        0,
        "nothing reached the upstream"
    );

    // Wait until the gateway knows the model digests (the first answers may bypass).
    let mut outcome = String::new();
    for _ in 0..200 {
        let response = chat(&url, Some("alice-secret")).await;
        assert_eq!(response.status(), 200);
        outcome = response.headers()["x-warmline-cache"]
            .to_str()
            .expect("ascii")
            .to_owned();
        if outcome == "hit" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outcome, "hit", "alice's repeat is a hit");
    let bob = chat(&url, Some("bob-secret")).await;
    assert_eq!(bob.status(), 200);
    assert_eq!(
        bob.headers()["x-warmline-cache"],
        "miss",
        "bob never gets alice's entry"
    );
}

#[test]
fn a_public_listener_without_a_token_is_refused_at_start() {
    let output = Command::new(bin("warmline"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("WARMLINE_TOKEN")
        .env_remove("WARMLINE_CONFIG")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bearer token is required"), "{stderr}");
}

/// Runs a real `warmline serve` with every kind of secret configured (bearer
/// tokens, an upstream URL password, a Redis password), at full log verbosity,
/// drives requests that log (good and bad tokens, an unreachable upstream, an
/// unreachable Redis, a reload) and checks that no secret reached the log or the
/// settings route.
#[tokio::test]
async fn secrets_never_appear_in_logs_or_settings() {
    let sim = simulator().await;
    let dead = warmline_tests::dead_url().await;
    let dead_port = dead.rsplit(':').next().expect("port").to_owned();
    let dir = warmline_tests::temp_dir("secrets");
    let file = dir.join("warmline.toml");
    let config = format!(
        r#"upstreams = ["{}", "http://operator:pw-SECRET-upstream@127.0.0.1:{dead_port}"]
[cache]
redis = "redis://:pw-SECRET-redis@127.0.0.1:{dead_port}"
[auth]
token = "tok-SECRET-default"
tokens = [{{ name = "alice", token = "tok-SECRET-alice" }}]
"#,
        sim.url()
    );
    std::fs::write(&file, &config).expect("config");
    let log_path = dir.join("warmline.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = std::process::Command::new(warmline_tests::bin("warmline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("RUST_LOG", "trace")
        .env_remove("WARMLINE_TOKEN")
        .env_remove("WARMLINE_UPSTREAMS")
        .env_remove("WARMLINE_REDIS");
    let mut daemon = warmline_tests::spawn_ready_logging(command, log.into());
    let url = daemon.url.clone();

    for bearer in [Some("tok-SECRET-alice"), Some("tok-SECRET-wrong"), None] {
        let _ = chat(&url, bearer).await;
    }
    // Cacheable requests reach for Redis once the model digests are known: wait
    // until the unreachable tier has been logged.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("redis cache tier")) {
        assert!(
            std::time::Instant::now() < deadline,
            "Redis was never tried"
        );
        let _ = chat(&url, Some("tok-SECRET-alice")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        let _ = reqwest::Client::new()
            .post(format!("{url}/api/generate"))
            .bearer_auth("tok-SECRET-default")
            .body(r#"{"model":"llama3.2","prompt":"hi","stream":false}"#)
            .send()
            .await;
    }
    let settings = reqwest::Client::new()
        .get(format!("{url}/warmline/settings"))
        .admin()
        .send()
        .await
        .expect("settings")
        .text()
        .await
        .expect("body");
    assert!(settings.contains("\"alice\""), "{settings}");
    std::fs::write(
        &file,
        config.replace("[cache]", "origins = [\"https://x.example\"]\n[cache]"),
    )
    .expect("config");
    let pid = daemon.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.terminate(Duration::from_secs(10));

    let logged = std::fs::read_to_string(&log_path).expect("log");
    for expected in [
        "operator:***@127.0.0.1",
        "redis://:***@127.0.0.1",
        "configuration applied",
    ] {
        assert!(
            logged.contains(expected),
            "the log names {expected:?}:\n{logged}"
        );
    }
    for (name, text) in [("log", &logged), ("settings", &settings)] {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains("SECRET")).collect();
        assert!(
            leaks.is_empty(),
            "secrets in the {name}:\n{}",
            leaks.join("\n")
        );
    }
}
