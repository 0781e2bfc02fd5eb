//! ownid-bridge: the three signed endpoints OwnID's platform calls, served from a company's own
//! user database.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod conn;
pub mod error;
pub mod json;
pub mod keys;
pub mod metrics;
pub mod network;
pub mod retry;
pub mod secret;
pub mod session;
pub mod signature;
pub mod storage;

/// The README's and docs/'s relative links and anchors resolve (a test only).
#[cfg(test)]
mod docs_links;
