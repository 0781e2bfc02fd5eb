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
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
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
    let report = store.inspect().await.unwrap().settle(true);
    assert!(
        !report.is_ok(),
        "a 10-character column passed check:\n{report}"
    );
    assert!(report.check("table").unwrap().ok());
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

/// A users table whose login-id column compares without ASCII case (`COLLATE NOCASE`, with its
/// unique index), holding Alice with `id` 7 and `role` admin.
async fn nocase_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nocase.db").display());
    let options = SqliteOptions {
        url: url.clone(),
        mapping: conformance::look_alike_mapping(),
        pool: PoolSettings::default(),
        create_if_missing: true,
    };
    let setup = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    for statement in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, login_id TEXT NOT NULL COLLATE NOCASE, \
         ownid_data TEXT, role TEXT)",
        "CREATE UNIQUE INDEX users_login_id_key ON users (login_id)",
        "INSERT INTO users (id, login_id, role) VALUES (7, 'alice@example.com', 'admin')",
    ] {
        sqlx::query(statement).execute(&setup).await.unwrap();
    }
    setup.close().await;
    (SqliteStore::connect(options).await.unwrap(), dir)
}

#[tokio::test]
async fn look_alike_login_ids_on_a_nocase_column_are_other_users() {
    let (store, _dir) = nocase_store().await;
    conformance::look_alikes_are_other_users(&store, "7").await;
}

#[tokio::test]
async fn exact_lookups_still_search_the_login_id_index() {
    let (store, dir) = nocase_store().await;
    let url = format!("sqlite://{}", dir.path().join("nocase.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let sql = store.statements();
    for statement in [&sql.get, &sql.session, &sql.update] {
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {statement}"
        )))
        .bind("x")
        .bind("x")
        .bind("x")
        .fetch_all(&pool)
        .await
        .unwrap();
        let details: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        assert!(
            details
                .iter()
                .any(|d| d.contains("USING INDEX users_login_id_key")
                    || d.contains("USING COVERING INDEX users_login_id_key")),
            "{statement}: {details:?}"
        );
    }
}

/// An acknowledged set survives a power loss: the writer syncs every commit
/// (`synchronous = FULL`, 2), not only at checkpoints (NORMAL, 1).
#[tokio::test]
async fn the_writer_syncs_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("durable.db").display());
    let (_reader, writer) = ownid_bridge_sqlite::open_pools(&url, &PoolSettings::default(), true)
        .await
        .unwrap();
    let mut conn = writer.acquire().await.unwrap();
    assert_eq!(
        conn.run(
            async |conn| sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(conn)
                .await
        )
        .await
        .unwrap(),
        2
    );
}
