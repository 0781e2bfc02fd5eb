//! The shared conformance suite through PgBouncer in `pool_mode = transaction`
//! (`OWNID_TEST_PGBOUNCER_URL`, in front of `OWNID_TEST_POSTGRES_URL`; scripts/test.sh starts
//! both), as most production PostgreSQL set-ups run: PgBouncer's own defaults, no
//! `ignore_startup_parameters`. Each case gets a database of its own (PgBouncer forwards every
//! database name), since a search_path in the startup `options` is refused by PgBouncer.

use std::sync::Arc;

use ownid_bridge_postgres::{PostgresOptions, PostgresStore};
use ownid_bridge_store::conformance::{self, StoreFuture};
use ownid_bridge_store::outage::required_url;
use ownid_bridge_store::{PoolSettings, UserStore, UsersMapping};

/// A fresh database on the PostgreSQL behind PgBouncer, and its URL through PgBouncer.
async fn fresh_database() -> String {
    let name = format!("b_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&required_url("OWNID_TEST_POSTGRES_URL"))
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let bouncer = required_url("OWNID_TEST_PGBOUNCER_URL");
    let (server, _) = bouncer.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{name}")
}

fn open(mapping: UsersMapping) -> StoreFuture {
    Box::pin(async move {
        let store = PostgresStore::connect(PostgresOptions {
            url: fresh_database().await,
            mapping,
            pool: PoolSettings::default(),
            transaction_pooler: true,
        })
        .await
        .expect("open PostgreSQL through PgBouncer");
        Arc::new(store) as Arc<dyn UserStore>
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_pgbouncer_passes_the_conformance_suite() {
    conformance::run_all(&open).await;
}

/// Many connections taking turns on PgBouncer's few server connections, each statement landing
/// wherever the pooler puts it: every call answers, none with "prepared statement does not
/// exist".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_through_pgbouncer_all_succeed() {
    let store = open(UsersMapping::demo()).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    for i in 0..4 {
        store
            .create_user(&format!("user{i}@example.com"))
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for round in 0..40 {
                    let login = format!("user{}@example.com", (task + round) % 4);
                    match round % 3 {
                        0 => store
                            .set_ownid_data(&login, &format!("{task}-{round}"), false)
                            .await
                            .map(|_| ()),
                        1 => store.get_ownid_data(&login).await.map(|_| ()),
                        _ => store.get_session_user(&login).await.map(|_| ()),
                    }
                    .unwrap_or_else(|err| panic!("task {task}, round {round}: {err}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
