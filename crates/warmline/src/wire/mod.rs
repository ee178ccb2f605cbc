//! The wire vocabulary: what Warmline's requests and answers look like on the
//! network, with no knowledge of how they are served.
//!
//! This is the lowest layer of the crate; every other module may use it and it uses
//! none of them. It holds:
//!
//! - [`Flavor`]: which API's error shape an answer takes (Ollama's native
//!   `{"error":"..."}` or the OpenAI error object on `/v1/*`);
//! - the error bodies themselves, whole ([`error_response`]) and in-stream
//!   ([`error_line`], [`error_event`]), so every refusal, whoever makes it, reads
//!   the way the client's own library expects;
//! - [`describe`], the short cause of an error chain that messages end with;
//! - [`headers`]: the headers Warmline adds and the forwarding rules (hop-by-hop
//!   headers, framing);
//! - [`http1`]: the HTTP/1.1 pieces Warmline's own server and client loops share
//!   (header offsets, framing headers, chunk sizes);
//! - [`peer`]: who sent a request, as the server hands it down;
//! - [`route`]: the kind of every Ollama route;
//! - [`timings`]: the durations and counts in Ollama's final stream chunk.
//!
//! Which status an error answers with is *not* decided here: that is
//! [`crate::error::Error::status`], the one mapping. This module only renders.

pub mod headers;
pub mod http1;
pub mod peer;
pub mod route;
pub mod timings;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

/// Which API's error shape a response must use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Ollama's native API: `{"error":"message"}`.
    Ollama,
    /// The OpenAI-compatible API under `/v1/`.
    OpenAi,
}

impl Flavor {
    /// The flavor for a request path: OpenAI's under `/v1/`, Ollama's elsewhere
    /// (Warmline's own routes answer in Ollama's shape).
    pub fn of(path: &str) -> Flavor {
        if path.starts_with("/v1/") {
            Flavor::OpenAi
        } else {
            Flavor::Ollama
        }
    }
}

/// A whole JSON error response in Ollama's (or, on `/v1`, OpenAI's) shape, with
/// `status`. Callers that hold an [`crate::error::Error`] use its `to_response`,
/// which picks the status; this is the renderer underneath.
pub fn error_response(status: StatusCode, message: &str, flavor: Flavor) -> Response {
    let mut response = Response::new(Body::from(error_body(status, message, flavor)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// The bytes of an error body: `{"error":"..."}`, or the OpenAI error object with
/// its fields in the order Ollama's compatibility layer writes them.
pub fn error_body(status: StatusCode, message: &str, flavor: Flavor) -> Vec<u8> {
    match flavor {
        Flavor::Ollama => serde_json::to_vec(&OllamaError { error: message }),
        Flavor::OpenAi => serde_json::to_vec(&OpenAiError {
            error: OpenAiErrorBody {
                message,
                r#type: openai_type(status),
                param: None,
                code: None,
            },
        }),
    }
    .unwrap_or_default()
}

/// The line that ends a stream whose status is already sent, with `message`: one
/// `{"error":"..."}` line on a native NDJSON stream (what Ollama writes when a
/// generation fails mid-way), a `data:` event carrying the OpenAI error object on
/// an SSE stream (which the OpenAI client libraries raise as an API error; no
/// `[DONE]` follows).
pub fn error_line(flavor: Flavor, status: StatusCode, message: &str) -> Bytes {
    let mut line = error_body(status, message, flavor);
    match flavor {
        Flavor::Ollama => line.push(b'\n'),
        Flavor::OpenAi => {
            line.splice(0..0, *b"data: ");
            line.extend_from_slice(b"\n\n");
        }
    }
    Bytes::from(line)
}

/// [`error_line`] for an upstream that answered `status` with `body` (Ollama's
/// error JSON, normally) where a stream was promised: its message is kept, any
/// other body becomes the message as text.
pub fn error_event(flavor: Flavor, status: StatusCode, body: &[u8]) -> Bytes {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            error
                .as_str()
                .or_else(|| error.get("message")?.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("upstream answered {status}")
            } else {
                text.to_owned()
            }
        });
    error_line(flavor, status, &message)
}

#[derive(serde::Serialize)]
struct OllamaError<'a> {
    error: &'a str,
}

#[derive(serde::Serialize)]
struct OpenAiError<'a> {
    error: OpenAiErrorBody<'a>,
}

#[derive(serde::Serialize)]
struct OpenAiErrorBody<'a> {
    message: &'a str,
    r#type: &'static str,
    param: Option<()>,
    code: Option<()>,
}

/// The OpenAI error `type` for a status, as Ollama's compatibility middleware maps it.
fn openai_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request_error",
        StatusCode::NOT_FOUND => "not_found_error",
        _ => "api_error",
    }
}

/// The innermost cause of an error, as a short lower-case phrase
/// ("connection refused"), which is what a user can act on. The OS error number
/// Rust appends is dropped.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost: &(dyn std::error::Error + 'static) = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_end_a_stream_in_each_apis_shape() {
        let native = error_line(Flavor::Ollama, StatusCode::BAD_GATEWAY, "boom");
        assert_eq!(&native[..], b"{\"error\":\"boom\"}\n");
        let openai = error_line(Flavor::OpenAi, StatusCode::NOT_FOUND, "no \"such\" model");
        let text = std::str::from_utf8(&openai).expect("utf-8");
        let json = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .expect("an SSE event");
        let value: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(value["error"]["message"], "no \"such\" model");
        assert_eq!(value["error"]["type"], "not_found_error");
        assert!(value["error"]["param"].is_null() && value["error"]["code"].is_null());
    }

    #[test]
    fn an_upstream_error_body_keeps_its_message() {
        let line = error_event(
            Flavor::Ollama,
            StatusCode::NOT_FOUND,
            br#"{"error":"model \"x\" not found"}"#,
        );
        assert_eq!(&line[..], b"{\"error\":\"model \\\"x\\\" not found\"}\n");
        let line = error_event(Flavor::Ollama, StatusCode::BAD_GATEWAY, b"");
        assert_eq!(
            &line[..],
            b"{\"error\":\"upstream answered 502 Bad Gateway\"}\n"
        );
    }

    #[test]
    fn describe_gives_the_innermost_cause() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        assert_eq!(describe(&io), "connection refused");
        let outer = std::io::Error::other(io);
        assert_eq!(describe(&outer), "connection refused");
    }

    #[test]
    fn errors_end_the_stream_in_each_apis_shape() {
        let native = error_event(
            Flavor::Ollama,
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error":"model runner has unexpectedly stopped"}"#,
        );
        assert_eq!(
            native,
            "{\"error\":\"model runner has unexpectedly stopped\"}\n"
        );
        let openai = error_event(Flavor::OpenAi, StatusCode::NOT_FOUND, b"");
        let text = std::str::from_utf8(&openai).expect("utf8");
        assert!(
            text.starts_with("data: {\"error\":{\"message\":\"upstream answered 404 Not Found\""),
            "{text}"
        );
        assert!(text.contains("\"type\":\"not_found_error\"") && text.ends_with("\n\n"));
    }
}
