//! How many requests per model each host runs at once: found, not assumed.
//!
//! Ollama runs `OLLAMA_NUM_PARALLEL` requests per loaded model (1 by default since
//! v0.9.7) and queues the rest itself, without bound once the model is loaded.
//! Warmline forwards exactly that many and keeps the queue (see `admission`), so it
//! has to know the number — and Ollama does not report it over its API. Where it
//! comes from, in order ([`Source`]):
//!
//! 1. **stated**: the host's `parallel` (or `concurrency.per_model`) in the config;
//! 2. **supervised**: a daemon Warmline starts gets `daemon.num_parallel`;
//! 3. **adopted**: a daemon on this machine, found by the port it listens on,
//!    started with `OLLAMA_NUM_PARALLEL` in its environment (see
//!    `upstream::discover`);
//! 4. **learned**: anything else — a remote host, a daemon whose environment
//!    cannot be read or does not say — per (host, model), by the [`Learner`].
//!
//! # Learning
//!
//! Ollama's final answer says where a request's time went: `total_duration` runs
//! from the handler's start to the end, `load_duration` ends when the model's
//! runner is ready — *before* the wait for one of its parallel slots — and
//! `prompt_eval_duration` and `eval_duration` are the work itself. What is left
//! over is the time the request sat in the host's queue, measured by the host, so
//! the network plays no part ([`crate::wire::timings::Timings::host_wait`]).
//!
//! Each request remembers `k`, how many of Warmline's requests for its model were
//! in flight to its host when it was sent, itself included. Then:
//!
//! - sent as the `k`-th and it did not queue: the host runs at least `k` at once;
//! - sent as the `k`-th and it queued: the host runs fewer than `k` (now — other
//!   clients of the host count too), so the limit drops to `k - 1`.
//!
//! The limit only grows by probing: while requests wait in Warmline's queue, one
//! request at a time is sent one above the limit. When two probes in a row do not
//! queue, the limit grows by one; when one does, the limit stays and the next
//! probe waits a while
//! (`4 × limit` answers, at least 8), so a host at its true parallelism gets one
//! extra request only now and then. A request counts as queued when it waited
//! more than 25 ms and more than a tenth of its own work, which leaves room for
//! Ollama's per-token overhead outside the durations it reports.
//!
//! **Answers without durations.** Ollama's OpenAI-compatible answers (`/v1/*`)
//! report token counts only. For those, a stream's time to its first byte stands
//! in: Ollama sends a stream's headers with its first token, so that time is the
//! wait for a slot plus prefill and one token. The learner keeps a floor per
//! model (the shortest first byte seen, creeping up slowly so it follows a host
//! that got slower) and counts an answer as queued when its first byte took more
//! than twice the floor plus 25 ms. Prompts of very different lengths make this
//! rougher than the durations (a long prompt can look queued, which only lowers
//! the limit until the next probes); answers that paid a model load are not
//! counted at all.
//!
//! **Who was really there.** `k` counts Warmline's requests in flight when one is
//! sent, but a request counts until its answer's last byte has passed Warmline,
//! a little after the host finished it, and answers of the same length end
//! together: a request sent as the fifth just as three others end meets a host
//! running only one of them. So the learner remembers when its model's requests
//! ended, and a request that did not queue counts only those that were still
//! running when it started at the host ([`Learner::concurrent`]).
//!
//! A probe that does not queue by luck (a slot freed just as it arrived — about
//! one in eight for a host of two slots and 400 ms answers) is why one clean
//! probe is not enough; two lucky ones in a row can still raise the limit one
//! too high, and the next requests sent as that many then queue and bring it
//! back. Over time a host therefore gets its parallelism, and never more
//! than one request above it for long.
//!
//! # Where it sits
//!
//! A [`Learner`] is plain data with no clock or task of its own: `admission`
//! keeps one per (host, model) for hosts whose [`Source`] is `Learned`, asks it
//! for the limit and whether a probe may go when it hands out slots, and feeds it
//! each answer's timings when the answer ends (the proxy reads them with
//! `timings`), under the host's slot lock. Time comes in as tokio `Instant`s, so
//! it is tested on paused time.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Where a host's parallelism came from (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Given in the configuration for the host (or for every host).
    Stated,
    /// The daemon Warmline itself runs, started with `daemon.num_parallel`.
    Supervised,
    /// A daemon on this machine whose environment says `OLLAMA_NUM_PARALLEL`.
    Adopted,
    /// None of the above: found per model by the [`Learner`].
    Learned,
}

impl Source {
    /// The lower-case name, as serialised and used in the
    /// `warmline_upstream_parallel` metric's `source` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Stated => "stated",
            Source::Supervised => "supervised",
            Source::Adopted => "adopted",
            Source::Learned => "learned",
        }
    }
}

/// The most requests per model a learned limit goes up to.
pub const MAX_LEARNED: usize = 64;
/// A wait at the host shorter than this is not queueing.
const QUEUED_AT_LEAST: Duration = Duration::from_millis(25);
/// How long after a request's start at the host another one's end still counts
/// as having freed its slot before (an answer's last bytes pass Warmline after
/// the host is done with it).
const END_LAG: Duration = Duration::from_millis(20);
/// Ends of requests remembered per (host, model).
const ENDS_KEPT: usize = 128;
/// Probes in a row that must not queue for the limit to grow.
const CLEAN_PROBES: u32 = 2;
/// Answers to wait after an answer that queued (a probe or not) before the next
/// probe, per unit of the limit then in force.
const COOLDOWN_PER_SLOT: u32 = 4;
/// The least such wait, in answers, whatever the limit.
const COOLDOWN_MIN: u32 = 8;

/// Whether a request that waited `wait` at the host, for `work` of its own,
/// was queued there: more than 25 ms and more than a tenth of `work`, so the
/// small per-token overhead Ollama leaves out of its durations is not mistaken
/// for a wait.
pub fn queued(wait: Duration, work: Duration) -> bool {
    wait > QUEUED_AT_LEAST && wait > work / 10
}

/// One (host, model)'s learned parallelism.
///
/// Invariant: `1 <= limit() <= MAX_LEARNED`. No method blocks, allocates beyond
/// a bounded ring of end times, or panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learner {
    /// Requests to send at once, as learned so far.
    limit: usize,
    /// Answers until the next probe may go.
    cooldown: u32,
    /// Probes in a row that did not queue.
    clean: u32,
    /// The smallest `k` at which a request queued since the limit last grew
    /// past it, and how many times the limit grew to it and fell back: going
    /// there again takes twice the clean probes each time (at most 16).
    failed_at: Option<usize>,
    failures: u32,
    /// When this model's recent requests ended, oldest first.
    ends: VecDeque<Instant>,
    /// The shortest first byte seen of answers without durations (see the
    /// module docs), drifting up by 1/64 of the gap per answer.
    floor: Option<Duration>,
}

impl Learner {
    /// Starts at `start` (Ollama's default, 1, when nothing is known), clamped to
    /// 1..=[`MAX_LEARNED`]. Probes may go at once.
    pub fn new(start: usize) -> Learner {
        Learner {
            limit: start.clamp(1, MAX_LEARNED),
            cooldown: 0,
            clean: 0,
            failed_at: None,
            failures: 0,
            ends: VecDeque::new(),
            floor: None,
        }
    }

    /// Requests to send at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether one request above the limit may go now (the caller also checks
    /// that requests are waiting and that no other probe is out).
    pub fn may_probe(&self) -> bool {
        self.cooldown == 0 && self.limit < MAX_LEARNED
    }

    /// A request of this model ended (its slot was released) at `at`. Only the
    /// last 128 ends are kept; calls must come in time order, which releasing
    /// slots as answers end gives.
    pub fn ended(&mut self, at: Instant) {
        if self.ends.len() == ENDS_KEPT {
            self.ends.pop_front();
        }
        self.ends.push_back(at);
    }

    /// Of the `k` requests in flight when one was sent at `sent`, how many were
    /// still running at the host when it started there, `waited` later: those
    /// that ended in between (give or take [`END_LAG`]) did not hold a slot.
    pub fn concurrent(&self, k: usize, sent: Instant, waited: Duration) -> usize {
        let until = sent + waited + END_LAG;
        let ended = self
            .ends
            .iter()
            .rev()
            .take_while(|at| **at >= sent)
            .filter(|at| **at <= until)
            .count();
        k.saturating_sub(ended).max(1)
    }

    /// Learns from an answer sent as the `k`-th in flight, which waited `wait` at
    /// the host for `work` of its own (see `Timings::host_wait`). Returns whether
    /// the limit changed, so the caller can grant waiting requests a raised limit.
    pub fn observe(&mut self, k: usize, wait: Duration, work: Duration) -> bool {
        self.decide(k, queued(wait, work))
    }

    /// Learns from an answer without durations, sent as the `k`-th in flight,
    /// whose first byte came `first_byte` after it was sent. Moves the floor (the
    /// first answer sets it; a faster one lowers it at once; a slower one raises
    /// it by 1/64 of the difference), then counts the answer as queued when it took
    /// more than twice the floor plus 25 ms. Returns whether the limit changed.
    pub fn observe_first_byte(&mut self, k: usize, first_byte: Duration) -> bool {
        let floor = match self.floor {
            Some(floor) if first_byte >= floor => floor + (first_byte - floor) / 64,
            _ => first_byte,
        };
        self.floor = Some(floor);
        self.decide(k, first_byte > floor * 2 + QUEUED_AT_LEAST)
    }

    /// The rules of the module docs, for an answer sent as the `k`-th that did or
    /// did not queue. Every answer counts down the probe cooldown; a queued one at
    /// or below the limit lowers it to `k - 1` (at least 1) and restarts the
    /// cooldown; a clean one above the limit counts toward growing it to `k`.
    fn decide(&mut self, k: usize, queued: bool) -> bool {
        let before = self.limit;
        self.cooldown = self.cooldown.saturating_sub(1);
        if queued {
            if k <= self.limit {
                // It was wrong to send this many: remember where. (Queued as
                // the first in flight: others use the host; nothing below 1.)
                self.limit = k.saturating_sub(1).max(1);
                if k >= 2 {
                    self.failures = match self.failed_at {
                        Some(at) if at == k => self.failures + 1,
                        _ => 1,
                    };
                    self.failed_at = Some(k);
                }
            }
            self.clean = 0;
            self.cooldown = (self.limit as u32 * COOLDOWN_PER_SLOT).max(COOLDOWN_MIN);
        } else if k > self.limit {
            self.clean += 1;
            let needed = match self.failed_at {
                Some(at) if k >= at => (CLEAN_PROBES << self.failures.min(3)).min(16),
                _ => CLEAN_PROBES,
            };
            if self.clean >= needed {
                self.limit = k.min(MAX_LEARNED);
                self.clean = 0;
            }
        }
        self.limit != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORK: Duration = Duration::from_millis(700);
    const CLEAN: Duration = Duration::from_millis(2);
    const QUEUED: Duration = Duration::from_millis(300);

    /// A host with `slots` parallel slots, kept busy: every probe goes at
    /// `limit + 1`, every other answer at `limit`.
    fn converge(slots: usize, answers: usize) -> Learner {
        let mut learner = Learner::new(1);
        for i in 0..answers {
            let probe = learner.may_probe() && i % 2 == 0;
            let k = if probe {
                learner.limit() + 1
            } else {
                learner.limit()
            };
            let wait = if k > slots { QUEUED } else { CLEAN };
            learner.observe(k, wait, WORK);
        }
        learner
    }

    #[test]
    fn a_busy_host_is_learned_exactly() {
        for slots in [1, 2, 4, 8, 32] {
            assert_eq!(converge(slots, 400).limit(), slots, "{slots} slots");
        }
    }

    #[test]
    fn growing_one_slot_takes_two_clean_probes_in_a_row() {
        let mut learner = Learner::new(1);
        assert!(!learner.observe(2, CLEAN, WORK));
        assert!(
            !learner.observe(2, QUEUED, WORK),
            "a queued probe resets the count"
        );
        for _ in 0..COOLDOWN_MIN {
            learner.observe(1, CLEAN, WORK);
        }
        assert!(!learner.observe(2, CLEAN, WORK));
        assert!(learner.observe(2, CLEAN, WORK));
        assert_eq!(learner.limit(), 2);
        assert!(learner.may_probe());
    }

    #[test]
    fn a_queued_answer_lowers_the_limit_below_where_it_queued() {
        let mut learner = Learner::new(8);
        assert!(learner.observe(5, QUEUED, WORK));
        assert_eq!(learner.limit(), 4);
        assert!(!learner.may_probe(), "a queued answer holds probes back");
        for _ in 0..(4 * COOLDOWN_PER_SLOT) {
            learner.observe(1, CLEAN, WORK);
        }
        assert!(learner.may_probe());
        // Queued as the first in flight: others use the host; nothing below 1.
        learner.observe(1, QUEUED, WORK);
        assert_eq!(learner.limit(), 1);
    }

    #[test]
    fn a_lucky_probe_is_taken_back_and_the_next_climb_needs_more() {
        // The host has 4; two probes at 5 did not queue by luck.
        let mut learner = Learner::new(4);
        learner.observe(5, CLEAN, WORK);
        learner.observe(5, CLEAN, WORK);
        assert_eq!(learner.limit(), 5);
        learner.observe(5, QUEUED, WORK);
        assert_eq!(learner.limit(), 4);
        // Back to 5 now takes four clean probes, then eight.
        for round in [4, 8] {
            for _ in 0..COOLDOWN_MIN * 4 {
                learner.observe(4, CLEAN, WORK);
            }
            for _ in 1..round {
                learner.observe(5, CLEAN, WORK);
                assert_eq!(learner.limit(), 4, "round {round}");
            }
            learner.observe(5, CLEAN, WORK);
            assert_eq!(learner.limit(), 5, "round {round}");
            learner.observe(5, QUEUED, WORK);
        }
        // Past the place it failed, the usual two suffice.
        let mut learner = Learner::new(2);
        learner.observe(3, QUEUED, WORK);
        learner.observe(2, QUEUED, WORK);
        assert_eq!(learner.limit(), 1);
    }

    #[test]
    fn first_bytes_against_their_floor_tell_queueing_apart() {
        let mut learner = Learner::new(1);
        let ms = Duration::from_millis;
        // The first answer sets the floor; a similar one at 2 is not queued.
        learner.observe_first_byte(1, ms(60));
        assert!(!learner.observe_first_byte(2, ms(70)));
        assert!(learner.observe_first_byte(2, ms(65)));
        assert_eq!(learner.limit(), 2);
        // A probe at 3 waited a whole answer: queued, the limit stays at 2.
        assert!(!learner.observe_first_byte(3, ms(400)));
        assert_eq!(learner.limit(), 2);
        assert!(!learner.may_probe());
        // A slow answer does not move the floor far.
        assert!(learner.floor.is_some_and(|f| f < ms(70)));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_ended_as_one_was_sent_do_not_count() {
        let mut learner = Learner::new(4);
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(2)).await;
        learner.ended(Instant::now());
        learner.ended(Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        learner.ended(Instant::now());
        // Sent as the 5th: two ended 2 ms later; the third ended long after it started.
        assert_eq!(learner.concurrent(5, sent, Duration::ZERO), 3);
        assert_eq!(learner.concurrent(1, sent, Duration::ZERO), 1);
    }

    #[test]
    fn short_waits_and_per_token_overhead_are_not_queueing() {
        assert!(!queued(
            Duration::from_millis(20),
            Duration::from_millis(10)
        ));
        assert!(!queued(Duration::from_millis(60), Duration::from_secs(2)));
        assert!(queued(
            Duration::from_millis(60),
            Duration::from_millis(200)
        ));
    }
}
