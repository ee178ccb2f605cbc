//! What Warmline learns about how each model is used, and what it expects next.
//!
//! Per model, from the requests it serves (seen as the per-model request counter
//! moving, polled off the request path): when it was first and last used, how
//! many sessions began in each hour of the week (local time; a session begins
//! after [`SESSION_GAP`] without a request), how long the idle gaps between uses
//! were, how long its loads took and how much memory it took when loaded. All of
//! it is a few hundred numbers per model, no prompt and no client, kept in the
//! state file across restarts. Old evidence fades: counts lose a fifth of their
//! weight every week, so a changed habit wins within a few weeks.
//!
//! [`ModelUsage::outlook`] turns that into the probability that the model is
//! used within the next horizon, with the reason that weighs most:
//!
//! - **Coming back** after an idle gap: among the gaps seen so far (plus a prior
//!   of how people at a desk come back: mostly within the hour, again the next
//!   morning), the share of those longer than the present idle time that end
//!   within the horizon. A model used 5 minutes ago by someone who pauses up to
//!   an hour is likely back; the same model idle since last evening is not,
//!   until morning.
//! - **The week's rhythm**: sessions that began in the hours the horizon covers,
//!   per week seen; before a full week is seen, the same hours of every weekday
//!   (or weekend day) seen so far stand in, so Tuesday 09:00 is expected after one
//!   Monday at 09:00, and a model used on one Friday waits for the next Friday.
//!
//! The clock is injected ([`LearningClock`]): wall time, or for a replayed trace
//! wall time run faster (`WARMLINE_TRACE_CLOCK`), so a week of habits replays in
//! minutes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Hours in a week: the buckets of [`ModelUsage::week`], Monday 00:00 first.
pub const HOURS_PER_WEEK: usize = 168;
/// A request after this long without one for the same model begins a session.
pub const SESSION_GAP: u64 = 10 * 60;
/// Upper bounds (seconds) of the idle-gap bins, about √2 apart from a minute to a
/// day; the last bin is everything above.
const GAP_BOUNDS: [u64; 21] = [
    60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800, 2400, 3600, 4800, 7200, 9600, 14_400, 19_200,
    28_800, 38_400, 57_600, 86_400,
];
/// Gap bins: one per bound, and one above the last.
pub const GAP_BINS: usize = GAP_BOUNDS.len() + 1;
/// How a person at a desk comes back, as pseudo-counts of gaps per bin: mostly
/// within the hour, sometimes after a few hours, again the next morning. Weighs
/// as about three observed gaps, so a person's own habit soon outweighs it.
const GAP_PRIOR: [f32; GAP_BINS] = [
    0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15, // up to an hour
    0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.1, // up to 10.7 hours
    0.3, 0.2, 0.3, // overnight, a day, longer
];
/// What a week's evidence keeps of its weight a week later.
const WEEKLY_DECAY: f32 = 0.8;
const WEEK: u64 = 7 * 86_400;
const DAY: u64 = 86_400;

/// The clock learning runs on: seconds since the Unix epoch, and the local time
/// zone's offset at a given instant.
#[derive(Debug, Clone)]
pub struct LearningClock {
    /// The wall time (seconds) at `started`.
    origin: f64,
    started: Instant,
    /// Learning seconds per wall second (1 but for replayed traces).
    scale: f64,
    /// A fixed offset from UTC, seconds (replayed traces), else the system's.
    offset: Option<i32>,
}

impl LearningClock {
    /// Wall time, or what `WARMLINE_TRACE_CLOCK` says: `START:SCALE[:OFFSET]`, the
    /// learning time (Unix seconds) at start-up, how many times faster than wall
    /// time it runs, and a fixed UTC offset in seconds — for `warmline bench
    /// --trace` replays; anything unparsable is wall time.
    pub fn from_env() -> LearningClock {
        std::env::var("WARMLINE_TRACE_CLOCK")
            .ok()
            .and_then(|v| LearningClock::parse(&v))
            .unwrap_or_else(LearningClock::wall)
    }

    /// The wall clock in the system's time zone.
    pub fn wall() -> LearningClock {
        let origin = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        LearningClock {
            origin,
            started: Instant::now(),
            scale: 1.0,
            offset: None,
        }
    }

    fn parse(text: &str) -> Option<LearningClock> {
        let mut parts = text.trim().split(':');
        let origin: f64 = parts.next()?.parse().ok()?;
        let scale: f64 = parts.next()?.parse().ok()?;
        let offset = match parts.next() {
            Some(o) => Some(o.parse::<i32>().ok()?),
            None => None,
        };
        (origin.is_finite()
            && origin >= 0.0
            && scale.is_finite()
            && (1.0..=100_000.0).contains(&scale))
        .then_some(LearningClock {
            origin,
            started: Instant::now(),
            scale,
            offset,
        })
    }

    /// Learning seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        (self.origin + self.started.elapsed().as_secs_f64() * self.scale) as u64
    }

    /// How many learning seconds pass per wall second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// A learning-time span as wall time (for timers).
    pub fn wall_span(&self, learning: Duration) -> Duration {
        learning.div_f64(self.scale)
    }

    /// Seconds east of UTC at `at` (learning time).
    pub fn utc_offset(&self, at: u64) -> i32 {
        match self.offset {
            Some(offset) => offset,
            None => local_offset(at),
        }
    }
}

/// The system time zone's offset from UTC at `at`, in seconds (0 if unknown).
fn local_offset(at: u64) -> i32 {
    use chrono::{Offset as _, TimeZone as _};
    let Ok(secs) = i64::try_from(at) else {
        return 0;
    };
    match chrono::Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.offset().fix().local_minus_utc()
        }
        chrono::LocalResult::None => 0,
    }
}

/// The local hour of the week (Monday 00:00 = 0) of `at` with `offset`.
pub fn hour_of_week(at: u64, offset: i32) -> usize {
    let local = at as i64 + i64::from(offset);
    // 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday = 0).
    let days = local.div_euclid(DAY as i64);
    let weekday = (days + 3).rem_euclid(7) as usize;
    let hour = (local.rem_euclid(DAY as i64) / 3600) as usize;
    weekday * 24 + hour
}

/// One model's learned usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// When it was first and last used (learning-clock Unix seconds).
    pub first_use: u64,
    pub last_use: u64,
    /// Requests seen.
    pub uses: u64,
    /// Sessions begun per local hour of the week, faded weekly.
    pub week: Vec<f32>,
    /// Idle gaps between uses per bin (see [`GAP_BOUNDS`]), faded weekly.
    pub gaps: Vec<f32>,
    /// Seconds a load took, smoothed; `None` until one was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_secs: Option<f32>,
    /// Bytes it took when loaded, as its host last reported (0: not seen).
    #[serde(default)]
    pub memory: u64,
    /// When the weekly fading was last applied.
    pub faded_at: u64,
}

impl ModelUsage {
    /// Nothing seen yet, as of `now`.
    pub fn new(now: u64) -> ModelUsage {
        ModelUsage {
            first_use: now,
            last_use: 0,
            uses: 0,
            week: vec![0.0; HOURS_PER_WEEK],
            gaps: vec![0.0; GAP_BINS],
            load_secs: None,
            memory: 0,
            faded_at: now,
        }
    }

    /// Whether it came from a file that has the right shape (a damaged or
    /// foreign one is dropped rather than trusted).
    pub fn is_sound(&self) -> bool {
        self.week.len() == HOURS_PER_WEEK
            && self.gaps.len() == GAP_BINS
            && self
                .week
                .iter()
                .chain(&self.gaps)
                .all(|v| v.is_finite() && *v >= 0.0)
            && self.load_secs.is_none_or(|s| s.is_finite() && s >= 0.0)
            && self.last_use >= self.first_use.min(self.last_use)
    }

    /// `requests` requests were seen at `now` (local offset `offset`).
    pub fn used(&mut self, now: u64, requests: u64, offset: i32) {
        self.fade(now);
        if self.uses == 0 || self.last_use == 0 {
            self.first_use = self.first_use.min(now);
            self.week[hour_of_week(now, offset)] += 1.0;
        } else {
            let gap = now.saturating_sub(self.last_use);
            if gap >= 1 {
                self.gaps[gap_bin(gap)] += 1.0;
            }
            if gap >= SESSION_GAP {
                self.week[hour_of_week(now, offset)] += 1.0;
            }
        }
        self.last_use = self.last_use.max(now);
        self.uses = self.uses.saturating_add(requests);
    }

    /// A load of `took` was seen (a cold start, or a load Warmline made).
    pub fn loaded(&mut self, took: Duration) {
        let secs = took.as_secs_f32().min(3600.0);
        self.load_secs = Some(match self.load_secs {
            None => secs,
            Some(old) => old * 0.7 + secs * 0.3,
        });
    }

    /// Fades the counts by [`WEEKLY_DECAY`] per week since they last were.
    fn fade(&mut self, now: u64) {
        let weeks = now.saturating_sub(self.faded_at) / WEEK;
        if weeks == 0 {
            return;
        }
        let factor = WEEKLY_DECAY.powi(weeks.min(100) as i32);
        self.week
            .iter_mut()
            .chain(self.gaps.iter_mut())
            .for_each(|v| *v *= factor);
        self.faded_at += weeks * WEEK;
    }

    /// The probability of a use within `horizon` from `now`, and why.
    pub fn outlook(&self, now: u64, horizon: u64, offset: i32) -> Outlook {
        if self.uses == 0 || self.last_use == 0 {
            return Outlook::default();
        }
        let idle = now.saturating_sub(self.last_use);
        let back = self.coming_back(idle, horizon);
        let (rhythm, why) = self.rhythm(now, horizon, offset);
        if back >= rhythm {
            Outlook {
                p: back,
                reason: Reason::Recent { idle },
            }
        } else {
            Outlook {
                p: rhythm,
                reason: why,
            }
        }
    }

    /// P(the idle gap ends within `horizon` | it has lasted `idle`).
    fn coming_back(&self, idle: u64, horizon: u64) -> f32 {
        let counts: Vec<f32> = self
            .gaps
            .iter()
            .zip(GAP_PRIOR)
            .map(|(c, p)| c + p)
            .collect();
        let beyond = |t: u64| -> f32 {
            counts
                .iter()
                .enumerate()
                .map(|(i, c)| c * share_above(i, t))
                .sum()
        };
        let surviving = beyond(idle);
        if surviving <= f32::EPSILON {
            return 0.0;
        }
        ((surviving - beyond(idle.saturating_add(horizon))) / surviving).clamp(0.0, 1.0)
    }

    /// P(a session begins within `horizon`) from the week's rhythm, with the
    /// hour that makes it so. Each hour the horizon reaches counts whole (a session
    /// "around 09:00" may begin at 09:00 sharp), except the hour of the last use,
    /// whose session has begun already.
    fn rhythm(&self, now: u64, horizon: u64, offset: i32) -> (f32, Reason) {
        let seen = now.saturating_sub(self.first_use).max(DAY);
        let weeks = (seen as f32 / WEEK as f32).max(1.0);
        let full_week = seen >= WEEK;
        let mut best: Option<(usize, f32)> = None;
        let end = now.saturating_add(horizon);
        let mut hour_start = now / 3600 * 3600;
        while hour_start < end {
            if hour_start != self.last_use / 3600 * 3600 {
                let hour = hour_of_week(hour_start, offset);
                let rate = if full_week {
                    self.week[hour] / weeks
                } else {
                    self.same_hour_on_like_days(hour, seen)
                };
                if best.is_none_or(|(_, r)| rate > r) {
                    best = Some((hour, rate));
                }
            }
            hour_start += 3600;
        }
        match best {
            Some((hour, rate)) if rate > 0.0 => (
                1.0 - (-rate).exp(),
                Reason::Rhythm {
                    weekday: (hour / 24) as u8,
                    hour: (hour % 24) as u8,
                    every_week: full_week,
                },
            ),
            _ => (0.0, Reason::None),
        }
    }

    /// Before a full week is seen: sessions at this hour on days of the same kind
    /// (weekdays, or weekend days), per such day seen.
    fn same_hour_on_like_days(&self, hour: usize, seen: u64) -> f32 {
        let weekend = |day: usize| day >= 5;
        let (day, h) = (hour / 24, hour % 24);
        let sessions: f32 = (0..7)
            .filter(|d| weekend(*d) == weekend(day))
            .map(|d| self.week[d * 24 + h])
            .sum();
        let days = (seen as f32 / DAY as f32).max(1.0);
        let like = if weekend(day) { 2.0 / 7.0 } else { 5.0 / 7.0 };
        sessions / (days * like).max(1.0)
    }
}

/// The bin of a gap of `secs`.
fn gap_bin(secs: u64) -> usize {
    GAP_BOUNDS
        .iter()
        .position(|b| secs < *b)
        .unwrap_or(GAP_BOUNDS.len())
}

/// The share of bin `i` above `t` seconds, gaps spread evenly within a bin (the
/// last bin, open-ended, as if it ended at twice its lower bound).
fn share_above(i: usize, t: u64) -> f32 {
    let lo = if i == 0 { 0 } else { GAP_BOUNDS[i - 1] };
    let hi = GAP_BOUNDS
        .get(i)
        .copied()
        .unwrap_or(2 * GAP_BOUNDS[GAP_BOUNDS.len() - 1]);
    if t <= lo {
        1.0
    } else if t >= hi {
        0.0
    } else {
        (hi - t) as f32 / (hi - lo) as f32
    }
}

/// What Warmline expects of a model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outlook {
    /// The probability of a use within the horizon.
    pub p: f32,
    pub reason: Reason,
}

/// Why a use is expected.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Reason {
    /// Nothing suggests one.
    #[default]
    None,
    /// It was used `idle` seconds ago, and gaps this long usually end soon.
    Recent { idle: u64 },
    /// Sessions begin around this local hour of this weekday (Monday = 0),
    /// every week, or (before a full week is seen) on days like it.
    Rhythm {
        weekday: u8,
        hour: u8,
        every_week: bool,
    },
}

impl Reason {
    /// The reason in a few words, for the app and `/warmline/models`.
    pub fn describe(&self) -> Option<String> {
        const DAYS: [&str; 7] = [
            "Mondays",
            "Tuesdays",
            "Wednesdays",
            "Thursdays",
            "Fridays",
            "Saturdays",
            "Sundays",
        ];
        match *self {
            Reason::None => None,
            Reason::Recent { idle } if idle < 60 => Some("used just now".to_owned()),
            Reason::Recent { idle } => Some(format!("used {} ago", ago(idle))),
            Reason::Rhythm {
                weekday,
                hour,
                every_week,
            } => {
                let days = if every_week {
                    DAYS[usize::from(weekday % 7)]
                } else if weekday >= 5 {
                    "weekends"
                } else {
                    "weekdays"
                };
                Some(format!(
                    "used {days} {hour:02}:00–{:02}:00",
                    (u16::from(hour) + 1) % 24
                ))
            }
        }
    }
}

/// `5 minutes`, `2 hours`, `40 seconds`.
fn ago(secs: u64) -> String {
    match secs {
        60..120 => "1 minute".to_owned(),
        120..3600 => format!("{} minutes", secs / 60),
        3600..7200 => "1 hour".to_owned(),
        7200..172_800 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-12-07 00:00 UTC.
    const MONDAY: u64 = 1_796_601_600;
    const H: u64 = 3600;

    #[test]
    fn hours_of_the_week_start_on_monday_in_local_time() {
        assert_eq!(hour_of_week(MONDAY, 0), 0);
        assert_eq!(hour_of_week(MONDAY + 9 * H, 0), 9);
        assert_eq!(hour_of_week(MONDAY + 4 * DAY + 9 * H, 0), 4 * 24 + 9);
        // 23:30 UTC Sunday is Monday 00:30 an hour east.
        assert_eq!(hour_of_week(MONDAY - 1800, 3600), 0);
        assert_eq!(hour_of_week(MONDAY - 1800, 0), 167);
    }

    #[test]
    fn a_model_just_used_is_expected_back_and_one_idle_since_last_night_is_not() {
        let mut usage = ModelUsage::new(MONDAY);
        usage.used(MONDAY + 9 * H, 1, 0);
        let soon = usage.outlook(MONDAY + 9 * H + 300, 30 * 60, 0);
        assert!(soon.p > 0.3, "{soon:?}");
        assert_eq!(soon.reason, Reason::Recent { idle: 300 });
        assert_eq!(
            soon.reason.describe().as_deref(),
            Some("used 5 minutes ago")
        );
        // A person who paused up to 40 minutes all day, then went home at 18:00.
        let mut at = MONDAY + 9 * H;
        while at < MONDAY + 18 * H {
            at += 40 * 60;
            usage.used(at, 1, 0);
        }
        let evening = usage.outlook(at + 3 * H, 30 * 60, 0);
        assert!(evening.p < 0.05, "{evening:?}");
        let mid_pause = usage.outlook(at + 20 * 60, 30 * 60, 0);
        assert!(mid_pause.p > 0.3, "{mid_pause:?}");
    }

    #[test]
    fn tuesday_morning_is_expected_after_one_monday_and_fridays_after_one_friday() {
        let mut daily = ModelUsage::new(MONDAY);
        daily.used(MONDAY + 9 * H, 1, 0);
        daily.used(MONDAY + 9 * H + 300, 1, 0);
        daily.used(MONDAY + 17 * H, 1, 0);
        let tuesday = daily.outlook(MONDAY + DAY + 8 * H + 40 * 60, 30 * 60, 0);
        assert!(tuesday.p > 0.5, "{tuesday:?}");
        assert_eq!(
            tuesday.reason.describe().as_deref(),
            Some("used weekdays 09:00–10:00")
        );
        // Not on Saturday: weekends are their own kind of day.
        let saturday = daily.outlook(MONDAY + 5 * DAY + 8 * H + 40 * 60, 30 * 60, 0);
        assert!(saturday.p < 0.1, "{saturday:?}");

        let friday = MONDAY + 4 * DAY;
        let mut weekly = ModelUsage::new(friday);
        weekly.used(friday + 10 * H, 1, 0);
        // The next Monday at 09:40: one Friday is not enough to load it ahead
        // (the planner loads ahead from 0.5).
        let monday = weekly.outlook(MONDAY + WEEK + 9 * H + 40 * 60, 30 * 60, 0);
        assert!(monday.p < 0.5, "{monday:?}");
        // The next Friday at 09:40, with a full week seen: expected.
        let next = weekly.outlook(friday + WEEK + 9 * H + 40 * 60, 30 * 60, 0);
        assert!(next.p > 0.5, "{next:?}");
        assert_eq!(
            next.reason.describe().as_deref(),
            Some("used Fridays 10:00–11:00")
        );
    }

    #[test]
    fn evidence_fades_week_by_week() {
        let mut usage = ModelUsage::new(MONDAY);
        usage.used(MONDAY + 9 * H, 1, 0);
        let before = usage.week[9];
        usage.used(MONDAY + 3 * WEEK + 10 * H, 1, 0);
        assert!((usage.week[9] - before * WEEKLY_DECAY.powi(3)).abs() < 1e-6);
        assert_eq!(usage.week[10], 1.0);
    }

    #[test]
    fn loads_are_smoothed_and_files_are_checked() {
        let mut usage = ModelUsage::new(MONDAY);
        usage.loaded(Duration::from_secs(10));
        usage.loaded(Duration::from_secs(20));
        assert_eq!(usage.load_secs, Some(13.0));
        assert!(usage.is_sound());
        usage.week.pop();
        assert!(!usage.is_sound());
        let mut usage = ModelUsage::new(MONDAY);
        usage.gaps[0] = f32::NAN;
        assert!(!usage.is_sound());
    }

    #[test]
    fn a_trace_clock_runs_faster_from_its_start() {
        let clock = LearningClock::parse("1796601600:120:3600").expect("valid");
        assert!(clock.now() >= MONDAY && clock.now() < MONDAY + 60);
        assert_eq!(clock.utc_offset(MONDAY), 3600);
        assert_eq!(
            clock.wall_span(Duration::from_secs(120)),
            Duration::from_secs(1)
        );
        for bad in ["", "x:1", "1:0", "1:1e9", "-5:2", "1:2:x"] {
            assert!(LearningClock::parse(bad).is_none(), "{bad}");
        }
    }
}
