//! Browser `Origin` checks, CORS, and the `Host` check, answered by Warmline alone.
//!
//! **Host** (DNS-rebinding protection): a request whose `Host` is not a name of this
//! machine is refused with 403 — otherwise a web page on `evil.example`, re-pointed
//! at 127.0.0.1 by its DNS, could drive the local models. Allowed: no `Host`,
//! `localhost`, names ending in `.localhost`, `.local` or `.internal`, the machine's
//! hostname, IP literals that are loopback, private (RFC 1918, ULA), link-local or
//! unspecified, the listen address itself, and — when listening on every interface
//! (`0.0.0.0`, `::`) — the addresses of the machine's interfaces. Ollama turns the
//! check off for a non-loopback listen address; Warmline keeps it on, because a
//! browser on the same machine reaches `0.0.0.0` through 127.0.0.1 too. A client
//! that names this machine by another DNS name must use an address instead.
//!
//! **The control plane** (see `auth`) takes no browser requests at all unless an
//! origin is listed in `admin.origins`: any request to a control route that carries
//! an `Origin`, and any preflight for one, is refused with 403 — the built-in
//! origins (`http://localhost:*` and the like) and `origins`/`OLLAMA_ORIGINS` admit
//! a page to Ollama's API only.
//!
//! Ollama refuses cross-origin requests from pages it does not know (a web page must
//! not be able to drive a local model server). Warmline applies the same allow-list —
//! Ollama's built-in origins plus the configured ones, the equivalent of
//! `OLLAMA_ORIGINS` — *before* forwarding, and never forwards the `Origin` header, so
//! the upstream's own check cannot disagree and CORS headers are produced exactly once.
//!
//! Sits outside the proxy in the request path: a refused origin never reaches an
//! upstream and an allowed preflight is answered without one.
//!
//! ```text
//!   Host not this machine ─────────────────▶ 403 (host_forbidden)
//!   no Origin ─────────────────────────────▶ next layer, untouched
//!   Origin refused (API or control list) ──▶ 403 (origin_forbidden)
//!   OPTIONS + Access-Control-Request-Method ▶ 204 with the CORS answer
//!   otherwise ─── Origin removed ──▶ next layer ──▶ upstream CORS headers replaced
//! ```
//!
//! The [`OriginPolicy`] is built from the configuration when the gateway starts
//! or reloads, and is immutable afterwards; [`check`] reads it on every request
//! without a lock. Matching is ASCII case-insensitive (origins and hosts are
//! lower-cased first), and a header that is not valid ASCII text is refused.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::error::{Error, OriginError};
use crate::wire::Flavor;

/// Origins Ollama always allows (server/routes.go), whatever `OLLAMA_ORIGINS` says.
/// Patterns in the [`glob_match`] syntax; `:*` stands for any port.
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
/// Response headers a page may read cross-origin: Warmline's own.
const EXPOSE_HEADERS: &str =
    "x-warmline-cache, cache-status, x-warmline-cold-start, server-timing, age, retry-after";
/// Methods a preflight may ask for: every method Ollama's API uses.
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS";
/// How long a browser may cache a preflight answer (gin-contrib/cors's 12 h).
const MAX_AGE: &str = "43200";

/// The allow-list of browser origins, and the `Host` check.
///
/// Built with [`OriginPolicy::new`] and the `with_*` methods, then shared
/// read-only. The `allows*` methods are pure: they never fail or panic, and a
/// value they cannot parse is simply not allowed (except an empty `Host`).
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// A lone `*` was configured: every origin may use the API (not the control
    /// plane, which never takes `*`).
    allow_all: bool,
    /// [`BUILT_IN`] followed by the configured patterns, lower case.
    patterns: Vec<String>,
    /// Origins allowed on the control plane (`admin.origins`; none by default).
    control: Vec<String>,
    /// `Some` while the `Host` check is on.
    host_check: Option<HostCheck>,
}

/// What the `Host` check accepts besides local names and private addresses.
#[derive(Debug, Clone)]
struct HostCheck {
    /// The machine's hostname, lower case.
    hostname: String,
    /// The listen address and, listening on every interface, the interfaces' own.
    addresses: Vec<std::net::IpAddr>,
}

impl OriginPolicy {
    /// Ollama's built-in origins plus `extra` patterns (`*` matches any run of
    /// characters; a lone `*` allows every origin). Patterns are trimmed and
    /// lower-cased. The control plane admits no origin and the `Host` check is
    /// off until [`OriginPolicy::with_control_origins`] and
    /// [`OriginPolicy::with_host_check`] say otherwise.
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
            control: Vec::new(),
            host_check: None,
        }
    }

    /// The origins the control plane admits (`admin.origins`), replacing any set
    /// before. Empty entries and a lone `*` are dropped: the control plane can be
    /// opened to named origins only, never to every page.
    pub fn with_control_origins(mut self, origins: &[String]) -> OriginPolicy {
        self.control = origins
            .iter()
            .map(|o| o.trim().to_ascii_lowercase())
            .filter(|o| !o.is_empty() && o != "*")
            .collect();
        self
    }

    /// Turns the `Host` check on for a gateway listening on `listen`. Reads the
    /// machine's hostname and, for an unspecified listen address, the interfaces'
    /// addresses, once, now: an address added to an interface later is not
    /// accepted until the policy is rebuilt (a reload).
    pub fn with_host_check(mut self, listen: std::net::SocketAddr) -> OriginPolicy {
        let mut addresses = vec![listen.ip().to_canonical()];
        if listen.ip().is_unspecified() {
            addresses.extend(interface_addresses());
        }
        self.host_check = Some(HostCheck {
            hostname: machine_hostname(),
            addresses,
        });
        self
    }

    /// Turns the `Host` check off (a policy for tests and embedders).
    pub fn without_host_check(mut self) -> OriginPolicy {
        self.host_check = None;
        self
    }

    /// Whether a control-plane request from `origin` may proceed: only if it
    /// matches one of `admin.origins` (the built-in origins do not count here).
    pub fn allows_control(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.control.iter().any(|p| glob_match(p, &origin))
    }

    /// Whether a request carrying `Host: host` may proceed (see the module docs
    /// for what names this machine). Always true while the check is off. The port
    /// is ignored; IPv6 literals may be bracketed; IPv4-mapped IPv6 addresses are
    /// judged as loopback or private IPv4 ones.
    pub fn allows_host(&self, host: &str) -> bool {
        let Some(check) = &self.host_check else {
            return true;
        };
        // What nearly every local request carries, answered from the bytes.
        if loopback_name(host.as_bytes()) {
            return true;
        }
        // Every request carries a `Host`: no copy unless it has capitals, and the
        // usual loopback names are answered before any parsing.
        let host = host.trim();
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        let name = strip_port(host);
        if matches!(name, "" | "localhost" | "127.0.0.1" | "::1") || name == check.hostname.as_str()
        {
            return true;
        }
        if [".localhost", ".local", ".internal"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            return true;
        }
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>();
        if let Ok(ip) = ip
            && check.addresses.contains(&ip.to_canonical())
        {
            return true;
        }
        match ip {
            Ok(std::net::IpAddr::V4(ip)) => {
                ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
            }
            Ok(std::net::IpAddr::V6(ip)) => {
                ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_unique_local()
                    || ip.is_unicast_link_local()
                    || ip
                        .to_ipv4_mapped()
                        .is_some_and(|v4| v4.is_loopback() || v4.is_private())
            }
            Err(_) => false,
        }
    }

    /// Whether a request from `origin`, sent to `host`, may proceed to Ollama's
    /// API: every origin with a lone `*` configured; an origin that is
    /// `http://` or `https://` followed by exactly the `Host` value (same origin
    /// in all but the scheme); else one matching a built-in or configured pattern.
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

/// `host:port`, `[v6]:port` or a bare name → the name part (without brackets).
/// A bare IPv6 literal is returned whole, since its colons are not a port.
/// Whether a `Host` is `127.0.0.1` or `localhost` (any case), with or without a
/// port: the first thing [`OriginPolicy::allows_host`] asks, from the bytes.
fn loopback_name(host: &[u8]) -> bool {
    let name = match host.iter().rposition(|b| *b == b':') {
        Some(colon) if host[colon + 1..].iter().all(u8::is_ascii_digit) => &host[..colon],
        _ => host,
    };
    name == b"127.0.0.1" || name.eq_ignore_ascii_case(b"localhost")
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(v6, _)| &v6[1..]);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 literal has several colons and no port.
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The machine's hostname, lower case (empty if it cannot be read).
fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .or_else(|_| std::env::var("HOSTNAME"))
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The addresses of this machine's network interfaces (empty if they cannot be
/// listed).
fn interface_addresses() -> Vec<std::net::IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| {
            let address = interface.address?;
            if let Some(v4) = address.as_sockaddr_in() {
                return Some(std::net::IpAddr::V4(v4.ip()));
            }
            address
                .as_sockaddr_in6()
                .map(|v6| std::net::IpAddr::V6(v6.ip()).to_canonical())
        })
        .collect()
}

/// Matches `text` against a pattern where `*` stands for any run of characters
/// (including none). Without a `*` it is an exact match. Case-sensitive: callers
/// lower-case both sides.
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

/// The origin and `Host` check (see the module docs): a refusal or a preflight's
/// answer is the response to send; otherwise the request goes on, without its
/// `Origin` header, and an allowed origin comes back to [`decorate`] the answer
/// with.
pub fn admit(
    policy: &OriginPolicy,
    request: &mut Request,
) -> Result<Option<HeaderValue>, Box<Response>> {
    let control = crate::auth::Plane::of(request.uri().path()) == crate::auth::Plane::Control;
    if let Some(host) = request.headers().get(header::HOST)
        && !host.to_str().is_ok_and(|h| policy.allows_host(h))
    {
        let shown = String::from_utf8_lossy(host.as_bytes()).into_owned();
        let flavor = Flavor::of(request.uri().path());
        return Err(Box::new(
            Error::from(OriginError::HostNotAllowed(shown)).to_response(flavor),
        ));
    }
    let Some(origin) = request.headers_mut().remove(header::ORIGIN) else {
        return Ok(None);
    };
    let flavor = Flavor::of(request.uri().path());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let allowed = if control {
        origin.to_str().is_ok_and(|o| policy.allows_control(o))
    } else {
        origin.to_str().is_ok_and(|o| policy.allows(o, host))
    };
    if !allowed {
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        let err = if control {
            OriginError::NotAllowedOnControl(shown)
        } else {
            OriginError::NotAllowed(shown)
        };
        return Err(Box::new(Error::from(err).to_response(flavor)));
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
        return Err(Box::new(response));
    }
    Ok(Some(origin))
}

/// The CORS headers of an answer to an allowed `origin`, exactly once: any the
/// upstream produced are replaced.
pub fn decorate(response: &mut Response, origin: HeaderValue) {
    let headers = response.headers_mut();
    strip_cors(headers);
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    // Warmline's own response headers, readable by an allowed page's script (the
    // desktop app's chat shows each reply's cache outcome and timings). Ollama
    // sets none of these, so nothing a client relied on changes.
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// [`admit`] and [`decorate`] as a middleware on its own (the gateway's stack
/// calls the steps directly, in one layer).
pub async fn check(policy: &OriginPolicy, mut request: Request, next: Next) -> Response {
    match admit(policy, &mut request) {
        Err(answer) => *answer,
        Ok(None) => next.run(request).await,
        Ok(Some(origin)) => {
            let mut response = next.run(request).await;
            decorate(&mut response, origin);
            response
        }
    }
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
    fn the_loopback_fast_path_allows_only_what_the_host_check_allows() {
        let policy = OriginPolicy::new(&[]).with_host_check("0.0.0.0:11435".parse().expect("addr"));
        for host in [
            "127.0.0.1",
            "127.0.0.1:11435",
            "localhost",
            "LocalHost:80",
            "localhost:",
        ] {
            assert!(loopback_name(host.as_bytes()), "{host}");
            assert!(policy.allows_host(host), "{host}");
        }
        for host in [
            "127.0.0.1.evil.example",
            "localhost.evil.example:80",
            "evil:localhost",
            "localhost:80x",
            "[::1]:80",
            " localhost",
            "127.0.0.2",
        ] {
            assert!(!loopback_name(host.as_bytes()), "{host}");
        }
    }

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
    fn foreign_hosts_are_refused_on_every_listen_address() {
        for listen in [
            "127.0.0.1:11435",
            "0.0.0.0:11435",
            "[::]:11435",
            "10.0.0.5:11435",
        ] {
            let policy = OriginPolicy::new(&[]).with_host_check(listen.parse().expect("addr"));
            assert!(!policy.allows_host("evil.example:11435"), "{listen}");
            assert!(policy.allows_host("localhost:11435"), "{listen}");
        }
        // The listen address itself, public or not, names this machine.
        let public =
            OriginPolicy::new(&[]).with_host_check("203.0.113.7:11435".parse().expect("addr"));
        assert!(public.allows_host("203.0.113.7:11435"));
        assert!(!public.allows_host("203.0.113.8:11435"));
    }

    #[test]
    fn the_control_plane_admits_only_listed_origins() {
        let policy = OriginPolicy::new(&["*".into()]);
        assert!(policy.allows("https://anything", None));
        assert!(!policy.allows_control("https://anything"));
        assert!(!policy.allows_control("http://localhost:3000"));
        assert!(!policy.allows_control("null"));
        let policy = policy.with_control_origins(&["https://admin.example".into(), "*".into()]);
        assert!(policy.allows_control("https://admin.example"));
        assert!(!policy.allows_control("https://other.example"));
    }

    #[test]
    fn local_names_and_private_addresses_pass_the_host_check() {
        let policy =
            OriginPolicy::new(&[]).with_host_check("127.0.0.1:11435".parse().expect("addr"));
        for host in [
            "localhost:11435",
            "127.0.0.1:11435",
            "[::1]:11435",
            "app.localhost",
            "printer.local:80",
            "svc.internal",
            "192.168.1.20:11435",
            "10.0.0.5",
            "[fd00::1]:1",
            "",
        ] {
            assert!(policy.allows_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:11435",
            "8.8.8.8",
            "[2001:db8::1]:11435",
            "localhost.evil.example",
        ] {
            assert!(!policy.allows_host(host), "{host}");
        }
        assert!(OriginPolicy::new(&[]).allows_host("evil.example"));
    }

    #[test]
    fn ports_are_stripped_from_every_host_form() {
        assert_eq!(strip_port("a:1"), "a");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("a"), "a");
    }

    #[test]
    fn glob_handles_several_stars() {
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXcYYb"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("abc", "abcd"));
    }
}
