//! The matrix of existing MySQL/MariaDB tables (issue 19): for each shape, what `check` says and
//! exits, what `schema --dry-run` prints, what `schema` does, and the contract where it serves
//! (or that `serve` refuses).

use crate::common::existing::{Existing, Shape};

const TABLE: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customers");
const LOGIN: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "email");
const DATA: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "ownid");
const CREATING: (&str, &str) = ("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true");

/// OwnID's data as the tests write it: quotes, a backslash, a JSON-looking text, non-ASCII and a
/// 4-byte character, so that any re-encoding shows.
const TRICKY: &str = "{\"v\":1} \\ \"quoted\" é ✓ 😀 eyJhbGciOiJIUzI1NiJ9.x";

/// The ownIdData column `schema` adds on MySQL/MariaDB.
const ADDED: &str = "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";

async fn customers(columns: &str, env: &[(&str, &str)]) -> Existing {
    let create = format!("CREATE TABLE customers ({columns}) CHARSET utf8mb4");
    Existing::new(Shape {
        backend: "mysql",
        setup: &[
            &create,
            "INSERT INTO customers (email) VALUES ('alice@example.com')",
        ],
        env,
    })
    .await
}

/// One value of `sql`, as text.
async fn scalar(table: &Existing, sql: &str) -> Option<String> {
    let pool = sqlx::MySqlPool::connect(&table.db.url).await.unwrap();
    let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    pool.close().await;
    value
}

async fn count(table: &Existing, sql: &str) -> i64 {
    let pool = sqlx::MySqlPool::connect(&table.db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    pool.close().await;
    n
}

/// `SHOW CREATE TABLE`, to see that nothing changed.
async fn definition(table: &Existing, name: &str) -> String {
    use sqlx::Row as _;
    let pool = sqlx::MySqlPool::connect(&table.db.url).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW CREATE TABLE {name}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.get::<String, _>(1)
}

/// The statements of `schema --dry-run`'s output (without its comments).
fn statements(out: &str) -> Vec<&str> {
    out.lines().filter(|line| !line.starts_with("--")).collect()
}

#[tokio::test]
async fn text_and_wide_varchar_columns_serve_and_need_no_change() {
    for ownid in ["TEXT", "MEDIUMTEXT", "VARCHAR(5000)"] {
        let table = customers(
            &format!(
                "id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, ownid {ownid}"
            ),
            &[TABLE, LOGIN, DATA],
        )
        .await;
        let check = table.check().await;
        assert_eq!(check.code, 0, "{ownid}: {check}");
        assert!(
            !check.text.contains("warn") && !check.text.contains("FAIL"),
            "{ownid}: {check}"
        );
        assert_eq!(check.level("login_id charset"), "ok", "{check}");
        let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("-- nothing to change"), "{out}");
        let (code, out, err) = table.cli(&["schema"]).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("nothing to change"), "{out}");
        let app = table.serve().await.expect("serves");
        let session = table.contract(&app, "alice@example.com", TRICKY).await;
        assert!(session["token"].is_string(), "{session}");
    }
}

#[tokio::test]
async fn a_narrow_varchar_is_refused_before_serving() {
    let table = customers(
        "email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, ownid VARCHAR(255) NOT NULL DEFAULT ''",
        &[TABLE, LOGIN, DATA],
    )
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("ownid_data width"), "fail", "{check}");
    let detail = check.detail("ownid_data width");
    assert!(
        detail.contains("varchar(255): 255 characters")
            && detail.contains(&format!("ALTER TABLE `customers` MODIFY `ownid` {ADDED}")),
        "{check}"
    );
    // `schema` does not change an existing column: nothing to run, and the line still fails.
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("-- nothing to change"), "{out}");
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL ownid_data width"), "{out}");
    let refused = table.serve().await.err().expect("serve refuses");
    assert!(refused.contains("ownid_data width"), "{refused}");
    let (code, _, err) = table.cli(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ownid_data width"), "{err}");
}

#[tokio::test]
async fn a_mariadb_json_column_holds_owinds_string_as_a_json_string() {
    let table = customers(
        "email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, ownid JSON",
        &[TABLE, LOGIN, DATA],
    )
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    let detail = check.detail("ownid_data column");
    assert!(
        detail.contains("JSON (longtext, CHECK json_valid)") && detail.contains("JSON string"),
        "{check}"
    );
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("-- nothing to change"), "{out}");
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
    // Stored as a JSON string holding exactly OwnID's text.
    assert_eq!(
        scalar(
            &table,
            "SELECT JSON_TYPE(ownid) FROM customers WHERE email = 'alice@example.com'"
        )
        .await
        .as_deref(),
        Some("STRING")
    );
    assert_eq!(
        scalar(
            &table,
            "SELECT JSON_UNQUOTE(ownid) FROM customers WHERE email = 'alice@example.com'"
        )
        .await
        .as_deref(),
        Some(TRICKY)
    );
    // A value some other code wrote: an object is answered as its JSON text (never a 500); a
    // JSON null is no data.
    table
        .execute(&[
            "INSERT INTO customers VALUES ('bob@example.com', '{\"legacy\": true}')",
            "INSERT INTO customers VALUES ('carol@example.com', 'null')",
        ])
        .await;
    let bob = app.get_data("bob@example.com").await;
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert_eq!(bob.json()["ownIdData"], "{\"legacy\": true}");
    app.get_data("carol@example.com").await.assert_empty(204);
    let (code, out, err) = table.cli(&["export"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("alice@example.com") && out.contains("bob@") && !out.contains("carol"),
        "{out}"
    );
}

#[tokio::test]
async fn a_general_ci_login_column_warns_without_creation_and_fails_with_it() {
    let setup = [
        "CREATE TABLE customers (email VARCHAR(320) CHARACTER SET utf8mb4 \
         COLLATE utf8mb4_general_ci NOT NULL UNIQUE, ownid MEDIUMTEXT) CHARSET utf8mb4",
        "INSERT INTO customers (email) VALUES ('Alice@Example.com')",
    ];
    let table = Existing::new(Shape {
        backend: "mysql",
        setup: &setup,
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("login_id collation"), "warn", "{check}");
    let detail = check.detail("login_id collation");
    assert!(
        detail.contains("create_missing_users is off")
            && detail.contains(
                "ALTER TABLE `customers` MODIFY `email` VARCHAR(320) CHARACTER SET utf8mb4 \
                 COLLATE utf8mb4_bin NOT NULL"
            ),
        "{check}"
    );
    let app = table.serve().await.expect("serves");
    // Byte for byte: the look-alike is another user.
    let look_alike = app.get_data("alice@example.com").await;
    assert_eq!(look_alike.status, 404, "{}", look_alike.body);
    table.contract(&app, "Alice@Example.com", TRICKY).await;

    let creating = Existing::new(Shape {
        backend: "mysql",
        setup: &setup,
        env: &[TABLE, LOGIN, DATA, CREATING],
    })
    .await;
    let check = creating.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("login_id collation"), "fail", "{check}");
    let refused = creating.serve().await.err().expect("serve refuses");
    assert!(refused.contains("login_id collation"), "{refused}");
}

#[tokio::test]
async fn a_table_in_another_database_is_found_and_quoted_part_by_part() {
    let other = format!("otherdb_{}", uuid::Uuid::new_v4().simple());
    let setup = [
        format!("CREATE DATABASE {other}"),
        format!(
            "CREATE TABLE {other}.members (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL) CHARSET utf8mb4"
        ),
        format!("INSERT INTO {other}.members (email) VALUES ('alice@example.com')"),
        // A table of the same name in the connection's database is not the one.
        "CREATE TABLE members (other INT)".to_owned(),
    ];
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    let name = format!("{other}.members");
    let table = Existing::new(Shape {
        backend: "mysql",
        setup: &setup,
        env: &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", &name),
            LOGIN,
            DATA,
            ("OWNID_BRIDGE__STORAGE__USERS__USER_ID", "id"),
        ],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("ownid_data column"), "fail", "{check}");
    assert_eq!(check.level("login_id unique index"), "warn", "{check}");
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let expected = format!(
        "ALTER TABLE `{other}`.`members` ADD COLUMN `ownid` {ADDED}, \
         ADD UNIQUE INDEX `members_email_key` (`email`);"
    );
    assert_eq!(statements(&out), [expected.as_str()], "{out}");
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("applied: {}", expected.trim_end_matches(';'))),
        "{out}"
    );
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    let app = table.serve().await.expect("serves");
    let session = table.contract(&app, "alice@example.com", TRICKY).await;
    assert!(session["token"].is_string());
    assert_eq!(
        count(
            &table,
            &format!("SELECT COUNT(*) FROM {other}.members WHERE ownid IS NOT NULL")
        )
        .await,
        1
    );
    assert!(definition(&table, "members").await.contains("`other`"));
}

#[tokio::test]
async fn a_misspelt_table_or_column_is_named_with_the_closest_match_and_never_created() {
    let table = customers(
        "email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, ownid_data MEDIUMTEXT",
        &[("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customer"), LOGIN],
    )
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert!(
        check.detail("table").contains("did you mean `customers`?"),
        "{check}"
    );
    for args in [&["schema", "--dry-run"][..], &["schema"]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("did you mean `customers`?") && err.contains("--create-table"),
            "{err}"
        );
    }
    let tables = "SELECT COUNT(*) FROM information_schema.TABLES \
                  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'customer'";
    assert_eq!(count(&table, tables).await, 0, "schema created the table");
    let refused = table.serve().await.err().expect("serve refuses");
    assert!(refused.contains("did you mean `customers`?"), "{refused}");

    // A misspelt ownIdData column is not added beside the real one.
    let column = customers(
        "email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, ownid_data MEDIUMTEXT",
        &[
            TABLE,
            LOGIN,
            ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "ownid_dta"),
        ],
    )
    .await;
    let check = column.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert!(
        check
            .detail("ownid_data column")
            .contains("did you mean `ownid_data`?"),
        "{check}"
    );
    let before = definition(&column, "customers").await;
    let (code, _, err) = column.cli(&["schema"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("but ownid_data does"), "{err}");
    assert_eq!(definition(&column, "customers").await, before);
    // `--create-table` creates a table that is really missing, with its index.
    let (code, out, err) = table.cli(&["schema", "--create-table"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count(&table, tables).await, 1);
}

#[tokio::test]
async fn duplicates_and_look_alikes_stop_schema_before_it_changes_anything() {
    let table = Existing::new(Shape {
        backend: "mysql",
        setup: &[
            "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, \
             email VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL) \
             CHARSET utf8mb4",
            "INSERT INTO customers (email) VALUES ('a@example.com'), ('a@example.com'), \
             ('Bob@example.com'), ('bob@example.com'), ('carol@example.com'), (NULL), (NULL)",
        ],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    let before = definition(&table, "customers").await;
    for args in [&["schema", "--dry-run"][..], &["schema"]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("2 login id(s)"), "{err}");
        assert!(err.contains("a@example.com (2 rows)"), "{err}");
        assert!(
            err.contains("Bob@example.com, bob@example.com (2 rows)"),
            "{err}"
        );
        assert!(err.contains("Nothing was changed"), "{err}");
        assert!(!err.contains("carol"), "{err}");
    }
    // Nothing applied: the ownIdData column was not added either.
    assert_eq!(definition(&table, "customers").await, before);
    // Merged, `schema` applies both in one ALTER TABLE; NULL login ids do not stop the index.
    table
        .execute(&["DELETE FROM customers WHERE id IN (2, 4)"])
        .await;
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "applied: ALTER TABLE `customers` ADD COLUMN `ownid` {ADDED}, \
             ADD UNIQUE INDEX `customers_email_key` (`email`)"
        )),
        "{out}"
    );
    let app = table.serve().await.expect("serves");
    table.contract(&app, "carol@example.com", TRICKY).await;
}

#[tokio::test]
async fn a_text_login_column_without_an_index_stops_schema_with_the_statement_to_run() {
    let table = customers("email TEXT NOT NULL", &[TABLE, LOGIN, DATA]).await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}"); // ownid is missing
    assert_eq!(check.level("login_id unique index"), "warn", "{check}");
    let fix = "ALTER TABLE `customers` MODIFY `email` VARCHAR(320) CHARACTER SET utf8mb4 \
               COLLATE utf8mb4_bin NOT NULL";
    assert!(
        check.detail("login_id unique index").contains("prefix")
            && check.detail("login_id unique index").contains(fix),
        "{check}"
    );
    let before = definition(&table, "customers").await;
    for args in [&["schema", "--dry-run"][..], &["schema"]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("Nothing was changed") && err.contains(fix),
            "{err}"
        );
    }
    assert_eq!(definition(&table, "customers").await, before);
    table.execute(&[fix]).await;
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
}

#[tokio::test]
async fn mixed_case_keyword_names_and_a_nullable_login_column_serve() {
    let table = Existing::new(Shape {
        backend: "mysql",
        setup: &[
            "CREATE TABLE `Order` (`key` VARCHAR(320) COLLATE utf8mb4_bin NULL, \
             `OwnIdData` MEDIUMTEXT) CHARSET utf8mb4",
            "INSERT INTO `Order` (`key`) VALUES ('alice@example.com'), (NULL), (NULL)",
        ],
        env: &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "Order"),
            ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "key"),
            ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "OwnIdData"),
        ],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("login_id unique index"), "warn", "{check}");
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        statements(&out),
        ["CREATE UNIQUE INDEX `Order_key_key` ON `Order` (`key`);"],
        "{out}"
    );
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let check = table.check().await;
    assert_eq!(check.level("login_id unique index"), "ok", "{check}");
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
}

#[tokio::test]
async fn unwritable_column_types_fail_check_naming_column_type_and_fix() {
    for (column, expect) in [
        ("ownid INT", "int(11)"),
        ("ownid VARBINARY(8000)", "varbinary(8000)"),
        ("ownid ENUM('a', 'b')", "enum('a','b')"),
        ("ownid DATETIME", "datetime"),
        (
            "ownid VARCHAR(6000) AS (CONCAT(email, '!')) VIRTUAL",
            "generated column",
        ),
        (
            "ownid VARCHAR(6000) AS (CONCAT(email, '!')) STORED",
            "generated column",
        ),
    ] {
        let table = customers(
            &format!("email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, {column}"),
            &[TABLE, LOGIN, DATA],
        )
        .await;
        table
            .assert_refused(
                "ownid_data column",
                &["ownid", expect, "map users.ownid_data"],
                column,
            )
            .await;
    }
    // A utf8mb3 or latin1 ownIdData column refuses some characters.
    for charset in ["utf8mb3", "latin1"] {
        let table = customers(
            &format!(
                "email VARCHAR(320) COLLATE utf8mb4_bin NOT NULL UNIQUE, \
                 ownid MEDIUMTEXT CHARACTER SET {charset}"
            ),
            &[TABLE, LOGIN, DATA],
        )
        .await;
        let check = table.check().await;
        assert_eq!(check.code, 1, "{charset}: {check}");
        assert_eq!(check.level("ownid_data charset"), "fail", "{check}");
        assert!(table.serve().await.is_err(), "{charset}");
    }
    // An integer login column: OwnID sends e-mail addresses.
    let table = Existing::new(Shape {
        backend: "mysql",
        setup: &["CREATE TABLE customers (email BIGINT NOT NULL UNIQUE, ownid MEDIUMTEXT)"],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("login_id column"), "fail", "{check}");
    let detail = check.detail("login_id column");
    assert!(
        detail.contains("bigint(20)") && detail.contains("VARCHAR(320) CHARACTER SET utf8mb4"),
        "{check}"
    );
    assert!(table.serve().await.is_err());
}

/// Red team R6: a login id with a character a utf8mb3 (or latin1) login column cannot hold is
/// 404 on set, get and session, never 500; `check` warns, and fails with create_missing_users.
#[tokio::test]
async fn a_login_id_a_utf8mb3_column_cannot_hold_is_not_found() {
    let setup = [
        "CREATE TABLE customers (email VARCHAR(320) CHARACTER SET utf8mb3 COLLATE utf8mb3_bin \
         NOT NULL UNIQUE, ownid MEDIUMTEXT) CHARSET utf8mb4",
        "INSERT INTO customers (email) VALUES ('ünï@example.com')",
    ];
    let table = Existing::new(Shape {
        backend: "mysql",
        setup: &setup,
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("login_id charset"), "warn", "{check}");
    let app = table.serve().await.expect("serves");
    let emoji = "a😀@example.com";
    for reply in [
        app.get_data(emoji).await,
        app.set_data(emoji, "x").await,
        app.session(emoji).await,
    ] {
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
    table.contract(&app, "ünï@example.com", TRICKY).await;

    let creating = Existing::new(Shape {
        backend: "mysql",
        setup: &setup,
        env: &[TABLE, LOGIN, DATA, CREATING],
    })
    .await;
    let check = creating.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("login_id charset"), "fail", "{check}");
    assert!(creating.serve().await.is_err());
}
