//! Two instances sharing one replay guard: tests/inproc/replay.rs (SQLite) and
//! tests/backends/replay.rs.

use ownid_bridge::storage;

use super::*;

/// Two instances over `backend` at `url`, sharing a fresh users table and replay table.
pub async fn pair(backend: &str, url: &str, mode: &str, extra: &[(&str, &str)]) -> [TestApp; 2] {
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
            storage::apply_schema(
                &config,
                store.as_ref(),
                &ownid_bridge_store::SchemaOptions::CREATE_TABLE,
            )
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

pub async fn a_replay_is_refused_by_every_instance(backend: &str, url: &str) {
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

pub async fn two_instances_racing_accept_once(backend: &str, url: &str) {
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

pub async fn both_cases(backend: &str, url: &str) {
    a_replay_is_refused_by_every_instance(backend, url).await;
    two_instances_racing_accept_once(backend, url).await;
}
