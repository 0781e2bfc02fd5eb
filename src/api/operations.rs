//! The three operations. Signatures are already verified by the middleware when these run (it
//! sees the raw body, which an operation never does); the security schemes declared here put the
//! two headers into the OpenAPI document.

use std::sync::Arc;

use ownid_bridge_store::{StoreError, UserStore};
use poem::web::Data;
use poem_openapi::auth::ApiKey;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme, Tags};

use super::error::{ErrorJson, ErrorResponse};
use super::types::*;
use crate::config::{Normalization, ResponseMode, RetrySettings};
use crate::error::{ApiError, Cause};
use crate::retry::retrying;
use crate::session::{SessionIssuer, SessionType};

/// What the operations need at run time.
pub struct ApiState {
    pub store: Arc<dyn UserStore>,
    pub sessions: Arc<SessionIssuer>,
    pub responses: ResponseMode,
    pub normalization: Normalization,
    pub max_ownid_data_chars: usize,
    pub create_missing_users: bool,
    /// How an operation refused for contention is run again (`storage.retries`).
    pub retries: RetrySettings,
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

/// The answers of `setOwnIDDataByLoginId` other than the shared errors of [`ErrorResponse`].
#[derive(ApiResponse, Debug)]
pub enum SetOwnIdDataResponse {
    /// Stored. Empty body.
    #[oai(status = 204)]
    Stored,
    /// The user does not exist (legacy response mode).
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
    Conflict(ErrorJson),
}

/// The answers of `getOwnIDDataByLoginId` other than the shared errors of [`ErrorResponse`].
#[derive(ApiResponse, Debug)]
pub enum GetOwnIdDataResponse {
    /// The user's ownIdData.
    #[oai(status = 200)]
    Found(Json<OwnIdDataResult>),
    /// The user exists but has no ownIdData yet. Empty body.
    #[oai(status = 204)]
    NoData,
    /// No user has this login id. Empty body.
    #[oai(status = 404)]
    NotFound,
}

/// The answers of `getSessionByLoginId` other than the shared errors of [`ErrorResponse`].
#[derive(ApiResponse, Debug)]
pub enum GetSessionResponse {
    /// A session token for the user (whether or not the user has ownIdData).
    #[oai(status = 200)]
    Issued(Json<SessionResult>),
    /// No user has this login id. Empty body.
    #[oai(status = 404)]
    NotFound,
}

/// The OwnID operations; their state arrives as request data (see `app.rs`).
///
/// A request that does not parse (malformed JSON, a missing or invalid field, a content type
/// other than JSON) never reaches a handler: poem-openapi returns its error, which
/// `crate::error::error_response` answers as `400 invalid_request` with the parser's message.
/// (An operation returning `Result<_, ErrorResponse>` takes its bad-request handler from the
/// success enum, which has no 400 to answer with.)
pub struct OwnIdApi;

/// An operation's error, answered: its cause is logged and counted here, once.
fn answer(err: ApiError) -> ErrorResponse {
    err.report();
    err.into()
}

impl ApiState {
    fn legacy(&self) -> bool {
        self.responses == ResponseMode::Legacy
    }

    /// Normalizes a login id and checks it again (normalization may shorten or empty it).
    fn login_id(&self, raw: &str) -> Result<String, ApiError> {
        let login_id = self.normalization.apply(raw);
        check_login_id(&login_id).map_err(|err| ApiError::bad_request(err.to_string()))?;
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
        state: Data<&Arc<ApiState>>,
        _signature: OwnIdSignature,
        _timestamp: OwnIdTimestamp,
        body: Json<SetOwnIdDataRequest>,
    ) -> Result<SetOwnIdDataResponse, ErrorResponse> {
        state.set(body.0).await.map_err(answer)
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
        state: Data<&Arc<ApiState>>,
        _signature: OwnIdSignature,
        _timestamp: OwnIdTimestamp,
        body: Json<GetOwnIdDataRequest>,
    ) -> Result<GetOwnIdDataResponse, ErrorResponse> {
        state.get(body.0).await.map_err(answer)
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
        state: Data<&Arc<ApiState>>,
        _signature: OwnIdSignature,
        _timestamp: OwnIdTimestamp,
        body: Json<GetSessionRequest>,
    ) -> Result<GetSessionResponse, ErrorResponse> {
        state.session(body.0).await.map_err(answer)
    }
}

impl ApiState {
    async fn set(&self, request: SetOwnIdDataRequest) -> Result<SetOwnIdDataResponse, ApiError> {
        let login_id = self.login_id(&request.login_id.0)?;
        let max = self.max_ownid_data_chars;
        let ownid_data = request.ownid_data.0;
        if ownid_data.chars().nth(max).is_some() {
            return Err(ApiError::too_large(format!(
                "ownIdData is longer than {max} characters"
            )));
        }
        check_ownid_data(&ownid_data).map_err(|err| ApiError::bad_request(err.to_string()))?;
        let result = retrying(&self.retries, "setOwnIDDataByLoginId", || {
            self.store
                .set_ownid_data(&login_id, &ownid_data, self.create_missing_users)
        })
        .await;
        match result {
            Ok(_) => Ok(SetOwnIdDataResponse::Stored),
            Err(StoreError::NotFound) if self.legacy() => Ok(SetOwnIdDataResponse::LegacyNotFound(
                Json(LegacyError::user_not_found()),
            )),
            Err(StoreError::NotFound) => Ok(SetOwnIdDataResponse::NotFound),
            Err(StoreError::Conflict) => Ok(SetOwnIdDataResponse::Conflict(ErrorJson(
                StoreError::Conflict.into(),
            ))),
            Err(err) => Err(err.into()),
        }
    }

    async fn get(&self, request: GetOwnIdDataRequest) -> Result<GetOwnIdDataResponse, ApiError> {
        let login_id = self.login_id(&request.login_id.0)?;
        let found = |ownid_data: String| {
            GetOwnIdDataResponse::Found(Json(OwnIdDataResult::OwnIdData(OwnIdData { ownid_data })))
        };
        let result = retrying(&self.retries, "getOwnIDDataByLoginId", || {
            self.store.get_ownid_data(&login_id)
        })
        .await;
        match result {
            Ok(Some(data)) => Ok(found(data)),
            Ok(None) if self.legacy() => Ok(found(String::new())),
            Ok(None) => Ok(GetOwnIdDataResponse::NoData),
            Err(StoreError::NotFound) if self.legacy() => Ok(GetOwnIdDataResponse::Found(Json(
                OwnIdDataResult::LegacyError(LegacyError::user_not_found()),
            ))),
            Err(StoreError::NotFound) => Ok(GetOwnIdDataResponse::NotFound),
            Err(err) => Err(err.into()),
        }
    }

    async fn session(&self, request: GetSessionRequest) -> Result<GetSessionResponse, ApiError> {
        let login_id = self.login_id(&request.login_id.0)?;
        let result = retrying(&self.retries, "getSessionByLoginId", || {
            self.store.get_session_user(&login_id)
        })
        .await;
        let user = match result {
            Ok(user) => user,
            Err(StoreError::NotFound) if self.legacy() => {
                return Ok(GetSessionResponse::Issued(Json(
                    SessionResult::LegacyError(LegacyError::user_not_found()),
                )))
            }
            Err(StoreError::NotFound) => return Ok(GetSessionResponse::NotFound),
            Err(err) => return Err(err.into()),
        };
        let session_type = request.session_type.map(|kind| match kind {
            SessionTypeParam::Browser => SessionType::Browser,
            SessionTypeParam::Mobile => SessionType::Mobile,
        });
        let issued = self.sessions.issue(&user, session_type).map_err(|err| {
            ApiError::internal().caused_by(Cause::SessionSigning(err.to_string()))
        })?;
        Ok(GetSessionResponse::Issued(Json(
            SessionResult::SessionToken(SessionToken {
                token: issued.token,
                expires_at: issued.expires_at,
            }),
        )))
    }
}
