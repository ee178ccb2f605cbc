//! Warmline's core: an async gateway that makes a local Ollama stack fast.
//!
//! The gateway listens where clients expect Ollama (default `127.0.0.1:11435`, the
//! Ollama port plus one) and is a byte-faithful drop-in for Ollama's native API and
//! its OpenAI-compatible API: clients change only the port. This crate has no GUI
//! dependency; the headless `warmline` binary and the desktop app are thin shells
//! around [`Gateway::start`] and the [`GatewayHandle`] it returns.
//!
//! # The two stacks a request meets
//!
//! ```text
//!   client ─▶ edge::server      accept; connection cap (503); own HTTP/1.1 loop
//!               │               (head limits 408, 431; hyper for HTTP/2 and the unusual)
//!               │
//!   outer stack (gateway::router, one `gate` layer, read in order)
//!               ├─ snapshot      one configuration for the whole request
//!               ├─ observe       Server-Timing on every answer; refusals counted
//!               ├─ edge::origin  Host + browser Origin (403), CORS, preflights
//!               ├─ rate limit    per client address (429)
//!               ├─ edge::access  data token / admin credential by plane (401, 403)
//!               ├─ compression   whole answers only, when asked
//!               ├─ /warmline/*, /metrics ─▶ admin (Warmline's own routes)
//!               ▼
//!   inner pipeline (pipeline::serve, one function, read in order)
//!               ├─ record        metrics event, exactly once
//!               ├─ not a cacheable POST ─▶ pass through, streamed
//!               ├─ read the body once (≤ limits.max_body)
//!               ├─ derive        cache plan (key, determinism); facts on a miss
//!               ├─ bypass ─▶ pin keep_alive, mask a cold start?, pass through
//!               ├─ cache lookup ─── hit ─▶ replay
//!               ├─ join the flight ── follower ─▶ share the leader's answer
//!               ├─ leader: pin keep_alive, mask a cold start?, drive the exchange
//!               ├─ exchange      slot (host, model) ─▶ breaker ─▶ send ─▶ failover once
//!               └─ respond       chunks back as they arrive; store when whole
//!               ▼
//!   Ollama (one or more hosts, pooled keep-alive connections driven by the
//!           request's own task, health-checked)
//! ```
//!
//! # The layers
//!
//! Each layer uses only the ones above it in this list (no import cycles; checked
//! with `python3 ../shared/tools/modcycles.py crates/warmline/src`):
//!
//! ```text
//!   wire/       the vocabulary: error bodies (whole, in-stream), headers, Peer,
//!   sys/        route kinds, final-chunk timings · the OS and the clock
//!   config/     file/env/flags → validated types; owns every config type
//!   mechanisms  breaker, admission (slots, rate limit), parallelism, cache,
//!               metrics, charts, upstream, warmth, supervisor, alerts, state, auth,
//!               models — each with its own error type, none aware of HTTP serving
//!   error.rs    the one composed Error and the one mapping to HTTP
//!   pipeline/   the inner request path (above)
//!   edge/       server, origin, access: where requests arrive and are refused
//!   gateway/    the outer stack, Warmline's own routes (admin), background tasks,
//!               lifecycle (start, reload, pause, drain)
//! ```
//!
//! The binaries sit on top: `warmline` (crates/warmline-cli, with the benchmark
//! client) and `warmline-app` (src-tauri).

pub mod admission;
pub mod alerts;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod charts;
pub mod config;
pub mod edge;
pub mod error;
mod gateway;
pub mod metrics;
pub mod models;
pub mod parallelism;
pub mod pipeline;
pub mod state;
pub mod supervisor;
pub mod sys;
pub mod upstream;
pub mod warmth;
pub mod wire;

pub use config::{Config, ConfigError, ConfigSource, Overrides};
pub use error::Error;
pub use gateway::{Applied, Gateway, GatewayHandle, Health, HealthStatus, VERSION};
pub use metrics::Stats;
pub use upstream::UpstreamHealth;
