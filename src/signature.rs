//! OwnID request signatures (SPEC §2) and the poem middleware that enforces them.
//!
//! `signature = base64(HMAC-SHA256(base64_decode(shared_secret), body_bytes + "." + timestamp))`.
//! The middleware checks the headers and the clock before reading the body, reads the body once
//! (bounded by `max_body_bytes`), verifies the MAC over those exact bytes, and hands the same
//! bytes on to the operation. Nothing is parsed and no database is touched before that.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use sha2::Sha256;

use crate::api::ApiError;
use crate::secret::Secret;

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

/// The decoded shared secret(s) and the clock-skew policy.
pub struct SignatureVerifier {
    /// The current key first, then the previous ones still accepted during a rotation.
    keys: Vec<Vec<u8>>,
    max_skew: Duration,
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
    pub fn new(shared_secret: &Secret, max_skew: Duration) -> Result<Self, String> {
        Ok(SignatureVerifier {
            keys: vec![decode_secret(shared_secret, "ownid.shared_secret")?],
            max_skew,
        })
    }

    /// Also accepts signatures made with these secrets, so that the shared secret can be rotated
    /// without refusing OwnID's calls while the new one is rolled out.
    pub fn with_previous(mut self, previous: &[Secret]) -> Result<Self, String> {
        for (i, secret) in previous.iter().enumerate() {
            let key = decode_secret(secret, &format!("ownid.previous_shared_secrets[{i}]"))?;
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
            Self::mac(&self.keys[0], body, timestamp)
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
        self.verified_mac(body, timestamp, signature).map(|_| ())
    }

    /// The signature's bytes once they verify (the replay cache's key).
    fn verified_mac(
        &self,
        body: &[u8],
        timestamp: &str,
        signature: &str,
    ) -> Result<Vec<u8>, SignatureError> {
        let provided = BASE64
            .decode(signature.trim())
            .map_err(|_| SignatureError::Invalid)?;
        let matches = self.keys.iter().any(|key| {
            Self::mac(key, body, timestamp)
                .verify_slice(&provided)
                .is_ok()
        });
        if matches {
            Ok(provided)
        } else {
            Err(SignatureError::Invalid)
        }
    }

    pub fn max_skew(&self) -> Duration {
        self.max_skew
    }
}

/// Refuses an empty secret and one that is not standard base64: OwnID signs with the decoded
/// bytes, so a secret that does not decode can never verify anything.
fn decode_secret(secret: &Secret, path: &str) -> Result<Vec<u8>, String> {
    let text = secret.expose().trim();
    if text.is_empty() {
        return Err(format!(
            "{path} is empty: set it to the application's shared secret from the OwnID console"
        ));
    }
    let key = BASE64.decode(text).map_err(|_| {
        format!(
            "{path} is not valid base64: paste the shared secret exactly as the OwnID console \
             shows it"
        )
    })?;
    if key.is_empty() {
        return Err(format!("{path} decodes to no bytes"));
    }
    Ok(key)
}

/// Signatures already accepted, each kept until its timestamp leaves the skew window (after that
/// the clock check refuses it anyway). Per process: see the README for several instances.
#[derive(Default)]
pub struct ReplayCache {
    seen: std::sync::Mutex<ReplayState>,
}

#[derive(Default)]
struct ReplayState {
    expiries: std::collections::HashMap<Vec<u8>, i128>,
    next_prune: usize,
}

impl ReplayCache {
    /// Records the signature; `false` when it was already recorded and has not expired.
    pub fn first_use(&self, mac: Vec<u8>, expires_ms: i128, now_ms: i128) -> bool {
        let mut state = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.expiries.len() >= state.next_prune {
            state.expiries.retain(|_, expiry| *expiry >= now_ms);
            state.next_prune = (state.expiries.len() * 2).max(1024);
        }
        match state.expiries.get(&mac) {
            Some(expiry) if *expiry >= now_ms => false,
            _ => {
                state.expiries.insert(mac, expires_ms);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .map(|state| state.expiries.len())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn now_ms() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i128)
        .unwrap_or(0)
}

/// The middleware: wraps the three OwnID operations.
#[derive(Clone)]
pub struct SignatureCheck {
    verifier: Arc<SignatureVerifier>,
    max_body_bytes: usize,
    body_timeout: Duration,
    replays: Option<Arc<ReplayCache>>,
}

impl SignatureCheck {
    pub fn new(
        verifier: Arc<SignatureVerifier>,
        max_body_bytes: usize,
        body_timeout: Duration,
    ) -> Self {
        SignatureCheck {
            verifier,
            max_body_bytes,
            body_timeout,
            replays: None,
        }
    }

    /// Accepts each signed request once within its skew window.
    pub fn with_replay_protection(mut self, cache: Arc<ReplayCache>) -> Self {
        self.replays = Some(cache);
        self
    }
}

impl<E: Endpoint> Middleware<E> for SignatureCheck {
    type Output = SignatureEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SignatureEndpoint {
            inner,
            check: self.clone(),
        }
    }
}

pub struct SignatureEndpoint<E> {
    inner: E,
    check: SignatureCheck,
}

/// A marker the request log reads to count signature failures by reason.
#[derive(Clone, Copy, Debug)]
pub struct SignatureRejected(pub SignatureError);

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

impl<E: Endpoint> SignatureEndpoint<E> {
    async fn verify(&self, req: &mut Request) -> Result<(), Response> {
        let reject = |reason: SignatureError| {
            let mut response = reason.into_api_error().into_response();
            response.set_data(SignatureRejected(reason));
            response
        };
        let (Some(signature), Some(timestamp)) =
            (header(req, SIGNATURE_HEADER), header(req, TIMESTAMP_HEADER))
        else {
            return Err(reject(SignatureError::Missing));
        };
        let (signature, timestamp) = (signature.to_owned(), timestamp.to_owned());
        self.check
            .verifier
            .check_timestamp(&timestamp, now_ms())
            .map_err(reject)?;

        let declared = header(req, "content-length").and_then(|len| len.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.check.max_body_bytes as u64) {
            return Err(too_large(self.check.max_body_bytes));
        }
        let read = req.take_body().into_bytes_limit(self.check.max_body_bytes);
        let Ok(read) = tokio::time::timeout(self.check.body_timeout, read).await else {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {:?}",
                    self.check.body_timeout
                ),
            )
            .into_response());
        };
        let body = match read {
            Ok(body) => body,
            Err(ReadBodyError::PayloadTooLarge) => {
                return Err(too_large(self.check.max_body_bytes))
            }
            Err(err) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request body could not be read: {err}"),
                )
                .into_response())
            }
        };
        let mac = self
            .check
            .verifier
            .verified_mac(&body, &timestamp, &signature)
            .map_err(reject)?;
        if let Some(replays) = &self.check.replays {
            // Checked only after the signature verifies: forged requests cannot fill the cache
            // or block a genuine one.
            let sent: i128 = timestamp.parse().unwrap_or_default();
            let expires = sent + self.check.verifier.max_skew.as_millis() as i128;
            if !replays.first_use(mac, expires, now_ms()) {
                return Err(reject(SignatureError::Replayed));
            }
        }
        // A JSON object with a key twice is ambiguous (which one did the signer mean?); refuse it
        // rather than let the parser pick the last.
        if let Err(message) = crate::json::check_unique_keys(&body) {
            return Err(ApiError::bad_request(message).into_response());
        }
        // `Bytes` is reference-counted: the operation parses the very buffer that was verified.
        req.set_body(body);
        Ok(())
    }
}

fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
    .into_response()
}

impl<E: Endpoint> Endpoint for SignatureEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if let Err(response) = self.verify(&mut req).await {
            return Ok(response);
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const BODY: &[u8] = br#"{"loginId":"user@example.com","ownIdData":"ownid==abc"}"#;
    const TIMESTAMP: &str = "1717000000000";
    const EXPECTED: &str = "zvTkk3T4pxfM6rvszpQr+jyynM6K7UFBtjZKE0yBfbE=";
    const SECRET_TEXT_AS_KEY: &str = "hvmna+t69s1lgS1wlb9+9sf/f820pMVIPLxcbMrHS4E=";

    fn verifier() -> SignatureVerifier {
        SignatureVerifier::new(&Secret::new(SECRET), Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn the_spec_test_vector_signs_and_verifies() {
        let verifier = verifier();
        assert_eq!(verifier.sign(BODY, TIMESTAMP), EXPECTED);
        assert_eq!(verifier.check_signature(BODY, TIMESTAMP, EXPECTED), Ok(()));
    }

    #[test]
    fn the_secret_text_used_as_key_is_refused() {
        // The vector's "wrong" signature really is HMAC keyed with the secret's text.
        let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(BODY);
        mac.update(b".");
        mac.update(TIMESTAMP.as_bytes());
        assert_eq!(
            BASE64.encode(mac.finalize().into_bytes()),
            SECRET_TEXT_AS_KEY
        );
        assert_eq!(
            verifier().check_signature(BODY, TIMESTAMP, SECRET_TEXT_AS_KEY),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn any_change_to_body_timestamp_or_signature_is_refused() {
        let verifier = verifier();
        let tampered = br#"{"loginId":"user@example.com","ownIdData":"ownid==abd"}"#;
        let respaced = br#"{"loginId": "user@example.com","ownIdData":"ownid==abc"}"#;
        for (body, ts, sig) in [
            (&tampered[..], TIMESTAMP, EXPECTED),
            (&respaced[..], TIMESTAMP, EXPECTED),
            (BODY, "1717000000001", EXPECTED),
            (
                BODY,
                TIMESTAMP,
                "zvTkk3T4pxfM6rvszpQr+jyynM6K7UFBtjZKE0yBfbA=",
            ),
            (BODY, TIMESTAMP, "not base64!"),
            (BODY, TIMESTAMP, ""),
        ] {
            assert_eq!(
                verifier.check_signature(body, ts, sig),
                Err(SignatureError::Invalid)
            );
        }
    }

    #[test]
    fn timestamps_outside_the_skew_are_stale() {
        let verifier = verifier();
        let sent: i128 = TIMESTAMP.parse().unwrap();
        assert_eq!(verifier.check_timestamp(TIMESTAMP, sent + 60_000), Ok(()));
        assert_eq!(verifier.check_timestamp(TIMESTAMP, sent - 60_000), Ok(()));
        assert_eq!(
            verifier.check_timestamp(TIMESTAMP, sent + 60_001),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verifier.check_timestamp(TIMESTAMP, sent - 60_001),
            Err(SignatureError::Stale)
        );
        // Seconds instead of milliseconds land in January 1970.
        assert_eq!(
            verifier.check_timestamp("1717000000", sent),
            Err(SignatureError::Stale)
        );
        for malformed in [
            "",
            "-1717000000000",
            "1717000000000.5",
            "17e11",
            " 1717000000000",
        ] {
            assert_eq!(
                verifier.check_timestamp(malformed, sent),
                Err(SignatureError::Invalid),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn empty_or_non_base64_secrets_are_refused() {
        let skew = Duration::from_secs(60);
        let empty = SignatureVerifier::new(&Secret::new(""), skew).unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
        let bad = SignatureVerifier::new(&Secret::new("not base64!"), skew).unwrap_err();
        assert!(bad.contains("not valid base64"), "{bad}");
        assert!(!bad.contains("not base64!"), "the secret leaked into {bad}");
    }

    #[test]
    fn previous_secrets_are_accepted_during_a_rotation() {
        let old = Secret::new("b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ=");
        let signed_with_old = SignatureVerifier::new(&old, Duration::from_secs(60))
            .unwrap()
            .sign(BODY, TIMESTAMP);
        let current = verifier();
        assert_eq!(
            current.check_signature(BODY, TIMESTAMP, &signed_with_old),
            Err(SignatureError::Invalid)
        );
        let rotating = verifier()
            .with_previous(std::slice::from_ref(&old))
            .unwrap();
        assert_eq!(
            rotating.check_signature(BODY, TIMESTAMP, &signed_with_old),
            Ok(())
        );
        assert_eq!(rotating.check_signature(BODY, TIMESTAMP, EXPECTED), Ok(()));
        // New signatures always use the current secret.
        assert_eq!(rotating.sign(BODY, TIMESTAMP), EXPECTED);
        let err = verifier().with_previous(&[Secret::new("%%%")]).unwrap_err();
        assert!(
            err.starts_with("ownid.previous_shared_secrets[0] is not valid base64"),
            "{err}"
        );
    }

    #[test]
    fn the_replay_cache_accepts_a_signature_once_until_it_expires() {
        let cache = ReplayCache::default();
        assert!(cache.first_use(vec![1], 1_000, 0));
        assert!(!cache.first_use(vec![1], 1_000, 500));
        assert!(cache.first_use(vec![2], 1_000, 500));
        // Expired entries no longer block, and are pruned.
        assert!(cache.first_use(vec![1], 3_000, 2_000));
        for i in 0..3_000u32 {
            cache.first_use(i.to_be_bytes().to_vec(), 2_500, 2_000);
        }
        // Pruning is amortized: once the map has doubled, expired entries are dropped.
        for i in 3_000..6_000u32 {
            cache.first_use(i.to_be_bytes().to_vec(), 10_000, 5_000);
        }
        assert_eq!(cache.len(), 3_000);
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert!(!format!("{:?}", verifier()).contains("0123"));
    }
}
