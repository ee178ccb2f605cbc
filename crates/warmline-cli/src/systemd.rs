//! systemd's readiness protocol (`sd_notify(3)`), the few lines of it Warmline
//! needs: under a `Type=notify` unit, systemd passes a datagram socket's path in
//! `NOTIFY_SOCKET`; `warmline serve` sends `READY=1` once it listens and
//! `STOPPING=1` when a drain begins, so `systemctl start` returns when clients can
//! connect and dependants start in the right order. Outside systemd the variable is
//! unset and nothing is sent.
//!
//! The socket is a path, or, starting with `@`, a name in Linux's abstract
//! namespace. A failed send is logged and otherwise ignored: readiness is a
//! courtesy to the service manager, never a reason to stop serving.

use std::os::unix::net::UnixDatagram;

/// The service manager's notification socket, when there is one.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: std::os::unix::net::SocketAddr,
    shown: String,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; `None` when it is unset, empty or not usable.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy().into_owned();
        match Notifier::connect(&path) {
            Ok(notifier) => Some(notifier),
            Err(err) => {
                tracing::warn!(
                    "NOTIFY_SOCKET={path:?} is not usable, not notifying systemd: {err}"
                );
                None
            }
        }
    }

    fn connect(path: &str) -> std::io::Result<Notifier> {
        let address = match path.strip_prefix('@') {
            Some(name) => abstract_address(name)?,
            None if path.starts_with('/') => std::os::unix::net::SocketAddr::from_pathname(path)?,
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract name (@...)",
                ));
            }
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            address,
            shown: path.to_owned(),
        })
    }

    /// Sends one notification: newline-separated `KEY=value` assignments.
    pub fn notify(&self, state: &str) {
        if let Err(err) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            tracing::warn!("cannot notify systemd at {}: {err}", self.shown);
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt as _;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract socket names exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_a_path_socket_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("wl-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::connect(&path.display().to_string()).expect("connect");
        notifier.notify("READY=1\nSTATUS=listening");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=listening");
        let _ = std::fs::remove_dir_all(&dir);

        #[cfg(target_os = "linux")]
        {
            let name = format!("warmline-test-{}", std::process::id());
            let server =
                UnixDatagram::bind_addr(&abstract_address(&name).expect("name")).expect("bind");
            Notifier::connect(&format!("@{name}"))
                .expect("connect")
                .notify("STOPPING=1");
            let n = server.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], b"STOPPING=1");
        }
        assert!(Notifier::connect("relative.sock").is_err());
    }
}
