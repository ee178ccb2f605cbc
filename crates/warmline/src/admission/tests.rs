use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use super::rate::bucket_key;
use super::*;
use std::net::IpAddr;

const M: &str = "llama3.2";

fn slots(per_model: usize, queue: usize, max_wait: Duration) -> Slots {
    Slots::new(ConcurrencyConfig {
        source: Source::Stated,
        parallel: NonZeroUsize::MIN,
        per_model: NonZeroUsize::new(per_model).expect("non-zero"),
        queue,
        max_wait,
    })
}

/// (in use, queued) for a model; (0, 0) when it has no entry.
fn counts(slots: &Slots, model: &str) -> (usize, usize) {
    slots
        .snapshot()
        .into_iter()
        .find(|m| m.model == model)
        .map_or((0, 0), |m| (m.in_use, m.queued))
}

/// Polls once, as a runtime would when the task is first scheduled.
fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Lets spawned tasks run until `model` has `n` waiters.
async fn until_queued(slots: &Slots, model: &str, n: usize) {
    for _ in 0..1000 {
        if counts(slots, model).1 == n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{n} waiters never queued: {:?}", slots.snapshot());
}

/// Runs `n` concurrent requests for `M`, each holding its slot through
/// `hold(i)`, and returns the most that were ever in flight at once. Every
/// request must be served.
async fn most_in_flight<F, H>(slots: &Slots, n: u64, hold: H) -> usize
where
    H: Fn(u64) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let current = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (slots, current, max) = (slots.clone(), current.clone(), max.clone());
            let hold = hold(i);
            tokio::spawn(async move {
                let slot = slots.acquire(M).await?;
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                hold.await;
                // Counted out before the slot is released, so counts never overlap.
                current.fetch_sub(1, Ordering::SeqCst);
                drop(slot);
                Ok::<_, Rejected>(())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task ran"), Ok(()));
    }
    max.load(Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn in_use_never_exceeds_per_model() {
    let slots = slots(3, 100, Duration::from_secs(60));
    let most = most_in_flight(&slots, 40, |i| {
        tokio::time::sleep(Duration::from_millis(10 + i % 7))
    })
    .await;
    assert_eq!(most, 3);
    assert!(slots.snapshot().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_use_never_exceeds_per_model_across_threads() {
    let slots = slots(2, 1000, Duration::from_secs(600));
    let most = most_in_flight(&slots, 200, |_| async {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!((1..=2).contains(&most), "{most}");
    assert!(slots.snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn slots_are_granted_in_arrival_order() {
    let slots = slots(1, 10, Duration::from_secs(60));
    let held = slots.acquire(M).await.expect("free slot");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (mine, order) = (slots.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let slot = mine.acquire(M).await;
            order.lock().expect("not poisoned").push(i);
            tokio::time::sleep(Duration::from_millis(5)).await;
            slot.map(drop)
        }));
        until_queued(&slots, M, i + 1).await;
    }
    drop(held);
    for task in tasks {
        assert_eq!(task.await.expect("task ran"), Ok(()));
    }
    assert_eq!(*order.lock().expect("not poisoned"), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_does_not_overtake_a_granted_waiter() {
    let slots = slots(1, 10, Duration::from_secs(60));
    let held = slots.acquire(M).await.expect("free slot");
    let mut first = pin!(slots.acquire(M));
    assert!(poll_once(first.as_mut()).is_pending());
    drop(held);
    // The freed slot already belongs to `first`, though it has not looked yet.
    let mut newcomer = pin!(slots.acquire(M));
    assert!(poll_once(newcomer.as_mut()).is_pending());
    assert_eq!(counts(&slots, M), (1, 1));
    let Poll::Ready(Ok(slot)) = poll_once(first.as_mut()) else {
        panic!("the first waiter holds the slot");
    };
    drop(slot);
    assert!(matches!(poll_once(newcomer.as_mut()), Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_with_its_length() {
    let slots = slots(1, 2, Duration::from_secs(30));
    let _held = slots.acquire(M).await.expect("free slot");
    let mut a = pin!(slots.acquire(M));
    let mut b = pin!(slots.acquire(M));
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    let start = Instant::now();
    let refused = slots.acquire(M).await.err();
    assert_eq!(refused, Some(Rejected::QueueFull { queued: 2 }));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(counts(&slots, M), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_zero_queue_never_waits() {
    let slots = slots(1, 0, Duration::from_secs(30));
    let held = slots.acquire(M).await.expect("free slot");
    let refused = slots.acquire(M).await.err();
    assert_eq!(refused, Some(Rejected::QueueFull { queued: 0 }));
    drop(held);
    assert!(slots.acquire(M).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_max_wait_times_out_and_leaves() {
    let max_wait = Duration::from_secs(30);
    let slots = slots(1, 4, max_wait);
    let _held = slots.acquire(M).await.expect("free slot");
    let start = Instant::now();
    match slots.acquire(M).await {
        Err(Rejected::TimedOut { waited }) => {
            assert!(waited >= max_wait, "{waited:?}");
            assert!(waited <= max_wait + Duration::from_millis(2), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= max_wait);
    assert_eq!(counts(&slots, M), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_slot_records_how_long_it_waited() {
    let slots = slots(1, 4, Duration::from_secs(30));
    let held = slots.acquire(M).await.expect("free slot");
    assert_eq!(held.waited(), Duration::ZERO);
    let waiter = tokio::spawn({
        let slots = slots.clone();
        async move { slots.acquire(M).await.map(|slot| slot.waited()) }
    });
    until_queued(&slots, M, 1).await;
    tokio::time::advance(Duration::from_secs(29)).await;
    drop(held);
    let waited = waiter.await.expect("task ran");
    assert_eq!(waited, Ok(Duration::from_secs(29)));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_the_queue_and_the_next_is_served() {
    let slots = slots(1, 2, Duration::from_secs(30));
    let held = slots.acquire(M).await.expect("free slot");
    let gone = tokio::spawn({
        let slots = slots.clone();
        async move { slots.acquire(M).await.map(drop) }
    });
    until_queued(&slots, M, 1).await;
    let next = tokio::spawn({
        let slots = slots.clone();
        async move { slots.acquire(M).await }
    });
    until_queued(&slots, M, 2).await;
    gone.abort();
    assert!(gone.await.is_err_and(|e| e.is_cancelled()));
    assert_eq!(counts(&slots, M), (1, 1));
    // The place it left is free for someone else.
    let mut third = pin!(slots.acquire(M));
    assert!(poll_once(third.as_mut()).is_pending());
    assert_eq!(counts(&slots, M), (1, 2));
    drop(held);
    let slot = next.await.expect("task ran").expect("next waiter served");
    assert_eq!(slot.model(), M);
    assert_eq!(counts(&slots, M), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_leaves_after_its_grant_passes_the_slot_on() {
    let slots = slots(1, 4, Duration::from_secs(30));
    let held = slots.acquire(M).await.expect("free slot");
    let mut first = Box::pin(slots.acquire(M));
    let mut second = pin!(slots.acquire(M));
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    drop(held); // granted to `first`...
    drop(first); // ...which leaves before it looks
    assert_eq!(counts(&slots, M), (1, 0));
    assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn models_do_not_block_each_other() {
    let slots = slots(1, 0, Duration::from_secs(30));
    let _a = slots.acquire("a").await.expect("free slot");
    let b = slots
        .acquire("b")
        .await
        .expect("another model's slot is free");
    assert_eq!(b.waited(), Duration::ZERO);
    assert_eq!(counts(&slots, "a"), (1, 0));
    assert_eq!(counts(&slots, "b"), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn idle_models_leave_no_entry() {
    let slots = slots(1, 1, Duration::from_secs(1));
    for i in 0..1000 {
        drop(slots.acquire(&format!("junk-{i}")).await);
    }
    assert!(slots.snapshot().is_empty());

    // ...also after a refusal, a timeout and an abandoned wait.
    let held = slots.acquire(M).await.expect("free slot");
    assert!(matches!(
        slots.acquire(M).await,
        Err(Rejected::TimedOut { .. })
    ));
    let mut waiting = Box::pin(slots.acquire(M));
    assert!(poll_once(waiting.as_mut()).is_pending());
    assert!(matches!(
        slots.acquire(M).await,
        Err(Rejected::QueueFull { queued: 1 })
    ));
    drop(waiting);
    assert_eq!(counts(&slots, M), (1, 0));
    drop(held);
    assert!(slots.snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn raising_per_model_admits_waiters_and_lowering_revokes_nothing() {
    let slots = slots(1, 10, Duration::from_secs(30));
    let first = slots.acquire(M).await.expect("free slot");
    let mut second = pin!(slots.acquire(M));
    let mut third = pin!(slots.acquire(M));
    assert!(poll_once(second.as_mut()).is_pending());
    assert!(poll_once(third.as_mut()).is_pending());

    slots.set_per_model(NonZeroUsize::new(3).expect("non-zero"));
    assert_eq!(counts(&slots, M), (3, 0));
    let Poll::Ready(Ok(second)) = poll_once(second.as_mut()) else {
        panic!("admitted by the raise")
    };
    let Poll::Ready(Ok(third)) = poll_once(third.as_mut()) else {
        panic!("admitted by the raise")
    };

    slots.set_per_model(NonZeroUsize::MIN);
    assert_eq!(slots.per_model(), NonZeroUsize::MIN);
    assert_eq!(counts(&slots, M), (3, 0));
    let mut fourth = pin!(slots.acquire(M));
    assert!(poll_once(fourth.as_mut()).is_pending());
    drop(first);
    drop(second);
    assert!(poll_once(fourth.as_mut()).is_pending(), "2 in use > 1");
    drop(third);
    assert!(matches!(poll_once(fourth.as_mut()), Poll::Ready(Ok(_))));
}

#[tokio::test(start_paused = true)]
async fn snapshot_serializes_per_model_counts() {
    let slots = slots(1, 4, Duration::from_secs(30));
    let _b = slots.acquire("b").await.expect("free slot");
    let _a = slots.acquire("a").await.expect("free slot");
    let mut waiting = pin!(slots.acquire("b"));
    assert!(poll_once(waiting.as_mut()).is_pending());
    let json = serde_json::to_value(slots.snapshot()).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!([
            {"model": "a", "in_use": 1, "queued": 0, "limit": 1},
            {"model": "b", "in_use": 1, "queued": 1, "limit": 1},
        ])
    );
}

#[test]
fn rejections_say_what_happened_and_when_to_retry() {
    let full = Rejected::QueueFull { queued: 64 };
    assert!(full.to_string().contains("64 requests are already queued"));
    assert_eq!(full.kind(), "queue_full");
    let late = Rejected::TimedOut {
        waited: Duration::from_millis(30_004),
    };
    assert!(late.to_string().contains("waited 30.0s"), "{late}");
    assert_eq!(late.kind(), "queue_timeout");
    for rejected in [full, late] {
        assert_eq!(rejected.retry_after(), Duration::from_secs(1));
    }
}

#[test]
fn slots_cross_tasks() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    let slots = slots(1, 1, Duration::from_secs(1));
    send(&slots.acquire(M));
    send_sync::<Slot>();
    send_sync::<Slots>();
    send_sync::<ClientLimiter>();
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

fn limiter(config: RateConfig) -> ClientLimiter {
    ClientLimiter::new(config)
}

fn passes(limiter: &ClientLimiter, ip: &str, n: usize) -> bool {
    let ip: IpAddr = ip.parse().expect("an address");
    (0..n).all(|_| limiter.check(ip).is_ok())
}

#[tokio::test(start_paused = true)]
async fn a_burst_passes_then_the_client_is_refused_with_retry_after() {
    let limiter = limiter(RateConfig::default());
    for _ in 0..20 {
        assert_eq!(limiter.check(CLIENT), Ok(()));
    }
    let refused = limiter.check(CLIENT);
    assert_eq!(
        refused,
        Err(RateLimited {
            retry_after: Duration::from_millis(100)
        })
    );
    // Refusals do not push the next token further away.
    assert_eq!(refused, limiter.check(CLIENT));
    // Other clients have their own buckets.
    assert!(passes(&limiter, "198.51.100.1", 20));
}

#[tokio::test(start_paused = true)]
async fn the_bucket_refills_with_time() {
    let limiter = limiter(RateConfig::default());
    assert!(passes(&limiter, "203.0.113.7", 20));
    assert!(limiter.check(CLIENT).is_err());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(limiter.check(CLIENT), Ok(()));
    assert!(limiter.check(CLIENT).is_err());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(passes(&limiter, "203.0.113.7", 20));
    assert!(limiter.check(CLIENT).is_err());
}

#[tokio::test(start_paused = true)]
async fn loopback_is_exempt_and_everyone_else_is_limited() {
    let limiter = limiter(RateConfig::default());
    for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
        assert!(passes(&limiter, ip, 1000), "{ip}");
    }
    for ip in ["10.0.0.1", "192.168.1.20", "fd00::1"] {
        assert!(passes(&limiter, ip, 20), "{ip}");
        assert!(!passes(&limiter, ip, 1), "{ip}");
    }
    assert_eq!(limiter.tracked(), 3);
}

#[tokio::test(start_paused = true)]
async fn loopback_is_limited_when_configured() {
    let limiter = limiter(RateConfig {
        exempt_loopback: false,
        ..RateConfig::default()
    });
    assert!(passes(&limiter, "127.0.0.1", 20));
    // The IPv4-mapped form is the same client.
    assert!(!passes(&limiter, "::ffff:127.0.0.1", 1));
}

#[tokio::test(start_paused = true)]
async fn ipv6_clients_share_a_bucket_per_prefix() {
    let limiter = limiter(RateConfig::default());
    assert!(passes(&limiter, "2001:db8::1", 10));
    assert!(passes(&limiter, "2001:db8::ffff:2", 10));
    assert!(!passes(&limiter, "2001:db8::3", 1), "same /64");
    assert!(passes(&limiter, "2001:db8:0:1::1", 20), "next /64");
    assert!(passes(&limiter, "203.0.113.7", 20));
    assert!(!passes(&limiter, "::ffff:203.0.113.7", 1), "mapped IPv4");

    let per_address = self::limiter(RateConfig {
        ipv6_prefix: 128,
        ..RateConfig::default()
    });
    assert!(passes(&per_address, "2001:db8::1", 20));
    assert!(passes(&per_address, "2001:db8::2", 20));
}

#[test]
fn bucket_keys_cut_ipv6_to_the_prefix() {
    let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("an address");
    let key = |prefix| bucket_key(v6, prefix).to_string();
    assert_eq!(key(64), "2001:db8:1:2::");
    assert_eq!(key(48), "2001:db8:1::");
    assert_eq!(key(128), "2001:db8:1:2:3:4:5:6");
    assert_eq!(key(200), "2001:db8:1:2:3:4:5:6");
    assert_eq!(key(0), "::");
    assert_eq!(bucket_key(CLIENT, 0), CLIENT);
}

#[tokio::test(start_paused = true)]
async fn housekeeping_forgets_clients_whose_bucket_is_full_again() {
    let limiter = limiter(RateConfig::default());
    for i in 0..50 {
        assert!(passes(&limiter, &format!("198.51.100.{i}"), 1));
    }
    assert!(passes(&limiter, "203.0.113.7", 20));
    assert_eq!(limiter.tracked(), 51);
    tokio::time::advance(Duration::from_secs(1)).await;
    limiter.housekeep();
    assert_eq!(
        limiter.tracked(),
        1,
        "the drained bucket is still refilling"
    );
    // ...and kept its state: one second refilled half of it.
    assert!(passes(&limiter, "203.0.113.7", 10));
    assert!(limiter.check(CLIENT).is_err());
    tokio::time::advance(Duration::from_secs(3)).await;
    limiter.housekeep();
    assert_eq!(limiter.tracked(), 0);
    let snapshot = serde_json::to_value(limiter.snapshot()).expect("serializes");
    assert_eq!(
        snapshot,
        serde_json::json!({
            "per_second": 10, "burst": 20, "exempt_loopback": true, "tracked_clients": 0
        })
    );
}

#[test]
fn rate_limited_says_when_to_retry() {
    let limited = RateLimited {
        retry_after: Duration::from_millis(100),
    };
    assert_eq!(
        limited.to_string(),
        "too many requests from this client address; retry in 100.0ms"
    );
    assert_eq!(limited.kind(), "rate_limited");
}
