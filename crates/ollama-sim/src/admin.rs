//! The simulator's own routes under `/_sim/` (not part of Ollama's API).
//!
//! | route | does |
//! |---|---|
//! | `GET /_sim/counters` | [`Counters`](crate::Counters) snapshot as JSON |
//! | `POST /_sim/reset` | zero the counters, answer the fresh snapshot |
//! | `GET /_sim/knobs` | current [`Knobs`](crate::Knobs) |
//! | `PUT /_sim/knobs` | merge a partial knobs object, answer the result (400 on unknown fields or bad rates) |
//!
//! These routes skip the first-byte stall so a test can always reach them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::ApiError;
use crate::state::App;
use crate::wire;

/// `GET /_sim/counters`.
pub(crate) async fn counters(State(app): State<App>) -> Response {
    wire::json(StatusCode::OK, &app.counters.snapshot())
}

/// `POST /_sim/reset`.
pub(crate) async fn reset(State(app): State<App>) -> Response {
    app.counters.reset();
    wire::json(StatusCode::OK, &app.counters.snapshot())
}

/// `GET /_sim/knobs`.
pub(crate) async fn get_knobs(State(app): State<App>) -> Response {
    wire::json(StatusCode::OK, &*app.knobs.load())
}

/// `PUT /_sim/knobs`.
pub(crate) async fn put_knobs(State(app): State<App>, body: Bytes) -> Response {
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return ApiError::BadRequest(e.to_string()).into_response(),
    };
    match app.knobs.load().merged(&patch) {
        Ok(knobs) => {
            let resp = wire::json(StatusCode::OK, &knobs);
            tracing::info!(?knobs, "knobs changed");
            app.knobs.store(knobs);
            resp
        }
        Err(e) => ApiError::BadRequest(e).into_response(),
    }
}
