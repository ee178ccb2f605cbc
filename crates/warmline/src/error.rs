//! Errors, and the one place where they become HTTP responses.
//!
//! Each concern has its own small enum ([`ProxyError`], [`OriginError`],
//! [`ConfigError`]); they compose into [`Error`]. [`Error::status`] is the single
//! mapping to HTTP status codes, [`Error::kind`] a static, low-cardinality label for
//! metrics, and [`Error::to_response`] renders the body in the shape the client's API
//! expects: Ollama's `{"error":"..."}` on native routes, the OpenAI error object on
//! `/v1/*` (with the `type` Ollama's own compatibility layer would pick).
//!
//! Messages name the cause and who is to blame ("upstream http://127.0.0.1:11434 is
//! unreachable: connection refused"), so a user can act on them without logs.

use std::time::Duration;

use axum::response::Response;
use http::{HeaderValue, StatusCode};

use crate::auth::AuthError;
pub use crate::config::ConfigError;
use crate::wire::{Flavor, error_response};

/// The [`Error::kind`] of an error response (a response extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind(pub &'static str);

/// Whose fault an error is (see [`Error::blame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The upstream host: counts against its circuit breaker.
    Host,
    /// The request or its sender: a different request would do.
    Client,
    /// Warmline itself or its own limits (a full queue, a daemon it supervises).
    Gateway,
}

/// Failures while forwarding a request to an upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream {upstream} is unreachable: {reason}")]
    Unreachable { upstream: String, reason: String },
    #[error(
        "upstream {upstream} did not accept a connection within {} (timeouts.connect)",
        humantime::format_duration(*after)
    )]
    ConnectTimeout { upstream: String, after: Duration },
    #[error(
        "upstream {upstream} sent no response within {} (timeouts.first_byte)",
        humantime::format_duration(*after)
    )]
    FirstByteTimeout { upstream: String, after: Duration },
    #[error("upstream {upstream} failed: {reason}")]
    Protocol { upstream: String, reason: String },
    #[error("every upstream's circuit breaker is open after repeated failures: {hosts}")]
    BreakerOpen {
        hosts: String,
        retry_after: Duration,
    },
    #[error("request body is larger than the configured limit of {limit} bytes (limits.max_body)")]
    BodyTooLarge { limit: u64 },
    #[error(
        "the request body stalled: nothing arrived for {} (timeouts.body)",
        humantime::format_duration(*after)
    )]
    BodyTimeout { after: Duration },
    #[error("cannot read the request body: {0}")]
    ClientBody(String),
    /// A native request for a model only an OpenAI-compatible engine serves,
    /// with a field that has no OpenAI equivalent (see `translate`).
    #[error("{0}")]
    Untranslatable(String),
    /// The upstream broke the connection after its status was sent.
    #[error("upstream {upstream} broke off the response: {reason}")]
    Broken { upstream: String, reason: String },
    /// The upstream went silent mid-response.
    #[error(
        "upstream sent nothing for {} mid-response (timeouts.idle)",
        humantime::format_duration(*after)
    )]
    Idle { after: Duration },
}

/// A connection the server refuses before any request on it was parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "the request's headers did not arrive within {} (timeouts.header)",
        humantime::format_duration(*after)
    )]
    HeadTimeout { after: Duration },
    #[error(
        "request headers are larger than the configured limit of {limit} bytes (limits.max_header)"
    )]
    HeadTooLarge { limit: usize },
    #[error("Warmline has too many open connections (limits.max_connections); try again shortly")]
    TooManyConnections,
}

/// Refusals of Warmline's own routes (`/warmline/*`, `/metrics`).
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No such route (the whole `/warmline/` namespace is Warmline's).
    #[error("no Warmline route {method} {path}")]
    NoRoute { method: String, path: String },
    /// A chart name that is not one of the dashboard's.
    #[error("no chart {0:?}: latency, ttft, throughput, hit-rate or models (.svg)")]
    NoChart(String),
    /// A body or query that is not what the route takes.
    #[error("{0}")]
    Invalid(String),
    /// A refusal axum's extractors produced (a bad query, a body over the limit,
    /// a wrong method), with the status they chose.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// The gateway's handle is gone: it is shutting down.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// A chart could not be drawn.
    #[error("{0}")]
    Render(String),
}

/// A browser origin that the allow-list refuses, or a foreign `Host`.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error(
        "host {0:?} is not allowed: Warmline refuses Host names that are not this machine's (DNS-rebinding protection); use localhost or an address of this machine"
    )]
    HostNotAllowed(String),
    #[error(
        "origin {0:?} is not allowed; add it to `origins` in Warmline's config (the equivalent of OLLAMA_ORIGINS)"
    )]
    NotAllowed(String),
    #[error(
        "origin {0:?} may not use Warmline's control plane: web pages reach only Ollama's API \
         (list an origin in admin.origins to let it manage Warmline)"
    )]
    NotAllowedOnControl(String),
}

/// Every error Warmline produces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    AdminKey(#[from] crate::auth::AdminKeyError),
    #[error(transparent)]
    Queue(#[from] crate::admission::Rejected),
    #[error(transparent)]
    RateLimited(#[from] crate::admission::RateLimited),
    #[error(transparent)]
    Daemon(#[from] crate::supervisor::DaemonError),
    #[error(transparent)]
    Warmth(#[from] crate::warmth::WarmthError),
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Proxy(
                ProxyError::Unreachable { .. }
                | ProxyError::Protocol { .. }
                | ProxyError::Broken { .. },
            ) => StatusCode::BAD_GATEWAY,
            Error::Proxy(ProxyError::Idle { .. }) => StatusCode::GATEWAY_TIMEOUT,
            Error::Proxy(
                ProxyError::ConnectTimeout { .. } | ProxyError::FirstByteTimeout { .. },
            ) => StatusCode::GATEWAY_TIMEOUT,
            Error::Proxy(ProxyError::BodyTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Proxy(ProxyError::BreakerOpen { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Proxy(ProxyError::BodyTimeout { .. }) => StatusCode::REQUEST_TIMEOUT,
            Error::Proxy(ProxyError::ClientBody(_) | ProxyError::Untranslatable(_)) => {
                StatusCode::BAD_REQUEST
            }
            Error::Origin(_) => StatusCode::FORBIDDEN,
            Error::Connection(ConnectionError::HeadTimeout { .. }) => StatusCode::REQUEST_TIMEOUT,
            Error::Connection(ConnectionError::HeadTooLarge { .. }) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::Connection(ConnectionError::TooManyConnections) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Route(RouteError::NoRoute { .. } | RouteError::NoChart(_)) => {
                StatusCode::NOT_FOUND
            }
            Error::Route(RouteError::Invalid(_)) => StatusCode::BAD_REQUEST,
            Error::Route(RouteError::Rejected { status, .. }) => *status,
            Error::Route(RouteError::ShuttingDown) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Route(RouteError::Render(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            // 401 where a (better) credential would help, 403 where none would.
            Error::Auth(
                AuthError::Missing
                | AuthError::Invalid
                | AuthError::AdminMissing(_)
                | AuthError::AdminInvalid,
            ) => StatusCode::UNAUTHORIZED,
            Error::Auth(
                AuthError::NotAdmin | AuthError::ControlClosed | AuthError::FileOnly(_),
            ) => StatusCode::FORBIDDEN,
            Error::AdminKey(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Config(_) => StatusCode::BAD_REQUEST,
            Error::Bind { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Daemon(crate::supervisor::DaemonError::External(_)) => StatusCode::CONFLICT,
            Error::Daemon(crate::supervisor::DaemonError::NotSupervised) => StatusCode::CONFLICT,
            Error::Daemon(crate::supervisor::DaemonError::Gone) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Warmth(crate::warmth::WarmthError::InvalidName(_)) => StatusCode::BAD_REQUEST,
            Error::Warmth(crate::warmth::WarmthError::NotInstalled(_)) => StatusCode::NOT_FOUND,
            Error::Warmth(crate::warmth::WarmthError::Persist(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// A static label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Bind { .. } => "bind",
            Error::Proxy(e) => match e {
                ProxyError::Unreachable { .. } => "upstream_unreachable",
                ProxyError::ConnectTimeout { .. } => "connect_timeout",
                ProxyError::FirstByteTimeout { .. } => "first_byte_timeout",
                ProxyError::Protocol { .. } => "upstream_protocol",
                ProxyError::BodyTooLarge { .. } => "body_too_large",
                ProxyError::BreakerOpen { .. } => "breaker_open",
                ProxyError::BodyTimeout { .. } => "body_timeout",
                ProxyError::ClientBody(_) => "client_body",
                ProxyError::Untranslatable(_) => "untranslatable",
                ProxyError::Broken { .. } => "stream_aborted",
                ProxyError::Idle { .. } => "idle_timeout",
            },
            Error::Auth(_) if self.status() == StatusCode::FORBIDDEN => "forbidden",
            Error::Auth(_) => "unauthorized",
            Error::AdminKey(_) => "admin_credential",
            Error::Queue(rejected) => rejected.kind(),
            Error::RateLimited(limited) => limited.kind(),
            Error::Origin(OriginError::NotAllowed(_) | OriginError::NotAllowedOnControl(_)) => {
                "origin_forbidden"
            }
            Error::Daemon(_) => "daemon",
            Error::Connection(ConnectionError::HeadTimeout { .. }) => "header_timeout",
            Error::Connection(ConnectionError::HeadTooLarge { .. }) => "header_too_large",
            Error::Connection(ConnectionError::TooManyConnections) => "too_many_connections",
            Error::Route(RouteError::NoRoute { .. } | RouteError::NoChart(_)) => "no_route",
            Error::Route(RouteError::Invalid(_) | RouteError::Rejected { .. }) => "bad_request",
            Error::Route(RouteError::ShuttingDown) => "shutting_down",
            Error::Route(RouteError::Render(_)) => "render",
            Error::Warmth(_) => "warmth",
            Error::Origin(OriginError::HostNotAllowed(_)) => "host_forbidden",
        }
    }

    /// Whether another host may answer where this error came from one, before
    /// anything reached the client: the host could not be reached or broke the
    /// exchange, its breaker refused, or its queue for the model is full. Errors of
    /// the request itself (too large, stalled, malformed) would fail anywhere.
    pub fn retry_safe(&self) -> bool {
        match self {
            Error::Proxy(err) => matches!(
                err,
                ProxyError::Unreachable { .. }
                    | ProxyError::ConnectTimeout { .. }
                    | ProxyError::Protocol { .. }
                    // Refused before sending: the breaker's one probe was taken a
                    // moment ago, or it just opened. The other host may well serve.
                    | ProxyError::BreakerOpen { .. }
            ),
            Error::Queue(rejected) => {
                matches!(rejected, crate::admission::Rejected::QueueFull { .. })
            }
            _ => false,
        }
    }

    /// Whose fault the error is: a host's failures open its circuit breaker, a
    /// client's or Warmline's own never do.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Proxy(
                ProxyError::Unreachable { .. }
                | ProxyError::ConnectTimeout { .. }
                | ProxyError::FirstByteTimeout { .. }
                | ProxyError::Protocol { .. }
                | ProxyError::BreakerOpen { .. }
                | ProxyError::Broken { .. }
                | ProxyError::Idle { .. },
            ) => Blame::Host,
            Error::Proxy(
                ProxyError::BodyTooLarge { .. }
                | ProxyError::BodyTimeout { .. }
                | ProxyError::ClientBody(_)
                | ProxyError::Untranslatable(_),
            )
            | Error::Origin(_)
            | Error::Connection(ConnectionError::HeadTimeout { .. })
            | Error::Connection(ConnectionError::HeadTooLarge { .. })
            | Error::Route(
                RouteError::NoRoute { .. }
                | RouteError::NoChart(_)
                | RouteError::Invalid(_)
                | RouteError::Rejected { .. },
            )
            | Error::Auth(_)
            | Error::RateLimited(_)
            | Error::Config(_) => Blame::Client,
            Error::Warmth(crate::warmth::WarmthError::InvalidName(_))
            | Error::Warmth(crate::warmth::WarmthError::NotInstalled(_)) => Blame::Client,
            Error::Bind { .. }
            | Error::Connection(ConnectionError::TooManyConnections)
            | Error::Route(RouteError::ShuttingDown | RouteError::Render(_))
            | Error::AdminKey(_)
            | Error::Queue(_)
            | Error::Daemon(_)
            | Error::Warmth(_) => Blame::Gateway,
        }
    }

    /// When the client may try again, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Proxy(ProxyError::BreakerOpen { retry_after, .. }) => Some(*retry_after),
            Error::Queue(rejected) => Some(rejected.retry_after()),
            Error::RateLimited(limited) => Some(limited.retry_after),
            _ => None,
        }
    }

    /// Renders the error as a response in the client API's error shape. The
    /// response carries the error's [`ErrorKind`], so the outer stack can count a
    /// refusal made before the pipeline (origin, Host, rate limit) once, by kind.
    pub fn to_response(&self, flavor: Flavor) -> Response {
        let mut response = error_response(self.status(), &self.to_string(), flavor);
        response.extensions_mut().insert(ErrorKind(self.kind()));
        if let Some(after) = self.retry_after() {
            // Whole seconds, rounded up, at least 1: a client never comes back early.
            let secs = (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn native_errors_use_ollamas_shape() {
        let err = Error::from(ProxyError::Unreachable {
            upstream: "http://127.0.0.1:9".into(),
            reason: "connection refused".into(),
        });
        let response = err.to_response(Flavor::of("/api/chat"));
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            body_of(response).await,
            serde_json::json!({"error": "upstream http://127.0.0.1:9 is unreachable: connection refused"})
        );
    }

    #[tokio::test]
    async fn v1_errors_use_the_openai_shape() {
        let err = Error::from(ProxyError::FirstByteTimeout {
            upstream: "http://h:1".into(),
            after: Duration::from_secs(300),
        });
        let response = err.to_response(Flavor::of("/v1/chat/completions"));
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = body_of(response).await;
        assert_eq!(body["error"]["type"], "api_error");
        assert_eq!(
            body["error"]["message"],
            "upstream http://h:1 sent no response within 5m (timeouts.first_byte)"
        );
        assert!(body["error"]["param"].is_null());
    }

    #[test]
    fn every_error_has_a_status_and_kind() {
        let err = Error::from(ProxyError::BodyTooLarge { limit: 10 });
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.kind(), "body_too_large");
        let err = Error::from(OriginError::NotAllowed("https://evil.example".into()));
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
    }
}
