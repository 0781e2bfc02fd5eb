//! How the error answers appear in the OpenAPI document: the `ErrorBody` schema, the payload that
//! carries an [`ApiError`] in an `ApiResponse`, and the error statuses every operation shares.

use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{Example, Type};
use poem_openapi::{ApiResponse, Object};

use crate::error::{ApiError, RETRY_AFTER_SECONDS};

// The schema only: the bytes are written by `crate::error::error_body`.
/// The body of every error response. (Not named `Error`: generators rename a schema of that
/// name, which clashes with their languages' own `Error` type, and warn about each use.)
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(example)]
pub struct ErrorBody {
    /// A machine-readable code: `invalid_request`, `missing_signature`, `stale_timestamp`,
    /// `invalid_signature`, `replayed_request`, `forbidden`, `request_timeout`,
    /// `login_id_conflict`, `payload_too_large`, `internal`, `storage_unavailable`,
    /// `replay_capacity` or `request_in_flight` (and `not_found` / `method_not_allowed` for a path or method the server
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

/// An [`ApiError`] as a JSON payload of the `ErrorBody` schema.
#[derive(Debug)]
pub struct ErrorJson(pub ApiError);

impl Payload for ErrorJson {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        ErrorBody::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl IntoResponse for ErrorJson {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

/// The error statuses of every operation: what the middlewares (origin, signature, body limits)
/// and the handlers answer with. poem-openapi adds them to each operation that returns
/// `Result<_, ErrorResponse>`, so the document lists all of them.
#[derive(ApiResponse, Debug)]
pub enum ErrorResponse {
    /// Malformed JSON, a key repeated in one object, a missing or invalid field
    /// (`loginId` empty, longer than 320 characters, or holding control characters, invisible
    /// characters (format characters, other default-ignorable code points, line and paragraph
    /// separators) or spaces other than U+0020; `ownIdData` holding U+0000; an unknown
    /// `sessionType`), or a content type other than JSON. Error code `invalid_request`.
    #[oai(status = 400)]
    BadRequest(ErrorJson),
    /// The signature headers are missing (`missing_signature`), the timestamp is outside
    /// the clock skew (`stale_timestamp`), the signature does not match
    /// (`invalid_signature`), or the same signed request was already answered, on this or
    /// another of the three operations (`replayed_request`; replay protection is on by
    /// default).
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// The caller's address is outside `allowed_networks` (`forbidden`).
    #[oai(status = 403)]
    Forbidden(ErrorJson),
    /// The request body did not arrive within `server.body_timeout`
    /// (`request_timeout`).
    #[oai(status = 408)]
    RequestTimeout(ErrorJson),
    /// The body is larger than `server.max_body_bytes`, or `ownIdData` is longer than the
    /// configured maximum or the database column (`payload_too_large`). Nothing is
    /// stored.
    #[oai(status = 413)]
    PayloadTooLarge(ErrorJson),
    /// An unexpected error (`internal`); details are only in the server log.
    #[oai(status = 500)]
    Internal(ErrorJson),
    /// The user database is unreachable or busy (`storage_unavailable`), the replay
    /// guard is full of signatures still inside their window (`replay_capacity`), or a request
    /// with the same signature is being answered (`request_in_flight`, with
    /// `replay_protection: storage`); retry after the `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(
        ErrorJson,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u32,
    ),
}

impl From<ApiError> for ErrorResponse {
    fn from(err: ApiError) -> Self {
        use poem::http::StatusCode;
        match err.status {
            StatusCode::BAD_REQUEST => ErrorResponse::BadRequest(ErrorJson(err)),
            StatusCode::UNAUTHORIZED => ErrorResponse::Unauthorized(ErrorJson(err)),
            StatusCode::FORBIDDEN => ErrorResponse::Forbidden(ErrorJson(err)),
            StatusCode::REQUEST_TIMEOUT => ErrorResponse::RequestTimeout(ErrorJson(err)),
            StatusCode::PAYLOAD_TOO_LARGE => ErrorResponse::PayloadTooLarge(ErrorJson(err)),
            StatusCode::SERVICE_UNAVAILABLE => {
                ErrorResponse::Unavailable(ErrorJson(err), RETRY_AFTER_SECONDS)
            }
            _ => ErrorResponse::Internal(ErrorJson(err)),
        }
    }
}
