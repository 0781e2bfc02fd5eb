//! The shared conformance suite and outage story on a real PostgreSQL server
//! (`OWNID_TEST_POSTGRES_URL`; scripts/test.sh starts a throwaway one). Each case gets its own
//! schema, selected through the connection's search_path.

use std::sync::Arc;
use std::time::Duration;

use ownid_bridge_postgres::{PostgresOptions, PostgresStore};
use ownid_bridge_store::conformance::{self, StoreFuture};
use ownid_bridge_store::outage::{
    outage_story, required_url, server_addr, with_server, OutageProxy,
};
use ownid_bridge_store::{PoolSettings, StoreError, UserStore, UsersMapping};

const URL_VARIABLE: &str = "OWNID_TEST_POSTGRES_URL";

/// A fresh schema, and the URL that makes it the search path.
async fn fresh_schema(base: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(base)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

fn open(mapping: UsersMapping) -> StoreFuture {
    Box::pin(async move {
        let url = fresh_schema(&required_url(URL_VARIABLE)).await;
        let store = PostgresStore::connect(PostgresOptions {
            url,
            mapping,
            pool: PoolSettings::default(),
        })
        .await
        .expect("open PostgreSQL");
        Arc::new(store) as Arc<dyn UserStore>
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    conformance::run_all(&open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_unavailable_during_an_outage_and_recovers() {
    let base = required_url(URL_VARIABLE);
    let url = fresh_schema(&base).await;
    let proxy = OutageProxy::start(server_addr(&base).await).await.unwrap();
    let pool = PoolSettings {
        acquire_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..PoolSettings::default()
    };
    let store = PostgresStore::connect(PostgresOptions {
        url: with_server(&url, proxy.addr()),
        mapping: UsersMapping::demo(),
        pool,
    })
    .await
    .unwrap();
    outage_story(Arc::new(store), &proxy, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_value_longer_than_a_varchar_column_is_too_large_and_nothing_changes() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (login_id TEXT PRIMARY KEY, ownid_data VARCHAR(10))")
        .execute(&setup)
        .await
        .unwrap();
    let store = PostgresStore::connect(PostgresOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
    })
    .await
    .unwrap();
    let report = store.inspect().await.unwrap();
    assert!(!report.is_ok() && report.is_usable(), "{report}");
    store.create_user("a@example.com").await.unwrap();
    store
        .set_ownid_data("a@example.com", "😀😀😀😀😀😀😀😀😀😀", false)
        .await
        .unwrap();
    let err = store
        .set_ownid_data("a@example.com", "0123456789x", false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { max_chars: 10 }),
        "{err:?}"
    );
    assert_eq!(
        store
            .get_ownid_data("a@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("😀😀😀😀😀😀😀😀😀😀")
    );
}

#[tokio::test]
async fn an_existing_table_gets_its_column_and_index_from_schema() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE \"Accounts\" (id SERIAL PRIMARY KEY, \"Email\" TEXT NOT NULL, plan TEXT)",
    )
    .execute(&setup)
    .await
    .unwrap();
    sqlx::query("INSERT INTO \"Accounts\" (\"Email\", plan) VALUES ('x@example.com', 'pro')")
        .execute(&setup)
        .await
        .unwrap();
    let mapping = UsersMapping {
        table: ownid_bridge_store::Identifier::new("Accounts").unwrap(),
        login_id: ownid_bridge_store::Identifier::new("Email").unwrap(),
        ownid_data: ownid_bridge_store::Identifier::new("OwnIdData").unwrap(),
        user_id: Some(ownid_bridge_store::Identifier::new("id").unwrap()),
        claims: vec![(
            "plan".into(),
            ownid_bridge_store::Identifier::new("plan").unwrap(),
        )],
    };
    let store = PostgresStore::connect(PostgresOptions {
        url,
        mapping,
        pool: PoolSettings::default(),
    })
    .await
    .unwrap();
    let before = store.inspect().await.unwrap();
    assert!(!before.is_usable(), "{before}");
    let changes = store.apply_schema(false).await.unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(store.inspect().await.unwrap().is_ok());
    store
        .set_ownid_data("x@example.com", "d", false)
        .await
        .unwrap();
    let user = store.get_session_user("x@example.com").await.unwrap();
    assert_eq!(user.subject, "1");
    assert_eq!(user.claims["plan"], "pro");
}
