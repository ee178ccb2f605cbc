//! Deadlines computed from settings: "now + a setting" that cannot overflow.
//!
//! Every duration setting is bounded (30 days, see `config`), so plain addition
//! would do today; these keep a future setting, or a sum of two, from ever
//! turning a deadline into a panic (`Instant + Duration` panics on overflow).

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_duration_gives_a_deadline_not_a_panic() {
        let far = after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(364 * 24 * 3600));
        assert!(after(Duration::from_millis(5)) <= Instant::now() + Duration::from_millis(5));
    }
}
