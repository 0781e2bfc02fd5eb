//! Errors that are not about the user: one JSON shape for all of them (SPEC §1), so that OwnID's
//! logs and a person reading them see a machine code and a sentence, never a driver message.

use ownid_bridge_store::StoreError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::types::Example;
use poem_openapi::Object;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The body of every error response.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(rename = "Error", example)]
pub struct ErrorBody {
    /// A machine-readable code: `invalid_request`, `missing_signature`, `stale_timestamp`,
    /// `invalid_signature`, `replayed_request`, `forbidden`, `request_timeout`,
    /// `payload_too_large`, `internal`, `storage_unavailable` or `replay_capacity` (and
    /// `not_found` / `method_not_allowed` for a path or method the server does not have).
    pub error: String,
    /// A sentence for people; never contains internal details.
    pub message: String,
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            error: "invalid_signature".into(),
            message: "the request signature does not match".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; the server log has the details",
        )
    }

    pub fn unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the user database is unavailable; retry shortly",
        )
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.into(),
            message: self.message.clone(),
        }
    }
}

/// Maps a storage error to its status, logging what must not reach the response.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "user not found")
            }
            StoreError::TooLarge { max_chars } => {
                crate::metrics::record_storage_error("too_large");
                ApiError::too_large(format!(
                    "ownIdData is longer than the database column's {max_chars} characters"
                ))
            }
            StoreError::Unavailable(detail) => {
                crate::metrics::record_storage_error("unavailable");
                tracing::warn!(error = %detail, "storage unavailable");
                ApiError::unavailable()
            }
            StoreError::Other(detail) => {
                crate::metrics::record_storage_error("other");
                tracing::error!(error = %detail, "storage error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = Response::builder()
            .status(self.status)
            .content_type("application/json; charset=utf-8")
            .body(body.to_string());
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(poem::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
        }
        response
    }
}

/// Turns poem's own errors (unknown route, wrong method, unreadable body) into the same shape.
pub fn error_response(err: poem::Error) -> Response {
    let status = err.status();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::new(status, "not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this endpoint only accepts POST",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("the request body is too large"),
        status if status.is_server_error() => {
            tracing::error!(error = %err, "unhandled error");
            ApiError::internal()
        }
        _ => ApiError::bad_request(err.to_string()),
    };
    error.into_response()
}
