//! `/api/pull` and `/api/push` against the fake registry, plus the progress
//! streaming they share with `/api/create`.
//!
//! A transfer is planned as a list of [`Step`]s — progress lines, an install
//! side effect, or a failure — and then either streamed as NDJSON (one line
//! per step, `token_delay` apart) or, with `"stream": false`, replayed
//! silently and answered with the last status (`{"status":"success"}`) or a
//! 500 error. Unknown names fail the way a registry 404 does in Ollama:
//! `pulling manifest` first, then `pull model manifest: file does not exist`.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::api::{ErrorBody, PULL_GO, PUSH_GO, Progress, TransferRequest};
use crate::body::{GoStruct, bind};
use crate::catalog::{ModelName, ModelSpec, catalog_spec, layers};
use crate::error::ApiError;
use crate::run::sleep;
use crate::state::App;
use crate::wire;

/// One step of a transfer.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Progress {
        status: String,
        digest: String,
        total: u64,
        completed: u64,
    },
    /// Put the model in the local store (no output).
    Install {
        name: String,
        spec: &'static ModelSpec,
        digest: String,
        system: Option<String>,
    },
    /// Stop with this error.
    Fail(String),
}

impl Step {
    pub(crate) fn status(s: impl Into<String>) -> Step {
        Step::Progress {
            status: s.into(),
            digest: String::new(),
            total: 0,
            completed: 0,
        }
    }

    pub(crate) fn fail(s: impl Into<String>) -> Step {
        Step::Fail(s.into())
    }

    pub(crate) fn install(
        name: String,
        spec: &'static ModelSpec,
        digest: String,
        system: Option<String>,
    ) -> Step {
        Step::Install {
            name,
            spec,
            digest,
            system,
        }
    }

    fn layer(verb: &str, digest: &str, total: u64, completed: u64) -> Step {
        Step::Progress {
            status: format!("{verb} {}", digest.get(..12).unwrap_or(digest)),
            digest: format!("sha256:{digest}"),
            total,
            completed,
        }
    }
}

/// Progress of one layer: announced, then a few updates up to complete.
fn layer_steps(verb: &str, digest: &str, size: u64, out: &mut Vec<Step>) {
    out.push(Step::layer(verb, digest, size, 0));
    let parts = if size > 1_000_000 { 4 } else { 1 };
    for i in 1..=parts {
        out.push(Step::layer(verb, digest, size, size * i / parts));
    }
}

fn pull_steps(name: &str) -> Vec<Step> {
    let mut steps = vec![Step::status("pulling manifest")];
    let Some(spec) = catalog_spec(name) else {
        steps.push(Step::fail("pull model manifest: file does not exist"));
        return steps;
    };
    for (_, digest, size) in layers(spec) {
        layer_steps("pulling", &digest, size, &mut steps);
    }
    steps.push(Step::status("verifying sha256 digest"));
    steps.push(Step::status("writing manifest"));
    steps.push(Step::install(
        spec.name.to_owned(),
        spec,
        spec.digest.to_owned(),
        None,
    ));
    steps.push(Step::status("success"));
    steps
}

fn push_steps(app: &App, name: &str) -> Vec<Step> {
    let mut steps = vec![Step::status("retrieving manifest")];
    let Some(model) = app.registry.get(name) else {
        steps.push(Step::fail("file does not exist"));
        return steps;
    };
    for (_, digest, size) in layers(model.spec) {
        layer_steps("pushing", &digest, size, &mut steps);
    }
    steps.push(Step::status("pushing manifest"));
    steps.push(Step::status("success"));
    steps
}

async fn transfer(app: App, body: Bytes, schema: &GoStruct, push: bool) -> Response {
    let req: TransferRequest = match bind(&body, schema) {
        Ok(r) => r,
        Err(e) => return ApiError::from_bind(e).into_response(),
    };
    let name = crate::api::model_or_name(req.model, req.name);
    if push && name.is_empty() {
        return ApiError::bad("model is required").into_response();
    }
    if ModelName::parse(&name).is_none() {
        return ApiError::bad("invalid model name").into_response();
    }
    let steps = if push {
        push_steps(&app, &name)
    } else {
        pull_steps(&name)
    };
    respond(app, steps, req.stream.unwrap_or(true)).await
}

/// `POST /api/pull`.
pub(crate) async fn pull(State(app): State<App>, body: Bytes) -> Response {
    transfer(app, body, &PULL_GO, false).await
}

/// `POST /api/push`.
pub(crate) async fn push(State(app): State<App>, body: Bytes) -> Response {
    transfer(app, body, &PUSH_GO, true).await
}

/// Runs a step's side effect; returns its output line, if any.
fn apply(app: &App, step: &Step) -> Option<Bytes> {
    match step {
        Step::Progress {
            status,
            digest,
            total,
            completed,
        } => Some(wire::ndjson_line(&Progress {
            status,
            digest,
            total: *total,
            completed: *completed,
        })),
        Step::Install {
            name,
            spec,
            digest,
            system,
        } => {
            if let Err(e) = app
                .registry
                .install(name, spec, digest.clone(), system.clone())
            {
                tracing::warn!(model = %name, error = ?e, "install failed");
            }
            None
        }
        Step::Fail(msg) => Some(wire::ndjson_line(&ErrorBody { error: msg })),
    }
}

/// Streams `steps` as NDJSON, or replays them and answers once.
pub(crate) async fn respond(app: App, steps: Vec<Step>, stream: bool) -> Response {
    let delay = app.knobs.load().token_delay;
    if !stream {
        for step in &steps {
            if let Step::Fail(msg) = step {
                return ApiError::Runner(msg.clone()).into_response();
            }
            sleep(delay).await;
            apply(&app, step);
        }
        return wire::json(StatusCode::OK, &Progress::status("success"));
    }
    let state = (app, steps.into_iter(), false);
    let lines =
        futures_util::stream::unfold(state, move |(app, mut steps, mut started)| async move {
            loop {
                let step = steps.next()?;
                if started {
                    sleep(delay).await;
                }
                started = true;
                let failed = matches!(step, Step::Fail(_));
                if let Some(line) = apply(&app, &step) {
                    if failed {
                        // Nothing after an error line.
                        steps = Vec::new().into_iter();
                    }
                    return Some((Ok::<_, std::io::Error>(line), (app, steps, started)));
                }
            }
        });
    wire::response(StatusCode::OK, wire::NDJSON, Body::from_stream(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_plan_has_ollamas_statuses() {
        let steps = pull_steps("tinyllama");
        let statuses: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Progress { status, .. } => Some(status.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("pulling manifest")
        );
        assert!(
            statuses
                .iter()
                .any(|s| s.starts_with("pulling ") && s.len() == 20)
        );
        assert_eq!(
            &statuses[statuses.len() - 3..],
            ["verifying sha256 digest", "writing manifest", "success"]
        );
        assert!(steps.iter().any(|s| matches!(s, Step::Install { .. })));
    }

    #[test]
    fn unknown_names_fail_after_the_manifest_line() {
        let steps = pull_steps("no-such-model");
        assert_eq!(steps.len(), 2);
        assert!(
            matches!(&steps[1], Step::Fail(m) if m == "pull model manifest: file does not exist")
        );
    }
}
