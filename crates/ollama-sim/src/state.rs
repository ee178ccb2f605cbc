//! The shared state every handler sees.
//!
//! One `Arc` per simulator instance: the model registry, the scheduler, the
//! knob snapshot and the counters. Nothing in here is locked across an
//! `.await`; each part documents its own synchronisation.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::accesslog::AccessLog;
use crate::catalog::Registry;
use crate::config::{OllamaEnv, SimConfig};
use crate::counters::CounterSet;
use crate::knobs::KnobStore;
use crate::scheduler::{SchedConfig, Scheduler};
use crate::security::Policy;

/// Cheaply cloneable handle to one simulator's state.
#[derive(Debug, Clone)]
pub(crate) struct App(Arc<AppInner>);

#[derive(Debug)]
pub(crate) struct AppInner {
    pub registry: Registry,
    pub sched: Scheduler,
    pub knobs: Arc<KnobStore>,
    pub counters: Arc<CounterSet>,
    pub ollama: OllamaEnv,
    pub policy: Policy,
    pub access_log: Option<AccessLog>,
    /// Cancelled on shutdown; stops background tasks and open connections.
    pub shutdown: CancellationToken,
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Builds the state and starts the scheduler's tasks on the current
    /// runtime. `loopback` is whether the listener is on a loopback address
    /// (Host checks apply), `None` when there is no listener (router tests).
    pub(crate) fn new(config: SimConfig, loopback: Option<bool>) -> App {
        let shutdown = CancellationToken::new();
        let counters = Arc::new(CounterSet::new(config.env.clone(), config.argv.clone()));
        let knobs = Arc::new(KnobStore::new(config.knobs.clone()));
        let ollama = config.ollama.clone();
        let sched = Scheduler::start(
            SchedConfig {
                num_parallel: ollama.num_parallel.max(1),
                max_loaded: ollama.effective_max_loaded(),
                max_queue: ollama.max_queue as usize,
                default_keep_alive: ollama.keep_alive,
                default_ctx: ollama.effective_context_length(),
            },
            counters.clone(),
            knobs.clone(),
            shutdown.clone(),
        );
        App(Arc::new(AppInner {
            registry: Registry::new(&config.models),
            sched,
            knobs,
            counters,
            policy: Policy::new(&ollama.origins, loopback.unwrap_or(false)),
            ollama,
            access_log: config.access_log.then(AccessLog::start),
            shutdown,
        }))
    }
}
