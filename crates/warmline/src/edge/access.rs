//! The credential check at the edge: the middleware that admits each request by
//! its plane and credential (see `auth`), renders a refusal in the client's API
//! shape, and logs every control-plane change once, with who made it.
//!
//! The decision itself is `auth::admit`, which knows nothing of responses; this
//! module only turns its answer into one.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::auth::{Identity, Plane, Tokens, admit};
use crate::error::Error;
use crate::wire::Flavor;
use crate::wire::peer::Peer;

/// A control-plane change let through, to be logged once with its outcome.
#[derive(Debug)]
pub struct ControlChange {
    method: http::Method,
    path: String,
    peer: String,
}

impl ControlChange {
    /// Logs the change with the status it was answered with.
    pub fn log(self, status: StatusCode) {
        let ControlChange { method, path, peer } = self;
        tracing::info!(
            by = "admin credential",
            %peer,
            status = status.as_u16(),
            "control: {method} {path}"
        );
    }
}

/// Admits a request by its plane and credential (see the module docs): records
/// its identity and removes a checked `Authorization` header before it goes any
/// further. A refusal is the answer to send (401 with `WWW-Authenticate`, or
/// 403). A control-plane request that may change something comes back as a
/// [`ControlChange`] to log once it is answered.
pub fn admit_request(
    tokens: &Tokens,
    request: &mut Request,
) -> Result<Option<ControlChange>, Box<Response>> {
    let identity = match admit(tokens, request) {
        Ok(None) => return Ok(None),
        Ok(Some(identity)) => identity,
        Err(err) => {
            let flavor = Flavor::of(request.uri().path());
            let mut response = Error::from(err).to_response(flavor);
            if response.status() == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return Err(Box::new(response));
        }
    };
    request.headers_mut().remove(header::AUTHORIZATION);
    request.extensions_mut().insert(Identity(identity));
    let changes = Plane::of(request.uri().path()) == Plane::Control
        && !matches!(*request.method(), http::Method::GET | http::Method::HEAD);
    if !changes {
        return Ok(None);
    }
    let peer = request
        .extensions()
        .get::<Peer>()
        .map(|p| p.addr.to_string())
        .unwrap_or_default();
    Ok(Some(ControlChange {
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        peer,
    }))
}

/// [`admit_request`] as a middleware on its own (the gateway's stack calls the
/// steps directly, in one layer).
pub async fn check(tokens: &Tokens, mut request: Request, next: Next) -> Response {
    match admit_request(tokens, &mut request) {
        Err(refused) => *refused,
        Ok(None) => next.run(request).await,
        Ok(Some(change)) => {
            let response = next.run(request).await;
            change.log(response.status());
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AdminKey, Token};
    use http::StatusCode;
    use std::sync::Arc;

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
            .insert(Peer::detached(peer.parse().expect("addr")));
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
}
