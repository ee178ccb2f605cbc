//! Errors and the one place they become HTTP responses.
//!
//! Every handler returns [`ApiError`]; its `Display` text *is* the message a
//! client sees, spelled exactly as Ollama spells it (§5B of the reference).
//! Native routes render it as `{"error": "…"}`; `/v1` routes wrap it in
//! [`OpenAiError`], which rewrites it into OpenAI's
//! `{"error":{"message","type","param":null,"code":null}}` with the same
//! status, like Ollama's compatibility middleware does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::ErrorBody;
use crate::body::BindError;
use crate::scheduler::SchedError;
use crate::wire;

/// The runner failure injected by `error_rate` (Ollama's wording).
pub(crate) const RUNNER_STOPPED: &str = "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check ollama server logs for details";

/// A request that cannot be served, with Ollama's message and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// Empty body on a JSON route.
    #[error("missing request body")]
    MissingBody,
    /// Malformed body, bad field value or missing capability (400).
    #[error("{0}")]
    BadRequest(String),
    /// Unknown model or blob (404).
    #[error("{0}")]
    NotFound(String),
    /// No runner could be scheduled (503 busy, 500 otherwise).
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// The (fake) runner failed (500).
    #[error("{0}")]
    Runner(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingBody | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Sched(SchedError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Sched(SchedError::Stopped) | ApiError::Runner(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Low-cardinality label, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ApiError::MissingBody => "missing_body",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Sched(SchedError::Busy) => "busy",
            ApiError::Sched(SchedError::Stopped) => "stopped",
            ApiError::Runner(_) => "runner",
        }
    }

    /// Native body binding failure.
    pub(crate) fn from_bind(e: BindError) -> ApiError {
        match e {
            BindError::Empty => ApiError::MissingBody,
            BindError::Decode(m) => ApiError::BadRequest(m),
        }
    }

    /// `/v1` body binding failure: the middleware reports Go's raw `EOF`.
    pub(crate) fn from_bind_openai(e: BindError) -> ApiError {
        match e {
            BindError::Empty => ApiError::BadRequest("EOF".to_owned()),
            BindError::Decode(m) => ApiError::BadRequest(m),
        }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> ApiError {
        ApiError::BadRequest(msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(kind = self.kind(), error = %self, "request failed");
        let msg = self.to_string();
        wire::json(self.status(), &ErrorBody { error: &msg })
    }
}

/// An [`ApiError`] rendered in OpenAI's error shape.
#[derive(Debug)]
pub(crate) struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiDetail<'a>,
}

#[derive(Serialize)]
struct OpenAiDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: Option<()>,
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let kind = match status {
            StatusCode::BAD_REQUEST => "invalid_request_error",
            StatusCode::NOT_FOUND => "not_found_error",
            _ => "api_error",
        };
        let msg = self.0.to_string();
        let body = OpenAiBody {
            error: OpenAiDetail {
                message: &msg,
                kind,
                param: None,
                code: None,
            },
        };
        wire::json(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_text_has_two_spaces_and_503() {
        let e = ApiError::from(SchedError::Busy);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            e.to_string(),
            "server busy, please try again.  maximum pending requests exceeded"
        );
    }
}
