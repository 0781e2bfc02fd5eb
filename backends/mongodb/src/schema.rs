//! The collection and its unique login-id index: what `inspect` reports and `apply_schema`
//! creates.

use mongodb::bson::{doc, Bson, Document};
use mongodb::IndexModel;
use ownid_bridge_store::{checks, SchemaChanges, SchemaOptions, SchemaReport, StoreError};

use crate::error::{map_err, server_code, COMMAND_NOT_FOUND, DUPLICATE_KEY};
use crate::MongoStore;

/// Whether an index (a `listIndexes` entry) is unique on exactly the login-id field, applies to
/// every document, and serves the backend's plain equality lookups.
fn is_login_id_unique_index(index: &Document, login_id: &str) -> bool {
    let Ok(keys) = index.get_document("key") else {
        return false;
    };
    // 1 or -1 in any numeric type; a string here is a special index ("hashed", "text").
    let ascending_or_descending = |direction: &Bson| match *direction {
        Bson::Int32(n) => n.abs() == 1,
        Bson::Int64(n) => n.abs() == 1,
        Bson::Double(n) => n.abs() == 1.0,
        _ => false,
    };
    let single_ascending_or_descending =
        keys.len() == 1 && keys.get(login_id).is_some_and(ascending_or_descending);
    let unique = index.get_bool("unique").unwrap_or(false);
    let partial = index.contains_key("partialFilterExpression");
    let hidden = index.get_bool("hidden").unwrap_or(false);
    // An index with a non-simple collation is not used by queries without that collation, and
    // its uniqueness is not the exact comparison the store makes.
    let collated = index
        .get_document("collation")
        .is_ok_and(|collation| collation.get_str("locale").unwrap_or("") != "simple");
    single_ascending_or_descending && unique && !partial && !hidden && !collated
}

/// The collation (`locale`, strength) of a unique index on the login id whose collation is not
/// `simple` and compares at strength 1 or 2 (without case, or without case and accents).
fn loose_collation(index: &Document, login_id: &str) -> Option<String> {
    let keys = index.get_document("key").ok()?;
    let collation = index.get_document("collation").ok()?;
    let locale = collation.get_str("locale").unwrap_or("simple");
    let strength = match collation.get("strength") {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 3,
    };
    let on_login_id = keys.len() == 1 && keys.contains_key(login_id);
    let unique = index.get_bool("unique").unwrap_or(false);
    (on_login_id && unique && locale != "simple" && strength < 3)
        .then(|| format!("{{locale: {locale:?}, strength: {strength}}}"))
}

impl MongoStore {
    /// The collection's type as `listCollections` reports it (`"collection"`, `"view"`,
    /// `"timeseries"`), or `None` when there is no such collection.
    async fn collection_type(&self) -> Result<Option<String>, StoreError> {
        let listed = self
            .database
            .list_collections()
            .filter(doc! { "name": self.mapping.table.to_string() })
            .await;
        let mut cursor = match listed {
            Ok(cursor) => cursor,
            Err(err) if server_code(&err) == Some(COMMAND_NOT_FOUND) => {
                return self.collection_seems_to_exist().await;
            }
            Err(err) => return Err(map_err(err)),
        };
        while cursor.advance().await.map_err(map_err)? {
            // Read raw rather than as the driver's specification type, so that a collection
            // option the driver does not model cannot fail the check.
            let entry = cursor.current();
            if entry.get_str("name").ok() == Some(self.mapping.table.to_string().as_str()) {
                let kind = entry.get_str("type").unwrap_or("collection");
                return Ok(Some(kind.to_owned()));
            }
        }
        Ok(None)
    }

    /// For servers that implement the CRUD commands but not `listCollections` (in-memory
    /// MongoDB-compatible servers used in tests): such servers answer `listIndexes` with an `_id_`
    /// index even for a collection that does not exist, so a collection "exists" when it has
    /// another index or at least one document.
    async fn collection_seems_to_exist(&self) -> Result<Option<String>, StoreError> {
        let names = self.users.list_index_names().await.map_err(map_err)?;
        let exists = names.iter().any(|name| name != "_id_")
            || self
                .users
                .find_one(Document::new())
                .projection(doc! { "_id": 1 })
                .await
                .map_err(map_err)?
                .is_some();
        Ok(exists.then(|| "collection".to_owned()))
    }

    /// Whether an exact unique index covers the login id, and the collation of a unique index
    /// on it that compares loosely (a look-alike then holds the index entry: `Conflict`).
    async fn login_id_indexes(&self) -> Result<(bool, Option<String>), StoreError> {
        let (mut exact, mut loose) = (false, None);
        let mut cursor = self.users.list_indexes().await.map_err(map_err)?;
        while cursor.advance().await.map_err(map_err)? {
            // Read the raw entry rather than the driver's `IndexModel`, so that an index option
            // the driver does not model cannot make the whole check fail.
            let index = Document::try_from(cursor.current())
                .map_err(|err| StoreError::Other(format!("unreadable index entry: {err}")))?;
            if is_login_id_unique_index(&index, self.mapping.login_id.as_str()) {
                exact = true;
            } else if let Some(collation) = loose_collation(&index, self.mapping.login_id.as_str())
            {
                loose = Some(collation);
            }
        }
        Ok((exact, loose))
    }

    /// The report of [`UserStore::inspect`](ownid_bridge_store::UserStore::inspect).
    pub(crate) async fn inspect_collection(&self) -> Result<SchemaReport, StoreError> {
        let m = &self.mapping;
        let mut report = SchemaReport::default();
        match self.collection_type().await?.as_deref() {
            None => {
                report.fail(
                    checks::TABLE,
                    format!("collection {} does not exist", m.table),
                    Some("correct users.table".into()),
                );
                return Ok(report);
            }
            Some("view") => {
                report.fail(
                    checks::TABLE,
                    format!("{} is a view, whose documents cannot be written", m.table),
                    Some("name a collection in users.table".into()),
                );
                return Ok(report);
            }
            Some(_) => {}
        }
        report.pass(checks::TABLE, format!("collection {} exists", m.table));
        report.pass(
            checks::LOGIN_ID_COLUMN,
            format!(
                "{}: documents are schemaless, no column to check",
                m.login_id
            ),
        );
        report.pass(
            checks::OWNID_DATA_COLUMN,
            format!(
                "{}: documents are schemaless, no column to check",
                m.ownid_data
            ),
        );
        report.pass(checks::OWNID_DATA_WIDTH, "BSON strings hold up to 16 MB");
        let (unique, loose) = self.login_id_indexes().await?;
        if let Some(collation) = loose {
            report.warn_unless_creating(
                checks::LOGIN_ID_COLLATION,
                format!(
                    "a unique index on {} has the collation {collation}, which ignores case or \
                     accents: lookups still match login ids exactly (a look-alike is another \
                     user), but with create_missing_users a new login id whose look-alike holds \
                     that index is refused with 409 login_id_conflict",
                    m.login_id
                ),
                Some(format!(
                    "a unique index on {{{}: 1}} with the simple collation (the default), or \
                     leave ownid.create_missing_users off",
                    m.login_id
                )),
            );
        }
        if unique {
            report.pass(
                checks::LOGIN_ID_UNIQUE,
                format!("a unique index covers {}", m.login_id),
            );
        } else {
            report.warn_unless_creating(
                checks::LOGIN_ID_UNIQUE,
                format!(
                    "no unique, non-partial index on exactly {{{}: 1}}: concurrent \
                     create_missing_users upserts can duplicate a user, and lookups scan the \
                     collection unless another index serves them",
                    m.login_id
                ),
                Some("`ownid-bridge schema` creates it".into()),
            );
        }
        Ok(report)
    }

    /// The changes of [`UserStore::apply_schema`](ownid_bridge_store::UserStore::apply_schema).
    pub(crate) async fn apply_collection_schema(
        &self,
        options: &SchemaOptions,
    ) -> Result<SchemaChanges, StoreError> {
        let create_table = options.create_table;
        let m = &self.mapping;
        let mut changes = Vec::new();
        let creating = match self.collection_type().await?.as_deref() {
            None => true,
            Some("view") => {
                return Err(StoreError::Other(format!(
                    "{} is a view, whose documents cannot be written; name a collection",
                    m.table
                )))
            }
            Some(_) => false,
        };
        if creating {
            if !create_table {
                return Err(StoreError::Schema(format!(
                    "collection {} does not exist; `schema` creates the users collection only \
                     when told to (`ownid-bridge schema --create-table`)",
                    m.table
                )));
            }
            // No `create` command: `createIndexes` creates a missing collection with the index
            // (documented MongoDB behaviour), which also works on compatible servers that do
            // not implement `create`, and cannot race with another instance creating it.
            changes.push(format!("createCollection {}", m.table));
        }
        if creating || !self.login_id_indexes().await?.0 {
            let change = format!("createIndex {} {{{}: 1}} unique", m.table, m.login_id);
            if options.dry_run {
                changes.push(change);
                return Ok(SchemaChanges {
                    statements: changes,
                    ..SchemaChanges::default()
                });
            }
            let index = IndexModel::builder()
                .keys(doc! { m.login_id.as_str(): 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .name(format!("{}_unique", m.login_id))
                        .unique(true)
                        .build(),
                )
                .build();
            if let Err(err) = self.users.create_index(index).await {
                let hint = match server_code(&err) {
                    Some(DUPLICATE_KEY) => {
                        " (some login ids appear in more than one document: merge them first)"
                            .to_owned()
                    }
                    // IndexOptionsConflict, IndexKeySpecsConflict: an index on the same key
                    // without `unique`.
                    Some(85 | 86) => format!(
                        " (an index on {} without the unique option exists: drop it first)",
                        m.login_id
                    ),
                    _ => String::new(),
                };
                return Err(match map_err(err) {
                    StoreError::Other(detail) => {
                        StoreError::Other(format!("{change}{hint}: {detail}"))
                    }
                    other => other,
                });
            }
            changes.push(change);
        }
        Ok(SchemaChanges {
            statements: changes,
            ..SchemaChanges::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_unique_index_on_exactly_the_login_id_counts() {
        let good = [
            doc! { "key": { "login_id": 1 }, "unique": true, "name": "a" },
            doc! { "key": { "login_id": -1 }, "unique": true, "name": "b" },
            doc! { "key": { "login_id": 1.0 }, "unique": true, "name": "c" },
            doc! { "key": { "login_id": 1_i64 }, "unique": true, "collation": { "locale": "simple" } },
        ];
        for index in good {
            assert!(is_login_id_unique_index(&index, "login_id"), "{index}");
        }
        let bad = [
            doc! { "key": { "login_id": 1 }, "name": "not unique" },
            doc! { "key": { "login_id": 1 }, "unique": false },
            doc! { "key": { "login_id": 1, "tenant": 1 }, "unique": true },
            doc! { "key": { "login_id": "hashed" }, "unique": true },
            doc! { "key": { "email": 1 }, "unique": true },
            doc! { "key": { "login_id": 1 }, "unique": true,
            "partialFilterExpression": { "active": true } },
            doc! { "key": { "login_id": 1 }, "unique": true, "hidden": true },
            doc! { "key": { "login_id": 1 }, "unique": true,
            "collation": { "locale": "en", "strength": 2 } },
        ];
        for index in bad {
            assert!(!is_login_id_unique_index(&index, "login_id"), "{index}");
        }
    }
}
