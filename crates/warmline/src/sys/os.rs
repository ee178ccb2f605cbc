//! What Warmline asks of the operating system: where its private state lives,
//! files only this user may read, written so that no crash, race or planted link
//! can corrupt or redirect them, and how many connections the process can hold.
//!
//! **Private files** (the admin credential, the state file, the app's settings)
//! are written atomically: a temporary file with a unique name is created next to
//! the target (`O_EXCL`, mode 0600, never through a link), written, flushed to
//! disk (`fsync`), then renamed over the target, and the directory is flushed too.
//! A reader therefore sees the old document or the new one, never half of one; a
//! symbolic link planted where the file should be is refused, not followed, so
//! another local user cannot make Warmline overwrite a file of their choosing.
//!
//! **The fd limit**: every client connection is a file descriptor, and a proxied
//! request holds a second one upstream. [`raise_fd_limit`] lifts the soft limit to
//! the hard one at start (as Go's runtime and most servers do), and the default
//! `limits.max_connections` ([`default_max_connections`]) leaves room below it for
//! the process's own files and for upstream sockets, so the gateway sheds idle
//! connections itself before the kernel refuses `accept`.
//!
//! Who uses it: the admin credential (`auth`, via [`create_private_once`] and
//! [`check_private`]), the warm-set file (`state`, via [`read_private`] and
//! [`write_private`]), the desktop app's settings file, the config's default
//! `max_connections`, and both binaries' start-up ([`raise_fd_limit`]). All of it
//! is blocking file I/O: call it at start-up, from a blocking thread, or where a
//! short stall is acceptable — never in a hot request path.
//!
//! Unix only (modes, `O_NOFOLLOW`, `rlimit`). Nothing here panics; every failure
//! is a [`FileError`] naming the path, or `None` where a value is optional.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// File descriptors kept for everything that is not a client connection: log
/// files, the listener, Redis, the daemon's pipes, sysinfo's reads.
const FD_RESERVE: u64 = 128;

/// Warmline's state directory: `$XDG_STATE_HOME/warmline`, or
/// `~/.local/state/warmline`; `None` with neither variable set (an empty variable
/// counts as unset). Only computes the path: the directory may not exist yet.
pub fn state_dir() -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", &[".local", "state"])
}

/// Warmline's settings directory: `$XDG_CONFIG_HOME/warmline`, or
/// `~/.config/warmline`; `None` with neither variable set (an empty variable
/// counts as unset). Holds `config.toml`, read when present, and the desktop app's
/// settings. Only computes the path.
pub fn config_dir() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", &[".config"])
}

/// `$VAR/warmline`, or `$HOME/<under>/warmline` when `VAR` is unset; `None` when
/// neither is set (an empty variable counts as unset).
fn xdg_dir(var: &str, under: &[&str]) -> Option<PathBuf> {
    let base = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty())?;
            Some(
                under
                    .iter()
                    .fold(PathBuf::from(home), |p, part| p.join(part)),
            )
        })?;
    Some(base.join("warmline"))
}

/// Moves a private file from where an older Warmline kept it to where it belongs
/// now, once: only when `old` exists and `new` does not. The file is written at
/// `new` the way every private file is (0600 in a 0700 directory, atomically, no
/// link followed) and only then removed at `old`, so a failure leaves it where it
/// was. `Ok(true)` when it moved.
pub fn move_private(old: &Path, new: &Path) -> Result<bool, FileError> {
    if old == new || read_private(new)?.is_some() {
        return Ok(false);
    }
    let Some(bytes) = read_private(old)? else {
        return Ok(false);
    };
    write_private(new, &bytes)?;
    std::fs::remove_file(old).map_err(io(old))?;
    Ok(true)
}

/// The process's file-descriptor limit (soft `RLIMIT_NOFILE`), if it can be read.
/// May be `RLIM_INFINITY` (`u64::MAX`) on systems without a limit.
pub fn fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Raises the soft file-descriptor limit to the hard limit; returns the limit
/// now in force. A server holding thousands of connections needs more than the
/// usual soft limit of 1024, and the hard limit is what the administrator allows.
/// `None` only when the limit cannot be read; a refused raise (some systems
/// reject an unlimited hard limit as the soft one) leaves the soft limit as it
/// was and returns it. Call it before [`default_max_connections`] is computed.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The default `limits.max_connections`: the descriptors left after
/// [`FD_RESERVE`], less a quarter of them (at most 8,192) kept for upstream
/// sockets — a busy request holds one, an idle client connection none — and at
/// least 64. With the hard limit of 20,000 on the project's machines that is
/// 14,904; with systemd's usual 524,288, 515,968. Assumes 1,024 when the limit
/// cannot be read. The config caps the result at its own maximum.
pub fn default_max_connections() -> usize {
    let limit = fd_limit().unwrap_or(1024);
    let usable = limit.saturating_sub(FD_RESERVE);
    let usable = usable - (usable / 4).min(8192);
    usize::try_from(usable).unwrap_or(usize::MAX).max(64)
}

/// Why a private file could not be read or written. Every variant names the
/// path, and its message says what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O error from the system, for this path (or its temporary sibling).
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A symbolic link sits where a private file should be: refused, never followed.
    #[error("{path} is a symbolic link; Warmline keeps its private files only in regular files")]
    Link { path: String },
    #[error(
        "{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` \
         (or 640 for a group of administrators)"
    )]
    /// Other users may read (or write, or run) the file: `mode` is its permission
    /// bits, shown in octal.
    Exposed { path: String, mode: u32 },
}

/// A `map_err` adapter: an I/O error becomes [`FileError::Io`] for `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates `dir` (and its parents) with mode 0700 where it does not exist. An
/// existing directory is left as it is, its mode included.
fn private_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Refuses a symbolic link at `path` (a missing file is fine, and so is any
/// error reading its metadata: the open that follows will report it).
fn not_a_link(path: &Path) -> Result<(), FileError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(FileError::Link {
            path: path.display().to_string(),
        }),
        _ => Ok(()),
    }
}

/// Writes `bytes` into a new, unique, 0600 temporary file beside `path`, flushed
/// to disk; returns its path. The name (`.<name>.<pid>.<random>.tmp`) is created
/// with `O_EXCL | O_NOFOLLOW`, so another user cannot pre-create or link it. On a
/// write error the temporary file is removed.
fn temp_beside(path: &Path, bytes: &[u8]) -> Result<PathBuf, FileError> {
    temp_beside_mode(path, bytes, 0o600)
}

/// [`temp_beside`] with the file's permission bits.
fn temp_beside_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, FileError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(io(&temp))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(&temp)(err));
    }
    Ok(temp)
}

/// Flushes a directory entry change (a rename or link) to disk. Best effort:
/// errors are ignored, the data itself was already synced.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

/// Replaces `path` with `bytes`, atomically, mode 0600 (see the module docs).
/// Creates the parent directory (0700) if needed. Fails with
/// [`FileError::Link`] if `path` is a symbolic link, and with [`FileError::Io`]
/// for any system error; on failure no temporary file is left behind and the
/// old contents are intact.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    not_a_link(path)?;
    let temp = temp_beside(path, bytes)?;
    if let Err(err) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(io(path)(err));
    }
    sync_dir(path);
    Ok(())
}

/// Reads `path` without following a link; `Ok(None)` when it does not exist.
/// A link at `path` is [`FileError::Link`] (links in the directories above it
/// are followed). Does not check the file's mode: see [`check_private`].
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: the last component is a link.
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(FileError::Link {
                path: path.display().to_string(),
            });
        }
        Err(err) => return Err(io(path)(err)),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    Ok(Some(bytes))
}

/// Creates `path` holding `bytes` only if it does not exist yet, atomically: of
/// two processes racing to create it, exactly one wins and both then read the
/// winner's bytes. Returns the bytes the file holds afterwards.
///
/// Used for the admin credential: a new random token is offered, and whatever
/// the file holds afterwards is the token. A link at `path` is refused like in
/// [`read_private`]. The file is 0600, or 0640 when its directory already exists
/// shared with its group and closed to others (group may read, others nothing:
/// the system service's `StateDirectoryMode=0750`), so the administrators in that
/// group can read what their directory already lets them list.
pub fn create_private_once(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, FileError> {
    if let Some(existing) = read_private(path)? {
        return Ok(existing);
    }
    let mode = match path.parent() {
        Some(dir) if shared_with_group(dir) => 0o640,
        _ => 0o600,
    };
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let temp = temp_beside_mode(path, bytes, mode)?;
    // A hard link fails if `path` exists: the atomic "create if absent".
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            sync_dir(path);
            Ok(bytes.to_vec())
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_private(path)?
            .ok_or_else(|| io(path)(std::io::Error::from(std::io::ErrorKind::NotFound))),
        Err(err) => Err(io(path)(err)),
    }
}

/// Whether `dir` exists with read and search for its group and no permission
/// at all for others.
fn shared_with_group(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(dir).is_ok_and(|meta| {
        let mode = meta.permissions().mode();
        meta.is_dir() && mode & 0o050 == 0o050 && mode & 0o007 == 0
    })
}

/// Refuses a file that users other than its owner (and its group) may read.
/// Any permission bit for others (`o+r`, `o+w` or `o+x`) is refused; group bits
/// are allowed, so a group of administrators can share the file. The file must
/// exist (a missing one is [`FileError::Io`]).
pub fn check_private(path: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(FileError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "warmline-os-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_private_file_is_0600_and_replaced_whole() {
        let dir = temp_dir();
        let path = dir.join("sub").join("state.json");
        write_private(&path, b"one").expect("write");
        write_private(&path, b"two").expect("rewrite");
        assert_eq!(
            read_private(&path).expect("read").as_deref(),
            Some(&b"two"[..])
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_planted_link_is_refused_not_followed() {
        let dir = temp_dir();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").expect("victim");
        let path = dir.join("state.json");
        std::os::unix::fs::symlink(&victim, &path).expect("link");
        assert!(matches!(
            write_private(&path, b"evil"),
            Err(FileError::Link { .. })
        ));
        assert!(matches!(read_private(&path), Err(FileError::Link { .. })));
        assert!(matches!(
            create_private_once(&path, b"evil"),
            Err(FileError::Link { .. })
        ));
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn of_two_creators_one_wins_and_both_read_its_bytes() {
        let dir = temp_dir();
        let path = dir.join("admin-token");
        let results: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || create_private_once(path, &[b'a' + i; 16]).expect("create"))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("join"))
                .collect()
        });
        let on_disk = std::fs::read(&path).expect("read");
        assert!(results.iter().all(|r| *r == on_disk), "{results:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let dir = temp_dir();
        let path = dir.join("admin-token");
        write_private(&path, b"secret").expect("write");
        check_private(&path).expect("0600 is private");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        check_private(&path).expect("a group may read it");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            check_private(&path),
            Err(FileError::Exposed { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_default_connection_cap_leaves_room_for_upstream_sockets() {
        let cap = default_max_connections();
        let limit = fd_limit().expect("limit");
        assert!(cap >= 64);
        assert!((cap as u64) <= limit.max(256), "{cap} vs {limit}");
    }

    #[test]
    fn a_file_moves_once_and_never_over_a_newer_one() {
        let dir = temp_dir();
        let old = dir.join("config").join("state.json");
        let new = dir.join("state").join("warmline").join("state.json");
        write_private(&old, b"old").expect("write");
        assert!(move_private(&old, &new).expect("move"));
        assert!(!old.exists());
        assert_eq!(
            read_private(&new).expect("read").as_deref(),
            Some(&b"old"[..])
        );
        let mode = std::fs::metadata(&new).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A second old copy never replaces what is there now.
        write_private(&old, b"older").expect("write");
        assert!(!move_private(&old, &new).expect("no move"));
        assert_eq!(
            read_private(&new).expect("read").as_deref(),
            Some(&b"old"[..])
        );
        assert!(old.exists());
        // Nothing to move.
        assert!(!move_private(&dir.join("none"), &dir.join("other")).expect("none"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_credential_is_shared_with_the_group_only_where_its_directory_is() {
        let dir = temp_dir();
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).expect("dir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let open_dir = dir.join("open");
        std::fs::create_dir(&open_dir).expect("dir");
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        for (parent, want) in [
            (&shared, 0o640),
            (&open_dir, 0o600),
            (&dir.join("new"), 0o600),
        ] {
            let file = parent.join("admin-token");
            create_private_once(&file, b"secret").expect("create");
            assert_eq!(mode(&file), want, "{}", parent.display());
            check_private(&file).expect("private enough");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
