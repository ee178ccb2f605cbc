//! Warmline's core: an async gateway that makes a local Ollama stack fast.
//!
//! The gateway listens where clients expect Ollama (default `127.0.0.1:11435`, the
//! Ollama port plus one) and is a byte-faithful drop-in for Ollama's native API and
//! its OpenAI-compatible API: clients change only the port. This crate has no GUI
//! dependency; the headless `warmline` binary and the desktop app are thin shells
//! around [`Gateway::start`] and the [`GatewayHandle`] it returns.
//!
//! A request meets, in order:
//!
//! ```text
//!   client
//!     │
//!     ▼
//!   origin check + CORS         refuses unknown browser origins (403), answers preflights
//!     │
//!     ├──▶ /warmline/*, /metrics  Warmline's own routes (health, stats, Prometheus)
//!     │
//!     ▼
//!   proxy                       picks the least busy reachable upstream, streams the
//!     │                         request body up and every response chunk back as it comes
//!     ▼
//!   Ollama (one or more hosts, pooled keep-alive connections, health-checked)
//! ```
//!
//! Modules, one concern each: [`config`] (file/env/flags → validated types),
//! [`error`] (the single error → HTTP mapping), [`origin`], [`proxy`],
//! [`upstream`] (hosts, health, selection), [`metrics`], [`route`] (route kinds),
//! and `gateway` (wiring, lifecycle).

pub mod admin;
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
