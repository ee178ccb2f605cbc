//! Starting and stopping the daemon process.
//!
//! A started daemon:
//! - runs the executable directly (no shell in between), with `argv[0]` the path
//!   it was found at, in a process group of its own, so that stopping it also
//!   reaches the model runners it starts (Ollama's runners outlive a killed
//!   daemon otherwise);
//! - gets SIGTERM if Warmline dies, however it dies (Linux's parent-death
//!   signal), which Ollama answers by killing its runners and exiting. The signal
//!   is tied to the *thread* that spawned the child, so every daemon is spawned by
//!   one thread that lives as long as the process ([`spawner`]);
//! - is waited for by a thread of its own, which reports its exit status.
//!
//! Stopping: SIGTERM to the group, `stop_grace` to exit, then SIGKILL to the
//! group; and SIGKILL to the group once more after the daemon is gone, for any
//! runner it left behind.
//!
//! Where it sits: used only by the supervisor's task (`supervisor`), never on the
//! request path. Linux only in practice: the parent-death signal is a `prctl`,
//! and the group signals are POSIX `killpg`. The daemon's stdout and stderr are
//! piped back as tokio streams for `logs`; its stdin is `/dev/null`.
//!
//! Why plain threads: the parent-death signal fires when the *spawning thread*
//! ends, and tokio's threads come and go (idle blocking threads exit), so daemons
//! are spawned by one long-lived std thread; the std `Child` it returns can only
//! be waited for by blocking, hence one waiting thread per daemon.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{ChildStderr, ChildStdout};
use tokio::sync::watch;

/// A started daemon. Dropping it does not stop the process: call [`stop`].
#[derive(Debug)]
pub(crate) struct Daemon {
    /// Its process id, which is also its process group id.
    pub(crate) pid: u32,
    /// `None` while it runs, then its exit status.
    pub(crate) exit: watch::Receiver<Option<Exit>>,
}

impl Daemon {
    /// Resolves once the daemon has exited, with how. Cancel-safe. If the waiting
    /// thread is gone without reporting, answers a plain "exited".
    pub(crate) async fn exited(&mut self) -> Exit {
        match self.exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or_else(|| Exit("exited".into())),
            Err(_) => Exit("exited".into()),
        }
    }

    /// How it ended, if it has.
    pub(crate) fn exit_status(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }
}

/// How a daemon ended, in words for the log and the status (`exit status 1`,
/// `killed by signal 9 (SIGKILL)`, or why it could not be waited for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit(pub(crate) String);

impl Exit {
    /// Describes a wait's result: the exit code if it exited, else the signal
    /// (number and name) that killed it.
    fn of(status: io::Result<ExitStatus>) -> Exit {
        use std::os::unix::process::ExitStatusExt as _;
        Exit(match status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(signal)) => format!(
                    "killed by signal {signal} ({})",
                    Signal::try_from(signal).map_or("unknown", Signal::as_str)
                ),
                _ => status.to_string(),
            },
            Err(err) => format!("could not be waited for: {err}"),
        })
    }
}

/// What a spawn hands back besides the daemon: its two output streams.
pub(crate) type Outputs = (ChildStdout, ChildStderr);

/// Finds the `ollama` executable: `configured` if given (it must exist), else the
/// first `ollama` on `PATH` that is a file and executable.
///
/// "Executable" means any execute bit is set (not that this user may run it;
/// the spawn reports that). The error is a message for the user: which setting
/// is wrong, or how to install Ollama.
pub(crate) fn find_executable(configured: Option<&Path>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(path) = configured {
        return if runnable(path) {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "daemon.executable {} is not an executable file",
                path.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("ollama"))
        .find(|candidate| runnable(candidate))
        .ok_or_else(|| {
            "no `ollama` executable was found on PATH; install Ollama from \
             https://ollama.com/download (Linux: curl -fsSL https://ollama.com/install.sh | sh), \
             or set daemon.executable"
                .to_owned()
        })
}

/// The command line and environment of `executable serve` (see [`spawn`]), for
/// a process whose own variables are named by `inherited`: each `WARMLINE_*`
/// one is removed, and so are systemd's service variables (`NOTIFY_SOCKET`,
/// `JOURNAL_STREAM`, `LISTEN_*`, `WATCHDOG_*`: they describe Warmline's service,
/// and a daemon that read them would speak for it), then `env` is added
/// (overriding inherited values).
/// Variables (or prefixes) systemd sets for Warmline's own service.
const SERVICE_MANAGER_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_",
];

fn command(
    executable: &Path,
    env: &[(String, String)],
    inherited: impl Iterator<Item = std::ffi::OsString>,
) -> Command {
    let mut command = Command::new(executable);
    command.arg("serve");
    for name in inherited {
        let text = name.to_string_lossy();
        if text.starts_with("WARMLINE_") || SERVICE_MANAGER_ENV.iter().any(|v| text.starts_with(v))
        {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Starts `executable serve` with `env` added to Warmline's own environment, less
/// Warmline's own variables (`WARMLINE_TOKEN`, `WARMLINE_REDIS`, ...: the daemon
/// has no business with Warmline's secrets).
///
/// The daemon runs in a new process group (its pid), with SIGTERM as its
/// parent-death signal, stdin from `/dev/null` and both outputs piped. Returns
/// the daemon and its two output streams, which the caller must read (a full
/// pipe would block the daemon). Must run within a tokio runtime (the streams
/// register with it); the fork and exec happen on the spawner thread, and this
/// call blocks until they are done.
pub(crate) fn spawn(executable: &Path, env: &[(String, String)]) -> io::Result<(Daemon, Outputs)> {
    let mut command = command(executable, env, std::env::vars_os().map(|(name, _)| name));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
    }
    die_with_parent(&mut command);
    let mut child = spawner().spawn(command)?;
    let pid = child.id();
    let outputs = (
        ChildStdout::from_std(
            child
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("no stdout"))?,
        )?,
        ChildStderr::from_std(
            child
                .stderr
                .take()
                .ok_or_else(|| io::Error::other("no stderr"))?,
        )?,
    );
    let (tx, exit) = watch::channel(None);
    std::thread::Builder::new()
        .name(format!("ollama-wait-{pid}"))
        .spawn(move || {
            let status = child.wait();
            let _ = tx.send(Some(Exit::of(status)));
        })?;
    Ok((Daemon { pid, exit }, outputs))
}

/// Asks Linux to send the child SIGTERM when the thread that spawned it ends (the
/// spawner thread, which lives as long as Warmline), and closes the race where
/// Warmline died before the request took effect.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid) and, if the parent is
    // already gone, `_exit`; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
            if nix::unistd::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Other systems have no parent-death signal: a daemon Warmline started outlives a
/// Warmline that is killed outright (an orderly stop still stops it).
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// Stops a daemon: SIGTERM to its group, up to `grace` to exit, then SIGKILL.
/// Returns how it ended. Then SIGKILLs the group again ([`reap_group`]) for any
/// runner that outlived it. Signal errors (a group already gone) are ignored.
pub(crate) async fn stop(daemon: &mut Daemon, grace: Duration) -> Exit {
    let group = Pid::from_raw(daemon.pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let exit = match tokio::time::timeout(grace, daemon.exited()).await {
        Ok(exit) => exit,
        Err(_) => {
            let _ = killpg(group, Signal::SIGKILL);
            daemon.exited().await
        }
    };
    reap_group(daemon.pid);
    exit
}

/// Kills whatever is left of a daemon's process group (runners it started).
/// Errors are ignored: usually the group is simply empty already.
pub(crate) fn reap_group(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// The one thread that spawns daemons (see the module docs).
struct Spawner {
    /// Spawn requests: a command and where to send the result.
    requests: mpsc::Sender<(Command, mpsc::Sender<io::Result<std::process::Child>>)>,
}

/// The process's spawner, its thread started on first use. If the thread cannot
/// be started, that is logged and every spawn then fails with an I/O error.
fn spawner() -> &'static Spawner {
    static SPAWNER: OnceLock<Spawner> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) =
            mpsc::channel::<(Command, mpsc::Sender<io::Result<std::process::Child>>)>();
        let spawned = std::thread::Builder::new()
            .name("warmline-spawner".into())
            .spawn(move || {
                // Never returns while the process lives: the parent-death signal
                // of every daemon is tied to this thread.
                while let Ok((mut command, reply)) = incoming.recv() {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(err) = spawned {
            tracing::error!("cannot start the daemon spawner thread: {err}");
        }
        Spawner { requests }
    })
}

impl Spawner {
    /// Spawns `command` on the spawner thread and waits for the result
    /// (blocking the caller for as long as a fork and exec take).
    fn spawn(&self, command: Command) -> io::Result<std::process::Child> {
        let (reply, result) = mpsc::channel();
        self.requests
            .send((command, reply))
            .map_err(|_| io::Error::other("the daemon spawner thread is gone"))?;
        result
            .recv()
            .map_err(|_| io::Error::other("the daemon spawner thread is gone"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_executable_says_how_to_install_ollama() {
        let err = find_executable(Some(Path::new("/nonexistent/ollama"))).expect_err("missing");
        assert!(err.contains("daemon.executable"), "{err}");
        assert!(find_executable(Some(Path::new("/bin/sh"))).is_ok());
    }

    #[tokio::test]
    async fn a_spawned_process_is_stopped_with_its_group() {
        // `sh serve` reads a script named "serve": make one that starts a child in
        // the same group and waits, as Ollama's runners do.
        let dir = std::env::temp_dir().join(format!("warmline-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("fake-ollama");
        std::fs::write(&script, "#!/bin/sh\nsleep 300 &\necho $!\nwait\n").expect("script");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let (mut daemon, (stdout, _stderr)) = spawn(&script, &[]).expect("spawned");
        let mut lines = tokio::io::BufReader::new(stdout);
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
            .await
            .expect("output");
        let runner: u32 = line.trim().parse().expect("the runner's pid");
        let alive = |pid: u32| {
            // Gone, or a zombie nobody reaped yet (this container's init may not).
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
        };
        assert!(alive(runner));
        let exit = stop(&mut daemon, Duration::from_secs(5)).await;
        assert!(
            exit.0.contains("signal 15") || exit.0.contains("exit status"),
            "{exit:?}"
        );
        // The runner went with it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(runner), "the runner outlived its daemon");
    }

    #[tokio::test]
    async fn a_daemon_that_ignores_sigterm_is_killed_with_its_group_after_the_grace() {
        let dir = std::env::temp_dir().join(format!("warmline-stubborn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let script = dir.join("stubborn-ollama");
        // Ignores SIGTERM (as a daemon stuck unloading a model might), and so
        // does its runner.
        std::fs::write(
            &script,
            "#!/bin/sh
trap '' TERM
sh -c \"trap '' TERM; sleep 300\" &
echo $!
wait
",
        )
        .expect("script");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let (mut daemon, (stdout, _stderr)) = spawn(&script, &[]).expect("spawned");
        let mut lines = tokio::io::BufReader::new(stdout);
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line)
            .await
            .expect("output");
        let runner: u32 = line.trim().parse().expect("the runner's pid");
        let started = std::time::Instant::now();
        let exit = stop(&mut daemon, Duration::from_millis(300)).await;
        let took = started.elapsed();
        assert!(exit.0.contains("signal 9"), "{exit:?}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "SIGKILL after the grace period, not before: {took:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let gone = std::fs::read_to_string(format!("/proc/{runner}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        });
        assert!(gone, "the stubborn runner outlived its daemon");
    }

    #[test]
    fn the_daemon_gets_none_of_warmlines_own_variables() {
        // Every WARMLINE_* variable of this process is removed from the child's
        // environment (`Command` lists a removal as `None`).
        let name = "WARMLINE_TOKEN";
        let inherited = [
            "PATH",
            name,
            "WARMLINE_REDIS",
            "HOME",
            "NOTIFY_SOCKET",
            "JOURNAL_STREAM",
            "WATCHDOG_USEC",
        ]
        .map(std::ffi::OsString::from);
        let command = command(
            Path::new("ollama"),
            &[("OLLAMA_HOST".into(), "127.0.0.1:1".into())],
            inherited.into_iter(),
        );
        let envs: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(envs.contains(&(name.to_owned(), None)), "{envs:?}");
        for removed in [
            "WARMLINE_REDIS",
            "NOTIFY_SOCKET",
            "JOURNAL_STREAM",
            "WATCHDOG_USEC",
        ] {
            assert!(envs.contains(&(removed.to_owned(), None)), "{envs:?}");
        }
        assert!(
            !envs.iter().any(|(k, _)| k == "PATH" || k == "HOME"),
            "{envs:?}"
        );
        assert!(envs.contains(&("OLLAMA_HOST".to_owned(), Some("127.0.0.1:1".to_owned()))));
        assert!(
            envs.iter()
                .all(|(k, v)| !k.starts_with("WARMLINE_") || v.is_none()),
            "{envs:?}"
        );
    }
}
