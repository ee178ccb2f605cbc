//! The one error shape the webview sees: `{ code, message, hint? }`.
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
}

impl UiError {
    /// The configuration (file or `WARMLINE_*` variables) did not validate.
    pub fn config(err: &warmline::ConfigError) -> Self {
        UiError {
            code: "config_invalid",
            message: err.to_string(),
            hint: Some("Fix the setting named above (WARMLINE_LISTEN, WARMLINE_UPSTREAMS) and restart Warmline.".into()),
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
                };
            }
            source = e.source();
        }
        UiError {
            code: "gateway_start_failed",
            message: err.to_string(),
            hint: None,
        }
    }

    /// A Tauri call (window, tray) failed while serving a command.
    pub fn tauri(err: &tauri::Error) -> Self {
        UiError {
            code: "shell",
            message: err.to_string(),
            hint: None,
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
