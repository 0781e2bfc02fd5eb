//! The same server on every networked backend: only `storage.backend` and `storage.url` change.
//! Each run uses a table (collection) of its own, created as the demo table.

use crate::common::*;
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;
use serde_json::json;

/// The app over `backend` at `url`, on a fresh table.
async fn app_on(backend: &str, url: &str) -> TestApp {
    app_with(backend, url, &[]).await
}

/// [`app_on`] with configuration overrides (`OWNID_BRIDGE__...` pairs).
async fn app_with(backend: &str, url: &str, overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = backend_config(backend, url, "users", overrides);
    let store = storage::open(&config.storage, false)
        .await
        .expect("open the store");
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema");
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
    // Not every database can store U+0000: refused alike on every backend, never a 500.
    app.set_data("alice@example.com", "nul\u{0}inside")
        .await
        .assert_error(400, "invalid_request");
    let reply = app.get_data("alice@example.com").await;
    assert_eq!(reply.json(), json!({ "ownIdData": "ünïcödé 😀 data" }));
}

#[tokio::test]
async fn postgres() {
    let _group = crate::common::exclusive("backends").await;
    let database = fresh_database("postgres", "ownid_bridge_app_test").await;
    let app = app_on("postgres", &database.url).await;
    the_contract_holds(&app).await;
}

/// PostgreSQL behind PgBouncer in transaction mode, with PgBouncer's defaults (no
/// `ignore_startup_parameters`) and `storage.pooler: transaction`.
#[tokio::test]
async fn postgres_through_pgbouncer() {
    let _group = crate::common::exclusive("backends").await;
    let url = required_url("OWNID_TEST_PGBOUNCER_URL");
    let app = app_with(
        "postgres",
        &url,
        &[("OWNID_BRIDGE__STORAGE__POOLER", "transaction")],
    )
    .await;
    the_contract_holds(&app).await;
}

#[tokio::test]
async fn mysql() {
    let _group = crate::common::exclusive("backends").await;
    let url = mysql_test_database("ownid_bridge_app_test").await;
    let app = app_on("mariadb", &url).await;
    the_contract_holds(&app).await;
}

#[tokio::test]
async fn mongodb() {
    let _group = crate::common::exclusive("backends").await;
    let url = mongodb_test_database("ownid_bridge_app_test").await;
    let app = app_on("mongodb", &url).await;
    the_contract_holds(&app).await;
}

/// A database that refuses the first two updates with a real conflict error (a trigger raising
/// it through the driver): the set is retried and stored; one that always refuses is 503 with
/// `Retry-After`, never 500.
async fn conflicts_are_retried(
    app: &TestApp,
    fail_twice: &[String],
    fail_always: &[String],
    run: impl AsyncFn(&str),
) {
    app.add_user("alice@example.com").await;
    for statement in fail_twice {
        run(statement).await;
    }
    app.set_data("alice@example.com", "after two conflicts")
        .await
        .assert_empty(204);
    let reply = app.get_data("alice@example.com").await;
    assert_eq!(reply.json(), json!({ "ownIdData": "after two conflicts" }));
    for statement in fail_always {
        run(statement).await;
    }
    let reply = app.set_data("alice@example.com", "never").await;
    reply.assert_error(503, "storage_unavailable");
    assert!(reply.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn postgres_serialization_failures_are_retried() {
    let _group = crate::common::exclusive("backends").await;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let app = app_on("postgres", &url).await;
    let table = app.config.storage.users.mapping().table.to_string();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let trigger = |condition: &str| {
        vec![
            format!(
                "CREATE OR REPLACE FUNCTION {table}_fail() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN IF {condition} THEN \
                 RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; \
                 END IF; RETURN NEW; END $$"
            ),
            format!("DROP TRIGGER IF EXISTS fail ON {table}"),
            format!(
                "CREATE TRIGGER fail BEFORE UPDATE ON {table} FOR EACH ROW \
                 EXECUTE FUNCTION {table}_fail()"
            ),
        ]
    };
    // A sequence is not rolled back with the failed statement: it counts the tries.
    let mut twice = vec![format!("CREATE SEQUENCE {table}_tries")];
    twice.extend(trigger(&format!("nextval('{table}_tries') <= 2")));
    conflicts_are_retried(&app, &twice, &trigger("true"), async |statement| {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&admin)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn mysql_deadlocks_and_certification_conflicts_are_retried() {
    let _group = crate::common::exclusive("backends").await;
    let url = mysql_test_database("ownid_bridge_app_test").await;
    let app = app_on("mariadb", &url).await;
    let table = app.config.storage.users.mapping().table.to_string();
    let admin = sqlx::MySqlPool::connect(&url).await.unwrap();
    // 1213 is what a deadlock and a Galera certification conflict report.
    let trigger = |condition: &str| {
        vec![
            format!("DROP TRIGGER IF EXISTS {table}_fail"),
            format!(
                "CREATE TRIGGER {table}_fail BEFORE UPDATE ON {table} FOR EACH ROW \
                 IF {condition} THEN SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, \
                 MESSAGE_TEXT = 'Deadlock found when trying to get lock'; END IF"
            ),
        ]
    };
    let mut twice = vec![format!("CREATE SEQUENCE {table}_tries")];
    twice.extend(trigger(&format!("NEXTVAL({table}_tries) <= 2")));
    conflicts_are_retried(&app, &twice, &trigger("TRUE"), async |statement| {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&admin)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_statements_waiting_on_a_lock_time_out() {
    let _group = crate::common::exclusive("backends").await;
    use sqlx::Connection as _;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let app = app_with("postgres", &url, &STATEMENT_TIMEOUT).await;
    app.add_user("alice@example.com").await;
    let table = app.config.storage.users.mapping().table.to_string();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *lock)
    .await
    .unwrap();
    held_up_by_a_lock_is_503(&app, async |app| app.get_data("alice@example.com").await).await;
    held_up_by_a_lock_is_503(&app, async |app| {
        app.set_data("alice@example.com", "x").await
    })
    .await;
    lock.rollback().await.unwrap();
    app.set_data("alice@example.com", "after the lock")
        .await
        .assert_empty(204);
}

#[tokio::test]
async fn postgres_through_pgbouncer_statements_waiting_on_a_lock_time_out() {
    let _group = crate::common::exclusive("backends").await;
    use sqlx::Connection as _;
    let direct = required_url("OWNID_TEST_POSTGRES_URL");
    let url = required_url("OWNID_TEST_PGBOUNCER_URL");
    let mut overrides = STATEMENT_TIMEOUT.to_vec();
    overrides.push(("OWNID_BRIDGE__STORAGE__POOLER", "transaction"));
    let app = app_with("postgres", &url, &overrides).await;
    app.add_user("alice@example.com").await;
    let table = app.config.storage.users.mapping().table.to_string();
    let mut admin = sqlx::PgConnection::connect(&direct).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *lock)
    .await
    .unwrap();
    held_up_by_a_lock_is_503(&app, async |app| app.get_data("alice@example.com").await).await;
    lock.rollback().await.unwrap();
    assert_eq!(app.get_data("alice@example.com").await.status, 204);
}

#[tokio::test]
async fn mysql_statements_waiting_on_a_lock_time_out() {
    let _group = crate::common::exclusive("backends").await;
    use sqlx::{Connection as _, Executor as _};
    let url = mysql_test_database("ownid_bridge_app_test").await;
    let app = app_with("mariadb", &url, &STATEMENT_TIMEOUT).await;
    app.add_user("alice@example.com").await;
    let table = app.config.storage.users.mapping().table.to_string();
    let mut admin = sqlx::MySqlConnection::connect(&url).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("LOCK TABLES {table} WRITE")))
        .await
        .unwrap();
    held_up_by_a_lock_is_503(&app, async |app| app.get_data("alice@example.com").await).await;
    held_up_by_a_lock_is_503(&app, async |app| {
        app.set_data("alice@example.com", "x").await
    })
    .await;
    admin.execute("UNLOCK TABLES").await.unwrap();
    app.set_data("alice@example.com", "after the lock")
        .await
        .assert_empty(204);
}

/// A TCP proxy in front of `target` that, while `stalled`, holds back what the server sends.
async fn stalling_proxy(
    target: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flag = stalled.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let flag = flag.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, stalled)
}

#[tokio::test]
async fn mongodb_operations_that_do_not_answer_time_out() {
    let _group = crate::common::exclusive("backends").await;
    use ownid_bridge_store::outage::{server_addr, with_server};
    let url = mongodb_test_database("ownid_bridge_app_test").await;
    let (proxy, stalled) = stalling_proxy(server_addr(&url).await).await;
    let app = app_with("mongodb", &with_server(&url, proxy), &STATEMENT_TIMEOUT).await;
    app.add_user("alice@example.com").await;
    stalled.store(true, std::sync::atomic::Ordering::SeqCst);
    held_up_by_a_lock_is_503(&app, async |app| app.get_data("alice@example.com").await).await;
    held_up_by_a_lock_is_503(&app, async |app| {
        app.set_data("alice@example.com", "x").await
    })
    .await;
    stalled.store(false, std::sync::atomic::Ordering::SeqCst);
}
