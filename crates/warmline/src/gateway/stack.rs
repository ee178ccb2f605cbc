//! [`Stack`]: everything a request needs that a configuration decides, built from
//! one [`Config`] and swapped in whole.
//!
//! Each request takes the current stack once, at the outermost layer, and keeps it
//! to the end (see `router`), so a reload never mixes two configurations in one
//! request: requests that began before it finish under the old stack, requests
//! after it see only the new one. Building a stack reuses what the previous one
//! had wherever the settings behind it are unchanged (see [`Pipeline::build`]).

use std::sync::Arc;

use crate::admission::ClientLimiter;
use crate::auth::Tokens;
use crate::config::Config;
use crate::edge::origin::OriginPolicy;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;

/// One configuration's request path.
#[derive(Debug)]
pub(crate) struct Stack {
    pub(crate) config: Arc<Config>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) limiter: Arc<ClientLimiter>,
    pub(crate) tokens: Arc<Tokens>,
    /// The admin credential, read from `admin.token_file` (kept while it is unchanged).
    pub(crate) admin: Option<crate::auth::AdminKey>,
    pub(crate) origins: Arc<OriginPolicy>,
}

impl Stack {
    /// The stack for `config`, keeping from `previous` what did not change.
    pub(crate) fn build(
        config: Config,
        metrics: Arc<Metrics>,
        previous: Option<&Stack>,
        models_changed: Arc<tokio::sync::Notify>,
        warmth: Arc<crate::warmth::Warmth>,
    ) -> Result<Stack, Error> {
        warmth.set_config(&config.warmth);
        metrics.set_access_log(config.access_log.as_deref());
        let pipeline = Pipeline::build(
            &config,
            metrics,
            previous.map(|p| &*p.pipeline),
            models_changed,
            warmth,
        )?;
        let limiter = match previous {
            // Same limits: keep every client's bucket.
            Some(previous) if previous.config.rate_limit == config.rate_limit => {
                Arc::clone(&previous.limiter)
            }
            _ => Arc::new(ClientLimiter::new(config.rate_limit)),
        };
        let admin = match (&config.admin.token_file, previous) {
            (None, _) => None,
            // The same file: the same credential (the file is read once).
            (Some(file), Some(previous))
                if previous.config.admin.token_file.as_ref() == Some(file) =>
            {
                previous.admin.clone()
            }
            (Some(file), _) => Some(crate::auth::AdminKey::load_or_create(file)?),
        };
        let origins = OriginPolicy::new(&config.origins)
            .with_control_origins(&config.admin.origins)
            .with_host_check(config.listen);
        Ok(Stack {
            pipeline: Arc::new(pipeline),
            limiter,
            tokens: Arc::new(Tokens::new(config.tokens.clone(), admin.clone())),
            admin,
            origins: Arc::new(origins),
            config: Arc::new(config),
        })
    }
}

/// The dotted paths of the settings that differ between two configurations
/// (secrets compared, never shown), in a stable order.
pub(crate) fn changes(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(old), Ok(new)) = (
        serde_json::to_value(old.to_raw()),
        serde_json::to_value(new.to_raw()),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff("", &old, &new, &mut out);
    out
}

fn diff(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    match (old, new) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let null = serde_json::Value::Null;
                diff(
                    &child,
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(path.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_dotted_field() {
        let old = Config::default();
        let mut new = old.clone();
        new.timeouts.connect = std::time::Duration::from_secs(3);
        new.cache.sampled = true;
        new.tokens.push(crate::auth::Token {
            name: "default".into(),
            secret: "a-secret".into(),
        });
        assert_eq!(
            changes(&old, &new),
            ["auth.token", "cache.sampled", "timeouts.connect"]
        );
        assert!(changes(&old, &old).is_empty());
    }
}
