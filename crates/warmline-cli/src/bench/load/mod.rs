//! `warmline bench`: an HTTP load generator for Ollama-shaped traffic.
//!
//! Two modes:
//! - **open loop** (`rate`): requests are *scheduled* at a fixed rate, whether or
//!   not earlier ones have finished, and each latency is measured from the moment
//!   the request was due, not from when it was actually sent. A stalled server
//!   therefore shows up as the latency its users would see (no coordinated
//!   omission). If the number of outstanding requests reaches `max_in_flight`, the
//!   due request is counted as `dropped` instead of silently delayed.
//! - **closed loop** (`concurrency`): N workers each send the next request as soon
//!   as the previous one finished; this measures throughput.
//!
//! Both are bounded by duration and, optionally, by request count. Latency is the
//! time to the end of the response body; TTFT is the time to its first chunk (for a
//! stream, the first token). Responses' `x-warmline-cache` header values are
//! counted, so cache behaviour shows in the same report. Histograms are HDR with
//! microsecond resolution.
//!
//! `trace` replays a time-compressed desktop usage trace instead: bursts of
//! chat with idle gaps, to count the cold starts a person would pay.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What to send and how hard.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Full request URL, e.g. `http://127.0.0.1:11435/api/chat`.
    pub url: String,
    /// More URLs of the same path on other endpoints: request `i` goes to
    /// `[url, also...][i % n]`, as a client spreading its load by itself would.
    pub also: Vec<String>,
    pub method: reqwest::Method,
    /// The body of request number `i`.
    pub bodies: Bodies,
    pub mode: Mode,
    /// How long the measured phase lasts.
    pub duration: Duration,
    /// Stop after this many measured requests, if set.
    pub max_requests: Option<u64>,
    /// Traffic sent before measuring starts (connections warm, caches primed).
    pub warmup: Duration,
    /// Per-request timeout; a request that takes longer is an error.
    pub timeout: Duration,
    /// Open loop only: outstanding requests beyond this are dropped, not queued.
    pub max_in_flight: usize,
    /// Sent with every request (e.g. `Authorization`).
    pub headers: http::HeaderMap,
    /// The model the requests name, for the report's per-model chart.
    pub model: Option<String>,
}

/// Where request bodies come from.
#[derive(Clone)]
pub enum Bodies {
    /// A list used round-robin (one entry for a fixed body).
    List(Vec<Bytes>),
    /// Made per request from its number (for workloads with a repeat share).
    Generated(Arc<dyn Fn(u64) -> Bytes + Send + Sync>),
}

impl Bodies {
    /// The body of request number `i`.
    pub fn get(&self, i: u64) -> Bytes {
        match self {
            Bodies::List(list) => list[(i % list.len().max(1) as u64) as usize].clone(),
            Bodies::Generated(make) => make(i),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Bodies::List(list) if list.is_empty())
    }
}

impl std::fmt::Debug for Bodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bodies::List(list) => write!(f, "Bodies::List({} bodies)", list.len()),
            Bodies::Generated(_) => f.write_str("Bodies::Generated"),
        }
    }
}

/// A workload where a share of requests repeats earlier ones: request `i` uses one
/// of `distinct` recurring prompts with probability `repeat` (decided by a hash of
/// `i`, so a run is reproducible), otherwise a prompt no other request uses.
/// `render` turns a prompt into a body. `salt` keeps two runs' unique prompts apart.
pub fn repeating(
    repeat: f64,
    distinct: u64,
    salt: u64,
    render: impl Fn(&str) -> Bytes + Send + Sync + 'static,
) -> Bodies {
    let distinct = distinct.max(1);
    Bodies::Generated(Arc::new(move |i| {
        let h = mix(i ^ salt.rotate_left(17));
        let prompt = if (h >> 11) as f64 / (1u64 << 53) as f64 <= repeat {
            format!(
                "Recurring question {}: what is a gateway?",
                mix(h) % distinct
            )
        } else {
            format!("One-off question {salt:x}-{i}: what is a gateway?")
        };
        render(&prompt)
    }))
}

/// SplitMix64's finaliser: a cheap, well-spread hash of a counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    OpenLoop { rate: f64 },
    ClosedLoop { concurrency: usize },
}

/// Live counters, for a progress display while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    pub url: String,
    pub mode: Mode,
    /// Measured requests that completed (any status).
    pub requests: u64,
    /// Requests with a 2xx status and a complete body.
    pub ok: u64,
    /// Failures by cause: `status_503`, `timeout`, `connect`, `body`, `dropped`, ...
    pub errors: BTreeMap<String, u64>,
    /// `x-warmline-cache` values seen (`hit`, `miss`, ...), if any.
    pub cache: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// Measured requests whose body had been sent before in the run (warm-up
    /// included): what a perfect cache could have answered without going
    /// upstream, so the best hit rate possible is `repeats / requests`.
    #[serde(default)]
    pub repeats: u64,
    /// Completed measured requests per second.
    pub rps: f64,
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    /// The same over successful requests only: a system that answers fast by
    /// refusing requests does not look fast here.
    #[serde(default)]
    pub ok_latency_ms: Percentiles,
    #[serde(default)]
    pub ok_ttft_ms: Percentiles,
    /// Per second of the measured phase, for `--report` charts.
    #[serde(default)]
    pub history: warmline::metrics::History,
}

/// Latency distribution summary, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid benchmark settings: {0}")]
    Invalid(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Everything the request tasks record into.
#[derive(Debug)]
struct Recorder {
    latency: Mutex<Histogram<u64>>,
    ttft: Mutex<Histogram<u64>>,
    ok_latency: Mutex<Histogram<u64>>,
    ok_ttft: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    cache: Mutex<BTreeMap<String, u64>>,
    requests: AtomicU64,
    ok: AtomicU64,
    /// Hashes of every body sent, and how many measured ones repeated one.
    bodies_seen: Mutex<std::collections::HashSet<u64>>,
    repeats: AtomicU64,
    progress: Arc<Progress>,
    /// The measured phase per second, by completion time.
    seconds: Mutex<Seconds>,
    measure_from: Instant,
}

impl Recorder {
    fn new(progress: Arc<Progress>, measure_from: Instant) -> Recorder {
        let histogram = || {
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|e| unreachable!("constant bounds are valid: {e}"))
        };
        Recorder {
            latency: Mutex::new(histogram()),
            ttft: Mutex::new(histogram()),
            ok_latency: Mutex::new(histogram()),
            ok_ttft: Mutex::new(histogram()),
            errors: Mutex::default(),
            cache: Mutex::default(),
            requests: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            bodies_seen: Mutex::default(),
            repeats: AtomicU64::new(0),
            progress,
            seconds: Mutex::new(Seconds::default()),
            measure_from,
        }
    }

    /// Notes a body about to be sent; counts a measured repeat.
    fn sending(&self, body: &[u8], measured: bool) {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
        hasher.write(body);
        let fresh = self
            .bodies_seen
            .lock()
            .map_or(true, |mut seen| seen.insert(hasher.finish()));
        if measured && !fresh {
            self.repeats.fetch_add(1, Relaxed);
        }
    }

    fn error(&self, cause: String) {
        self.progress.errors.fetch_add(1, Relaxed);
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(cause).or_default() += 1;
        }
    }

    fn record(&self, outcome: Outcome, measured: bool) {
        self.progress.completed.fetch_add(1, Relaxed);
        if !measured {
            return;
        }
        self.requests.fetch_add(1, Relaxed);
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Ok(mut h) = self.latency.lock() {
            h.saturating_record(micros(outcome.latency));
        }
        if let Some(ttft) = outcome.ttft
            && let Ok(mut h) = self.ttft.lock()
        {
            h.saturating_record(micros(ttft));
        }
        if outcome.error.is_none() {
            if let Ok(mut h) = self.ok_latency.lock() {
                h.saturating_record(micros(outcome.latency));
            }
            if let Some(ttft) = outcome.ttft
                && let Ok(mut h) = self.ok_ttft.lock()
            {
                h.saturating_record(micros(ttft));
            }
        }
        if let Some(cache) = &outcome.cache
            && let Ok(mut counts) = self.cache.lock()
        {
            *counts.entry(cache.clone()).or_default() += 1;
        }
        let second = Instant::now()
            .saturating_duration_since(self.measure_from)
            .as_secs() as usize;
        if let Ok(mut seconds) = self.seconds.lock() {
            let acc = seconds.at(second);
            acc.requests += 1;
            acc.errors += u64::from(outcome.error.is_some());
            match outcome.cache.as_deref() {
                Some("hit" | "coalesced") => acc.hits += 1,
                Some("miss") => acc.misses += 1,
                _ => {}
            }
            acc.latency.saturating_record(micros(outcome.latency));
            if let Some(ttft) = outcome.ttft {
                acc.ttft.saturating_record(micros(ttft));
            }
        }
        match outcome.error {
            None => {
                self.ok.fetch_add(1, Relaxed);
            }
            Some(cause) => self.error(cause),
        }
    }

    /// The per-second history of the measured phase, and one summary for `model`.
    fn history(&self, started_unix: u64, model: Option<&str>) -> warmline::metrics::History {
        let points = self
            .seconds
            .lock()
            .map(|mut seconds| seconds.points(started_unix))
            .unwrap_or_default();
        let ms = |h: &Histogram<u64>, q: f64| {
            (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
        };
        let models = match (model, self.latency.lock(), self.ttft.lock()) {
            (Some(model), Ok(latency), Ok(ttft)) => vec![warmline::metrics::ModelSummary {
                model: model.to_owned(),
                requests: latency.len(),
                cold_starts: 0,
                p50_ms: ms(&latency, 0.5),
                p95_ms: ms(&latency, 0.95),
                ttft_p50_ms: ms(&ttft, 0.5),
                tokens_per_s: None,
            }],
            _ => Vec::new(),
        };
        warmline::metrics::History {
            step_s: 1,
            points,
            models,
        }
    }
}

/// The measured phase, second by second: closed seconds as points (a few dozen
/// bytes each), only the second being filled as histograms, so a long run's
/// memory stays flat.
#[derive(Debug, Default)]
struct Seconds {
    /// Closed seconds, stamped with their offset from the start
    /// ([`Seconds::points`] stamps them absolutely).
    closed: Vec<warmline::metrics::Point>,
    open: Option<(usize, warmline::metrics::Accumulator)>,
}

impl Seconds {
    /// The accumulator of second `second`. Completions arrive in time order,
    /// give or take a lock race: a late one joins the open second.
    fn at(&mut self, second: usize) -> &mut warmline::metrics::Accumulator {
        let open_at = self.open.as_ref().map(|(at, _)| *at);
        match open_at {
            Some(at) if second > at => {
                if let Some((at, mut acc)) = self.open.take() {
                    self.close(at, &mut acc);
                    // Seconds in which nothing completed: zero requests.
                    for quiet in at + 1..second {
                        self.closed.push(warmline::metrics::Point {
                            t: quiet as u64,
                            ..Default::default()
                        });
                    }
                    self.open = Some((second, acc));
                }
            }
            Some(_) => {}
            None => self.open = Some((second, warmline::metrics::Accumulator::new())),
        }
        match &mut self.open {
            Some((_, acc)) => acc,
            None => unreachable!("opened above"),
        }
    }

    fn close(&mut self, at: usize, acc: &mut warmline::metrics::Accumulator) {
        self.closed.push(acc.take(at as u64));
    }

    /// Every second so far, stamped from `started_unix`.
    fn points(&mut self, started_unix: u64) -> Vec<warmline::metrics::Point> {
        if let Some((at, mut acc)) = self.open.take() {
            self.close(at, &mut acc);
        }
        self.closed
            .iter()
            .map(|p| warmline::metrics::Point {
                t: started_unix + p.t,
                ..p.clone()
            })
            .collect()
    }
}

#[derive(Debug)]
struct Outcome {
    latency: Duration,
    ttft: Option<Duration>,
    cache: Option<String>,
    error: Option<String>,
}

/// Runs a benchmark to completion, updating `progress` as it goes.
pub async fn run(config: BenchConfig, progress: Arc<Progress>) -> Result<BenchReport, BenchError> {
    if config.bodies.is_empty() {
        return Err(BenchError::Invalid(
            "at least one request body is needed".into(),
        ));
    }
    match config.mode {
        Mode::OpenLoop { rate } if !(rate > 0.0 && rate.is_finite()) => {
            return Err(BenchError::Invalid(format!(
                "rate must be positive, got {rate}"
            )));
        }
        Mode::ClosedLoop { concurrency: 0 } => {
            return Err(BenchError::Invalid("concurrency must be at least 1".into()));
        }
        _ => {}
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .timeout(config.timeout)
        .build()
        .map_err(|e| BenchError::Client(e.to_string()))?;
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let recorder = Arc::new(Recorder::new(progress, measure_from));
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + config.warmup.as_secs();
    let end = measure_from + config.duration;
    match config.mode {
        Mode::OpenLoop { rate } => {
            open_loop(&config, &client, &recorder, rate, measure_from, end).await
        }
        Mode::ClosedLoop { concurrency } => {
            closed_loop(&config, &client, &recorder, concurrency, measure_from, end).await;
        }
    }
    let elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .min(config.duration.max(Duration::from_millis(1)));
    let requests = recorder.requests.load(Relaxed);
    let latency = recorder
        .latency
        .lock()
        .map(|h| Percentiles::of(&h))
        .unwrap_or_default();
    let ttft = recorder
        .ttft
        .lock()
        .map(|h| Percentiles::of(&h))
        .unwrap_or_default();
    Ok(BenchReport {
        url: std::iter::once(&config.url)
            .chain(&config.also)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        mode: config.mode,
        requests,
        ok: recorder.ok.load(Relaxed),
        errors: recorder
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default(),
        cache: recorder.cache.lock().map(|c| c.clone()).unwrap_or_default(),
        elapsed_s: elapsed.as_secs_f64(),
        repeats: recorder.repeats.load(Relaxed),
        rps: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: latency,
        ttft_ms: ttft,
        ok_latency_ms: recorder
            .ok_latency
            .lock()
            .map(|h| Percentiles::of(&h))
            .unwrap_or_default(),
        ok_ttft_ms: recorder
            .ok_ttft
            .lock()
            .map(|h| Percentiles::of(&h))
            .unwrap_or_default(),
        history: recorder.history(started_unix, config.model.as_deref()),
    })
}

/// Fires request `i` at `start + i / rate`, measuring from that due time.
///
/// Pacing runs on its own OS thread with `std::thread::sleep`, which wakes within
/// tens of microseconds; tokio's timer has millisecond granularity, which would
/// bunch requests into bursts and add up to a millisecond of phantom latency.
async fn open_loop(
    config: &BenchConfig,
    client: &reqwest::Client,
    recorder: &Arc<Recorder>,
    rate: f64,
    measure_from: Instant,
    end: Instant,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let (measure_from_std, end_std) = (measure_from.into_std(), end.into_std());
    let max_requests = config.max_requests;
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            let start = std::time::Instant::now();
            let mut measured = 0u64;
            for i in 0u64.. {
                let due = start + interval.mul_f64(i as f64);
                if due >= end_std || max_requests.is_some_and(|max| measured >= max) {
                    break;
                }
                let now = std::time::Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                measured += u64::from(due >= measure_from_std);
                if tx.send((i, Instant::from_std(due))).is_err() {
                    break;
                }
            }
        });
    if let Err(err) = pacer {
        recorder.error(format!("pacer thread: {err}"));
        return;
    }

    let in_flight = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((i, due)) = rx.recv().await {
        let is_measured = due >= measure_from;
        if in_flight.load(Relaxed) >= config.max_in_flight as u64 {
            if is_measured {
                recorder.requests.fetch_add(1, Relaxed);
                recorder.error("dropped".into());
            }
            continue;
        }
        in_flight.fetch_add(1, Relaxed);
        recorder.progress.sent.fetch_add(1, Relaxed);
        let (recorder, in_flight) = (Arc::clone(recorder), Arc::clone(&in_flight));
        let request = build(config, client.clone(), i, &recorder, is_measured);
        tasks.spawn(async move {
            let outcome = send(request, due).await;
            recorder.record(outcome, is_measured);
            in_flight.fetch_sub(1, Relaxed);
        });
        // Reap finished tasks so the set does not grow with the run's length.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// `concurrency` workers, each sending back to back until `end`.
async fn closed_loop(
    config: &BenchConfig,
    client: &reqwest::Client,
    recorder: &Arc<Recorder>,
    concurrency: usize,
    measure_from: Instant,
    end: Instant,
) {
    let next = Arc::new(AtomicU64::new(0));
    let measured = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (config, client, recorder) = (config.clone(), client.clone(), Arc::clone(recorder));
        let (next, measured) = (Arc::clone(&next), Arc::clone(&measured));
        workers.spawn(async move {
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let is_measured = now >= measure_from;
                if is_measured {
                    let n = measured.fetch_add(1, Relaxed);
                    if config.max_requests.is_some_and(|max| n >= max) {
                        break;
                    }
                }
                let i = next.fetch_add(1, Relaxed);
                recorder.progress.sent.fetch_add(1, Relaxed);
                let request = build(&config, client.clone(), i, &recorder, is_measured);
                let outcome = send(request, now).await;
                recorder.record(outcome, is_measured);
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

fn build(
    config: &BenchConfig,
    client: reqwest::Client,
    i: u64,
    recorder: &Recorder,
    measured: bool,
) -> reqwest::RequestBuilder {
    let body = config.bodies.get(i);
    recorder.sending(&body, measured);
    let n = 1 + config.also.len() as u64;
    let url = match i % n {
        0 => &config.url,
        k => &config.also[k as usize - 1],
    };
    client
        .request(config.method.clone(), url)
        .headers(config.headers.clone())
        .body(body)
}

/// The last bytes of a body, enough to see how a stream ended.
const TAIL: usize = 256;

/// Whether a stream ended the way a complete one does: an SSE stream with its
/// `data: [DONE]`, an NDJSON stream with a last object that says `"done":true`
/// (not an error line). Whole answers are complete when their status says so.
fn completed(content_type: &str, tail: &[u8]) -> bool {
    let text = String::from_utf8_lossy(tail);
    if content_type.starts_with("text/event-stream") {
        text.trim_end().ends_with("data: [DONE]")
    } else if content_type.starts_with("application/x-ndjson") {
        text.trim_end()
            .rsplit('\n')
            .next()
            .is_some_and(|last| last.contains("\"done\":true") && !last.starts_with("{\"error\""))
    } else {
        true
    }
}

/// Sends one request and reads its whole body, timing from `due`.
async fn send(request: reqwest::RequestBuilder, due: Instant) -> Outcome {
    let failed = |error: String| Outcome {
        latency: Instant::now().saturating_duration_since(due),
        ttft: None,
        cache: None,
        error: Some(error),
    };
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) if err.is_timeout() => return failed("timeout".into()),
        Err(err) if err.is_connect() => return failed("connect".into()),
        Err(_) => return failed("request".into()),
    };
    let status = response.status();
    let cache = response
        .headers()
        .get("x-warmline-cache")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut ttft = None;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                ttft.get_or_insert_with(|| Instant::now().saturating_duration_since(due));
                tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
                let excess = tail.len().saturating_sub(TAIL);
                tail.drain(..excess);
            }
            Ok(None) => break,
            Err(err) => {
                let mut outcome = failed(if err.is_timeout() { "timeout" } else { "body" }.into());
                outcome.cache = cache;
                return outcome;
            }
        }
    }
    let error = if !status.is_success() {
        Some(format!("status_{}", status.as_u16()))
    } else if !completed(&content_type, &tail) {
        // Cut off, or ended with an error line: the client did not get its answer.
        Some("incomplete_stream".to_owned())
    } else {
        None
    };
    Outcome {
        latency: Instant::now().saturating_duration_since(due),
        ttft,
        cache,
        error,
    }
}

#[cfg(test)]
mod tests;
