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
use http::header;

pub use crate::config::Token;

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
    File(#[from] crate::sys::os::FileError),
    #[error("admin.token_file: {0} holds no token (delete it to have a new one made)")]
    Empty(String),
}

impl AdminKey {
    /// Reads the credential from `path`, creating the file with a new random
    /// token (256 bits, hex) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<AdminKey, AdminKeyError> {
        let fresh = hex(&rand::random::<[u8; 32]>());
        let bytes = crate::sys::os::create_private_once(path, format!("{fresh}\n").as_bytes())?;
        crate::sys::os::check_private(path)?;
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
    let bytes = crate::sys::os::read_private(path).ok()??;
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
        .get::<crate::wire::peer::Peer>()
        .is_some_and(|peer| peer.addr.ip().to_canonical().is_loopback())
}

/// Who a request is (`Some` once a token was checked), or why it may not proceed.
pub(crate) fn admit(tokens: &Tokens, request: &Request) -> Result<Option<Arc<str>>, AuthError> {
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

#[cfg(test)]
mod tests;
