//! Timing and fault knobs: how fast the fake models are and how often they fail.
//!
//! Knobs are read on every request and changed rarely (CLI flags at start,
//! `PUT /_sim/knobs` or [`SimHandle::set_knobs`](crate::SimHandle::set_knobs)
//! at run time), so they live in an [`ArcSwap`] snapshot: a request loads the
//! current `Arc<Knobs>` once and keeps it for its whole life, which means a
//! change never tears a stream halfway through.
//!
//! On the wire durations are integer milliseconds with an `_ms` suffix, so the
//! JSON can be written by hand with curl.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// Run-time tunable behaviour of the fake models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Time to "load" a model that is not resident (paid once per load).
    #[serde(rename = "load_delay_ms", with = "millis")]
    pub load_delay: Duration,
    /// Time between two generated tokens.
    #[serde(rename = "token_delay_ms", with = "millis")]
    pub token_delay: Duration,
    /// Prompt-processing time before the first token.
    #[serde(rename = "prefill_delay_ms", with = "millis")]
    pub prefill_delay: Duration,
    /// Tokens in a reply (bounded by `num_predict`/`max_tokens`).
    pub tokens_per_reply: u32,
    /// Fraction (0..=1) of generation requests answered 500 with a runner error.
    pub error_rate: f64,
    /// Fraction (0..=1) of streams whose connection is cut mid-stream.
    pub abort_rate: f64,
    /// Fraction (0..=1) of generation requests whose connection is closed
    /// before any response byte, as by a daemon that crashed or is overloaded
    /// (clients see the connection reset or closed without an answer).
    #[serde(default)]
    pub drop_rate: f64,
    /// Delay before the response headers of every API request.
    #[serde(rename = "first_byte_stall_ms", with = "millis")]
    pub first_byte_stall: Duration,
}

impl Default for Knobs {
    /// Fast by default: no delays, eight tokens, no faults.
    fn default() -> Self {
        Self {
            load_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            prefill_delay: Duration::ZERO,
            tokens_per_reply: 8,
            error_rate: 0.0,
            abort_rate: 0.0,
            drop_rate: 0.0,
            first_byte_stall: Duration::ZERO,
        }
    }
}

impl Knobs {
    /// Checks the rates; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("abort_rate", self.abort_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }

    /// Applies a partial JSON object (as sent to `PUT /_sim/knobs`) on top of `self`.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Knobs, String> {
        let serde_json::Value::Object(patch) = patch else {
            return Err("knobs must be a JSON object".to_owned());
        };
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let serde_json::Value::Object(map) = &mut current {
            for (k, v) in patch {
                map.insert(k.clone(), v.clone());
            }
        }
        let knobs: Knobs = serde_json::from_value(current).map_err(|e| e.to_string())?;
        knobs.validate()?;
        Ok(knobs)
    }
}

/// The live knob snapshot shared by all requests.
#[derive(Debug)]
pub(crate) struct KnobStore(ArcSwap<Knobs>);

impl KnobStore {
    pub(crate) fn new(knobs: Knobs) -> Self {
        Self(ArcSwap::from_pointee(knobs))
    }
    pub(crate) fn load(&self) -> Arc<Knobs> {
        self.0.load_full()
    }
    pub(crate) fn store(&self, knobs: Knobs) {
        self.0.store(Arc::new(knobs));
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        if !ms.is_finite() || ms < 0.0 {
            return Err(serde::de::Error::custom("milliseconds must be >= 0"));
        }
        Ok(Duration::from_secs_f64(ms / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_uses_millisecond_names() {
        let json = serde_json::to_value(Knobs::default()).unwrap_or_default();
        assert_eq!(
            json,
            json!({"load_delay_ms":0,"token_delay_ms":0,"prefill_delay_ms":0,
                   "tokens_per_reply":8,"error_rate":0.0,"abort_rate":0.0,"drop_rate":0.0,
                   "first_byte_stall_ms":0})
        );
    }

    #[test]
    fn partial_patch_keeps_other_fields() {
        let base = Knobs {
            tokens_per_reply: 3,
            ..Knobs::default()
        };
        let merged = base
            .merged(&json!({"token_delay_ms": 20}))
            .unwrap_or_default();
        assert_eq!(merged.token_delay, Duration::from_millis(20));
        assert_eq!(merged.tokens_per_reply, 3);
    }

    #[test]
    fn bad_patches_are_refused() {
        let base = Knobs::default();
        assert!(base.merged(&json!({"error_rate": 2})).is_err());
        assert!(base.merged(&json!({"token_delay": 5})).is_err());
        assert!(base.merged(&json!([1])).is_err());
    }
}
