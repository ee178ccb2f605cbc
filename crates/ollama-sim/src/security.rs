//! Host-header and CORS checks, as Ollama does them (§6.1, §6.2).
//!
//! * **Host** (`allowedHostsMiddleware`): only when the listener is on a
//!   loopback address. Allowed: no Host, `localhost`, this machine's
//!   hostname, names ending in `.localhost`, `.local` or `.internal`, and IP
//!   literals that are loopback, private or unspecified. Anything else is a
//!   403 with an empty body. An allowed *name* answers `OPTIONS` with 204.
//!   (Ollama also accepts the IPs of local interfaces; the simulator does not
//!   enumerate interfaces, so a public IP of this machine is refused.)
//! * **CORS** (gin-contrib/cors as configured by Ollama): a request without
//!   `Origin`, or whose origin is `http(s)://<Host>`, is not a CORS request.
//!   Otherwise the origin must match `OLLAMA_ORIGINS` or the built-ins
//!   (`http(s)://localhost[:*]`, `127.0.0.1`, `0.0.0.0`, `app://*`,
//!   `file://*`, `tauri://*`, `vscode-webview://*`, `vscode-file://*`), one
//!   `*` wildcard per entry; a miss is a 403, an allowed preflight a 204.
//!
//! This module is pure decision logic; the middleware in `server.rs` applies it.

use std::net::IpAddr;

/// Request headers a browser may send (canonicalised as Go prints them).
pub(crate) const ALLOW_HEADERS: &str = "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,Openai-Beta,X-Stainless-Arch,X-Stainless-Async,X-Stainless-Custom-Poll-Interval,X-Stainless-Helper-Method,X-Stainless-Lang,X-Stainless-Os,X-Stainless-Package-Version,X-Stainless-Poll-Helper,X-Stainless-Retry-Count,X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Timeout";
/// gin-contrib/cors default methods.
pub(crate) const ALLOW_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS";
/// Twelve hours, the library default.
pub(crate) const MAX_AGE: &str = "43200";

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    Exact(String),
    Wildcard { prefix: String, suffix: String },
}

/// The access policy of one listener.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    check_host: bool,
    hostname: Option<String>,
    rules: Vec<OriginRule>,
    allow_all: bool,
}

/// What the Host check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostVerdict {
    Allow,
    /// Allowed host name and an `OPTIONS` request: answer 204 directly.
    Preflight,
    Deny,
}

/// What the CORS check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CorsVerdict {
    /// No `Origin`, or same-origin: nothing to do.
    NotCors,
    Deny,
    /// Allowed preflight: answer 204 with the preflight headers.
    Preflight,
    /// Allowed request: add `Access-Control-Allow-Origin` (this value) and `Vary`.
    Allow(String),
}

impl Policy {
    pub(crate) fn new(extra_origins: &[String], loopback_listener: bool) -> Policy {
        let mut origins: Vec<String> = extra_origins.to_vec();
        for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
            for scheme in ["http", "https"] {
                origins.push(format!("{scheme}://{host}"));
            }
            for scheme in ["http", "https"] {
                origins.push(format!("{scheme}://{host}:*"));
            }
        }
        for o in [
            "app://*",
            "file://*",
            "tauri://*",
            "vscode-webview://*",
            "vscode-file://*",
        ] {
            origins.push(o.to_owned());
        }
        let mut allow_all = false;
        let rules = origins
            .iter()
            .map(|o| o.trim().to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .map(|o| match o.split_once('*') {
                None => OriginRule::Exact(o),
                Some((prefix, suffix)) => {
                    allow_all |= prefix.is_empty() && suffix.is_empty();
                    OriginRule::Wildcard {
                        prefix: prefix.to_owned(),
                        suffix: suffix.to_owned(),
                    }
                }
            })
            .collect();
        Policy {
            check_host: loopback_listener,
            hostname: machine_hostname(),
            rules,
            allow_all,
        }
    }

    /// The DNS-rebinding check for one request.
    pub(crate) fn host(&self, host_header: Option<&str>, is_options: bool) -> HostVerdict {
        if !self.check_host {
            return HostVerdict::Allow;
        }
        let raw = host_header.unwrap_or_default();
        let host = crate::config::split_host_port(raw).map_or(raw, |(h, _)| h);
        if let Ok(ip) = host.parse::<IpAddr>()
            && ip_is_local(ip)
        {
            return HostVerdict::Allow;
        }
        if self.host_name_allowed(host) {
            return if is_options {
                HostVerdict::Preflight
            } else {
                HostVerdict::Allow
            };
        }
        HostVerdict::Deny
    }

    fn host_name_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if host.is_empty() || host == "localhost" {
            return true;
        }
        if self.hostname.as_deref() == Some(host.as_str()) {
            return true;
        }
        [".localhost", ".local", ".internal"]
            .iter()
            .any(|tld| host.ends_with(tld))
    }

    /// The CORS decision for one request.
    pub(crate) fn cors(
        &self,
        origin: Option<&str>,
        host_header: Option<&str>,
        is_options: bool,
    ) -> CorsVerdict {
        let Some(origin) = origin.filter(|o| !o.is_empty()) else {
            return CorsVerdict::NotCors;
        };
        let host = host_header.unwrap_or_default();
        if origin.strip_prefix("http://") == Some(host)
            || origin.strip_prefix("https://") == Some(host)
        {
            return CorsVerdict::NotCors;
        }
        if !self.origin_allowed(origin) {
            return CorsVerdict::Deny;
        }
        if is_options {
            CorsVerdict::Preflight
        } else if self.allow_all {
            CorsVerdict::Allow("*".to_owned())
        } else {
            CorsVerdict::Allow(origin.to_owned())
        }
    }

    /// The value for `Access-Control-Allow-Origin` on a preflight.
    pub(crate) fn preflight_origin<'a>(&self, origin: &'a str) -> &'a str {
        if self.allow_all { "*" } else { origin }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.allow_all
            || self.rules.iter().any(|r| match r {
                OriginRule::Exact(o) => o == origin,
                OriginRule::Wildcard { prefix, suffix } => {
                    origin.len() >= prefix.len() + suffix.len()
                        && origin.starts_with(prefix.as_str())
                        && origin.ends_with(suffix.as_str())
                }
            })
    }
}

/// Go's `IsLoopback() || IsPrivate() || IsUnspecified()`.
fn ip_is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

/// `os.Hostname()`, lower-cased.
fn machine_hostname() -> Option<String> {
    let from_file = |p: &str| std::fs::read_to_string(p).ok();
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Policy {
        Policy::new(&[], true)
    }

    #[test]
    fn host_check_only_on_loopback_listeners() {
        let p = loopback();
        assert_eq!(p.host(Some("127.0.0.1:11434"), false), HostVerdict::Allow);
        assert_eq!(p.host(Some("localhost:11434"), false), HostVerdict::Allow);
        assert_eq!(p.host(None, false), HostVerdict::Allow);
        assert_eq!(p.host(Some("10.1.2.3"), false), HostVerdict::Allow);
        assert_eq!(p.host(Some("[::1]:11434"), false), HostVerdict::Allow);
        assert_eq!(p.host(Some("box.internal:80"), false), HostVerdict::Allow);
        assert_eq!(p.host(Some("box.local"), true), HostVerdict::Preflight);
        assert_eq!(p.host(Some("evil.example.com"), false), HostVerdict::Deny);
        assert_eq!(p.host(Some("8.8.8.8"), false), HostVerdict::Deny);
        let open = Policy::new(&[], false);
        assert_eq!(
            open.host(Some("evil.example.com"), false),
            HostVerdict::Allow
        );
    }

    #[test]
    fn cors_builtins_and_extra_origins() {
        let p = Policy::new(
            &[
                "https://app.example".to_owned(),
                "chrome-extension://*".to_owned(),
            ],
            true,
        );
        let host = Some("127.0.0.1:11434");
        assert_eq!(p.cors(None, host, false), CorsVerdict::NotCors);
        assert_eq!(
            p.cors(Some("http://127.0.0.1:11434"), host, false),
            CorsVerdict::NotCors
        );
        assert_eq!(
            p.cors(Some("http://localhost:3000"), host, false),
            CorsVerdict::Allow("http://localhost:3000".to_owned())
        );
        assert_eq!(
            p.cors(Some("tauri://localhost"), host, true),
            CorsVerdict::Preflight
        );
        assert_eq!(
            p.cors(Some("https://app.example"), host, false),
            CorsVerdict::Allow("https://app.example".to_owned())
        );
        assert_eq!(
            p.cors(Some("chrome-extension://abc"), host, false),
            CorsVerdict::Allow("chrome-extension://abc".to_owned())
        );
        assert_eq!(
            p.cors(Some("https://evil.example"), host, false),
            CorsVerdict::Deny
        );
        assert_eq!(
            p.cors(Some("http://localhost.evil.com"), host, false),
            CorsVerdict::Deny
        );
    }

    #[test]
    fn star_allows_everything() {
        let p = Policy::new(&["*".to_owned()], true);
        assert_eq!(
            p.cors(Some("https://anything.example"), Some("x"), false),
            CorsVerdict::Allow("*".to_owned())
        );
    }
}
