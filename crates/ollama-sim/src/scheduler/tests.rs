//! Scheduler tests on paused tokio time: slots, queue, eviction, keep-alive.

use super::*;
use crate::catalog::{Registry, default_models};
use crate::knobs::Knobs;
use std::collections::BTreeMap;

struct Rig {
    sched: Scheduler,
    reg: Registry,
    counters: Arc<CounterSet>,
    _stop: tokio_util::sync::DropGuard,
}

fn rig(cfg: SchedConfig, load_delay: Duration) -> Rig {
    let counters = Arc::new(CounterSet::new(BTreeMap::new(), Vec::new()));
    let knobs = Arc::new(KnobStore::new(Knobs {
        load_delay,
        ..Knobs::default()
    }));
    let stop = CancellationToken::new();
    let sched = Scheduler::start(cfg, counters.clone(), knobs, stop.clone());
    let mut models = default_models();
    models.push("tinyllama".to_owned());
    Rig {
        sched,
        reg: Registry::new(&models),
        counters,
        _stop: stop.drop_guard(),
    }
}

fn cfg() -> SchedConfig {
    SchedConfig {
        num_parallel: 1,
        max_loaded: 3,
        max_queue: 512,
        default_keep_alive: KeepAlive::DEFAULT,
        default_ctx: 4096,
    }
}

impl Rig {
    fn req(&self, name: &str) -> SchedRequest {
        SchedRequest {
            model: self
                .reg
                .get(name)
                .unwrap_or_else(|| panic!("{name} installed")),
            num_ctx: None,
            keep_alive: None,
        }
    }
    fn loaded(&self) -> Vec<String> {
        self.sched
            .ps()
            .iter()
            .map(|e| e.model.name.clone())
            .collect()
    }
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn cold_request_pays_load_delay_and_warm_does_not() {
    let r = rig(cfg(), Duration::from_secs(2));
    let t0 = Instant::now();
    let lease = r.sched.acquire(r.req("llama3.2"), t0).await;
    let lease = lease.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lease.load_duration, Duration::from_secs(2));
    drop(lease);
    let t1 = Instant::now();
    let warm = r.sched.acquire(r.req("llama3.2"), t1).await;
    assert_eq!(warm.map(|l| l.load_duration).ok(), Some(Duration::ZERO));
    assert_eq!(r.counters.snapshot().loads, 1);
}

#[tokio::test(start_paused = true)]
async fn parallel_slots_are_fifo() {
    let r = rig(cfg(), Duration::ZERO);
    let first = r.sched.acquire(r.req("llama3.2"), Instant::now()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for n in 0..3 {
        let (s, req, tx) = (r.sched.clone(), r.req("llama3.2"), tx.clone());
        tokio::spawn(async move {
            if let Ok(lease) = s.acquire(req, Instant::now()).await {
                let _ = tx.send(n);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(lease);
            }
        });
        settle().await;
    }
    assert!(rx.try_recv().is_err(), "the only slot is taken");
    drop(first);
    let mut order = Vec::new();
    for _ in 0..3 {
        order.extend(rx.recv().await);
    }
    assert_eq!(order, [0, 1, 2]);
    let s = r.counters.snapshot();
    assert_eq!(s.models["llama3.2:latest"].max_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn full_queue_rejects_loads_but_not_warm_requests() {
    let r = rig(
        SchedConfig {
            max_queue: 1,
            ..cfg()
        },
        Duration::from_secs(10),
    );
    // Warm up qwen3 first.
    drop(r.sched.acquire(r.req("qwen3:0.6b"), Instant::now()).await);
    // A: being loaded by the loader; B: waiting in the queue (full).
    let (sa, ra) = (r.sched.clone(), r.req("llama3.2"));
    let a = tokio::spawn(async move { sa.acquire(ra, Instant::now()).await.map(drop) });
    settle().await;
    let (sb, rb) = (r.sched.clone(), r.req("tinyllama"));
    let b = tokio::spawn(async move { sb.acquire(rb, Instant::now()).await.map(drop) });
    settle().await;
    // C needs a load too: rejected at once.
    let c = r
        .sched
        .acquire(r.req("nomic-embed-text"), Instant::now())
        .await;
    assert_eq!(c.err(), Some(SchedError::Busy));
    // A warm model still takes the fast path.
    assert!(
        r.sched
            .acquire(r.req("qwen3:0.6b"), Instant::now())
            .await
            .is_ok()
    );
    assert_eq!(a.await.ok(), Some(Ok(())));
    assert_eq!(b.await.ok(), Some(Ok(())));
    assert_eq!(r.counters.snapshot().rejected_busy, 1);
}

#[tokio::test(start_paused = true)]
async fn max_loaded_evicts_shortest_keep_alive_idle_first() {
    let r = rig(
        SchedConfig {
            max_loaded: 2,
            ..cfg()
        },
        Duration::ZERO,
    );
    let mut long = r.req("llama3.2");
    long.keep_alive = Some(KeepAlive::For(Duration::from_secs(3600)));
    drop(r.sched.acquire(long, Instant::now()).await);
    drop(r.sched.acquire(r.req("qwen3:0.6b"), Instant::now()).await);
    drop(r.sched.acquire(r.req("tinyllama"), Instant::now()).await);
    let mut loaded = r.loaded();
    loaded.sort();
    assert_eq!(loaded, ["llama3.2:latest", "tinyllama:latest"]);
    let s = r.counters.snapshot();
    assert_eq!((s.loads, s.evictions, s.unloads), (3, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn eviction_waits_for_a_busy_victim() {
    let r = rig(
        SchedConfig {
            max_loaded: 1,
            ..cfg()
        },
        Duration::ZERO,
    );
    let busy = r.sched.acquire(r.req("llama3.2"), Instant::now()).await;
    let (s, req) = (r.sched.clone(), r.req("qwen3:0.6b"));
    let waiting = tokio::spawn(async move { s.acquire(req, Instant::now()).await.map(drop) });
    settle().await;
    assert!(!waiting.is_finished());
    assert_eq!(r.loaded(), ["llama3.2:latest"]);
    drop(busy);
    assert_eq!(waiting.await.ok(), Some(Ok(())));
    assert_eq!(r.loaded(), ["qwen3:0.6b"]);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_expires_after_the_last_request() {
    let r = rig(cfg(), Duration::ZERO);
    let lease = r.sched.acquire(r.req("llama3.2"), Instant::now()).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.loaded().len(), 1, "no expiry while in use");
    drop(lease);
    tokio::time::sleep(Duration::from_secs(299)).await;
    assert_eq!(r.loaded().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert!(r.loaded().is_empty());
    assert_eq!(r.counters.snapshot().unloads, 1);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_is_sticky() {
    let r = rig(cfg(), Duration::ZERO);
    let mut req = r.req("llama3.2");
    req.keep_alive = Some(KeepAlive::For(Duration::from_secs(10)));
    drop(r.sched.acquire(req, Instant::now()).await);
    // A later request without keep_alive keeps the 10s.
    drop(r.sched.acquire(r.req("llama3.2"), Instant::now()).await);
    tokio::time::sleep(Duration::from_secs(11)).await;
    settle().await;
    assert!(r.loaded().is_empty());
}

#[tokio::test(start_paused = true)]
async fn explicit_num_ctx_forces_a_reload() {
    let r = rig(cfg(), Duration::ZERO);
    drop(r.sched.acquire(r.req("llama3.2"), Instant::now()).await);
    let mut same = r.req("llama3.2");
    same.num_ctx = Some(4096);
    drop(r.sched.acquire(same, Instant::now()).await);
    assert_eq!(r.counters.snapshot().reloads, 0, "4096 is what is loaded");
    let mut big = r.req("llama3.2");
    big.num_ctx = Some(8192);
    drop(r.sched.acquire(big, Instant::now()).await);
    let s = r.counters.snapshot();
    assert_eq!((s.loads, s.reloads, s.unloads), (2, 1, 1));
    assert_eq!(r.sched.ps()[0].context_length, 8192);
}

#[tokio::test(start_paused = true)]
async fn cancelling_during_load_aborts_it() {
    let r = rig(cfg(), Duration::from_secs(10));
    let (s, req) = (r.sched.clone(), r.req("llama3.2"));
    let task = tokio::spawn(async move { s.acquire(req, Instant::now()).await.map(drop) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(r.loaded().len(), 1, "listed while loading");
    task.abort();
    settle().await;
    assert!(r.loaded().is_empty());
    assert_eq!(r.counters.snapshot().loads, 0);
    // The next request loads from scratch.
    let t0 = Instant::now();
    let lease = r.sched.acquire(r.req("llama3.2"), t0).await;
    assert_eq!(
        lease.map(|l| l.load_duration).ok(),
        Some(Duration::from_secs(10))
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_unload_waits_for_in_flight_requests() {
    let r = rig(cfg(), Duration::ZERO);
    let lease = r.sched.acquire(r.req("llama3.2"), Instant::now()).await;
    let model = r.reg.get("llama3.2").unwrap_or_else(|| panic!("installed"));
    assert!(r.sched.unload(&model));
    assert_eq!(r.loaded().len(), 1);
    assert!(r.sched.ps()[0].expires_at <= SystemTime::now());
    drop(lease);
    assert!(r.loaded().is_empty());
    assert!(!r.sched.unload(&model));
}
