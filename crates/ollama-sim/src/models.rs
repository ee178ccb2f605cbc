//! Model management and introspection routes: `/`, `/api/version`,
//! `/api/status`, `/api/tags`, `/api/ps`, `/api/show`, `/api/create`,
//! `/api/copy`, `/api/delete` and `/api/blobs/:digest`.
//!
//! Read routes serve the registry's pre-serialised snapshots; mutations go
//! through [`Registry`](crate::catalog::Registry), which rebuilds them.
//! Blobs are only remembered by digest (the bytes are hashed and dropped).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use crate::api::{
    COPY_GO, CREATE_GO, CopyRequest, CreateRequest, DELETE_GO, DeleteRequest, ModelList,
    ProcessModel, SHOW_GO, ShowRequest, VERSION,
};
use crate::body::bind;
use crate::catalog::{ModelName, ModelSpec, StoreError, catalog_spec, layer_digest};
use crate::clock::Timestamp;
use crate::error::ApiError;
use crate::pull::{self, Step};
use crate::sha256::{Sha256, hex_digest};
use crate::state::App;
use crate::wire;

/// `GET|HEAD /`.
pub(crate) async fn root() -> Response {
    wire::response(StatusCode::OK, wire::TEXT, "Ollama is running")
}

/// `GET|HEAD /api/version`.
pub(crate) async fn version() -> Response {
    wire::json(StatusCode::OK, &json!({ "version": VERSION }))
}

/// `GET /api/status`.
pub(crate) async fn status(State(app): State<App>) -> Response {
    let source = if app.ollama.no_cloud { "env" } else { "none" };
    wire::json(
        StatusCode::OK,
        &json!({"cloud": {"disabled": app.ollama.no_cloud, "source": source}}),
    )
}

/// `GET|HEAD /api/tags`.
pub(crate) async fn tags(State(app): State<App>) -> Response {
    wire::json_raw(StatusCode::OK, app.registry.snapshot().tags.clone())
}

/// `GET /api/ps`.
pub(crate) async fn ps(State(app): State<App>) -> Response {
    let entries = app.sched.ps();
    let list = ModelList {
        models: entries
            .iter()
            .map(|e| ProcessModel {
                name: &e.model.name,
                model: &e.model.name,
                size: e.size,
                digest: &e.model.digest,
                details: e.model.details(),
                expires_at: Timestamp(e.expires_at),
                size_vram: e.size,
                context_length: e.context_length,
            })
            .collect(),
    };
    wire::json(StatusCode::OK, &list)
}

/// `POST /api/show`.
pub(crate) async fn show(State(app): State<App>, body: Bytes) -> Response {
    let result = (|| {
        let req: ShowRequest = bind(&body, &SHOW_GO).map_err(ApiError::from_bind)?;
        let typed = crate::api::model_or_name(req.model, req.name);
        if typed.is_empty() {
            return Err(ApiError::bad("model is required"));
        }
        let not_found = || {
            let shown = ModelName::parse(&typed).map_or_else(|| typed.clone(), |n| n.display());
            ApiError::NotFound(format!("model '{shown}' not found"))
        };
        let m = app.registry.get(&typed).ok_or_else(not_found)?;
        let bytes = if req.verbose.unwrap_or(false) {
            m.show_verbose.clone()
        } else {
            m.show.clone()
        };
        Ok::<_, ApiError>(wire::json_raw(StatusCode::OK, bytes))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/copy`.
pub(crate) async fn copy(State(app): State<App>, body: Bytes) -> Response {
    let result = (|| {
        let req: CopyRequest = bind(&body, &COPY_GO).map_err(ApiError::from_bind)?;
        let (src, dst) = (
            req.source.unwrap_or_default(),
            req.destination.unwrap_or_default(),
        );
        if ModelName::parse(&src).is_none() {
            return Err(ApiError::BadRequest(format!(
                "source {} is invalid",
                crate::api::go_quote(&src)
            )));
        }
        if ModelName::parse(&dst).is_none() {
            return Err(ApiError::BadRequest(format!(
                "destination {} is invalid",
                crate::api::go_quote(&dst)
            )));
        }
        match app.registry.copy(&src, &dst) {
            Ok(()) => Ok(wire::empty(StatusCode::OK)),
            Err(_) => Err(ApiError::NotFound(format!(
                "model {} not found",
                crate::api::go_quote(&src)
            ))),
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /api/delete`.
pub(crate) async fn delete(State(app): State<App>, body: Bytes) -> Response {
    let result = (|| {
        let req: DeleteRequest = bind(&body, &DELETE_GO).map_err(ApiError::from_bind)?;
        let name = crate::api::model_or_name(req.model, req.name);
        match app.registry.delete(&name) {
            Ok(()) => Ok(wire::empty(StatusCode::OK)),
            Err(StoreError::InvalidName) => Err(ApiError::BadRequest(format!(
                "name {} is invalid",
                crate::api::go_quote(&name)
            ))),
            Err(StoreError::NotFound) => {
                Err(ApiError::NotFound(format!("model '{name}' not found")))
            }
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `sha256:<64 hex>` (Ollama also accepts `sha256-`), normalised to `sha256:`.
fn parse_digest(raw: &str) -> Option<String> {
    let hex = raw
        .strip_prefix("sha256:")
        .or_else(|| raw.strip_prefix("sha256-"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// `HEAD /api/blobs/{digest}`.
pub(crate) async fn head_blob(State(app): State<App>, Path(digest): Path<String>) -> Response {
    match parse_digest(&digest) {
        None => ApiError::bad("invalid digest format").into_response(),
        Some(d) if app.registry.has_blob(&d) => wire::empty(StatusCode::OK),
        Some(_) => ApiError::NotFound(format!("blob {} not found", crate::api::go_quote(&digest)))
            .into_response(),
    }
}

/// `POST /api/blobs/{digest}`: hashes the upload and checks it.
pub(crate) async fn post_blob(
    State(app): State<App>,
    Path(digest): Path<String>,
    body: Body,
) -> Response {
    let Some(expected) = parse_digest(&digest) else {
        return ApiError::bad("invalid digest format").into_response();
    };
    if app.registry.has_blob(&expected) {
        return wire::empty(StatusCode::OK);
    }
    let mut hasher = Sha256::default();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => hasher.update(&bytes),
            Err(e) => return ApiError::bad(e.to_string()).into_response(),
        }
    }
    let got = format!("sha256:{}", hasher.finish_hex());
    if got != expected {
        return ApiError::BadRequest(format!(
            "digest mismatch, expected {}, got {}",
            crate::api::go_quote(&digest),
            crate::api::go_quote(&got)
        ))
        .into_response();
    }
    app.registry.add_blob(expected);
    wire::empty(StatusCode::CREATED)
}

/// The model a `from` names: installed first, else the fake registry.
fn base_spec(app: &App, from: &str) -> Option<&'static ModelSpec> {
    app.registry
        .get(from)
        .map(|m| m.spec)
        .or_else(|| catalog_spec(from))
}

/// `POST /api/create`: from an existing model (or uploaded blobs), with an
/// optional system prompt; progress like Ollama's, then installs it.
pub(crate) async fn create(State(app): State<App>, body: Bytes) -> Response {
    let req: CreateRequest = match bind(&body, &CREATE_GO) {
        Ok(r) => r,
        Err(e) => return ApiError::from_bind(e).into_response(),
    };
    let name = crate::api::model_or_name(req.model, req.name);
    if ModelName::parse(&name).is_none() {
        return ApiError::bad("invalid model name").into_response();
    }
    let stream = req.stream.unwrap_or(true);
    let files: Vec<String> = req
        .files
        .unwrap_or_default()
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let from = req.from.filter(|f| !f.is_empty());
    let (spec, mut steps) = match (&from, files.is_empty()) {
        (Some(from), _) => match base_spec(&app, from) {
            Some(spec) => {
                let steps = ["model", "template", "license", "params"]
                    .iter()
                    .map(|l| {
                        Step::status(format!(
                            "using existing layer sha256:{}",
                            layer_digest(spec, l)
                        ))
                    })
                    .collect();
                (Some(spec), steps)
            }
            None => (
                None,
                vec![Step::fail("pull model manifest: file does not exist")],
            ),
        },
        (None, false) => {
            let missing = files
                .iter()
                .find(|d| parse_digest(d).is_none_or(|d| !app.registry.has_blob(&d)));
            match missing {
                Some(d) => (None, vec![Step::fail(format!("blob {d} not found"))]),
                None => {
                    let steps = files
                        .iter()
                        .map(|d| Step::status(format!("using existing layer {d}")))
                        .collect();
                    // Blob-built models behave like a small llama.
                    (catalog_spec("tinyllama"), steps)
                }
            }
        }
        (None, true) => {
            return ApiError::bad("neither 'from' or 'files' was specified").into_response();
        }
    };
    if let Some(spec) = spec {
        if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
            steps.push(Step::status(format!(
                "creating new layer sha256:{}",
                hex_digest(system.as_bytes())
            )));
        }
        steps.push(Step::status("writing manifest"));
        let digest = hex_digest(
            format!(
                "{name}\n{}\n{}",
                spec.digest,
                req.system.as_deref().unwrap_or_default()
            )
            .as_bytes(),
        );
        steps.push(Step::install(
            name,
            spec,
            digest,
            req.system.filter(|s| !s.is_empty()),
        ));
        steps.push(Step::status("success"));
    }
    pull::respond(app, steps, stream).await
}
