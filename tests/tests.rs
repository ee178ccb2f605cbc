//! Warmline's integration tests: one binary, one module per area.
//!
//! - `proxy`: proxy behaviour against in-process mock upstreams.
//! - `passthrough`: every Ollama route, direct vs through the gateway, on the simulator.
//! - `daemons`: the real `warmline` and `ollama-sim` binaries as processes.
//! - `cache`: caching and coalescing on the simulator.
//! - `redis`: the shared Redis tier with a real `redis-server`.
//! - `failover`: retries across several upstreams, circuit breakers.
//! - `faults`: connection-level faults (refused, connect timeout, reset, hung,
//!   killed mid-stream) and one time budget per request.
//! - `limits`: per-model concurrency and queue, per-client rate limit.
//! - `auth`: bearer tokens and identities.
//! - `hostile`: the security review's attacks and malformed input, replayed.
//! - `parallelism`: each host's parallelism, read from its daemon or learned.
//! - `reload`: SIGHUP, the reload route and live settings changes.
//! - `supervision`: starting, adopting, restarting and stopping `ollama serve`.
//! - `warmth`: warm models, keep_alive pinning, cold-start masking.
//! - `observability`: Server-Timing, history, recent requests, alerts, metrics, charts.
//! - `service`: systemd readiness under the packaged unit, health and readiness,
//!   the monitoring listener, process metrics, JSON logs, Ollama's variables.
//! - `cli`: the CLI's Ollama-style commands, completions and man pages.
//! - `docs`: every TOML example in the documentation is a config Warmline accepts.

#[path = "suite/proxy.rs"]
mod proxy;

#[path = "suite/passthrough.rs"]
mod passthrough;

#[path = "suite/daemons.rs"]
mod daemons;

#[path = "suite/cache.rs"]
mod cache;

#[path = "suite/redis.rs"]
mod redis;

#[path = "suite/failover.rs"]
mod failover;

#[path = "suite/faults.rs"]
mod faults;

#[path = "suite/limits.rs"]
mod limits;

#[path = "suite/auth.rs"]
mod auth;

#[path = "suite/reload.rs"]
mod reload;

#[path = "suite/supervision.rs"]
mod supervision;

#[path = "suite/warmth.rs"]
mod warmth;

#[path = "suite/observability.rs"]
mod observability;

#[path = "suite/hostile.rs"]
mod hostile;

#[path = "suite/parallelism.rs"]
mod parallelism;

#[path = "suite/service.rs"]
mod service;

#[path = "suite/cli.rs"]
mod cli;

#[path = "suite/docs.rs"]
mod docs;
