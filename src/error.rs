//! Errors that are not about the user: one JSON shape for all of them (SPEC §1), so that OwnID's
//! logs and a person reading them see a machine code and a sentence, never a driver message.
//!
//! Here rather than in `api/`, because the middlewares (signature, origin, connection guards)
//! answer with it before any operation runs. Three things, each in one place:
//! - [`error_body`] writes the body's bytes, for every response and for the raw ones in `conn.rs`;
//! - [`ApiError`] is an error with its status and code; building or converting one has no side
//!   effect. What must not reach the response (a driver's message) travels in its [`Cause`];
//! - [`ApiError::report`] logs and counts that cause; it is called where an error is answered.

use ownid_bridge_store::StoreError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The bytes of every error body: `{"error": code, "message": sentence}`.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": code, "message": message }).to_string()
}

/// An error answered with [`error_body`]: its status, machine code and sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// What the server log and the metrics record about it, never the response.
    pub cause: Option<Cause>,
}

/// The part of an error that is for the operator only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// ownIdData longer than the database column.
    StorageTooLarge,
    /// The database is unreachable or busy; the driver's message.
    StorageUnavailable(String),
    /// A conflict with other statements outlasted the retries; the driver's message.
    StorageContention(String),
    /// Any other storage failure; the driver's message.
    Storage(String),
    /// Signing a session token failed.
    SessionSigning(String),
    /// An error of poem's own with a 5xx status.
    Unhandled(String),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            cause: None,
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

    /// The same error, with what the operator should learn about it.
    pub fn caused_by(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// Logs and counts the cause, if any: the one place an error leaves a trace besides its
    /// response. Driver messages are logged with their quoted values redacted (see
    /// [`redact_values`]); the full message only at debug level.
    pub fn report(&self) {
        let Some(cause) = &self.cause else {
            return;
        };
        match cause {
            Cause::StorageTooLarge => crate::metrics::record_storage_error("too_large"),
            Cause::StorageUnavailable(detail) => {
                crate::metrics::record_storage_error("unavailable");
                tracing::warn!(error = %redact_values(detail), "storage unavailable");
                tracing::debug!(error = %detail, "storage unavailable (unredacted)");
            }
            Cause::StorageContention(detail) => {
                crate::metrics::record_storage_error("contention");
                tracing::warn!(error = %redact_values(detail), "storage contention outlasted the retries");
                tracing::debug!(error = %detail, "storage contention (unredacted)");
            }
            Cause::Storage(detail) => {
                crate::metrics::record_storage_error("other");
                tracing::error!(error = %redact_values(detail), "storage error");
                tracing::debug!(error = %detail, "storage error (unredacted)");
            }
            Cause::SessionSigning(detail) => {
                tracing::error!(error = %detail, "signing a session token failed");
            }
            Cause::Unhandled(detail) => tracing::error!(error = %detail, "unhandled error"),
        }
    }

    /// Turns poem's own errors (unknown route, wrong method, unreadable body) into the same
    /// shape. An error that already is a response (an operation's error answer) stays as it is.
    pub fn from_poem(err: &poem::Error) -> Self {
        let status = err.status();
        match status {
            StatusCode::NOT_FOUND => ApiError::new(status, "not_found", "no such endpoint"),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                "method_not_allowed",
                "this endpoint only accepts POST",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("the request body is too large"),
            status if status.is_server_error() => {
                ApiError::internal().caused_by(Cause::Unhandled(err.to_string()))
            }
            _ => ApiError::bad_request(err.to_string()),
        }
    }
}

/// Maps a storage error to its status; the driver's message goes into the [`Cause`].
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "user not found")
            }
            StoreError::TooLarge { max_chars } => ApiError::too_large(format!(
                "ownIdData is longer than the database column's {max_chars} characters"
            ))
            .caused_by(Cause::StorageTooLarge),
            StoreError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "login_id_conflict",
                "another user's login id differs from this one only in what the database's \
                 collation ignores (case, accents, trailing spaces); nothing was written",
            ),
            StoreError::Unavailable(detail) => {
                ApiError::unavailable().caused_by(Cause::StorageUnavailable(detail))
            }
            StoreError::Contention(detail) => {
                ApiError::unavailable().caused_by(Cause::StorageContention(detail))
            }
            StoreError::Schema(detail) | StoreError::Other(detail) => {
                ApiError::internal().caused_by(Cause::Storage(detail))
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
        let mut response = Response::builder()
            .status(self.status)
            .content_type("application/json; charset=utf-8")
            .body(error_body(self.code, &self.message));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(poem::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
        }
        response
    }
}

/// The answer to an error that reached the top of the application: an operation's error
/// response as it is, anything else of poem's in the error shape (reported, when it is a 5xx).
pub fn error_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let error = ApiError::from_poem(&err);
    error.report();
    let mut response = error.into_response();
    // The label of the request's metrics, when an operation was reached (see `metrics.rs`).
    if let Some(operation) = err.data::<poem_openapi::OperationId>() {
        response.set_data(*operation);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_response_body_is_error_body_and_a_conversion_only_records_the_cause() {
        let error = ApiError::from(StoreError::Unavailable("Key (login_id)=(a@b.c)".into()));
        assert_eq!(
            error.cause,
            Some(Cause::StorageUnavailable("Key (login_id)=(a@b.c)".into()))
        );
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let body = response.into_body().into_string().await.unwrap();
        assert_eq!(
            body,
            error_body(
                "storage_unavailable",
                "the user database is unavailable; retry shortly"
            )
        );
        assert!(!body.contains("a@b.c"));
    }

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
