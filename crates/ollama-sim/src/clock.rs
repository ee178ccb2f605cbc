//! Wall-clock formatting the way Ollama's Go code prints it.
//!
//! Ollama stamps `created_at`, `modified_at` and `expires_at` with Go's
//! `time.RFC3339Nano` (trailing zeros of the fraction trimmed), writes
//! durations in the access log with `time.Duration.String()`, and Gin prints
//! its own `2006/01/02 - 15:04:05` stamp. The simulator has no time-zone
//! database, so everything is printed in UTC (`Z`), which is what Ollama does
//! for generation timestamps anyway.
//!
//! Formatting happens on every streamed chunk, so [`Timestamp`] serialises
//! from a stack buffer instead of allocating a `String`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A point in wall-clock time that serialises as Go's RFC 3339 with nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timestamp(pub SystemTime);

impl Timestamp {
    pub(crate) fn now() -> Self {
        Self(SystemTime::now())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = StackStr::default();
        write_rfc3339(&mut buf, self.0);
        serializer.serialize_str(buf.as_str())
    }
}

/// Seconds since the Unix epoch (OpenAI's `created`), negative before 1970.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `2025-01-18T20:53:19.123456789Z`, fraction trimmed like Go's `RFC3339Nano`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let mut s = String::with_capacity(32);
    write_rfc3339(&mut s, t);
    s
}

fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

fn write_rfc3339(out: &mut impl std::fmt::Write, t: SystemTime) {
    let (secs, nanos) = split(t);
    let (date, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(date);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60
    );
    if nanos != 0 {
        let mut digits = 9;
        let mut n = nanos;
        while n % 10 == 0 {
            n /= 10;
            digits -= 1;
        }
        let _ = write!(out, ".{n:0digits$}");
    }
    let _ = out.write_char('Z');
}

/// Gin's access-log stamp: `2006/01/02 - 15:04:05`.
pub(crate) fn gin_stamp(t: SystemTime) -> String {
    let (secs, _) = split(t);
    let (date, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(date);
    format!(
        "{y:04}/{m:02}/{d:02} - {:02}:{:02}:{:02}",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.Duration.String()`: `0s`, `812ns`, `1.5µs`, `51.678951803s`, `1h2m3s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let n = d.as_nanos();
    let mut s = String::with_capacity(16);
    if n == 0 {
        s.push_str("0s");
    } else if n < 1_000 {
        let _ = write!(s, "{n}ns");
    } else if n < 1_000_000 {
        push_fraction(&mut s, n, 3);
        s.push_str("µs");
    } else if n < 1_000_000_000 {
        push_fraction(&mut s, n, 6);
        s.push_str("ms");
    } else {
        let total_secs = n / 1_000_000_000;
        let (h, m) = (total_secs / 3600, (total_secs / 60) % 60);
        if h > 0 {
            let _ = write!(s, "{h}h");
        }
        if h > 0 || m > 0 {
            let _ = write!(s, "{m}m");
        }
        push_fraction(&mut s, n % 60_000_000_000, 9);
        s.push('s');
    }
    s
}

/// Writes `n / 10^digits` with the fraction's trailing zeros trimmed.
fn push_fraction(s: &mut String, n: u128, digits: u32) {
    let unit = 10u128.pow(digits);
    let (whole, mut frac) = (n / unit, n % unit);
    let _ = write!(s, "{whole}");
    if frac != 0 {
        let mut width = digits as usize;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        let _ = write!(s, ".{frac:0width$}");
    }
}

/// A fixed-size string buffer for formatting without allocating.
struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        Self {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackStr {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_trims_fraction_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_737_233_599, 123_400_000);
        assert_eq!(rfc3339(t), "2025-01-18T20:53:19.1234Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn timestamp_serialises_as_string() {
        let t = Timestamp(UNIX_EPOCH + Duration::new(1, 5));
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(json, "\"1970-01-01T00:00:01.000000005Z\"");
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(812)), "812ns");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_micros(51_678)), "51.678ms");
        assert_eq!(
            go_duration(Duration::from_nanos(51_678_951_803)),
            "51.678951803s"
        );
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
    }

    #[test]
    fn gin_stamp_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_737_233_599);
        assert_eq!(gin_stamp(t), "2025/01/18 - 20:53:19");
    }
}
