//! What an answer says about its own generation: Ollama's final object carries
//! `load_duration`, `prompt_eval_count`, `eval_count` and `eval_duration`
//! (nanoseconds); an OpenAI-shaped answer carries `usage.completion_tokens`.
//!
//! These fields sit at the end of the body (the last NDJSON line of a stream, the
//! last fields of a whole answer, after a possibly huge `context` array), so the
//! body is observed on the side by keeping only its last [`TAIL`] bytes, and read
//! once, when it ends. The fields are found as text: a key in quotes followed by a
//! colon cannot occur inside a JSON string, where quotes are escaped.
//!
//! Where it sits: on the response path, beside the body. The proxy's measured
//! body pushes every chunk it forwards into a [`Tail`] (a copy of at most
//! [`TAIL`] bytes, never delaying the chunk) and, when the answer ends cleanly,
//! reads [`Timings`] from it once: for cold-start counting (`load`), tokens per
//! second (`output_tokens`, `eval`) and learning a host's parallelism
//! ([`Timings::host_wait`]).
//!
//! Why text search instead of a JSON parser: the tail usually starts in the middle
//! of a document (or of an earlier NDJSON line), so it is not JSON; and searching
//! from the end finds the final object's fields even when earlier lines of a
//! stream had fields of the same name. Every field is optional: an answer that
//! lacks one (an error, an embedding, an OpenAI-shaped answer) simply leaves it
//! `None`; nothing here fails or panics.

use std::time::Duration;

/// Bytes of the end of a body kept for [`Timings::of`]: enough for Ollama's
/// final counts and durations (a few hundred bytes) or an OpenAI `usage` object.
pub const TAIL: usize = 1024;

/// The end of a body, kept as it streams past: at most [`TAIL`] bytes, the last
/// ones seen.
#[derive(Debug, Default)]
pub struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    /// Appends a chunk, dropping the oldest bytes beyond [`TAIL`]. A chunk of
    /// `TAIL` bytes or more replaces everything with its own last `TAIL` bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= TAIL {
            self.bytes.clear();
            self.bytes.extend_from_slice(&chunk[chunk.len() - TAIL..]);
            return;
        }
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(TAIL);
        if overflow > 0 {
            self.bytes.drain(..overflow);
        }
        self.bytes.extend_from_slice(chunk);
    }

    /// What the bytes kept so far report; see [`Timings::of`].
    pub fn timings(&self) -> Timings {
        Timings::of(&self.bytes)
    }
}

/// What the end of an answer reported (each field only when present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// `load_duration`: time spent loading the model (a few ms if it was loaded).
    pub load: Option<Duration>,
    /// `prompt_eval_count`, or OpenAI's `usage.prompt_tokens`.
    pub prompt_tokens: Option<u64>,
    /// `eval_count`, or OpenAI's `usage.completion_tokens`.
    pub output_tokens: Option<u64>,
    /// `eval_duration`: time spent generating the output tokens.
    pub eval: Option<Duration>,
    /// Ollama's `total_duration`: from the handler's start to the answer's end,
    /// including any wait for one of the model's parallel slots.
    pub total: Option<Duration>,
    /// `prompt_eval_duration`: time spent on the prompt (prefill).
    pub prompt_eval: Option<Duration>,
}

impl Timings {
    /// Reads the fields from the end of a body. For each field the last
    /// occurrence wins; Ollama's native name is preferred over the OpenAI one
    /// for token counts. Durations are Ollama's nanoseconds. A value that is not
    /// an unsigned integer right after the key (optional spaces allowed) leaves
    /// the field `None`.
    pub fn of(tail: &[u8]) -> Timings {
        // One pass over the quotes, from the end (the tail is read once per
        // answer, on the request path): at each, whether one of the keys starts
        // there. The first occurrence met is the last in the body, which wins,
        // valid or not. Ollama's final object ends the body, so the scan stops
        // once its six fields are read (the OpenAI names would not be used).
        let mut found: [Option<Option<u64>>; KEYS.len()] = [None; KEYS.len()];
        let mut at = tail.len();
        while at > 0 {
            at -= 1;
            if tail[at] != b'"' {
                continue;
            }
            let rest = &tail[at..];
            // Most quotes start no key: the letter after one picks the candidates.
            let candidates: &[usize] = match rest.get(1) {
                Some(b'l') => &[LOAD],
                Some(b'p') => &[PROMPT_COUNT, PROMPT_TOKENS, PROMPT_EVAL],
                Some(b'e') => &[EVAL_COUNT, EVAL],
                Some(b'c') => &[COMPLETION_TOKENS],
                Some(b't') => &[TOTAL],
                _ => continue,
            };
            for &slot in candidates {
                if let Some(value) = rest.strip_prefix(KEYS[slot]) {
                    if found[slot].is_none() {
                        found[slot] = Some(number_at(value));
                    }
                    break;
                }
            }
            if NATIVE.iter().all(|&key| found[key].is_some()) {
                break;
            }
        }
        let get = |key: usize| found[key].flatten();
        let ns = |key: usize| get(key).map(Duration::from_nanos);
        Timings {
            load: ns(LOAD),
            prompt_tokens: get(PROMPT_COUNT).or_else(|| get(PROMPT_TOKENS)),
            output_tokens: get(EVAL_COUNT).or_else(|| get(COMPLETION_TOKENS)),
            eval: ns(EVAL),
            total: ns(TOTAL),
            prompt_eval: ns(PROMPT_EVAL),
        }
    }

    /// How long the request waited at the host for one of the model's parallel
    /// slots, and how long the host worked on it: Ollama's `total_duration` less
    /// `load_duration` (which ends when the runner is ready, before the slot wait),
    /// `prompt_eval_duration` and `eval_duration`. `None` for an answer that does
    /// not report all of these (OpenAI-shaped answers, embeddings without `eval`).
    pub fn host_wait(&self) -> Option<(Duration, Duration)> {
        let (total, load, eval) = (self.total?, self.load?, self.eval?);
        let work = self.prompt_eval.unwrap_or_default() + eval;
        Some((total.saturating_sub(load).saturating_sub(work), work))
    }

    /// Tokens per second of the generation itself, where Ollama reported both
    /// (`None` for a zero `eval_duration`). Only tests call it at present: the
    /// metrics add tokens and durations up instead (see `metrics`).
    pub fn tokens_per_second(&self) -> Option<f64> {
        let (tokens, eval) = (self.output_tokens?, self.eval?);
        (!eval.is_zero()).then(|| tokens as f64 / eval.as_secs_f64())
    }
}

/// The keys [`Timings::of`] reads, each with its quotes and colon, and their
/// places in [`KEYS`].
const KEYS: [&[u8]; 8] = [
    b"\"load_duration\":",
    b"\"prompt_eval_count\":",
    b"\"prompt_tokens\":",
    b"\"eval_count\":",
    b"\"completion_tokens\":",
    b"\"eval_duration\":",
    b"\"total_duration\":",
    b"\"prompt_eval_duration\":",
];
const LOAD: usize = 0;
const PROMPT_COUNT: usize = 1;
const PROMPT_TOKENS: usize = 2;
const EVAL_COUNT: usize = 3;
const COMPLETION_TOKENS: usize = 4;
const EVAL: usize = 5;
const TOTAL: usize = 6;
const PROMPT_EVAL: usize = 7;
/// Ollama's own fields: once all are read, the OpenAI ones would not be used.
const NATIVE: [usize; 6] = [LOAD, PROMPT_COUNT, EVAL_COUNT, EVAL, TOTAL, PROMPT_EVAL];

/// The unsigned integer at the start of `rest` (after optional spaces); `None`
/// if there is none or it does not fit a `u64`.
fn number_at(rest: &[u8]) -> Option<u64> {
    let digits = rest.iter().skip_while(|b| **b == b' ');
    let mut value: Option<u64> = None;
    for digit in digits.take_while(|b| b.is_ascii_digit()) {
        let next = value.unwrap_or(0).checked_mul(10)?;
        value = Some(next.checked_add(u64::from(digit - b'0'))?);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_native_object_is_read() {
        let body = br#"{"model":"m","response":"x","done":false}
{"model":"m","response":"","done":true,"done_reason":"stop","total_duration":9000000,"load_duration":1500000000,"prompt_eval_count":12,"prompt_eval_duration":1,"eval_count":40,"eval_duration":2000000000}
"#;
        let mut tail = Tail::default();
        for chunk in body.chunks(7) {
            tail.push(chunk);
        }
        let t = tail.timings();
        assert_eq!(t.load, Some(Duration::from_millis(1500)));
        assert_eq!(t.prompt_tokens, Some(12));
        assert_eq!(t.output_tokens, Some(40));
        assert_eq!(t.tokens_per_second(), Some(20.0));
        assert_eq!(t.total, Some(Duration::from_millis(9)));
    }

    #[test]
    fn the_last_occurrence_wins_valid_or_not() {
        let t = Timings::of(
            br#"{"eval_count":1,"load_duration":5,"usage":{"completion_tokens":7}}
{"eval_count":2,"load_duration":"x"}"#,
        );
        assert_eq!(t.output_tokens, Some(2));
        assert_eq!(t.load, None);
        let openai = Timings::of(br#"{"usage":{"prompt_tokens":3,"completion_tokens":9}}"#);
        assert_eq!(
            (openai.prompt_tokens, openai.output_tokens),
            (Some(3), Some(9))
        );
    }

    #[test]
    fn the_wait_for_a_slot_is_what_the_durations_leave_over() {
        let t = Timings::of(
            br#"{"done":true,"total_duration":1000000000,"load_duration":100000000,"prompt_eval_duration":50000000,"eval_duration":600000000}"#,
        );
        assert_eq!(
            t.host_wait(),
            Some((Duration::from_millis(250), Duration::from_millis(650)))
        );
        assert_eq!(
            Timings::of(br#"{"usage":{"completion_tokens":3}}"#).host_wait(),
            None
        );
    }

    #[test]
    fn openai_usage_and_long_bodies_are_read() {
        let mut tail = Tail::default();
        tail.push(&vec![b'1'; 10_000]);
        tail.push(br#"],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#);
        let t = tail.timings();
        assert_eq!(
            (t.prompt_tokens, t.output_tokens, t.load),
            (Some(5), Some(7), None)
        );
    }

    #[test]
    fn a_key_inside_a_string_is_not_a_field() {
        let t = Timings::of(br#"{"response":"say \"load_duration\":5 please"}"#);
        assert_eq!(t.load, None);
    }
}
