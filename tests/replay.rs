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

mod common;

use common::*;
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;
use ownid_bridge_store::StoreError;

/// Two instances over `backend` at `url`, sharing a fresh users table and replay table.
async fn pair(backend: &str, url: &str, mode: &str, extra: &[(&str, &str)]) -> [TestApp; 2] {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (users, seen) = (format!("replay_users_{id}"), format!("replay_seen_{id}"));
    let mut env = vec![
        ("OWNID_BRIDGE__STORAGE__USERS__TABLE", users.as_str()),
        ("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", mode),
        ("OWNID_BRIDGE__OWNID__REPLAY_TABLE", seen.as_str()),
    ];
    env.extend_from_slice(extra);
    let mut apps = Vec::new();
    for i in 0..2 {
        let config = backend_config(backend, url, "replay", &env);
        let store = storage::open(&config.storage, true).await.expect("open");
        if i == 0 {
            storage::apply_schema(&config, store.as_ref(), true)
                .await
                .expect("schema");
        }
        apps.push(spawn_with_store(
            config,
            store,
            tempfile::tempdir().unwrap(),
        ));
    }
    apps.try_into().ok().unwrap()
}

async fn a_replay_is_refused_by_every_instance(backend: &str, url: &str) {
    let [a, b] = pair(backend, url, "storage", &[]).await;
    a.add_user("alice@example.com").await;
    let set = Signed::set("alice@example.com", "first device");
    set.send(&a).await.assert_empty(204);
    set.send(&b).await.assert_error(401, "replayed_request");
    set.send(&a).await.assert_error(401, "replayed_request");
    // A session token is what a replay would steal.
    let session = Signed::session("alice@example.com");
    assert_eq!(session.send(&b).await.status, 200);
    session.send(&a).await.assert_error(401, "replayed_request");
    // A 404 is an answer too: the same request is not looked up twice.
    let unknown = Signed::session("nobody@example.com");
    unknown.send(&a).await.assert_empty(404);
    unknown.send(&b).await.assert_error(401, "replayed_request");
    // Fresh signatures still pass on both.
    a.set_data("alice@example.com", "second")
        .await
        .assert_empty(204);
    assert_eq!(b.get_data("alice@example.com").await.status, 200);
}

async fn two_instances_racing_accept_once(backend: &str, url: &str) {
    let [a, b] = pair(backend, url, "storage", &[]).await;
    a.add_user("race@example.com").await;
    for round in 0..20 {
        let set = Signed::set("race@example.com", &format!("round {round}"));
        let (first, second) = tokio::join!(set.send(&a), set.send(&b));
        let accepted = [&first, &second]
            .iter()
            .filter(|reply| reply.status == 204)
            .count();
        assert_eq!(
            accepted, 1,
            "round {round}: {} and {}: {} / {}",
            first.status, second.status, first.body, second.body
        );
        let refused = if first.status == 204 { &second } else { &first };
        assert_refused_copy(refused, &format!("round {round}"));
    }
}

async fn both_cases(backend: &str, url: &str) {
    a_replay_is_refused_by_every_instance(backend, url).await;
    two_instances_racing_accept_once(backend, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    both_cases("sqlite", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    both_cases("postgres", &required_url("OWNID_TEST_POSTGRES_URL")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_pgbouncer() {
    let url = required_url("OWNID_TEST_PGBOUNCER_URL");
    let pooler = [("OWNID_BRIDGE__STORAGE__POOLER", "transaction")];
    let [a, b] = pair("postgres", &url, "storage", &pooler).await;
    a.add_user("alice@example.com").await;
    let set = Signed::set("alice@example.com", "x");
    set.send(&a).await.assert_empty(204);
    set.send(&b).await.assert_error(401, "replayed_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    let url = mysql_test_database("ownid_bridge_replay_test").await;
    both_cases("mariadb", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb() {
    let url = mongodb_test_database("ownid_bridge_replay_test");
    both_cases("mongodb", &url).await;
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

/// `serve` refuses to start on a database without the replay table (outside the demo database),
/// and `storage::inspect` names it.
#[tokio::test]
async fn serving_needs_the_replay_table() {
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let config = backend_config(
        "postgres",
        &url,
        "replay",
        &[
            ("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "storage"),
            ("OWNID_BRIDGE__STORAGE__CREATE_DEMO_TABLE", "false"),
            (
                "OWNID_BRIDGE__OWNID__REPLAY_TABLE",
                &format!("seen_{}", uuid::Uuid::new_v4().simple()),
            ),
        ],
    );
    let store = storage::open(&config.storage, false).await.unwrap();
    store.apply_schema(true).await.unwrap();
    let report = storage::inspect(&config, store.as_ref()).await.unwrap();
    let check = report
        .check(ownid_bridge_store::LEDGER_CHECK)
        .expect("a line for the replay table");
    assert!(
        !check.ok && check.detail.contains("ownid-bridge schema"),
        "{check:?}"
    );
    let refused = storage::open_for_serving(&config).await.err().unwrap();
    assert!(
        refused.to_string().contains("replay guard table"),
        "{refused}"
    );
    storage::apply_schema(&config, store.as_ref(), false)
        .await
        .unwrap();
    assert!(storage::open_for_serving(&config).await.is_ok());
}
