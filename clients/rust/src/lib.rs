//! The ownid-bridge client that openapi-to-rust generates from the committed
//! `openapi/openapi.json` when this crate is built (see `build.rs`), and nothing else: the tests
//! in `tests/` drive the running server through it.
//!
//! [`client::HttpClient`] has one method per operation. Its success type is the 200 body, so
//! the protocol's empty answers come back as [`client::ApiOpError::Api`] with their status
//! (204 `No Content`, 404 `Not Found`), and documented error bodies as the operation's typed
//! error (e.g. `GetOwnIdDataByLoginIdApiError::Status401(Error { .. })`).

/// The schemas of `components.schemas`.
// The first four are the generator's own `#![allow]`s; `double_must_use` is on a builder.
#[allow(
    clippy::large_enum_variant,
    clippy::format_in_format_args,
    clippy::let_unit_value,
    unreachable_patterns,
    clippy::double_must_use
)]
pub mod types {
    include!(concat!(env!("OUT_DIR"), "/types.rs"));
}

/// The HTTP client and its error types.
// The first two are the generator's own `#![allow]`s; the others are in its response handling.
#[allow(
    clippy::format_in_format_args,
    clippy::let_unit_value,
    clippy::nonminimal_bool,
    clippy::redundant_field_names
)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/client.rs"));

    impl HttpClient {
        /// This client sending through `http_client`, e.g. one with a middleware that signs
        /// each request. The generator offers only [`HttpClient::with_client`], which wraps a
        /// plain `reqwest::Client` and so cannot see request bodies.
        pub fn with_middleware_client(
            http_client: reqwest_middleware::ClientWithMiddleware,
        ) -> Self {
            Self {
                http_client,
                ..Self::new()
            }
        }
    }
}

pub use client::*;
pub use types::*;
