//! The shared conformance suite, on a fresh SQLite file per case.

use std::sync::Arc;

use ownid_bridge_sqlite::{SqliteOptions, SqliteStore};
use ownid_bridge_store::conformance::{self, StoreFuture};
use ownid_bridge_store::{PoolSettings, StoreError, UserStore, UsersMapping};

fn open(mapping: UsersMapping) -> StoreFuture {
    Box::pin(async move {
        // Leaked on purpose: the directory must outlive the store, and each case is small.
        let dir = tempfile::tempdir().unwrap().keep();
        let url = format!("sqlite://{}", dir.join("conformance.db").display());
        let store = SqliteStore::connect(SqliteOptions {
            url,
            mapping,
            pool: PoolSettings::default(),
            create_if_missing: true,
        })
        .await
        .expect("open SQLite");
        Arc::new(store) as Arc<dyn UserStore>
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    conformance::run_all(&open).await;
}

#[tokio::test]
async fn a_value_wider_than_the_declared_column_is_too_large_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("narrow.db").display());
    let options = SqliteOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        create_if_missing: true,
    };
    let store = SqliteStore::connect(options.clone()).await.unwrap();
    store.apply_schema(true).await.unwrap();
    // Rebuild the table with a narrow column, as an existing application might have it.
    drop(store);
    let pool = sqlx::SqlitePool::connect(&options.url).await.unwrap();
    sqlx::query("DROP TABLE users")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE users (login_id TEXT PRIMARY KEY, ownid_data VARCHAR(10))")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = SqliteStore::connect(options).await.unwrap();
    let report = store.inspect().await.unwrap();
    assert!(
        !report.is_ok(),
        "a 10-character column passed check:\n{report}"
    );
    assert!(report.is_usable());
    store.create_user("a@example.com").await.unwrap();
    store
        .set_ownid_data("a@example.com", "0123456789", false)
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
        Some("0123456789")
    );
}

#[tokio::test]
async fn in_memory_urls_are_refused_with_a_reason() {
    let err = SqliteStore::connect(SqliteOptions {
        url: "sqlite::memory:".into(),
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        create_if_missing: true,
    })
    .await
    .err()
    .expect("in-memory accepted");
    assert!(err.to_string().contains("in-memory"), "{err}");
}
