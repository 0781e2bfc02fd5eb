//! The shared conformance suite and the outage story against a real server, a fresh database per
//! case. `scripts/test.sh` starts one and sets `OWNID_TEST_MONGODB_URL`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongodb::bson::{doc, oid::ObjectId, Document};
use ownid_bridge_mongodb::{MongoOptions, MongoStore};
use ownid_bridge_store::conformance::{self, StoreFuture};
use ownid_bridge_store::outage::{self, OutageProxy};
use ownid_bridge_store::{
    checks, Identifier, Level, PoolSettings, SetOutcome, StoreError, UserStore, UsersMapping,
};

const URL_VARIABLE: &str = "OWNID_TEST_MONGODB_URL";

/// The server's URL, e.g. `mongodb://127.0.0.1:27017`. A missing variable fails the test (a
/// backend nobody tests is a backend that does not work).
fn server_url() -> String {
    outage::required_url(URL_VARIABLE)
}

/// `url` with its path replaced by `/database` and `extra_query` added to its options.
fn database_url(url: &str, database: &str, extra_query: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let options: Vec<&str> = query
        .into_iter()
        .chain((!extra_query.is_empty()).then_some(extra_query))
        .filter(|option| !option.is_empty())
        .collect();
    let mut url = format!("{}/{database}", &base[..authority_end]);
    if !options.is_empty() {
        url.push('?');
        url.push_str(&options.join("&"));
    }
    url
}

fn fresh_database_name() -> String {
    format!("ownid_{}", uuid::Uuid::new_v4().simple())
}

fn test_pool() -> PoolSettings {
    PoolSettings {
        acquire_timeout: Duration::from_secs(10),
        ..PoolSettings::default()
    }
}

/// Databases created by a test, dropped when it ends so a shared server does not fill up.
#[derive(Default)]
struct Databases(Mutex<Vec<String>>);

impl Databases {
    fn fresh_url(&self) -> String {
        self.fresh_url_on(&server_url(), "")
    }

    fn fresh_url_on(&self, url: &str, extra_query: &str) -> String {
        let name = fresh_database_name();
        self.0.lock().unwrap().push(name.clone());
        database_url(url, &name, extra_query)
    }

    async fn drop_all(&self) {
        let client = mongodb::Client::with_uri_str(server_url()).await.unwrap();
        let names = std::mem::take(&mut *self.0.lock().unwrap());
        for name in names {
            match client.database(&name).drop().await {
                Ok(()) => {}
                // In-memory test servers may not implement dropDatabase; they vanish anyway.
                Err(err) if is_command_not_found(&err) => {}
                Err(err) => panic!("drop database {name}: {err}"),
            }
        }
    }
}

fn is_command_not_found(err: &mongodb::error::Error) -> bool {
    matches!(err.kind.as_ref(), mongodb::error::ErrorKind::Command(command) if command.code == 59)
}

async fn open_store(url: String, mapping: UsersMapping, pool: PoolSettings) -> MongoStore {
    MongoStore::connect(MongoOptions { url, mapping, pool })
        .await
        .expect("connect to MongoDB")
}

/// The collection as the application owning it sees it, without the store in between.
async fn raw_collection(url: &str, name: &str) -> mongodb::Collection<Document> {
    let client = mongodb::Client::with_uri_str(url).await.unwrap();
    client.default_database().unwrap().collection(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_passes_the_conformance_suite() {
    let databases = Arc::new(Databases::default());
    let factory = {
        let databases = databases.clone();
        move |mapping: UsersMapping| -> StoreFuture {
            let url = databases.fresh_url();
            Box::pin(async move {
                Arc::new(open_store(url, mapping, test_pool()).await) as Arc<dyn UserStore>
            })
        }
    };
    conformance::run_all(&factory).await;
    databases.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_answers_unavailable_during_an_outage_and_recovers() {
    let url = server_url();
    let proxy = OutageProxy::start(outage::server_addr(&url).await)
        .await
        .unwrap();
    let databases = Databases::default();
    // directConnection: the proxy's address is not the one the server reports for itself.
    let proxied = databases.fresh_url_on(
        &outage::with_server(&url, proxy.addr()),
        "directConnection=true",
    );
    let pool = PoolSettings {
        connect_timeout: Duration::from_secs(2),
        acquire_timeout: Duration::from_secs(2),
        ..PoolSettings::default()
    };
    let acquire_timeout = pool.acquire_timeout;
    let store = Arc::new(open_store(proxied, UsersMapping::demo(), pool).await);
    outage::outage_story(store, &proxy, acquire_timeout).await;
    databases.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_create_each_user_once() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let store = Arc::new(open_store(url.clone(), UsersMapping::demo(), test_pool()).await);
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();

    let distinct: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_ownid_data(&format!("new{i}@example.com"), &format!("v{i}"), true)
                    .await
            })
        })
        .collect();
    for task in distinct {
        assert_eq!(task.await.unwrap().unwrap(), SetOutcome::Created);
    }

    let same: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_ownid_data("race@example.com", &format!("device-{i}"), true)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in same {
        if task.await.unwrap().expect("a racing upsert") == SetOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one racing upsert creates the user");

    let users = raw_collection(&url, "users").await;
    assert_eq!(
        users
            .count_documents(doc! { "login_id": "race@example.com" })
            .await
            .unwrap(),
        1
    );
    assert_eq!(users.count_documents(doc! {}).await.unwrap(), 101);
    for i in 0..100 {
        assert_eq!(
            store
                .get_ownid_data(&format!("new{i}@example.com"))
                .await
                .unwrap(),
            Some(format!("v{i}"))
        );
    }
    let stored = store.get_ownid_data("race@example.com").await.unwrap();
    assert!(stored.is_some_and(|value| value.starts_with("device-")));
    databases.drop_all().await;
}

#[tokio::test]
async fn session_users_read_the_configured_fields() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let mapping = UsersMapping {
        user_id: Some(Identifier::new("_id").unwrap()),
        claims: vec![
            ("email".into(), Identifier::new("login_id").unwrap()),
            ("roles".into(), Identifier::new("roles").unwrap()),
            ("age".into(), Identifier::new("age").unwrap()),
            ("nickname".into(), Identifier::new("nickname").unwrap()),
            ("missing".into(), Identifier::new("nothing_here").unwrap()),
        ],
        ..UsersMapping::demo()
    };
    let store = open_store(url.clone(), mapping, test_pool()).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let id = ObjectId::new();
    let users = raw_collection(&url, "users").await;
    users
        .insert_one(doc! {
            "_id": id,
            "login_id": "ada@example.com",
            "roles": ["admin", "dev"],
            "age": 36,
            "nickname": null,
        })
        .await
        .unwrap();
    users
        .insert_one(doc! { "_id": 7_i64, "login_id": "numeric@example.com" })
        .await
        .unwrap();

    let user = store.get_session_user("ada@example.com").await.unwrap();
    assert_eq!(user.subject, id.to_hex());
    assert_eq!(
        serde_json::Value::Object(user.claims),
        serde_json::json!({ "email": "ada@example.com", "roles": ["admin", "dev"], "age": 36 })
    );
    let numeric = store.get_session_user("numeric@example.com").await.unwrap();
    assert_eq!(numeric.subject, "7");
    databases.drop_all().await;
}

/// Values some other code wrote into the ownIdData field are answered, never a 500: a string
/// as it is, null as no data, anything else as its relaxed extended JSON text (as the SQL
/// backends answer a JSON column holding a non-string); export hands out the same text.
#[tokio::test]
async fn a_non_string_value_is_answered_as_its_json_text() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let store = open_store(url.clone(), UsersMapping::demo(), test_pool()).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let users = raw_collection(&url, "users").await;
    users
        .insert_many([
            doc! { "login_id": "number@example.com", "ownid_data": 12 },
            doc! { "login_id": "object@example.com", "ownid_data": { "devices": [{ "id": "d1" }] } },
            doc! { "login_id": "array@example.com", "ownid_data": ["a", 1.5] },
            doc! { "login_id": "null@example.com", "ownid_data": null },
            doc! { "login_id": "empty@example.com", "ownid_data": "" },
            doc! { "login_id": "none@example.com" },
            doc! { "login_id": "text@example.com", "ownid_data": "opaque" },
        ])
        .await
        .unwrap();
    let expected = [
        ("number@example.com", Some("12")),
        ("object@example.com", Some(r#"{"devices":[{"id":"d1"}]}"#)),
        ("array@example.com", Some(r#"["a",1.5]"#)),
        ("null@example.com", None),
        ("empty@example.com", None),
        ("none@example.com", None),
        ("text@example.com", Some("opaque")),
    ];
    for (login_id, value) in expected {
        assert_eq!(
            store.get_ownid_data(login_id).await.unwrap().as_deref(),
            value,
            "{login_id}"
        );
    }
    let mut exported = Vec::new();
    let mut sink = |rows: Vec<(String, String)>| {
        exported.extend(rows);
        Ok(())
    };
    assert_eq!(store.export_ownid_data(2, &mut sink).await.unwrap(), 4);
    exported.sort();
    let mut with_data: Vec<(String, String)> = expected
        .iter()
        .filter_map(|(login, value)| Some(((*login).to_owned(), (*value)?.to_owned())))
        .collect();
    with_data.sort();
    assert_eq!(exported, with_data);
    // Written by OwnID again: a string, read back as it is.
    store
        .set_ownid_data("object@example.com", "fresh", false)
        .await
        .unwrap();
    assert_eq!(
        store.get_ownid_data("object@example.com").await.unwrap(),
        Some("fresh".into())
    );
    databases.drop_all().await;
}

/// A user-id field holding an ObjectId, a date, a number or a decimal names the session as
/// text, and claims of those types become JSON values: never a 500.
#[tokio::test]
async fn user_ids_and_claims_of_any_type_issue_a_session() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let mapping = UsersMapping {
        user_id: Some(Identifier::new("uid").unwrap()),
        claims: vec![
            ("joined".into(), Identifier::new("joined").unwrap()),
            ("org".into(), Identifier::new("org").unwrap()),
        ],
        ..UsersMapping::demo()
    };
    let store = open_store(url.clone(), mapping, test_pool()).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let users = raw_collection(&url, "users").await;
    let org = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
    let joined = mongodb::bson::DateTime::from_millis(86_400_000);
    let decimal: mongodb::bson::Decimal128 = "12.50".parse().unwrap();
    users
        .insert_many([
            doc! { "login_id": "oid@example.com", "uid": org, "joined": joined, "org": org },
            doc! { "login_id": "date@example.com", "uid": joined },
            doc! { "login_id": "long@example.com", "uid": 9_007_199_254_740_993_i64 },
            doc! { "login_id": "double@example.com", "uid": 42.5 },
            doc! { "login_id": "decimal@example.com", "uid": decimal },
        ])
        .await
        .unwrap();
    let user = store.get_session_user("oid@example.com").await.unwrap();
    assert_eq!(user.subject, "65a1b2c3d4e5f60718293a4b");
    assert_eq!(
        serde_json::Value::Object(user.claims),
        serde_json::json!({ "joined": "1970-01-02T00:00:00Z", "org": "65a1b2c3d4e5f60718293a4b" })
    );
    for (login_id, subject) in [
        ("date@example.com", "1970-01-02T00:00:00Z"),
        ("long@example.com", "9007199254740993"),
        ("double@example.com", "42.5"),
        ("decimal@example.com", "12.50"),
    ] {
        assert_eq!(
            store.get_session_user(login_id).await.unwrap().subject,
            subject,
            "{login_id}"
        );
    }
    databases.drop_all().await;
}

#[tokio::test]
async fn check_flags_an_existing_collection_without_a_unique_index() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let users = raw_collection(&url, "users").await;
    users
        .insert_one(doc! { "login_id": "legacy@example.com" })
        .await
        .unwrap();
    users
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "login_id": 1, "tenant": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let store = open_store(url, UsersMapping::demo(), test_pool()).await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.check(checks::TABLE).unwrap().ok(), "{report}");
    assert!(
        !report.check(checks::LOGIN_ID_UNIQUE).unwrap().ok(),
        "{report}"
    );

    assert!(store.inspect().await.unwrap().settle(false).is_ok());

    let command = r#"db.getCollection("users").createIndex({"login_id":1}, {"unique":true,"name":"login_id_unique"})"#;
    let dry_run = ownid_bridge_store::SchemaOptions {
        dry_run: true,
        ..Default::default()
    };
    let planned = store.apply_schema(&dry_run).await.unwrap();
    assert_eq!(planned.statements, [command]);
    assert!(planned.notes.is_empty(), "{planned:?}");
    // The dry run changed nothing.
    assert_eq!(
        store
            .inspect()
            .await
            .unwrap()
            .check(checks::LOGIN_ID_UNIQUE)
            .unwrap()
            .level,
        Level::Warn
    );
    assert_eq!(users.list_index_names().await.unwrap().len(), 2);

    let applied = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert_eq!(applied.statements, [command]);
    assert!(store.inspect().await.unwrap().settle(true).is_ok());
    assert!(store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap()
        .is_empty());
    databases.drop_all().await;
}

#[tokio::test]
async fn a_missing_collection_is_not_created_without_permission() {
    let databases = Databases::default();
    let store = open_store(databases.fresh_url(), UsersMapping::demo(), test_pool()).await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(
        !report.is_ok() && !report.check(checks::TABLE).unwrap().ok(),
        "{report}"
    );
    let fail = report.check(checks::TABLE).unwrap();
    assert!(
        fail.detail.starts_with("collection users does not exist"),
        "{report}"
    );
    for options in [
        ownid_bridge_store::SchemaOptions::default(),
        ownid_bridge_store::SchemaOptions {
            dry_run: true,
            ..Default::default()
        },
    ] {
        let err = store.apply_schema(&options).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Schema(ref text)
                if text.contains("does not exist") && text.contains("--create-table")),
            "{err:?}"
        );
    }
    // Nothing was created: the collection is still missing.
    assert!(!store.inspect().await.unwrap().is_ok());

    let planned = store
        .apply_schema(&ownid_bridge_store::SchemaOptions {
            create_table: true,
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(planned.notes, ["createIndex creates the collection users"]);
    assert_eq!(planned.statements.len(), 1);
    assert!(!store.inspect().await.unwrap().is_ok());
    let created = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    assert_eq!(created.statements, planned.statements);
    assert!(store.inspect().await.unwrap().settle(true).is_ok());
    databases.drop_all().await;
}

#[tokio::test]
async fn a_value_over_the_bson_limit_is_too_large_and_nothing_changes() {
    let databases = Databases::default();
    let store = open_store(databases.fresh_url(), UsersMapping::demo(), test_pool()).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    store.create_user("big@example.com").await.unwrap();
    store
        .set_ownid_data("big@example.com", "small", false)
        .await
        .unwrap();
    let huge = "x".repeat(16 * 1024 * 1024 + 1);
    let err = store
        .set_ownid_data("big@example.com", &huge, false)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
    assert_eq!(
        store.get_ownid_data("big@example.com").await.unwrap(),
        Some("small".into())
    );
    databases.drop_all().await;
}

#[tokio::test]
async fn a_url_without_a_database_is_refused_with_a_reason() {
    let url = database_url(&server_url(), "", "");
    let err = MongoStore::connect(MongoOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: test_pool(),
    })
    .await
    .err()
    .expect("a URL without a database accepted");
    assert!(
        matches!(err, StoreError::Other(ref text) if text.contains("names no database")),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_acquire_timeout() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = MongoStore::connect(MongoOptions {
        url: format!("mongodb://app:s3cret-password@127.0.0.1:{port}/app?directConnection=true"),
        mapping: UsersMapping::demo(),
        pool: PoolSettings {
            acquire_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            ..PoolSettings::default()
        },
    })
    .await
    .err()
    .expect("connected to nothing");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// Duplicates stop `schema` before it creates anything, and the error names them (at most 20,
/// and how many in all), documents without a login id among them.
#[tokio::test]
async fn schema_names_the_duplicates_and_changes_nothing() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let users = raw_collection(&url, "users").await;
    let mut documents = vec![
        doc! { "login_id": "twice@example.com" },
        doc! { "login_id": "twice@example.com" },
        doc! { "login_id": "once@example.com" },
        doc! { "name": "no login id" },
        doc! { "login_id": null },
    ];
    for i in 0..22 {
        for _ in 0..2 {
            documents.push(doc! { "login_id": format!("dup{i}@example.com") });
        }
    }
    users.insert_many(documents).await.unwrap();
    let store = open_store(url, UsersMapping::demo(), test_pool()).await;
    for dry_run in [true, false] {
        let options = ownid_bridge_store::SchemaOptions {
            dry_run,
            ..Default::default()
        };
        let err = store.apply_schema(&options).await.unwrap_err();
        let StoreError::Schema(text) = &err else {
            panic!("{err:?}");
        };
        assert!(
            text.contains("24 login id(s) are held by more than one document, the first 20 shown"),
            "{text}"
        );
        assert!(text.contains("Nothing was changed"), "{text}");
        assert!(!text.contains("once@example.com"), "{text}");
        let named = text.matches(" documents)").count();
        assert_eq!(named, 20, "{text}");
    }
    // Named when among the first 20: an exact duplicate and the documents without a login id.
    let small = databases.fresh_url();
    let users = raw_collection(&small, "users").await;
    users
        .insert_many([
            doc! { "login_id": "twice@example.com" },
            doc! { "login_id": "twice@example.com" },
            doc! { "name": "no login id" },
            doc! { "login_id": null },
        ])
        .await
        .unwrap();
    let store = open_store(small, UsersMapping::demo(), test_pool()).await;
    let err = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(": twice@example.com (2 documents)"), "{text}");
    assert!(
        text.contains("no login_id (missing or null) (2 documents)"),
        "{text}"
    );
    assert_eq!(users.list_index_names().await.unwrap(), ["_id_"]);
    databases.drop_all().await;
}

/// An index on the login id without `unique` would make MongoDB refuse the unique one (same key,
/// same collation): `schema` says so before creating anything.
#[tokio::test]
async fn schema_refuses_beside_a_non_unique_index_on_the_login_id() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let users = raw_collection(&url, "users").await;
    users
        .insert_one(doc! { "login_id": "a@example.com" })
        .await
        .unwrap();
    users
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "login_id": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name("by_login".to_string())
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let store = open_store(url, UsersMapping::demo(), test_pool()).await;
    let err = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Schema(ref text)
            if text.contains("by_login") && text.contains("dropIndex") && text.contains("nothing was changed")),
        "{err:?}"
    );
    let mut names = users.list_index_names().await.unwrap();
    names.sort();
    assert_eq!(names, ["_id_", "by_login"]);
    databases.drop_all().await;
}

/// `users.table: auth.members` is one collection, dots and all.
#[tokio::test]
async fn a_collection_name_with_a_dot_is_one_collection() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let mapping = UsersMapping {
        table: ownid_bridge_store::TableName::new("auth.members").unwrap(),
        ..UsersMapping::demo()
    };
    raw_collection(&url, "auth.members")
        .await
        .insert_one(doc! { "login_id": "member@example.com" })
        .await
        .unwrap();
    let store = open_store(url.clone(), mapping, test_pool()).await;
    let report = store.inspect().await.unwrap();
    assert_eq!(
        report.check(checks::TABLE).unwrap().detail,
        "collection auth.members exists"
    );
    let applied = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert_eq!(
        applied.statements,
        [
            r#"db.getCollection("auth.members").createIndex({"login_id":1}, {"unique":true,"name":"login_id_unique"})"#
        ]
    );
    store
        .set_ownid_data("member@example.com", "value", false)
        .await
        .unwrap();
    assert_eq!(
        raw_collection(&url, "auth.members")
            .await
            .find_one(doc! { "login_id": "member@example.com" })
            .await
            .unwrap()
            .unwrap()
            .get_str("ownid_data")
            .unwrap(),
        "value"
    );
    databases.drop_all().await;
}

/// A `users` collection that compares login ids without case (ICU strength 2): its default
/// collation where the server lets a collection have one, and its unique login-id index; Alice
/// with `id` 7 and `role` admin.
///
/// jongodb (the suite's default server) has no `create` command, so there only the index carries
/// the collation; against a real MongoDB (`OWNID_TEST_MONGODB_URL`) the collection's default
/// collation makes every unqualified query case-insensitive too.
#[tokio::test]
async fn look_alike_login_ids_under_a_strength_2_collation_are_other_users() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let database = client.default_database().unwrap();
    let collation = mongodb::options::Collation::builder()
        .locale("en")
        .strength(mongodb::options::CollationStrength::Secondary)
        .build();
    match database
        .create_collection("users")
        .collation(collation.clone())
        .await
    {
        Ok(()) => {}
        Err(err) if is_command_not_found(&err) => {}
        Err(err) => panic!("create the collection: {err}"),
    }
    let users = database.collection::<Document>("users");
    users
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "login_id": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .collation(collation)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    users
        .insert_one(doc! { "id": 7, "login_id": conformance::ALICE, "role": "admin" })
        .await
        .unwrap();
    let store = open_store(url, conformance::look_alike_mapping(), test_pool()).await;
    conformance::look_alikes_are_other_users(&store, "7").await;
    databases.drop_all().await;
}

/// Regex characters in a login id are matched literally by the exact filter.
#[tokio::test]
async fn login_ids_with_regex_characters_match_only_themselves() {
    let databases = Databases::default();
    let store = open_store(databases.fresh_url(), UsersMapping::demo(), test_pool()).await;
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let odd = "a.b+c*(d)?[e]{2}|^$\\z@example.com";
    assert!(store.create_user(odd).await.unwrap());
    store.set_ownid_data(odd, "odd", false).await.unwrap();
    assert_eq!(store.get_ownid_data(odd).await.unwrap(), Some("odd".into()));
    for other in [
        "aXb+c*(d)?[e]{2}|^$\\z@example.com",
        "a.b+c*(d)?[e]{2}|^$\\z@example.co",
    ] {
        assert!(matches!(
            store.get_ownid_data(other).await,
            Err(StoreError::NotFound)
        ));
    }
    databases.drop_all().await;
}

/// `serve`'s demo creation (`SchemaOptions::DEMO`) does not create `customer` beside an existing
/// `customers`: a misspelling. Only a server that lists its collections can tell; jongodb cannot,
/// and there the collection is created as before.
#[tokio::test]
async fn the_demo_does_not_create_a_misspelt_collection() {
    let databases = Databases::default();
    let url = databases.fresh_url();
    raw_collection(&url, "customers")
        .await
        .insert_one(doc! { "login_id": "a@example.com" })
        .await
        .unwrap();
    let mapping = UsersMapping {
        table: ownid_bridge_store::TableName::new("customer").unwrap(),
        ..UsersMapping::demo()
    };
    let store = open_store(url.clone(), mapping, test_pool()).await;
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let lists = match client
        .default_database()
        .unwrap()
        .run_command(doc! { "listCollections": 1 })
        .await
    {
        Ok(_) => true,
        Err(err) if is_command_not_found(&err) => false,
        Err(err) => panic!("{err}"),
    };
    let outcome = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::DEMO)
        .await;
    let created = raw_collection(&url, "customer")
        .await
        .list_index_names()
        .await
        .unwrap()
        .len()
        > 1;
    if lists {
        let err = outcome.unwrap_err();
        assert!(
            matches!(err, StoreError::Schema(ref text) if text.contains("did you mean `customers`?")),
            "{err:?}"
        );
        assert!(!created);
    } else {
        assert_eq!(outcome.unwrap().statements.len(), 1);
        assert!(created);
    }
    // Asked for in so many words, it is created.
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    assert!(store.inspect().await.unwrap().settle(true).is_ok());
    databases.drop_all().await;
}
