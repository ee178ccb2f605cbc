//! The gateway's side of daemon supervision and warmth: which supervisor runs
//! (following `daemon.supervise` across reloads), the keep-warm task, and the
//! handle methods that the admin routes, the CLI and the app share.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{GatewayHandle, Shared};
use crate::config::Config;
use crate::error::Error;
use crate::models::ModelView;
use crate::supervisor::{DaemonError, DaemonStatus, LogLine, Supervisor, Target};

/// The supervisor in use, if `daemon.supervise` is on, with the task that tells
/// warmth each time its daemon becomes ready.
#[derive(Debug, Default)]
pub(crate) struct Supervision {
    current: Mutex<Option<Supervised>>,
}

#[derive(Debug)]
struct Supervised {
    supervisor: Arc<Supervisor>,
    forward: JoinHandle<()>,
}

impl Supervision {
    pub(crate) fn get(&self) -> Option<Arc<Supervisor>> {
        let current = self.current.lock().ok()?;
        current.as_ref().map(|s| Arc::clone(&s.supervisor))
    }

    /// Follows `config`: starts, reconfigures or stops supervision. Returns notes
    /// for the person who changed the settings.
    pub(crate) async fn follow(&self, shared: &Arc<Shared>, config: &Config) -> Vec<String> {
        let target = config.supervised_upstream().map(|upstream| Target {
            url: upstream.url.clone(),
            config: config.daemon.clone(),
        });
        let current = self.get();
        match (target, current) {
            (Some(target), None) => {
                let client = shared.stack.load().pipeline.client.clone();
                let supervisor = Arc::new(Supervisor::spawn(target, client));
                let mut ready = supervisor.ready();
                let shared_for_task = Arc::downgrade(shared);
                let forward = tokio::spawn(async move {
                    while ready.changed().await.is_ok() {
                        let Some(shared) = shared_for_task.upgrade() else {
                            return;
                        };
                        daemon_ready(&shared);
                    }
                });
                if let Ok(mut slot) = self.current.lock() {
                    *slot = Some(Supervised {
                        supervisor,
                        forward,
                    });
                }
                Vec::new()
            }
            (Some(target), Some(supervisor)) => match supervisor.configure(target).await {
                Ok(status) if status.state == crate::supervisor::DaemonState::External => {
                    vec![format!(
                        "daemon settings apply to a daemon Warmline starts; the Ollama at {} \
                         was started elsewhere and keeps its own",
                        status.url
                    )]
                }
                Ok(_) => Vec::new(),
                Err(err) => vec![err.to_string()],
            },
            (None, Some(_)) => {
                self.stop().await;
                vec!["Warmline no longer supervises Ollama; a daemon it started was stopped".into()]
            }
            (None, None) => Vec::new(),
        }
    }

    /// Stops supervising (and a daemon Warmline started).
    pub(crate) async fn stop(&self) {
        let taken = self.current.lock().ok().and_then(|mut s| s.take());
        if let Some(supervised) = taken {
            supervised.forward.abort();
            supervised.supervisor.shutdown().await;
        }
    }
}

/// A supervised daemon just became ready: its host is up (no need to wait for
/// the next health probe), its model lists are read again and the warm set is
/// loaded on it at once.
fn daemon_ready(shared: &Shared) {
    let stack = shared.stack.load();
    if let Some(host) = stack.pipeline.upstreams.hosts().first() {
        host.mark_up(None);
    }
    shared.models_changed.notify_one();
    shared.warmth.daemon_restarted();
}

/// Keeps the warm set loaded: a round after every change of the set, every
/// daemon (re)start and every refresh of the hosts' model lists.
pub(crate) async fn keep_warm(shared: Arc<Shared>) {
    loop {
        let stack = shared.stack.load_full();
        // As many models as the host keeps loaded at once: what Warmline set for
        // a daemon it runs, else Ollama's own default.
        let daemon = &stack.config.daemon;
        let max_models = if daemon.supervise && daemon.max_loaded_models > 0 {
            daemon.max_loaded_models
        } else {
            crate::warmth::auto::DEFAULT_MAX_MODELS
        };
        shared.warmth.plan(
            &shared.metrics.models,
            &stack.pipeline.upstreams,
            max_models,
        );
        crate::warmth::round(
            &shared.warmth,
            &stack.pipeline.upstreams,
            &stack.pipeline.client,
        )
        .await;
        let interval = stack.config.timeouts.health_interval;
        drop(stack);
        tokio::select! {
            () = shared.warmth.changed.notified() => {}
            () = shared.models_refreshed.notified() => {}
            () = tokio::time::sleep(interval.max(Duration::from_secs(1))) => {}
        }
    }
}

impl GatewayHandle {
    fn supervisor(&self) -> Result<Arc<Supervisor>, Error> {
        self.inner
            .shared
            .supervision
            .get()
            .ok_or(Error::Daemon(DaemonError::NotSupervised))
    }

    /// The daemon's state (`disabled` when Warmline does not supervise one).
    pub fn daemon_status(&self) -> DaemonStatus {
        self.inner.shared.daemon_status()
    }

    /// Starts the supervised daemon; answers once it is ready (or failed).
    pub async fn daemon_start(&self) -> Result<DaemonStatus, Error> {
        Ok(self.supervisor()?.start().await?)
    }

    /// Stops a daemon Warmline started (an adopted one is refused).
    pub async fn daemon_stop(&self) -> Result<DaemonStatus, Error> {
        Ok(self.supervisor()?.stop().await?)
    }

    /// Restarts a daemon Warmline started (an adopted one is refused).
    pub async fn daemon_restart(&self) -> Result<DaemonStatus, Error> {
        Ok(self.supervisor()?.restart().await?)
    }

    /// The last `lines` lines of the daemon's output (empty when not supervised).
    pub fn daemon_logs(&self, lines: usize) -> Vec<LogLine> {
        self.inner
            .shared
            .supervision
            .get()
            .map(|s| s.logs().tail(lines))
            .unwrap_or_default()
    }

    /// Every installed model with its loaded state, warmth and counters.
    pub fn models(&self) -> Vec<ModelView> {
        let shared = &self.inner.shared;
        let stack = shared.stack.load();
        crate::models::view(
            &stack.pipeline.upstreams,
            &shared.warmth,
            &shared.metrics.models,
        )
    }

    /// One model of [`GatewayHandle::models`].
    fn model(&self, name: &str) -> Option<ModelView> {
        self.models().into_iter().find(|m| m.name == name)
    }

    /// Adds `model` to the warm set and has it loaded; with `wait`, answers once
    /// it is loaded everywhere it is installed (or its load failed).
    pub async fn warm(&self, model: &str, wait: bool) -> Result<ModelView, Error> {
        let installed = self.installed(model);
        let name = self.inner.shared.warmth.warm(model, installed)?;
        if wait {
            self.wait_loaded(&name).await;
        }
        Ok(self
            .model(&name)
            .unwrap_or_else(|| crate::models::unlisted(&name)))
    }

    /// Automatic warmth: the budget, what warm models take, why each predicted
    /// model is kept.
    pub fn warmth_status(&self) -> crate::warmth::auto::AutoStatus {
        crate::warmth::auto::AutoStatus::clone(&self.inner.shared.warmth.auto_status())
    }

    /// Forgets what automatic warmth learned (and which models were cooled); the
    /// models kept by prediction are unloaded.
    pub fn forget_learning(&self) -> Result<(), Error> {
        self.inner.shared.warmth.forget()?;
        Ok(())
    }

    /// Removes `model` from the warm set and unloads it.
    pub async fn cool(&self, model: &str) -> Result<ModelView, Error> {
        let name = self.inner.shared.warmth.cool(model)?;
        Ok(self
            .model(&name)
            .unwrap_or_else(|| crate::models::unlisted(&name)))
    }

    /// Loads `model` once, with the daemon's own keep-alive (not warm: it may go
    /// cold again), on the host requests for it would go to.
    pub async fn load(&self, model: &str) -> Result<ModelView, Error> {
        let (name, host, embedding) = self.host_for(model)?;
        let client = self.inner.shared.stack.load().pipeline.client.clone();
        crate::warmth::load(&client, &host, &name, serde_json::Value::Null, embedding)
            .await
            .map_err(|reason| crate::error::ProxyError::Protocol {
                upstream: host.name().to_owned(),
                reason,
            })?;
        host.models.note_loaded(&name);
        self.inner.shared.models_changed.notify_one();
        Ok(self
            .model(&name)
            .unwrap_or_else(|| crate::models::unlisted(&name)))
    }

    /// Unloads `model` from every host where it is loaded.
    pub async fn unload(&self, model: &str) -> Result<ModelView, Error> {
        let (name, _, _) = self.host_for(model)?;
        let stack = self.inner.shared.stack.load_full();
        for host in stack.pipeline.upstreams.hosts() {
            if host.has_model(&name) == Some(true) {
                crate::warmth::unload(&stack.pipeline.client, host, &name)
                    .await
                    .map_err(|reason| crate::error::ProxyError::Protocol {
                        upstream: host.name().to_owned(),
                        reason,
                    })?;
            }
        }
        self.inner.shared.models_changed.notify_one();
        Ok(self
            .model(&name)
            .unwrap_or_else(|| crate::models::unlisted(&name)))
    }

    /// Whether any host lists `model` (`None` while no host's list is known).
    fn installed(&self, model: &str) -> Option<bool> {
        let name = crate::cache::key::normalise_model_name(model).ok()?;
        let stack = self.inner.shared.stack.load();
        let answers: Vec<Option<bool>> = stack
            .pipeline
            .upstreams
            .hosts()
            .iter()
            .map(|h| h.has_model(&name))
            .collect();
        if answers.contains(&Some(true)) {
            Some(true)
        } else if answers.iter().all(Option::is_none) {
            None
        } else {
            Some(false)
        }
    }

    /// The host a request for `model` would use, and whether it embeds.
    fn host_for(
        &self,
        model: &str,
    ) -> Result<(String, Arc<crate::upstream::Upstream>, bool), Error> {
        let name = crate::cache::key::normalise_model_name(model)
            .map_err(|_| crate::warmth::WarmthError::InvalidName(model.to_owned()))?;
        let stack = self.inner.shared.stack.load();
        let host = stack
            .pipeline
            .upstreams
            .pick(Some(&name))
            .filter(|h| h.has_model(&name) == Some(true))
            .ok_or_else(|| crate::warmth::WarmthError::NotInstalled(name.clone()))?;
        let embedding = host
            .models
            .snapshot()
            .installed
            .get(&name)
            .is_some_and(crate::upstream::Installed::is_embedding);
        Ok((name, Arc::clone(host), embedding))
    }

    /// Waits until `name` is loaded on every host that has it, as the hosts' own
    /// lists say (with its expiry), or its load failed.
    async fn wait_loaded(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
        while tokio::time::Instant::now() < deadline {
            let view = self.model(name);
            let settled = view.as_ref().is_some_and(|m| {
                !m.loading
                    && (m.error.is_some()
                        || m.hosts.iter().all(|h| h.loaded && h.expires_at.is_some()))
            });
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
