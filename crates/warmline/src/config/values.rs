//! Parsing and printing of the values a configuration is written in: durations,
//! byte sizes, listen addresses and upstream URLs.
//!
//! Validation (`validate`) calls these helpers for every field of a `RawConfig`,
//! and `Config::to_raw` calls the printers to write a configuration back out. The
//! invariant that ties them together: **printing a value and parsing the text
//! again gives the same value**, so a configuration survives the settings round
//! trip (`to_raw`, merge a patch, validate) unchanged.
//!
//! Every parser that knows its field takes the dotted field name and returns a
//! `ConfigError::Invalid` naming it, with a message that says what was expected
//! (`"soon" is not a duration such as "500ms" or "5m": ...`). The others return a
//! bare message that the caller wraps with the field name. Nothing here panics.
//!
//! Bounds: durations at most [`MAX_DURATION`] (30 days), sizes at most [`MAX_SIZE`]
//! (1 TiB), counts at a maximum the caller passes. Durations are bounded because
//! every deadline is computed as "now + a setting"; sizes and counts for the same
//! reason, to keep arithmetic on settings far from overflow.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::{ByteSize, ConfigError};

/// Splits a comma-separated list (`WARMLINE_UPSTREAMS`, `--upstream a,b`): items
/// are trimmed and empty items dropped, so `"a, b,"` is `["a", "b"]`.
pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses the listen address in any of the forms `OLLAMA_HOST` takes:
/// `127.0.0.1:11435`, `[::1]:11435`, a bare address (`0.0.0.0`, `::1`: port
/// 11435), `:8080` (every interface, like Ollama's), `localhost[:port]` and an
/// `http://` URL of any of these (a trailing `/` is tolerated, because people paste
/// URLs). Other host names are refused rather than looked up: a listen address must
/// not depend on what DNS says at the moment of a reload.
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let bare = text.strip_prefix("http://").unwrap_or(text);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    let refused = || {
        format!(
            "{text:?} is not a listen address: write IP:port (127.0.0.1:11435, \
             0.0.0.0:11435, [::1]:11435), an address alone (port {DEFAULT_PORT}), \
             :PORT for every interface, or localhost[:PORT]"
        )
    };
    if bare.is_empty() {
        return Err(refused());
    }
    if let Ok(addr) = bare.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = bare.trim_start_matches('[').trim_end_matches(']').parse() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let (host, port) = match bare.rsplit_once(':') {
        // `[::1]` and `::1` parsed above; a colon here separates host and port.
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| refused())?),
        None => (bare, DEFAULT_PORT),
    };
    match host.to_ascii_lowercase().as_str() {
        "" => Ok(SocketAddr::from(([0, 0, 0, 0], port))),
        "localhost" => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => Err(refused()),
    }
}

/// The port of a listen address written without one: Ollama's plus one.
const DEFAULT_PORT: u16 = 11435;

/// Parses an upstream base URL. A bare `host:port` (the `OLLAMA_HOST` habit) gets
/// `http://`; only plain HTTP is supported, as Ollama itself serves only HTTP.
///
/// The URL must have a host and no query or fragment. A path is allowed (an Ollama
/// behind a reverse proxy under a prefix), and so are credentials, which are masked
/// wherever the URL is shown (see [`redacted`]). The text is trimmed first.
pub(super) fn parse_upstream(text: &str) -> Result<Url, String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{text:?}: only http:// upstreams are supported (Ollama serves plain HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// A URL as it may be shown in logs, errors and health reports: a password in it
/// (`http://user:secret@host`, `redis://:secret@host`) is replaced by `***`, and a
/// trailing slash of an empty path dropped.
///
/// A user name without a password is shown as it is. `Config::unmask` relies on this
/// exact spelling to recognise a masked URL sent back in a settings change.
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    written(&shown)
}

/// A URL as the configuration writes it: `http://host:port` for an empty path
/// (the slash `Url` adds is dropped); any other path as it is, trailing slash
/// included, so that reading it back gives the same URL.
///
/// Dropping the slash is safe because `Url` parses `http://host:port` and
/// `http://host:port/` to the same value.
pub fn written(url: &Url) -> String {
    let text = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        text.strip_suffix('/').unwrap_or(text).to_owned()
    } else {
        text.to_owned()
    }
}

/// The longest duration any setting accepts (30 days). Every deadline Warmline
/// computes is "now + a setting"; bounding the settings keeps that arithmetic far
/// from the end of the clock's range, and nothing useful takes longer.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The largest byte size any setting accepts (1 TiB).
///
/// Far above any useful request or cache size; like [`MAX_DURATION`], it keeps
/// arithmetic on settings far from overflow.
pub const MAX_SIZE: u64 = 1 << 40;

/// A duration setting: `text`, or `default` when unset, parsed as a humantime
/// duration (`"500ms"`, `"5m"`, `"1h 30m"`) and bounded by [`MAX_DURATION`].
/// Zero is allowed (see `nonzero_duration` for fields where it is not). The error
/// names `field` and quotes the text.
pub(super) fn duration(
    field: &str,
    text: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = text.unwrap_or(default);
    let value = humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError::invalid(
            field,
            format!("{text:?} is not a duration such as \"500ms\" or \"5m\": {e}"),
        )
    })?;
    bounded_duration(field, value)
}

/// `value`, or an error naming `field` when it is longer than [`MAX_DURATION`].
fn bounded_duration(field: &str, value: Duration) -> Result<Duration, ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{} is longer than the longest accepted duration, 30 days",
                humantime::format_duration(value)
            ),
        ));
    }
    Ok(value)
}

/// A count setting: `value` (or `default`) when it is at most `max`.
pub(super) fn count<T>(field: &str, value: Option<T>, default: T, max: T) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    let value = value.unwrap_or(default);
    if value > max {
        return Err(ConfigError::invalid(
            field,
            format!("{value} is more than the largest accepted value, {max}"),
        ));
    }
    Ok(value)
}

/// [`duration`] for settings where zero would be meaningless or harmful (a zero
/// timeout would fail every request, a zero interval would spin): zero is an error.
pub(super) fn nonzero_duration(
    field: &str,
    text: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let value = duration(field, text, default)?;
    if value.is_zero() {
        return Err(ConfigError::invalid(field, "must be greater than 0"));
    }
    Ok(value)
}

/// A duration the way the configuration writes them (`"500ms"`, `"5m"`, `"1h 30m"`).
///
/// humantime's own format, so [`duration`] reads it back to the same value.
pub(super) fn format_duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

/// A byte-size setting: `size`, or `default` when unset, in bytes.
///
/// A number is bytes. A string is a whole number followed by an optional unit, with
/// optional spaces between: none or `B` for bytes, `K`/`KB`, `M`/`MB`, `G`/`GB`,
/// `T`/`TB` for powers of 1000, `KiB`, `MiB`, `GiB`, `TiB` for powers of 1024, in
/// any case. Fractions (`"1.5GiB"`) are not accepted. The result is at most
/// [`MAX_SIZE`]; `default` is trusted and not checked.
pub(super) fn size(field: &str, size: Option<&ByteSize>, default: u64) -> Result<u64, ConfigError> {
    let Some(size) = size else {
        return Ok(default);
    };
    let text = match size {
        ByteSize::Bytes(n) => return bounded_size(field, *n),
        ByteSize::Text(text) => text.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => {
            return Err(ConfigError::invalid(
                field,
                format!("{text:?}: unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"),
            ));
        }
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| ConfigError::invalid(field, format!("{text:?} is not a byte size")))?;
    bounded_size(field, bytes)
}

/// `bytes`, or an error naming `field` when it is larger than [`MAX_SIZE`].
fn bounded_size(field: &str, bytes: u64) -> Result<u64, ConfigError> {
    if bytes > MAX_SIZE {
        return Err(ConfigError::invalid(
            field,
            format!("{bytes} bytes is more than the largest accepted size, 1TiB"),
        ));
    }
    Ok(bytes)
}

/// A byte count in the largest binary unit that divides it (`"64MiB"`), or bytes.
///
/// Exact by construction (never rounds), so [`size`] reads it back to the same
/// count. Zero is written as the number `0`.
pub(super) fn format_size(bytes: u64) -> ByteSize {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return ByteSize::Text(format!("{}{unit}", bytes >> shift));
        }
    }
    ByteSize::Bytes(bytes)
}

/// An Ollama `keep_alive`: how long a model stays loaded after its last request.
///
/// Used for `daemon.keep_alive` (the daemon's `OLLAMA_KEEP_ALIVE`) and
/// `warmth.keep_alive` (sent with warm loads and pinned into requests). Ollama
/// itself takes more spellings than this type keeps apart: every negative value is
/// one `Forever`, and a duration is kept to whole seconds when sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Until unloaded (Ollama's negative values).
    Forever,
    /// For this long (zero: unload as soon as idle).
    For(Duration),
}

impl KeepAlive {
    /// Parses the forms Ollama accepts: `-1` (or any negative value), a bare number
    /// of seconds, or a duration such as `"30m"`.
    ///
    /// The text is trimmed. Anything starting with `-` is `Forever`, without looking
    /// further (so `"-abc"` is accepted as for ever). A bare number must be a whole,
    /// non-negative number of seconds (`"1.5"` is an error). Otherwise humantime's
    /// duration syntax applies. No upper bound here; the config's `keep_alive`
    /// helper applies [`MAX_DURATION`].
    pub fn parse(text: &str) -> Result<KeepAlive, String> {
        let text = text.trim();
        if text.starts_with('-') {
            return Ok(KeepAlive::Forever);
        }
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(KeepAlive::For(Duration::from_secs(seconds)));
        }
        humantime::parse_duration(text)
            .map(KeepAlive::For)
            .map_err(|e| {
                format!(
                    "{text:?} is not -1, a number of seconds or a duration such as \"30m\": {e}"
                )
            })
    }

    /// As JSON for a request body: seconds, `-1` for ever. A number is the one form
    /// every Ollama version reads the same way.
    ///
    /// Whole seconds, truncated: a keep-alive under one second is sent as `0`, which
    /// tells Ollama to unload the model as soon as the request is done.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            KeepAlive::Forever => serde_json::Value::from(-1),
            KeepAlive::For(d) => serde_json::Value::from(d.as_secs()),
        }
    }

    /// As the value of `OLLAMA_KEEP_ALIVE` (which takes bare seconds, or -1).
    ///
    /// Whole seconds, truncated, like [`KeepAlive::to_json`].
    pub fn to_env(self) -> String {
        match self {
            KeepAlive::Forever => "-1".to_owned(),
            KeepAlive::For(d) => d.as_secs().to_string(),
        }
    }

    /// As the configuration writes it: `"-1"` for ever, else a humantime duration
    /// (`"30m"`), which [`KeepAlive::parse`] reads back to the same value.
    pub fn to_config(self) -> String {
        match self {
            KeepAlive::Forever => "-1".to_owned(),
            KeepAlive::For(d) => format_duration(d),
        }
    }
}

/// A `keep_alive` setting: `text`, or `default` when unset, parsed by
/// [`KeepAlive::parse`]; a finite duration is bounded by [`MAX_DURATION`]. The error
/// names `field`.
pub(super) fn keep_alive(
    field: &str,
    text: Option<&str>,
    default: &str,
) -> Result<KeepAlive, ConfigError> {
    match KeepAlive::parse(text.unwrap_or(default)).map_err(|m| ConfigError::invalid(field, m))? {
        KeepAlive::For(d) => bounded_duration(field, d).map(KeepAlive::For),
        forever => Ok(forever),
    }
}
