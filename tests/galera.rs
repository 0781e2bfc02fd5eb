//! Several server instances over a 3-node MariaDB Galera cluster (`scripts/galera.sh`, which
//! scripts/test.sh starts; `OWNID_TEST_GALERA_URLS` names the three nodes), one instance per
//! node, as a load balancer would spread OwnID's calls:
//! - conflicting writes on a few users from every instance: certification conflicts are retried,
//!   never answered 500, and the stored value is one that was acknowledged;
//! - a set answered by one instance is seen by a get on another instance over another node
//!   (`wsrep_sync_wait`, on by default);
//! - with `ownid.replay_protection: storage`, a request accepted by one instance is refused by
//!   the others, and instances on different nodes racing on one signature accept it once (the
//!   losers' inserts fail certification and are retried, then find the winner's row).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use ownid_bridge::storage;

const DATABASE: &str = "ownid_bridge_galera_test";

/// One instance per node, over one table (created through the first).
async fn instances(overrides: &[(&str, &str)]) -> Vec<Arc<TestApp>> {
    let urls = galera_node_urls(DATABASE).await;
    let table = format!("galera_{}", uuid::Uuid::new_v4().simple());
    let mut apps = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let mut env = vec![("OWNID_BRIDGE__STORAGE__USERS__TABLE", table.as_str())];
        env.extend_from_slice(overrides);
        let config = backend_config("mariadb", url, "galera", &env);
        let store = storage::open(&config.storage, false).await.expect("open");
        if i == 0 {
            storage::apply_schema(&config, store.as_ref(), true)
                .await
                .expect("schema");
        }
        apps.push(Arc::new(spawn_with_store(
            config,
            store,
            tempfile::tempdir().unwrap(),
        )));
    }
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_writes_from_every_instance_are_retried_not_refused() {
    let apps = instances(&[]).await;
    let users: Vec<String> = (0..4).map(|i| format!("user{i}@example.com")).collect();
    for user in &users {
        apps[0].add_user(user).await;
    }
    // 12 writers, 4 per instance, all on the same 4 users.
    let tasks: Vec<_> = (0..12)
        .map(|writer| {
            let app = Arc::clone(&apps[writer % 3]);
            let users = users.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut statuses = Vec::new();
                for round in 0..50 {
                    let user = &users[(writer + round) % users.len()];
                    let value = format!("w{writer}r{round}");
                    let reply = app.set_data(user, &value).await;
                    statuses.push(reply.status);
                    if reply.status == 204 {
                        acknowledged.push((user.clone(), value));
                    }
                }
                (acknowledged, statuses)
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    let mut statuses = Vec::new();
    for task in tasks {
        let (acks, seen) = task.await.unwrap();
        acknowledged.extend(acks);
        statuses.extend(seen);
    }
    let refused: Vec<u16> = statuses.iter().copied().filter(|s| *s != 204).collect();
    let served_500 = refused.iter().filter(|s| **s == 500).count();
    assert_eq!(served_500, 0, "{refused:?}");
    // Retries absorb the conflicts; a 503 would mean they ran out, which this load should not do.
    assert!(
        refused.is_empty(),
        "{} of {} sets refused: {refused:?}",
        refused.len(),
        statuses.len()
    );
    // Every instance reads the same value for each user, and it is one that was acknowledged.
    for user in &users {
        let mut seen = HashSet::new();
        for app in &apps {
            let reply = app.get_data(user).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            seen.insert(reply.json()["ownIdData"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen.len(), 1, "{user}: instances disagree: {seen:?}");
        let value = seen.into_iter().next().unwrap();
        assert!(
            acknowledged.contains(&(user.clone(), value.clone())),
            "{user}: {value} was never acknowledged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_through_one_instance_is_read_through_another() {
    let apps = instances(&[]).await;
    apps[0].add_user("alice@example.com").await;
    let mut stale = Vec::new();
    for round in 0..300 {
        let value = format!("v{round}");
        let writer = &apps[round % 3];
        let reader = &apps[(round + 1) % 3];
        writer
            .set_data("alice@example.com", &value)
            .await
            .assert_empty(204);
        let reply = reader.get_data("alice@example.com").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.json()["ownIdData"] != value.as_str() {
            stale.push(round);
        }
    }
    assert!(
        stale.is_empty(),
        "{} of 300 reads were stale: {stale:?}",
        stale.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_refused_on_every_node_and_racing_instances_accept_once() {
    let seen = format!("galera_seen_{}", uuid::Uuid::new_v4().simple());
    let apps = instances(&[
        ("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "storage"),
        ("OWNID_BRIDGE__OWNID__REPLAY_TABLE", &seen),
    ])
    .await;
    apps[0].add_user("alice@example.com").await;
    let session = Signed::session("alice@example.com");
    assert_eq!(session.send(&apps[0]).await.status, 200);
    for app in &apps {
        session
            .send(app)
            .await
            .assert_error(401, "replayed_request");
    }
    let mut refusals = std::collections::BTreeMap::new();
    for round in 0..30 {
        let set = Signed::set("alice@example.com", &format!("round {round}"));
        let replies = futures_join3(&set, &apps).await;
        let accepted = replies.iter().filter(|reply| reply.status == 204).count();
        assert_eq!(accepted, 1, "round {round}: {replies:?}");
        for reply in replies.iter().filter(|reply| reply.status != 204) {
            let refusal = assert_refused_copy(reply, &format!("round {round}"));
            *refusals.entry(refusal).or_insert(0) += 1;
        }
    }
    println!("refusals of the racing copies: {refusals:?}");
}

/// The same signed request sent to the three instances at once.
async fn futures_join3(signed: &Signed, apps: &[Arc<TestApp>]) -> [Reply; 3] {
    let (a, b, c) = tokio::join!(
        signed.send(&apps[0]),
        signed.send(&apps[1]),
        signed.send(&apps[2])
    );
    [a, b, c]
}
