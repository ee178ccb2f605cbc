//! This process's own resource use, for the standard `process_*` series of the
//! Prometheus exposition (the names every exporter's client library writes, so
//! existing dashboards and alerts apply): CPU seconds from `getrusage`, resident
//! memory and open descriptors from `/proc/self` (Linux; absent elsewhere), the
//! descriptor limit, and the start time.
//!
//! Read on each scrape, off the request path: one `getrusage` call, one small
//! file read and one directory listing.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One reading; a figure this system cannot give is `None` and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft descriptor limit.
    pub max_fds: Option<u64>,
    /// When the process started, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Reads this process's figures; `started` is when it started (the gateway's
/// metrics are created at start, close enough for a start time in seconds).
pub fn sample(started: Instant) -> ProcessStats {
    let start = SystemTime::now()
        .checked_sub(started.elapsed())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO);
    ProcessStats {
        cpu_seconds: cpu_seconds(),
        resident_bytes: resident_bytes(),
        open_fds: open_fds(),
        max_fds: super::os::fd_limit().filter(|limit| *limit != u64::MAX),
        start_time_seconds: start.as_secs_f64(),
    }
}

#[cfg(unix)]
fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike as _;
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Some(micros as f64 / 1e6)
}

#[cfg(not(unix))]
fn cpu_seconds() -> Option<f64> {
    None
}

/// `VmRSS` of `/proc/self/status`, which the kernel gives in kB.
#[cfg(target_os = "linux")]
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss(&status)
}

#[cfg(not(target_os = "linux"))]
fn resident_bytes() -> Option<u64> {
    None
}

#[cfg(target_os = "linux")]
fn open_fds() -> Option<u64> {
    // The listing itself holds one descriptor while it runs: not counted.
    let count = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(count.saturating_sub(1))
}

#[cfg(not(target_os = "linux"))]
fn open_fds() -> Option<u64> {
    None
}

/// The `VmRSS:  123456 kB` line of a `/proc/PID/status` text, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim();
    kb.parse::<u64>().ok()?.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_the_status_text() {
        let status = "Name:\twarmline\nVmPeak:\t  9000 kB\nVmRSS:\t   1234 kB\nThreads:\t4\n";
        assert_eq!(vm_rss(status), Some(1234 * 1024));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        assert_eq!(vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        let started = Instant::now();
        let stats = sample(started);
        assert!(
            stats.resident_bytes.is_some_and(|b| b > 1 << 20),
            "{stats:?}"
        );
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(stats.cpu_seconds.is_some_and(|s| s > 0.0), "{stats:?}");
        assert!(stats.start_time_seconds > 1.6e9, "{stats:?}");
    }
}
