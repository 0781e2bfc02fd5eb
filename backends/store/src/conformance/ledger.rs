//! The replay guard's table ([`SignatureLedger`]) on every backend: its schema, the states of a
//! signature (in flight, used, released, taken over after its lease), the operation it is bound
//! to, expiry, and one winner when many reserve one signature at once.

use std::sync::Arc;

use super::{fresh, StoreFactory};
use crate::{
    Claim, Identifier, Reserve, SignatureLedger, StoreError, UsersMapping, DEFAULT_LEDGER_TABLE,
    OPERATION_BITS,
};

const NOW: i64 = 1_700_000_000_000;

/// The `n`th holder of a reservation for operation 1 (the low bits name the operation).
fn holder(n: i64) -> i64 {
    (n << 2) | 1
}

/// The `n`th holder of a reservation for operation `operation`.
fn holder_for(operation: i64, n: i64) -> i64 {
    (n << 2) | (operation & OPERATION_BITS)
}

fn signature(n: u32) -> String {
    format!("{n:064x}")
}

fn entry(signature: &str, holder: i64) -> Reserve<'_> {
    Reserve {
        signature,
        expires_at_ms: NOW + 60_000,
        holder,
        lease_until_ms: NOW + 10_000,
        now_ms: NOW,
    }
}

/// A store with its users table and the ledger's, both created by `apply_schema`.
async fn ledger(factory: &dyn StoreFactory) -> Arc<dyn SignatureLedger> {
    let store = fresh(factory, UsersMapping::demo()).await;
    let table = Identifier::new(DEFAULT_LEDGER_TABLE).unwrap();
    let ledger = store
        .signature_ledger(&table)
        .expect("every backend keeps a replay guard table");
    ledger.apply_schema(false).await.expect("create the ledger");
    ledger
}

/// Reserves as the server does: contention (SQLite's busy database, a Galera conflict) is
/// tried again.
async fn reserve(ledger: &dyn SignatureLedger, reserve: &Reserve<'_>) -> Claim {
    loop {
        match ledger.reserve(reserve).await {
            Err(StoreError::Contention(_)) => tokio::task::yield_now().await,
            claim => return claim.expect("reserve"),
        }
    }
}

pub async fn ledger_schema_is_created_and_idempotent(factory: &dyn StoreFactory) {
    let store = fresh(factory, UsersMapping::demo()).await;
    let table = Identifier::new(DEFAULT_LEDGER_TABLE).unwrap();
    let ledger = store.signature_ledger(&table).expect("a ledger");
    let before = ledger.inspect().await.expect("inspect a missing ledger");
    assert!(!before.ok(), "a missing ledger passes check: {before:?}");
    let changes = ledger.apply_schema(false).await.expect("create the ledger");
    assert!(!changes.is_empty(), "creating the ledger changed nothing");
    let after = ledger.inspect().await.expect("inspect the ledger");
    assert!(after.ok(), "the ledger fails check after schema: {after:?}");
    let again = ledger
        .apply_schema(false)
        .await
        .expect("apply_schema twice");
    assert!(again.is_empty(), "a second apply_schema changed {again:?}");
}

pub async fn ledger_accepts_a_signature_once(factory: &dyn StoreFactory) {
    let ledger = ledger(factory).await;
    let sig = signature(1);
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(1))).await,
        Claim::Reserved
    );
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(2))).await,
        Claim::InFlight,
        "a signature being answered was reserved twice"
    );
    assert!(ledger.mark_used(&sig, holder(1)).await.unwrap());
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(3))).await,
        Claim::Used
    );
    // A used signature is not released, and its lease is gone: never taken over.
    ledger.release(&sig, holder(1)).await.unwrap();
    let later = Reserve {
        now_ms: NOW + 50_000,
        ..entry(&sig, holder(4))
    };
    assert_eq!(reserve(&*ledger, &later).await, Claim::Used);
}

pub async fn ledger_releases_only_its_holders_reservation(factory: &dyn StoreFactory) {
    let ledger = ledger(factory).await;
    let sig = signature(2);
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(1))).await,
        Claim::Reserved
    );
    ledger.release(&sig, holder(2)).await.unwrap();
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(3))).await,
        Claim::InFlight
    );
    ledger.release(&sig, holder(1)).await.unwrap();
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(3))).await,
        Claim::Reserved,
        "a released signature could not be reserved again"
    );
    assert!(!ledger.mark_used(&sig, holder(1)).await.unwrap());
    assert!(ledger.mark_used(&sig, holder(3)).await.unwrap());
}

pub async fn ledger_lease_passes_to_the_next_request(factory: &dyn StoreFactory) {
    let ledger = ledger(factory).await;
    let sig = signature(3);
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(1))).await,
        Claim::Reserved
    );
    let after_lease = Reserve {
        now_ms: NOW + 10_001,
        lease_until_ms: NOW + 20_001,
        ..entry(&sig, holder(2))
    };
    assert_eq!(reserve(&*ledger, &after_lease).await, Claim::Reserved);
    assert!(
        !ledger.mark_used(&sig, holder(1)).await.unwrap(),
        "the holder whose lease passed still marked the signature used"
    );
    assert!(ledger.mark_used(&sig, holder(2)).await.unwrap());
    assert_eq!(reserve(&*ledger, &after_lease).await, Claim::Used);
}

pub async fn ledger_forgets_expired_signatures(factory: &dyn StoreFactory) {
    let ledger = ledger(factory).await;
    let (old, young) = (signature(4), signature(5));
    let expiring = |signature, expires_at_ms| Reserve {
        expires_at_ms,
        ..entry(signature, holder(1))
    };
    assert_eq!(
        reserve(&*ledger, &expiring(&old, NOW - 1)).await,
        Claim::Reserved
    );
    assert_eq!(
        reserve(&*ledger, &expiring(&young, NOW + 1)).await,
        Claim::Reserved
    );
    ledger.mark_used(&old, holder(1)).await.unwrap();
    ledger.mark_used(&young, holder(1)).await.unwrap();
    assert_eq!(ledger.forget_expired(NOW).await.unwrap(), 1);
    assert_eq!(
        reserve(&*ledger, &entry(&old, holder(2))).await,
        Claim::Reserved
    );
    assert_eq!(
        reserve(&*ledger, &entry(&young, holder(2))).await,
        Claim::Used
    );
}

pub async fn concurrent_reservations_of_one_signature_have_one_winner(factory: &dyn StoreFactory) {
    let ledger = ledger(factory).await;
    for round in 0..5 {
        let sig = signature(100 + round);
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let (ledger, sig) = (ledger.clone(), sig.clone());
                tokio::spawn(async move { reserve(&*ledger, &entry(&sig, holder_for(n, n))).await })
            })
            .collect();
        let mut reserved = 0;
        for task in tasks {
            if task.await.unwrap() == Claim::Reserved {
                reserved += 1;
            }
        }
        assert_eq!(
            reserved, 1,
            "round {round}: {reserved} of 16 reserved one signature"
        );
    }
}

pub async fn ledger_binds_a_signature_to_its_operation(factory: &dyn StoreFactory) {
    let ledger = ledger(factory).await;
    let sig = signature(6);
    let other = |n| holder_for(2, n);
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(1))).await,
        Claim::Reserved
    );
    assert_eq!(
        reserve(&*ledger, &entry(&sig, other(2))).await,
        Claim::Used,
        "a signature in flight for one operation was not refused for another"
    );
    // Released (a 5xx), it is the same operation's to retry, and nobody else's.
    ledger.release(&sig, holder(1)).await.unwrap();
    assert_eq!(
        reserve(&*ledger, &entry(&sig, other(3))).await,
        Claim::Used,
        "a released signature was reserved for another operation"
    );
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(4))).await,
        Claim::Reserved
    );
    assert!(ledger.mark_used(&sig, holder(4)).await.unwrap());
    // Nor does a lease that passed hand it to another operation.
    let sig = signature(7);
    assert_eq!(
        reserve(&*ledger, &entry(&sig, holder(1))).await,
        Claim::Reserved
    );
    let after_lease = |by| Reserve {
        now_ms: NOW + 10_001,
        lease_until_ms: NOW + 20_001,
        ..entry(&sig, by)
    };
    assert_eq!(reserve(&*ledger, &after_lease(other(2))).await, Claim::Used);
    assert_eq!(
        reserve(&*ledger, &after_lease(holder(3))).await,
        Claim::Reserved
    );
}
