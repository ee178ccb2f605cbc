//! Gin's access log: one line per request on stdout, written off the runtime.
//!
//! `[GIN] 2025/01/18 - 20:53:19 | 200 |  51.678951803s |  127.0.0.1 | POST     "/api/chat"`
//!
//! Like Gin, a line is written when the handler is done — for a stream, when
//! its body ends or is dropped — so the latency includes load and streaming.
//! Lines go through a bounded channel to a dedicated thread: a slow or
//! never-read stdout pipe (a supervisor that forgot to drain it) drops lines
//! instead of blocking the async runtime. `SIM_QUIET=1` turns it off, and
//! then the middleware is not even in the stack.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;

use crate::clock::{gin_stamp, go_duration};

/// Sender side of the access log.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog {
    tx: SyncSender<String>,
}

impl AccessLog {
    /// Starts the writer thread (if it cannot start, lines are dropped).
    pub(crate) fn start() -> AccessLog {
        let (tx, rx) = sync_channel::<String>(4096);
        let spawned = std::thread::Builder::new()
            .name("ollama-sim-access-log".to_owned())
            .spawn(move || {
                let stdout = std::io::stdout();
                while let Ok(line) = rx.recv() {
                    let mut out = stdout.lock();
                    let _ = out.write_all(line.as_bytes());
                    // Batch whatever else is already queued into one flush.
                    while let Ok(more) = rx.try_recv() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "access log disabled: cannot start its thread");
        }
        AccessLog { tx }
    }

    fn write(&self, entry: &Entry, status: u16) {
        let client = entry.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let line = format!(
            "[GIN] {} | {:>3} | {:>13} | {:>15} | {:<7}  {:?}\n",
            gin_stamp(SystemTime::now()),
            status,
            go_duration(entry.start.elapsed()),
            client,
            entry.method,
            entry.path,
        );
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            // stdout is not keeping up; dropping a line beats stalling requests.
        }
    }
}

/// What the log line needs from the request.
#[derive(Debug)]
pub(crate) struct Entry {
    pub start: Instant,
    pub method: String,
    pub path: String,
    pub peer: Option<SocketAddr>,
}

/// A response body that writes the access line when it ends or is dropped.
#[derive(Debug)]
pub(crate) struct LoggedBody {
    inner: Body,
    log: AccessLog,
    entry: Entry,
    status: u16,
}

impl LoggedBody {
    pub(crate) fn wrap(inner: Body, log: AccessLog, entry: Entry, status: u16) -> Body {
        Body::new(LoggedBody {
            inner,
            log,
            entry,
            status,
        })
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.log.write(&self.entry, self.status);
    }
}
