//! The three operations. Signatures are already verified by the middleware when these run (it
//! sees the raw body, which an operation never does); the security schemes declared here put the
//! two headers into the OpenAPI document.

use std::sync::Arc;

use ownid_bridge_store::{StoreError, UserStore};
use poem::http::StatusCode;
use poem_openapi::auth::ApiKey;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme, Tags};

use super::error::{ApiError, ErrorBody};
use super::types::*;
use crate::config::{Normalization, ResponseMode};
use crate::session::{SessionIssuer, SessionType};

/// What the operations need at run time.
pub struct ApiState {
    pub store: Arc<dyn UserStore>,
    pub sessions: Arc<SessionIssuer>,
    pub responses: ResponseMode,
    pub normalization: Normalization,
    pub max_ownid_data_chars: usize,
    pub create_missing_users: bool,
}

/// HMAC-SHA256 request signature. With the application's shared secret from the OwnID
/// console: `ownid-signature = base64(HMAC-SHA256(key, data))` where `key` is the base64-DECODED
/// shared secret (its bytes, not its text) and `data` is the raw request body bytes exactly as
/// sent, followed by `.` and the `ownid-timestamp` header value exactly as sent. Standard base64
/// alphabet with padding; compared in constant time. Required together with `ownid-timestamp`.
#[derive(SecurityScheme)]
#[expect(
    dead_code,
    reason = "the middleware verified the header; the derive needs the field"
)]
#[oai(
    rename = "ownidSignature",
    ty = "api_key",
    key_name = "ownid-signature",
    key_in = "header"
)]
pub struct OwnIdSignature(pub ApiKey);

/// The time of signing as Unix time in milliseconds, e.g. `1717000000000`. Requests whose
/// timestamp differs from the server's clock by more than `ownid.max_clock_skew` (default 60 s)
/// are refused with `401 stale_timestamp`. Required together with `ownid-signature`.
#[derive(SecurityScheme)]
#[expect(
    dead_code,
    reason = "the middleware verified the header; the derive needs the field"
)]
#[oai(
    rename = "ownidTimestamp",
    ty = "api_key",
    key_name = "ownid-timestamp",
    key_in = "header"
)]
pub struct OwnIdTimestamp(pub ApiKey);

#[derive(Tags)]
enum ApiTags {
    /// The three calls OwnID's platform makes, server to server, during enrolment and login.
    /// Every request is signed (see the security schemes); unknown JSON fields are ignored.
    #[oai(rename = "OwnID")]
    OwnId,
}

/// Parse errors of the request (malformed JSON, missing field, wrong content type, a value
/// outside its schema) become `400 invalid_request` with the usual error body.
fn bad_request<T: From<ApiError>>(err: poem::Error) -> T {
    ApiError::bad_request(err.to_string()).into()
}

/// Declares an operation's response enum: its own success variants plus every error status the
/// middleware or the handler can produce, so the document lists all of them.
macro_rules! ownid_response {
    ($(#[$meta:meta])* $name:ident { $($variants:tt)* }) => {
        $(#[$meta])*
        #[derive(ApiResponse, Debug)]
        #[oai(bad_request_handler = "bad_request")]
        pub enum $name {
            $($variants)*
            /// Malformed JSON, a key repeated in one object, a missing or invalid field
            /// (`loginId` empty, longer than 320 characters, or holding control characters; an
            /// unknown or null `sessionType`), or a content type other than JSON. Error code
            /// `invalid_request`.
            #[oai(status = 400)]
            BadRequest(Json<ErrorBody>),
            /// The signature headers are missing (`missing_signature`), the timestamp is outside
            /// the clock skew (`stale_timestamp`), the signature does not match
            /// (`invalid_signature`), or the same signed request was already answered, on this or
            /// another of the three operations (`replayed_request`; replay protection is on by
            /// default).
            #[oai(status = 401)]
            Unauthorized(Json<ErrorBody>),
            /// The caller's address is outside `allowed_networks` (`forbidden`).
            #[oai(status = 403)]
            Forbidden(Json<ErrorBody>),
            /// The request body did not arrive within `server.body_timeout`
            /// (`request_timeout`).
            #[oai(status = 408)]
            RequestTimeout(Json<ErrorBody>),
            /// The body is larger than `server.max_body_bytes`, or `ownIdData` is longer than the
            /// configured maximum or the database column (`payload_too_large`). Nothing is
            /// stored.
            #[oai(status = 413)]
            PayloadTooLarge(Json<ErrorBody>),
            /// An unexpected error (`internal`); details are only in the server log.
            #[oai(status = 500)]
            Internal(Json<ErrorBody>),
            /// The user database is unreachable or busy (`storage_unavailable`), or the replay
            /// guard is full of signatures still inside their window (`replay_capacity`); retry
            /// after the `Retry-After` seconds.
            #[oai(status = 503)]
            Unavailable(
                Json<ErrorBody>,
                /// Seconds to wait before retrying.
                #[oai(header = "Retry-After")]
                u32,
            ),
        }

        impl From<ApiError> for $name {
            fn from(err: ApiError) -> Self {
                let body = Json(err.body());
                match err.status {
                    StatusCode::BAD_REQUEST => $name::BadRequest(body),
                    StatusCode::UNAUTHORIZED => $name::Unauthorized(body),
                    StatusCode::FORBIDDEN => $name::Forbidden(body),
                    StatusCode::REQUEST_TIMEOUT => $name::RequestTimeout(body),
                    StatusCode::PAYLOAD_TOO_LARGE => $name::PayloadTooLarge(body),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        $name::Unavailable(body, super::error::RETRY_AFTER_SECONDS)
                    }
                    _ => $name::Internal(body),
                }
            }
        }
    };
}

ownid_response!(
    SetOwnIdDataResponse {
        /// Stored. Empty body.
        #[oai(status = 204)]
        Stored,
        /// Legacy response mode only: the user does not exist (`{"errorCode": 404, ...}`).
        #[oai(status = 200)]
        LegacyNotFound(Json<LegacyError>),
        /// No user has this login id (and `create_missing_users` is off). Empty body.
        #[oai(status = 404)]
        NotFound,
        /// With `create_missing_users`: the login id is new, but the table's unique index holds
        /// one that the database's collation treats as equal (`Alice@…` beside `alice@…` on a
        /// case-insensitive column). That user is someone else; nothing is written
        /// (`login_id_conflict`).
        #[oai(status = 409)]
        Conflict(Json<ErrorBody>),
    }
);

ownid_response!(
    GetOwnIdDataResponse {
        /// The user's ownIdData. In the legacy response mode also `{"ownIdData": ""}` for a user
        /// without data and `{"errorCode": 404, ...}` for an unknown user.
        #[oai(status = 200)]
        Found(Json<OwnIdDataResult>),
        /// The user exists but has no ownIdData yet. Empty body.
        #[oai(status = 204)]
        NoData,
        /// No user has this login id. Empty body.
        #[oai(status = 404)]
        NotFound,
    }
);

ownid_response!(
    GetSessionResponse {
        /// A session token for the user (whether or not the user has ownIdData). In the legacy
        /// response mode also `{"errorCode": 404, ...}` for an unknown user.
        #[oai(status = 200)]
        Issued(Json<SessionResult>),
        /// No user has this login id. Empty body.
        #[oai(status = 404)]
        NotFound,
    }
);

/// The OwnID operations. `None` state only serves to generate the document.
pub struct OwnIdApi(Option<Arc<ApiState>>);

impl OwnIdApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        OwnIdApi(Some(state))
    }

    /// An instance that can describe the API but not serve it (`ownid-bridge openapi`).
    pub fn spec_only() -> Self {
        OwnIdApi(None)
    }

    fn state(&self) -> Result<&ApiState, ApiError> {
        self.0.as_deref().ok_or_else(|| {
            tracing::error!("an OwnID operation was called on a spec-only API instance");
            ApiError::internal()
        })
    }
}

impl ApiState {
    fn legacy(&self) -> bool {
        self.responses == ResponseMode::Legacy
    }

    /// Normalizes and validates a login id (SPEC §1: non-empty, at most 320 characters after
    /// normalization). Control characters are refused: no e-mail address or phone number has
    /// them, and they make logs and lookups ambiguous.
    fn login_id(&self, raw: &str) -> Result<String, ApiError> {
        let login_id = self.normalization.apply(raw);
        if login_id.is_empty() {
            return Err(ApiError::bad_request("loginId must not be empty"));
        }
        if login_id.chars().nth(MAX_LOGIN_ID_CHARS).is_some() {
            return Err(ApiError::bad_request(format!(
                "loginId must be at most {MAX_LOGIN_ID_CHARS} characters"
            )));
        }
        if login_id.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "loginId must not contain control characters",
            ));
        }
        Ok(login_id.into_owned())
    }
}

#[OpenApi]
impl OwnIdApi {
    /// Store OwnID data for a user
    ///
    /// OwnID calls this when a user enrolls a device (registration, or adding a passkey to an
    /// existing account). `ownIdData` is stored exactly as received and replaces any earlier
    /// value. Answers 204 with an empty body; 404 when no user has the login id, unless
    /// `create_missing_users` is on, in which case the user is created.
    #[oai(
        path = "/setOwnIDDataByLoginId",
        method = "post",
        operation_id = "setOwnIDDataByLoginId",
        tag = "ApiTags::OwnId"
    )]
    async fn set_ownid_data(
        &self,
        _signature: OwnIdSignature,
        _timestamp: OwnIdTimestamp,
        body: Json<SetOwnIdDataRequest>,
    ) -> SetOwnIdDataResponse {
        match self.set(body.0).await {
            Ok(response) => response,
            Err(err) => err.into(),
        }
    }

    /// Read OwnID data for a user
    ///
    /// OwnID calls this at login, to find the devices the user enrolled. Answers 200 with the
    /// stored value, 204 (empty body) when the user exists but has no data, and 404 (empty body)
    /// when no user has the login id.
    #[oai(
        path = "/getOwnIDDataByLoginId",
        method = "post",
        operation_id = "getOwnIDDataByLoginId",
        tag = "ApiTags::OwnId"
    )]
    async fn get_ownid_data(
        &self,
        _signature: OwnIdSignature,
        _timestamp: OwnIdTimestamp,
        body: Json<GetOwnIdDataRequest>,
    ) -> GetOwnIdDataResponse {
        match self.get(body.0).await {
            Ok(response) => response,
            Err(err) => err.into(),
        }
    }

    /// Issue a session token for a user
    ///
    /// OwnID calls this once it has authenticated the user. The response object is passed
    /// unchanged to the web page's `onLogin` callback, which uses the token to establish the
    /// application's own session; OwnID never reads the token. A user does not need ownIdData
    /// to get a session. 404 (empty body) when no user has the login id.
    #[oai(
        path = "/getSessionByLoginId",
        method = "post",
        operation_id = "getSessionByLoginId",
        tag = "ApiTags::OwnId"
    )]
    async fn get_session(
        &self,
        _signature: OwnIdSignature,
        _timestamp: OwnIdTimestamp,
        body: Json<GetSessionRequest>,
    ) -> GetSessionResponse {
        match self.session(body.0).await {
            Ok(response) => response,
            Err(err) => err.into(),
        }
    }
}

impl OwnIdApi {
    async fn set(&self, request: SetOwnIdDataRequest) -> Result<SetOwnIdDataResponse, ApiError> {
        let state = self.state()?;
        let login_id = state.login_id(&request.login_id.0)?;
        let max = state.max_ownid_data_chars;
        let ownid_data = request.ownid_data.0;
        if ownid_data.chars().nth(max).is_some() {
            return Err(ApiError::too_large(format!(
                "ownIdData is longer than {max} characters"
            )));
        }
        let result = state
            .store
            .set_ownid_data(&login_id, &ownid_data, state.create_missing_users)
            .await;
        match result {
            Ok(_) => Ok(SetOwnIdDataResponse::Stored),
            Err(StoreError::NotFound) if state.legacy() => Ok(
                SetOwnIdDataResponse::LegacyNotFound(Json(LegacyError::user_not_found())),
            ),
            Err(StoreError::NotFound) => Ok(SetOwnIdDataResponse::NotFound),
            Err(StoreError::Conflict) => Ok(SetOwnIdDataResponse::Conflict(Json(
                ApiError::from(StoreError::Conflict).body(),
            ))),
            Err(err) => Err(err.into()),
        }
    }

    async fn get(&self, request: GetOwnIdDataRequest) -> Result<GetOwnIdDataResponse, ApiError> {
        let state = self.state()?;
        let login_id = state.login_id(&request.login_id.0)?;
        let found = |ownid_data: String| {
            GetOwnIdDataResponse::Found(Json(OwnIdDataResult::OwnIdData(OwnIdData { ownid_data })))
        };
        match state.store.get_ownid_data(&login_id).await {
            Ok(Some(data)) => Ok(found(data)),
            Ok(None) if state.legacy() => Ok(found(String::new())),
            Ok(None) => Ok(GetOwnIdDataResponse::NoData),
            Err(StoreError::NotFound) if state.legacy() => Ok(GetOwnIdDataResponse::Found(Json(
                OwnIdDataResult::LegacyError(LegacyError::user_not_found()),
            ))),
            Err(StoreError::NotFound) => Ok(GetOwnIdDataResponse::NotFound),
            Err(err) => Err(err.into()),
        }
    }

    async fn session(&self, request: GetSessionRequest) -> Result<GetSessionResponse, ApiError> {
        let state = self.state()?;
        let login_id = state.login_id(&request.login_id.0)?;
        let user = match state.store.get_session_user(&login_id).await {
            Ok(user) => user,
            Err(StoreError::NotFound) if state.legacy() => {
                return Ok(GetSessionResponse::Issued(Json(
                    SessionResult::LegacyError(LegacyError::user_not_found()),
                )))
            }
            Err(StoreError::NotFound) => return Ok(GetSessionResponse::NotFound),
            Err(err) => return Err(err.into()),
        };
        let session_type = request.session_type.0.map(|kind| match kind {
            SessionTypeParam::Browser => SessionType::Browser,
            SessionTypeParam::Mobile => SessionType::Mobile,
        });
        let issued = state.sessions.issue(&user, session_type).map_err(|err| {
            tracing::error!(error = %err, "signing a session token failed");
            ApiError::internal()
        })?;
        Ok(GetSessionResponse::Issued(Json(
            SessionResult::SessionToken(SessionToken {
                token: issued.token,
                expires_at: issued.expires_at,
            }),
        )))
    }
}
