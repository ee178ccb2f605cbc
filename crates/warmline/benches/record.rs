//! What recording one finished request costs the request path: building its
//! `Event` and handing it to the metrics thread (`Metrics::finished`), next to the
//! atomic counter increment it replaced as the cheapest thing possible. The
//! gateway's whole overhead budget per request is 100 µs at the median
//! (BENCHMARKS.md).
//!
//!   cargo bench -p warmline --bench record

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use warmline::metrics::{Event, Metrics};
use warmline::wire::route::RouteKind;

fn event(model: &Arc<str>, host: &Arc<str>) -> Event {
    Event {
        ttft: Some(Duration::from_micros(900)),
        overhead: Some(Duration::from_micros(40)),
        queue: Some(Duration::ZERO),
        cache: Some("miss"),
        model: Some(Arc::clone(model)),
        host: Some(Arc::clone(host)),
        tokens: Some((40, Duration::from_millis(800))),
        ..Event::basic(RouteKind::Chat, 200, Duration::from_millis(12))
    }
}

fn record(c: &mut Criterion) {
    let model: Arc<str> = Arc::from("llama3.2:latest");
    let host: Arc<str> = Arc::from("http://127.0.0.1:11434");
    let mut group = c.benchmark_group("record");

    // What a request pays: the counters plus handing the event to the channel.
    // In a hot loop the channel would fill and sends start failing fast, so this
    // is paced: every `BATCH` events a read applies what queued (untimed),
    // keeping every timed send a real, accepted one.
    const BATCH: u64 = 4096;
    let metrics = Metrics::new();
    group.bench_function("finished (request path)", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                let start = Instant::now();
                for _ in 0..n {
                    metrics.request_started(RouteKind::Chat);
                    metrics.finished(event(&model, &host));
                }
                timed += start.elapsed();
                left -= n;
                black_box(metrics.stats()); // applies the batch, untimed
            }
            timed
        });
    });
    assert_eq!(
        metrics.stats().events_dropped,
        0,
        "every timed event was accepted"
    );

    // Sustained throughput of the whole pipeline: send, then fold everything
    // into the histograms and history rings.
    let metrics = Metrics::new();
    group.bench_function("finished + aggregated (sustained)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                for _ in 0..n {
                    metrics.request_started(RouteKind::Chat);
                    metrics.finished(event(&model, &host));
                }
                left -= n;
                black_box(metrics.stats());
            }
            start.elapsed()
        });
    });
    assert_eq!(metrics.stats().events_dropped, 0, "the aggregator kept up");

    let counter = AtomicU64::new(0);
    group.bench_function("atomic increment (floor)", |b| {
        b.iter(|| counter.fetch_add(1, Relaxed));
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
