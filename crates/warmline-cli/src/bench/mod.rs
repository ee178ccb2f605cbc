//! `warmline bench`: argument parsing, a progress line and the report's rendering
//! around the load generator ([`load`]) and the trace replayer ([`trace`]).
//!
//! The benchmark lives in the CLI, not in the core: it is a client of the
//! gateway (it talks HTTP to any Ollama-compatible endpoint, Warmline or not), and
//! the core carries only what a running gateway needs.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

pub mod load;
pub mod trace;

use self::load::{BenchConfig, BenchReport, Bodies, Mode, Progress};

/// Built-in request shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Non-streaming `/api/chat`, temperature 0.
    Chat,
    /// Streaming `/api/chat` (NDJSON), temperature 0; TTFT is the first chunk.
    ChatStream,
    /// Non-streaming `/api/generate`, temperature 0.
    Generate,
    /// `/api/embed` with one short input.
    Embed,
    /// `GET /api/tags`.
    Tags,
    /// Non-streaming `/v1/chat/completions` (OpenAI's shape), temperature 0.
    OpenaiChat,
    /// Streaming `/v1/chat/completions` (SSE), temperature 0; TTFT is the first chunk.
    OpenaiChatStream,
    /// The latency report's workload: a chat assistant's streaming
    /// `/v1/chat/completions` traffic, temperature 0, 70 % of prompts repeating
    /// one of 40 recurring questions (unless --repeat/--distinct say otherwise).
    Report,
}

impl Scenario {
    fn path(self) -> &'static str {
        match self {
            Scenario::Chat | Scenario::ChatStream => "/api/chat",
            Scenario::Generate => "/api/generate",
            Scenario::Embed => "/api/embed",
            Scenario::Tags => "/api/tags",
            Scenario::OpenaiChat | Scenario::OpenaiChatStream | Scenario::Report => {
                "/v1/chat/completions"
            }
        }
    }

    /// The scenario's request body; `max_tokens` caps the answer
    /// (`options.num_predict` natively, `max_tokens` in OpenAI's shape).
    fn body(self, model: &str, prompt: &str, max_tokens: Option<u64>) -> String {
        let mut value = match self {
            Scenario::Chat | Scenario::ChatStream => serde_json::json!({
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "stream": self == Scenario::ChatStream,
                "options": {"temperature": 0},
            }),
            Scenario::Generate => serde_json::json!({
                "model": model,
                "prompt": prompt,
                "stream": false,
                "options": {"temperature": 0},
            }),
            Scenario::Embed => serde_json::json!({"model": model, "input": prompt}),
            Scenario::OpenaiChat | Scenario::OpenaiChatStream | Scenario::Report => {
                serde_json::json!({
                    "model": model,
                    "messages": [{"role": "user", "content": prompt}],
                    "stream": self != Scenario::OpenaiChat,
                    "temperature": 0,
                })
            }
            Scenario::Tags => return String::new(),
        };
        if let (Some(n), Some(object)) = (max_tokens, value.as_object_mut()) {
            match self {
                Scenario::Chat | Scenario::ChatStream | Scenario::Generate => {
                    object.insert(
                        "options".into(),
                        serde_json::json!({"temperature": 0, "num_predict": n}),
                    );
                }
                Scenario::OpenaiChat | Scenario::OpenaiChatStream | Scenario::Report => {
                    object.insert("max_tokens".into(), n.into());
                }
                Scenario::Embed | Scenario::Tags => {}
            }
        }
        value.to_string()
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the endpoint under test (a gateway or Ollama itself); repeat
    /// it to spread requests over several endpoints round-robin, as a client
    /// without a gateway would
    #[arg(long = "url", default_value = "http://127.0.0.1:11435")]
    urls: Vec<String>,
    /// Built-in request shape
    #[arg(long, value_enum, default_value = "chat")]
    scenario: Scenario,
    /// Model named in the built-in bodies
    #[arg(long, default_value = "llama3.2")]
    model: String,
    /// Cap the built-in bodies' answers at this many tokens (for engines that
    /// would otherwise generate up to their context's end)
    #[arg(long, value_name = "N")]
    max_tokens: Option<u64>,
    /// Share of requests (0..1) that repeat one of --distinct recurring prompts;
    /// the rest are one-off prompts. Without it every request is identical.
    #[arg(long, value_name = "SHARE")]
    repeat: Option<f64>,
    /// Number of recurring prompts for --repeat [default: 10; 40 for the report scenario]
    #[arg(long)]
    distinct: Option<u64>,
    /// Text put before every prompt, so two runs' recurring prompts differ
    /// (each phase of a benchmark then starts with a cold cache)
    #[arg(long, default_value = "")]
    tag: String,
    /// Path to request instead of the scenario's
    #[arg(long)]
    path: Option<String>,
    /// Request body instead of the scenario's (JSON text)
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// File with one request body per line, sent round-robin
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Open loop: requests per second, scheduled regardless of responses
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: this many workers sending back to back [default: 16]
    #[arg(long)]
    concurrency: Option<usize>,
    /// Length of the measured phase
    #[arg(long, default_value = "10s", value_parser = humantime_duration)]
    duration: Duration,
    /// Stop after this many measured requests
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured traffic before the measured phase
    #[arg(long, default_value = "1s", value_parser = humantime_duration)]
    warmup: Duration,
    /// Per-request timeout
    #[arg(long, default_value = "60s", value_parser = humantime_duration)]
    timeout: Duration,
    /// Open loop: requests outstanding beyond this are counted as dropped
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Extra request header, `NAME: VALUE`; repeatable (e.g. an Authorization bearer)
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Also write the run's charts to FILE (PNG or SVG, by its extension)
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Replay a usage trace instead: streaming chats in bursts with idle gaps
    /// (a day, a week, a model switcher, a burst day of one person at their
    /// desktop), counting the cold starts paid and each message's first byte and
    /// first token
    #[arg(long, value_enum, value_name = "TRACE")]
    trace: Option<TraceName>,
    /// Trace: hours of the day to replay (desktop-day, switcher)
    #[arg(long, default_value_t = 8, requires = "trace")]
    hours: u32,
    /// Trace: divide every idle gap by this (the daemon's keep-alive must be
    /// divided by the same, e.g. OLLAMA_KEEP_ALIVE=5s for 5 minutes at 60)
    #[arg(long, default_value_t = 60.0, requires = "trace")]
    time_scale: f64,
    /// Trace: the models talked to, most used first
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "llama3.2,qwen3:0.6b,tinyllama",
        requires = "trace"
    )]
    models: Vec<String>,
    /// Trace: seed of the generated day (the same seed replays the same day)
    #[arg(long, default_value_t = 7, requires = "trace")]
    seed: u64,
}

/// Built-in usage traces, each starting on a Monday at 09:00 (`trace::TRACE_START`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceName {
    /// Bursts of 1–6 messages, 10–90 s apart, with idle gaps of 20 s to 45 min,
    /// mostly to the first model.
    DesktopDay,
    /// Monday to Friday, 09:00–17:30 with a lunch break: the first two models
    /// daily, the third only on Friday.
    Week,
    /// A day switching among all the models given, by falling weights.
    Switcher,
    /// Two rushes of short gaps on the first two models, idle hours around them.
    BurstDay,
}

/// `warmline bench --trace`: replays the trace and prints what it cost.
async fn run_trace(args: &BenchArgs) -> ExitCode {
    let models: Vec<&str> = args.models.iter().map(String::as_str).collect();
    let day = match args.trace {
        Some(TraceName::Week) => trace::Trace::week(&models, args.seed),
        Some(TraceName::Switcher) => trace::Trace::switcher(args.hours, &models, args.seed),
        Some(TraceName::BurstDay) => trace::Trace::burst_day(&models, args.seed),
        Some(TraceName::DesktopDay) | None => {
            trace::Trace::desktop_day(args.hours, &models, args.seed)
        }
    };
    eprintln!(
        "replaying {} messages in {} conversations over {:.1} h of trace time, {}x faster (about {:.0} s)",
        day.messages(),
        day.bursts.len(),
        day.span().as_secs_f64() / 3600.0,
        args.time_scale,
        day.span().as_secs_f64() / args.time_scale
    );
    eprintln!(
        "trace time starts on Monday at 09:00 UTC: a gateway learns on the same clock with \
         WARMLINE_TRACE_CLOCK={}:{}:0",
        trace::TRACE_START,
        args.time_scale
    );
    let url = args
        .urls
        .first()
        .map_or("http://127.0.0.1:11435", String::as_str);
    match trace::replay(url, &day, args.time_scale, args.timeout).await {
        Ok(report) if args.json => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("warmline bench: {err}");
                ExitCode::FAILURE
            }
        },
        Ok(r) => {
            let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            println!(
                "target      {}
messages    {} ({} errors)
cold starts {}
ttft ms     mean {:.1}  p95 {:.1}
cold starts: first byte ms mean {}  max {}; first token ms mean {}",
                r.url,
                r.messages,
                r.errors,
                r.cold_starts,
                r.ttft_mean_ms,
                r.ttft_p95_ms,
                opt(r.cold_first_byte_mean_ms),
                opt(r.cold_first_byte_max_ms),
                opt(r.cold_ttft_mean_ms),
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warmline bench: {err}");
            ExitCode::from(2)
        }
    }
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

pub async fn run(args: BenchArgs) -> ExitCode {
    if args.trace.is_some() {
        return run_trace(&args).await;
    }
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("warmline bench: {err}");
            return ExitCode::from(2);
        }
    };
    let progress = Arc::new(Progress::default());
    let ticker = std::io::stderr().is_terminal().then(|| {
        tokio::spawn(show_progress(
            Arc::clone(&progress),
            config.warmup + config.duration,
        ))
    });
    let result = load::run(config, progress).await;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprint!("\r\x1b[2K");
    }
    if let (Ok(report), Some(path)) = (&result, &args.report) {
        let title = format!("warmline bench: {}", report.url);
        if let Err(err) = crate::report::write(path, &report.history, &title) {
            eprintln!("warmline bench: {err}");
            return ExitCode::FAILURE;
        }
    }
    match result {
        Ok(report) if args.json => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("warmline bench: {err}");
                ExitCode::FAILURE
            }
        },
        Ok(report) => {
            print!("{}", render(&report));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warmline bench: {err}");
            ExitCode::from(2)
        }
    }
}

fn config(args: &BenchArgs) -> Result<BenchConfig, String> {
    let bodies = if let Some(file) = &args.body_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let bodies: Vec<_> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| bytes::Bytes::from(l.to_owned()))
            .collect();
        if bodies.is_empty() {
            return Err(format!("{} has no request bodies", file.display()));
        }
        Bodies::List(bodies)
    } else if let Some(body) = &args.body {
        Bodies::List(vec![bytes::Bytes::from(body.clone())])
    } else if let Some(share) = args
        .repeat
        .or((args.scenario == Scenario::Report).then_some(0.7))
    {
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("--repeat must be between 0 and 1, got {share}"));
        }
        let (scenario, model, tag, cap) = (
            args.scenario,
            args.model.clone(),
            args.tag.clone(),
            args.max_tokens,
        );
        // A per-run salt: one-off prompts must not hit entries from an earlier run.
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let distinct = args.distinct.unwrap_or(match args.scenario {
            Scenario::Report => 40,
            _ => 10,
        });
        load::repeating(share, distinct, salt, move |prompt| {
            bytes::Bytes::from(scenario.body(&model, &format!("{tag}{prompt}"), cap))
        })
    } else {
        Bodies::List(vec![bytes::Bytes::from(args.scenario.body(
            &args.model,
            "Say hello in five words.",
            args.max_tokens,
        ))])
    };
    let method =
        if args.scenario == Scenario::Tags && args.body.is_none() && args.body_file.is_none() {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
    let path = args.path.as_deref().unwrap_or(args.scenario.path());
    let urls: Vec<String> = args
        .urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    let mode = match (args.rate, args.concurrency) {
        (Some(rate), _) => Mode::OpenLoop { rate },
        (None, concurrency) => Mode::ClosedLoop {
            concurrency: concurrency.unwrap_or(16),
        },
    };
    Ok(BenchConfig {
        url: format!("{}{path}", urls.first().cloned().unwrap_or_default()),
        also: urls.iter().skip(1).map(|u| format!("{u}{path}")).collect(),
        method,
        bodies,
        mode,
        duration: args.duration,
        max_requests: args.requests,
        warmup: args.warmup,
        timeout: args.timeout,
        max_in_flight: args.max_in_flight,
        headers: headers(&args.headers)?,
        model: (args.body.is_none() && args.body_file.is_none()).then(|| args.model.clone()),
    })
}

/// Parses `--header NAME: VALUE` flags.
fn headers(flags: &[String]) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for flag in flags {
        let (name, value) = flag
            .split_once(':')
            .ok_or_else(|| format!("--header {flag:?}: expected NAME: VALUE"))?;
        let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| format!("--header {flag:?}: {e}"))?;
        let value = reqwest::header::HeaderValue::from_str(value.trim())
            .map_err(|e| format!("--header {flag:?}: {e}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

async fn show_progress(progress: Arc<Progress>, total: Duration) {
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        ticker.tick().await;
        let share = (started.elapsed().as_secs_f64() / total.as_secs_f64()).min(1.0);
        let filled = (share * 30.0) as usize;
        eprint!(
            "\r[{}{}] {:>3.0}%  sent {}  done {}  errors {}",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            share * 100.0,
            progress.sent.load(Relaxed),
            progress.completed.load(Relaxed),
            progress.errors.load(Relaxed),
        );
    }
}

fn render(r: &BenchReport) -> String {
    let mode = match r.mode {
        Mode::OpenLoop { rate } => format!("open loop, {rate} req/s"),
        Mode::ClosedLoop { concurrency } => format!("closed loop, {concurrency} workers"),
    };
    let errors = if r.errors.is_empty() {
        "none".to_owned()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let p = |p: &load::Percentiles| {
        format!(
            "mean {:.3}  p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            p.mean, p.p50, p.p90, p.p95, p.p99, p.p999, p.max
        )
    };
    let mut out = format!(
        "target      {} ({mode})\nrequests    {} in {:.2} s ({:.1} req/s), ok {}, errors: {errors}\nlatency ms  {}\nttft ms     {}\n",
        r.url,
        r.requests,
        r.elapsed_s,
        r.rps,
        r.ok,
        p(&r.latency_ms),
        p(&r.ttft_ms)
    );
    if !r.cache.is_empty() {
        let cache: Vec<String> = r.cache.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("cache       {}\n", cache.join(", ")));
    }
    if r.repeats > 0 {
        out.push_str(&format!(
            "repeats     {} of {} requests repeated an earlier body (best hit rate possible {:.1} %)\n",
            r.repeats,
            r.requests,
            100.0 * r.repeats as f64 / r.requests.max(1) as f64
        ));
    }
    out
}
