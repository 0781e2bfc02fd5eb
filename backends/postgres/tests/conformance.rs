//! The shared conformance suite and outage story on a real PostgreSQL server
//! (`OWNID_TEST_POSTGRES_URL`; scripts/test.sh starts a throwaway one). Each case gets its own
//! schema, selected through the connection's search_path.

use std::sync::Arc;
use std::time::Duration;

use ownid_bridge_postgres::{PostgresOptions, PostgresStore};
use ownid_bridge_store::conformance::{self, StoreFuture};
use ownid_bridge_store::outage::{behind_proxy, outage_story, required_url, OUTAGE_TIMEOUT};
use ownid_bridge_store::{PoolSettings, StoreError, UserStore, UsersMapping};
use sqlx::Connection as _;

const URL_VARIABLE: &str = "OWNID_TEST_POSTGRES_URL";

/// A fresh schema, and the URL that makes it the search path.
async fn fresh_schema(base: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(base)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-c%20search_path%3D{schema}")
}

fn open(mapping: UsersMapping) -> StoreFuture {
    Box::pin(async move {
        let url = fresh_schema(&required_url(URL_VARIABLE)).await;
        let store = PostgresStore::connect(PostgresOptions {
            url,
            mapping,
            pool: PoolSettings::default(),
            transaction_pooler: false,
        })
        .await
        .expect("open PostgreSQL");
        Arc::new(store) as Arc<dyn UserStore>
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    conformance::run_all(&open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_unavailable_during_an_outage_and_recovers() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let (proxy, url, pool) = behind_proxy(&url).await;
    let store = PostgresStore::connect(PostgresOptions {
        url,
        mapping: UsersMapping::demo(),
        pool,
        transaction_pooler: false,
    })
    .await
    .unwrap();
    outage_story(Arc::new(store), &proxy, OUTAGE_TIMEOUT).await;
}

#[tokio::test]
async fn a_value_longer_than_a_varchar_column_is_too_large_and_nothing_changes() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (login_id TEXT PRIMARY KEY, ownid_data VARCHAR(10))")
        .execute(&setup)
        .await
        .unwrap();
    let store = PostgresStore::connect(PostgresOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        transaction_pooler: false,
    })
    .await
    .unwrap();
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
        Some("😀😀😀😀😀😀😀😀😀😀")
    );
}

#[tokio::test]
async fn an_existing_table_gets_its_column_and_index_from_schema() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE \"Accounts\" (id SERIAL PRIMARY KEY, \"Email\" TEXT NOT NULL, plan TEXT)",
    )
    .execute(&setup)
    .await
    .unwrap();
    sqlx::query("INSERT INTO \"Accounts\" (\"Email\", plan) VALUES ('x@example.com', 'pro')")
        .execute(&setup)
        .await
        .unwrap();
    let mapping = UsersMapping {
        table: ownid_bridge_store::Identifier::new("Accounts")
            .unwrap()
            .into(),
        login_id: ownid_bridge_store::Identifier::new("Email").unwrap(),
        ownid_data: ownid_bridge_store::Identifier::new("OwnIdData").unwrap(),
        user_id: Some(ownid_bridge_store::Identifier::new("id").unwrap()),
        claims: vec![(
            "plan".into(),
            ownid_bridge_store::Identifier::new("plan").unwrap(),
        )],
    };
    let store = PostgresStore::connect(PostgresOptions {
        url,
        mapping,
        pool: PoolSettings::default(),
        transaction_pooler: false,
    })
    .await
    .unwrap();
    let before = store.inspect().await.unwrap().settle(true);
    assert!(!before.is_ok(), "{before}");
    let changes = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::default())
        .await
        .unwrap();
    assert_eq!(changes.statements.len(), 2, "{changes:?}");
    assert!(store.inspect().await.unwrap().settle(true).is_ok());
    store
        .set_ownid_data("x@example.com", "d", false)
        .await
        .unwrap();
    let user = store.get_session_user("x@example.com").await.unwrap();
    assert_eq!(user.subject, "1");
    assert_eq!(user.claims["plan"], "pro");
}

/// Red team, round 3 (R2): a constant default on the user-id column would give every created
/// user one `sub`: `check` fails it; generated defaults pass.
#[tokio::test]
async fn a_constant_user_id_default_fails_the_check() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE users (login_id TEXT NOT NULL UNIQUE, ownid_data TEXT, \
         blank TEXT NOT NULL DEFAULT '', zero BIGINT DEFAULT 0, named VARCHAR(20) DEFAULT 'n/a', \
         serial_id BIGSERIAL, uid UUID DEFAULT gen_random_uuid(), \
         ident BIGINT GENERATED ALWAYS AS IDENTITY, plain TEXT)",
    )
    .execute(&setup)
    .await
    .unwrap();
    setup.close().await;
    for (column, constant) in [
        ("blank", true),
        ("zero", true),
        ("named", true),
        ("serial_id", false),
        ("uid", false),
        ("ident", false),
        ("plain", false),
    ] {
        let mut mapping = UsersMapping::demo();
        mapping.user_id = Some(ownid_bridge_store::Identifier::new(column).unwrap());
        let store = PostgresStore::connect(PostgresOptions {
            url: url.clone(),
            mapping,
            pool: PoolSettings::default(),
            transaction_pooler: false,
        })
        .await
        .unwrap();
        let report = store.inspect().await.unwrap().settle(true);
        let check = report.check("user_id default").expect("checked");
        assert_eq!(check.ok(), !constant, "{column}: {report}");
    }
}

/// A fresh schema as the search path, with `public` after it (where citext is installed).
async fn fresh_schema_with_public(base: &str) -> String {
    let url = fresh_schema(base).await;
    format!("{url}%2Cpublic")
}

/// citext lives in `public`; concurrent tests may race to create it, so a failed attempt is
/// followed by a check that it exists.
async fn ensure_citext(pool: &sqlx::PgPool) {
    for _ in 0..5 {
        if sqlx::query("CREATE EXTENSION IF NOT EXISTS citext SCHEMA public")
            .execute(pool)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the citext extension could not be created (postgresql-contrib installed?)");
}

/// A users table whose login-id column is `column_type` (with a unique index), holding Alice
/// with `id` 7 and `role` admin.
async fn look_alike_store(column_type: &str) -> (PostgresStore, String) {
    let url = fresh_schema_with_public(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    ensure_citext(&setup).await;
    for statement in [
        // Case- and accent-insensitive (ICU level 1), as PostgreSQL 12+ allows.
        "CREATE COLLATION ci_ai (provider = icu, locale = 'und-u-ks-level1', \
         deterministic = false)"
            .to_owned(),
        format!(
            "CREATE TABLE users (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
             login_id {column_type} NOT NULL UNIQUE, \
             ownid_data TEXT, role TEXT)"
        ),
        "INSERT INTO users VALUES (7, 'alice@example.com', NULL, 'admin')".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&setup)
            .await
            .unwrap();
    }
    setup.close().await;
    let store = PostgresStore::connect(PostgresOptions {
        url: url.clone(),
        mapping: conformance::look_alike_mapping(),
        pool: PoolSettings::default(),
        transaction_pooler: false,
    })
    .await
    .unwrap();
    (store, url)
}

/// Every statement of the data path can use the login-id index: with sequential scans
/// disabled, the plan still shows no `Seq Scan`.
async fn assert_lookups_use_the_index(store: &PostgresStore, url: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let sql = store.statements();
    for (statement, leading) in [(&sql.get, 0), (&sql.session, 0), (&sql.update, 1)] {
        let mut query =
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")));
        if leading == 1 {
            query = query.bind("data");
        }
        let plan = query
            .bind("alice@example.com")
            .bind("alice@example.com")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("users_login_id_key") && !plan.contains("Seq Scan"),
            "{statement}:\n{plan}"
        );
    }
}

#[tokio::test]
async fn look_alike_login_ids_on_a_citext_column_are_other_users() {
    let (store, url) = look_alike_store("citext").await;
    conformance::look_alikes_are_other_users(&store, "7").await;
    assert_lookups_use_the_index(&store, &url).await;
}

#[tokio::test]
async fn look_alike_login_ids_under_a_nondeterministic_icu_collation_are_other_users() {
    let (store, url) = look_alike_store("TEXT COLLATE ci_ai").await;
    conformance::look_alikes_are_other_users(&store, "7").await;
    assert_lookups_use_the_index(&store, &url).await;
}

/// Issue 19: a `jsonb` ownIdData column holds OwnID's string as a JSON string, read back byte
/// for byte, and the lookups still use the login-id index (the JSON expressions touch only the
/// ownIdData column).
#[tokio::test]
async fn a_jsonb_ownid_data_column_keeps_the_lookups_on_the_index() {
    let url = fresh_schema_with_public(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (login_id TEXT NOT NULL UNIQUE, ownid_data JSONB, role TEXT)")
        .execute(&setup)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (login_id) VALUES ('alice@example.com')")
        .execute(&setup)
        .await
        .unwrap();
    let mut mapping = UsersMapping::demo();
    mapping.claims = vec![(
        "role".into(),
        ownid_bridge_store::Identifier::new("role").unwrap(),
    )];
    let store = PostgresStore::connect(PostgresOptions {
        url: url.clone(),
        mapping,
        pool: PoolSettings::default(),
        transaction_pooler: false,
    })
    .await
    .unwrap();
    let data = "\"quoted\" \\ {\"a\":1} é 😀";
    store
        .set_ownid_data("alice@example.com", data, false)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_ownid_data("alice@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some(data)
    );
    let kind: String = sqlx::query_scalar("SELECT jsonb_typeof(ownid_data) FROM users")
        .fetch_one(&setup)
        .await
        .unwrap();
    assert_eq!(kind, "string");
    assert!(store
        .statements()
        .update
        .contains("to_jsonb(CAST($1 AS text))"));
    assert_lookups_use_the_index(&store, &url).await;
}

/// Red team (issue 19): a login-id column of a domain over `citext` with a CHECK. The lookup is
/// cast to the base type (`citext`), which keeps it on the index, never to the domain, whose
/// CHECK would refuse a login id it does not admit instead of finding no such user.
#[tokio::test]
async fn a_domain_over_citext_keeps_the_index_without_its_check() {
    let url = fresh_schema_with_public(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    ensure_citext(&setup).await;
    for statement in [
        "CREATE DOMAIN email_address AS citext CHECK (VALUE ~ '^[^@]+@[^@]+$')",
        "CREATE TABLE users (login_id email_address NOT NULL, ownid_data TEXT, role TEXT)",
        "CREATE UNIQUE INDEX users_login_id_key ON users (login_id)",
        "INSERT INTO users (login_id) VALUES ('alice@example.com')",
    ] {
        sqlx::query(statement).execute(&setup).await.unwrap();
    }
    let store = PostgresStore::connect(PostgresOptions {
        url: url.clone(),
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        transaction_pooler: false,
    })
    .await
    .unwrap();
    assert!(
        store.statements().get.contains("CAST($1 AS citext)"),
        "{}",
        store.statements().get
    );
    assert!(matches!(
        store.get_ownid_data("+15551234567").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.get_ownid_data("alice@example.com").await.unwrap(),
        None
    );
    assert_lookups_use_the_index(&store, &url).await;
}

/// SPEC §1: retryable conditions are 503, never 500. A trigger raises each SQLSTATE on update.
#[tokio::test]
async fn retryable_sqlstates_are_unavailable() {
    let url = fresh_schema(&required_url(URL_VARIABLE)).await;
    let setup = sqlx::PgPool::connect(&url).await.unwrap();
    let store = PostgresStore::connect(PostgresOptions {
        url,
        mapping: UsersMapping::demo(),
        pool: PoolSettings::default(),
        transaction_pooler: false,
    })
    .await
    .unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    store.create_user("a@example.com").await.unwrap();
    // What passes is Unavailable; a conflict with another statement is Contention, which the
    // server retries before answering 503. A statement cancelled by statement_timeout (57014) is
    // Unavailable: retrying would multiply the timeout.
    for (sqlstate, retryable) in [
        ("40001", Some(true)),
        ("40P01", Some(true)),
        ("53300", Some(false)),
        ("55P03", Some(true)),
        ("57014", Some(false)),
        ("57P01", Some(false)),
        ("08006", Some(false)),
        ("22001", None),
        ("42501", None),
    ] {
        for statement in [
            format!(
                "CREATE OR REPLACE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '{sqlstate}'; END $$"
            ),
            "DROP TRIGGER IF EXISTS fail ON users".to_owned(),
            "CREATE TRIGGER fail BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION fail()"
                .to_owned(),
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
        match (sqlstate, retryable) {
            ("22001", _) => assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}"),
            (_, Some(true)) => assert!(
                matches!(err, StoreError::Contention(_)),
                "{sqlstate}: {err:?}"
            ),
            (_, Some(false)) => assert!(
                matches!(err, StoreError::Unavailable(_)),
                "{sqlstate}: {err:?}"
            ),
            (_, None) => assert!(matches!(err, StoreError::Other(_)), "{sqlstate}: {err:?}"),
        }
    }
}
