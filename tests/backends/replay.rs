//! `ownid.replay_protection: storage` on the server backends (see tests/inproc/replay.rs): two instances
//! over one PostgreSQL (directly and through PgBouncer), MariaDB and MongoDB database refuse a
//! replay and accept racing copies once; `serve` needs the replay table.

use crate::common::replay::{both_cases, pair};
use crate::common::*;
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let _group = crate::common::exclusive("backends").await;
    let database = fresh_database("postgres", "ownid_bridge_replay_test").await;
    both_cases("postgres", &database.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_pgbouncer() {
    let _group = crate::common::exclusive("backends").await;
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
    let _group = crate::common::exclusive("backends").await;
    let url = mysql_test_database("ownid_bridge_replay_test").await;
    both_cases("mariadb", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb() {
    let _group = crate::common::exclusive("backends").await;
    let url = mongodb_test_database("ownid_bridge_replay_test").await;
    both_cases("mongodb", &url).await;
}

/// `serve` refuses to start on a database without the replay table (outside the demo database),
/// and `storage::inspect` names it.
#[tokio::test]
async fn serving_needs_the_replay_table() {
    let _group = crate::common::exclusive("backends").await;
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
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let report = storage::inspect(&config, store.as_ref()).await.unwrap();
    let check = report
        .check(ownid_bridge_store::LEDGER_CHECK)
        .expect("a line for the replay table");
    assert!(
        !check.ok() && check.detail.contains("ownid-bridge schema"),
        "{check:?}"
    );
    let refused = storage::open_for_serving(&config).await.err().unwrap();
    assert!(
        refused.to_string().contains("replay guard table"),
        "{refused}"
    );
    storage::apply_schema(
        &config,
        store.as_ref(),
        &ownid_bridge_store::SchemaOptions::default(),
    )
    .await
    .unwrap();
    assert!(storage::open_for_serving(&config).await.is_ok());
}
