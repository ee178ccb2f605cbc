//! The one error shape the webview sees: `{ code, message, hint?, field? }`.
//!
//! `code` is a stable, low-cardinality label the UI may branch on; `message` is the
//! underlying error's own text, shown verbatim so nothing is lost in translation;
//! `hint` says what the user can do about it, when we know.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;

use serde::Serialize;

/// An error as shown in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiError {
    /// Stable label, e.g. `address_in_use`.
    pub code: &'static str,
    /// The error's own message.
    pub message: String,
    /// What to do about it, if there is something obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// For a setting the core refused: its dotted name (`cache.max_size`), so
    /// the window can show the message next to that field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl UiError {
    /// The configuration (file or `WARMLINE_*` variables) did not validate.
    pub fn config(err: &warmline::ConfigError) -> Self {
        UiError {
            code: "config_invalid",
            message: err.to_string(),
            hint: Some("Fix the setting named above (WARMLINE_LISTEN, WARMLINE_UPSTREAMS) and restart Warmline.".into()),
            field: err.field().map(str::to_owned),
        }
    }

    /// The gateway did not start on `listen`. A taken port gets its own code,
    /// found by walking the source chain, so it does not depend on how the core
    /// words its error.
    pub fn gateway_start(err: &(dyn StdError + 'static), listen: SocketAddr) -> Self {
        let mut source = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<io::Error>()
                && io.kind() == io::ErrorKind::AddrInUse
            {
                return UiError {
                    code: "address_in_use",
                    message: err.to_string(),
                    hint: Some(format!(
                        "Another program already listens on {listen}, often a second Warmline or \
                         \"warmline serve\". Stop it, or set WARMLINE_LISTEN to another address \
                         and restart Warmline."
                    )),
                    field: None,
                };
            }
            source = e.source();
        }
        UiError::plain("gateway_start_failed", err.to_string())
    }

    /// A Tauri call (window, tray) failed while serving a command.
    pub fn tauri(err: &tauri::Error) -> Self {
        UiError::plain("shell", err.to_string())
    }

    /// An error of the core, as its admin routes would report it: a refused
    /// setting names its field; the rest keep the core's message and kind.
    pub fn from_core(err: &warmline::Error) -> Self {
        match err {
            warmline::Error::Config(config) => UiError {
                code: "invalid_setting",
                message: config.to_string(),
                hint: None,
                field: config.field().map(str::to_owned),
            },
            other => UiError::plain(other.kind(), other.to_string()),
        }
    }

    /// The gateway is shutting down; nothing more can be done.
    pub fn stopped() -> Self {
        UiError::plain("stopped", "Warmline is shutting down".to_owned())
    }

    /// Demo mode could not start.
    pub fn demo(reason: &str) -> Self {
        UiError::plain(
            "demo_failed",
            format!("demo mode could not start: {reason}"),
        )
    }

    /// Saving to the settings store failed (the change itself was applied).
    pub fn store(reason: String) -> Self {
        UiError {
            code: "store",
            message: format!("the change applies now but could not be saved: {reason}"),
            hint: Some("Check that the app's data folder is writable.".into()),
            field: None,
        }
    }

    /// Start at login could not be changed.
    pub fn autostart(reason: String) -> Self {
        UiError::plain(
            "autostart",
            format!("cannot change start at login: {reason}"),
        )
    }

    /// A chart could not be drawn.
    pub fn chart(reason: &str) -> Self {
        UiError::plain("chart", format!("cannot draw the chart: {reason}"))
    }

    /// The window asked for something this version does not know.
    pub fn unknown_action(action: &str) -> Self {
        UiError::plain("unknown_action", format!("unknown action {action:?}"))
    }

    fn plain(code: &'static str, message: String) -> Self {
        UiError {
            code,
            message,
            hint: None,
            field: None,
        }
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl StdError for UiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot bind: {}", self.0)
        }
    }

    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn address_in_use_is_found_anywhere_in_the_source_chain() {
        let addr: SocketAddr = "127.0.0.1:11435".parse().expect("addr");
        let err = Wrapper(io::Error::from(io::ErrorKind::AddrInUse));
        let ui = UiError::gateway_start(&err, addr);
        assert_eq!(ui.code, "address_in_use");
        assert!(ui.message.starts_with("cannot bind"), "{}", ui.message);
        assert!(ui.hint.expect("hint").contains("127.0.0.1:11435"));
    }

    #[test]
    fn other_start_errors_keep_their_message() {
        let addr: SocketAddr = "127.0.0.1:11435".parse().expect("addr");
        let err = Wrapper(io::Error::from(io::ErrorKind::PermissionDenied));
        let ui = UiError::gateway_start(&err, addr);
        assert_eq!(ui.code, "gateway_start_failed");
        assert_eq!(ui.hint, None);
    }
}
