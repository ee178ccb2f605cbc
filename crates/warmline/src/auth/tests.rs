use super::*;
use http::StatusCode;

const ADMIN: &str = "the-admin-secret";

/// A router with data token `s3cret-a` (or none) and the admin credential in
/// front of a control, a monitoring and a proxied route; asked from `peer`
/// with `bearer` (if any).
async fn status(path: &str, peer: &str, bearer: Option<&str>, data_tokens: bool) -> StatusCode {
    use tower::ServiceExt as _;
    let data = if data_tokens {
        vec![Token {
            name: "alice".into(),
            secret: "s3cret-a".into(),
        }]
    } else {
        Vec::new()
    };
    let tokens = Arc::new(Tokens::new(data, Some(AdminKey::from_secret(ADMIN))));
    let router = axum::Router::new()
        .route(
            "/warmline/cache",
            axum::routing::delete(|| async { "purged" }),
        )
        .route("/warmline/health", axum::routing::get(|| async { "ok" }))
        .route("/api/chat", axum::routing::post(|| async { "chat" }))
        .layer(axum::middleware::from_fn(move |request, next| {
            let tokens = Arc::clone(&tokens);
            async move { check(&tokens, request, next).await }
        }));
    let method = match path {
        "/api/chat" => "POST",
        "/warmline/health" => "GET",
        _ => "DELETE",
    };
    let mut request = http::Request::builder().method(method).uri(path);
    if let Some(bearer) = bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    let mut request = request.body(axum::body::Body::empty()).expect("request");
    request
        .extensions_mut()
        .insert(crate::wire::peer::Peer::detached(peer.parse().expect("addr")));
    router.oneshot(request).await.expect("infallible").status()
}

const LOCAL: &str = "127.0.0.1:5000";
const MAPPED: &str = "[::ffff:127.0.0.1]:5000";
const LAN: &str = "192.168.1.20:5000";

#[tokio::test]
async fn the_control_plane_needs_the_admin_credential_from_every_peer() {
    for data_tokens in [false, true] {
        for peer in [LOCAL, MAPPED, LAN] {
            let without = status("/warmline/cache", peer, None, data_tokens).await;
            assert_eq!(without, StatusCode::UNAUTHORIZED, "{peer} {data_tokens}");
            let with = status("/warmline/cache", peer, Some(ADMIN), data_tokens).await;
            assert_eq!(with, StatusCode::OK, "{peer} {data_tokens}");
            let wrong = status("/warmline/cache", peer, Some("guess"), data_tokens).await;
            assert_eq!(wrong, StatusCode::UNAUTHORIZED, "{peer} {data_tokens}");
        }
    }
    // A data-plane token never opens the control plane.
    assert_eq!(
        status("/warmline/cache", LOCAL, Some("s3cret-a"), true).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn monitoring_is_open_on_loopback_and_needs_a_token_elsewhere() {
    assert_eq!(
        status("/warmline/health", LOCAL, None, true).await,
        StatusCode::OK
    );
    assert_eq!(
        status("/warmline/health", LAN, None, true).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status("/warmline/health", LAN, Some("s3cret-a"), true).await,
        StatusCode::OK
    );
    assert_eq!(
        status("/warmline/health", LAN, Some(ADMIN), true).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_data_plane_is_as_open_as_ollama_without_tokens() {
    assert_eq!(
        status("/api/chat", LOCAL, None, false).await,
        StatusCode::OK
    );
    // With tokens, everyone needs one; the admin credential is one too.
    assert_eq!(
        status("/api/chat", LOCAL, None, true).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status("/api/chat", LAN, Some("s3cret-a"), true).await,
        StatusCode::OK
    );
    assert_eq!(
        status("/api/chat", LAN, Some(ADMIN), true).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_an_admin_credential_the_control_plane_is_closed() {
    use tower::ServiceExt as _;
    let tokens = Arc::new(Tokens::new(Vec::new(), None));
    let router = axum::Router::new()
        .route(
            "/warmline/settings",
            axum::routing::put(|| async { "changed" }),
        )
        .layer(axum::middleware::from_fn(move |request, next| {
            let tokens = Arc::clone(&tokens);
            async move { check(&tokens, request, next).await }
        }));
    let request = http::Request::builder()
        .method("PUT")
        .uri("/warmline/settings")
        .header("authorization", "Bearer anything")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[test]
fn planes_by_path() {
    assert_eq!(Plane::of("/api/chat"), Plane::Data);
    assert_eq!(Plane::of("/v1/models"), Plane::Data);
    assert_eq!(Plane::of("/warmlinex"), Plane::Data);
    assert_eq!(Plane::of("/metrics"), Plane::Monitoring);
    assert_eq!(Plane::of("/warmline/health"), Plane::Monitoring);
    assert_eq!(Plane::of("/warmline/charts/latency.svg"), Plane::Monitoring);
    for path in [
        "/warmline/settings",
        "/warmline/logs",
        "/warmline/requests",
        "/warmline/daemon",
        "/warmline/models/warm",
        "/warmline/cache",
        "/warmline/health/x",
        "/warmline/",
    ] {
        assert_eq!(Plane::of(path), Plane::Control, "{path}");
    }
}

#[test]
fn tokens_are_matched_in_full_and_never_shown() {
    let tokens = Tokens::new(
        vec![
            Token {
                name: "alice".into(),
                secret: "s3cret-a".into(),
            },
            Token {
                name: "bob".into(),
                secret: "s3cret-b".into(),
            },
        ],
        Some(AdminKey::from_secret(ADMIN)),
    );
    let name = |s: &[u8]| tokens.identify(&digest(s)).map(|t| t.name.clone());
    assert_eq!(name(b"s3cret-b").as_deref(), Some("bob"));
    assert!(name(b"s3cret").is_none());
    assert!(name(b"s3cret-bb").is_none());
    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains(ADMIN),
        "{shown}"
    );
}

#[test]
fn the_admin_token_file_is_made_once_and_read_back() {
    let dir = std::env::temp_dir().join(format!("warmline-admin-{}", std::process::id()));
    let path = dir.join("admin-token");
    let made = AdminKey::load_or_create(&path).expect("create");
    let token = read_admin_token(&path).expect("token");
    assert_eq!(token.len(), 64);
    assert!(made.matches(&digest(token.as_bytes())));
    let again = AdminKey::load_or_create(&path).expect("read");
    assert!(again.matches(&digest(token.as_bytes())), "the same token");
    let _ = std::fs::remove_dir_all(dir);
}
