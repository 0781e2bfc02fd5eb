//! OwnID request signatures (SPEC §2) and the poem middleware that enforces them.
//!
//! `signature = base64(HMAC-SHA256(base64_decode(shared_secret), body_bytes + "." + timestamp))`.
//! The middleware checks the headers and the clock before reading the body, reads the body once
//! (bounded by `max_body_bytes`), checks the clock again (the body may have taken up to
//! `server.body_timeout`), verifies the MAC over those exact bytes, and hands the same bytes on
//! to the operation. Nothing is parsed and no database is touched before that.

mod middleware;
mod replay;
mod shared;
#[cfg(test)]
mod tests;

pub use middleware::{Replays, SignatureCheck, SignatureEndpoint, SignatureRejected};
pub use replay::{ReplayGuard, ReplayRefusal, Reservation};
pub use shared::{SharedGuard, SharedRefusal, SharedReservation, HANDLER_DEADLINE};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use poem::http::StatusCode;
use sha2::Sha256;

use crate::config::PreviousSecret;
use crate::error::ApiError;
use crate::secret::Secret;

/// The OwnID operation a signed request was sent to. OwnID signs the body and the timestamp, not
/// the path, so the replay guard remembers a signature with the operation it first came to: a
/// copy sent to another operation is a replay, and a signature released by a 5xx (so that OwnID
/// may retry it) is accepted again for that operation only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedOperation {
    /// A path under the base path that is none of the three (answered 404, or 405).
    Other = 0,
    SetOwnIdData = 1,
    GetOwnIdData = 2,
    GetSession = 3,
}

impl SignedOperation {
    /// The operation of a request path (the last segment decides).
    pub fn of(path: &str) -> Self {
        match path.rsplit('/').next() {
            Some("setOwnIDDataByLoginId") => SignedOperation::SetOwnIdData,
            Some("getOwnIDDataByLoginId") => SignedOperation::GetOwnIdData,
            Some("getSessionByLoginId") => SignedOperation::GetSession,
            _ => SignedOperation::Other,
        }
    }
}

pub const SIGNATURE_HEADER: &str = "ownid-signature";
pub const TIMESTAMP_HEADER: &str = "ownid-timestamp";

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was refused; each is a 401 with its own `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Stale,
    Invalid,
    /// A correctly signed request seen before (with `ownid.replay_protection`).
    Replayed,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Stale => "stale_timestamp",
            SignatureError::Invalid => "invalid_signature",
            SignatureError::Replayed => "replayed_request",
        }
    }

    fn message(self) -> &'static str {
        match self {
            SignatureError::Missing => {
                "the ownid-signature and ownid-timestamp headers are both required"
            }
            SignatureError::Stale => {
                "ownid-timestamp (Unix time in milliseconds) is outside the accepted clock skew"
            }
            SignatureError::Invalid => "the request signature does not match",
            SignatureError::Replayed => "this signed request was already received",
        }
    }

    pub fn into_api_error(self) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, self.code(), self.message())
    }
}

/// The shortest shared secret accepted, in bytes after base64 decoding.
pub const MIN_SECRET_BYTES: usize = 16;

/// The decoded shared secret(s) and the clock-skew policy.
pub struct SignatureVerifier {
    /// The current key first, then the previous ones still accepted during a rotation.
    keys: Vec<Key>,
    max_skew: Duration,
}

struct Key {
    bytes: Vec<u8>,
    /// Unix milliseconds after which signatures made with this key are refused.
    expires_ms: Option<i128>,
    /// The configuration key it came from, for log lines (never the secret).
    name: String,
}

impl Key {
    fn expired_at(&self, now_ms: i128) -> bool {
        self.expires_ms.is_some_and(|expires| now_ms > expires)
    }
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("keys", &format!("[{} redacted]", self.keys.len()))
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

impl SignatureVerifier {
    pub fn new(shared_secret: &Secret, max_skew: Duration) -> Result<Self, SecretError> {
        Ok(SignatureVerifier {
            keys: vec![Key {
                bytes: decode_secret(shared_secret, "ownid.shared_secret")?,
                expires_ms: None,
                name: "ownid.shared_secret".into(),
            }],
            max_skew,
        })
    }

    /// Also accepts signatures made with these secrets, so that the shared secret can be rotated
    /// without refusing OwnID's calls while the new one is rolled out; each until its expiry,
    /// when it has one (one already past is warned about here, and refused).
    pub fn with_previous(mut self, previous: &[PreviousSecret]) -> Result<Self, SecretError> {
        let now = now_ms();
        for (i, entry) in previous.iter().enumerate() {
            let name = format!("ownid.previous_shared_secrets[{i}]");
            let bytes = decode_secret(&entry.secret, &name)?;
            let expires_ms = entry.expires.map(|time| {
                time.duration_since(UNIX_EPOCH)
                    .map(|since| since.as_millis() as i128)
                    .unwrap_or(0)
            });
            let key = Key {
                bytes,
                expires_ms,
                name,
            };
            if key.expired_at(now) {
                tracing::warn!(
                    key = %key.name,
                    expired = %entry.expires.map(humantime::format_rfc3339_seconds).map(|t| t.to_string()).unwrap_or_default(),
                    "a previous shared secret has expired: requests signed with it are refused \
                     (401 invalid_signature); remove it from the configuration"
                );
            }
            self.keys.push(key);
        }
        Ok(self)
    }

    /// A fresh random secret (32 bytes, base64) for a local trial run.
    pub fn generate_secret() -> Secret {
        let bytes: [u8; 32] = rand::random();
        Secret::new(BASE64.encode(bytes))
    }

    fn mac(key: &[u8], body: &[u8], timestamp: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(body);
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac
    }

    /// The `ownid-signature` value for a body and a timestamp header value.
    pub fn sign(&self, body: &[u8], timestamp: &str) -> String {
        BASE64.encode(
            Self::mac(&self.keys[0].bytes, body, timestamp)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks the timestamp against `now_ms`; needs only the headers.
    pub fn check_timestamp(&self, timestamp: &str, now_ms: i128) -> Result<(), SignatureError> {
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::Invalid);
        }
        let sent: i128 = timestamp.parse().map_err(|_| SignatureError::Invalid)?;
        if (now_ms - sent).unsigned_abs() > self.max_skew.as_millis() {
            return Err(SignatureError::Stale);
        }
        Ok(())
    }

    /// Compares the signature with the expected MAC of each accepted key, in constant time.
    pub fn check_signature(
        &self,
        body: &[u8],
        timestamp: &str,
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.verified_mac(body, timestamp, signature, now_ms())
            .map(|_| ())
    }

    /// The signature's bytes once they verify (the replay cache's key).
    /// A signature made with a previous secret past its expiry (at `now_ms`) is refused.
    fn verified_mac(
        &self,
        body: &[u8],
        timestamp: &str,
        signature: &str,
        now_ms: i128,
    ) -> Result<Vec<u8>, SignatureError> {
        let provided = BASE64
            .decode(signature.trim())
            .map_err(|_| SignatureError::Invalid)?;
        let matched = self.keys.iter().find(|key| {
            Self::mac(&key.bytes, body, timestamp)
                .verify_slice(&provided)
                .is_ok()
        });
        match matched {
            Some(key) if key.expired_at(now_ms) => {
                tracing::warn!(
                    key = %key.name,
                    "refused a request signed with a previous shared secret that has expired \
                     (401 invalid_signature)"
                );
                Err(SignatureError::Invalid)
            }
            Some(_) => Ok(provided),
            None => Err(SignatureError::Invalid),
        }
    }
}

/// Why a configured shared secret cannot be used; `key` is its configuration key (never the
/// secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{key} is empty: set it to the application's shared secret from the OwnID console")]
    Empty { key: String },
    #[error(
        "{key} is not valid base64: paste the shared secret exactly as the OwnID console shows it"
    )]
    NotBase64 { key: String },
    #[error(
        "{key} is {bytes} bytes once base64-decoded; at least {MIN_SECRET_BYTES} are required \
         (`ownid-bridge config secret` prints a 32-byte one)"
    )]
    TooShort { key: String, bytes: usize },
}

/// HMAC-SHA256's block, in bytes.
const HMAC_BLOCK: usize = 64;

/// The key HMAC-SHA256 really signs with for a shared secret: its base64-decoded bytes (SPEC §2),
/// hashed with SHA-256 when longer than the 64-byte block, then padded with zero bytes to the
/// block (RFC 2104). Secrets with the same effective key accept each other's signatures, though
/// their texts differ: `K` and `K` followed by a zero byte, or a long key and its SHA-256.
/// `None` when the secret is not base64 (start-up refuses it anyway).
pub fn effective_hmac_key(secret: &Secret) -> Option<[u8; HMAC_BLOCK]> {
    use sha2::Digest as _;
    let bytes = BASE64.decode(secret.expose().trim()).ok()?;
    let bytes = if bytes.len() > HMAC_BLOCK {
        Sha256::digest(&bytes).to_vec()
    } else {
        bytes
    };
    let mut key = [0; HMAC_BLOCK];
    key[..bytes.len()].copy_from_slice(&bytes);
    Some(key)
}

/// Refuses an empty secret and one that is not standard base64: OwnID signs with the decoded
/// bytes, so a secret that does not decode can never verify anything.
fn decode_secret(secret: &Secret, path: &str) -> Result<Vec<u8>, SecretError> {
    let key = || path.to_owned();
    let text = secret.expose().trim();
    if text.is_empty() {
        return Err(SecretError::Empty { key: key() });
    }
    let bytes = BASE64
        .decode(text)
        .map_err(|_| SecretError::NotBase64 { key: key() })?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort {
            key: key(),
            bytes: bytes.len(),
        });
    }
    Ok(bytes)
}

pub fn now_ms() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i128)
        .unwrap_or(0)
}
