//! Supervision of `ollama serve`: adopt a daemon that already runs, otherwise
//! start one with tuned settings, restart it when it crashes, and never leave it
//! behind.
//!
//! ```text
//!                 answers HEAD /                       stops answering (3 probes)
//!   ┌───────┐ ───────────────────────▶ ┌──────────┐ ─────────────────────────┐
//!   │ start │                          │ external │                          │
//!   └───────┘ ◀────────────────────────┴──────────┘ ◀── someone else started ┤
//!     │  │        executable not found                 one (idle probes)     │
//!     │  └─────────────────────────────▶ ┌──────────────────────────────┐    │
//!     │ spawned, answers HEAD /          │ idle: stopped, not_found,    │◀───┘
//!     ▼                                  │ crash_loop, failed           │
//!   ┌─────────┐   exit, or hung          └──────────────────────────────┘
//!   │ running │ ──────────────▶ crashed ──▶ restarting (backoff) ──▶ start
//!   └─────────┘                    └── too many within the window ──▶ crash_loop
//! ```
//!
//! The state machine runs on its own task and owns the daemon; the rest of
//! Warmline reads a status snapshot (a `watch`), is told through `ready` each
//! time a daemon becomes available (so warm models are loaded again), and sends
//! commands that are answered once the daemon settles. An adopted daemon is
//! never stopped or restarted: its owner is someone else.
//!
//! Ollama opens its port before it is ready (GPU discovery runs after the bind),
//! so readiness is `HEAD /` answering, probed with a timeout until
//! `daemon.ready_timeout`. What the daemon runs with is read back from its
//! `server config` log line and compared with what was asked for.

mod backoff;
mod confirm;
mod logs;
mod process;
mod resources;
mod status;

use confirm::confirm;
pub use logs::{LogLine, Logs};
pub use resources::Resources;
pub use status::{Confirmed, DaemonError, DaemonState, DaemonStatus};

/// Where `ollama` would be started from: `configured` if given (it must be an
/// executable file), else the first `ollama` on `PATH`. The error says how to
/// install Ollama.
pub fn find_ollama(configured: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    process::find_executable(configured)
}

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::config::DaemonConfig;
use backoff::{Backoff, Verdict};
use logs::ServerConfig;
use process::{Daemon, Exit};

/// How often a running daemon is probed and measured.
const TICK: Duration = Duration::from_secs(2);
/// Failed probes in a row after which a running daemon counts as hung.
const HUNG_AFTER: u32 = 3;
/// How often an idle supervisor looks for a daemon someone else started.
const IDLE_TICK: Duration = Duration::from_secs(5);
/// Timeout of one readiness or liveness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What to supervise: a daemon at `url` (the first upstream) run with `config`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: Url,
    pub config: DaemonConfig,
}

impl Target {
    /// The environment a started daemon gets on top of Warmline's own.
    fn env(&self) -> Vec<(String, String)> {
        let host = format!(
            "{}:{}",
            self.url.host_str().unwrap_or("127.0.0.1"),
            self.url.port_or_known_default().unwrap_or(11434)
        );
        let mut env = vec![
            ("OLLAMA_HOST".to_owned(), host),
            (
                "OLLAMA_KEEP_ALIVE".to_owned(),
                self.config.keep_alive.to_env(),
            ),
            (
                "OLLAMA_NUM_PARALLEL".to_owned(),
                self.config.num_parallel.to_string(),
            ),
            (
                "OLLAMA_MAX_LOADED_MODELS".to_owned(),
                self.config.max_loaded_models.to_string(),
            ),
        ];
        env.extend(self.config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Whether a daemon started for `self` must be restarted to serve `other`.
    fn needs_restart_for(&self, other: &Target) -> bool {
        self.url != other.url
            || self.env() != other.env()
            || self.config.executable != other.config.executable
    }

    fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

#[derive(Debug)]
enum Command {
    Start,
    Stop,
    Restart,
    Configure(Box<Target>),
    Shutdown,
}

struct Request {
    command: Command,
    reply: oneshot::Sender<Result<DaemonStatus, DaemonError>>,
}

/// The handle: commands in, status out. Dropping every handle stops the daemon.
#[derive(Debug)]
pub struct Supervisor {
    commands: mpsc::Sender<Request>,
    status: watch::Receiver<DaemonStatus>,
    ready: watch::Receiver<u64>,
    logs: Arc<Logs>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts supervising `target` (adopting or starting its daemon at once).
    pub fn spawn(target: Target, client: reqwest::Client) -> Supervisor {
        let logs = Arc::new(Logs::new(
            target.config.log_lines,
            target.config.log_file.clone(),
        ));
        let (commands, requests) = mpsc::channel(16);
        let (status_tx, status) = watch::channel(DaemonStatus {
            state: DaemonState::Starting,
            ..DaemonStatus::disabled(&target.base())
        });
        let (ready_tx, ready) = watch::channel(0);
        let machine = Machine {
            backoff: Backoff::new(&target.config),
            target,
            requests,
            status: Arc::new(status_tx),
            ready: ready_tx,
            logs: Arc::clone(&logs),
            sampler: resources::Sampler::new(),
            client,
            waiters: Vec::new(),
            restarts: 0,
            settings: Arc::new(std::sync::Mutex::new(None)),
        };
        let task = tokio::spawn(machine.run());
        Supervisor {
            commands,
            status,
            ready,
            logs,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    pub fn status(&self) -> DaemonStatus {
        self.status.borrow().clone()
    }

    /// Bumped each time a daemon becomes ready (started, restarted or adopted).
    pub fn ready(&self) -> watch::Receiver<u64> {
        self.ready.clone()
    }

    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Starts the daemon if it is not running; answers once it is (or failed).
    pub async fn start(&self) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Start).await
    }

    /// Stops a daemon Warmline started.
    pub async fn stop(&self) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Stop).await
    }

    /// Stops and starts again a daemon Warmline started.
    pub async fn restart(&self) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Restart).await
    }

    /// New settings: a daemon Warmline started is restarted if they change its
    /// environment; an adopted one keeps running as it is.
    pub async fn configure(&self, target: Target) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Configure(Box::new(target))).await
    }

    /// Stops a daemon Warmline started (never an adopted one) and ends the task.
    pub async fn shutdown(&self) {
        let _ = self.send(Command::Shutdown).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn send(&self, command: Command) -> Result<DaemonStatus, DaemonError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Request { command, reply })
            .await
            .map_err(|_| DaemonError::Gone)?;
        answer.await.map_err(|_| DaemonError::Gone)?
    }
}

/// The state machine's next step.
enum Next {
    Start,
    Adopt,
    Run(Daemon, Instant),
    Crashed(Exit),
    Idle,
    Exit,
}

struct Machine {
    target: Target,
    requests: mpsc::Receiver<Request>,
    status: Arc<watch::Sender<DaemonStatus>>,
    ready: watch::Sender<u64>,
    logs: Arc<Logs>,
    backoff: Backoff,
    sampler: resources::Sampler,
    client: reqwest::Client,
    /// Replies due when the daemon next settles (running, external, or idle).
    waiters: Vec<oneshot::Sender<Result<DaemonStatus, DaemonError>>>,
    restarts: u32,
    /// The daemon's `server config` line, once its output reader saw it.
    settings: Arc<std::sync::Mutex<Option<ServerConfig>>>,
}

impl Machine {
    async fn run(mut self) {
        let mut next = Next::Start;
        loop {
            next = match next {
                Next::Start => self.start().await,
                Next::Adopt => self.adopted().await,
                Next::Run(daemon, since) => self.running(daemon, since).await,
                Next::Crashed(exit) => self.crashed(exit).await,
                Next::Idle => self.idle().await,
                Next::Exit => break,
            };
        }
        self.settle();
    }

    // ── states ──────────────────────────────────────────────────────────────

    async fn start(&mut self) -> Next {
        self.update(|s| {
            s.state = DaemonState::Starting;
            s.message = None;
            s.retry_in_ms = None;
        });
        if self.answers().await {
            return Next::Adopt;
        }
        let executable = match process::find_executable(self.target.config.executable.as_deref()) {
            Ok(path) => path,
            Err(message) => {
                self.logs.note(&message);
                self.update(|s| {
                    s.state = DaemonState::NotFound;
                    s.message = Some(message);
                    s.pid = None;
                });
                return Next::Idle;
            }
        };
        let env = self.target.env();
        // Only Warmline's own settings are shown with their values: `daemon.env`
        // may carry credentials (a proxy URL with a password, an API key).
        let shown: Vec<String> = env
            .iter()
            .map(|(k, v)| {
                if k.starts_with("OLLAMA_") && !self.target.config.env.contains_key(k) {
                    format!("{k}={v}")
                } else {
                    format!("{k}=***")
                }
            })
            .collect();
        self.logs.note(&format!(
            "starting {} serve with {}",
            executable.display(),
            shown.join(" ")
        ));
        let (mut daemon, (stdout, stderr)) = match process::spawn(&executable, &env) {
            Ok(spawned) => spawned,
            Err(err) => {
                let message = format!("cannot start {}: {err}", executable.display());
                self.logs.note(&message);
                self.update(|s| {
                    s.state = DaemonState::Failed;
                    s.message = Some(message);
                });
                return Next::Idle;
            }
        };
        if let Ok(mut seen) = self.settings.lock() {
            *seen = None;
        }
        self.read_output(stdout, "stdout");
        self.read_output(stderr, "stderr");
        let pid = daemon.pid;
        self.update(|s| {
            s.pid = Some(pid);
            s.managed = true;
            s.executable = Some(executable.display().to_string());
            s.settings = None;
        });
        let started = Instant::now();
        loop {
            if let Some(exit) = daemon.exit_status() {
                process::reap_group(pid);
                return Next::Crashed(exit);
            }
            if self.answers().await {
                break;
            }
            if started.elapsed() >= self.target.config.ready_timeout {
                let after = humantime::format_duration(self.target.config.ready_timeout);
                self.logs
                    .note(&format!("not answering after {after}: stopping it"));
                process::stop(&mut daemon, self.target.config.stop_grace).await;
                return Next::Crashed(Exit(format!("did not answer within {after}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let version = self.version().await;
        self.logs
            .note(&format!("ready after {} ms", started.elapsed().as_millis()));
        self.update(|s| {
            s.state = DaemonState::Running;
            s.version = version;
            s.up_since_ms = Some(crate::sys::clock::epoch_ms());
            s.message = None;
        });
        self.ready.send_modify(|n| *n += 1);
        self.settle();
        Next::Run(daemon, Instant::now())
    }

    async fn running(&mut self, mut daemon: Daemon, since: Instant) -> Next {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_probes = 0;
        let mut watch_exit = Daemon {
            pid: daemon.pid,
            exit: daemon.exit.clone(),
        };
        loop {
            tokio::select! {
                exit = watch_exit.exited() => {
                    process::reap_group(daemon.pid);
                    self.backoff.running_since(since);
                    return Next::Crashed(exit);
                }
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else {
                        self.stop_daemon(&mut daemon).await;
                        return Next::Exit;
                    };
                    match command {
                        Command::Shutdown => {
                            self.stop_daemon(&mut daemon).await;
                            self.waiters.push(reply);
                            return Next::Exit;
                        }
                        Command::Stop => {
                            self.stop_daemon(&mut daemon).await;
                            self.waiters.push(reply);
                            return Next::Idle;
                        }
                        Command::Restart => {
                            self.logs.note("restart requested");
                            self.stop_daemon(&mut daemon).await;
                            self.backoff.reset();
                            self.waiters.push(reply);
                            return Next::Start;
                        }
                        Command::Start => self.answer(reply),
                        Command::Configure(target) => {
                            let restart = self.target.needs_restart_for(&target);
                            self.retarget(*target);
                            if restart {
                                self.logs.note("settings changed: restarting with the new ones");
                                self.stop_daemon(&mut daemon).await;
                                self.waiters.push(reply);
                                return Next::Start;
                            }
                            self.answer(reply);
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.answers().await {
                        failed_probes = 0;
                    } else {
                        failed_probes += 1;
                        if failed_probes >= HUNG_AFTER {
                            self.logs.note("stopped answering HEAD /: killing it");
                            process::stop(&mut daemon, Duration::ZERO).await;
                            self.backoff.running_since(since);
                            return Next::Crashed(Exit(format!(
                                "stopped answering ({HUNG_AFTER} health checks in a row)"
                            )));
                        }
                    }
                    self.measure(Some(daemon.pid));
                }
            }
        }
    }

    async fn crashed(&mut self, exit: Exit) -> Next {
        self.restarts += 1;
        let restarts = self.restarts;
        self.logs.note(&format!("exited unexpectedly: {}", exit.0));
        let jitter = rand::random::<f64>() * 2.0 - 1.0;
        let delay = match self.backoff.crashed(jitter) {
            Verdict::CrashLoop { crashes, window } => {
                let last = self
                    .logs
                    .last_daemon_line()
                    .map(|line| format!(" Its last output: {line}"))
                    .unwrap_or_default();
                let message = format!(
                    "ollama serve exited {crashes} times within {}, so Warmline stopped \
                     restarting it. Last exit: {}.{last} Fix the cause, then start it again.",
                    humantime::format_duration(window),
                    exit.0
                );
                self.logs.note(&message);
                self.update(|s| {
                    s.state = DaemonState::CrashLoop;
                    s.message = Some(message);
                    s.last_exit = Some(exit.0.clone());
                    s.restarts = restarts;
                    s.pid = None;
                    s.retry_in_ms = None;
                });
                return Next::Idle;
            }
            Verdict::RestartIn(delay) => delay,
        };
        self.update(|s| {
            s.state = DaemonState::Restarting;
            s.last_exit = Some(exit.0.clone());
            s.restarts = restarts;
            s.pid = None;
            s.retry_in_ms = Some(delay.as_millis() as u64);
            s.message = Some(format!(
                "ollama serve exited ({}); restarting in {}",
                exit.0,
                humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
            ));
        });
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return Next::Start,
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else { return Next::Exit };
                    match command {
                        Command::Shutdown => { self.waiters.push(reply); return Next::Exit }
                        Command::Stop => { self.waiters.push(reply); return Next::Idle }
                        Command::Start | Command::Restart => {
                            self.backoff.reset();
                            self.waiters.push(reply);
                            return Next::Start;
                        }
                        Command::Configure(target) => {
                            self.retarget(*target);
                            self.answer(reply);
                        }
                    }
                }
            }
        }
    }

    async fn adopted(&mut self) -> Next {
        let version = self.version().await;
        let url = self.target.base();
        self.logs.note(&format!(
            "an Ollama already answers at {url}: watching it, not starting another"
        ));
        self.update(|s| {
            s.state = DaemonState::External;
            s.managed = false;
            s.pid = None;
            s.executable = None;
            s.version = version;
            s.up_since_ms = Some(crate::sys::clock::epoch_ms());
            s.settings = None;
            s.message = Some(format!(
                "Ollama at {url} was started outside Warmline; daemon settings apply only to \
                 a daemon Warmline starts"
            ));
        });
        self.ready.send_modify(|n| *n += 1);
        self.settle();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_probes = 0;
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else { return Next::Exit };
                    match command {
                        Command::Shutdown => { self.waiters.push(reply); return Next::Exit }
                        Command::Stop | Command::Restart => {
                            let _ = reply.send(Err(DaemonError::External(self.target.base())));
                        }
                        Command::Start => self.answer(reply),
                        Command::Configure(target) => {
                            let moved = target.url != self.target.url;
                            self.retarget(*target);
                            if moved {
                                self.waiters.push(reply);
                                return Next::Start;
                            }
                            self.answer(reply);
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.answers().await {
                        failed_probes = 0;
                        self.measure(None);
                    } else {
                        failed_probes += 1;
                        if failed_probes >= HUNG_AFTER {
                            self.logs.note("the Ollama started outside Warmline is gone: starting one");
                            return Next::Start;
                        }
                    }
                }
            }
        }
    }

    async fn idle(&mut self) -> Next {
        if self.status.borrow().state == DaemonState::Running {
            self.update(|s| {
                s.state = DaemonState::Stopped;
                s.pid = None;
                s.message = Some(
                    "stopped; start it from the tray, the dashboard or POST /warmline/daemon/start"
                        .into(),
                );
            });
        }
        self.settle();
        let mut tick = tokio::time::interval(IDLE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else { return Next::Exit };
                    match command {
                        Command::Shutdown => { self.waiters.push(reply); return Next::Exit }
                        Command::Start | Command::Restart => {
                            self.backoff.reset();
                            self.waiters.push(reply);
                            return Next::Start;
                        }
                        Command::Stop => self.answer(reply),
                        Command::Configure(target) => {
                            let retry = self.status.borrow().state == DaemonState::NotFound
                                && target.config.executable != self.target.config.executable;
                            self.retarget(*target);
                            if retry {
                                self.waiters.push(reply);
                                return Next::Start;
                            }
                            self.answer(reply);
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.answers().await {
                        return Next::Adopt;
                    }
                }
            }
        }
    }

    // ── helpers ─────────────────────────────────────────────────────────────

    async fn stop_daemon(&mut self, daemon: &mut Daemon) {
        self.logs.note("stopping it");
        let exit = process::stop(daemon, self.target.config.stop_grace).await;
        self.logs.note(&format!("stopped: {}", exit.0));
        self.update(|s| {
            s.state = DaemonState::Stopped;
            s.pid = None;
            s.last_exit = Some(exit.0.clone());
            s.resources = None;
            s.message = None;
        });
    }

    fn retarget(&mut self, target: Target) {
        self.backoff = Backoff::new(&target.config);
        self.update(|s| s.url = target.base());
        self.target = target;
    }

    /// Whether a daemon answers `HEAD /` at the target address.
    async fn answers(&self) -> bool {
        let request = self
            .client
            .head(self.target.url.as_str())
            .timeout(PROBE_TIMEOUT)
            .send();
        matches!(request.await, Ok(r) if !r.status().is_server_error())
    }

    async fn version(&self) -> Option<String> {
        let url = format!("{}/api/version", self.target.base());
        let response = self
            .client
            .get(url)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        body.get("version")?.as_str().map(str::to_owned)
    }

    fn measure(&mut self, pid: Option<u32>) {
        let resources = self.sampler.sample(pid);
        self.update(|s| s.resources = resources);
    }

    /// Copies one output stream into the log tail, and reads the settings line.
    fn read_output<R>(&self, stream: R, name: &'static str)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let logs = Arc::clone(&self.logs);
        let status = Arc::clone(&self.status);
        let settings = Arc::clone(&self.settings);
        let asked = self.target.config.clone();
        tokio::spawn(async move {
            // Bytes, not `String` lines: one line that is not UTF-8 must neither
            // stop the reader nor close the pipe (the daemon's next write would
            // then fail, and a real Ollama dies of SIGPIPE). Read to the end,
            // whatever comes, decoded lossily.
            let mut reader = tokio::io::BufReader::new(stream);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // A read error on a pipe: nothing more will come.
                    Err(_) => break,
                }
                let text = String::from_utf8_lossy(&raw);
                let line = text.trim_end_matches(['\n', '\r']);
                if let Some(config) = ServerConfig::parse(line) {
                    let confirmed = confirm(&asked, &config);
                    if !confirmed.mismatched.is_empty() {
                        logs.note(&format!(
                            "the daemon runs with other settings than asked for: {}",
                            confirmed.mismatched.join(", ")
                        ));
                    }
                    status.send_modify(|s| s.settings = Some(confirmed));
                    if let Ok(mut seen) = settings.lock() {
                        *seen = Some(config);
                    }
                }
                logs.push(name, line);
            }
        });
    }

    fn update(&self, change: impl FnOnce(&mut DaemonStatus)) {
        self.status.send_modify(change);
    }

    fn answer(&self, reply: oneshot::Sender<Result<DaemonStatus, DaemonError>>) {
        let _ = reply.send(Ok(self.status.borrow().clone()));
    }

    /// Answers every command waiting for the daemon to settle.
    fn settle(&mut self) {
        let status = self.status.borrow().clone();
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Ok(status.clone()));
        }
    }
}

#[cfg(test)]
mod tests;
