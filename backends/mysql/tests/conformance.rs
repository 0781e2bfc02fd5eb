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

// ---- Issue 19: the columns and tables companies really have ----

/// A fresh database with `setup` run in it, and its URL.
async fn database_with(setup: &[&str]) -> String {
    let url = fresh_database(&required_url(URL_VARIABLE)).await;
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in setup {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&pool)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    pool.close().await;
    url
}

async fn store_at(url: &str, mapping: UsersMapping) -> MySqlStore {
    MySqlStore::connect(MySqlOptions {
        url: url.to_owned(),
        mapping,
        pool: PoolSettings::default(),
        galera_sync_wait: true,
    })
    .await
    .unwrap()
}

/// One value of `sql` (cast to text) on the database at `url`.
async fn scalar(url: &str, sql: &str) -> Option<String> {
    let pool = sqlx::MySqlPool::connect(url).await.unwrap();
    let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    pool.close().await;
    value
}

/// `SHOW CREATE TABLE`, to see that nothing changed.
async fn table_definition(url: &str, table: &str) -> String {
    let pool = sqlx::MySqlPool::connect(url).await.unwrap();
    use sqlx::Row as _;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW CREATE TABLE {table}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.get::<String, _>(1)
}

fn values_to_keep() -> Vec<String> {
    vec![
        "ownid==abc".into(),
        "ünïcödé 日本語 😀🔐 \u{10FFFF} \"quotes\" 'single' \\ back \\\" \\u0041".into(),
        "\"{\\\"a\\\":1}\"".into(),
        "{\"looks\": \"like json\"}".into(),
        "null".into(),
        "  leading and trailing spaces  \n\t\r".into(),
        (0..6000)
            .map(|i| char::from(b'A' + (i % 26) as u8))
            .collect(),
        "😀".repeat(5001),
    ]
}

/// Issue 19: MariaDB's JSON (LONGTEXT CHECK json_valid) holds OwnID's string as a JSON string,
/// read back byte for byte, exported, with the lookups on the login-id index.
#[tokio::test]
async fn a_mariadb_json_ownid_data_column_holds_a_json_string_byte_for_byte() {
    let url = database_with(&[
        "CREATE TABLE users (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         login_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE, \
         ownid_data JSON, role VARCHAR(20)) CHARSET utf8mb4",
        "INSERT INTO users (id, login_id, role) VALUES (7, 'alice@example.com', 'admin')",
    ])
    .await;
    let store = store_at(&url, conformance::look_alike_mapping()).await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.is_ok(), "{report}");
    let line = report.check("ownid_data column").unwrap();
    assert!(
        line.detail.contains("JSON") && line.detail.contains("stored as a JSON string"),
        "{report}"
    );
    let mut expected = std::collections::BTreeSet::new();
    for (i, value) in values_to_keep().into_iter().enumerate() {
        let login = format!("json{i}@example.com");
        assert_eq!(
            store.set_ownid_data(&login, &value, true).await.unwrap(),
            ownid_bridge_store::SetOutcome::Created
        );
        assert_eq!(
            store.get_ownid_data(&login).await.unwrap().as_deref(),
            Some(value.as_str()),
            "value {i} changed"
        );
        // Stored as a JSON string (other code reading the column sees a string).
        assert_eq!(
            scalar(
                &url,
                &format!("SELECT JSON_TYPE(ownid_data) FROM users WHERE login_id = '{login}'")
            )
            .await
            .as_deref(),
            Some("STRING")
        );
        // Overwritten in place.
        store.set_ownid_data(&login, &value, false).await.unwrap();
        expected.insert((login, value));
    }
    store
        .set_ownid_data("alice@example.com", "alice-data", false)
        .await
        .unwrap();
    expected.insert(("alice@example.com".into(), "alice-data".into()));
    let mut exported = std::collections::BTreeSet::new();
    let total = store
        .export_ownid_data(3, &mut |rows| {
            exported.extend(rows);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(total as usize, expected.len());
    assert_eq!(exported, expected);
    let user = store.get_session_user("alice@example.com").await.unwrap();
    assert_eq!(user.subject, "7");
    assert_lookups_use_the_index(&store, &url).await;
}

/// Issue 19: what get answers for a JSON ownIdData value that is not a JSON string (other code
/// wrote it): its JSON text, never an error; JSON null and an empty string are no data.
#[tokio::test]
async fn a_json_ownid_data_value_written_by_other_code_is_answered_as_its_json_text() {
    let url = database_with(&[
        "CREATE TABLE users (login_id VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, \
         ownid_data JSON) CHARSET utf8mb4",
        r#"INSERT INTO users VALUES ('object@x.com', '{"a": [1, "😀"]}'), ('number@x.com', '42'),
           ('array@x.com', '[1,2]'), ('true@x.com', 'true'), ('null@x.com', 'null'),
           ('sql-null@x.com', NULL), ('empty@x.com', '""'), ('string@x.com', '"s\\"q"')"#,
    ])
    .await;
    let store = store_at(&url, UsersMapping::demo()).await;
    for (login, answer) in [
        ("object@x.com", Some(r#"{"a": [1, "😀"]}"#)),
        ("number@x.com", Some("42")),
        ("array@x.com", Some("[1,2]")),
        ("true@x.com", Some("true")),
        ("null@x.com", None),
        ("sql-null@x.com", None),
        ("empty@x.com", None),
        ("string@x.com", Some("s\"q")),
    ] {
        assert_eq!(
            store.get_ownid_data(login).await.unwrap().as_deref(),
            answer,
            "{login}"
        );
    }
    // The export leaves out what has no data, and hands over the rest as get answers it.
    let mut exported = Vec::new();
    store
        .export_ownid_data(10, &mut |rows| {
            exported.extend(rows);
            Ok(())
        })
        .await
        .unwrap();
    exported.sort();
    let logins: Vec<&str> = exported.iter().map(|(login, _)| login.as_str()).collect();
    assert_eq!(
        logins,
        [
            "array@x.com",
            "number@x.com",
            "object@x.com",
            "string@x.com",
            "true@x.com"
        ]
    );
    // OwnID's next write replaces the object with its string.
    store
        .set_ownid_data("object@x.com", "fresh", false)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_ownid_data("object@x.com")
            .await
            .unwrap()
            .as_deref(),
        Some("fresh")
    );
}

/// Issue 19 point 4: `table: otherdb.members` is a table of another database, in the catalogue
/// queries (check, schema) and every statement.
#[tokio::test]
async fn a_table_in_another_database_serves_and_is_checked_there() {
    let url = database_with(&[]).await;
    let other = format!("o_{}", uuid::Uuid::new_v4().simple());
    let setup = sqlx::MySqlPool::connect(&url).await.unwrap();
    for statement in [
        format!("CREATE DATABASE {other}"),
        // A same-named table in the connection's database, which must not be looked at.
        "CREATE TABLE members (login_id INT)".into(),
        format!(
            "CREATE TABLE {other}.members (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             email VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             plan VARCHAR(20)) CHARSET utf8mb4"
        ),
        format!("INSERT INTO {other}.members (id, email, plan) VALUES (3, 'm@example.com', 'pro')"),
        format!("CREATE TABLE {other}.invoices (id INT)"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&setup)
            .await
            .unwrap();
    }
    setup.close().await;
    let mapping = |table: &str| UsersMapping {
        table: ownid_bridge_store::TableName::new(&format!("{other}.{table}")).unwrap(),
        login_id: Identifier::new("email").unwrap(),
        ownid_data: Identifier::new("ownid_data").unwrap(),
        user_id: Some(Identifier::new("id").unwrap()),
        claims: vec![("plan".into(), Identifier::new("plan").unwrap())],
    };
    // A misspelt table: the tables of that database, the closest first.
    let missing = store_at(&url, mapping("member")).await;
    let report = missing.inspect().await.unwrap().settle(false);
    let table = report.check("table").unwrap();
    assert!(!table.ok(), "{report}");
    assert!(
        table.detail.contains("did you mean `members`?") && table.detail.contains("invoices"),
        "{report}"
    );
    let refused = missing
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Schema(m) if m.contains("did you mean `members`?")),
        "{refused:?}"
    );

    let store = store_at(&url, mapping("members")).await;
    let report = store.inspect().await.unwrap().settle(false);
    assert!(!report.check("ownid_data column").unwrap().ok(), "{report}");
    assert_eq!(
        report.check("login_id column").unwrap().detail,
        "email present (varchar(320))",
        "{report}"
    );
    let dry = store
        .apply_schema(&ownid_bridge_store::SchemaOptions {
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        dry.statements,
        [format!(
            "ALTER TABLE `{other}`.`members` ADD COLUMN `ownid_data` MEDIUMTEXT CHARACTER SET \
             utf8mb4 COLLATE utf8mb4_bin, ADD UNIQUE INDEX `members_email_key` (`email`)"
        )]
    );
    let before = table_definition(&url, &format!("{other}.members")).await;
    assert!(!before.contains("ownid_data"), "{before}");
    let applied = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert_eq!(applied.statements, dry.statements);
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.is_ok(), "{report}");
    assert!(table_definition(&url, "members")
        .await
        .contains("`login_id` int"));
    store
        .set_ownid_data("m@example.com", "data 😀", false)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_ownid_data("m@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("data 😀")
    );
    store
        .set_ownid_data("n@example.com", "new", true)
        .await
        .unwrap();
    let user = store.get_session_user("m@example.com").await.unwrap();
    assert_eq!(user.subject, "3");
    assert_eq!(user.claims["plan"], "pro");
    assert_eq!(
        scalar(
            &url,
            &format!("SELECT CAST(COUNT(*) AS CHAR) FROM {other}.members")
        )
        .await
        .as_deref(),
        Some("2")
    );
}

/// Issue 19 point 3: login ids held twice, or as look-alikes under utf8mb4_general_ci, stop
/// `schema` before it changes anything, and the error names them.
#[tokio::test]
async fn duplicate_and_look_alike_login_ids_stop_schema_before_any_change() {
    let url = database_with(&[
        "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, \
         login_id VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL) \
         CHARSET utf8mb4",
        "INSERT INTO users (login_id) VALUES ('dup@example.com'), ('dup@example.com'), \
         ('Bob@Example.com'), ('bob@example.com'), ('bob@example.com'), ('José@example.com'), \
         ('jose@example.com'), ('single@example.com')",
    ])
    .await;
    let store = store_at(&url, UsersMapping::demo()).await;
    let before = table_definition(&url, "users").await;
    // `--dry-run` checks the precondition too.
    for dry_run in [true, false] {
        let err = store
            .apply_schema(&ownid_bridge_store::SchemaOptions {
                dry_run,
                ..Default::default()
            })
            .await
            .unwrap_err();
        let StoreError::Schema(message) = &err else {
            panic!("{err:?}")
        };
        for named in [
            "3 login id(s)",
            "dup@example.com (2 rows)",
            "Bob@Example.com, bob@example.com (3 rows)",
            "José@example.com, jose@example.com (2 rows)",
            "Nothing was changed",
        ] {
            assert!(message.contains(named), "{named}: {message}");
        }
        assert!(!message.contains("single@"), "{message}");
    }
    assert_eq!(table_definition(&url, "users").await, before);
}

/// Issue 19 point 3: MySQL cannot put a unique index on a TEXT column without a prefix length;
/// `schema` says so, and how to change the column, before it changes anything.
#[tokio::test]
async fn a_text_login_column_without_a_unique_index_stops_schema_before_any_change() {
    let url = database_with(&[
        "CREATE TABLE users (login_id TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL) \
         CHARSET utf8mb4",
        "INSERT INTO users VALUES ('a@example.com')",
    ])
    .await;
    let store = store_at(&url, UsersMapping::demo()).await;
    let report = store.inspect().await.unwrap().settle(false);
    let unique = report.check("login_id unique index").unwrap();
    assert!(unique.ok() && unique.detail.contains("prefix"), "{report}");
    let fix = unique.fix.clone().unwrap();
    assert_eq!(
        fix,
        "ALTER TABLE `users` MODIFY `login_id` VARCHAR(320) CHARACTER SET utf8mb4 COLLATE \
         utf8mb4_bin NULL"
    );
    let before = table_definition(&url, "users").await;
    for dry_run in [true, false] {
        let err = store
            .apply_schema(&ownid_bridge_store::SchemaOptions {
                dry_run,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Schema(m) if m.contains("Nothing was changed")
                && m.contains(&fix)),
            "{err:?}"
        );
    }
    assert_eq!(table_definition(&url, "users").await, before);
    // The advice is MariaDB SQL; after it, `schema` completes.
    database_sql(&url, &fix).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert!(store.inspect().await.unwrap().settle(true).is_ok());
    store
        .set_ownid_data("a@example.com", "v", false)
        .await
        .unwrap();
}

async fn database_sql(url: &str, sql: &str) {
    let pool = sqlx::MySqlPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    pool.close().await;
}

/// Issue 19 point 1: an ownIdData column OwnID's string cannot be written into fails `check`
/// (so `serve` refuses to start), naming the column, its type and the fix; so does a login-id
/// column that is not text.
#[tokio::test]
async fn columns_that_cannot_hold_the_values_fail_the_check() {
    let url = database_with(&[
        "CREATE TABLE users (login_id VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, \
         num_login BIGINT UNIQUE, bin_login VARBINARY(320) UNIQUE, \
         virt VARCHAR(6000) AS (CONCAT(login_id, 'x')) VIRTUAL, \
         stored VARCHAR(6000) AS (CONCAT(login_id, 'y')) STORED, \
         choice ENUM('a', 'b'), num INT, bytes VARBINARY(8000), blobby BLOB, \
         stamp DATETIME, narrow VARCHAR(100), latin TEXT CHARACTER SET latin1, \
         bmp MEDIUMTEXT CHARACTER SET utf8mb3, ok MEDIUMTEXT) CHARSET utf8mb4",
    ])
    .await;
    let mapping = |login: &str, data: &str| UsersMapping {
        login_id: Identifier::new(login).unwrap(),
        ownid_data: Identifier::new(data).unwrap(),
        ..UsersMapping::demo()
    };
    for (data, line, says) in [
        (
            "virt",
            "ownid_data column",
            "generated column (varchar(6000))",
        ),
        (
            "stored",
            "ownid_data column",
            "generated column (varchar(6000))",
        ),
        (
            "choice",
            "ownid_data column",
            "is enum('a','b'), which cannot hold",
        ),
        ("num", "ownid_data column", "is int(11), which cannot hold"),
        (
            "bytes",
            "ownid_data column",
            "is varbinary(8000), which cannot hold",
        ),
        ("blobby", "ownid_data column", "is blob, which cannot hold"),
        (
            "stamp",
            "ownid_data column",
            "is datetime, which cannot hold",
        ),
        (
            "narrow",
            "ownid_data width",
            "declared varchar(100): 100 characters",
        ),
        ("latin", "ownid_data charset", "latin1"),
        ("bmp", "ownid_data charset", "utf8mb3"),
    ] {
        let store = store_at(&url, mapping("login_id", data)).await;
        for creating in [false, true] {
            let report = store.inspect().await.unwrap().settle(creating);
            let check = report.check(line).unwrap();
            assert!(
                !check.ok() && check.detail.contains(says),
                "{data}: {report}"
            );
            assert!(check.detail.contains(data) || line != "ownid_data column");
            assert!(check.fix.is_some(), "{data}: {report}");
        }
    }
    let store = store_at(&url, mapping("login_id", "ok")).await;
    assert!(store.inspect().await.unwrap().settle(true).is_ok());
    for (login, says) in [("num_login", "bigint(20)"), ("bin_login", "varbinary(320)")] {
        let store = store_at(&url, mapping(login, "ok")).await;
        let report = store.inspect().await.unwrap().settle(false);
        let check = report.check("login_id column").unwrap();
        assert!(
            !check.ok() && check.detail.contains(login) && check.detail.contains(says),
            "{report}"
        );
        assert!(
            check.fix.as_deref().unwrap().contains("VARCHAR"),
            "{report}"
        );
    }
}

/// Red team R6 and issue 19: a login-id column in utf8mb3 or latin1 cannot hold some login ids;
/// asking for one is 404 (it is in no row), never the server's 500 (MariaDB's "Illegal mix of
/// collations"); `check` warns, and fails with create_missing_users.
#[tokio::test]
async fn a_login_id_the_column_cannot_hold_is_not_found() {
    for (charset, foreign, native) in [
        ("utf8mb3", "a😀@example.com", "ünï日本@example.com"),
        ("latin1", "aΩ@example.com", "ünï€@example.com"),
    ] {
        let url = database_with(&[&format!(
            "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, \
             login_id VARCHAR(320) CHARACTER SET {charset} COLLATE {charset}_bin NOT NULL UNIQUE, \
             ownid_data MEDIUMTEXT) CHARSET utf8mb4"
        )])
        .await;
        let mut mapping = UsersMapping::demo();
        mapping.user_id = Some(Identifier::new("id").unwrap());
        let store = store_at(&url, mapping).await;
        let report = store.inspect().await.unwrap();
        let line = report.clone().settle(false);
        let line = line.check("login_id charset").unwrap();
        assert_eq!(line.level, ownid_bridge_store::Level::Warn, "{report:?}");
        assert!(line.detail.contains("404"), "{}", line.detail);
        assert!(!report.settle(true).check("login_id charset").unwrap().ok());
        assert!(
            matches!(
                store.get_ownid_data(foreign).await,
                Err(StoreError::NotFound)
            ),
            "{charset}"
        );
        for create in [false, true] {
            let set = store.set_ownid_data(foreign, "v", create).await;
            assert!(
                matches!(set, Err(StoreError::NotFound)),
                "{charset}: {set:?}"
            );
        }
        let session = store.get_session_user(foreign).await;
        assert!(
            matches!(session, Err(StoreError::NotFound)),
            "{charset}: {session:?}"
        );
        assert!(
            matches!(store.create_user(foreign).await, Err(StoreError::Schema(_))),
            "{charset}"
        );
        // What the column holds still works.
        store.set_ownid_data(native, "kept 😀", true).await.unwrap();
        assert_eq!(
            store.get_ownid_data(native).await.unwrap().as_deref(),
            Some("kept 😀")
        );
        assert_eq!(store.get_session_user(native).await.unwrap().subject, "1");
    }
}

/// Issue 19 point 2: the fixes `check` prints for MySQL are statements MariaDB runs, and after
/// them the lines pass.
#[tokio::test]
async fn the_advice_check_prints_is_sql_mariadb_runs() {
    let url = database_with(&[
        "CREATE TABLE users (login_id VARCHAR(200) CHARACTER SET utf8mb3 \
         COLLATE utf8mb3_general_ci NULL UNIQUE, ownid_data VARCHAR(100) CHARACTER SET latin1) \
         CHARSET utf8mb4",
        "INSERT INTO users VALUES ('a@example.com', 'v')",
    ])
    .await;
    let store = store_at(&url, UsersMapping::demo()).await;
    let report = store.inspect().await.unwrap().settle(true);
    let mut fixes = std::collections::BTreeSet::new();
    for line in report.problems() {
        let fix = line.fix.as_deref().unwrap();
        // The statement, without the words around it.
        let start = fix.find("ALTER TABLE").unwrap_or_else(|| panic!("{fix}"));
        let statement = fix[start..]
            .split(" (keep")
            .next()
            .unwrap()
            .split(", or leave")
            .next()
            .unwrap();
        fixes.insert(statement.to_owned());
    }
    assert_eq!(fixes.len(), 2, "{report}");
    for statement in &fixes {
        database_sql(&url, statement).await;
    }
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        store
            .get_ownid_data("a@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
}

/// Issue 19: session columns of other kinds: a MariaDB JSON claim is its JSON value, an enum, a
/// date and a decimal are read as their text, a UUID user id as its text.
#[tokio::test]
async fn json_enum_date_and_uuid_session_columns_are_read_as_their_values() {
    let url = database_with(&[
        "CREATE TABLE users (login_id VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, \
         ownid_data MEDIUMTEXT, account UUID, profile JSON, tier ENUM('gold', 'silver'), \
         joined DATE, balance DECIMAL(10, 2)) CHARSET utf8mb4",
        r#"INSERT INTO users (login_id, account, profile, tier, joined, balance) VALUES
           ('a@example.com', 'a81bc81b-dead-4e5d-abff-90865d1e13b1', '{"x": [1, "😀"]}',
            'gold', '2026-01-02', 12.50)"#,
    ])
    .await;
    let mapping = UsersMapping {
        user_id: Some(Identifier::new("account").unwrap()),
        claims: ["profile", "tier", "joined", "balance"]
            .into_iter()
            .map(|name| (name.to_owned(), Identifier::new(name).unwrap()))
            .collect(),
        ..UsersMapping::demo()
    };
    let store = store_at(&url, mapping).await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.is_ok(), "{report}");
    let user = store.get_session_user("a@example.com").await.unwrap();
    assert_eq!(user.subject, "a81bc81b-dead-4e5d-abff-90865d1e13b1");
    assert_eq!(user.claims["profile"], serde_json::json!({"x": [1, "😀"]}));
    assert_eq!(user.claims["tier"], "gold");
    assert_eq!(user.claims["joined"], "2026-01-02");
    assert_eq!(user.claims["balance"], serde_json::json!(12.5));
}

/// A check constraint on ownIdData other than MariaDB JSON's own: `check` warns that it cannot
/// tell whether OwnID's values pass it; MariaDB JSON's `json_valid` and a constraint on another
/// column say nothing.
#[tokio::test]
async fn a_check_constraint_on_ownid_data_is_a_warning() {
    let url = database_with(&[
        "CREATE TABLE users (login_id VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, \
         ownid_data MEDIUMTEXT CHECK (ownid_data LIKE 'ownid:%'), doc JSON, \
         age INT CHECK (age > 0)) CHARSET utf8mb4",
    ])
    .await;
    let store = store_at(&url, UsersMapping::demo()).await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.is_ok(), "{report}");
    let warnings: Vec<_> = report
        .warnings()
        .filter(|line| line.name == "ownid_data constraint")
        .collect();
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(
        warnings[0]
            .detail
            .contains("CHECK (`ownid_data` like 'ownid:%')"),
        "{report}"
    );
    let mut mapping = UsersMapping::demo();
    mapping.ownid_data = Identifier::new("doc").unwrap();
    let json = store_at(&url, mapping).await;
    let report = json.inspect().await.unwrap().settle(true);
    assert!(report.check("ownid_data constraint").is_none(), "{report}");
}
