//! Bearer-token authentication: who may use the gateway when it is reachable from
//! other machines.
//!
//! Ollama has no authentication; its maintainers point users at a reverse proxy.
//! Warmline is that proxy: with tokens configured, every request must carry
//! `Authorization: Bearer <token>` (an OpenAI client's API key is exactly that), or
//! it gets 401 in Ollama's error shape. The token is Warmline's secret, so the
//! header is not forwarded upstream. Each token has a name — an *identity* — and
//! the cache keeps identities apart (the name is the cache key's partition), so one
//! user can never be answered from another's entries.
//!
//! Listening on a non-loopback address without a token is refused at start (see
//! `config`): a local endpoint must not become an open door by accident. Without
//! tokens on loopback, every local client is trusted, as with Ollama.
//!
//! Tokens never appear in logs or `Debug` output.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, header};

use crate::error::{Error, Flavor};

/// A named bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("secret", &"***")
            .finish()
    }
}

/// The identity a request was authenticated as (a request extension).
#[derive(Debug, Clone)]
pub struct Identity(pub Arc<str>);

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this Warmline gateway requires a bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("the bearer token is not valid for this Warmline gateway")]
    Invalid,
}

/// The configured tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Tokens {
        Tokens { tokens }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The identity holding `secret`. Every token is compared in full, in time
    /// independent of where the bytes differ.
    fn identify(&self, secret: &[u8]) -> Option<&Token> {
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(token.secret.as_bytes(), secret) {
                found = Some(token);
            }
        }
        found
    }
}

/// A `/warmline/*` request from this machine.
fn is_local_admin(request: &Request) -> bool {
    request.uri().path().starts_with("/warmline/")
        && request
            .extensions()
            .get::<crate::server::Peer>()
            .is_some_and(|peer| peer.addr.ip().to_canonical().is_loopback())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: with tokens configured, admits only requests with a valid bearer
/// token, records their identity and removes the header before forwarding.
///
/// One exception: Warmline's own admin routes (`/warmline/*`) are also open to
/// loopback clients without a token, so the desktop app and the CLI on the same
/// machine can always manage a gateway that listens on the network.
pub async fn check(tokens: &Tokens, mut request: Request, next: Next) -> Response {
    if tokens.is_empty() || is_local_admin(&request) {
        return next.run(request).await;
    }
    let flavor = Flavor::of(request.uri().path());
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes())
        .map(|value| {
            value
                .strip_prefix(b"Bearer ")
                .or_else(|| value.strip_prefix(b"bearer "))
                .unwrap_or(value)
                .to_vec()
        });
    let identity = match presented {
        None => Err(AuthError::Missing),
        Some(secret) => tokens.identify(&secret).ok_or(AuthError::Invalid),
    };
    match identity {
        Ok(token) => {
            let identity = Identity(Arc::from(token.name.as_str()));
            request.headers_mut().remove(header::AUTHORIZATION);
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(err) => {
            let mut response = Error::from(err).to_response(flavor);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A router with `tokens` in front of one admin and one proxied route, asked
    /// from `peer` without a token.
    async fn status_without_token(path: &str, peer: &str) -> http::StatusCode {
        use tower::ServiceExt as _;
        let tokens = Arc::new(Tokens::new(vec![Token {
            name: "alice".into(),
            secret: "s3cret-a".into(),
        }]));
        let router = axum::Router::new()
            .route(
                "/warmline/cache",
                axum::routing::delete(|| async { "purged" }),
            )
            .route("/api/chat", axum::routing::post(|| async { "chat" }))
            .layer(axum::middleware::from_fn(move |request, next| {
                let tokens = Arc::clone(&tokens);
                async move { check(&tokens, request, next).await }
            }));
        let method = if path == "/api/chat" {
            "POST"
        } else {
            "DELETE"
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .expect("request");
        request
            .extensions_mut()
            .insert(crate::server::Peer::detached(peer.parse().expect("addr")));
        router.oneshot(request).await.expect("infallible").status()
    }

    #[tokio::test]
    async fn admin_routes_need_the_token_or_a_loopback_client() {
        use http::StatusCode;
        assert_eq!(
            status_without_token("/warmline/cache", "127.0.0.1:5000").await,
            StatusCode::OK
        );
        assert_eq!(
            status_without_token("/warmline/cache", "[::ffff:127.0.0.1]:5000").await,
            StatusCode::OK
        );
        assert_eq!(
            status_without_token("/warmline/cache", "192.168.1.20:5000").await,
            StatusCode::UNAUTHORIZED
        );
        // Ollama's routes need the token from everyone once tokens are configured.
        assert_eq!(
            status_without_token("/api/chat", "127.0.0.1:5000").await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn tokens_are_matched_in_full_and_never_shown() {
        let tokens = Tokens::new(vec![
            Token {
                name: "alice".into(),
                secret: "s3cret-a".into(),
            },
            Token {
                name: "bob".into(),
                secret: "s3cret-b".into(),
            },
        ]);
        assert_eq!(
            tokens.identify(b"s3cret-b").map(|t| t.name.as_str()),
            Some("bob")
        );
        assert!(tokens.identify(b"s3cret").is_none());
        assert!(tokens.identify(b"s3cret-bb").is_none());
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
