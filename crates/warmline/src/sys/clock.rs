//! Time: deadlines computed from settings, "now + a setting" that cannot
//! overflow, and the timestamps Ollama writes.
//!
//! Every duration setting is bounded (30 days, see `config`), so plain addition
//! would do today; these keep a future setting, or a sum of two, from ever
//! turning a deadline into a panic (`Instant + Duration` panics on overflow).
//! [`parse_rfc3339`] reads Ollama's `expires_at` and `modified_at`, which carry
//! the daemon's local offset (`-07:00`), not only `Z`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Further than any deadline Warmline needs: a year.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// The instant `after` from now, or a year from now if that is further.
pub fn after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after.min(FAR)).unwrap_or(now)
}

/// Milliseconds since the Unix epoch, the timestamp every JSON answer and log
/// line carries (0 if the clock is set before 1970; saturating far after).
pub fn epoch_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// An RFC 3339 time as Ollama writes it (`2024-06-04T14:38:31.83753-07:00`,
/// `...Z`); `None` for anything else. Go's zero time (`0001-01-01T00:00:00Z`) and
/// other times before 1970 are `None` too.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Fraction, then the offset.
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let kept = &fraction[..digits.min(9)];
        nanos = kept.parse::<u32>().ok()? * 10u32.pow(9 - kept.len() as u32);
        rest = &fraction[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |b: &u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
            let minutes = (digit(h1)? * 10 + digit(h2)?) * 60 + digit(m1)? * 10 + digit(m2)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(60) - offset * 60;
    let secs = u64::try_from(secs).ok().filter(|s| *s > 0)?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_duration_gives_a_deadline_not_a_panic() {
        let far = after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(364 * 24 * 3600));
        assert!(after(Duration::from_millis(5)) <= Instant::now() + Duration::from_millis(5));
    }
    #[test]
    fn rfc3339_times_parse_with_any_offset() {
        let utc = parse_rfc3339("2024-06-04T21:38:31.5Z").expect("utc");
        let local = parse_rfc3339("2024-06-04T14:38:31.500000000-07:00").expect("offset");
        assert_eq!(utc, local);
        assert_eq!(
            utc.duration_since(UNIX_EPOCH).expect("after").as_millis(),
            1_717_537_111_500
        );
        for bad in [
            "",
            "0001-01-01T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-06-04T14:38:31",
            "2024-06-04T14:38:31.Z",
            "2024-06-04T14:38:31+7",
            "2024-06-04T14:38:31Zjunk",
            "２０２４-06-04T14:38:31Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
