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

use crate::config::PreviousSecret;
use crate::error::ApiError;
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

/// The length of an HMAC-SHA256 signature, the replay guard's key.
const MAC_LEN: usize = 32;

/// Why the replay guard refused a correctly signed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// The signature was accepted before, or a request carrying it is being answered now.
    Replayed,
    /// The timestamp left the window while the request was arriving, and the guard may already
    /// have forgotten the signature's earlier use: refused rather than taken on trust.
    Stale,
    /// The guard holds `capacity` signatures still inside their window (fail closed: 503).
    Full,
}

/// Signatures of correctly signed requests, each remembered until its timestamp leaves the
/// clock-skew window (`ownid-timestamp + max_clock_skew`; after that the clock check refuses the
/// signature anyway). Per process: see the README for several instances.
///
/// A signature is reserved when it verifies ("in flight"), marked used when the operation answers
/// 2xx or 4xx, and released when it answers 5xx or the request is dropped before its answer
/// (the client went away), so that OwnID may retry it. It is never accepted twice with a 2xx or
/// 4xx answer in between.
///
/// Bounded: at most `capacity` entries; when full, a new signature is refused (never an entry
/// inside its window forgotten). Expired entries leave through a min-heap on their expiry, so
/// each request does O(log n) work under one mutex.
pub struct ReplayGuard {
    state: std::sync::Mutex<GuardState>,
    capacity: usize,
}

#[derive(Default)]
struct GuardState {
    entries: std::collections::HashMap<[u8; MAC_LEN], Entry>,
    /// One item per entry: (expiry, signature), soonest first.
    expiries: std::collections::BinaryHeap<std::cmp::Reverse<(i64, [u8; MAC_LEN])>>,
    /// The latest expiry removed so far: a signature expiring then or earlier may have been
    /// accepted and forgotten, so it cannot be told apart from a new one.
    forgotten_through: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EntryState {
    InFlight,
    Used,
    /// Answered 5xx or dropped before its answer: may be reserved again.
    Released,
}

#[derive(Clone, Copy)]
struct Entry {
    state: EntryState,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("entries", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            state: Default::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves a verified signature that expires at `expires_ms`. `now_ms` is the clock reading
    /// the request's timestamp was checked against, taken when the request started: every
    /// request whose own start lies inside the window finds the entry (or is refused as stale).
    pub fn reserve(
        self: &Arc<Self>,
        mac: &[u8],
        expires_ms: i128,
        now_ms: i128,
    ) -> Result<Reservation, ReplayRefusal> {
        let mac: [u8; MAC_LEN] = mac.try_into().map_err(|_| ReplayRefusal::Replayed)?;
        let expires = clamp_ms(expires_ms);
        let now = clamp_ms(now_ms);
        let mut state = self.lock();
        // Forget what expired before this request's start (never later than it).
        while let Some(std::cmp::Reverse((expiry, key))) = state.expiries.peek().copied() {
            if expiry >= now {
                break;
            }
            state.expiries.pop();
            state.entries.remove(&key);
            state.forgotten_through = state.forgotten_through.max(Some(expiry));
        }
        if state
            .forgotten_through
            .is_some_and(|through| expires <= through)
        {
            return Err(ReplayRefusal::Stale);
        }
        let full = state.entries.len() >= self.capacity;
        match state.entries.get_mut(&mac) {
            Some(entry) if entry.state == EntryState::Released => {
                entry.state = EntryState::InFlight;
            }
            Some(_) => return Err(ReplayRefusal::Replayed),
            None if full => return Err(ReplayRefusal::Full),
            None => {
                state.entries.insert(
                    mac,
                    Entry {
                        state: EntryState::InFlight,
                    },
                );
                state.expiries.push(std::cmp::Reverse((expires, mac)));
            }
        }
        Ok(Reservation {
            guard: self.clone(),
            mac,
            done: false,
        })
    }

    fn finish(&self, mac: &[u8; MAC_LEN], to: EntryState) {
        if let Some(entry) = self.lock().entries.get_mut(mac) {
            if entry.state == EntryState::InFlight {
                entry.state = to;
            }
        }
    }

    /// Signatures held (in flight, used, or released and not yet expired).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn clamp_ms(ms: i128) -> i64 {
    ms.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A signature reserved by [`ReplayGuard::reserve`]. [`Reservation::used`] marks it used;
/// dropped without that (a 5xx answer, or the request future dropped), it is released.
pub struct Reservation {
    guard: Arc<ReplayGuard>,
    mac: [u8; MAC_LEN],
    done: bool,
}

impl Reservation {
    /// The request was answered (2xx or 4xx): the signature is never accepted again.
    pub fn used(mut self) {
        self.done = true;
        self.guard.finish(&self.mac, EntryState::Used);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.guard.finish(&self.mac, EntryState::Released);
        }
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
    replays: Option<Arc<ReplayGuard>>,
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
    pub fn with_replay_protection(mut self, guard: Arc<ReplayGuard>) -> Self {
        self.replays = Some(guard);
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
    /// Checks the request; on success, the signature's reservation in the replay guard (when
    /// replay protection is on).
    async fn verify(&self, req: &mut Request) -> Result<Option<Reservation>, Response> {
        // One clock reading decides both the timestamp window and the replay guard.
        let now = now_ms();
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
            .check_timestamp(&timestamp, now)
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
            .verified_mac(&body, &timestamp, &signature, now)
            .map_err(reject)?;
        // Checked only after the signature verifies: forged requests cannot fill the guard or
        // block a genuine one.
        let reservation = match &self.check.replays {
            None => None,
            Some(replays) => {
                let sent: i128 = timestamp.parse().unwrap_or_default();
                let expires = sent + self.check.verifier.max_skew.as_millis() as i128;
                match replays.reserve(&mac, expires, now) {
                    Ok(reservation) => Some(reservation),
                    Err(ReplayRefusal::Replayed) => return Err(reject(SignatureError::Replayed)),
                    Err(ReplayRefusal::Stale) => return Err(reject(SignatureError::Stale)),
                    Err(ReplayRefusal::Full) => {
                        tracing::warn!(
                            capacity = replays.capacity,
                            "the replay guard is full; refusing new signed requests (503) until \
                             entries expire: see ownid.replay_max_entries"
                        );
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "replay_capacity",
                            "too many signed requests inside the clock-skew window; retry shortly",
                        )
                        .into_response());
                    }
                }
            }
        };
        // A JSON object with a key twice is ambiguous (which one did the signer mean?); refuse it
        // rather than let the parser pick the last.
        if let Err(err) = crate::json::check_unique_keys(&body) {
            return Err(ApiError::bad_request(err.to_string()).into_response());
        }
        // `Bytes` is reference-counted: the operation parses the very buffer that was verified.
        req.set_body(body);
        Ok(reservation)
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
        let reservation = match self.verify(&mut req).await {
            Ok(reservation) => reservation,
            Err(response) => return Ok(response),
        };
        // If this future is dropped here (the client went away), `reservation` is dropped with it
        // and the signature released.
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let status = match &result {
            Ok(response) => response.status(),
            Err(err) => err.status(),
        };
        if let Some(reservation) = reservation {
            if !status.is_server_error() {
                reservation.used();
            }
            // A 5xx drops it: released, OwnID may retry with the same signature.
        }
        result
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
        let empty = SignatureVerifier::new(&Secret::new(""), skew)
            .unwrap_err()
            .to_string();
        assert!(empty.contains("empty"), "{empty}");
        let bad = SignatureVerifier::new(&Secret::new("not base64!"), skew)
            .unwrap_err()
            .to_string();
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
            .with_previous(&[PreviousSecret::from(old.clone())])
            .unwrap();
        assert_eq!(
            rotating.check_signature(BODY, TIMESTAMP, &signed_with_old),
            Ok(())
        );
        assert_eq!(rotating.check_signature(BODY, TIMESTAMP, EXPECTED), Ok(()));
        // New signatures always use the current secret.
        assert_eq!(rotating.sign(BODY, TIMESTAMP), EXPECTED);
        let err = verifier()
            .with_previous(&[Secret::new("%%%").into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ownid.previous_shared_secrets[0] is not valid base64"),
            "{err}"
        );
    }

    fn mac(i: u32) -> [u8; MAC_LEN] {
        let mut mac = [0u8; MAC_LEN];
        mac[..4].copy_from_slice(&i.to_be_bytes());
        mac
    }

    #[test]
    fn the_replay_guard_accepts_a_signature_once() {
        let guard = Arc::new(ReplayGuard::new(100));
        guard.reserve(&mac(1), 1_000, 0).unwrap().used();
        assert_eq!(
            guard.reserve(&mac(1), 1_000, 500).err(),
            Some(ReplayRefusal::Replayed)
        );
        guard.reserve(&mac(2), 1_000, 500).unwrap().used();
        // While a request is in flight, a duplicate is refused; once it answered 5xx (or was
        // dropped) the signature may be retried.
        let in_flight = guard.reserve(&mac(3), 1_000, 0).unwrap();
        assert_eq!(
            guard.reserve(&mac(3), 1_000, 0).err(),
            Some(ReplayRefusal::Replayed)
        );
        drop(in_flight);
        guard.reserve(&mac(3), 1_000, 0).unwrap().used();
        assert_eq!(
            guard.reserve(&mac(3), 1_000, 0).err(),
            Some(ReplayRefusal::Replayed)
        );
    }

    #[test]
    fn a_request_that_started_inside_the_window_never_finds_its_signature_forgotten() {
        let guard = Arc::new(ReplayGuard::new(100));
        guard.reserve(&mac(1), 1_000, 0).unwrap().used();
        // Another request, started at 2 000, forgets everything that expired before then.
        guard.reserve(&mac(2), 3_000, 2_000).unwrap().used();
        assert_eq!(guard.len(), 1);
        // A request carrying signature 1 that started at 900 (its timestamp was inside the
        // window then) and whose body arrived only now is refused, not taken for new.
        assert_eq!(
            guard.reserve(&mac(1), 1_000, 900).err(),
            Some(ReplayRefusal::Stale)
        );
        // Signatures expiring later than anything forgotten are judged as usual.
        guard.reserve(&mac(3), 1_001, 900).unwrap().used();
    }

    #[test]
    fn the_replay_guard_is_bounded_and_refuses_new_signatures_when_full() {
        let guard = Arc::new(ReplayGuard::new(3));
        for i in 0..3 {
            guard.reserve(&mac(i), 1_000 + i as i128, 0).unwrap().used();
        }
        assert_eq!(
            guard.reserve(&mac(9), 5_000, 500).err(),
            Some(ReplayRefusal::Full)
        );
        // Nothing inside its window was forgotten to make room.
        assert_eq!(
            guard.reserve(&mac(0), 1_000, 500).err(),
            Some(ReplayRefusal::Replayed)
        );
        // Once entries expire, their room is free again.
        guard.reserve(&mac(9), 5_000, 1_003).unwrap().used();
        assert_eq!(guard.len(), 1);
        for i in 10..10_000 {
            let _ = guard.reserve(&mac(i), 20_000, 19_000);
        }
        assert_eq!(guard.len(), 3);
    }

    #[test]
    fn secrets_shorter_than_16_bytes_are_refused() {
        let skew = Duration::from_secs(60);
        // "fifteen bytes!!" and "sixteen bytes!!!"
        let short = SignatureVerifier::new(&Secret::new("ZmlmdGVlbiBieXRlcyEh"), skew)
            .unwrap_err()
            .to_string();
        assert!(
            short.starts_with("ownid.shared_secret is 15 bytes once base64-decoded"),
            "{short}"
        );
        assert!(SignatureVerifier::new(&Secret::new("c2l4dGVlbiBieXRlcyEhIQ=="), skew).is_ok());
        let err = verifier()
            .with_previous(&[Secret::new("ZmlmdGVlbiBieXRlcyEh").into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ownid.previous_shared_secrets[0] is 15 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_previous_secret_is_refused_past_its_expiry() {
        let old = Secret::new("b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ=");
        let signed_with_old = SignatureVerifier::new(&old, Duration::from_secs(60))
            .unwrap()
            .sign(BODY, TIMESTAMP);
        let expiry = humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let expiry_ms = expiry.duration_since(UNIX_EPOCH).unwrap().as_millis() as i128;
        let rotating = verifier()
            .with_previous(&[PreviousSecret {
                secret: old,
                expires: Some(expiry),
            }])
            .unwrap();
        let check = |now| rotating.verified_mac(BODY, TIMESTAMP, &signed_with_old, now);
        assert!(check(expiry_ms).is_ok());
        assert_eq!(check(expiry_ms + 1), Err(SignatureError::Invalid));
        // The current secret never expires.
        assert!(rotating
            .verified_mac(BODY, TIMESTAMP, EXPECTED, i128::MAX / 2)
            .is_ok());
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert!(!format!("{:?}", verifier()).contains("0123"));
    }
}
