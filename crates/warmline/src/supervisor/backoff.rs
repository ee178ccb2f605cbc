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

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::DaemonConfig;

/// The crash history of one daemon.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    window: Duration,
    limit: u32,
    crashes: VecDeque<Instant>,
    consecutive: u32,
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart after this delay.
    RestartIn(Duration),
    /// Give up: this many crashes within the window.
    CrashLoop { crashes: u32, window: Duration },
}

impl Backoff {
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
    /// healthy and the delays start over.
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
