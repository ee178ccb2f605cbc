use std::pin::Pin;
use std::task::Poll;

use super::*;
use std::num::NonZeroU32;

const N: u32 = 5;
const OPEN_FOR: Duration = Duration::from_secs(60);

/// A breaker whose task the test polls by hand, so every step is explicit and
/// time moves only when the test advances it.
struct Harness {
    breaker: Breaker,
    task: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_capacity(EVENT_CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Harness {
        let (breaker, task) = Breaker::with_capacity(BreakerConfig::default(), capacity);
        // Unconstrained: tokio's per-poll budget must not stop the task from
        // draining everything queued in one step.
        let task = Box::pin(tokio::task::unconstrained(task));
        Harness { breaker, task }
    }

    /// Lets the task handle everything sent so far and fire due timers.
    async fn step(&mut self) {
        std::future::poll_fn(|cx| {
            assert!(self.task.as_mut().poll(cx).is_pending(), "task ended");
            Poll::Ready(())
        })
        .await;
    }

    async fn advance(&mut self, by: Duration) {
        time::advance(by).await;
        self.step().await;
    }

    fn admit(&self) -> Result<Permit, Refused> {
        self.breaker.admit()
    }

    fn admitted(&self) -> Permit {
        self.admit().expect("admitted")
    }

    fn refused(&self) -> Refused {
        self.admit().expect_err("refused")
    }

    fn state(&self) -> State {
        self.breaker.snapshot().state
    }

    async fn fail(&mut self, times: u32) {
        for _ in 0..times {
            self.admitted().failure();
        }
        self.step().await;
    }

    async fn open(&mut self) {
        self.fail(N).await;
        assert_eq!(self.state(), State::Open);
    }

    async fn half_open(&mut self) {
        self.open().await;
        self.advance(OPEN_FOR).await;
        assert_eq!(self.state(), State::HalfOpen);
    }
}

#[test]
fn defaults_match_the_latency_report() {
    let config = BreakerConfig::default();
    assert_eq!(config.failures.get(), 5);
    assert_eq!(config.open_for, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn opens_after_exactly_n_consecutive_failures() {
    let mut h = Harness::new();
    h.fail(N - 1).await;
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.breaker.snapshot().consecutive_failures, N - 1);
    h.fail(1).await;
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.breaker.snapshot().consecutive_failures, N);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_count() {
    let mut h = Harness::new();
    h.fail(N - 1).await;
    h.admitted().success();
    h.step().await;
    assert_eq!(h.breaker.snapshot().consecutive_failures, 0);
    h.fail(N - 1).await;
    assert_eq!(h.state(), State::Closed);
    h.fail(1).await;
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_counts_as_neither() {
    let mut h = Harness::new();
    h.fail(N - 1).await;
    drop(h.admitted());
    h.step().await;
    assert_eq!(h.breaker.snapshot().consecutive_failures, N - 1);
    h.fail(1).await;
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn refuses_while_open_and_reports_the_retry_time() {
    let mut h = Harness::new();
    h.open().await;
    assert_eq!(h.refused().retry_in, OPEN_FOR);
    assert_eq!(h.refused().retry_after_secs(), 60);

    h.advance(Duration::from_millis(20_500)).await;
    let refused = h.refused();
    assert_eq!(refused.retry_in, Duration::from_millis(39_500));
    assert_eq!(refused.retry_after_secs(), 40);
    assert_eq!(h.breaker.snapshot().retry_in_ms, Some(39_500));

    h.advance(Duration::from_millis(39_499)).await;
    assert_eq!(h.refused().retry_in, Duration::from_millis(1));
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn half_opens_after_the_open_period_and_admits_exactly_one_probe() {
    let mut h = Harness::new();
    h.half_open().await;
    assert_eq!(h.breaker.snapshot().retry_in_ms, None);

    let probe = h.admitted();
    assert!(probe.is_probe());
    for _ in 0..3 {
        assert_eq!(h.refused().retry_in, PROBING_RETRY_IN);
    }
    h.step().await;
    assert_eq!(h.refused().retry_in, PROBING_RETRY_IN);
    drop(probe);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_race_for_one_probe() {
    let mut h = Harness::new();
    h.half_open().await;
    let start = Arc::new(std::sync::Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (breaker, start) = (h.breaker.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                breaker.admit().ok()
            })
        })
        .collect();
    let winners: Vec<Permit> = racers
        .into_iter()
        .filter_map(|racer| racer.join().expect("racer"))
        .collect();
    assert_eq!(winners.len(), 1);
    assert!(winners[0].is_probe());
}

#[tokio::test(start_paused = true)]
async fn probe_success_closes() {
    let mut h = Harness::new();
    h.half_open().await;
    h.admitted().success();
    h.step().await;
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.breaker.snapshot().consecutive_failures, 0);
    let a = h.admitted();
    let b = h.admitted();
    assert!(!a.is_probe() && !b.is_probe());
}

#[tokio::test(start_paused = true)]
async fn probe_failure_reopens_for_a_full_period() {
    let mut h = Harness::new();
    h.half_open().await;
    h.advance(Duration::from_secs(7)).await;
    h.admitted().failure();
    h.step().await;
    assert_eq!(h.state(), State::Open);
    assert_eq!(h.refused().retry_in, OPEN_FOR);
    assert_eq!(h.breaker.snapshot().consecutive_failures, N + 1);

    h.advance(OPEN_FOR - Duration::from_millis(1)).await;
    assert_eq!(h.state(), State::Open);
    h.advance(Duration::from_millis(1)).await;
    assert_eq!(h.state(), State::HalfOpen);
    assert!(h.admitted().is_probe());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_lets_another_probe_through() {
    let mut h = Harness::new();
    h.half_open().await;
    drop(h.admitted());
    h.step().await;
    assert_eq!(h.state(), State::HalfOpen);
    let probe = h.admitted();
    assert!(probe.is_probe());
    h.refused();
    probe.success();
    h.step().await;
    assert_eq!(h.state(), State::Closed);
    assert_eq!(h.breaker.snapshot().half_opened, 1);
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_earlier_periods_are_ignored() {
    let mut h = Harness::new();
    let early_success = h.admitted();
    let early_failure = h.admitted();
    h.half_open().await;

    // An ordinary success while half-open does not close the breaker.
    early_success.success();
    h.step().await;
    assert_eq!(h.state(), State::HalfOpen);

    h.admitted().success();
    h.step().await;
    assert_eq!(h.state(), State::Closed);

    // A failure from before the outage does not count against the recovered host.
    early_failure.failure();
    h.step().await;
    assert_eq!(h.breaker.snapshot().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn transition_counters_and_snapshot_shape() {
    let mut h = Harness::new();
    let zero = h.breaker.snapshot();
    assert_eq!(
        serde_json::to_value(&zero).expect("serializes"),
        serde_json::json!({
            "state": "closed", "consecutive_failures": 0,
            "opened": 0, "half_opened": 0, "closed": 0, "events_dropped": 0,
        })
    );

    h.half_open().await; // opened 1, half_opened 1
    h.admitted().failure();
    h.step().await; // opened 2
    h.advance(OPEN_FOR).await; // half_opened 2
    h.admitted().success();
    h.step().await; // closed 1
    h.open().await; // opened 3

    let snap = h.breaker.snapshot();
    assert_eq!(
        (snap.opened, snap.half_opened, snap.closed),
        (3, 2, 1),
        "{snap:?}"
    );
    assert_eq!(
        serde_json::to_value(&snap).expect("serializes"),
        serde_json::json!({
            "state": "open", "consecutive_failures": N, "retry_in_ms": 60_000,
            "opened": 3, "half_opened": 2, "closed": 1, "events_dropped": 0,
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_channel_drops_ordinary_outcomes_but_never_the_probe() {
    let mut h = Harness::with_capacity(2);
    // Three outcomes before the task runs: the third does not fit.
    h.admitted().failure();
    h.admitted().failure();
    h.admitted().failure();
    assert_eq!(h.breaker.snapshot().events_dropped, 1);
    h.step().await;
    assert_eq!(h.breaker.snapshot().consecutive_failures, 2);

    // Half-open with the channel full of stale outcomes: no probe is handed
    // out, and the slot stays free rather than stuck.
    let stale: Vec<Permit> = (0..2).map(|_| h.admitted()).collect();
    for _ in 0..N - 2 {
        h.fail(1).await;
    }
    assert_eq!(h.state(), State::Open);
    h.advance(OPEN_FOR).await;
    stale.into_iter().for_each(Permit::success);
    assert_eq!(h.refused().retry_in, PROBING_RETRY_IN);
    assert_eq!(h.state(), State::HalfOpen);

    h.step().await;
    let probe = h.admitted();
    assert!(probe.is_probe());
    probe.failure();
    h.step().await;
    assert_eq!(h.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_disabled_breaker_never_opens() {
    let config = BreakerConfig {
        enabled: false,
        failures: NonZeroU32::MIN,
        ..BreakerConfig::default()
    };
    let (breaker, _task) = Breaker::spawn(config);
    for _ in 0..10 {
        breaker.admit().expect("never refused").failure();
        tokio::task::yield_now().await;
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn spawned_task_runs_and_ends_with_its_handles() {
    let config = BreakerConfig {
        failures: NonZeroU32::MIN,
        open_for: Duration::from_secs(5),
        ..BreakerConfig::default()
    };
    let (breaker, task) = Breaker::spawn(config);
    breaker.admit().expect("closed").failure();
    tokio::task::yield_now().await;
    let refused = breaker.admit().expect_err("open after one failure");
    assert_eq!(refused.retry_in, Duration::from_secs(5));

    time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    let probe = breaker.admit().expect("probe");
    assert!(probe.is_probe());
    probe.success();
    tokio::task::yield_now().await;
    assert_eq!(breaker.snapshot().state, State::Closed);

    drop(breaker);
    task.await.expect("task ends cleanly");
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let secs = |ms| {
        Refused {
            retry_in: Duration::from_millis(ms),
        }
        .retry_after_secs()
    };
    assert_eq!(secs(0), 1);
    assert_eq!(secs(1), 1);
    assert_eq!(secs(1_000), 1);
    assert_eq!(secs(1_001), 2);
    assert_eq!(secs(59_999), 60);
}

/// Two requests can both load `HalfOpen` before either takes the slot; the
/// compare-exchange is what leaves one of them refused.
#[tokio::test(start_paused = true)]
async fn the_probe_slot_is_taken_once_per_release() {
    let cell = GateCell::new();
    assert!(!cell.take_probe(), "no slot while closed");
    cell.store(Gate::HalfOpen);
    assert!(cell.take_probe());
    assert!(!cell.take_probe());
    assert_eq!(cell.load(), Gate::Probing);
    cell.release_probe();
    assert!(cell.take_probe());
}

#[tokio::test(start_paused = true)]
async fn gate_word_round_trips() {
    let cell = GateCell::new();
    let until = Instant::now() + Duration::from_millis(1_234);
    for gate in [
        Gate::Closed { epoch: 0 },
        Gate::Closed { epoch: 42 },
        Gate::Open { until },
        Gate::HalfOpen,
        Gate::Probing,
    ] {
        cell.store(gate);
        assert_eq!(cell.load(), gate);
    }
}
