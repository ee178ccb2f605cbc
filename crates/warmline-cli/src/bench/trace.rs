//! Replaying a desktop usage trace: what cold starts cost a person who chats in
//! bursts with idle gaps between them, time-compressed so a working day runs in
//! minutes.
//!
//! A [`Trace`] is a list of conversations ("bursts"): each starts at a point in
//! trace time, talks to one model, and sends its messages one after another, a
//! reading-and-typing pause after each reply. Between bursts a person does other
//! work for seconds to tens of minutes — longer than Ollama's default keep-alive
//! of five minutes, so a model they come back to has often been unloaded.
//!
//! [`replay`] plays the trace against an endpoint with every gap divided by a
//! time scale (the daemon's keep-alive must be divided by the same scale, e.g.
//! `OLLAMA_KEEP_ALIVE=5s` for 5 minutes at 60×). Model loads and generation are
//! not compressed: what a cold start costs is measured as it is. Every request is
//! a streaming `/api/chat`; a request *paid a cold start* when the final chunk's
//! `load_duration` shows a load (Ollama reports a few milliseconds when the model
//! was resident).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// A `load_duration` at least this long means the request waited for a load.
pub const COLD_LOAD: Duration = Duration::from_millis(100);

/// One conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    /// When it starts, in trace time from the start of the trace.
    pub at: Duration,
    pub model: String,
    /// Trace-time pauses before each message after the first (reading the last
    /// reply, typing the next); one entry per message, the first being zero.
    pub pauses: Vec<Duration>,
}

/// A usage trace: bursts in order of their start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub bursts: Vec<Burst>,
}

/// Idle gaps between conversations at a desk, seconds, with their weights: from
/// a glance at a reply to a long meeting.
const DESK_GAPS_S: [(u64, u32); 8] = [
    (20, 3),
    (60, 4),
    (120, 4),
    (240, 3),
    (420, 3),
    (720, 2),
    (1500, 2),
    (2700, 1),
];

/// The trace time of Monday 09:00 UTC (2026-12-07), where every built-in trace
/// starts: `warmline serve` learning from a replay runs its clock from here
/// (`WARMLINE_TRACE_CLOCK=START:SCALE:0`), so the trace's weekdays and hours are
/// the gateway's.
pub const TRACE_START: u64 = 1_796_634_000;

impl Trace {
    /// A reproducible working day on a desktop: `hours` of bursts of 1–6
    /// messages (pauses of 10–90 s) separated by idle gaps drawn from 20 s to
    /// 45 min, with most conversations going to `models[0]`, fewer to
    /// `models[1]`, and an occasional one to each other model.
    pub fn desktop_day(hours: u32, models: &[&str], seed: u64) -> Trace {
        let mut rng = SplitMix(seed);
        let mut bursts = Vec::new();
        let weights = main_then_others(models);
        desk(
            &mut rng,
            &mut bursts,
            Duration::from_secs(5),
            Duration::from_secs(u64::from(hours) * 3600),
            &weights,
            &DESK_GAPS_S,
        );
        Trace { bursts }
    }

    /// A working week of the same person, Monday 09:00 to Friday 17:30: each
    /// weekday a morning (09:00–12:30) and an afternoon (13:30–17:30) of desk
    /// conversations with `models[0]` (most) and `models[1]`, and on Friday also
    /// a few with `models[2]`, used on no other day. Nights and the lunch break
    /// are idle.
    pub fn week(models: &[&str], seed: u64) -> Trace {
        let mut rng = SplitMix(seed);
        let mut bursts = Vec::new();
        let daily: Vec<(&str, u32)> = models.iter().take(2).copied().zip([75, 25]).collect();
        let friday: Vec<(&str, u32)> = models.iter().take(3).copied().zip([50, 20, 30]).collect();
        for day in 0..5u64 {
            let weights = if day == 4 && models.len() > 2 {
                &friday
            } else {
                &daily
            };
            let base = day * 24 * 3600;
            for (from, to) in [(0, 3 * 3600 + 1800), (4 * 3600 + 1800, 8 * 3600 + 1800)] {
                desk(
                    &mut rng,
                    &mut bursts,
                    Duration::from_secs(base + from + 60),
                    Duration::from_secs(base + to),
                    weights,
                    &DESK_GAPS_S,
                );
            }
        }
        Trace { bursts }
    }

    /// A person who switches among several models over `hours`: each
    /// conversation picks one by falling weights (the first a third of the time,
    /// the last one in ten), so no small set covers the day.
    pub fn switcher(hours: u32, models: &[&str], seed: u64) -> Trace {
        let mut rng = SplitMix(seed);
        let mut bursts = Vec::new();
        let n = models.len() as u32;
        let weights: Vec<(&str, u32)> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (*m, 10 + 5 * (n - 1 - i as u32)))
            .collect();
        desk(
            &mut rng,
            &mut bursts,
            Duration::from_secs(5),
            Duration::from_secs(u64::from(hours) * 3600),
            &weights,
            &DESK_GAPS_S,
        );
        Trace { bursts }
    }

    /// A day of two intense stretches (10:00–11:00 and 14:00–15:30) of short
    /// gaps, a hackathon-like rush on `models[0]` and `models[1]`, with idle hours
    /// before, between and after, and one late question to `models[0]`.
    pub fn burst_day(models: &[&str], seed: u64) -> Trace {
        const RUSH_GAPS_S: [(u64, u32); 3] = [(5, 4), (20, 3), (60, 1)];
        let mut rng = SplitMix(seed);
        let mut bursts = Vec::new();
        let weights: Vec<(&str, u32)> = models.iter().take(2).copied().zip([60, 40]).collect();
        for (from, to) in [(3600, 2 * 3600), (5 * 3600, 6 * 3600 + 1800)] {
            desk(
                &mut rng,
                &mut bursts,
                Duration::from_secs(from),
                Duration::from_secs(to),
                &weights,
                &RUSH_GAPS_S,
            );
        }
        if let Some(main) = models.first() {
            bursts.push(Burst {
                at: Duration::from_secs(9 * 3600),
                model: (*main).to_owned(),
                pauses: vec![Duration::ZERO, Duration::from_secs(30)],
            });
        }
        Trace { bursts }
    }

    /// Messages in the whole trace.
    pub fn messages(&self) -> usize {
        self.bursts.iter().map(|b| b.pauses.len()).sum()
    }

    /// The trace's length in trace time (the last burst's start).
    pub fn span(&self) -> Duration {
        self.bursts.last().map_or(Duration::ZERO, |b| b.at)
    }
}

/// The desktop-day weights: 70 % `models[0]`, 22 % `models[1]`, the rest shared
/// by the others.
fn main_then_others<'a>(models: &[&'a str]) -> Vec<(&'a str, u32)> {
    match models.len() {
        0 => Vec::new(),
        1 => vec![(models[0], 100)],
        2 => vec![(models[0], 70), (models[1], 30)],
        n => {
            let others = (8 / (n as u32 - 2)).max(1);
            [(models[0], 70), (models[1], 22)]
                .into_iter()
                .chain(models[2..].iter().map(|m| (*m, others)))
                .collect()
        }
    }
}

/// Appends desk conversations from `from` until `to` (trace time): bursts of 1–6
/// messages 10–90 s apart, each with a model drawn by `weights`, separated by
/// gaps drawn from `gaps` (±25 % so they do not line up with any keep-alive).
fn desk(
    rng: &mut SplitMix,
    bursts: &mut Vec<Burst>,
    from: Duration,
    to: Duration,
    weights: &[(&str, u32)],
    gaps: &[(u64, u32)],
) {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mut at = from;
    while at < to && total > 0 {
        let model = pick(rng, weights).unwrap_or_default();
        let messages = 1 + rng.below(6) as usize;
        let pauses: Vec<Duration> = (0..messages)
            .map(|i| {
                if i == 0 {
                    Duration::ZERO
                } else {
                    Duration::from_secs(10 + rng.below(81))
                }
            })
            .collect();
        let talking: Duration = pauses.iter().sum();
        bursts.push(Burst {
            at,
            model: model.to_owned(),
            pauses,
        });
        let gap = pick(rng, gaps).unwrap_or(60);
        let jitter = gap / 4;
        let gap = gap - jitter + rng.below(2 * jitter + 1);
        at += talking + Duration::from_secs(gap);
    }
}

/// One of `choices`, drawn by weight.
fn pick<T: Copy>(rng: &mut SplitMix, choices: &[(T, u32)]) -> Option<T> {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.below(u64::from(total)) as u32;
    choices.iter().find_map(|(choice, w)| {
        if roll < *w {
            Some(*choice)
        } else {
            roll -= w;
            None
        }
    })
}

/// SplitMix64: a tiny, seedable generator, so a trace is the same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one replayed message saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub model: String,
    /// Response headers (the first byte a client sees).
    pub first_byte_ms: f64,
    /// The first token.
    pub ttft_ms: f64,
    pub total_ms: f64,
    /// The final chunk's `load_duration`.
    pub load_ms: f64,
    pub cold: bool,
    /// Non-empty when the request failed (status or transport).
    pub error: Option<String>,
}

/// The result of a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceReport {
    pub url: String,
    pub time_scale: f64,
    pub messages: usize,
    pub errors: usize,
    pub cold_starts: usize,
    pub ttft_mean_ms: f64,
    pub ttft_p95_ms: f64,
    /// Over the messages that paid a cold start: their first byte.
    pub cold_first_byte_max_ms: Option<f64>,
    pub cold_first_byte_mean_ms: Option<f64>,
    /// Over the messages that paid a cold start: their first token.
    pub cold_ttft_mean_ms: Option<f64>,
    pub elapsed_s: f64,
    pub each: Vec<Message>,
}

/// Plays `trace` against `base_url` (`/api/chat`, streaming), every gap divided
/// by `time_scale`, as one person would: each message after the previous reply
/// ended and its pause passed, each conversation at its time or after the one
/// before it, whichever is later.
pub async fn replay(
    base_url: &str,
    trace: &Trace,
    time_scale: f64,
    timeout: Duration,
) -> Result<TraceReport, super::load::BenchError> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        return Err(super::load::BenchError::Invalid(format!(
            "the time scale must be positive, got {time_scale}"
        )));
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| super::load::BenchError::Client(e.to_string()))?;
    let url = format!("{}/api/chat", base_url.trim_end_matches('/'));
    let started = Instant::now();
    // One person: a conversation starts at its time, or once the one before it
    // ended, whichever is later (loads and replies are not compressed, so a
    // conversation can run past the next one's compressed start).
    let mut each = Vec::with_capacity(trace.messages());
    for (n, burst) in trace.bursts.iter().enumerate() {
        tokio::time::sleep_until(started + burst.at.div_f64(time_scale)).await;
        for (i, pause) in burst.pauses.iter().enumerate() {
            tokio::time::sleep(pause.div_f64(time_scale)).await;
            let prompt = format!("Conversation {n}, message {i}: how do I keep a model warm?");
            each.push(chat(&client, &url, &burst.model, &prompt).await);
        }
    }
    Ok(summarise(base_url, time_scale, each, started.elapsed()))
}

fn summarise(url: &str, time_scale: f64, each: Vec<Message>, took: Duration) -> TraceReport {
    let ok: Vec<&Message> = each.iter().filter(|m| m.error.is_none()).collect();
    let cold: Vec<&Message> = ok.iter().copied().filter(|m| m.cold).collect();
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let mut ttfts: Vec<f64> = ok.iter().map(|m| m.ttft_ms).collect();
    ttfts.sort_by(f64::total_cmp);
    let p95 = ttfts
        .get(((ttfts.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let cold_first: Vec<f64> = cold.iter().map(|m| m.first_byte_ms).collect();
    let cold_ttft: Vec<f64> = cold.iter().map(|m| m.ttft_ms).collect();
    TraceReport {
        url: url.to_owned(),
        time_scale,
        messages: each.len(),
        errors: each.len() - ok.len(),
        cold_starts: cold.len(),
        ttft_mean_ms: mean(&ttfts).unwrap_or(0.0),
        ttft_p95_ms: p95,
        cold_first_byte_max_ms: cold_first.iter().copied().reduce(f64::max),
        cold_first_byte_mean_ms: mean(&cold_first),
        cold_ttft_mean_ms: mean(&cold_ttft),
        elapsed_s: took.as_secs_f64(),
        each,
    }
}

/// One streaming chat message, timed.
async fn chat(client: &reqwest::Client, url: &str, model: &str, prompt: &str) -> Message {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": true,
    });
    let sent = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let failed = |error: String| Message {
        model: model.to_owned(),
        first_byte_ms: 0.0,
        ttft_ms: 0.0,
        total_ms: ms(sent.elapsed()),
        load_ms: 0.0,
        cold: false,
        error: Some(error),
    };
    let request = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    let mut response = match request.send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return failed(format!("status {}", response.status().as_u16())),
        Err(err) => return failed(err.to_string()),
    };
    let first_byte = sent.elapsed();
    let mut ttft = None;
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                ttft.get_or_insert_with(|| sent.elapsed());
                buffer.extend_from_slice(&chunk[..]);
            }
            Ok(None) => break,
            Err(err) => return failed(err.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&buffer);
    let Some(last) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return failed("an empty stream".into());
    };
    if let Some(error) = last.get("error") {
        return failed(error.to_string());
    }
    let load = Duration::from_nanos(last["load_duration"].as_u64().unwrap_or(0));
    Message {
        model: model.to_owned(),
        first_byte_ms: ms(first_byte),
        ttft_ms: ms(ttft.unwrap_or(first_byte)),
        total_ms: ms(sent.elapsed()),
        load_ms: ms(load),
        cold: load >= COLD_LOAD,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_desktop_day_is_reproducible_and_has_long_idle_gaps() {
        let models = ["llama3.2", "qwen3:0.6b", "gemma3:1b"];
        let day = Trace::desktop_day(8, &models, 7);
        assert_eq!(day, Trace::desktop_day(8, &models, 7));
        assert_ne!(day, Trace::desktop_day(8, &models, 8));
        assert!(day.span() <= Duration::from_secs(8 * 3600));
        assert!(day.bursts.len() > 20, "{}", day.bursts.len());
        let gaps: Vec<Duration> = day
            .bursts
            .windows(2)
            .map(|w| w[1].at - w[0].at - w[0].pauses.iter().sum::<Duration>())
            .collect();
        assert!(gaps.iter().any(|g| *g < Duration::from_secs(60)));
        assert!(gaps.iter().any(|g| *g > Duration::from_secs(20 * 60)));
        let beyond_keep_alive = gaps.iter().filter(|g| **g > Duration::from_secs(300));
        assert!(beyond_keep_alive.count() >= 5);
        for model in models {
            assert!(day.bursts.iter().any(|b| b.model == model), "{model}");
        }
        let main = day.bursts.iter().filter(|b| b.model == models[0]).count();
        assert!(main * 2 > day.bursts.len(), "most talk to the first model");
    }

    #[test]
    fn a_week_has_weekday_rhythm_and_a_friday_model() {
        let models = ["llama3.2", "qwen3:0.6b", "tinyllama"];
        let week = Trace::week(&models, 7);
        assert_eq!(week, Trace::week(&models, 7));
        const DAY: u64 = 24 * 3600;
        let day_of = |b: &Burst| b.at.as_secs() / DAY;
        for burst in &week.bursts {
            let hour = burst.at.as_secs() % DAY / 3600;
            assert!(hour < 9, "within 09:00–18:00: {burst:?}");
        }
        let fridays: Vec<&Burst> = week
            .bursts
            .iter()
            .filter(|b| b.model == "tinyllama")
            .collect();
        assert!(fridays.len() >= 2, "{}", fridays.len());
        assert!(fridays.iter().all(|b| day_of(b) == 4), "only on Friday");
        for day in 0..5 {
            assert!(
                week.bursts
                    .iter()
                    .any(|b| day_of(b) == day && b.model == "llama3.2")
            );
        }
    }

    #[test]
    fn a_switcher_uses_every_model_and_a_burst_day_rushes_then_rests() {
        let five = [
            "llama3.2",
            "qwen3:0.6b",
            "tinyllama",
            "gemma3:1b",
            "phi3:mini",
        ];
        let day = Trace::switcher(8, &five, 7);
        for model in five {
            assert!(
                day.bursts.iter().filter(|b| b.model == model).count() >= 2,
                "{model}"
            );
        }
        let rush = Trace::burst_day(&five, 7);
        let hours: Vec<u64> = rush.bursts.iter().map(|b| b.at.as_secs() / 3600).collect();
        assert!(hours.iter().all(|h| [1, 5, 6, 9].contains(h)), "{hours:?}");
        assert!(rush.bursts.len() > 20, "{}", rush.bursts.len());
        assert!(
            rush.bursts
                .iter()
                .all(|b| b.model == five[0] || b.model == five[1])
        );
    }

    #[test]
    fn the_summary_counts_cold_starts_and_their_first_byte() {
        let message = |cold: bool, first: f64, ttft: f64| Message {
            model: "m".into(),
            first_byte_ms: first,
            ttft_ms: ttft,
            total_ms: ttft + 10.0,
            load_ms: if cold { 3000.0 } else { 1.0 },
            cold,
            error: None,
        };
        let mut failed = message(false, 0.0, 0.0);
        failed.error = Some("status 500".into());
        let report = summarise(
            "http://x",
            60.0,
            vec![
                message(true, 5.0, 3010.0),
                message(false, 2.0, 20.0),
                message(true, 9.0, 3020.0),
                failed,
            ],
            Duration::from_secs(1),
        );
        assert_eq!(
            (report.messages, report.errors, report.cold_starts),
            (4, 1, 2)
        );
        assert_eq!(report.cold_first_byte_max_ms, Some(9.0));
        assert_eq!(report.cold_first_byte_mean_ms, Some(7.0));
        assert_eq!(report.cold_ttft_mean_ms, Some(3015.0));
        assert!((report.ttft_mean_ms - 6050.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.ttft_p95_ms, 3020.0);
    }
}
