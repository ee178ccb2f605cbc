//! `keep_alive`: how long a model stays loaded after its last request.
//!
//! Two parsers with deliberately different rules, as in Ollama (§3.2, §4 of
//! the reference):
//!
//! * the request field ([`RawKeepAlive`] → [`parse_request`]): a JSON number
//!   is seconds (fractions allowed, negative ⇒ forever); a JSON string is a Go
//!   duration (`"10m"`, `"-1m"` ⇒ forever, `"0"` accepted) and a unit-less
//!   `"300"` is rejected with Go's `time: missing unit in duration "300"`;
//!   any other JSON type is rejected with `Unsupported type: '<go type>'`;
//! * the `OLLAMA_KEEP_ALIVE` env var ([`parse_env`]): a duration string *or* a
//!   bare integer of seconds, negative ⇒ forever, unparsable ⇒ 5m.
//!
//! `null`/absent means "not specified", which matters because keep-alive is
//! sticky (§3.3): the scheduler only replaces a loaded model's value when a
//! request carries one.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// How long an idle model stays loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeepAlive {
    /// Unload this long after the last request finishes (`0` = immediately).
    For(Duration),
    /// Never unload because of idleness.
    Forever,
}

impl KeepAlive {
    /// Ollama's default when neither the request nor the env sets one.
    pub const DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(300));

    /// The duration, or Go's `math.MaxInt64` nanoseconds for forever.
    pub fn as_duration(self) -> Duration {
        match self {
            KeepAlive::For(d) => d,
            KeepAlive::Forever => Duration::from_nanos(i64::MAX as u64),
        }
    }

    /// As Go's `time.Duration.String()` prints it, which is how Ollama shows
    /// `OLLAMA_KEEP_ALIVE` in its `server config` log line (`5m0s`; for ever is
    /// `2562047h47m16.854775807s`).
    pub fn go_string(self) -> String {
        go_duration_string(self.as_duration())
    }

    /// `true` for the explicit-unload value `0`.
    pub fn is_zero(self) -> bool {
        self == KeepAlive::For(Duration::ZERO)
    }

    fn from_go_nanos(nanos: i128) -> KeepAlive {
        if nanos < 0 || nanos >= i128::from(i64::MAX) {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::from_nanos(nanos as u64))
        }
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive::DEFAULT
    }
}

/// The `keep_alive` request field exactly as it arrived, before validation.
///
/// Deserialising never fails, so a bad value can be reported with Ollama's
/// own wording instead of serde's.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum RawKeepAlive {
    #[default]
    Absent,
    Number(f64),
    Text(String),
    /// Any other JSON type, carrying Go's `reflect.TypeOf` name for it.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawKeepAlive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawKeepAlive;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a keep_alive value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Absent)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Absent)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Other("bool"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawKeepAlive::Text(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(RawKeepAlive::Other("[]interface {}"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(RawKeepAlive::Other("map[string]interface {}"))
    }
}

/// Validates a request's `keep_alive`; `Ok(None)` when it was not given.
/// The error text is what Ollama returns with status 400.
pub(crate) fn parse_request(raw: &RawKeepAlive) -> Result<Option<KeepAlive>, String> {
    match raw {
        RawKeepAlive::Absent => Ok(None),
        RawKeepAlive::Number(secs) if *secs < 0.0 => Ok(Some(KeepAlive::Forever)),
        RawKeepAlive::Number(secs) => {
            // Go: time.Duration(t * float64(time.Second)), saturating.
            let nanos = secs * 1e9;
            Ok(Some(if nanos >= i64::MAX as f64 {
                KeepAlive::Forever
            } else {
                KeepAlive::For(Duration::from_nanos(nanos as u64))
            }))
        }
        RawKeepAlive::Text(s) => parse_go_duration(s).map(|n| Some(KeepAlive::from_go_nanos(n))),
        RawKeepAlive::Other(go_type) => Err(format!("Unsupported type: '{go_type}'")),
    }
}

/// `OLLAMA_KEEP_ALIVE`: duration string or integer seconds; negative ⇒
/// forever; anything unparsable silently falls back to 5m.
pub fn parse_env(value: &str) -> KeepAlive {
    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Ok(nanos) = parse_go_duration(value) {
        return KeepAlive::from_go_nanos(nanos);
    }
    match value.parse::<i64>() {
        Ok(secs) if secs < 0 => KeepAlive::Forever,
        Ok(secs) => KeepAlive::from_go_nanos(i128::from(secs) * 1_000_000_000),
        Err(_) => KeepAlive::DEFAULT,
    }
}

/// Go's `time.ParseDuration`, returning signed nanoseconds or Go's error text.
pub(crate) fn parse_go_duration(orig: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let mut s = orig;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        // The number: digits, optional fraction.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or '.'.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{orig}\""
                ));
            }
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let digits = frac_part.len().min(30) as u32;
            let frac: i128 = frac_part[..digits as usize]
                .parse()
                .map_err(|_| invalid())?;
            value += frac * scale / 10i128.pow(digits);
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawKeepAlive {
        serde_json::from_str(json).unwrap_or(RawKeepAlive::Other("test: bad json"))
    }

    #[test]
    fn numbers_are_seconds_and_negative_is_forever() {
        assert_eq!(
            parse_request(&raw("300")),
            Ok(Some(KeepAlive::For(Duration::from_secs(300))))
        );
        assert_eq!(
            parse_request(&raw("1.5")),
            Ok(Some(KeepAlive::For(Duration::from_millis(1500))))
        );
        assert_eq!(parse_request(&raw("-1")), Ok(Some(KeepAlive::Forever)));
        assert_eq!(
            parse_request(&raw("0")),
            Ok(Some(KeepAlive::For(Duration::ZERO)))
        );
    }

    #[test]
    fn strings_are_go_durations() {
        assert_eq!(
            parse_request(&raw("\"10m\"")),
            Ok(Some(KeepAlive::For(Duration::from_secs(600))))
        );
        assert_eq!(
            parse_request(&raw("\"1h30m\"")),
            Ok(Some(KeepAlive::For(Duration::from_secs(5400))))
        );
        assert_eq!(
            parse_request(&raw("\"500ms\"")),
            Ok(Some(KeepAlive::For(Duration::from_millis(500))))
        );
        assert_eq!(parse_request(&raw("\"-1m\"")), Ok(Some(KeepAlive::Forever)));
        assert_eq!(
            parse_request(&raw("\"0\"")),
            Ok(Some(KeepAlive::For(Duration::ZERO)))
        );
    }

    #[test]
    fn unitless_string_is_rejected_with_go_text() {
        assert_eq!(
            parse_request(&raw("\"300\"")),
            Err("time: missing unit in duration \"300\"".to_owned())
        );
        assert_eq!(
            parse_request(&raw("\"5x\"")),
            Err("time: unknown unit \"x\" in duration \"5x\"".to_owned())
        );
        assert_eq!(
            parse_request(&raw("\"\"")),
            Err("time: invalid duration \"\"".to_owned())
        );
        assert_eq!(
            parse_request(&raw("\"abc\"")),
            Err("time: invalid duration \"abc\"".to_owned())
        );
    }

    #[test]
    fn null_means_unspecified_and_other_types_are_rejected() {
        assert_eq!(parse_request(&raw("null")), Ok(None));
        assert_eq!(
            parse_request(&raw("true")),
            Err("Unsupported type: 'bool'".to_owned())
        );
        assert_eq!(
            parse_request(&raw("[1]")),
            Err("Unsupported type: '[]interface {}'".to_owned())
        );
    }

    #[test]
    fn env_accepts_bare_integers() {
        assert_eq!(parse_env("300"), KeepAlive::For(Duration::from_secs(300)));
        assert_eq!(parse_env("10m"), KeepAlive::For(Duration::from_secs(600)));
        assert_eq!(parse_env("-1"), KeepAlive::Forever);
        assert_eq!(parse_env("0"), KeepAlive::For(Duration::ZERO));
        assert_eq!(parse_env("soon"), KeepAlive::DEFAULT);
        assert_eq!(
            parse_env("\"24h\""),
            KeepAlive::For(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn fractions_and_units() {
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1µs"), Ok(1_000));
        assert_eq!(parse_go_duration("+2s"), Ok(2_000_000_000));
    }
}

/// Go's `time.Duration.String()`.
pub fn go_duration_string(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let fraction = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.ilog10() as usize;
            let mut frac = format!("{rest:0digits$}");
            while frac.ends_with('0') {
                frac.pop();
            }
            format!("{whole}.{frac}")
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let seconds = nanos / 1_000_000_000;
    let (hours, minutes) = (seconds / 3600, (seconds / 60) % 60);
    let secs = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

#[cfg(test)]
mod go_string_tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let s = |secs: u64| go_duration_string(Duration::from_secs(secs));
        assert_eq!(s(300), "5m0s");
        assert_eq!(s(1800), "30m0s");
        assert_eq!(s(5400), "1h30m0s");
        assert_eq!(s(90), "1m30s");
        assert_eq!(s(0), "0s");
        assert_eq!(go_duration_string(Duration::from_millis(500)), "500ms");
        assert_eq!(KeepAlive::Forever.go_string(), "2562047h47m16.854775807s");
    }
}
