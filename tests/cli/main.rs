//! The real binary and its commands on SQLite: `serve`'s start-up and configuration,
//! `export`/`import`, the support tools (`users`).

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod transfer;
mod users;
