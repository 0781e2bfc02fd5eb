//! One behaviour suite every backend runs unchanged (in its own `tests/`), so that "works on
//! SQLite" and "works on PostgreSQL" mean the same thing.
//!
//! The backend supplies a factory that opens a store on an empty database (or an empty table
//! namespace) for a given mapping. The suite creates the table through `apply_schema`, so it also
//! proves that the schema command produces a table the store can use.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

mod export;
mod ledger;

pub use export::*;
pub use ledger::*;

use crate::{Identifier, SchemaOptions, SetOutcome, StoreError, UserStore, UsersMapping};

pub type StoreFuture = Pin<Box<dyn Future<Output = Arc<dyn UserStore>> + Send>>;

/// Opens a store over an empty database for the mapping. Called once per case.
pub trait StoreFactory: Send + Sync {
    fn open(&self, mapping: UsersMapping) -> StoreFuture;
}

impl<F> StoreFactory for F
where
    F: Fn(UsersMapping) -> StoreFuture + Send + Sync,
{
    fn open(&self, mapping: UsersMapping) -> StoreFuture {
        self(mapping)
    }
}

/// Runs every case; panics with the case's name on the first failure.
pub async fn run_all(factory: &dyn StoreFactory) {
    schema_is_created_and_idempotent(factory).await;
    missing_user_is_not_found(factory).await;
    user_without_data_has_none(factory).await;
    values_round_trip_byte_for_byte(factory).await;
    set_overwrites(factory).await;
    empty_value_counts_as_no_data(factory).await;
    create_missing_users_upserts(factory).await;
    create_user_reports_existing(factory).await;
    session_user_defaults_to_login_id(factory).await;
    quoted_custom_names_work(factory).await;
    concurrent_sets_on_distinct_users_all_persist(factory).await;
    concurrent_sets_on_one_user_leave_one_written_value(factory).await;
    concurrent_upserts_of_one_new_user_create_it_once(factory).await;
    export_hands_over_every_user_with_data_in_batches(factory).await;
    ledger_schema_is_created_and_idempotent(factory).await;
    ledger_accepts_a_signature_once(factory).await;
    ledger_releases_only_its_holders_reservation(factory).await;
    ledger_lease_passes_to_the_next_request(factory).await;
    ledger_forgets_expired_signatures(factory).await;
    ledger_binds_a_signature_to_its_operation(factory).await;
    concurrent_reservations_of_one_signature_have_one_winner(factory).await;
}

async fn fresh(factory: &dyn StoreFactory, mapping: UsersMapping) -> Arc<dyn UserStore> {
    let store = factory.open(mapping).await;
    store
        .apply_schema(&SchemaOptions::CREATE_TABLE)
        .await
        .expect("apply_schema on an empty database");
    store
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::NotFound))
}

pub async fn schema_is_created_and_idempotent(factory: &dyn StoreFactory) {
    let store = factory.open(UsersMapping::demo()).await;
    let before = store.inspect().await.expect("inspect an empty database");
    assert!(
        !before.is_ok(),
        "an empty database must fail check:\n{before}"
    );
    let changes = store
        .apply_schema(&SchemaOptions::CREATE_TABLE)
        .await
        .expect("apply_schema");
    assert!(
        !changes.is_empty(),
        "apply_schema on an empty database changed nothing"
    );
    let after = store.inspect().await.expect("inspect after schema");
    assert!(after.is_ok(), "check fails after schema:\n{after}");
    let again = store
        .apply_schema(&SchemaOptions::CREATE_TABLE)
        .await
        .expect("apply_schema twice");
    assert!(again.is_empty(), "a second apply_schema changed {again:?}");
    store.ping().await.expect("ping");
}

pub async fn missing_user_is_not_found(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    assert!(is_not_found(
        store.get_ownid_data("nobody@example.com").await
    ));
    assert!(is_not_found(
        store
            .set_ownid_data("nobody@example.com", "data", false)
            .await
    ));
    assert!(is_not_found(
        store.get_session_user("nobody@example.com").await
    ));
    // A refused set must not have created the user as a side effect.
    assert!(is_not_found(
        store.get_ownid_data("nobody@example.com").await
    ));
}

pub async fn user_without_data_has_none(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    assert!(store.create_user("alice@example.com").await.unwrap());
    assert_eq!(
        store.get_ownid_data("alice@example.com").await.unwrap(),
        None
    );
}

pub async fn values_round_trip_byte_for_byte(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    let five_kb: String = (0..5 * 1024)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    let values = [
        "ownid==abc".to_string(),
        "ünïcödé 日本語 😀🔐 \u{10FFFF} \"quotes\" 'single' \\ back".to_string(),
        "  leading and trailing spaces  \n\t".to_string(),
        five_kb,
    ];
    for (i, value) in values.iter().enumerate() {
        let login = format!("user{i}@example.com");
        store.create_user(&login).await.unwrap();
        store.set_ownid_data(&login, value, false).await.unwrap();
        let stored = store.get_ownid_data(&login).await.unwrap();
        assert_eq!(stored.as_deref(), Some(value.as_str()), "value {i} changed");
    }
    // Login ids are compared exactly: case and unicode are not folded by the store.
    store.create_user("Ünï@Example.com").await.unwrap();
    store
        .set_ownid_data("Ünï@Example.com", "upper", false)
        .await
        .unwrap();
    assert!(is_not_found(store.get_ownid_data("ünï@example.com").await));
}

pub async fn set_overwrites(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    store.create_user("bob@example.com").await.unwrap();
    store.create_user("carol@example.com").await.unwrap();
    store
        .set_ownid_data("bob@example.com", "first", false)
        .await
        .unwrap();
    let outcome = store
        .set_ownid_data("bob@example.com", "second", false)
        .await
        .unwrap();
    assert_eq!(outcome, SetOutcome::Updated);
    assert_eq!(
        store.get_ownid_data("bob@example.com").await.unwrap(),
        Some("second".into())
    );
    // The neighbour is untouched.
    assert_eq!(
        store.get_ownid_data("carol@example.com").await.unwrap(),
        None
    );
}

pub async fn empty_value_counts_as_no_data(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    store.create_user("dan@example.com").await.unwrap();
    store
        .set_ownid_data("dan@example.com", "something", false)
        .await
        .unwrap();
    store
        .set_ownid_data("dan@example.com", "", false)
        .await
        .unwrap();
    assert_eq!(store.get_ownid_data("dan@example.com").await.unwrap(), None);
}

pub async fn create_missing_users_upserts(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    let first = store
        .set_ownid_data("new@example.com", "v1", true)
        .await
        .unwrap();
    assert_eq!(first, SetOutcome::Created);
    let second = store
        .set_ownid_data("new@example.com", "v2", true)
        .await
        .unwrap();
    assert_eq!(second, SetOutcome::Updated);
    assert_eq!(
        store.get_ownid_data("new@example.com").await.unwrap(),
        Some("v2".into())
    );
    assert!(!store.create_user("new@example.com").await.unwrap());
}

pub async fn create_user_reports_existing(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    assert!(store.create_user("erin@example.com").await.unwrap());
    assert!(!store.create_user("erin@example.com").await.unwrap());
}

pub async fn session_user_defaults_to_login_id(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    store.create_user("frank@example.com").await.unwrap();
    let user = store.get_session_user("frank@example.com").await.unwrap();
    assert_eq!(user.subject, "frank@example.com");
    assert!(user.claims.is_empty());
}

pub async fn quoted_custom_names_work(factory: &dyn StoreFactory) {
    let mapping = UsersMapping {
        table: Identifier::new("Order").unwrap().into(),
        login_id: Identifier::new("order").unwrap(),
        ownid_data: Identifier::new("OwnIdData").unwrap(),
        user_id: None,
        claims: Vec::new(),
    };
    let store = fresh(factory, mapping).await;
    let report = store.inspect().await.unwrap().settle(true);
    assert!(report.is_ok(), "check fails on quoted names:\n{report}");
    store.create_user("grace@example.com").await.unwrap();
    store
        .set_ownid_data("grace@example.com", "quoted", false)
        .await
        .unwrap();
    assert_eq!(
        store.get_ownid_data("grace@example.com").await.unwrap(),
        Some("quoted".into())
    );
}

/// Each `(login id, value)` set in a task of its own, all at once; their outcomes in order.
async fn set_concurrently(
    store: &Arc<dyn UserStore>,
    sets: impl Iterator<Item = (String, String)>,
    create_missing: bool,
) -> Vec<Result<SetOutcome, StoreError>> {
    let tasks: Vec<_> = sets
        .map(|(login_id, value)| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_ownid_data(&login_id, &value, create_missing)
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a set task panicked"));
    }
    outcomes
}

pub async fn concurrent_sets_on_distinct_users_all_persist(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    for i in 0..100 {
        store
            .create_user(&format!("many{i}@example.com"))
            .await
            .unwrap();
    }
    let sets = (0..100).map(|i| (format!("many{i}@example.com"), format!("value-{i}")));
    for outcome in set_concurrently(&store, sets, false).await {
        outcome.expect("concurrent set");
    }
    for i in 0..100 {
        assert_eq!(
            store
                .get_ownid_data(&format!("many{i}@example.com"))
                .await
                .unwrap(),
            Some(format!("value-{i}")),
            "user {i} lost its write"
        );
    }
}

pub async fn concurrent_sets_on_one_user_leave_one_written_value(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    store.create_user("busy@example.com").await.unwrap();
    let written: HashSet<String> = (0..50).map(|i| format!("device-{i}")).collect();
    let sets = written
        .iter()
        .map(|value| ("busy@example.com".to_owned(), value.clone()));
    for outcome in set_concurrently(&store, sets, false).await {
        outcome.expect("concurrent set on one user");
    }
    let stored = store
        .get_ownid_data("busy@example.com")
        .await
        .unwrap()
        .expect("a value after 50 sets");
    assert!(
        written.contains(&stored),
        "stored {stored:?} was never written"
    );
}

pub async fn concurrent_upserts_of_one_new_user_create_it_once(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    let written: HashSet<String> = (0..20).map(|i| format!("first-device-{i}")).collect();
    let sets = written
        .iter()
        .map(|value| ("fresh@example.com".to_owned(), value.clone()));
    let mut created = 0;
    for outcome in set_concurrently(&store, sets, true).await {
        if outcome.expect("concurrent upsert") == SetOutcome::Created {
            created += 1;
        }
    }
    assert!(created >= 1, "no upsert reported creating the user");
    assert!(
        !store.create_user("fresh@example.com").await.unwrap(),
        "the user is missing"
    );
    let stored = store
        .get_ownid_data("fresh@example.com")
        .await
        .unwrap()
        .expect("a value after 20 upserts");
    assert!(
        written.contains(&stored),
        "stored {stored:?} was never written"
    );
}

/// The mapping of the look-alike cases: `users` with `id` as the token subject and a `role`
/// claim, so that a session handed to a look-alike would show whose row it came from.
pub fn look_alike_mapping() -> UsersMapping {
    UsersMapping {
        user_id: Some(Identifier::new("id").unwrap()),
        claims: vec![("role".into(), Identifier::new("role").unwrap())],
        ..UsersMapping::demo()
    }
}

/// The login id the look-alike cases store, and ids a case- or accent-insensitive collation, a
/// `PAD SPACE` rule or `citext` treats as equal to it.
pub const ALICE: &str = "alice@example.com";
pub const LOOK_ALIKES: [&str; 4] = [
    "ALICE@example.com",
    "alice@exámple.com",
    "alice@example.com ",
    "Alice@Example.COM",
];

/// SPEC §1: a row belongs to a request only when its login id equals the requested one byte
/// for byte. `store` is open on a table (made by the backend's test) whose login-id column or
/// index compares without case, accents or trailing spaces, with a unique index on it, and one
/// row: login id [`ALICE`], `id` `alice_id`, `role` `admin`. `check` must flag the collation.
/// Every look-alike must be another
/// user: not found on get, set and session; `create_missing_users` either refuses it
/// (`Conflict`, when the index holds Alice's entry) or creates a separate user; nothing of
/// Alice's changes.
pub async fn look_alikes_are_other_users(store: &dyn UserStore, alice_id: &str) {
    // A warning without create_missing_users (lookups are exact), a failure with it.
    let report = store.inspect().await.expect("inspect");
    for creating in [false, true] {
        let report = report.clone().settle(creating);
        let loose = report
            .checks
            .iter()
            .find(|check| check.name == crate::checks::LOGIN_ID_COLLATION);
        assert!(
            loose.is_some_and(|check| check.ok() != creating
                && check.level != crate::Level::Ok
                && check.detail.contains("login_id_conflict")),
            "check must explain the loose collation and the 409 it leads to:\n{report}"
        );
    }
    store
        .set_ownid_data(ALICE, "alice-data", false)
        .await
        .expect("Alice exists");
    let alice = store.get_session_user(ALICE).await.unwrap();
    assert_eq!(alice.subject, alice_id);
    assert_eq!(alice.claims.get("role"), Some(&"admin".into()));
    for look_alike in LOOK_ALIKES {
        let got = store.get_ownid_data(look_alike).await;
        assert!(is_not_found(got), "get {look_alike:?} reached another row");
        let set = store.set_ownid_data(look_alike, "attacker", false).await;
        assert!(is_not_found(set), "set {look_alike:?} reached another row");
        let session = store.get_session_user(look_alike).await;
        assert!(
            is_not_found(session),
            "session for {look_alike:?} came from another row"
        );
        match store.set_ownid_data(look_alike, "attacker", true).await {
            Err(StoreError::Conflict) => {
                assert!(is_not_found(store.get_ownid_data(look_alike).await));
            }
            Ok(SetOutcome::Created) => {
                // A separate user (the index does not call the two equal): its own row.
                assert_eq!(
                    store.get_ownid_data(look_alike).await.unwrap(),
                    Some("attacker".into())
                );
                match store.get_session_user(look_alike).await {
                    Ok(user) => {
                        assert_ne!(user.subject, alice_id, "{look_alike:?} got Alice's id");
                        assert_eq!(user.claims.get("role"), None);
                    }
                    // Created without an id (no column default): no subject at all (SPEC §3).
                    Err(StoreError::Other(detail)) if detail.contains("users.user_id") => {}
                    Err(err) => panic!("session for {look_alike:?}: {err:?}"),
                }
            }
            other => panic!("create_missing_users for {look_alike:?}: {other:?}"),
        }
        match store.create_user(look_alike).await {
            Err(StoreError::Conflict) | Ok(_) => {}
            Err(err) => panic!("create_user {look_alike:?}: {err:?}"),
        }
        assert_eq!(
            store.get_ownid_data(ALICE).await.unwrap(),
            Some("alice-data".into()),
            "{look_alike:?} overwrote Alice's data"
        );
    }
    let alice = store.get_session_user(ALICE).await.unwrap();
    assert_eq!(alice.subject, alice_id);
    assert_eq!(alice.claims.get("role"), Some(&"admin".into()));
}
