//! The HTTP surface OwnID calls: three operations, their types, and the error mapping.

mod error;
mod operations;
pub mod spec;
mod types;

pub use error::{error_response, ApiError, ErrorBody};
pub use operations::{ApiState, OwnIdApi};
pub use types::*;
