//! Browser `Origin` checks and CORS, answered by Warmline alone.
//!
//! Ollama refuses cross-origin requests from pages it does not know (a web page must
//! not be able to drive a local model server). Warmline applies the same allow-list —
//! Ollama's built-in origins plus the configured ones, the equivalent of
//! `OLLAMA_ORIGINS` — *before* forwarding, and never forwards the `Origin` header, so
//! the upstream's own check cannot disagree and CORS headers are produced exactly once.
//!
//! Sits outside the proxy in the request path: a refused origin never reaches an
//! upstream and an allowed preflight is answered without one.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::error::{Error, Flavor, OriginError};

/// Origins Ollama always allows (server/routes.go), whatever `OLLAMA_ORIGINS` says.
const BUILT_IN: &[&str] = &[
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://0.0.0.0",
    "https://0.0.0.0",
    "http://0.0.0.0:*",
    "https://0.0.0.0:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
];

/// Request headers a browser may send cross-origin (Ollama's list).
const ALLOW_HEADERS: &str = "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, \
OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, \
x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, \
x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, \
x-stainless-runtime-version, x-stainless-timeout";
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS";
/// How long a browser may cache a preflight answer (gin-contrib/cors's 12 h).
const MAX_AGE: &str = "43200";

/// The allow-list of browser origins.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allow_all: bool,
    patterns: Vec<String>,
}

impl OriginPolicy {
    /// Ollama's built-in origins plus `extra` patterns (`*` matches any run of
    /// characters; a lone `*` allows every origin).
    pub fn new(extra: &[String]) -> OriginPolicy {
        let allow_all = extra.iter().any(|o| o.trim() == "*");
        let patterns = BUILT_IN
            .iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().map(|s| s.trim().to_ascii_lowercase()))
            .collect();
        OriginPolicy {
            allow_all,
            patterns,
        }
    }

    /// Whether a request from `origin`, sent to `host`, may proceed.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if self.allow_all {
            return true;
        }
        let origin = origin.to_ascii_lowercase();
        // A page served by this very endpoint is same-origin in all but name.
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            if origin.strip_prefix("http://") == Some(host.as_str())
                || origin.strip_prefix("https://") == Some(host.as_str())
            {
                return true;
            }
        }
        self.patterns.iter().any(|p| glob_match(p, &origin))
    }
}

/// Matches `text` against a pattern where `*` stands for any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        // No `*` at all: an exact match.
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Middleware: refuses disallowed origins, answers preflights, strips `Origin` before
/// forwarding and adds CORS headers to the response of an allowed cross-origin request.
pub async fn layer(
    State(policy): State<std::sync::Arc<OriginPolicy>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(origin) = request.headers_mut().remove(header::ORIGIN) else {
        return next.run(request).await;
    };
    let flavor = Flavor::of(request.uri().path());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let allowed = origin.to_str().is_ok_and(|o| policy.allows(o, host));
    if !allowed {
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        return Error::from(OriginError::NotAllowed(shown)).to_response(flavor);
    }

    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        headers.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        return response;
    }

    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    strip_cors(headers);
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Removes any CORS headers an upstream produced: Warmline is the one that answers.
fn strip_cors(headers: &mut HeaderMap) {
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_origins_are_allowed() {
        let policy = OriginPolicy::new(&[]);
        for origin in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "tauri://localhost",
            "app://anything",
            "vscode-webview://abc",
        ] {
            assert!(policy.allows(origin, None), "{origin}");
        }
    }

    #[test]
    fn foreign_origins_are_refused_unless_configured() {
        let policy = OriginPolicy::new(&[]);
        assert!(!policy.allows("https://evil.example", None));
        assert!(!policy.allows("http://localhost.evil.example", None));
        assert!(!policy.allows("chrome-extension://abc", None));

        let policy = OriginPolicy::new(&[
            "chrome-extension://*".into(),
            "https://*.corp.example".into(),
        ]);
        assert!(policy.allows("chrome-extension://abc", None));
        assert!(policy.allows("https://app.corp.example", None));
        assert!(!policy.allows("https://corp.example.evil", None));

        assert!(OriginPolicy::new(&["*".into()]).allows("https://anything", None));
    }

    #[test]
    fn same_origin_as_the_host_is_allowed() {
        let policy = OriginPolicy::new(&[]);
        assert!(policy.allows("http://my-box.lan:11435", Some("my-box.lan:11435")));
        assert!(!policy.allows("http://my-box.lan:11435", Some("other:11435")));
    }

    #[test]
    fn glob_handles_several_stars() {
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXcYYb"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("abc", "abcd"));
    }
}
