//! `ownid.replay_protection: storage`: one replay guard for every instance over a database.
//! Two instances (in-process, as a load balancer spreads OwnID's calls) over the same users
//! table and the same replay table, on every backend:
//! - a signed request accepted by one instance is refused by the other, and by itself;
//! - the same signed request sent to both at once is accepted exactly once (the other answer is
//!   401 `replayed_request`, or 503 `request_in_flight` while the first is being answered);
//! - with `memory`, the per-instance guard, the replay passes: the attack this mode stops.
//!
//! And, on a scripted store, what the guard does when the answer or the table fails: a 5xx
//! releases the signature for OwnID's retry; a table that cannot be written refuses the request
//! (503) rather than answer it unguarded.
//!
//! Here on SQLite; on the server backends: tests/backends/replay.rs.

use crate::common::replay::{both_cases, pair};
use crate::common::*;
use ownid_bridge::storage;
use ownid_bridge_store::StoreError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    both_cases("sqlite", &url).await;
}

const STORAGE: [(&str, &str); 1] = [("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "storage")];

#[tokio::test]
async fn a_5xx_answer_releases_the_signature_for_a_retry() {
    let (app, script) = spawn_scripted(&STORAGE).await;
    app.add_user("alice@example.com").await;
    let set = Signed::set("alice@example.com", "retried");
    *script.fail_next.lock().unwrap() = Some(StoreError::Other("boom".into()));
    set.send(&app).await.assert_error(500, "internal");
    set.send(&app).await.assert_empty(204);
    set.send(&app).await.assert_error(401, "replayed_request");
}

#[tokio::test]
async fn a_replay_table_that_cannot_be_written_refuses_the_request() {
    let (app, script) = spawn_scripted(&STORAGE).await;
    app.add_user("alice@example.com").await;
    let set = Signed::set("alice@example.com", "guarded");
    *script.fail_reserve.lock().unwrap() = Some(StoreError::Unavailable("down".into()));
    set.send(&app)
        .await
        .assert_error(503, "storage_unavailable");
    // The operation did not run, and nothing was reserved: the same request passes later.
    assert_eq!(
        app.store.get_ownid_data("alice@example.com").await.unwrap(),
        None
    );
    set.send(&app).await.assert_empty(204);
    // Contention on the table is retried like any write.
    *script.fail_reserve.lock().unwrap() = Some(StoreError::Contention("40001".into()));
    app.set_data("alice@example.com", "again")
        .await
        .assert_empty(204);
}

#[tokio::test]
async fn an_answer_whose_signature_cannot_be_marked_used_is_not_sent() {
    let (app, script) = spawn_scripted(&STORAGE).await;
    app.add_user("alice@example.com").await;
    let session = Signed::session("alice@example.com");
    *script.fail_mark_used.lock().unwrap() = Some(StoreError::Unavailable("down".into()));
    let reply = session.send(&app).await;
    reply.assert_error(503, "storage_unavailable");
    assert!(!reply.body.contains("token"), "{}", reply.body);
    // The signature stays in flight until its lease passes (fail closed).
    session
        .send(&app)
        .await
        .assert_error(503, "request_in_flight");
}

/// The attack `storage` stops: each instance's memory knows only its own requests.
#[tokio::test]
async fn with_memory_a_replay_to_another_instance_passes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let [a, b] = pair("sqlite", &url, "memory", &[]).await;
    a.add_user("alice@example.com").await;
    let session = Signed::session("alice@example.com");
    assert_eq!(session.send(&a).await.status, 200);
    session.send(&a).await.assert_error(401, "replayed_request");
    assert_eq!(
        session.send(&b).await.status,
        200,
        "the per-instance guard of the other instance has not seen it"
    );
}

/// OwnID signs the body, not the path: a signature released by a 5xx (so that OwnID can retry
/// it) must not become a token when sent to another operation with the same body.
async fn a_released_signature_is_refused_on_another_operation(mode: &str) {
    let (app, script) = spawn_scripted(&[("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", mode)]).await;
    app.add_user("alice@example.com").await;
    let set = Signed::set("alice@example.com", "devices");
    *script.fail_next.lock().unwrap() = Some(StoreError::Other("boom".into()));
    set.send(&app).await.assert_error(500, "internal");
    let copy = Signed {
        operation: "getSessionByLoginId",
        body: set.body.clone(),
        timestamp: set.timestamp.clone(),
        signature: set.signature.clone(),
    };
    let reply = copy.send(&app).await;
    assert!(!reply.body.contains("token"), "{mode}: {}", reply.body);
    reply.assert_error(401, "replayed_request");
    let get = Signed {
        operation: "getOwnIDDataByLoginId",
        ..copy
    };
    get.send(&app).await.assert_error(401, "replayed_request");
    // OwnID's retry of the operation it signed for still passes, once.
    set.send(&app).await.assert_empty(204);
    set.send(&app).await.assert_error(401, "replayed_request");
}

#[tokio::test]
async fn a_released_signature_is_refused_on_another_operation_in_memory() {
    a_released_signature_is_refused_on_another_operation("memory").await;
}

#[tokio::test]
async fn a_released_signature_is_refused_on_another_operation_in_storage() {
    a_released_signature_is_refused_on_another_operation("storage").await;
}

/// Sends `signed` over a new TCP connection: its head at once, its body after `body_after`;
/// the answer's status line and body.
async fn send_raw(
    addr: std::net::SocketAddr,
    signed: &Signed,
    body_after: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /ownid/{} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         ownid-timestamp: {}\r\nownid-signature: {}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        signed.operation,
        signed.timestamp,
        signed.signature,
        signed.body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(body_after).await;
    stream.write_all(signed.body.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut reply),
    )
    .await
    .expect("no answer")
    .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

/// The shared guard forgets a signature once its window has closed (and `max_clock_skew`
/// more). A copy whose head arrived inside the window but whose body arrives after that must
/// not find the guard empty and get a second token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_body_arrives_after_the_window_gets_no_second_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path(),
        &[
            ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "storage"),
            ("OWNID_BRIDGE__OWNID__MAX_CLOCK_SKEW", "1s"),
        ],
    );
    let store = storage::open(&config.storage, true).await.unwrap();
    storage::apply_schema(
        &config,
        store.as_ref(),
        &ownid_bridge_store::SchemaOptions::CREATE_TABLE,
    )
    .await
    .unwrap();
    store.create_user("alice@example.com").await.unwrap();
    let (addr, _server) = serve_tcp(config, store).await;
    let session = Signed::session("alice@example.com");
    let signed_at = std::time::Instant::now();
    let first = send_raw(addr, &session, std::time::Duration::ZERO).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The copy's head 0.7 s after the timestamp (inside the 1 s window); its body 4 s later,
    // when the window has been closed for more than the skew and the guard has swept.
    tokio::time::sleep(std::time::Duration::from_millis(700).saturating_sub(signed_at.elapsed()))
        .await;
    let copy = send_raw(addr, &session, std::time::Duration::from_secs(4)).await;
    assert!(!copy.contains("token"), "a second token: {copy}");
    assert!(copy.starts_with("HTTP/1.1 401"), "{copy}");
    assert!(copy.contains("\"stale_timestamp\""), "{copy}");
}
