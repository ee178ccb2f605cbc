//! Bearer tokens: required off loopback, checked before anything else, never
//! forwarded, and identities never share cache entries.

use std::process::Command;
use std::time::Duration;

use warmline::auth::Token;
use warmline_tests::{bin, gateway, simulator};

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
    let admin = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .delete(format!("{url}/warmline/cache"))
        .send()
        .await
        .expect("response");
    assert_eq!(
        admin.status(),
        401,
        "state-changing admin routes are guarded too"
    );
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
