//! When to restart a crashed daemon, and when to stop trying.
//!
//! Restart delays double from `restart_backoff` per consecutive crash, capped at
//! `restart_backoff_max`, with ±20 % jitter so several gateways restarting their
//! daemons after a shared cause do not do it in lockstep. A daemon that then runs
//! for a whole `crash_loop_window` is considered healthy again and the next crash
//! starts from the first delay. `crash_loop_restarts` unexpected exits inside one
//! window is a crash loop: restarting again would only repeat it, so the
//! supervisor stops and says why. Time is tokio's, so all of it is tested on
//! paused time.
//!
//! ```text
//!   crash 1 ─▶ wait b      crash 2 ─▶ wait 2b     crash 3 ─▶ wait 4b ... ≤ max
//!   up for a whole window ─▶ the next crash waits b again
//!   crash_loop_restarts crashes within one window ─▶ CrashLoop: stop restarting
//! ```
//!
//! A [`Backoff`] is owned by the supervisor's task alone (no locks); the
//! supervisor draws the jitter and passes it in, so the policy itself is
//! deterministic. A start the user asks for ([`Backoff::reset`]) forgets the
//! history, so a crash loop never locks the user out.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::DaemonConfig;

/// The crash history of one daemon.
#[derive(Debug)]
pub(crate) struct Backoff {
    /// The first delay (`restart_backoff`).
    first: Duration,
    /// The longest delay, jitter included (`restart_backoff_max`).
    max: Duration,
    /// How long a daemon must run to count as healthy, and the span crashes are
    /// counted over (`crash_loop_window`).
    window: Duration,
    /// Crashes within one window that make a crash loop (`crash_loop_restarts`).
    limit: u32,
    /// When the crashes of the last window happened, oldest first.
    crashes: VecDeque<Instant>,
    /// Crashes since the daemon last ran a whole window: the doubling exponent.
    consecutive: u32,
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after this delay (already jittered and capped).
    RestartIn(Duration),
    /// Give up: this many crashes within the window (the supervisor reports
    /// both figures to the user).
    CrashLoop { crashes: u32, window: Duration },
}

impl Backoff {
    /// No crash yet, with the delays and limits of `config`.
    pub(crate) fn new(config: &DaemonConfig) -> Backoff {
        Backoff {
            first: config.restart_backoff,
            max: config.restart_backoff_max,
            window: config.crash_loop_window,
            limit: config.crash_loop_restarts,
            crashes: VecDeque::new(),
            consecutive: 0,
        }
    }

    /// The daemon has been up since `since`: if that is a whole window, it is
    /// healthy and the delays start over. Called when a running daemon exits,
    /// before [`Backoff::crashed`]; the crash times themselves age out of the
    /// window on their own.
    pub(crate) fn running_since(&mut self, since: Instant) {
        if since.elapsed() >= self.window {
            self.consecutive = 0;
        }
    }

    /// Forgets every crash (a start the user asked for).
    pub(crate) fn reset(&mut self) {
        self.crashes.clear();
        self.consecutive = 0;
    }

    /// Records a crash now; `jitter` in [-1, 1] scales the ±20 % spread.
    ///
    /// Returns [`Verdict::CrashLoop`] once this crash makes `limit` within the
    /// window (with a `limit` of 0, at the first crash); otherwise the next delay:
    /// `first × 2^consecutive`, capped at `max`, spread by `jitter × 20 %` and
    /// capped at `max` again (so at the cap the spread only shortens it). Jitter
    /// outside [-1, 1] is clamped.
    pub(crate) fn crashed(&mut self, jitter: f64) -> Verdict {
        let now = Instant::now();
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.window)
        {
            self.crashes.pop_front();
        }
        let in_window = u32::try_from(self.crashes.len()).unwrap_or(u32::MAX);
        if in_window >= self.limit {
            return Verdict::CrashLoop {
                crashes: in_window,
                window: self.window,
            };
        }
        let doublings = self.consecutive.min(20);
        self.consecutive += 1;
        let base = self.first.saturating_mul(1u32 << doublings).min(self.max);
        let spread = base.as_secs_f64() * 0.2 * jitter.clamp(-1.0, 1.0);
        let delay = Duration::from_secs_f64((base.as_secs_f64() + spread).max(0.0));
        Verdict::RestartIn(delay.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DaemonConfig {
        let mut config = crate::Config::default().daemon;
        config.restart_backoff = Duration::from_millis(500);
        config.restart_backoff_max = Duration::from_secs(4);
        config.crash_loop_restarts = 5;
        config.crash_loop_window = Duration::from_secs(60);
        config
    }

    #[tokio::test(start_paused = true)]
    async fn delays_double_up_to_the_cap_then_a_crash_loop_stops_it() {
        let mut backoff = Backoff::new(&config());
        let mut delays = Vec::new();
        for _ in 0..4 {
            match backoff.crashed(0.0) {
                Verdict::RestartIn(delay) => delays.push(delay),
                other => panic!("{other:?}"),
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000].map(Duration::from_millis),
            "doubling from 500 ms"
        );
        assert_eq!(
            backoff.crashed(0.0),
            Verdict::CrashLoop {
                crashes: 5,
                window: Duration::from_secs(60)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_a_fifth_and_under_the_cap() {
        let mut backoff = Backoff::new(&config());
        let Verdict::RestartIn(high) = backoff.crashed(1.0) else {
            panic!("restart");
        };
        assert_eq!(high, Duration::from_millis(600));
        let mut backoff = Backoff::new(&config());
        let Verdict::RestartIn(low) = backoff.crashed(-1.0) else {
            panic!("restart");
        };
        assert_eq!(low, Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_spread_out_over_time_never_make_a_loop() {
        let mut backoff = Backoff::new(&config());
        for _ in 0..20 {
            assert!(matches!(backoff.crashed(0.0), Verdict::RestartIn(_)));
            let since = Instant::now();
            // Up for longer than the window before the next crash: healthy again.
            tokio::time::advance(Duration::from_secs(61)).await;
            backoff.running_since(since);
        }
        assert_eq!(
            backoff.crashed(0.0),
            Verdict::RestartIn(Duration::from_millis(500))
        );
    }
}
