//! What operators rely on: metrics, replay protection, secret rotation.

use crate::common::*;
use ownid_bridge::signature::now_ms;

#[tokio::test]
async fn metrics_count_requests_signature_failures_and_pool_usage() {
    // The in-process test client has no peer address, which the default allow-list (loopback)
    // refuses; an empty list lets anyone read. The allow-list itself: tests/inproc/network.rs.
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
        "ownid_bridge_storage_pool_connections{{app=\"default\",state=\"max\"}} {}",
        16.min(2 * cpus)
    );
    for expected in [
        "ownid_bridge_requests_total{app=\"default\",operation=\"getOwnIDDataByLoginId\",status=\"404\"}",
        "ownid_bridge_requests_total{app=\"default\",operation=\"getOwnIDDataByLoginId\",status=\"401\"}",
        "ownid_bridge_signature_failures_total{app=\"default\",reason=\"missing_signature\"}",
        "ownid_bridge_request_duration_seconds_bucket{app=\"default\",operation=\"getOwnIDDataByLoginId\",le=\"0.005\"}",
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
async fn every_metric_has_help_text_beside_build_and_process_metrics() {
    let app = spawn(&[("OWNID_BRIDGE__METRICS__ALLOWED_NETWORKS", "")]).await;
    app.get_data("nobody@example.com").await.assert_empty(404);
    let text = app.get("/metrics").await.body;
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    for name in &typed {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no # HELP line:\n{text}"
        );
    }
    for expected in [
        "ownid_bridge_requests_total",
        "ownid_bridge_request_duration_seconds",
        "ownid_bridge_storage_pool_connections",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            typed.contains(&expected),
            "{expected} missing from:\n{text}"
        );
    }
    let build = format!(
        "ownid_bridge_build_info{{version=\"{}\",backends=\"sqlite,postgres,mysql,mongodb\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "{build} missing from:\n{text}");
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn(&[("OWNID_BRIDGE__METRICS__ENABLED", "false")]).await;
    app.get("/metrics").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn with_replay_protection_a_signed_request_is_accepted_once() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "memory")]).await;
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
    let app = spawn(&[("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "off")]).await;
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

fn signed_headers<'a>(timestamp: &'a str, signature: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("content-type", "application/json"),
        ("ownid-timestamp", timestamp),
        ("ownid-signature", signature),
    ]
}

#[tokio::test]
async fn replay_protection_is_on_by_default_and_one_guard_covers_every_endpoint() {
    // OwnID signs the body and the timestamp, not the path: get and session have the same body.
    let app = spawn(&[]).await;
    app.add_user("alice@example.com").await;
    let body = r#"{"loginId":"alice@example.com"}"#;
    let (timestamp, signature) = signed_now(body);
    let headers = signed_headers(&timestamp, &signature);
    app.post("getOwnIDDataByLoginId", body, &headers)
        .await
        .assert_empty(204);
    for operation in [
        "getSessionByLoginId",
        "getOwnIDDataByLoginId",
        "setOwnIDDataByLoginId",
    ] {
        app.post(operation, body, &headers)
            .await
            .assert_error(401, "replayed_request");
    }
}

/// A serialization failure, deadlock or certification conflict is run again (jittered backoff,
/// `storage.retries`), on all three operations; 503 with `Retry-After` only when the tries run
/// out, never 500.
#[tokio::test]
async fn contention_is_retried_and_answered_503_only_when_the_tries_run_out() {
    use std::sync::atomic::Ordering;
    let (app, script) = spawn_scripted(&[("OWNID_BRIDGE__STORAGE__RETRIES__ATTEMPTS", "4")]).await;
    app.add_user("alice@example.com").await;

    script.contention.store(3, Ordering::SeqCst);
    app.set_data("alice@example.com", "v1")
        .await
        .assert_empty(204);
    script.contention.store(3, Ordering::SeqCst);
    let reply = app.get_data("alice@example.com").await;
    assert_eq!(
        (reply.status, reply.json()["ownIdData"].as_str()),
        (200, Some("v1"))
    );
    script.contention.store(3, Ordering::SeqCst);
    assert_eq!(app.session("alice@example.com").await.status, 200);
    assert_eq!(script.contention.load(Ordering::SeqCst), 0);

    // Four tries in all: the fifth contention is never reached.
    script.contention.store(5, Ordering::SeqCst);
    let reply = app.set_data("alice@example.com", "v2").await;
    reply.assert_error(503, "storage_unavailable");
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    assert_eq!(script.contention.load(Ordering::SeqCst), 1);
    script.contention.store(0, Ordering::SeqCst);
    let reply = app.get_data("alice@example.com").await;
    assert_eq!(
        reply.json()["ownIdData"],
        "v1",
        "the refused set wrote nothing"
    );
}

#[tokio::test]
async fn a_signature_answered_5xx_may_be_retried_but_not_reused_after_success() {
    let (app, script) = spawn_scripted(&[]).await;
    app.add_user("alice@example.com").await;
    let body = r#"{"loginId":"alice@example.com","ownIdData":"v1"}"#;
    let (timestamp, signature) = signed_now(body);
    let headers = signed_headers(&timestamp, &signature);
    *script.fail_next.lock().unwrap() = Some(ownid_bridge_store::StoreError::Unavailable(
        "the database is down".into(),
    ));
    app.post("setOwnIDDataByLoginId", body, &headers)
        .await
        .assert_error(503, "storage_unavailable");
    // OwnID retries the same signed request.
    app.post("setOwnIDDataByLoginId", body, &headers)
        .await
        .assert_empty(204);
    app.post("setOwnIDDataByLoginId", body, &headers)
        .await
        .assert_error(401, "replayed_request");
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_may_be_retried() {
    let (app, script) = spawn_scripted(&[]).await;
    app.add_user("alice@example.com").await;
    let body = r#"{"loginId":"alice@example.com"}"#;
    let (timestamp, signature) = signed_now(body);
    let headers = signed_headers(&timestamp, &signature);
    script.hold();
    tokio::select! {
        reply = app.post("getSessionByLoginId", body, &headers) => {
            panic!("answered while the store held it: {reply:?}")
        }
        // The request reached the store: the client goes away, and its future is dropped.
        _ = script.entered.notified() => {}
    }
    script.open();
    let reply = app.post("getSessionByLoginId", body, &headers).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    app.post("getSessionByLoginId", body, &headers)
        .await
        .assert_error(401, "replayed_request");
}

#[tokio::test]
async fn a_duplicate_is_refused_while_the_first_is_in_flight() {
    let (app, script) = spawn_scripted(&[]).await;
    app.add_user("alice@example.com").await;
    let body = r#"{"loginId":"alice@example.com"}"#;
    let (timestamp, signature) = signed_now(body);
    let headers = signed_headers(&timestamp, &signature);
    let gate = script.hold();
    let first = app.post("getSessionByLoginId", body, &headers);
    let second = async {
        // The first request reached the store and is held there.
        script.entered.notified().await;
        let reply = tokio::select! {
            reply = app.post("getOwnIDDataByLoginId", body, &headers) => Some(reply),
            // The duplicate got past the guard and reached the store too.
            _ = script.entered.notified() => None,
        };
        gate.add_permits(2);
        reply
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, 200, "{}", first.body);
    second
        .expect("the duplicate reached the store while the first was in flight")
        .assert_error(401, "replayed_request");
}

#[tokio::test]
async fn a_signed_request_answered_4xx_is_used_up() {
    let app = spawn(&[]).await;
    let body = r#"{"loginId":""}"#;
    let (timestamp, signature) = signed_now(body);
    let headers = signed_headers(&timestamp, &signature);
    app.post("getOwnIDDataByLoginId", body, &headers)
        .await
        .assert_error(400, "invalid_request");
    app.post("getOwnIDDataByLoginId", body, &headers)
        .await
        .assert_error(401, "replayed_request");
}

#[tokio::test]
async fn a_body_held_back_until_the_window_closes_is_still_a_replay() {
    // The attack: send a captured request again while its timestamp is still accepted, and hold
    // the body back until the timestamp has left the window (and the first use with it).
    let skew_ms = 2_000;
    let app = spawn(&[("OWNID_BRIDGE__OWNID__MAX_CLOCK_SKEW", "2s")]).await;
    let body = r#"{"loginId":"nobody@example.com"}"#;
    let (timestamp, signature) = signed_now(body);
    let sent: i128 = timestamp.parse().unwrap();
    let headers = signed_headers(&timestamp, &signature);
    app.post("getOwnIDDataByLoginId", body, &headers)
        .await
        .assert_empty(404);

    let (mut writer, reader) = tokio::io::duplex(1024);
    let mut request = app
        .client
        .post(app.path("getOwnIDDataByLoginId"))
        .body(poem::Body::from_async_read(reader));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    assert!(
        now_ms() < sent + skew_ms / 2,
        "the test machine is too slow: the second request would not start inside the window"
    );
    let replay = async { read(request.send().await).await };
    let late_body = async {
        while now_ms() <= sent + skew_ms + 200 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        use tokio::io::AsyncWriteExt as _;
        writer.write_all(body.as_bytes()).await.unwrap();
        drop(writer);
    };
    let (reply, ()) = tokio::join!(replay, late_body);
    assert_eq!(reply.status, 401, "the replay was accepted: {reply:?}");
    let code = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(
        code == "replayed_request" || code == "stale_timestamp",
        "{reply:?}"
    );
}

#[tokio::test]
async fn the_replay_guard_is_bounded_and_fails_closed_when_full() {
    let app = spawn(&[("OWNID_BRIDGE__OWNID__REPLAY_MAX_ENTRIES", "2")]).await;
    let mut first = None;
    for i in 0..2 {
        let body = format!(r#"{{"loginId":"nobody{i}@example.com"}}"#);
        let (timestamp, signature) = signed_now(&body);
        app.post(
            "getOwnIDDataByLoginId",
            &body,
            &signed_headers(&timestamp, &signature),
        )
        .await
        .assert_empty(404);
        first.get_or_insert((body, timestamp, signature));
    }
    // Full of signatures still inside their window: a new one is refused rather than an old one
    // forgotten.
    let reply = app.get_data("nobody2@example.com").await;
    reply.assert_error(503, "replay_capacity");
    assert!(reply.headers.contains_key("retry-after"), "{reply:?}");
    let (body, timestamp, signature) = first.unwrap();
    app.post(
        "getOwnIDDataByLoginId",
        &body,
        &signed_headers(&timestamp, &signature),
    )
    .await
    .assert_error(401, "replayed_request");
}

/// Log lines written while `run` runs on this thread, at info level and above.
fn logged_at_info(run: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture(Default::default());
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn storage_error_messages_that_quote_user_data_do_not_reach_the_log() {
    // Drivers quote the offending value: MySQL's duplicate entry, MongoDB's duplicate key.
    let login_id = "leaky.login@example.com";
    let errors = [
        ownid_bridge_store::StoreError::Other(format!(
            "error returned from database: 1062 (23000): Duplicate entry '{login_id}' for key \
             'users.login_id'"
        )),
        ownid_bridge_store::StoreError::Other(format!(
            "E11000 duplicate key error collection: app.users index: login_id_1 dup key: \
             {{ login_id: \"{login_id}\" }}"
        )),
        ownid_bridge_store::StoreError::Unavailable(format!(
            "write conflict on `{login_id}` (Key (login_id)=({login_id}))"
        )),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let logs = logged_at_info(|| {
        runtime.block_on(async {
            let (app, script) =
                spawn_scripted(&[("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true")]).await;
            for err in errors {
                *script.fail_next.lock().unwrap() = Some(err);
                let reply = app.set_data(login_id, "data").await;
                assert!(reply.status >= 500, "{reply:?}");
            }
        })
    });
    assert!(logs.contains("storage error"), "nothing logged:\n{logs}");
    assert!(
        logs.contains("storage unavailable"),
        "nothing logged:\n{logs}"
    );
    assert!(
        !logs.contains("leaky.login"),
        "the login id reached the log:\n{logs}"
    );
}
