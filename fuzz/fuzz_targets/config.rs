//! Settings as a hostile client writes them: a TOML file, then a JSON merge patch
//! (what `PUT /warmline/settings` takes), then validation. Nothing panics, and a
//! configuration that validates survives the round trip through its written-out
//! form unchanged (what a later settings change starts from).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::config::RawConfig;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // `TOML \0 PATCH`: either part may be empty.
    let (toml, patch) = text.split_once('\0').unwrap_or((&text, ""));
    let Ok(raw) = RawConfig::from_toml(toml) else {
        return;
    };
    let raw = match serde_json::from_str::<serde_json::Value>(patch) {
        Ok(patch) => match raw.patched(&patch) {
            Ok(raw) => raw,
            Err(_) => return,
        },
        Err(_) => raw,
    };
    let Ok(config) = raw.validate() else {
        return;
    };
    let again = config
        .to_raw()
        .validate()
        .expect("a valid configuration's written form is valid");
    assert_eq!(config, again, "the written form gives the same configuration");
    let _ = config.to_raw_redacted();
});
