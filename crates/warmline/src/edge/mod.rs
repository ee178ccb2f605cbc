//! The edge: where connections and requests arrive, and the first refusals.
//!
//! [`server`] accepts connections and guards request heads (slow, oversized,
//! too many connections); [`origin`] checks `Host` and browser `Origin`s and
//! answers CORS; [`access`] checks credentials by plane. What runs after them, in
//! which order, is `gateway::router`'s outer stack.

pub mod access;
pub mod origin;
pub mod server;
