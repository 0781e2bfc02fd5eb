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
    /// `login_id_conflict`, `payload_too_large`, `internal`, `storage_unavailable` or
    /// `replay_capacity` (and `not_found` / `method_not_allowed` for a path or method the server
    /// does not have).
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
            StoreError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "login_id_conflict",
                "another user's login id differs from this one only in what the database's \
                 collation ignores (case, accents, trailing spaces); nothing was written",
            ),
            StoreError::Unavailable(detail) => {
                crate::metrics::record_storage_error("unavailable");
                tracing::warn!(error = %redact_values(&detail), "storage unavailable");
                tracing::debug!(error = %detail, "storage unavailable (unredacted)");
                ApiError::unavailable()
            }
            StoreError::Other(detail) => {
                crate::metrics::record_storage_error("other");
                tracing::error!(error = %redact_values(&detail), "storage error");
                tracing::debug!(error = %detail, "storage error (unredacted)");
                ApiError::internal()
            }
        }
    }
}

/// A driver's message with the values it quotes replaced by `[redacted]`. Drivers quote the
/// offending value, which may be a login id or ownIdData: MySQL's `Duplicate entry 'x' for key
/// 'k'`, MongoDB's `dup key: { login_id: "x" }`, PostgreSQL's `Key (login_id)=(x)`. What stays
/// (the error's kind, codes, table and index names outside quotes) is what an operator needs;
/// the full message is logged at debug level only.
pub fn redact_values(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len());
    let mut chars = detail.chars().peekable();
    while let Some(c) = chars.next() {
        let close = match c {
            '\'' | '"' | '`' => Some(c),
            '{' => Some('}'),
            '=' if chars.peek() == Some(&'(') => {
                out.push('=');
                chars.next();
                Some(')')
            }
            _ => None,
        };
        let Some(close) = close else {
            out.push(c);
            continue;
        };
        let opening = if close == ')' { '(' } else { c };
        out.push(opening);
        out.push_str("[redacted]");
        // Everything up to the closing character (or the end) is dropped.
        for next in chars.by_ref() {
            if next == close {
                break;
            }
        }
        out.push(close);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::redact_values;

    #[test]
    fn quoted_values_in_driver_messages_are_redacted() {
        assert_eq!(
            redact_values("1062 (23000): Duplicate entry 'a@b.c' for key 'users.login_id'"),
            "1062 (23000): Duplicate entry '[redacted]' for key '[redacted]'"
        );
        assert_eq!(
            redact_values(r#"E11000 dup key: { login_id: "a@b.c" }"#),
            "E11000 dup key: {[redacted]}"
        );
        assert_eq!(
            redact_values("Key (login_id)=(a@b.c) already exists"),
            "Key (login_id)=([redacted]) already exists"
        );
        assert_eq!(
            redact_values("pool timed out while waiting for an open connection"),
            "pool timed out while waiting for an open connection"
        );
        assert_eq!(
            redact_values("unterminated 'a@b.c"),
            "unterminated '[redacted]'"
        );
    }
}
