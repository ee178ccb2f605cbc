//! An adopted daemon's `OLLAMA_NUM_PARALLEL`, read from the process itself.
//!
//! Ollama does not report its parallelism over the API, but a daemon on this
//! machine can be asked another way: the process listening on the host's port is
//! found through `/proc/net/tcp{,6}` (the listening socket's inode) and
//! `/proc/*/fd` (which process holds it), and its environment is read from
//! `/proc/PID/environ` — where the user's `OLLAMA_NUM_PARALLEL` is, whether it
//! was set in a shell, a systemd unit or a launcher. Reading another user's
//! process needs the same user or root; where that is refused, or on a system
//! without `/proc`, nothing is found and the parallelism is learned instead (see
//! `parallelism`). Blocking file reads: call from a blocking thread.
//!
//! Where it sits: with `concurrency.discover` on, a background task of the
//! gateway runs it at start and every 10 seconds on a blocking thread, for each
//! host whose parallelism is neither stated nor supervised
//! (`Upstream::discover_parallelism`); the result feeds the host's slots. Never
//! on the request path.
//!
//! Limits, by design: only hosts named `localhost` or by a loopback address count
//! as this machine; a daemon in a container shows no holder, or the environment
//! of the process that publishes its port, which has no setting: it is learned.
//! Scanning `/proc/*/fd` walks every process's descriptors, so it costs more on a
//! busy machine; it stops at the first holder found.

use std::num::NonZeroUsize;
use std::path::Path;

use url::Url;

/// What is known of the daemon behind a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The host is not on this machine, or no process could be seen listening.
    Nothing,
    /// The process listening there; its `OLLAMA_NUM_PARALLEL` when it has one.
    Daemon {
        /// The process holding the listening socket.
        pid: u32,
        /// Its `OLLAMA_NUM_PARALLEL`: `None` when unset, 0, not a number, or the
        /// environment could not be read (another user's process).
        num_parallel: Option<NonZeroUsize>,
    },
}

/// The daemon behind `url`, when it runs on this machine.
///
/// Looks for a socket in the LISTEN state on the URL's port (any local
/// address, IPv4 or IPv6), then for the process holding it, then reads that
/// process's environment. Every failure along the way is [`Found::Nothing`] (or
/// a `Daemon` without `num_parallel`); never panics. Blocking.
pub fn daemon(url: &Url) -> Found {
    let local = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let Some(port) = url.port_or_known_default().filter(|_| local) else {
        return Found::Nothing;
    };
    let inodes = listening_inodes(Path::new("/proc/net"), port);
    if inodes.is_empty() {
        return Found::Nothing;
    }
    let Some(pid) = holder(Path::new("/proc"), &inodes) else {
        return Found::Nothing;
    };
    let num_parallel = std::fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .and_then(|environ| num_parallel(&environ));
    Found::Daemon { pid, num_parallel }
}

/// The inodes of the sockets listening on `port` (any address), from `tcp` and
/// `tcp6` under `net`. A table that cannot be read is skipped.
fn listening_inodes(net: &Path, port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(net.join(table)) else {
            continue;
        };
        inodes.extend(
            text.lines()
                .skip(1)
                .filter_map(|line| listening(line, port)),
        );
    }
    inodes
}

/// The inode of one `/proc/net/tcp` line's socket, if it listens on `port`:
/// state `0A` (TCP_LISTEN) and the hex port after the local address's last colon.
/// The header line and malformed lines give `None`.
fn listening(line: &str, port: u16) -> Option<u64> {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local = fields.get(1)?;
    let state = fields.get(3)?;
    let (_, hex_port) = local.rsplit_once(':')?;
    let listens = *state == "0A" && u16::from_str_radix(hex_port, 16).ok()? == port;
    listens.then(|| fields.get(9)?.parse().ok()).flatten()
}

/// The process holding one of the socket `inodes` open: the first numeric entry
/// of `proc` with an `fd/*` link to `socket:[inode]`. Processes whose `fd`
/// directory cannot be read (other users', without root) are skipped.
fn holder(proc: &Path, inodes: &[u64]) -> Option<u32> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir(proc).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// `OLLAMA_NUM_PARALLEL` from a NUL-separated environment block (as in
/// `/proc/PID/environ`): the first such variable, trimmed, if it is a positive
/// integer.
fn num_parallel(environ: &[u8]) -> Option<NonZeroUsize> {
    environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"OLLAMA_NUM_PARALLEL="))
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_line_is_found_by_port() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        let listen = "   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0";
        let established = "   1: 0100007F:2CAA 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(listening(listen, 11434), Some(123456));
        assert_eq!(listening(listen, 11435), None);
        assert_eq!(listening(established, 11434), None);
        assert_eq!(listening(header, 11434), None);
    }

    #[test]
    fn the_setting_is_read_from_an_environment_block() {
        let environ =
            b"PATH=/usr/bin\0OLLAMA_HOST=127.0.0.1:11434\0OLLAMA_NUM_PARALLEL=4\0HOME=/root\0";
        assert_eq!(num_parallel(environ).map(NonZeroUsize::get), Some(4));
        assert_eq!(num_parallel(b"PATH=/usr/bin\0"), None);
        assert_eq!(num_parallel(b"OLLAMA_NUM_PARALLEL=0\0"), None);
        assert_eq!(num_parallel(b"OLLAMA_NUM_PARALLEL=many\0"), None);
    }

    #[test]
    fn this_process_is_found_behind_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
        match daemon(&url) {
            Found::Daemon { pid, .. } => assert_eq!(pid, std::process::id()),
            Found::Nothing => panic!("the test's own listener was not found"),
        }
        let remote = Url::parse(&format!("http://192.0.2.1:{port}")).expect("url");
        assert_eq!(daemon(&remote), Found::Nothing);
    }
}
