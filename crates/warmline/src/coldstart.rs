//! Cold-start masking: a stream for a model that is installed but not loaded gets
//! its `200` and headers at once, and its tokens when the load is done.
//!
//! Ollama sends nothing until the model is loaded and the first token exists,
//! which for a cold model can be seconds to minutes; clients with short header
//! timeouts give up, and every client shows a dead connection meanwhile. This is
//! the one documented deviation from Ollama's timing, and it applies only where
//! the model is known to exist on the host (its `/api/tags` lists it): for an
//! unknown model the upstream's own status (404) passes through unchanged.
//!
//! Once the headers are out, a failure can no longer change the status: it ends
//! the stream the way a stream that failed mid-way ends in Ollama, with one
//! `{"error":"..."}` line on a native stream, and on an OpenAI stream with a
//! `data:` event carrying the OpenAI error object (which the OpenAI client libraries
//! raise as an API error) and no `[DONE]`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::error::Flavor;

/// Response headers of a masked stream, as Ollama would send them.
pub(crate) fn headers(flavor: Flavor) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let content_type = match flavor {
        Flavor::Ollama => "application/x-ndjson",
        Flavor::OpenAi => "text/event-stream",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("x-warmline-cold-start", HeaderValue::from_static("masked"));
    headers
}

/// The end of a masked stream whose upstream answered `status` with `body`
/// (Ollama's error JSON, normally) instead of streaming.
pub(crate) fn error_event(flavor: Flavor, status: StatusCode, body: &[u8]) -> Bytes {
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

/// The line that ends a masked stream with `message`.
pub(crate) fn error_line(flavor: Flavor, status: StatusCode, message: &str) -> Bytes {
    let line = match flavor {
        Flavor::Ollama => format!("{}\n", serde_json::json!({ "error": message })),
        Flavor::OpenAi => {
            let kind = match status {
                StatusCode::BAD_REQUEST => "invalid_request_error",
                StatusCode::NOT_FOUND => "not_found_error",
                _ => "api_error",
            };
            let error = serde_json::json!({
                "error": { "message": message, "type": kind, "param": null, "code": null }
            });
            format!("data: {error}\n\n")
        }
    };
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

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
