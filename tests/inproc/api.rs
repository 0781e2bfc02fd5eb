//! SPEC §1 (the contract, both response modes) and §2 (signatures), in process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use async_trait::async_trait;
use ownid_bridge::signature::now_ms;
use ownid_bridge_store::{SchemaReport, SessionUser, SetOutcome, StoreError, UserStore};
use serde_json::json;

const SET: &str = "setOwnIDDataByLoginId";
const GET: &str = "getOwnIDDataByLoginId";
const SESSION: &str = "getSessionByLoginId";

// ---- SPEC §1, standard mode ----

#[tokio::test]
async fn set_then_get_round_trips_and_overwrites() {
    let app = spawn(&[]).await;
    app.add_user("alice@example.com").await;
    app.set_data("alice@example.com", "first")
        .await
        .assert_empty(204);
    app.set_data("alice@example.com", "second")
        .await
        .assert_empty(204);
    let reply = app.get_data("alice@example.com").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({ "ownIdData": "second" }));
}

#[tokio::test]
async fn a_user_without_data_is_204_and_an_empty_value_counts_as_none() {
    let app = spawn(&[]).await;
    app.add_user("bob@example.com").await;
    app.get_data("bob@example.com").await.assert_empty(204);
    app.set_data("bob@example.com", "x").await.assert_empty(204);
    app.set_data("bob@example.com", "").await.assert_empty(204);
    app.get_data("bob@example.com").await.assert_empty(204);
}

#[tokio::test]
async fn an_unknown_user_is_404_with_an_empty_body_on_all_three() {
    let app = spawn(&[]).await;
    app.set_data("ghost@example.com", "x")
        .await
        .assert_empty(404);
    app.get_data("ghost@example.com").await.assert_empty(404);
    app.session("ghost@example.com").await.assert_empty(404);
    // The refused set did not create the user.
    assert!(matches!(
        app.store.get_ownid_data("ghost@example.com").await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn create_missing_users_creates_on_set() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true")]).await;
    app.set_data("new@example.com", "created")
        .await
        .assert_empty(204);
    assert_eq!(
        app.get_data("new@example.com").await.json(),
        json!({ "ownIdData": "created" })
    );
    // get and session still answer 404 for users nobody created.
    app.get_data("other@example.com").await.assert_empty(404);
}

#[tokio::test]
async fn a_session_does_not_need_ownid_data() {
    let app = spawn(&[]).await;
    app.add_user("carol@example.com").await;
    let reply = app.session("carol@example.com").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert!(body["token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert!(body["expiresAt"].as_u64().is_some());
}

#[tokio::test]
async fn unicode_and_5kb_values_are_stored_byte_for_byte() {
    let app = spawn(&[]).await;
    app.add_user("dora@example.com").await;
    let five_kb = "ÿ€😀x".repeat(5 * 1024 / 10);
    for value in ["ünïcödé 😀🔐 \"q\" \\ \u{1} tab\t", five_kb.as_str()] {
        app.set_data("dora@example.com", value)
            .await
            .assert_empty(204);
        let reply = app.get_data("dora@example.com").await;
        assert_eq!(reply.json()["ownIdData"], value);
    }
}

#[tokio::test]
async fn login_id_validation() {
    let app = spawn(&[]).await;
    let max = "a".repeat(316) + "@x.c";
    assert_eq!(max.chars().count(), 320);
    app.add_user(&max).await;
    app.get_data(&max).await.assert_empty(204);
    let over = "a".repeat(317) + "@x.c";
    app.get_data(&over)
        .await
        .assert_error(400, "invalid_request");
    app.get_data("").await.assert_error(400, "invalid_request");
    for bad in [
        "nul\u{0}byte@example.com",
        "line\nbreak@example.com",
        "esc\u{1b}@x.c",
    ] {
        app.get_data(bad).await.assert_error(400, "invalid_request");
        app.set_data(bad, "x")
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn malformed_requests_are_400_with_the_error_body() {
    let app = spawn(&[]).await;
    for (operation, body) in [
        (GET, "{"),
        (GET, "not json"),
        (GET, "[]"),
        (GET, "{}"),
        (GET, r#"{"loginId": 42}"#),
        (GET, r#"{"loginId": null}"#),
        (SET, r#"{"loginId": "a@b.c"}"#),
        (SET, r#"{"loginId": "a@b.c", "ownIdData": 5}"#),
        (SESSION, r#"{"loginId": "a@b.c", "sessionType": "desktop"}"#),
        (SESSION, ""),
    ] {
        let reply = app.signed(operation, body).await;
        assert_eq!(reply.status, 400, "{operation} {body:?}: {}", reply.body);
        reply.assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_400() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let timestamp = fresh_timestamp();
    let signature = sign(body, &timestamp);
    let reply = app
        .post(
            GET,
            body,
            &[
                ("content-type", "text/plain"),
                ("ownid-timestamp", &timestamp),
                ("ownid-signature", &signature),
            ],
        )
        .await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn unknown_fields_and_unicode_escapes_are_accepted() {
    let app = spawn(&[]).await;
    app.add_user("erin@example.com").await;
    let body = r#"{"loginId":"erin\u0040example.com","ownIdData":"caf\u00e9 \ud83d\ude00","newOwnIdField":{"x":[1,2]}}"#;
    app.signed(SET, body).await.assert_empty(204);
    let reply = app.get_data("erin@example.com").await;
    assert_eq!(reply.json(), json!({ "ownIdData": "café 😀" }));
    let body = r#"{"sessionType":"mobile","extra":true,"loginId":"erin@example.com"}"#;
    assert_eq!(app.signed(SESSION, body).await.status, 200);
}

#[tokio::test]
async fn ownid_data_over_the_configured_maximum_is_413_and_nothing_changes() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__MAX_OWNID_DATA_CHARS", "10")]).await;
    app.add_user("fay@example.com").await;
    app.set_data("fay@example.com", "0123456789")
        .await
        .assert_empty(204);
    app.set_data("fay@example.com", "0123456789A")
        .await
        .assert_error(413, "payload_too_large");
    // Ten characters, more than ten bytes: the limit counts characters.
    app.set_data("fay@example.com", "😀😀😀😀😀😀😀😀😀😀")
        .await
        .assert_empty(204);
    app.set_data("fay@example.com", "0123456789")
        .await
        .assert_empty(204);
    app.set_data("fay@example.com", "😀😀😀😀😀😀😀😀😀😀😀")
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(
        app.get_data("fay@example.com").await.json()["ownIdData"],
        "0123456789"
    );
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413() {
    let app = spawn(&[("OWNID_BRIDGE__SERVER__MAX_BODY_BYTES", "100")]).await;
    let body = json!({ "loginId": "a@b.c", "ownIdData": "x".repeat(200) }).to_string();
    app.signed(SET, &body)
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn lowercase_normalization_applies_before_lookup_and_validation() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__LOGIN_ID_NORMALIZATION", "lowercase")]).await;
    app.add_user("gus@example.com").await;
    app.set_data("Gus@Example.COM", "v").await.assert_empty(204);
    assert_eq!(
        app.get_data("GUS@example.com").await.json(),
        json!({ "ownIdData": "v" })
    );
    let reply = app.session("gUs@example.com").await;
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let claims = decode_hs256(&token);
    assert_eq!(claims["sub"], "gus@example.com");
}

#[tokio::test]
async fn without_normalization_login_ids_are_exact() {
    let app = spawn(&[]).await;
    app.add_user("hal@example.com").await;
    app.get_data("Hal@example.com").await.assert_empty(404);
}

// ---- SPEC §1, legacy mode ----

#[tokio::test]
async fn legacy_mode_answers_200_with_error_code_for_unknown_users() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__RESPONSES", "legacy")]).await;
    let expected = json!({ "errorCode": 404, "errorMessage": "User not found" });
    for reply in [
        app.set_data("ghost@example.com", "x").await,
        app.get_data("ghost@example.com").await,
        app.session("ghost@example.com").await,
    ] {
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json(), expected);
    }
}

#[tokio::test]
async fn legacy_mode_answers_an_empty_string_for_a_user_without_data() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__RESPONSES", "legacy")]).await;
    app.add_user("ivy@example.com").await;
    let reply = app.get_data("ivy@example.com").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({ "ownIdData": "" }));
    app.set_data("ivy@example.com", "data")
        .await
        .assert_empty(204);
    assert_eq!(
        app.get_data("ivy@example.com").await.json(),
        json!({ "ownIdData": "data" })
    );
    assert_eq!(app.session("ivy@example.com").await.status, 200);
    // Errors that are not about the user keep their statuses in legacy mode.
    app.get_data("").await.assert_error(400, "invalid_request");
    app.post(GET, "{}", &[])
        .await
        .assert_error(401, "missing_signature");
}

// ---- SPEC §2, signatures ----

fn signed_headers<'a>(timestamp: &'a str, signature: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("content-type", "application/json"),
        ("ownid-timestamp", timestamp),
        ("ownid-signature", signature),
    ]
}

#[tokio::test]
async fn missing_headers_are_401_missing_signature() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let timestamp = fresh_timestamp();
    let signature = sign(body, &timestamp);
    for headers in [
        vec![("content-type", "application/json")],
        vec![("ownid-timestamp", timestamp.as_str())],
        vec![("ownid-signature", signature.as_str())],
    ] {
        app.post(GET, body, &headers)
            .await
            .assert_error(401, "missing_signature");
    }
}

#[tokio::test]
async fn the_spec_test_vector_is_accepted_as_sent() {
    // The vector's timestamp is from 2024: accept it with a skew wide enough to reach it.
    let app = spawn(&[("OWNID_BRIDGE__OWNID__MAX_CLOCK_SKEW", "36500d")]).await;
    app.add_user("user@example.com").await;
    let body = r#"{"loginId":"user@example.com","ownIdData":"ownid==abc"}"#;
    let headers = signed_headers(
        "1717000000000",
        "zvTkk3T4pxfM6rvszpQr+jyynM6K7UFBtjZKE0yBfbE=",
    );
    app.post(SET, body, &headers).await.assert_empty(204);
    assert_eq!(
        app.get_data("user@example.com").await.json()["ownIdData"],
        "ownid==abc"
    );
    // The same request signed with the secret's text as key is refused.
    let wrong = signed_headers(
        "1717000000000",
        "hvmna+t69s1lgS1wlb9+9sf/f820pMVIPLxcbMrHS4E=",
    );
    app.post(SET, body, &wrong)
        .await
        .assert_error(401, "invalid_signature");
}

#[tokio::test]
async fn a_tampered_body_is_401_and_nothing_is_stored() {
    let app = spawn(&[]).await;
    app.add_user("jay@example.com").await;
    let signed_body = r#"{"loginId":"jay@example.com","ownIdData":"mine"}"#;
    let sent_body = r#"{"loginId":"jay@example.com","ownIdData":"evil"}"#;
    let timestamp = fresh_timestamp();
    let signature = sign(signed_body, &timestamp);
    app.post(SET, sent_body, &signed_headers(&timestamp, &signature))
        .await
        .assert_error(401, "invalid_signature");
    app.get_data("jay@example.com").await.assert_empty(204);
}

#[tokio::test]
async fn a_signature_with_another_key_is_401() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let timestamp = fresh_timestamp();
    let other = ownid_bridge::signature::SignatureVerifier::new(
        &ownid_bridge::secret::Secret::new("b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA=="),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let signature = other.sign(body.as_bytes(), &timestamp);
    app.post(GET, body, &signed_headers(&timestamp, &signature))
        .await
        .assert_error(401, "invalid_signature");
}

#[tokio::test]
async fn the_secret_text_used_as_key_is_401() {
    use hmac::{Hmac, Mac};
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let timestamp = fresh_timestamp();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{body}.{timestamp}").as_bytes());
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    app.post(GET, body, &signed_headers(&timestamp, &signature))
        .await
        .assert_error(401, "invalid_signature");
}

#[tokio::test]
async fn stale_and_future_timestamps_are_401_stale_timestamp() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__MAX_CLOCK_SKEW", "30s")]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let now = now_ms();
    for timestamp in [now - 31_000, now + 31_000, now / 1000] {
        let timestamp = timestamp.to_string();
        let signature = sign(body, &timestamp);
        app.post(GET, body, &signed_headers(&timestamp, &signature))
            .await
            .assert_error(401, "stale_timestamp");
    }
    // Inside the window, either side, is fine.
    for timestamp in [now - 25_000, now + 25_000] {
        let timestamp = timestamp.to_string();
        let signature = sign(body, &timestamp);
        app.post(GET, body, &signed_headers(&timestamp, &signature))
            .await
            .assert_empty(404);
    }
}

#[tokio::test]
async fn a_malformed_timestamp_is_401() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    for timestamp in ["soon", "1.7e12", ""] {
        let signature = sign(body, timestamp);
        let reply = app
            .post(GET, body, &signed_headers(timestamp, &signature))
            .await;
        assert_eq!(reply.status, 401, "{timestamp:?}: {}", reply.body);
    }
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let timestamp = fresh_timestamp();
    let signature = sign(body, &timestamp);
    let headers = [
        ("Content-Type", "application/json"),
        ("OWNID-TIMESTAMP", timestamp.as_str()),
        ("OwnId-Signature", signature.as_str()),
    ];
    app.post(GET, body, &headers).await.assert_empty(404);
}

#[tokio::test]
async fn signatures_cover_the_raw_bytes_whatever_their_spacing() {
    let app = spawn(&[]).await;
    app.add_user("kim@example.com").await;
    for body in [
        "{ \"loginId\" : \"kim@example.com\" ,\n\t\"ownIdData\":\"a\" }",
        "\n\n{\"ownIdData\":\"b\",\"loginId\":\"kim@example.com\"}   \r\n",
    ] {
        app.signed(SET, body).await.assert_empty(204);
    }
    assert_eq!(
        app.get_data("kim@example.com").await.json()["ownIdData"],
        "b"
    );
}

#[tokio::test]
async fn unsigned_requests_never_reach_the_store() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(ScriptedStore {
        calls: calls.clone(),
        fail: || StoreError::Other("should not be called".into()),
    });
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_store(test_config(dir.path(), &[]), store, dir);
    let body = r#"{"loginId":"a@b.c","ownIdData":"x"}"#;
    app.post(SET, body, &[])
        .await
        .assert_error(401, "missing_signature");
    let timestamp = fresh_timestamp();
    app.post(SET, body, &signed_headers(&timestamp, "AAAA"))
        .await
        .assert_error(401, "invalid_signature");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---- errors that are not about the user ----

/// A store whose every call fails the same way (and counts calls).
struct ScriptedStore {
    calls: Arc<AtomicUsize>,
    fail: fn() -> StoreError,
}

impl ScriptedStore {
    fn fail<T>(&self) -> Result<T, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err((self.fail)())
    }
}

#[async_trait]
impl UserStore for ScriptedStore {
    fn backend(&self) -> &'static str {
        "scripted"
    }
    async fn get_ownid_data(&self, _: &str) -> Result<Option<String>, StoreError> {
        self.fail()
    }
    async fn set_ownid_data(&self, _: &str, _: &str, _: bool) -> Result<SetOutcome, StoreError> {
        self.fail()
    }
    async fn get_session_user(&self, _: &str) -> Result<SessionUser, StoreError> {
        self.fail()
    }
    async fn create_user(&self, _: &str) -> Result<bool, StoreError> {
        self.fail()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.fail()
    }
    async fn inspect(&self) -> Result<SchemaReport, StoreError> {
        self.fail()
    }
    async fn apply_schema(
        &self,
        _: &ownid_bridge_store::SchemaOptions,
    ) -> Result<ownid_bridge_store::SchemaChanges, StoreError> {
        self.fail()
    }
    async fn export_ownid_data(
        &self,
        _: usize,
        _: ownid_bridge_store::ExportSink<'_>,
    ) -> Result<u64, StoreError> {
        self.fail()
    }
}

fn scripted_app(fail: fn() -> StoreError) -> TestApp {
    let store = Arc::new(ScriptedStore {
        calls: Arc::new(AtomicUsize::new(0)),
        fail,
    });
    let dir = tempfile::tempdir().unwrap();
    spawn_with_store(test_config(dir.path(), &[]), store, dir)
}

#[tokio::test]
async fn an_unavailable_database_is_503_with_retry_after_on_every_operation() {
    let app = scripted_app(|| StoreError::Unavailable("connection refused to db:5432".into()));
    for reply in [
        app.set_data("a@b.c", "x").await,
        app.get_data("a@b.c").await,
        app.session("a@b.c").await,
        app.get("/readyz").await,
    ] {
        reply.assert_error(503, "storage_unavailable");
        assert!(reply.headers.get("retry-after").is_some());
        assert!(!reply.body.contains("5432"), "{}", reply.body);
    }
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn an_unexpected_database_error_is_500_without_details() {
    let app =
        scripted_app(|| StoreError::Other("syntax error near SELECT \"secret_column\"".into()));
    for reply in [
        app.set_data("a@b.c", "x").await,
        app.get_data("a@b.c").await,
        app.session("a@b.c").await,
    ] {
        reply.assert_error(500, "internal");
        assert!(!reply.body.contains("SELECT"), "{}", reply.body);
    }
}

#[tokio::test]
async fn a_column_too_narrow_is_413() {
    let app = scripted_app(|| StoreError::TooLarge { max_chars: 5000 });
    app.set_data("a@b.c", "x")
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn a_look_alike_holding_the_index_is_409_on_set() {
    let app = scripted_app(|| StoreError::Conflict);
    app.set_data("ALICE@example.com", "x")
        .await
        .assert_error(409, "login_id_conflict");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_body() {
    let app = spawn(&[]).await;
    app.get("/nope").await.assert_error(404, "not_found");
    // Unsigned, the signature check answers first; signed, the wrong method is a 405 naming POST.
    let reply = app.get("/ownid/getOwnIDDataByLoginId").await;
    reply.assert_error(401, "missing_signature");
    let timestamp = fresh_timestamp();
    let signature = sign("", &timestamp);
    let reply = crate::common::read(
        app.client
            .put("/ownid/getOwnIDDataByLoginId")
            .header("ownid-timestamp", &timestamp)
            .header("ownid-signature", &signature)
            .send()
            .await,
    )
    .await;
    reply.assert_error(405, "method_not_allowed");
    assert_eq!(reply.headers.get("allow").unwrap(), "POST");
    let reply = crate::common::read(app.client.post("/healthz").send().await).await;
    reply.assert_error(405, "method_not_allowed");
    assert_eq!(reply.headers.get("allow").unwrap(), "GET");
}

#[tokio::test]
async fn requests_get_a_request_id() {
    let app = spawn(&[]).await;
    let reply = app.get("/healthz").await;
    assert!(reply.headers.get("x-request-id").is_some());
    let echoed = crate::common::read(
        app.client
            .get("/healthz")
            .header("x-request-id", "abc-123")
            .send()
            .await,
    )
    .await;
    assert_eq!(echoed.headers.get("x-request-id").unwrap(), "abc-123");
}

#[tokio::test]
async fn callers_outside_allowed_networks_are_403_before_the_signature_check() {
    // In process there is no socket peer, so no network can contain the caller.
    let app = spawn(&[("OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS", "203.0.113.0/24")]).await;
    app.get_data("a@b.c").await.assert_error(403, "forbidden");
    app.post(GET, "{}", &[])
        .await
        .assert_error(403, "forbidden");
    // Health, readiness and the document stay reachable.
    assert_eq!(app.get("/healthz").await.status, 200);
}

fn decode_hs256(token: &str) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .expect("a valid HS256 token")
    .claims
}
