//! Several server instances over a 3-node MariaDB Galera cluster (`scripts/servers/galera.sh`, which
//! scripts/test.sh starts; `OWNID_TEST_GALERA_URLS` names the three nodes), one instance per
//! node, as a load balancer would spread OwnID's calls:
//! - conflicting writes on a few users from every instance: certification conflicts are retried,
//!   never answered 500, and the stored value is one that was acknowledged;
//! - a set answered by one instance is seen by a get on another instance over another node
//!   (`wsrep_sync_wait`, on by default);
//! - with `ownid.replay_protection: storage`, a request accepted by one instance is refused by
//!   the others, and instances on different nodes racing on one signature accept it once (the
//!   losers' inserts fail certification and are retried, then find the winner's row).

use std::collections::HashSet;
use std::sync::Arc;

use crate::common::*;
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
            storage::apply_schema(
                &config,
                store.as_ref(),
                &ownid_bridge_store::SchemaOptions::CREATE_TABLE,
            )
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

/// 12 writers, 4 per instance, all on the same 4 users: about one set in ten meets a
/// certification conflict (50–91 retries per 600 sets in 30 runs here). A set whose tries run out
/// is a 503 with `Retry-After`, which OwnID retries; never 500. Measured here (600 sets a run):
/// without retries (1 try) 67 sets ran out; with 2, 3 and 4 tries 9–22, 1–8 and 0–2 (5 runs
/// each); with 6 tries, the old default, none in 25 runs, but one CI run saw one; with the
/// default 10 tries (and 1 s of waiting), none in 30 runs. The test allows 1 % (6 sets): a slow
/// machine does not fail it, a retry that stopped working does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_writes_from_every_instance_are_retried_not_refused() {
    let _group = crate::common::exclusive("galera").await;
    // An empty allow-list lets the in-process client read /metrics (the retry counter).
    let apps = instances(&[("OWNID_BRIDGE__METRICS__ALLOWED_NETWORKS", "")]).await;
    let users: Vec<String> = (0..4).map(|i| format!("user{i}@example.com")).collect();
    for user in &users {
        apps[0].add_user(user).await;
    }
    let tasks: Vec<_> = (0..12)
        .map(|writer| {
            let app = Arc::clone(&apps[writer % 3]);
            let users = users.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut refused = Vec::new();
                for round in 0..50 {
                    let user = &users[(writer + round) % users.len()];
                    let value = format!("w{writer}r{round}");
                    let reply = app.set_data(user, &value).await;
                    if reply.status == 204 {
                        acknowledged.push((user.clone(), value));
                    } else {
                        refused.push(reply);
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    let mut refused = Vec::new();
    for task in tasks {
        let (acks, replies) = task.await.unwrap();
        acknowledged.extend(acks);
        refused.extend(replies);
    }
    let sets = acknowledged.len() + refused.len();
    assert_eq!(sets, 600);
    for reply in &refused {
        // Never 500: a conflict whose tries ran out is 503 storage_unavailable, retryable.
        reply.assert_error(503, "storage_unavailable");
        assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
    }
    assert!(
        refused.len() * 100 <= sets,
        "{} of {sets} sets answered 503: the retries did not absorb the conflicts",
        refused.len()
    );
    // The load did meet conflicts, and they were retried (the counter is the process's, which
    // the other tests here share; they only add to it).
    let metrics = apps[0].get("/metrics").await.body;
    let retried: u64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with("ownid_bridge_storage_retries_total{")
                && line.contains("operation=\"setOwnIDDataByLoginId\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(retried > 0, "no set was retried:\n{metrics}");
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
    let _group = crate::common::exclusive("galera").await;
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
    let _group = crate::common::exclusive("galera").await;
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
