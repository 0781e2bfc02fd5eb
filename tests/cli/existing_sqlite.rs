//! The matrix of existing SQLite tables (issue 19): for each shape, what `check` says and exits,
//! what `schema --dry-run` prints, what `schema` does, and the contract where it serves.

use crate::common::existing::{Existing, Shape};

const TABLE: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customers");
const LOGIN: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "email");
const DATA: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "ownid");
const CREATING: (&str, &str) = ("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true");

const TRICKY: &str = "{\"v\":1} \\ \"quoted\" é ✓ 😀 0012 1e5";

async fn customers(columns: &str, env: &[(&str, &str)]) -> Existing {
    let create = format!("CREATE TABLE customers ({columns})");
    Existing::new(Shape {
        backend: "sqlite",
        setup: &[
            &create,
            "INSERT INTO customers (email) VALUES ('alice@example.com')",
        ],
        env,
    })
    .await
}

#[tokio::test]
async fn text_and_untyped_columns_serve_byte_for_byte() {
    for data in ["ownid TEXT", "ownid", "ownid BLOB", "ownid VARCHAR(5000)"] {
        let table = customers(
            &format!("email TEXT NOT NULL UNIQUE, {data}"),
            &[TABLE, LOGIN, DATA],
        )
        .await;
        let check = table.check().await;
        assert_eq!(check.code, 0, "{data}: {check}");
        let app = table.serve().await.expect("serves");
        table.contract(&app, "alice@example.com", TRICKY).await;
        // A numeric-looking value stays a string.
        table.contract(&app, "alice@example.com", "0012").await;
    }
}

#[tokio::test]
async fn number_affinity_and_narrow_columns_are_refused_before_serving() {
    for (data, line) in [
        ("ownid INTEGER", "ownid_data column"),
        ("ownid NUMERIC", "ownid_data column"),
        ("ownid JSON", "ownid_data column"),
        ("ownid VARCHAR(100)", "ownid_data width"),
        (
            "ownid TEXT GENERATED ALWAYS AS (upper(email)) VIRTUAL",
            "ownid_data column",
        ),
    ] {
        let table = customers(
            &format!("email TEXT NOT NULL UNIQUE, {data}"),
            &[TABLE, LOGIN, DATA],
        )
        .await;
        let check = table.check().await;
        assert_eq!(check.code, 1, "{data}: {check}");
        assert_eq!(check.level(line), "fail", "{data}: {check}");
        assert!(check.json["apps"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line["fix"].is_string()));
        assert!(table.serve().await.is_err(), "{data}");
        let (code, _, err) = table.cli(&["serve", "--listen", "127.0.0.1:0"]).await;
        assert_eq!(code, 2, "{data}: {err}");
    }
}

#[tokio::test]
async fn a_nocase_unique_index_warns_without_creation_and_fails_with_it() {
    let columns = "email TEXT NOT NULL COLLATE NOCASE UNIQUE, ownid TEXT";
    let table = customers(columns, &[TABLE, LOGIN, DATA]).await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("login_id collation"), "warn", "{check}");
    assert!(
        check
            .detail("login_id collation")
            .contains("COLLATE BINARY"),
        "{check}"
    );
    let app = table.serve().await.expect("serves");
    app.get_data("ALICE@example.com").await.assert_empty(404);
    table.contract(&app, "alice@example.com", TRICKY).await;

    let creating = customers(columns, &[TABLE, LOGIN, DATA, CREATING]).await;
    let check = creating.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("login_id collation"), "fail", "{check}");
}

#[tokio::test]
async fn a_misspelt_table_is_never_created_and_the_closest_one_is_named() {
    let table = customers(
        "email TEXT NOT NULL UNIQUE, ownid TEXT",
        &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "Customer"),
            LOGIN,
            DATA,
        ],
    )
    .await;
    // SQLite's names ignore case: `Customer` is not `customers`, and the closest is named.
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert!(
        check.detail("table").contains("did you mean `customers`?"),
        "{check}"
    );
    for args in [&["schema"][..], &["schema", "--dry-run"]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains("did you mean `customers`?"), "{err}");
    }
    let (_, out, _) = table.cli(&["check"]).await;
    assert!(out.contains("FAIL table"), "{out}");
    // `serve` creates the demo table on SQLite, but not beside a company's own tables.
    let refused = table.serve().await.err().expect("serve refuses");
    assert!(refused.contains("did you mean `customers`?"), "{refused}");
    let (code, _, err) = table.cli(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        table.check().await.level("table"),
        "fail",
        "no table was created"
    );
    // A schema-qualified name has no meaning on SQLite.
    let qualified = customers(
        "email TEXT NOT NULL UNIQUE, ownid TEXT",
        &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "main.customers"),
            LOGIN,
            DATA,
        ],
    )
    .await;
    let check = qualified.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert!(check.text.contains("SQLite has no schemas"), "{check}");
}

#[tokio::test]
async fn duplicates_stop_schema_and_a_dry_run_is_a_sql_file() {
    let table = Existing::new(Shape {
        backend: "sqlite",
        setup: &[
            "CREATE TABLE customers (email TEXT COLLATE NOCASE)",
            "INSERT INTO customers VALUES ('a@example.com'), ('a@example.com'), \
             ('Bob@example.com'), ('bob@example.com'), ('carol@example.com'), (NULL), (NULL)",
        ],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("2 login id(s)"), "{err}");
    assert!(err.contains("a@example.com (2 rows)"), "{err}");
    assert!(
        err.contains("Bob@example.com") && err.contains("bob@example.com"),
        "{err}"
    );
    let check = table.check().await;
    assert_eq!(
        check.level("ownid_data column"),
        "fail",
        "nothing was added: {check}"
    );

    table
        .execute(&["DELETE FROM customers WHERE rowid IN (2, 4)"])
        .await;
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("-- ownid-bridge schema --dry-run: SQLite"),
        "{out}"
    );
    assert!(
        out.contains("-- ownid-bridge runs the first 2 statements in one transaction"),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>(),
        [
            "ALTER TABLE \"customers\" ADD COLUMN \"ownid\" TEXT;",
            "CREATE UNIQUE INDEX \"customers_email_key\" ON \"customers\" (\"email\");",
        ]
    );
    // The dry run changed nothing; the real run applies exactly what it printed.
    assert_eq!(table.check().await.level("ownid_data column"), "fail");
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
}

#[tokio::test]
async fn keyword_and_mixed_case_names_serve() {
    let table = Existing::new(Shape {
        backend: "sqlite",
        setup: &[
            "CREATE TABLE \"Order\" (\"Select\" TEXT UNIQUE, \"OwnIdData\" TEXT)",
            "INSERT INTO \"Order\" (\"Select\") VALUES ('alice@example.com'), (NULL), (NULL)",
        ],
        env: &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "Order"),
            ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "Select"),
            ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "OwnIdData"),
        ],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
}
