//! What operators rely on: metrics, replay protection, secret rotation.

mod common;

use common::*;

#[tokio::test]
async fn metrics_count_requests_signature_failures_and_pool_usage() {
    // The in-process test client has no peer address, which the default allow-list (loopback)
    // refuses; an empty list lets anyone read. The allow-list itself: tests/network.rs.
    let app = spawn(&[("OWNID_BRIDGE__METRICS__ALLOWED_NETWORKS", "")]).await;
    app.get_data("nobody@example.com").await.assert_empty(404);
    app.post("getOwnIDDataByLoginId", "{}", &[])
        .await
        .assert_error(401, "missing_signature");
    app.get("/no/such/path/with-a-unique-name-123").await;
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    let text = reply.body;
    // The test configuration's SQLite store: pool.max_connections 16, readers capped at two a CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_gauge = format!(
        "ownid_bridge_storage_pool_connections{{state=\"max\"}} {}",
        16.min(2 * cpus)
    );
    for expected in [
        "ownid_bridge_requests_total{operation=\"getOwnIDDataByLoginId\",status=\"404\"}",
        "ownid_bridge_requests_total{operation=\"getOwnIDDataByLoginId\",status=\"401\"}",
        "ownid_bridge_signature_failures_total{reason=\"missing_signature\"}",
        "ownid_bridge_request_duration_seconds_bucket{operation=\"getOwnIDDataByLoginId\",le=\"0.005\"}",
        max_gauge.as_str(),
        "operation=\"other\"",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(
        !text.contains("with-a-unique-name-123"),
        "a raw path became a label"
    );
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn(&[("OWNID_BRIDGE__METRICS__ENABLED", "false")]).await;
    app.get("/metrics").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn with_replay_protection_a_signed_request_is_accepted_once() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "true")]).await;
    app.add_user("replay@example.com").await;
    let body = r#"{"loginId":"replay@example.com","ownIdData":"v1"}"#;
    let timestamp = ownid_bridge::signature::now_ms().to_string();
    let signature = sign(body, &timestamp);
    let headers = [
        ("content-type", "application/json"),
        ("ownid-timestamp", timestamp.as_str()),
        ("ownid-signature", signature.as_str()),
    ];
    app.post("setOwnIDDataByLoginId", body, &headers)
        .await
        .assert_empty(204);
    app.post("setOwnIDDataByLoginId", body, &headers)
        .await
        .assert_error(401, "replayed_request");
    // The same body signed again (a new timestamp: wait for the millisecond to change) is new.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    app.signed("setOwnIDDataByLoginId", body)
        .await
        .assert_empty(204);
    // A forged signature is refused as invalid and does not block the genuine one.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let fresh = ownid_bridge::signature::now_ms().to_string();
    let genuine = sign(body, &fresh);
    let forged = [
        ("content-type", "application/json"),
        ("ownid-timestamp", fresh.as_str()),
        (
            "ownid-signature",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    ];
    app.post("setOwnIDDataByLoginId", body, &forged)
        .await
        .assert_error(401, "invalid_signature");
    let real = [
        ("content-type", "application/json"),
        ("ownid-timestamp", fresh.as_str()),
        ("ownid-signature", genuine.as_str()),
    ];
    app.post("setOwnIDDataByLoginId", body, &real)
        .await
        .assert_empty(204);
}

#[tokio::test]
async fn without_replay_protection_a_repeat_is_accepted() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":"nobody@example.com"}"#;
    let timestamp = ownid_bridge::signature::now_ms().to_string();
    let signature = sign(body, &timestamp);
    let headers = [
        ("content-type", "application/json"),
        ("ownid-timestamp", timestamp.as_str()),
        ("ownid-signature", signature.as_str()),
    ];
    app.post("getOwnIDDataByLoginId", body, &headers)
        .await
        .assert_empty(404);
    app.post("getOwnIDDataByLoginId", body, &headers)
        .await
        .assert_empty(404);
}

#[tokio::test]
async fn a_previous_shared_secret_is_accepted_during_a_rotation() {
    // The server moves to a new secret; OwnID still signs with the old one (SECRET) for a while.
    let new_secret = "bmV3LXNoYXJlZC1zZWNyZXQtbmV3LXNoYXJlZC1zZWNyZXQ=";
    let app = spawn(&[
        ("OWNID_BRIDGE__OWNID__SHARED_SECRET", new_secret),
        ("OWNID_BRIDGE__OWNID__PREVIOUS_SHARED_SECRETS", SECRET),
    ])
    .await;
    app.get_data("nobody@example.com").await.assert_empty(404);
    let rotated = spawn(&[("OWNID_BRIDGE__OWNID__SHARED_SECRET", new_secret)]).await;
    rotated
        .get_data("nobody@example.com")
        .await
        .assert_error(401, "invalid_signature");
}
