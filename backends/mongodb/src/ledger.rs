//! The replay guard's collection on MongoDB ([`SignatureLedger`]): one document per signature,
//! `{_id: signature, expires_at, holder, lease_until, operation}`. `_id` is unique on every
//! collection, so two instances inserting one signature get one document and one duplicate-key
//! error. `operation` is the holder's [`OPERATION_BITS`], kept as a field of its own so that the
//! filters compare it without bit operators.

use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Collection, IndexModel};
use ownid_bridge_store::{
    ledger_check, Claim, Identifier, Reserve, SchemaCheck, SignatureLedger, StoreError,
    OPERATION_BITS,
};

use crate::error::{bounded, is_duplicate_key, map_err, server_code};

/// `NamespaceNotFound`: the collection does not exist.
const NAMESPACE_NOT_FOUND: i32 = 26;

pub(crate) struct MongoLedger {
    collection: Collection<Document>,
    name: Identifier,
    /// The store's statement timeout ([`bounded`]).
    timeout: Option<std::time::Duration>,
}

impl MongoLedger {
    pub(crate) fn new(
        database: &mongodb::Database,
        name: &Identifier,
        timeout: Option<std::time::Duration>,
    ) -> Self {
        MongoLedger {
            collection: database.collection(name.as_str()),
            name: name.clone(),
            timeout,
        }
    }

    fn index_name(&self) -> String {
        format!("{}_expiry", self.name)
    }
}

#[async_trait]
impl SignatureLedger for MongoLedger {
    async fn reserve(&self, reserve: &Reserve<'_>) -> Result<Claim, StoreError> {
        bounded(self.timeout, async {
            let operation = reserve.holder & OPERATION_BITS;
            // A document released or forgotten between two commands sends the loop round again.
            for _ in 0..3 {
                let entry = doc! {
                    "_id": reserve.signature,
                    "expires_at": reserve.expires_at_ms,
                    "holder": reserve.holder,
                    "lease_until": reserve.lease_until_ms,
                    "operation": operation,
                };
                match self.collection.insert_one(entry).await {
                    Ok(_) => return Ok(Claim::Reserved),
                    Err(err) if is_duplicate_key(&err) => {}
                    Err(err) => return Err(map_err(err)),
                }
                // `$lt` on a number never matches null (a used signature): BSON comparisons stay
                // within one type.
                let taken = self
                    .collection
                    .update_one(
                        doc! {
                            "_id": reserve.signature,
                            "lease_until": { "$lt": reserve.now_ms },
                            "operation": operation,
                        },
                        doc! { "$set": {
                            "holder": reserve.holder,
                            "lease_until": reserve.lease_until_ms,
                        } },
                    )
                    .await
                    .map_err(map_err)?;
                if taken.matched_count > 0 {
                    return Ok(Claim::Reserved);
                }
                let found = self
                    .collection
                    .find_one(doc! { "_id": reserve.signature })
                    .with_options(
                        mongodb::options::FindOneOptions::builder()
                            .max_time(self.timeout)
                            .build(),
                    )
                    .await
                    .map_err(map_err)?;
                let Some(found) = found else { continue };
                if found.get_i64("operation").ok() != Some(operation) {
                    return Ok(Claim::Used);
                }
                match found.get("lease_until") {
                    None | Some(Bson::Null) => return Ok(Claim::Used),
                    Some(_) => return Ok(Claim::InFlight),
                }
            }
            Ok(Claim::InFlight)
        })
        .await
    }

    async fn mark_used(&self, signature: &str, holder: i64) -> Result<bool, StoreError> {
        bounded(self.timeout, async {
            let result = self
                .collection
                .update_one(
                    doc! { "_id": signature, "holder": holder },
                    doc! { "$set": { "lease_until": Bson::Null } },
                )
                .await
                .map_err(map_err)?;
            Ok(result.matched_count > 0)
        })
        .await
    }

    async fn release(&self, signature: &str, holder: i64) -> Result<(), StoreError> {
        bounded(self.timeout, async {
            // Kept, with a lease that has passed: the document still names the operation.
            self.collection
                .update_one(
                    doc! { "_id": signature, "holder": holder, "lease_until": { "$ne": Bson::Null } },
                    doc! { "$set": { "lease_until": 0_i64 } },
                )
                .await
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn forget_expired(&self, before_ms: i64) -> Result<u64, StoreError> {
        bounded(self.timeout, async {
            let result = self
                .collection
                .delete_many(doc! { "expires_at": { "$lt": before_ms } })
                .await
                .map_err(map_err)?;
            Ok(result.deleted_count)
        })
        .await
    }

    async fn inspect(&self) -> Result<SchemaCheck, StoreError> {
        let missing = |what: &str| {
            ledger_check(
                false,
                format!(
                    "collection {} {what}; `ownid-bridge schema` creates it",
                    self.name
                ),
            )
        };
        match self.collection.list_index_names().await {
            Ok(names) if names.contains(&self.index_name()) => Ok(ledger_check(
                true,
                format!("collection {} is ready", self.name),
            )),
            Ok(_) => Ok(missing(&format!("has no index {}", self.index_name()))),
            Err(err) if server_code(&err) == Some(NAMESPACE_NOT_FOUND) => {
                Ok(missing("does not exist"))
            }
            Err(err) => Err(map_err(err)),
        }
    }

    async fn apply_schema(&self, dry_run: bool) -> Result<Vec<String>, StoreError> {
        if self.inspect().await?.ok() {
            return Ok(Vec::new());
        }
        let change = format!(
            "createIndex {} {{expires_at: 1}} named {}",
            self.name,
            self.index_name()
        );
        if dry_run {
            return Ok(vec![change]);
        }
        // `createIndexes` creates the collection too.
        let index = IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(
                mongodb::options::IndexOptions::builder()
                    .name(self.index_name())
                    .build(),
            )
            .build();
        self.collection.create_index(index).await.map_err(map_err)?;
        Ok(vec![change])
    }
}
