use std::sync::Arc;

use super::replay::MAC_LEN;
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
    guard
        .reserve(&mac(1), 1_000, 0, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
    assert_eq!(
        guard
            .reserve(&mac(1), 1_000, 500, SignedOperation::SetOwnIdData)
            .err(),
        Some(ReplayRefusal::Replayed)
    );
    guard
        .reserve(&mac(2), 1_000, 500, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
    // While a request is in flight, a duplicate is refused; once it answered 5xx (or was
    // dropped) the signature may be retried.
    let in_flight = guard
        .reserve(&mac(3), 1_000, 0, SignedOperation::SetOwnIdData)
        .unwrap();
    assert_eq!(
        guard
            .reserve(&mac(3), 1_000, 0, SignedOperation::SetOwnIdData)
            .err(),
        Some(ReplayRefusal::Replayed)
    );
    drop(in_flight);
    guard
        .reserve(&mac(3), 1_000, 0, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
    assert_eq!(
        guard
            .reserve(&mac(3), 1_000, 0, SignedOperation::SetOwnIdData)
            .err(),
        Some(ReplayRefusal::Replayed)
    );
}

#[test]
fn a_request_that_started_inside_the_window_never_finds_its_signature_forgotten() {
    let guard = Arc::new(ReplayGuard::new(100));
    guard
        .reserve(&mac(1), 1_000, 0, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
    // Another request, started at 2 000, forgets everything that expired before then.
    guard
        .reserve(&mac(2), 3_000, 2_000, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
    assert_eq!(guard.len(), 1);
    // A request carrying signature 1 that started at 900 (its timestamp was inside the
    // window then) and whose body arrived only now is refused, not taken for new.
    assert_eq!(
        guard
            .reserve(&mac(1), 1_000, 900, SignedOperation::SetOwnIdData)
            .err(),
        Some(ReplayRefusal::Stale)
    );
    // Signatures expiring later than anything forgotten are judged as usual.
    guard
        .reserve(&mac(3), 1_001, 900, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
}

#[test]
fn the_replay_guard_is_bounded_and_refuses_new_signatures_when_full() {
    let guard = Arc::new(ReplayGuard::new(3));
    for i in 0..3 {
        guard
            .reserve(&mac(i), 1_000 + i as i128, 0, SignedOperation::SetOwnIdData)
            .unwrap()
            .used();
    }
    assert_eq!(
        guard
            .reserve(&mac(9), 5_000, 500, SignedOperation::SetOwnIdData)
            .err(),
        Some(ReplayRefusal::Full)
    );
    // Nothing inside its window was forgotten to make room.
    assert_eq!(
        guard
            .reserve(&mac(0), 1_000, 500, SignedOperation::SetOwnIdData)
            .err(),
        Some(ReplayRefusal::Replayed)
    );
    // Once entries expire, their room is free again.
    guard
        .reserve(&mac(9), 5_000, 1_003, SignedOperation::SetOwnIdData)
        .unwrap()
        .used();
    assert_eq!(guard.len(), 1);
    for i in 10..10_000 {
        let _ = guard.reserve(&mac(i), 20_000, 19_000, SignedOperation::SetOwnIdData);
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

#[test]
fn a_released_signature_is_reserved_again_for_its_own_operation_only() {
    let guard = Arc::new(ReplayGuard::new(100));
    let (set, session) = (SignedOperation::SetOwnIdData, SignedOperation::GetSession);
    let first = guard.reserve(&mac(1), 1_000, 0, set).unwrap();
    assert_eq!(
        guard.reserve(&mac(1), 1_000, 0, session).err(),
        Some(ReplayRefusal::Replayed)
    );
    // Released (the set answered 5xx): OwnID's retry of the set passes, a session does not.
    drop(first);
    assert_eq!(
        guard.reserve(&mac(1), 1_000, 0, session).err(),
        Some(ReplayRefusal::Replayed)
    );
    guard.reserve(&mac(1), 1_000, 0, set).unwrap().used();
    assert_eq!(
        guard.reserve(&mac(1), 1_000, 0, set).err(),
        Some(ReplayRefusal::Replayed)
    );
}

#[test]
fn operations_are_read_from_the_path() {
    assert_eq!(
        SignedOperation::of("/setOwnIDDataByLoginId"),
        SignedOperation::SetOwnIdData
    );
    assert_eq!(
        SignedOperation::of("/ownid/getOwnIDDataByLoginId"),
        SignedOperation::GetOwnIdData
    );
    assert_eq!(
        SignedOperation::of("/getSessionByLoginId"),
        SignedOperation::GetSession
    );
    assert_eq!(SignedOperation::of("/other"), SignedOperation::Other);
}
