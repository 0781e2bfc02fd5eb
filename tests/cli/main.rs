//! The real binary and its commands on SQLite: `serve`'s start-up and configuration,
//! `export`/`import`, the support tools (`users`), the existing-table matrix on SQLite.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod existing_sqlite;
mod transfer;
mod users;
