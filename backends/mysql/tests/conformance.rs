//! The shared conformance suite and outage story on a real MySQL or MariaDB server
//! (`OWNID_TEST_MYSQL_URL`, e.g. `mysql://root@127.0.0.1:3306/`; scripts/test.sh starts a
//! throwaway MariaDB). Each case gets its own database.

use std::sync::Arc;

use ownid_bridge_mysql::{MySqlOptions, MySqlStore};
use ownid_bridge_store::conformance::{self, StoreFuture};
use ownid_bridge_store::outage::{behind_proxy, outage_story, required_url, OUTAGE_TIMEOUT};
use ownid_bridge_store::{Identifier, PoolSettings, StoreError, UserStore, UsersMapping};

const URL_VARIABLE: &str = "OWNID_TEST_MYSQL_URL";

/// A fresh database, and the URL that names it.
async fn fresh_database(base: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::MySqlPool::connect(base)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (server, query) = match base.split_once('?') {
        Some((server, query)) => (server, format!("?{query}")),
        None => (base, String::new()),
    };
    // Replace whatever database the base URL names.
    let scheme_end = server.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = server[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(server.len());
    format!("{}/{name}{query}", &server[..host_end])
}

fn open(mapping: UsersMapping) -> StoreFuture {
    Box::pin(async move {
        let url = fresh_database(&required_url(URL_VARIABLE)).await;
        let store = MySqlStore::connect(MySqlOptions {
            url,
            mapping,
            pool: PoolSettings::default(),
            galera_sync_wait: true,
        })
        .await
        .expect("open MySQL/MariaDB");
        Arc::new(store) as Arc<dyn UserStore>
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_passes_the_conformance_suite() {
    conformance::run_all(&open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_answers_unavailable_during_an_outage_and_recovers() {
    let url = fresh_database(&required_url(URL_VARIABLE)).await;
    let (proxy, url, pool) = behind_proxy(&url).await;
    let store = MySqlStore::connect(MySqlOptions {
        url,
        mapping: UsersMapping::demo(),
        pool,
        galera_sync_wait: true,
    })
    .await
    .unwrap();
    outage_story(Arc::new(store), &proxy, OUTAGE_TIMEOUT).await;
}

async fn store_over(table_sql: &str) -> MySqlStore {
    let url = fresh_database(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::MySqlPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(table_sql.to_owned()))
        .execute(&setup)
        .await
        .unwrap();
    setup.close().await;
    MySqlStore::connect(MySqlOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        galera_sync_wait: true,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn strict_mode_refuses_what_a_varchar_cannot_hold_and_nothing_changes() {
    let store = store_over(
        "CREATE TABLE users (login_id VARCHAR(100) PRIMARY KEY, ownid_data VARCHAR(10)) \
         CHARSET utf8mb4",
    )
    .await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(!report.is_ok(), "{report}");
    store.create_user("a@example.com").await.unwrap();
    store
        .set_ownid_data("a@example.com", "😀😀😀😀😀😀😀😀😀😀", false)
        .await
        .unwrap();
    let err = store
        .set_ownid_data("a@example.com", "0123456789x", false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
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
async fn strict_mode_refuses_what_a_text_column_cannot_hold() {
    // TEXT holds 65,535 bytes; its limit is in bytes, so only the server can enforce it.
    let store = store_over(
        "CREATE TABLE users (login_id VARCHAR(100) PRIMARY KEY, ownid_data TEXT) CHARSET utf8mb4",
    )
    .await;
    store.create_user("a@example.com").await.unwrap();
    store
        .set_ownid_data("a@example.com", "kept", false)
        .await
        .unwrap();
    let too_long = "😀".repeat(20_000); // 80,000 bytes
    let err = store
        .set_ownid_data("a@example.com", &too_long, false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        store
            .get_ownid_data("a@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("kept")
    );
    let fits = "😀".repeat(16_000); // 64,000 bytes
    store
        .set_ownid_data("a@example.com", &fits, false)
        .await
        .unwrap();
    assert_eq!(
        store.get_ownid_data("a@example.com").await.unwrap(),
        Some(fits)
    );
}

#[tokio::test]
async fn check_flags_a_case_insensitive_login_id_and_a_3_byte_charset() {
    let store = store_over(
        "CREATE TABLE users (login_id VARCHAR(100) COLLATE utf8mb4_general_ci NOT NULL, \
         ownid_data TEXT CHARACTER SET utf8mb3) CHARSET utf8mb4",
    )
    .await;
    let report = store.inspect().await.unwrap().settle(true);
    let failed: Vec<&str> = report.problems().map(|check| check.name.as_str()).collect();
    assert!(failed.contains(&"login_id collation"), "{report}");
    assert!(failed.contains(&"ownid_data charset"), "{report}");
    assert!(failed.contains(&"login_id unique index"), "{report}");
    let changes = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert_eq!(changes.statements.len(), 1, "{changes:?}");
    let report = store.inspect().await.unwrap().settle(true);
    assert!(
        report.check("login_id unique index").unwrap().ok(),
        "{report}"
    );
}

#[tokio::test]
async fn quoted_keyword_and_mixed_case_names_with_claims() {
    let store_url = fresh_database(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::MySqlPool::connect(&store_url).await.unwrap();
    sqlx::query(
        "CREATE TABLE `Order` (`id` INT AUTO_INCREMENT PRIMARY KEY, `order` VARCHAR(320) NOT NULL, \
         `active` TINYINT(1), `score` DOUBLE) CHARSET utf8mb4 COLLATE utf8mb4_bin",
    )
    .execute(&setup)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO `Order` (`order`, `active`, `score`) VALUES ('q@example.com', 1, 2.5)",
    )
    .execute(&setup)
    .await
    .unwrap();
    setup.close().await;
    let mapping = UsersMapping {
        table: Identifier::new("Order").unwrap().into(),
        login_id: Identifier::new("order").unwrap(),
        ownid_data: Identifier::new("OwnIdData").unwrap(),
        user_id: Some(Identifier::new("id").unwrap()),
        claims: vec![
            ("active".into(), Identifier::new("active").unwrap()),
            ("score".into(), Identifier::new("score").unwrap()),
        ],
    };
    let store = MySqlStore::connect(MySqlOptions {
        url: store_url,
        mapping,
        pool: PoolSettings::default(),
        galera_sync_wait: true,
    })
    .await
    .unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert!(
        store.inspect().await.unwrap().settle(true).is_ok(),
        "{}",
        store.inspect().await.unwrap().settle(true)
    );
    store
        .set_ownid_data("q@example.com", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀", false)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_ownid_data("q@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀")
    );
    let user = store.get_session_user("q@example.com").await.unwrap();
    assert_eq!(user.subject, "1");
    assert_eq!(user.claims["active"], 1);
    assert_eq!(user.claims["score"], 2.5);
}

/// Red team, round 3 (R2): a constant default on the user-id column would give every created
/// user one `sub`: `check` fails it; generated defaults pass.
#[tokio::test]
async fn a_constant_user_id_default_fails_the_check() {
    let store_url = fresh_database(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::MySqlPool::connect(&store_url).await.unwrap();
    sqlx::query(
        "CREATE TABLE users (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         login_id VARCHAR(320) NOT NULL UNIQUE, ownid_data TEXT, \
         blank VARCHAR(40) NOT NULL DEFAULT '', zero INT DEFAULT 0, named VARCHAR(20) DEFAULT 'n/a', \
         uid VARCHAR(36) DEFAULT (uuid()), plain VARCHAR(40)) CHARSET utf8mb4 COLLATE utf8mb4_bin",
    )
    .execute(&setup)
    .await
    .unwrap();
    setup.close().await;
    for (column, constant) in [
        ("blank", true),
        ("zero", true),
        ("named", true),
        ("id", false),
        ("uid", false),
        ("plain", false),
    ] {
        let mut mapping = UsersMapping::demo();
        mapping.user_id = Some(Identifier::new(column).unwrap());
        let store = MySqlStore::connect(MySqlOptions {
            url: store_url.clone(),
            mapping,
            pool: PoolSettings::default(),
            galera_sync_wait: true,
        })
        .await
        .unwrap();
        let report = store.inspect().await.unwrap().settle(true);
        let check = report.check("user_id default").expect("checked");
        assert_eq!(check.ok(), !constant, "{column}: {report}");
    }
}

/// A users table whose login-id column has `collation` (with a unique index), holding Alice with
/// `id` 7 and `role` admin.
async fn look_alike_store(collation: &str) -> (MySqlStore, String) {
    let url = fresh_database(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in [
        format!(
            "CREATE TABLE users (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             login_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL UNIQUE, \
             ownid_data MEDIUMTEXT, role VARCHAR(20)) CHARSET utf8mb4"
        ),
        "INSERT INTO users (id, login_id, role) VALUES (7, 'alice@example.com', 'admin')".into(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&setup)
            .await
            .unwrap();
    }
    setup.close().await;
    let store = MySqlStore::connect(MySqlOptions {
        url: url.clone(),
        mapping: conformance::look_alike_mapping(),
        pool: PoolSettings::default(),
        galera_sync_wait: true,
    })
    .await
    .unwrap();
    (store, url)
}

/// Every statement of the data path looks the login id up through its unique index.
async fn assert_lookups_use_the_index(store: &MySqlStore, url: &str) {
    let pool = sqlx::MySqlPool::connect(url).await.unwrap();
    let sql = store.statements();
    for (statement, leading) in [(&sql.get, 0), (&sql.session, 0), (&sql.update, 1)] {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")));
        if leading == 1 {
            query = query.bind("data");
        }
        let rows = query
            .bind("alice@example.com")
            .bind("alice@example.com")
            .fetch_all(&pool)
            .await
            .unwrap();
        use sqlx::Row as _;
        let keys: Vec<Option<String>> = rows.iter().map(|row| row.get("key")).collect();
        assert_eq!(keys, [Some("login_id".to_owned())], "{statement}");
    }
    pool.close().await;
}

#[tokio::test]
async fn look_alike_login_ids_under_utf8mb4_general_ci_are_other_users() {
    let (store, url) = look_alike_store("utf8mb4_general_ci").await;
    conformance::look_alikes_are_other_users(&store, "7").await;
    assert_lookups_use_the_index(&store, &url).await;
}

#[tokio::test]
async fn look_alike_login_ids_under_utf8mb4_unicode_ci_are_other_users() {
    let (store, url) = look_alike_store("utf8mb4_unicode_ci").await;
    conformance::look_alikes_are_other_users(&store, "7").await;
    assert_lookups_use_the_index(&store, &url).await;
}

/// Retryable conditions are 503, never 500: a trigger SIGNALs each error number (with the
/// SQLSTATE the server gives it) on update.
#[tokio::test]
async fn retryable_errors_are_unavailable() {
    let url = fresh_database(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::MySqlPool::connect(&url).await.unwrap();
    let store = MySqlStore::connect(MySqlOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        galera_sync_wait: true,
    })
    .await
    .unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    store.create_user("a@example.com").await.unwrap();
    // What passes is Unavailable; a conflict with another statement is Contention, which the
    // server retries before answering 503. A lock wait or a statement that ran out of the
    // statement timeout (1205, 1969, 3024) is Unavailable: retrying would multiply the timeout.
    for (number, sqlstate, retryable) in [
        (1213, "40001", Some(true)),
        (1205, "HY000", Some(false)),
        (1969, "70100", Some(false)),
        (3024, "HY000", Some(false)),
        (1040, "08004", Some(false)),
        (2006, "HY000", Some(false)),
        (2013, "HY000", Some(false)),
        (1644, "40001", Some(true)),
        (1644, "45000", None),
    ] {
        for statement in [
            "DROP TRIGGER IF EXISTS fail".to_owned(),
            format!(
                "CREATE TRIGGER fail BEFORE UPDATE ON users FOR EACH ROW \
                 SIGNAL SQLSTATE '{sqlstate}' SET MYSQL_ERRNO = {number}, \
                 MESSAGE_TEXT = 'raised by the test'"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&setup)
                .await
                .unwrap();
        }
        let err = store
            .set_ownid_data("a@example.com", "v", false)
            .await
            .unwrap_err();
        match retryable {
            Some(true) => assert!(
                matches!(err, StoreError::Contention(_)),
                "{number}/{sqlstate}: {err:?}"
            ),
            Some(false) => assert!(
                matches!(err, StoreError::Unavailable(_)),
                "{number}/{sqlstate}: {err:?}"
            ),
            None => assert!(
                matches!(err, StoreError::Other(_)),
                "{number}/{sqlstate}: {err:?}"
            ),
        }
    }
}
