//! The machine underneath: what Warmline needs of the operating system and the
//! clock, with no knowledge of HTTP or of Ollama.
//!
//! A leaf layer like `wire`: [`os`] (state directories, descriptor limits, files
//! written privately and atomically), [`clock`] (deadlines that never overflow,
//! whatever a setting says), [`logging`] (the tracing subscriber, and the recent
//! lines the app and `/warmline/logs` show) and [`process`] (this process's CPU,
//! memory and descriptors, for `/metrics`).

pub mod clock;
pub mod logging;
pub mod os;
pub mod process;
