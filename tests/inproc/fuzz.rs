//! Property-based fuzzing of the signature check and request parsing, bounded so it runs in the
//! test command: whatever arrives, nothing panics and nothing answers 5xx.

use crate::common::*;
use ownid_bridge::signature::now_ms;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn the_signature_check_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        timestamp in ".{0,40}",
        signature in ".{0,80}",
    ) {
        let verifier = verifier();
        let _ = verifier.check_timestamp(&timestamp, now_ms());
        let _ = verifier.check_signature(&body, &timestamp, &signature);
        // A correct signature over any bytes verifies; any other does not.
        let good = verifier.sign(&body, &timestamp);
        prop_assert!(verifier.check_signature(&body, &timestamp, &good).is_ok());
        prop_assert_eq!(verifier.check_signature(&body, &timestamp, &signature).is_ok(), signature.trim() == good);
    }

    #[test]
    fn the_duplicate_key_check_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ownid_bridge::json::check_unique_keys(&body);
    }
}

/// JSON-shaped bodies (valid or not), as OwnID or an attacker holding the secret might send.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let scalar = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        "[a-z]{1,8}@example\\.com".prop_map(serde_json::Value::from),
    ];
    let value = scalar.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("loginId".to_string()),
                    Just("ownIdData".to_string()),
                    Just("sessionType".to_string()),
                    ".{0,8}".prop_map(String::from)
                ],
                inner,
                0..4
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    });
    prop_oneof![
        4 => value.prop_map(|value| value.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

#[test]
fn signed_requests_of_any_shape_never_get_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn(&[]));
    runtime.block_on(app.add_user("user@example.com"));
    let mut runner = TestRunner::new(config(1_500));
    let operations = prop_oneof![
        Just("setOwnIDDataByLoginId"),
        Just("getOwnIDDataByLoginId"),
        Just("getSessionByLoginId"),
    ];
    runner
        .run(&(operations, bodies()), |(operation, body)| {
            let reply = runtime.block_on(async {
                let timestamp = fresh_timestamp();
                let signature = verifier().sign(&body, &timestamp);
                let response = app
                    .client
                    .post(app.path(operation))
                    .header("content-type", "application/json")
                    .header("ownid-timestamp", &timestamp)
                    .header("ownid-signature", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                read(response).await
            });
            prop_assert!(
                reply.status < 500,
                "{} {:?} -> {:?}",
                operation,
                String::from_utf8_lossy(&body),
                reply
            );
            // 404 is about the user (empty body); every other 4xx carries the error body.
            if reply.status >= 400 && reply.status != 404 {
                let error: serde_json::Value =
                    serde_json::from_str(&reply.body).unwrap_or_default();
                prop_assert!(error["error"].is_string(), "{:?}", reply);
            }
            Ok(())
        })
        .unwrap();
}
