//! The gateway's listeners: the serving one (with any still draining after a
//! rebind) and the optional monitoring one, each an accept loop of
//! [`crate::edge::server`] over its own routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Shared, router};
use crate::edge::server::{self, HeadLimits};
use crate::error::Error;

pub(super) async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Whether a new `listen` setting needs a new listener: not when it names the
/// address already configured or already bound, nor for port 0 (any port) on the
/// address already bound.
pub(super) fn needs_rebind(new: SocketAddr, configured: SocketAddr, bound: SocketAddr) -> bool {
    !(new == configured || new == bound || (new.port() == 0 && new.ip() == bound.ip()))
}

/// One accept loop and its connections.
#[derive(Debug)]
pub(super) struct Server {
    stop: watch::Sender<bool>,
    pub(super) task: JoinHandle<()>,
}

/// The monitoring listener (`monitoring.listen`) and the address it bound.
#[derive(Debug)]
pub(super) struct Monitor {
    pub(super) addr: SocketAddr,
    pub(super) server: Server,
}

impl Monitor {
    pub(super) fn start(
        configured: SocketAddr,
        listener: TcpListener,
        shared: &Arc<Shared>,
    ) -> Result<Monitor, Error> {
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: configured,
            source,
        })?;
        let server = Server::serving(listener, shared, router::monitoring(Arc::clone(shared)));
        tracing::info!(listen = %addr, "monitoring listener started (health, ready, metrics)");
        Ok(Monitor { addr, server })
    }
}

impl Server {
    pub(super) fn start(listener: TcpListener, shared: &Arc<Shared>) -> Server {
        Server::serving(listener, shared, router::router(Arc::clone(shared)))
    }

    /// Serves `app` under the connection guard's limits in force.
    fn serving(listener: TcpListener, shared: &Arc<Shared>, app: impl server::App) -> Server {
        let (stop, stop_rx) = watch::channel(false);
        let limits = {
            let shared = Arc::clone(shared);
            move || {
                let config = shared.config();
                HeadLimits {
                    timeout: config.timeouts.header,
                    max_bytes: config.limits.max_header,
                    idle: config.timeouts.client_idle,
                    max_connections: config.limits.max_connections,
                }
            }
        };
        let refused: server::Refused = {
            let metrics = Arc::clone(&shared.metrics);
            Arc::new(move |kind| metrics.gateway_error(kind))
        };
        let task = server::spawn(listener, app, limits, refused, stop_rx);
        Server { stop, task }
    }

    /// Stops accepting and lets open requests finish for up to `drain`, then cuts.
    pub(super) async fn drain(mut self, drain: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(drain, &mut self.task).await.is_err() {
            tracing::warn!(
                "in-flight requests still running after {}; closing them",
                humantime::format_duration(drain)
            );
            self.task.abort();
        }
    }
}
