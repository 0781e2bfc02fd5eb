//! The server in process on SQLite (poem's test client or a loopback port): the API, several
//! applications, hostile input, fuzzing, the network guards, the OpenAPI document, operating
//! (health, metrics, logs), sessions, replay protection, timeouts.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod apps;
mod fuzz;
mod hostile;
mod network;
mod openapi;
mod operating;
mod replay;
mod sessions;
mod timeouts;
