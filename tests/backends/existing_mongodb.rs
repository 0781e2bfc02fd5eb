//! The matrix of existing MongoDB collections (issue 19): for each shape, what `check` says and
//! exits, what `schema --dry-run` prints, what `schema` does, and the contract where it serves.
//!
//! The suite's server is jongodb, which implements neither `listCollections` nor `create` nor
//! `collMod`: a validator or a collection's default collation cannot exist there, and the
//! collections of a database cannot be listed ("did you mean" needs the list). The shapes that
//! need them run whole against a real MongoDB (`OWNID_TEST_MONGODB_URL`); against jongodb they
//! assert that the server still lacks the command (so that they run as soon as it has it), and
//! the reading of validators and collations is unit-tested on `listCollections` documents in
//! backends/mongodb/src/schema.rs.

use mongodb::bson::{doc, Document};

use crate::common::existing::{Existing, Shape};

const TABLE: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customers");
const LOGIN: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "email");
const DATA: (&str, &str) = ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "ownid");
const CREATING: (&str, &str) = ("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true");

/// OwnID's data as the tests write it: quotes, a backslash, a JSON-looking text, non-ASCII and a
/// 4-byte character, so that any re-encoding shows.
const TRICKY: &str = "{\"v\":1} \\ \"quoted\" é ✓ 😀 eyJhbGciOiJIUzI1NiJ9.x";

/// The index `schema` creates on `customers`, as `--dry-run` prints it.
const CREATE_INDEX: &str = r#"-- mongodb: db.getCollection("customers").createIndex({"email":1}, {"unique":true,"name":"email_unique"})"#;

/// Alice in `customers` (jongodb's `insert` command does not add an `_id`).
const ALICE: &str =
    r#"{"insert": "customers", "documents": [{"_id": 1, "email": "alice@example.com"}]}"#;

async fn database(table: &Existing) -> mongodb::Database {
    mongodb::Client::with_uri_str(&table.db.url)
        .await
        .unwrap()
        .default_database()
        .unwrap()
}

async fn collection(table: &Existing, name: &str) -> mongodb::Collection<Document> {
    database(table).await.collection(name)
}

async fn index_names(table: &Existing, name: &str) -> Vec<String> {
    let mut names = collection(table, name)
        .await
        .list_index_names()
        .await
        .unwrap();
    names.sort();
    names
}

/// Whether the server implements `listCollections` (and so can hold a validator or a default
/// collation, and list a database's collections): a real MongoDB does, jongodb does not; then
/// `create` is missing too, which is what the shapes needing it assert.
async fn lists_collections(table: &Existing) -> bool {
    let database = database(table).await;
    match database.run_command(doc! { "listCollections": 1 }).await {
        Ok(_) => true,
        Err(err) if command_not_found(&err) => {
            let create = database
                .run_command(doc! { "create": "probe", "validator": {} })
                .await
                .expect_err("a server with `create` but without `listCollections`");
            assert!(command_not_found(&create), "{create}");
            false
        }
        Err(err) => panic!("listCollections: {err}"),
    }
}

fn command_not_found(err: &mongodb::error::Error) -> bool {
    matches!(err.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 59)
}

fn sub(session: &serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    let token = session["token"].as_str().expect("a token");
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sub"].clone()
}

#[tokio::test]
async fn a_plain_collection_serves_and_schema_adds_only_the_unique_index() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[ALICE],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("table"), "ok", "{check}");
    assert_eq!(check.level("ownid_data column"), "ok", "{check}");
    assert_eq!(check.level("login_id unique index"), "warn", "{check}");
    assert!(
        check
            .detail("login_id unique index")
            .contains("create_missing_users is off"),
        "{check}"
    );
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|line| line == CREATE_INDEX), "{out}");
    assert_eq!(index_names(&table, "customers").await, ["_id_"]);
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(r#"applied: db.getCollection("customers").createIndex("#),
        "{out}"
    );
    assert_eq!(
        index_names(&table, "customers").await,
        ["_id_", "email_unique"]
    );
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert!(
        !check.text.contains("warn") && !check.text.contains("FAIL"),
        "{check}"
    );
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("-- nothing to change"), "{out}");
    let app = table.serve().await.expect("serves");
    let session = table.contract(&app, "alice@example.com", TRICKY).await;
    assert_eq!(sub(&session), "alice@example.com");
    // With create_missing_users, the unique index is what check asks for.
    let creating = Existing::new(Shape {
        backend: "mongodb",
        setup: &[ALICE],
        env: &[TABLE, LOGIN, DATA, CREATING],
    })
    .await;
    let check = creating.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("login_id unique index"), "fail", "{check}");
    assert!(creating.serve().await.is_err());
}

#[tokio::test]
async fn a_validator_refusing_strings_fails_check_and_serve_refuses() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    if !lists_collections(&table).await {
        return;
    }
    table
        .execute(&[
            r#"{"create": "customers", "validator": {"$jsonSchema": {"properties": {"ownid": {"bsonType": "object"}}}}}"#,
            ALICE,
        ])
        .await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("ownid_data column"), "fail", "{check}");
    let detail = check.detail("ownid_data column");
    assert!(
        detail.contains("bsonType: \"object\"")
            && detail.contains(r#"db.runCommand({"collMod": "customers""#)
            && detail.contains(r#""bsonType":["object","string"]"#),
        "{check}"
    );
    let refused = table.serve().await.err().expect("serve refuses");
    assert!(refused.contains("ownid_data column"), "{refused}");
    let (code, _, err) = table.cli(&["serve", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(code, 2, "{err}");
    // The fix as printed makes the collection serve.
    table
        .execute(&[
            r#"{"collMod": "customers", "validator": {"$jsonSchema": {"properties": {"ownid": {"bsonType": ["object", "string"]}}}}}"#,
        ])
        .await;
    assert_eq!(table.check().await.code, 0);
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
}

#[tokio::test]
async fn a_validator_that_only_warns_is_a_warning_and_serves() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[],
        env: &[TABLE, LOGIN, DATA, CREATING],
    })
    .await;
    if !lists_collections(&table).await {
        return;
    }
    table
        .execute(&[
            r#"{"create": "customers", "validationAction": "warn", "validator": {"$jsonSchema": {"properties": {"ownid": {"bsonType": "int"}}}}}"#,
            ALICE,
            r#"{"createIndexes": "customers", "indexes": [{"key": {"email": 1}, "name": "email_unique", "unique": true}]}"#,
        ])
        .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("ownid_data column"), "warn", "{check}");
    assert!(
        check
            .detail("ownid_data column")
            .contains("writes are not refused"),
        "{check}"
    );
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
}

/// A unique index that compares without case (strength 2): safe without create_missing_users
/// (lookups are exact), refused with it (a look-alike's creation would be a 409). On a real
/// MongoDB also the collection's default collation, which the index `schema` creates inherits.
#[tokio::test]
async fn a_case_insensitive_collation_warns_without_creation_and_fails_with_it() {
    let index = r#"{"createIndexes": "customers", "indexes": [{"key": {"email": 1}, "name": "email_ci", "unique": true, "collation": {"locale": "en", "strength": 2}}]}"#;
    for env in [
        &[TABLE, LOGIN, DATA][..],
        &[TABLE, LOGIN, DATA, CREATING][..],
    ] {
        let creating = env.contains(&CREATING);
        let table = Existing::new(Shape {
            backend: "mongodb",
            setup: &[ALICE, index],
            env,
        })
        .await;
        let check = table.check().await;
        let detail = check.detail("login_id collation");
        assert!(
            detail.contains("{locale: \"en\", strength: 2}")
                && detail.contains("409 login_id_conflict")
                && detail.contains("simple collation")
                && detail.contains(r#"db.getCollection("customers").dropIndex("email_ci")"#),
            "{check}"
        );
        if creating {
            assert_eq!(check.code, 1, "{check}");
            assert_eq!(check.level("login_id collation"), "fail", "{check}");
            assert!(table.serve().await.is_err());
            continue;
        }
        assert_eq!(check.code, 0, "{check}");
        assert_eq!(check.level("login_id collation"), "warn", "{check}");
        let app = table.serve().await.expect("serves");
        app.get_data("ALICE@example.com").await.assert_empty(404);
        table.contract(&app, "alice@example.com", TRICKY).await;
    }

    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    if !lists_collections(&table).await {
        return;
    }
    table
        .execute(&[
            r#"{"create": "customers", "collation": {"locale": "en", "strength": 2}}"#,
            ALICE,
        ])
        .await;
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("login_id unique index"), "ok", "{check}");
    assert_eq!(check.level("login_id collation"), "warn", "{check}");
    assert!(
        check
            .detail("login_id collation")
            .contains("the collection's default collation"),
        "{check}"
    );
    let app = table.serve().await.expect("serves");
    app.get_data("ALICE@example.com").await.assert_empty(404);
    table.contract(&app, "alice@example.com", TRICKY).await;
}

#[tokio::test]
async fn a_collection_named_auth_members_is_one_collection() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[
            r#"{"insert": "auth.members", "documents": [{"_id": 1, "email": "alice@example.com"}]}"#,
        ],
        env: &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "auth.members"),
            LOGIN,
            DATA,
        ],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert!(
        check
            .detail("table")
            .contains("collection auth.members exists"),
        "{check}"
    );
    let (code, out, err) = table.cli(&["schema", "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(r#"-- mongodb: db.getCollection("auth.members").createIndex({"email":1}"#),
        "{out}"
    );
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        index_names(&table, "auth.members").await,
        ["_id_", "email_unique"]
    );
    let app = table.serve().await.expect("serves");
    table.contract(&app, "alice@example.com", TRICKY).await;
    let stored = collection(&table, "auth.members")
        .await
        .find_one(doc! { "email": "alice@example.com" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_str("ownid").unwrap(), TRICKY);
}

#[tokio::test]
async fn a_misspelt_collection_fails_check_and_is_never_created() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[
            r#"{"insert": "customers", "documents": [{"_id": 1, "email": "alice@example.com"}]}"#,
        ],
        env: &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customer"),
            LOGIN,
            DATA,
        ],
    })
    .await;
    let listed = lists_collections(&table).await;
    let check = table.check().await;
    assert_eq!(check.code, 1, "{check}");
    assert_eq!(check.level("table"), "fail", "{check}");
    let detail = check.detail("table");
    assert!(
        detail.contains("collection customer does not exist") && detail.contains("--create-table"),
        "{check}"
    );
    if listed {
        assert!(detail.contains("did you mean `customers`?"), "{check}");
    } else {
        assert!(detail.contains("does not list its collections"), "{check}");
    }
    for args in [&["schema"][..], &["schema", "--dry-run"][..]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("collection customer does not exist") && err.contains("--create-table"),
            "{err}"
        );
        if listed {
            assert!(err.contains("did you mean `customers`?"), "{err}");
        }
    }
    // Nothing created: no index and no document in `customer`.
    assert_eq!(index_names(&table, "customer").await, ["_id_"]);
    assert_eq!(
        collection(&table, "customer")
            .await
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
    let refused = table.serve().await.err().expect("serve refuses");
    assert!(
        refused.contains("collection customer does not exist"),
        "{refused}"
    );
    // Told to, `schema` creates it (with its index).
    let (code, out, err) = table.cli(&["schema", "--create-table"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        index_names(&table, "customer").await,
        ["_id_", "email_unique"]
    );
}

#[tokio::test]
async fn duplicate_login_ids_stop_schema_before_it_creates_anything() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[r#"{"insert": "customers", "documents": [
                {"_id": 1, "email": "a@example.com"}, {"_id": 2, "email": "a@example.com"},
                {"_id": 3, "email": "carol@example.com"}, {"_id": 4, "name": "no email"},
                {"_id": 5, "email": null}]}"#],
        env: &[TABLE, LOGIN, DATA],
    })
    .await;
    for args in [&["schema", "--dry-run"][..], &["schema"][..]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains("2 login id(s) are held by more than one document"),
            "{err}"
        );
        assert!(err.contains("a@example.com (2 documents)"), "{err}");
        assert!(
            err.contains("no email (missing or null) (2 documents)"),
            "{err}"
        );
        assert!(!err.contains("carol"), "{err}");
        assert!(err.contains("Nothing was changed"), "{err}");
    }
    assert_eq!(index_names(&table, "customers").await, ["_id_"]);
    // check says what serving needs (no index yet: a warning without create_missing_users).
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    assert_eq!(check.level("login_id unique index"), "warn", "{check}");
    // Merged, `schema` creates the index.
    // The setup's JSON numbers are 64-bit integers (jongodb compares them by type).
    let deleted = collection(&table, "customers")
        .await
        .delete_many(doc! { "_id": { "$in": [2_i64, 4_i64, 5_i64] } })
        .await
        .unwrap();
    assert_eq!(deleted.deleted_count, 3);
    let (code, out, err) = table.cli(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        index_names(&table, "customers").await,
        ["_id_", "email_unique"]
    );
}

/// ownIdData that other code wrote as an object, a number or an array is answered as its JSON
/// text (never a 500); the `_id` as the session's `sub`, as text.
#[tokio::test]
async fn non_string_values_are_answered_as_json_text() {
    let table = Existing::new(Shape {
        backend: "mongodb",
        setup: &[
            r#"{"insert": "customers", "documents": [
                {"_id": 7, "email": "alice@example.com"},
                {"_id": 8, "email": "bob@example.com", "ownid": {"legacy": true}},
                {"_id": 9, "email": "carol@example.com", "ownid": 12},
                {"_id": 10, "email": "dave@example.com", "ownid": null}]}"#,
            r#"{"createIndexes": "customers", "indexes": [{"key": {"email": 1}, "name": "email_unique", "unique": true}]}"#,
        ],
        env: &[
            TABLE,
            LOGIN,
            DATA,
            ("OWNID_BRIDGE__STORAGE__USERS__USER_ID", "_id"),
        ],
    })
    .await;
    let check = table.check().await;
    assert_eq!(check.code, 0, "{check}");
    let app = table.serve().await.expect("serves");
    let bob = app.get_data("bob@example.com").await;
    assert_eq!(bob.status, 200, "{}", bob.body);
    assert_eq!(bob.json()["ownIdData"], r#"{"legacy":true}"#);
    let carol = app.get_data("carol@example.com").await;
    assert_eq!(carol.status, 200, "{}", carol.body);
    assert_eq!(carol.json()["ownIdData"], "12");
    app.get_data("dave@example.com").await.assert_empty(204);
    let session = app.session("bob@example.com").await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(sub(&session.json()), "8");
    let session = table.contract(&app, "alice@example.com", TRICKY).await;
    assert_eq!(sub(&session), "7");
    // Export hands out what get answers.
    let (code, out, err) = table.cli(&["export"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("bob@example.com") && out.contains("carol@example.com"),
        "{out}"
    );
    assert!(!out.contains("dave"), "{out}");
}
