//! Who may use the gateway: the data plane's bearer tokens and the control
//! plane's admin credential.
//!
//! **Three planes.** Ollama's own API (`/api/*`, `/v1/*` and anything else Warmline
//! forwards) is the *data plane*: as open as Ollama is (every local client on
//! loopback), or, with `[auth]` tokens configured, open to their holders.
//! Monitoring (`/warmline/health`, `/warmline/stats`, `/warmline/history`,
//! `/warmline/charts/*`, `/metrics`) shows numbers only, never a prompt, a log line
//! or a setting: readable without credentials from loopback, with a token from
//! elsewhere. Everything else under `/warmline/` is the *control plane*: settings,
//! reload, the daemon, warm models, the cache, logs and recent requests. Changing
//! a setting can make Warmline start a program, so the control plane needs the
//! **admin credential** from every peer, loopback included: a web page in the
//! user's browser and another user of the same machine reach 127.0.0.1 too, and
//! neither can read the credential.
//!
//! The credential is a random token in a file only the user can read
//! (`$XDG_STATE_HOME/warmline/admin-token`, mode 0600, created on first start;
//! `admin.token_file`), the way Jupyter and Docker keep theirs. The `warmline`
//! CLI reads the same file, so a user on the same account notices nothing; the
//! desktop app calls the gateway in-process and needs no credential at all. A
//! data-plane token never opens the control plane.
//!
//! Tokens are compared by their BLAKE3 digests, in constant time, so neither a
//! token's content nor its length shows in how long a refusal takes. The
//! `Authorization` header is Warmline's and is not forwarded upstream once a token
//! was checked. Tokens never appear in logs or `Debug` output.

use std::path::Path;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::error::{Error, Flavor};

/// A named bearer token of the data plane.
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

/// The identity of requests made with the admin credential.
pub const ADMIN_IDENTITY: &str = "admin";

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this Warmline gateway requires a bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("the bearer token is not valid for this Warmline gateway")]
    Invalid,
    #[error(
        "Warmline's control plane needs the admin credential: send Authorization: Bearer \
         <token> with the token from {0} (the warmline CLI does this by itself)"
    )]
    AdminMissing(String),
    #[error("the admin credential is not valid for this Warmline gateway")]
    AdminInvalid,
    #[error("a data-plane token does not open Warmline's control plane: use the admin credential")]
    NotAdmin,
    #[error(
        "Warmline's control plane is closed to HTTP on this gateway (admin.token_file is \
         empty): change it from the app or the config file"
    )]
    ControlClosed,
    #[error(
        "{0} can only be changed in the config file (it runs a program or writes a file as \
         the user running Warmline)"
    )]
    FileOnly(String),
}

impl AuthError {
    /// 401 where a (better) credential would help, 403 where none would.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing
            | AuthError::Invalid
            | AuthError::AdminMissing(_)
            | AuthError::AdminInvalid => StatusCode::UNAUTHORIZED,
            AuthError::NotAdmin | AuthError::ControlClosed | AuthError::FileOnly(_) => {
                StatusCode::FORBIDDEN
            }
        }
    }
}

/// Which part of Warmline's surface a path belongs to (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Ollama's API, forwarded.
    Data,
    /// Numbers for monitoring: open on loopback.
    Monitoring,
    /// Settings, daemon, models, cache, logs: the admin credential only.
    Control,
}

impl Plane {
    pub fn of(path: &str) -> Plane {
        if path == "/metrics" {
            return Plane::Monitoring;
        }
        let Some(rest) = path.strip_prefix("/warmline/") else {
            return Plane::Data;
        };
        match rest {
            "health" | "ready" | "stats" | "history" => Plane::Monitoring,
            _ if rest.starts_with("charts/") => Plane::Monitoring,
            _ => Plane::Control,
        }
    }
}

/// The digest tokens are compared by: fixed length, so the comparison takes the
/// same time whatever was presented.
fn digest(secret: &[u8]) -> [u8; 32] {
    *blake3::hash(secret).as_bytes()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The control plane's credential (see the module docs).
#[derive(Clone)]
pub struct AdminKey {
    digest: [u8; 32],
    /// Where it was read from, for error messages.
    file: Arc<str>,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey")
            .field("file", &self.file)
            .field("secret", &"***")
            .finish()
    }
}

/// Why the admin credential could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AdminKeyError {
    #[error("admin.token_file: {0}")]
    File(#[from] crate::os::FileError),
    #[error("admin.token_file: {0} holds no token (delete it to have a new one made)")]
    Empty(String),
}

impl AdminKey {
    /// Reads the credential from `path`, creating the file with a new random
    /// token (256 bits, hex) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<AdminKey, AdminKeyError> {
        let fresh = hex(&rand::random::<[u8; 32]>());
        let bytes = crate::os::create_private_once(path, format!("{fresh}\n").as_bytes())?;
        crate::os::check_private(path)?;
        let secret = String::from_utf8_lossy(&bytes).trim().to_owned();
        if secret.is_empty() {
            return Err(AdminKeyError::Empty(path.display().to_string()));
        }
        Ok(AdminKey {
            digest: digest(secret.as_bytes()),
            file: Arc::from(path.display().to_string()),
        })
    }

    /// A credential for a secret held in memory (tests, embedders).
    pub fn from_secret(secret: &str) -> AdminKey {
        AdminKey {
            digest: digest(secret.as_bytes()),
            file: Arc::from("memory"),
        }
    }

    fn matches(&self, presented: &[u8; 32]) -> bool {
        same(&self.digest, presented)
    }
}

/// Reads the admin token a client should send, from `path` (no link followed);
/// `None` when there is no such file or it cannot be read.
pub fn read_admin_token(path: &Path) -> Option<String> {
    let bytes = crate::os::read_private(path).ok()??;
    let token = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!token.is_empty()).then_some(token)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The configured data-plane tokens and the admin credential.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<(Token, [u8; 32])>,
    admin: Option<AdminKey>,
}

impl Tokens {
    pub fn new(tokens: Vec<Token>, admin: Option<AdminKey>) -> Tokens {
        Tokens {
            tokens: tokens
                .into_iter()
                .map(|t| {
                    let d = digest(t.secret.as_bytes());
                    (t, d)
                })
                .collect(),
            admin,
        }
    }

    /// Whether data-plane tokens are configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The data-plane identity holding `presented` (its digest). Every token is
    /// compared, each in constant time.
    fn identify(&self, presented: &[u8; 32]) -> Option<&Token> {
        let mut found = None;
        for (token, digest) in &self.tokens {
            if same(digest, presented) {
                found = Some(token);
            }
        }
        found
    }

    fn is_admin(&self, presented: &[u8; 32]) -> bool {
        self.admin.as_ref().is_some_and(|a| a.matches(presented))
    }
}

/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Option<&[u8]> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes())
        .map(|value| {
            value
                .strip_prefix(b"Bearer ")
                .or_else(|| value.strip_prefix(b"bearer "))
                .unwrap_or(value)
        })
}

fn from_loopback(request: &Request) -> bool {
    request
        .extensions()
        .get::<crate::server::Peer>()
        .is_some_and(|peer| peer.addr.ip().to_canonical().is_loopback())
}

/// Who a request is (`Some` once a token was checked), or why it may not proceed.
fn admit(tokens: &Tokens, request: &Request) -> Result<Option<Arc<str>>, AuthError> {
    let presented = || bearer(request).map(digest);
    match Plane::of(request.uri().path()) {
        Plane::Control => {
            let Some(admin) = &tokens.admin else {
                return Err(AuthError::ControlClosed);
            };
            match presented() {
                None => Err(AuthError::AdminMissing(admin.file.to_string())),
                Some(p) if admin.matches(&p) => Ok(Some(Arc::from(ADMIN_IDENTITY))),
                Some(p) if tokens.identify(&p).is_some() => Err(AuthError::NotAdmin),
                Some(_) => Err(AuthError::AdminInvalid),
            }
        }
        Plane::Monitoring if tokens.is_empty() || from_loopback(request) => Ok(None),
        Plane::Data if tokens.is_empty() => Ok(None),
        Plane::Monitoring | Plane::Data => match presented() {
            None => Err(AuthError::Missing),
            Some(p) if tokens.is_admin(&p) => Ok(Some(Arc::from(ADMIN_IDENTITY))),
            Some(p) => tokens
                .identify(&p)
                .map(|t| Some(Arc::from(t.name.as_str())))
                .ok_or(AuthError::Invalid),
        },
    }
}

/// Middleware: admits a request by its plane and credential (see the module
/// docs), records its identity, and removes a checked `Authorization` header
/// before forwarding. Every control-plane request that may change something is
/// logged once, with who made it.
pub async fn check(tokens: &Tokens, mut request: Request, next: Next) -> Response {
    let identity = match admit(tokens, &request) {
        Ok(None) => return next.run(request).await,
        Ok(Some(identity)) => identity,
        Err(err) => {
            let flavor = Flavor::of(request.uri().path());
            let mut response = Error::from(err).to_response(flavor);
            if response.status() == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return response;
        }
    };
    request.headers_mut().remove(header::AUTHORIZATION);
    request.extensions_mut().insert(Identity(identity));
    let changes = Plane::of(request.uri().path()) == Plane::Control
        && !matches!(*request.method(), http::Method::GET | http::Method::HEAD);
    if !changes {
        return next.run(request).await;
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let peer = request
        .extensions()
        .get::<crate::server::Peer>()
        .map(|p| p.addr.to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    tracing::info!(
        by = "admin credential",
        %peer,
        status = response.status().as_u16(),
        "control: {method} {path}"
    );
    response
}

#[cfg(test)]
mod tests {
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
            .insert(crate::server::Peer::detached(peer.parse().expect("addr")));
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
}
