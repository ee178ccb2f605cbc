//! Shared helpers for the integration tests: in-process gateways and mock upstreams
//! on port 0, and the real `warmline` / `ollama-sim` binaries as child processes.
//!
//! Nothing here uses a fixed port: every server binds `127.0.0.1:0` and reports the
//! port it got, so tests run in parallel and never collide with a real Ollama.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use url::Url;
use warmline::{Config, Gateway, GatewayHandle};

/// Starts an in-process gateway in front of `upstreams`, after `tweak` adjusts the
/// default config.
pub async fn gateway(upstreams: &[String], tweak: impl FnOnce(&mut Config)) -> GatewayHandle {
    let mut config = Config::with_upstreams(
        upstreams
            .iter()
            .map(|u| Url::parse(u).expect("upstream url")),
    );
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Gateway::serve(listener, config)
        .await
        .expect("gateway starts")
}

/// Starts an in-process Ollama simulator with its default (fast) knobs.
pub async fn simulator() -> ollama_sim::SimHandle {
    simulator_with(ollama_sim::SimConfig::default()).await
}

/// Starts an in-process Ollama simulator with `config`.
pub async fn simulator_with(config: ollama_sim::SimConfig) -> ollama_sim::SimHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    ollama_sim::Simulator::bind(addr, config)
        .await
        .expect("simulator binds")
}

/// An in-process mock upstream: any axum router, served on a port-0 listener.
#[derive(Debug)]
pub struct Mock {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Mock {
    /// Serves `router`, counting in `hits` every request it receives except the
    /// gateway's own background traffic: health probes (`HEAD /`) and model
    /// listings (`GET /api/tags`, `GET /api/ps`).
    pub async fn serve(router: axum::Router) -> Mock {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let (method, path) = (request.method(), request.uri().path());
                let probe = (method == axum::http::Method::HEAD && path == "/")
                    || (method == axum::http::Method::GET
                        && (path == "/api/tags" || path == "/api/ps"));
                if !probe {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                next.run(request)
            },
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Mock { url, hits, task }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An `application/x-ndjson` response streaming `body`, as Ollama's native
/// streams are framed.
pub fn ndjson<S, E>(body: S) -> axum::response::Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut response = axum::response::Response::new(axum::body::Body::from_stream(body));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A URL on which nothing listens (bound, then closed).
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}

/// The directory holding the workspace's binaries (next to this test binary).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WARMLINE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/tests-xxxx → target/<profile>
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary; panics with the command that builds it if missing.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A child process that is killed when dropped, so a failing test leaks nothing.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub url: String,
}

impl Daemon {
    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `command`, reads `stream` line by line until `find` extracts the URL from
/// one (bounded by 20 s), then keeps draining that stream in the background. When
/// the ready line is on stdout, stderr goes to `stderr`.
fn spawn_and_wait(
    mut command: Command,
    from_stderr: bool,
    stderr: Stdio,
    find: fn(&str) -> Option<String>,
) -> Daemon {
    command.stdin(Stdio::null());
    if from_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped()).stderr(stderr);
    }
    let mut child = command.spawn().expect("spawn daemon");
    let stream: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().expect("stderr"))
    } else {
        Box::new(child.stdout.take().expect("stdout"))
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(url) = find(&line) {
                let _ = tx.send(url);
                sent = true;
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("daemon printed its ready line within 20 s");
    Daemon { child, url }
}

/// Runs the real `ollama-sim serve` on a free loopback port.
pub fn sim_daemon(envs: &[(&str, &str)]) -> Daemon {
    let mut command = Command::new(bin("ollama-sim"));
    command
        .arg("serve")
        .env("OLLAMA_HOST", "127.0.0.1:0")
        .env("SIM_QUIET", "1");
    for (k, v) in envs {
        command.env(k, v);
    }
    spawn_logged(command)
}

/// Spawns an Ollama-like daemon and waits for its Ollama-style
/// `msg="Listening on HOST:PORT (version V)"` log line on stderr.
pub fn spawn_logged(command: Command) -> Daemon {
    spawn_and_wait(command, true, Stdio::null(), |line| {
        let rest = line.split("msg=\"Listening on ").nth(1)?;
        let addr = rest.split(' ').next()?;
        Some(format!("http://{addr}"))
    })
}

/// Spawns a `warmline serve` command and waits for its ready line on stdout
/// (`warmline listening on URL`); stderr goes to the test's own.
pub fn spawn_ready(command: Command) -> Daemon {
    spawn_ready_logging(command, Stdio::inherit())
}

/// [`spawn_ready`], with the process's stderr (its log) going to `stderr`.
pub fn spawn_ready_logging(command: Command, stderr: Stdio) -> Daemon {
    spawn_and_wait(command, false, stderr, |line| {
        line.strip_prefix("warmline listening on ")
            .map(str::to_owned)
    })
}

/// A fresh, empty directory under the system's temp dir, unique to this process
/// and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("warmline-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs the real `warmline serve` on a free loopback port in front of `upstream`.
pub fn warmline_daemon(upstream: &str, extra: &[&str]) -> Daemon {
    let mut command = Command::new(bin("warmline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", upstream])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("WARMLINE_LISTEN")
        .env_remove("WARMLINE_UPSTREAMS")
        .env_remove("WARMLINE_CONFIG");
    spawn_ready(command)
}

/// A real `redis-server` on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (Debian's package; `tests/run-all.sh` installs it)
    /// with persistence off, and waits until it answers PING.
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/run-all.sh installs it)");
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if server.ping() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING on port {port} within 10 s");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Number of keys in the server's database (0 if it does not answer).
    pub fn dbsize(&self) -> u64 {
        use std::io::{BufRead, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"DBSIZE\r\n").is_err() {
            return 0;
        }
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        line.trim().trim_start_matches(':').parse().unwrap_or(0)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it holds, for up to `within`; panics naming
/// `what` otherwise.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A directory holding `ollama`, a link to the simulator (which then behaves as
/// `ollama serve`), for supervision tests; returns (directory, executable).
pub fn ollama_link() -> (PathBuf, PathBuf) {
    let dir = temp_dir("ollama-bin");
    let exe = dir.join("ollama");
    std::os::unix::fs::symlink(bin("ollama-sim"), &exe).expect("symlink ollama");
    (dir, exe)
}

/// Whether process `pid` runs (a zombie nobody reaped counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// The admin credential every gateway of this user reads (the default
/// `admin.token_file`), made if absent: what the `warmline` CLI sends.
pub fn admin_token() -> String {
    let path = warmline::config::default_admin_token_file().expect("HOME or XDG_STATE_HOME is set");
    warmline::auth::AdminKey::load_or_create(&path).expect("admin credential");
    warmline::auth::read_admin_token(&path).expect("admin token readable")
}

/// Adds the admin credential to a request for Warmline's control plane.
pub trait AsAdmin {
    fn admin(self) -> Self;
}

impl AsAdmin for reqwest::RequestBuilder {
    fn admin(self) -> Self {
        self.bearer_auth(admin_token())
    }
}
