//! SPEC §3: tokens decoded and verified with jsonwebtoken, HMAC and asymmetric with JWKS.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use ownid_bridge::config::Config;
use ownid_bridge::session::SessionIssuer;
use ownid_bridge::storage;
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

async fn token_for(app: &TestApp, body: Value) -> String {
    let reply = app.signed("getSessionByLoginId", &body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["token"].as_str().unwrap().to_owned()
}

fn hs256_claims(token: &str, validation: &Validation) -> Value {
    decode::<Value>(
        token,
        &DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        validation,
    )
    .expect("token verifies")
    .claims
}

#[tokio::test]
async fn hs256_tokens_carry_the_required_claims() {
    let app = spawn(&[
        ("OWNID_BRIDGE__SESSION__ISSUER", "https://login.example.com"),
        ("OWNID_BRIDGE__SESSION__AUDIENCE", "example-web"),
        ("OWNID_BRIDGE__SESSION__TTL", "15m"),
    ])
    .await;
    app.add_user("alice@example.com").await;
    let token = token_for(&app, json!({ "loginId": "alice@example.com" })).await;
    assert_eq!(decode_header(&token).unwrap().alg, Algorithm::HS256);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["https://login.example.com"]);
    validation.set_audience(&["example-web"]);
    validation.set_required_spec_claims(&["sub", "exp", "iat", "iss", "aud"]);
    let claims = hs256_claims(&token, &validation);
    assert_eq!(claims["sub"], "alice@example.com");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 15 * 60);
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));

    // A token from another secret does not verify.
    let mut wrong = Validation::new(Algorithm::HS256);
    wrong.validate_aud = false;
    assert!(decode::<Value>(
        &token,
        &DecodingKey::from_secret(b"another-secret-another-secret-xx"),
        &wrong
    )
    .is_err());
}

#[tokio::test]
async fn every_token_has_its_own_jti() {
    let app = spawn(&[]).await;
    app.add_user("bob@example.com").await;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let token = token_for(&app, json!({ "loginId": "bob@example.com" })).await;
        let jti = hs256_claims(&token, &validation)["jti"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(seen.insert(jti), "a jti repeated");
    }
}

#[tokio::test]
async fn lifetimes_follow_the_session_type() {
    let app = spawn(&[
        ("OWNID_BRIDGE__SESSION__TTL", "1h"),
        ("OWNID_BRIDGE__SESSION__TTL_BY_SESSION_TYPE__MOBILE", "30d"),
        ("OWNID_BRIDGE__SESSION__TTL_BY_SESSION_TYPE__BROWSER", "2h"),
    ])
    .await;
    app.add_user("carol@example.com").await;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    // `null` is read as absent: clients built on pydantic and the like send it for an unset
    // field.
    for (session_type, seconds) in [
        (None, 3600),
        (Some(json!(null)), 3600),
        (Some(json!("browser")), 7200),
        (Some(json!("mobile")), 30 * 86400),
    ] {
        let mut body = json!({ "loginId": "carol@example.com" });
        if let Some(kind) = &session_type {
            body["sessionType"] = kind.clone();
        }
        let reply = app.signed("getSessionByLoginId", &body.to_string()).await;
        let token = reply.json()["token"].as_str().unwrap().to_owned();
        let claims = hs256_claims(&token, &validation);
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, seconds, "{session_type:?}");
        assert_eq!(reply.json()["expiresAt"], claims["exp"]);
    }
}

/// For each asymmetric algorithm: the token verifies with the key published at the JWKS path.
#[tokio::test]
async fn asymmetric_tokens_verify_with_the_published_jwks() {
    for (algorithm, name, file) in [
        (Algorithm::ES256, "ES256", "es256-test-only.pem"),
        (Algorithm::EdDSA, "EdDSA", "eddsa-test-only.pem"),
        (Algorithm::RS256, "RS256", "rs256-test-only.pem"),
    ] {
        let path = fixture(file);
        let app = spawn(&[
            ("OWNID_BRIDGE__SESSION__ALGORITHM", name),
            ("OWNID_BRIDGE__SESSION__PRIVATE_KEY_FILE", &path),
            ("OWNID_BRIDGE__SESSION__KEY_ID", "test-key-1"),
        ])
        .await;
        app.add_user("dan@example.com").await;
        let token = token_for(&app, json!({ "loginId": "dan@example.com" })).await;
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm);
        assert_eq!(header.kid.as_deref(), Some("test-key-1"));

        let reply = app.get("/.well-known/jwks.json").await;
        assert_eq!(reply.status, 200, "{name}");
        let jwks: JwkSet = serde_json::from_str(&reply.body).unwrap();
        let jwk = jwks.find("test-key-1").expect("the key is published");
        // Only public parameters are published.
        assert!(
            !reply.body.contains("\"d\""),
            "{name}: private key published: {}",
            reply.body
        );
        let mut validation = Validation::new(algorithm);
        validation.validate_aud = false;
        let claims = decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap_or_else(|err| panic!("{name}: {err}"))
            .claims;
        assert_eq!(claims["sub"], "dan@example.com");
    }
}

#[tokio::test]
async fn hmac_secrets_are_never_published() {
    let app = spawn(&[]).await;
    app.get("/.well-known/jwks.json")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn user_id_and_claim_columns_of_an_existing_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("test.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, Email TEXT NOT NULL UNIQUE, \
         \"OwnIdData\" TEXT, plan TEXT, verified INTEGER)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO accounts (id, Email, plan, verified) VALUES (42, 'eve@example.com', 'pro', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let config = test_config(
        dir.path(),
        &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "accounts"),
            ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "Email"),
            ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "OwnIdData"),
            ("OWNID_BRIDGE__STORAGE__USERS__USER_ID", "id"),
            ("OWNID_BRIDGE__STORAGE__USERS__CLAIMS__PLAN", "plan"),
            (
                "OWNID_BRIDGE__STORAGE__USERS__CLAIMS__EMAIL_VERIFIED",
                "verified",
            ),
        ],
    );
    let store = storage::open(&config.storage, true).await.unwrap();
    let report = store.inspect().await.unwrap();
    assert!(report.is_ok(), "{report}");
    let app = spawn_with_store(config, store, dir);
    app.set_data("eve@example.com", "devices")
        .await
        .assert_empty(204);
    let token = token_for(&app, json!({ "loginId": "eve@example.com" })).await;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let claims = hs256_claims(&token, &validation);
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["plan"], "pro");
    assert_eq!(claims["email_verified"], 1);
}

#[test]
fn short_hmac_secrets_and_wrong_keys_are_refused() {
    let config = |pairs: &[(&str, &str)]| {
        let env: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_yaml("", &env).unwrap().session
    };
    let short = ownid_bridge::secret::Secret::new("only-16-bytes!!!");
    let err = SessionIssuer::new(&config(&[]), Some(&short))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 32 bytes"), "{err}");
    assert!(!err.contains("only-16"), "secret in message: {err}");

    let rsa_as_ec = config(&[
        ("OWNID_BRIDGE__SESSION__ALGORITHM", "ES256"),
        (
            "OWNID_BRIDGE__SESSION__PRIVATE_KEY_FILE",
            &fixture("rs256-test-only.pem"),
        ),
    ]);
    let err = SessionIssuer::new(&rsa_as_ec, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("session.private_key_file"), "{err}");

    let missing = config(&[("OWNID_BRIDGE__SESSION__ALGORITHM", "EdDSA")]);
    let err = SessionIssuer::new(&missing, None).unwrap_err().to_string();
    assert!(err.contains("private_key_file is required"), "{err}");
}

#[tokio::test]
async fn a_generated_jwt_secret_is_used_when_none_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path(), &[]);
    config.session.secret = None;
    let store = storage::open(&config.storage, true).await.unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    // Only the zero-configuration trial generates one; otherwise a missing secret is an error.
    let err = ownid_bridge::app::App::new(config.clone(), Arc::clone(&store))
        .err()
        .expect("a missing session.secret is refused")
        .to_string();
    assert!(err.starts_with("session.secret is not set"), "{err}");
    let (_, generated) = ownid_bridge::app::App::new_trial(config, Arc::clone(&store)).unwrap();
    assert!(generated.jwt_secret);
    assert!(generated.shared_secret.is_none());
}

#[tokio::test]
async fn previous_public_keys_stay_in_the_jwks_during_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "ownid: {{ shared_secret: \"{SECRET}\" }}\n\
         session:\n  algorithm: ES256\n  private_key_file: \"{}\"\n  key_id: current\n\
         \x20 previous_public_keys:\n    - {{ file: \"{}\", key_id: previous }}\n\
         storage: {{ url: \"sqlite://{}\" }}\n",
        fixture("es256-test-only.pem"),
        fixture("es256-previous-public-test-only.pem"),
        dir.path().join("test.db").display()
    );
    let config = Config::from_yaml(&yaml, &[]).unwrap();
    let store = storage::open(&config.storage, true).await.unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let app = spawn_with_store(config, store, dir);
    let jwks: JwkSet = serde_json::from_str(&app.get("/.well-known/jwks.json").await.body).unwrap();
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, ["current", "previous"]);
    app.add_user("rot@example.com").await;
    let token = token_for(&app, json!({ "loginId": "rot@example.com" })).await;
    assert_eq!(
        decode_header(&token).unwrap().kid.as_deref(),
        Some("current")
    );
}

/// A SQLite table `accounts` whose user-id column is declared as `user_id_column`, holding Alice
/// with `alice_user_id` (SQL), and a configuration with `users.user_id` and
/// `create_missing_users` on.
async fn accounts_with_a_user_id(
    user_id_column: &str,
    alice_user_id: &str,
) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("test.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE accounts (login_id TEXT NOT NULL UNIQUE, ownid_data TEXT, {user_id_column})"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts VALUES ('alice@example.com', NULL, {alice_user_id})"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let config = test_config(
        dir.path(),
        &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "accounts"),
            ("OWNID_BRIDGE__STORAGE__USERS__USER_ID", "account_uuid"),
            ("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true"),
        ],
    );
    (dir, config)
}

/// With `users.user_id` configured, `sub` is that column's value. A user whose column is NULL
/// (here created by `create_missing_users`) gets no token: falling back to the login id would
/// hand out the subject of whichever user has that id (SPEC §3).
#[tokio::test]
async fn a_user_without_a_user_id_gets_no_token() {
    let (dir, config) = accounts_with_a_user_id("account_uuid TEXT", "'1001'").await;
    let store = storage::open(&config.storage, true).await.unwrap();
    let app = spawn_with_store(config, store, dir);
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    let alice = token_for(&app, json!({ "loginId": "alice@example.com" })).await;
    assert_eq!(hs256_claims(&alice, &validation)["sub"], "1001");

    // A login id equal to Alice's account_uuid, created without one.
    app.set_data("1001", "the attacker's device")
        .await
        .assert_empty(204);
    let reply = app.session("1001").await;
    assert!(!reply.body.contains("token"), "{}", reply.body);
    reply.assert_error(500, "internal");
}

/// Red team, round 3 (R2): a user-id column with a constant default (the configuration example
/// advises "give the column a default when create_missing_users is on") gives every created user
/// the same `sub`; an empty one is no subject either.
#[tokio::test]
async fn a_created_user_never_shares_another_users_subject() {
    let (dir, config) =
        accounts_with_a_user_id("account_uuid TEXT NOT NULL DEFAULT ''", "''").await;
    let store = storage::open(&config.storage, true).await.unwrap();
    // With create_missing_users, `check` fails the constant default (and `serve` refuses to
    // start on it); the store below is served anyway, to show what the fail line prevents.
    let report = storage::inspect(&config, store.as_ref()).await.unwrap();
    let default = report.check("user_id default").expect("checked");
    assert!(
        !default.ok() && default.detail.contains("constant"),
        "{report}"
    );
    let app = spawn_with_store(config, store, dir);
    app.set_data("mallory@example.com", "the attacker's device")
        .await
        .assert_empty(204);
    for login_id in ["alice@example.com", "mallory@example.com"] {
        let reply = app.session(login_id).await;
        assert!(
            !reply.body.contains("token"),
            "{login_id} got a token with an empty sub: {}",
            reply.body
        );
    }
}

/// RSA keys under 2048 bits can be factored for a price; a token signed with one (or verifying
/// with a published one) proves nothing. EC keys must be on the algorithm's curve.
#[test]
fn weak_signing_and_published_keys_are_refused() {
    let config = |algorithm: &str, key: &str, previous: Option<&str>| {
        let mut env = vec![
            (
                "OWNID_BRIDGE__SESSION__ALGORITHM".to_owned(),
                algorithm.to_owned(),
            ),
            (
                "OWNID_BRIDGE__SESSION__PRIVATE_KEY_FILE".to_owned(),
                fixture(key),
            ),
        ];
        let yaml = match previous {
            Some(file) => format!(
                "session:\n  previous_public_keys:\n    - {{ file: \"{}\", key_id: old }}\n",
                fixture(file)
            ),
            None => String::new(),
        };
        env.sort();
        Config::from_yaml(&yaml, &env).unwrap().session
    };
    for (algorithm, key, previous, expected) in [
        ("RS256", "rs256-1024-test-only.pem", None, "1024-bit RSA"),
        (
            "RS256",
            "rs256-test-only.pem",
            Some("rs256-1024-public-test-only.pem"),
            "1024-bit RSA",
        ),
        ("ES256", "es256-secp256k1-test-only.pem", None, "P-256"),
        (
            "ES256",
            "es256-test-only.pem",
            Some("es256-secp256k1-public-test-only.pem"),
            "P-256",
        ),
        (
            "ES256",
            "es256-test-only.pem",
            Some("es256-p192-public-test-only.pem"),
            "P-256",
        ),
    ] {
        let err = SessionIssuer::new(&config(algorithm, key, previous), None)
            .err()
            .unwrap_or_else(|| panic!("{key} / {previous:?} was accepted"))
            .to_string();
        assert!(err.contains(expected), "{key} / {previous:?}: {err}");
    }
    // The fixtures in use elsewhere pass.
    SessionIssuer::new(&config("RS256", "rs256-test-only.pem", None), None).unwrap();
    SessionIssuer::new(
        &config(
            "ES256",
            "es256-test-only.pem",
            Some("es256-previous-public-test-only.pem"),
        ),
        None,
    )
    .unwrap();
}
