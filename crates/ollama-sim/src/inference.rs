//! The generation pipeline shared by `/api/generate`, `/api/chat` and the
//! `/v1` chat and completion routes.
//!
//! ```text
//! body ─► GenInput ─► plan(): name, model, unload?, capabilities, options
//!                        │
//!          Unload ◄──────┼──────► Load (scheduler only, "done_reason":"load")
//!                        ▼
//!                   start(): count, schedule (load + slot), inject faults,
//!                            plan the reply ─► Running
//!                        │
//!            non-stream: finish() sleeps, one object │ stream: stream.rs
//! ```
//!
//! Validation follows Ollama's handler order so that a request with several
//! problems gets the same error Ollama would return first.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::api::{
    self, CHAT_GO, ChatChunk, ChatRequest, GENERATE_GO, GenerateChunk, GenerateRequest, Message,
    Metrics, Tool, go_quote,
};
use crate::body::bind;
use crate::catalog::{Installed, ModelName};
use crate::counters::Outcome;
use crate::error::{ApiError, RUNNER_STOPPED};
use crate::generation::{Fnv, Options, Reply, ReplyPlan, context_tokens, count_tokens};
use crate::keepalive::{self, KeepAlive};
use crate::run::Running;
use crate::scheduler::SchedRequest;
use crate::state::App;
use crate::stream::{self, Flavor};
use crate::wire;

/// Which native endpoint semantics apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GenKind {
    Generate,
    Chat,
}

/// A generation request, normalised from any of the four routes.
#[derive(Debug, Default)]
pub(crate) struct GenInput {
    pub chat: bool,
    /// The model name as typed (echoed in responses and some errors).
    pub model: String,
    pub prompt: String,
    pub suffix: String,
    pub system: String,
    pub template: String,
    pub raw: bool,
    pub context_in: usize,
    pub messages: Vec<Message>,
    /// `/api/generate` carried images.
    pub images: bool,
    pub tools: Vec<Tool>,
    pub format: Option<Value>,
    pub options: Option<Map<String, Value>>,
    pub keep_alive: Option<KeepAlive>,
    pub think: Option<bool>,
    pub stream: bool,
}

impl GenInput {
    pub(crate) fn kind(&self) -> GenKind {
        if self.chat {
            GenKind::Chat
        } else {
            GenKind::Generate
        }
    }

    fn is_empty(&self) -> bool {
        if self.chat {
            self.messages.is_empty()
        } else {
            self.prompt.is_empty()
        }
    }

    fn has_images(&self) -> bool {
        self.images
            || self
                .messages
                .iter()
                .any(|m| m.images.as_ref().is_some_and(|i| !i.is_empty()))
    }

    /// Hash of everything that shapes the reply (for deterministic output).
    fn fingerprint(&self, model: &str, o: &Options) -> u64 {
        let mut h = Fnv::default();
        h.str(model)
            .str(&self.system)
            .str(&self.prompt)
            .str(&self.suffix);
        for m in &self.messages {
            h.str(m.role.as_deref().unwrap_or_default())
                .str(m.content.as_deref().unwrap_or_default());
        }
        for t in &self.tools {
            h.str(
                t.function
                    .as_ref()
                    .and_then(|f| f.name.as_deref())
                    .unwrap_or_default(),
            );
        }
        if let Some(f) = &self.format {
            h.str(&f.to_string());
        }
        h.u64(o.temperature.map_or(u64::MAX, f64::to_bits))
            .u64(o.seed.unwrap_or(-1) as u64)
            .u64(o.num_predict.unwrap_or(-1) as u64)
            .u64(o.top_k.unwrap_or(-1) as u64)
            .u64(o.top_p.map_or(u64::MAX, f64::to_bits));
        for s in &o.stop {
            h.str(s);
        }
        h.finish()
    }

    fn prompt_tokens(&self) -> u64 {
        let mut n =
            count_tokens(&self.system) + count_tokens(&self.prompt) + count_tokens(&self.suffix);
        for m in &self.messages {
            n += 4 + count_tokens(m.content.as_deref().unwrap_or_default());
        }
        n + self.context_in as u64 + 8
    }
}

/// Native `keep_alive` / `think` / `top_logprobs` validation (decode-time 400s).
fn common_fields(
    keep_alive: &keepalive::RawKeepAlive,
    think: &api::RawThink,
    top_logprobs: Option<i64>,
) -> Result<(Option<KeepAlive>, Option<bool>), ApiError> {
    let ka = keepalive::parse_request(keep_alive).map_err(ApiError::BadRequest)?;
    let think = think.resolve().map_err(ApiError::BadRequest)?;
    if top_logprobs.is_some_and(|n| !(0..=20).contains(&n)) {
        return Err(ApiError::bad("top_logprobs must be between 0 and 20"));
    }
    Ok((ka, think))
}

impl TryFrom<GenerateRequest> for GenInput {
    type Error = ApiError;
    fn try_from(r: GenerateRequest) -> Result<GenInput, ApiError> {
        let (keep_alive, think) = common_fields(&r.keep_alive, &r.think, r.top_logprobs)?;
        Ok(GenInput {
            chat: false,
            model: r.model.unwrap_or_default(),
            prompt: r.prompt.unwrap_or_default(),
            suffix: r.suffix.unwrap_or_default(),
            system: r.system.unwrap_or_default(),
            template: r.template.unwrap_or_default(),
            raw: r.raw.unwrap_or(false),
            context_in: r.context.map_or(0, |c| c.len()),
            messages: Vec::new(),
            images: r.images.is_some_and(|i| !i.is_empty()),
            tools: Vec::new(),
            format: r.format,
            options: r.options,
            keep_alive,
            think,
            stream: r.stream.unwrap_or(true),
        })
    }
}

impl TryFrom<ChatRequest> for GenInput {
    type Error = ApiError;
    fn try_from(r: ChatRequest) -> Result<GenInput, ApiError> {
        let (keep_alive, think) = common_fields(&r.keep_alive, &r.think, r.top_logprobs)?;
        let mut messages = r.messages.unwrap_or_default();
        for m in &mut messages {
            if let Some(role) = &mut m.role {
                role.make_ascii_lowercase();
            }
        }
        Ok(GenInput {
            chat: true,
            model: r.model.unwrap_or_default(),
            messages,
            tools: r.tools.unwrap_or_default(),
            format: r.format,
            options: r.options,
            keep_alive,
            think,
            stream: r.stream.unwrap_or(true),
            ..GenInput::default()
        })
    }
}

/// What a validated request turns into.
#[derive(Debug)]
pub(crate) enum Plan {
    /// `keep_alive: 0` with nothing to generate.
    Unload,
    /// Nothing to generate: load the model and report `done_reason: load`.
    Load(SchedRequest),
    Generate(Box<Job>),
}

/// A generation that passed validation.
#[derive(Debug)]
pub(crate) struct Job {
    pub input: GenInput,
    pub sched: SchedRequest,
    pub options: Options,
    pub think: bool,
}

/// Validates `input` in Ollama's order and decides what to do.
pub(crate) fn plan(app: &App, input: GenInput) -> Result<Plan, ApiError> {
    if let Some(f) = &input.format {
        let ok =
            matches!(f, Value::Object(_)) || f.as_str() == Some("json") || f.as_str() == Some("");
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "invalid format: {f}; expected \"json\" or a valid JSON Schema object"
            )));
        }
    }
    let typed = input.model.as_str();
    let not_found = || ApiError::NotFound(format!("model '{typed}' not found"));
    let Some(name) = ModelName::parse(typed) else {
        return Err(match input.kind() {
            GenKind::Generate => not_found(),
            GenKind::Chat => ApiError::bad("model is required"),
        });
    };
    let model = app.registry.get(typed).ok_or_else(not_found)?;
    if input.is_empty() && input.keep_alive.is_some_and(KeepAlive::is_zero) {
        app.sched.unload(&model);
        return Ok(Plan::Unload);
    }
    if !input.chat
        && input.raw
        && (!input.template.is_empty() || !input.system.is_empty() || input.context_in > 0)
    {
        return Err(ApiError::bad(
            "raw mode does not support template, system, or context",
        ));
    }
    check_capabilities(&input, &model, &name)?;
    let options = Options::from_map(input.options.as_ref()).map_err(ApiError::Runner)?;
    let sched = SchedRequest {
        model: model.clone(),
        num_ctx: options.explicit_num_ctx(),
        keep_alive: input.keep_alive,
    };
    if input.is_empty() {
        return Ok(Plan::Load(sched));
    }
    let think = input.think.unwrap_or_else(|| model.spec.has("thinking"));
    Ok(Plan::Generate(Box::new(Job {
        input,
        sched,
        options,
        think,
    })))
}

fn check_capabilities(
    input: &GenInput,
    model: &Installed,
    name: &ModelName,
) -> Result<(), ApiError> {
    let spec = model.spec;
    let typed = go_quote(&input.model);
    if !spec.has("completion") {
        let what = if input.chat { "chat" } else { "generate" };
        return Err(ApiError::BadRequest(format!(
            "{typed} does not support {what}"
        )));
    }
    let full = name.full();
    if !input.suffix.is_empty() && !spec.has("insert") {
        return Err(ApiError::BadRequest(format!(
            "{full} does not support insert"
        )));
    }
    if !input.tools.is_empty() && !spec.has("tools") {
        return Err(ApiError::BadRequest(format!(
            "{full} does not support tools"
        )));
    }
    if input.has_images() && !spec.has("vision") {
        return Err(ApiError::BadRequest(format!(
            "{full} does not support vision"
        )));
    }
    if input.think == Some(true) && !spec.has("thinking") {
        return Err(ApiError::BadRequest(format!(
            "{typed} does not support thinking"
        )));
    }
    Ok(())
}

/// Counts, schedules, injects faults and plans the reply.
pub(crate) async fn start(app: &App, job: Job, started: Instant) -> Result<Running, ApiError> {
    let guard = app.counters.generation();
    let lease = match app.sched.acquire(job.sched.clone(), started).await {
        Ok(lease) => lease,
        Err(e) => {
            guard.settle(Outcome::Failed);
            return Err(e.into());
        }
    };
    let knobs = app.knobs.load();
    if knobs.error_rate > 0.0 && rand::random::<f64>() < knobs.error_rate {
        guard.settle(Outcome::Failed);
        return Err(ApiError::Runner(RUNNER_STOPPED.to_owned()));
    }
    let input = &job.input;
    let model_name = &lease.runner().model.name;
    let hash = input.fingerprint(model_name, &job.options);
    let seed = if job.options.deterministic() {
        hash
    } else {
        rand::random()
    };
    // A tool call is the natural answer to a user turn when tools are offered;
    // after a tool result the model answers in text.
    let call_tools = input.messages.last().and_then(|m| m.role.as_deref()) == Some("user");
    let reply = Reply::plan(&ReplyPlan {
        seed,
        tokens: knobs.tokens_per_reply,
        num_predict: job.options.num_predict,
        think: job.think,
        tools: call_tools.then_some(input.tools.as_slice()),
        format: input.format.as_ref().filter(|f| f.as_str() != Some("")),
    });
    let prompt_tokens = input.prompt_tokens();
    let context = if input.chat || input.raw {
        Vec::new()
    } else {
        context_tokens(seed, prompt_tokens + reply.eval_count)
    };
    Ok(Running {
        load_duration: lease.load_duration,
        lease: Some(lease),
        guard: Some(guard),
        reply,
        knobs,
        started,
        prompt_tokens,
        context,
        model: job.input.model,
    })
}

// ---------------------------------------------------------------------------
// Native handlers

/// `POST /api/generate`.
pub(crate) async fn generate(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let input = bind::<GenerateRequest>(&body, &GENERATE_GO)
        .map_err(ApiError::from_bind)
        .and_then(GenInput::try_from);
    match input {
        Ok(input) => native(&app, input, started).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /api/chat`.
pub(crate) async fn chat(State(app): State<App>, body: Bytes) -> Response {
    let started = Instant::now();
    let input = bind::<ChatRequest>(&body, &CHAT_GO)
        .map_err(ApiError::from_bind)
        .and_then(GenInput::try_from);
    match input {
        Ok(input) => native(&app, input, started).await,
        Err(e) => e.into_response(),
    }
}

async fn native(app: &App, input: GenInput, started: Instant) -> Response {
    let (kind, stream, echo) = (input.kind(), input.stream, input.model.clone());
    let result = async {
        match plan(app, input)? {
            Plan::Unload => Ok::<_, ApiError>(done_only(kind, &echo, "unload")),
            Plan::Load(req) => {
                app.sched.load_only(req).await?;
                Ok(done_only(kind, &echo, "load"))
            }
            Plan::Generate(job) => {
                let mut run = start(app, *job, started).await?;
                let flavor = match kind {
                    GenKind::Generate => Flavor::Generate,
                    GenKind::Chat => Flavor::Chat,
                };
                if stream {
                    return Ok(stream::response(run, flavor));
                }
                let m = run.finish().await;
                Ok(native_whole(&run, kind, m))
            }
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The single object of a load or unload request (no metrics, never streamed).
fn done_only(kind: GenKind, model: &str, reason: &str) -> Response {
    match kind {
        GenKind::Generate => {
            let mut c = GenerateChunk::new(model);
            c.done = true;
            c.done_reason = reason;
            wire::json(StatusCode::OK, &c)
        }
        GenKind::Chat => {
            let mut c = ChatChunk::new(model);
            c.done = true;
            c.done_reason = reason;
            wire::json(StatusCode::OK, &c)
        }
    }
}

/// The non-streaming response: all text concatenated, final metrics.
fn native_whole(run: &Running, kind: GenKind, m: Metrics) -> Response {
    let r = &run.reply;
    match kind {
        GenKind::Generate => {
            let mut c = GenerateChunk::new(&run.model).with_metrics(m);
            c.response = &r.content;
            c.thinking = &r.thinking;
            c.done = true;
            c.done_reason = r.done_reason;
            c.context = &run.context;
            c.tool_calls = &r.tool_calls;
            wire::json(StatusCode::OK, &c)
        }
        GenKind::Chat => {
            let mut c = ChatChunk::new(&run.model).with_metrics(m);
            c.message.content = &r.content;
            c.message.thinking = &r.thinking;
            c.message.tool_calls = &r.tool_calls;
            c.done = true;
            c.done_reason = r.done_reason;
            wire::json(StatusCode::OK, &c)
        }
    }
}
