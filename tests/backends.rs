//! The same server on every networked backend: only `storage.backend` and `storage.url` change.
//! Each run uses a table (collection) of its own, created as the demo table.

mod common;

use common::*;
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;
use serde_json::json;

/// The app over `backend` at `url`, on a fresh table.
async fn app_on(backend: &str, url: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = backend_config(backend, url, "users", &[]);
    let store = storage::open(&config.storage, false)
        .await
        .expect("open the store");
    store.apply_schema(true).await.expect("schema");
    spawn_with_store(config, store, dir)
}

async fn the_contract_holds(app: &TestApp) {
    app.add_user("alice@example.com").await;
    app.get_data("alice@example.com").await.assert_empty(204);
    app.set_data("alice@example.com", "ünïcödé 😀 data")
        .await
        .assert_empty(204);
    let reply = app.get_data("alice@example.com").await;
    assert_eq!(reply.json(), json!({ "ownIdData": "ünïcödé 😀 data" }));
    assert_eq!(app.session("alice@example.com").await.status, 200);
    app.set_data("bob@example.com", "x").await.assert_empty(404);
    app.get_data("bob@example.com").await.assert_empty(404);
    app.session("bob@example.com").await.assert_empty(404);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
}

#[tokio::test]
async fn postgres() {
    let app = app_on("postgres", &required_url("OWNID_TEST_POSTGRES_URL")).await;
    the_contract_holds(&app).await;
}

#[tokio::test]
async fn mysql() {
    let base = required_url("OWNID_TEST_MYSQL_URL");
    let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
    sqlx::query("CREATE DATABASE IF NOT EXISTS ownid_bridge_app_test")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = format!("{}/ownid_bridge_app_test", base.trim_end_matches('/'));
    let app = app_on("mariadb", &url).await;
    the_contract_holds(&app).await;
}

#[tokio::test]
async fn mongodb() {
    let base = required_url("OWNID_TEST_MONGODB_URL");
    let url = format!("{}/ownid_bridge_app_test", base.trim_end_matches('/'));
    let app = app_on("mongodb", &url).await;
    the_contract_holds(&app).await;
}
