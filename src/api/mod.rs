//! The HTTP surface OwnID calls: three operations, their types, and the error mapping.

mod error;
mod operations;
pub mod spec;
mod types;

pub use error::{ErrorBody, ErrorJson, ErrorResponse};
pub use operations::{ApiState, OwnIdApi};
pub use types::*;
