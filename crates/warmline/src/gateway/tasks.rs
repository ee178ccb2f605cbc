//! The gateway's background tasks: health probes, parallelism discovery, model
//! inventory refreshes and housekeeping. Each runs on its own schedule, off the
//! request path, and reads the current stack at every round, so a reload applies
//! to the next round without restarting anything.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::upstream;

/// How often idle rate-limit buckets are forgotten.
const HOUSEKEEPING: Duration = Duration::from_secs(60);
/// The shortest pause between two reads of every host's model lists.
const MODEL_REFRESH_MIN: Duration = Duration::from_secs(2);

/// Probes every host with `HEAD /`, a round starting every
/// `timeouts.health_interval` (on a fixed schedule: a slow round does not push
/// the next one back). A probe waits at most one interval (but no less than the
/// connect timeout), so a host that stops answering leaves the rotation within
/// two intervals — 2 s with the defaults — and one that refuses at once.
pub(super) async fn probe_upstreams(shared: Arc<Shared>) {
    let mut interval = shared.config().timeouts.health_interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let stack = shared.stack.load_full();
        let timeouts = &stack.config.timeouts;
        if timeouts.health_interval != interval {
            interval = timeouts.health_interval;
            tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
        }
        let timeout = probe_timeout(timeouts.health_interval, timeouts.connect);
        upstream::probe_all(&stack.pipeline.upstreams, &stack.pipeline.client, timeout).await;
    }
}

/// How often the daemons behind local hosts are looked at again (a restarted
/// Ollama may run with another `OLLAMA_NUM_PARALLEL`).
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

/// Reads the parallelism of daemons on this machine that Warmline adopted (see
/// `upstream::discover`), at start and every [`DISCOVER_EVERY`].
pub(super) async fn discover_parallelism(shared: Arc<Shared>) {
    loop {
        let stack = shared.stack.load_full();
        let discover = stack.config.concurrency.discover;
        let hosts: Vec<Arc<upstream::Upstream>> = stack.pipeline.upstreams.hosts().to_vec();
        drop(stack);
        let _ = tokio::task::spawn_blocking(move || {
            for host in hosts {
                if discover {
                    host.discover_parallelism();
                } else {
                    // Off: every host not stated or supervised is learned.
                    host.slots.discovered(None);
                }
            }
        })
        .await;
        tokio::time::sleep(DISCOVER_EVERY).await;
    }
}

/// How long one health probe may wait: an interval, capped at 1 s (a probe is
/// a `HEAD /` that Ollama answers in microseconds), never below the connect
/// timeout so a slow-to-accept host is not called down by the probe alone.
fn probe_timeout(interval: Duration, connect: Duration) -> Duration {
    interval.min(Duration::from_secs(1)).max(connect)
}

/// Refreshes every host's model lists each `timeouts.health_interval`, and at once
/// after a pull, create, copy or delete went through; hands the cache its digests.
pub(super) async fn refresh_models(shared: Arc<Shared>) {
    loop {
        let stack = shared.stack.load_full();
        upstream::refresh_models(&stack.pipeline.upstreams, &stack.pipeline.client).await;
        if let Some(cache) = &stack.pipeline.cache {
            cache.set_digests(upstream::digests(&stack.pipeline.upstreams));
        }
        shared.models_refreshed.notify_one();
        // Model lists change rarely (a pull, a load): no need to read every
        // host's `/api/tags` (a directory walk in Ollama) more than every 2 s.
        let interval = stack.config.timeouts.health_interval.max(MODEL_REFRESH_MIN);
        drop(stack);
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shared.models_changed.notified() => {}
            () = shared.warmth.loaded.notified() => {}
        }
    }
}

/// Forgets clients whose rate-limit buckets are full again, so memory stays bounded.
pub(super) async fn housekeep(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(HOUSEKEEPING).await;
        shared.stack.load().limiter.housekeep();
    }
}
