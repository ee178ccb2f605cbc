//! Warmline's own HTTP routes: `/warmline/*` and `/metrics`.
//!
//! Ollama has no route under `/warmline/` and no `/metrics`, so these never shadow
//! an upstream route. Each handler is a thin call into the same [`GatewayHandle`]
//! methods the desktop app uses, so the HTTP API and the app cannot disagree.
//!
//! [`GatewayHandle`]: crate::GatewayHandle

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::error::{Flavor, error_response};
use crate::gateway::Shared;

/// `GET /warmline/health`: overall status and each upstream's reachability.
pub async fn health(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.health()).into_response()
}

/// `GET /warmline/stats`: request counts and latency percentiles.
pub async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.proxy.metrics.stats()).into_response()
}

/// `GET /warmline/cache`: entries, bytes and outcome counts.
pub async fn cache(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.cache_stats().await).into_response()
}

/// Query of `DELETE /warmline/cache`.
#[derive(Debug, serde::Deserialize)]
pub struct PurgeQuery {
    model: Option<String>,
}

/// `DELETE /warmline/cache[?model=NAME]`: purges everything, or one model.
pub async fn purge_cache(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<PurgeQuery>,
) -> Response {
    let model = query
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    Json(shared.purge_cache(model).await).into_response()
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut response = shared.prometheus().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Any other path under `/warmline/`: ours, so it is never forwarded.
pub async fn not_found(request: Request) -> Response {
    let message = format!(
        "no Warmline route {} {}",
        request.method(),
        request.uri().path()
    );
    error_response(StatusCode::NOT_FOUND, &message, Flavor::Ollama)
}
