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
use http::{HeaderValue, header};

use super::Shared;
use crate::error::{Error, RouteError};
use crate::wire::Flavor;

/// `GET /warmline/health`: overall status and each upstream's reachability; 503
/// (with the same body) while Warmline is down, no host able to serve, so a load
/// balancer or a liveness probe can act on the status alone.
pub async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let health = shared.health();
    let status = match health.status {
        crate::gateway::HealthStatus::Down => http::StatusCode::SERVICE_UNAVAILABLE,
        _ => http::StatusCode::OK,
    };
    (status, Json(health)).into_response()
}

/// `GET /warmline/ready`: 200 while this gateway takes traffic, 503 with the reason
/// from the start of a drain or a pause, and until a host has answered a probe.
pub async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let readiness = shared.readiness();
    let status = if readiness.ready {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `GET /warmline/stats`: request counts and latency percentiles.
pub async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.metrics().stats()).into_response()
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

/// `GET /warmline/settings`: every setting in force, secrets masked.
pub async fn settings(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.config().to_raw_redacted()).into_response()
}

/// `PUT /warmline/settings`: a JSON merge patch on the settings; all of it applies
/// or, with the validation message, none of it.
pub async fn update_settings(
    State(shared): State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(err) => {
            let message = format!("settings must be a JSON object: {err}");
            return refuse(RouteError::Invalid(message));
        }
    };
    match shared.handle() {
        Some(handle) => applied(handle.update_settings_remotely(&patch).await),
        None => gone(),
    }
}

/// `POST /warmline/reload`: reads the configuration file and environment again.
pub async fn reload(State(shared): State<Arc<Shared>>) -> Response {
    match shared.handle() {
        Some(handle) => applied(handle.reload().await),
        None => gone(),
    }
}

fn applied(result: Result<crate::gateway::Applied, crate::Error>) -> Response {
    match result {
        Ok(applied) => Json(applied).into_response(),
        Err(err) => {
            tracing::warn!(kind = err.kind(), "configuration refused: {err}");
            err.to_response(Flavor::Ollama)
        }
    }
}

/// A refusal of one of Warmline's own routes, in Ollama's shape.
fn refuse(err: RouteError) -> Response {
    Error::from(err).to_response(Flavor::Ollama)
}

/// The gateway is shutting down: its handle is gone.
fn gone() -> Response {
    refuse(RouteError::ShuttingDown)
}

/// The body of the model routes: `{"model": "llama3.2"}`, and for warm also
/// `"wait": true` to answer once the model is loaded.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRequest {
    model: String,
    #[serde(default)]
    wait: bool,
}

/// Reads a [`ModelRequest`], or answers why not in Ollama's shape.
fn model_request(body: &[u8]) -> Result<ModelRequest, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Box::new(refuse(RouteError::Invalid(
            "missing request body".to_owned(),
        ))));
    }
    serde_json::from_slice(body).map_err(|err| {
        let message = format!("expected {{\"model\": \"NAME\"}}: {err}");
        Box::new(refuse(RouteError::Invalid(message)))
    })
}

/// `GET /warmline/models`: installed models with loaded state, warmth, counters.
pub async fn models(State(shared): State<Arc<Shared>>) -> Response {
    with_handle(&shared, async |handle| {
        Ok(Json(handle.models()).into_response())
    })
    .await
}

/// `POST /warmline/models/{warm,cool,load,unload}`.
pub async fn model_action(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(action): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request = match model_request(&body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    with_handle(&shared, async move |handle| {
        let view = match action.as_str() {
            "warm" => handle.warm(&request.model, request.wait).await?,
            "cool" => handle.cool(&request.model).await?,
            "load" => handle.load(&request.model).await?,
            "unload" => handle.unload(&request.model).await?,
            other => {
                return Ok(refuse(RouteError::NoRoute {
                    method: "POST".to_owned(),
                    path: format!("/warmline/models/{other}"),
                }));
            }
        };
        Ok(Json(view).into_response())
    })
    .await
}

/// `GET /warmline/warmth`: automatic warmth's budget, what the warm models take,
/// and why each model is kept by prediction.
pub async fn warmth(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.warmth.auto_status()).into_response()
}

/// `DELETE /warmline/warmth`: forgets what automatic warmth learned.
pub async fn forget_warmth(State(shared): State<Arc<Shared>>) -> Response {
    with_handle(&shared, async |handle| {
        handle.forget_learning()?;
        Ok(Json(handle.warmth_status()).into_response())
    })
    .await
}

/// `GET /warmline/daemon`: the supervised daemon's state, settings and resources.
pub async fn daemon(State(shared): State<Arc<Shared>>) -> Response {
    with_handle(&shared, async |handle| {
        Ok(Json(handle.daemon_status()).into_response())
    })
    .await
}

/// `POST /warmline/daemon/{start,stop,restart}`: answered once the daemon settles.
pub async fn daemon_action(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(action): axum::extract::Path<String>,
) -> Response {
    with_handle(&shared, async move |handle| {
        let status = match action.as_str() {
            "start" => handle.daemon_start().await?,
            "stop" => handle.daemon_stop().await?,
            "restart" => handle.daemon_restart().await?,
            other => {
                return Ok(refuse(RouteError::NoRoute {
                    method: "POST".to_owned(),
                    path: format!("/warmline/daemon/{other}"),
                }));
            }
        };
        Ok(Json(status).into_response())
    })
    .await
}

/// Query of `GET /warmline/history`.
#[derive(Debug, serde::Deserialize)]
pub struct HistoryQuery {
    window: Option<String>,
}

/// `GET /warmline/history[?window=15m]`: the rolling history (default 15 min;
/// per second up to 1 h, per minute up to 24 h).
pub async fn history(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let text = query.window.as_deref().unwrap_or("15m");
    let window = match humantime::parse_duration(text) {
        Ok(window) if !window.is_zero() => window,
        _ => {
            let message = format!("window {text:?} is not a duration such as \"15m\" or \"1h\"");
            return refuse(RouteError::Invalid(message));
        }
    };
    with_handle(&shared, async move |handle| {
        Ok(Json(handle.history(window)).into_response())
    })
    .await
}

/// Query of `GET /warmline/charts/{name}.svg`.
#[derive(Debug, serde::Deserialize)]
pub struct ChartQuery {
    window: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// `light` (the default) or `dark`.
    theme: Option<String>,
}

/// `GET /warmline/charts/{latency,ttft,throughput,hit-rate,models}.svg`: one chart
/// of the rolling history (`?window=15m&width=800&height=360&theme=dark`).
pub async fn chart(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(file): axum::extract::Path<String>,
    Query(query): Query<ChartQuery>,
) -> Response {
    let Some(chart) = file
        .strip_suffix(".svg")
        .and_then(crate::charts::Chart::from_name)
    else {
        return refuse(RouteError::NoChart(file));
    };
    let window = query
        .window
        .as_deref()
        .and_then(|w| humantime::parse_duration(w).ok())
        .unwrap_or(std::time::Duration::from_secs(900));
    let size = (
        query.width.unwrap_or(800).clamp(200, 4000),
        query.height.unwrap_or(360).clamp(150, 3000),
    );
    with_handle(&shared, async move |handle| {
        let theme = match query.theme.as_deref() {
            Some("dark") => crate::charts::Theme::Dark,
            _ => crate::charts::Theme::Light,
        };
        match handle.chart_svg(chart, window, size, theme) {
            Ok(svg) => {
                let mut response = svg.into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("image/svg+xml"),
                );
                Ok(response)
            }
            Err(err) => Ok(refuse(RouteError::Render(err.to_string()))),
        }
    })
    .await
}

/// Query of `GET /warmline/requests` and `GET /warmline/logs`.
#[derive(Debug, serde::Deserialize)]
pub struct TailQuery {
    limit: Option<usize>,
}

/// `GET /warmline/requests[?limit=N]`: the last requests, newest first (default 100).
pub async fn requests(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<TailQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(100);
    with_handle(&shared, async move |handle| {
        Ok(Json(handle.recent_requests(limit)).into_response())
    })
    .await
}

/// `GET /warmline/logs[?limit=N]`: Warmline's own last log lines (default 200).
pub async fn logs(State(shared): State<Arc<Shared>>, Query(query): Query<TailQuery>) -> Response {
    let limit = query.limit.unwrap_or(200);
    with_handle(&shared, async move |handle| {
        Ok(Json(handle.logs(limit)).into_response())
    })
    .await
}

/// Query of `GET /warmline/daemon/logs`.
#[derive(Debug, serde::Deserialize)]
pub struct LogsQuery {
    lines: Option<usize>,
}

/// `GET /warmline/daemon/logs[?lines=N]`: the daemon's last output (default 200).
pub async fn daemon_logs(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<LogsQuery>,
) -> Response {
    let lines = query.lines.unwrap_or(200).min(10_000);
    with_handle(&shared, async move |handle| {
        Ok(Json(handle.daemon_logs(lines)).into_response())
    })
    .await
}

/// Runs `act` with the gateway's handle, rendering its error in Ollama's shape.
async fn with_handle(
    shared: &Shared,
    act: impl AsyncFnOnce(crate::GatewayHandle) -> Result<Response, crate::Error>,
) -> Response {
    let Some(handle) = shared.handle() else {
        return gone();
    };
    match act(handle).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(kind = err.kind(), "{err}");
            err.to_response(Flavor::Ollama)
        }
    }
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
    refuse(RouteError::NoRoute {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    })
}
