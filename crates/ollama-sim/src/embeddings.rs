//! `/api/embed`, `/api/embeddings` and the vectors behind `/v1/embeddings`.
//!
//! A vector is a pure function of the model and the input text: FNV-1a of
//! both seeds SplitMix64, which fills `embedding_length` values in [-1, 1);
//! `/api/embed` L2-normalises them (and re-normalises after `dimensions`
//! truncation), the legacy `/api/embeddings` returns them raw, as Ollama's
//! handlers do. Embedding requests go through the scheduler like any other
//! inference (load delay, one slot per embedding model).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::api::{
    EMBED_GO, EMBEDDINGS_GO, EmbedRequest, EmbedResponse, EmbeddingResponse, EmbeddingsRequest,
};
use crate::body::bind;
use crate::catalog::{Installed, ModelName};
use crate::error::ApiError;
use crate::generation::{Fnv, Options, Rng, count_tokens};
use crate::keepalive::{self, KeepAlive};
use crate::run::sleep;
use crate::scheduler::SchedRequest;
use crate::state::App;
use crate::wire;

/// The unnormalised vector for `input` under `model`.
pub(crate) fn raw_vector(model: &str, input: &str, dims: usize) -> Vec<f64> {
    let seed = Fnv::default().str(model).str(input).finish();
    let mut rng = Rng::new(seed);
    (0..dims).map(|_| rng.unit()).collect()
}

/// L2-normalised `f32` vector, optionally truncated to `dimensions` first.
pub(crate) fn vector(model: &str, input: &str, dims: usize, dimensions: Option<usize>) -> Vec<f32> {
    let mut v = raw_vector(model, input, dims);
    if let Some(d) = dimensions.filter(|d| *d > 0 && *d < dims) {
        v.truncate(d);
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    v.iter().map(|x| (x * scale) as f32).collect()
}

/// Inputs of an embed request, validated.
#[derive(Debug)]
pub(crate) struct EmbedJob {
    pub model: Arc<Installed>,
    pub inputs: Vec<String>,
    pub truncate: bool,
    pub dimensions: Option<usize>,
    pub keep_alive: Option<KeepAlive>,
    pub options: Options,
}

/// The result of an embed request.
#[derive(Debug)]
pub(crate) struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u64,
    pub total: Duration,
    pub load: Duration,
}

/// `input` of `/api/embed`: a string or an array of strings.
pub(crate) fn inputs(input: Option<Value>) -> Result<Vec<String>, ApiError> {
    let invalid = || ApiError::bad("invalid input type");
    match input {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// Resolves the model of an embed request with `/api/embed`'s messages.
pub(crate) fn embed_model(app: &App, typed: &str) -> Result<Arc<Installed>, ApiError> {
    if ModelName::parse(typed).is_none() {
        return Err(ApiError::NotFound(format!("model '{typed}' not found")));
    }
    app.registry.get(typed).ok_or_else(|| {
        ApiError::NotFound(format!("model \"{typed}\" not found, try pulling it first"))
    })
}

/// Schedules the model and computes the vectors (empty input: load only).
pub(crate) async fn run(app: &App, job: EmbedJob, started: Instant) -> Result<Embedded, ApiError> {
    let sched = SchedRequest {
        model: job.model.clone(),
        num_ctx: job.options.explicit_num_ctx(),
        keep_alive: job.keep_alive,
    };
    if job.inputs.is_empty() {
        app.sched.load_only(sched).await?;
        return Ok(Embedded {
            vectors: Vec::new(),
            prompt_tokens: 0,
            total: Duration::ZERO,
            load: Duration::ZERO,
        });
    }
    let ctx = u64::from(job.model.spec.context_length);
    let prompt_tokens: u64 = job.inputs.iter().map(|s| count_tokens(s).max(1)).sum();
    if !job.truncate && job.inputs.iter().any(|s| count_tokens(s) > ctx) {
        return Err(ApiError::bad("the input length exceeds the context length"));
    }
    let lease = app.sched.acquire(sched, started).await?;
    sleep(app.knobs.load().prefill_delay).await;
    let spec = job.model.spec;
    let dims = spec.embedding_length as usize;
    let vectors = job
        .inputs
        .iter()
        .map(|s| vector(&job.model.name, s, dims, job.dimensions))
        .collect();
    let load = lease.load_duration;
    drop(lease);
    app.counters.embeddings.fetch_add(1, Relaxed);
    Ok(Embedded {
        vectors,
        prompt_tokens,
        total: started.elapsed(),
        load,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn options(map: Option<&Map<String, Value>>) -> Result<Options, ApiError> {
    Options::from_map(map).map_err(ApiError::Runner)
}

/// `POST /api/embed`.
pub(crate) async fn embed(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let req: EmbedRequest = bind(&body, &EMBED_GO).map_err(ApiError::from_bind)?;
        let keep_alive = keepalive::parse_request(&req.keep_alive).map_err(ApiError::BadRequest)?;
        let inputs = inputs(req.input)?;
        let typed = req.model.unwrap_or_default();
        let model = embed_model(&app, &typed)?;
        let job = EmbedJob {
            model,
            inputs,
            truncate: req.truncate.unwrap_or(true),
            dimensions: req.dimensions.and_then(|d| usize::try_from(d).ok()),
            keep_alive,
            options: options(req.options.as_ref())?,
        };
        let out = run(&app, job, started).await?;
        let resp = EmbedResponse {
            model: &typed,
            embeddings: &out.vectors,
            total_duration: nanos(out.total),
            load_duration: nanos(out.load),
            prompt_eval_count: out.prompt_tokens,
        };
        Ok::<_, ApiError>(wire::json(StatusCode::OK, &resp))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/embeddings` (legacy: one prompt, raw vector).
pub(crate) async fn embeddings(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let result = async {
        let req: EmbeddingsRequest = bind(&body, &EMBEDDINGS_GO).map_err(ApiError::from_bind)?;
        let keep_alive = keepalive::parse_request(&req.keep_alive).map_err(ApiError::BadRequest)?;
        let typed = req.model.unwrap_or_default();
        if typed.is_empty() {
            return Err(ApiError::bad("model is required"));
        }
        let model = app.registry.get(&typed).ok_or_else(|| {
            ApiError::NotFound(format!("model \"{typed}\" not found, try pulling it first"))
        })?;
        let prompt = req.prompt.unwrap_or_default();
        let job = EmbedJob {
            model: model.clone(),
            inputs: if prompt.is_empty() {
                Vec::new()
            } else {
                vec![prompt.clone()]
            },
            truncate: true,
            dimensions: None,
            keep_alive,
            options: options(req.options.as_ref())?,
        };
        run(&app, job, started).await?;
        let embedding = if prompt.is_empty() {
            Vec::new()
        } else {
            raw_vector(&model.name, &prompt, model.spec.embedding_length as usize)
        };
        Ok(wire::json(
            StatusCode::OK,
            &EmbeddingResponse {
                embedding: &embedding,
            },
        ))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_and_unit_length() {
        let a = vector("nomic-embed-text:latest", "hello", 768, None);
        let b = vector("nomic-embed-text:latest", "hello", 768, None);
        assert_eq!(a, b);
        assert_eq!(a.len(), 768);
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_ne!(a, vector("nomic-embed-text:latest", "hello!", 768, None));
        assert_ne!(a, vector("all-minilm:latest", "hello", 768, None));
    }

    #[test]
    fn dimensions_truncate_and_renormalise() {
        let v = vector("m", "x", 768, Some(64));
        assert_eq!(v.len(), 64);
        let norm: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn input_shapes() {
        assert_eq!(inputs(None).ok(), Some(vec![]));
        assert_eq!(inputs(Some(Value::from(""))).ok(), Some(vec![]));
        assert_eq!(
            inputs(Some(serde_json::json!(["a", "b"])))
                .ok()
                .map(|v| v.len()),
            Some(2)
        );
        assert_eq!(
            inputs(Some(serde_json::json!([1]))).err(),
            Some(ApiError::bad("invalid input type"))
        );
    }
}
