//! The MongoDB backend: one collection of user documents, fields named by the mapping.
//!
//! Documents are schemaless, so the only schema this backend manages is the collection itself
//! and a unique index on the login-id field. That index is what makes lookups independent of the
//! number of users and what turns concurrent creations of one new user into one document (the
//! losers of the race get a duplicate-key error and update the winner's document instead).
//!
//! Every filter matches the login id exactly: `{login: {$eq: id, $regex: ^id\z}}`. The `$eq`
//! term uses the collection's default collation and so its index; the anchored, escaped regex
//! is not collation-aware and drops what a case- or accent-insensitive collation (strength 1 or
//! 2) would call equal (SPEC §1: a look-alike is another user).

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{doc, spec::BinarySubtype, Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use ownid_bridge_store::{
    checks, PoolSettings, SchemaReport, SessionUser, SetOutcome, StoreError, UserStore,
    UsersMapping,
};

/// A BSON document (the whole user, field names included) is limited to 16 MiB; a value of more
/// bytes than that can never be stored, so it is refused before a round trip.
const MAX_BSON_BYTES: u64 = 16 * 1024 * 1024;

/// Server codes for a document over the BSON limit: `BSONObjectTooLarge`, and the codes older
/// servers used for "resulting document after update is larger than" and "document to upsert is
/// larger than".
const TOO_LARGE_CODES: [i32; 3] = [10334, 17419, 17420];

const DUPLICATE_KEY: i32 = 11000;
const COMMAND_NOT_FOUND: i32 = 59;

/// Server codes that mean "try again shortly" (a replica-set election, a shutdown, a network
/// problem seen by the server): `HostUnreachable`, `HostNotFound`, `NetworkTimeout`,
/// `ShutdownInProgress`, `PrimarySteppedDown`, `NotWritablePrimary`, `InterruptedAtShutdown`,
/// `InterruptedDueToReplStateChange`, `NotPrimaryNoSecondaryOk`, `NotPrimaryOrSecondary`.
const TRANSIENT_CODES: [i32; 10] = [6, 7, 89, 91, 189, 10107, 11600, 11602, 13435, 13436];

#[derive(Clone, Debug)]
pub struct MongoOptions {
    /// `mongodb://host:port/database` (or `mongodb+srv://`); the database comes from the path.
    pub url: String,
    pub mapping: UsersMapping,
    pub pool: PoolSettings,
}

pub struct MongoStore {
    database: Database,
    users: Collection<Document>,
    mapping: UsersMapping,
}

/// The code of a server-side error, whether it came back as a command error or a write error.
fn server_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => Some(concern.code),
        _ => None,
    }
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    server_code(err) == Some(DUPLICATE_KEY)
}

fn map_err(err: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&err) {
        // Its message quotes the key ("dup key: { login: \"alice@...\" }"), a login id that must
        // not reach the log.
        return StoreError::Other("duplicate key error (E11000)".into());
    }
    // The kind's text, not the error's: the latter appends the raw server response. Neither
    // carries the URL's password (the driver redacts credentials from its messages).
    let message = err.kind.to_string();
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => StoreError::Unavailable(message),
        _ => match server_code(&err) {
            Some(code) if TRANSIENT_CODES.contains(&code) => StoreError::Unavailable(message),
            Some(code) if TOO_LARGE_CODES.contains(&code) => StoreError::TooLarge {
                max_chars: MAX_BSON_BYTES,
            },
            _ => StoreError::Other(message),
        },
    }
}

/// A field value as JSON for a token claim: plain JSON where the BSON type has an obvious one
/// (an ObjectId as its hex string, a date as RFC 3339, a UUID as its canonical text), relaxed
/// extended JSON otherwise.
fn to_json(value: Bson) -> serde_json::Value {
    match value {
        Bson::Null | Bson::Undefined => serde_json::Value::Null,
        Bson::String(text) => serde_json::Value::String(text),
        Bson::Boolean(flag) => serde_json::Value::Bool(flag),
        Bson::Int32(number) => number.into(),
        Bson::Int64(number) => number.into(),
        Bson::ObjectId(id) => serde_json::Value::String(id.to_hex()),
        Bson::Decimal128(number) => serde_json::Value::String(number.to_string()),
        Bson::DateTime(date) => match date.try_to_rfc3339_string() {
            Ok(text) => serde_json::Value::String(text),
            Err(_) => Bson::DateTime(date).into_relaxed_extjson(),
        },
        Bson::Binary(binary) if binary.subtype == BinarySubtype::Uuid => match binary.to_uuid() {
            Ok(uuid) => serde_json::Value::String(uuid.to_string()),
            Err(_) => Bson::Binary(binary).into_relaxed_extjson(),
        },
        Bson::Array(items) => items.into_iter().map(to_json).collect(),
        Bson::Document(fields) => fields
            .into_iter()
            .map(|(name, value)| (name, to_json(value)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.into_relaxed_extjson(),
    }
}

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
    pub async fn connect(options: MongoOptions) -> Result<Self, StoreError> {
        let mut client_options = ClientOptions::parse(&options.url).await.map_err(|err| {
            match map_err(err) {
                // Parsing is also where `mongodb+srv` names are resolved.
                StoreError::Unavailable(detail) => StoreError::Unavailable(detail),
                StoreError::Other(detail) => {
                    StoreError::Other(format!("invalid MongoDB URL: {detail}"))
                }
                other => other,
            }
        })?;
        let Some(database) = client_options.default_database.clone() else {
            return Err(StoreError::Other(
                "the MongoDB URL names no database: add it as the path, e.g. \
                 mongodb://localhost:27017/myapp"
                    .into(),
            ));
        };
        let pool = &options.pool;
        client_options.max_pool_size = Some(pool.max_connections.max(1));
        client_options.min_pool_size = Some(pool.min_connections.min(pool.max_connections.max(1)));
        client_options.connect_timeout = Some(pool.connect_timeout);
        // The driver has no pool-checkout timeout of its own that applies to an unreachable
        // server; server selection is what waits, so it gets the acquire timeout.
        client_options.server_selection_timeout = Some(pool.acquire_timeout);
        // Zero means "never close idle connections" to the driver, which is what None means here.
        client_options.max_idle_time = Some(pool.idle_timeout.unwrap_or(Duration::ZERO));
        client_options
            .app_name
            .get_or_insert_with(|| "ownid-bridge".into());
        let client = Client::with_options(client_options).map_err(map_err)?;
        let database = client.database(&database);
        let users = database.collection::<Document>(options.mapping.table.as_str());
        let store = MongoStore {
            database,
            users,
            mapping: options.mapping,
        };
        // The client connects lazily; a round trip now makes a wrong host fail at start-up.
        store.ping().await?;
        Ok(store)
    }

    fn login_filter(&self, login_id: &str) -> Document {
        doc! { self.mapping.login_id.as_str(): { "$eq": login_id, "$regex": exact_pattern(login_id) } }
    }

    /// The collection's type as `listCollections` reports it (`"collection"`, `"view"`,
    /// `"timeseries"`), or `None` when there is no such collection.
    async fn collection_type(&self) -> Result<Option<String>, StoreError> {
        let listed = self
            .database
            .list_collections()
            .filter(doc! { "name": self.mapping.table.as_str() })
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
            if entry.get_str("name").ok() == Some(self.mapping.table.as_str()) {
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

    /// Creates the user document `fields` (the login id is added), or updates exactly that
    /// user with `update` when it exists. `None` when a look-alike login id holds the unique
    /// index: that document belongs to someone else and nothing is written.
    async fn create_or_update(
        &self,
        login_id: &str,
        mut fields: Document,
        update: Document,
    ) -> Result<SetOutcome, StoreError> {
        let filter = self.login_filter(login_id);
        let updated = |result: mongodb::results::UpdateResult| result.matched_count > 0;
        if updated(
            self.users
                .update_one(filter.clone(), update.clone())
                .await
                .map_err(map_err)?,
        ) {
            return Ok(SetOutcome::Updated);
        }
        fields.insert(self.mapping.login_id.as_str(), login_id);
        match self.users.insert_one(fields).await {
            Ok(_) => Ok(SetOutcome::Created),
            // Another writer created this user since the update above, or a look-alike holds
            // the index entry: only the first can be updated.
            Err(err) if is_duplicate_key(&err) => {
                let result = self
                    .users
                    .update_one(filter, update)
                    .await
                    .map_err(map_err)?;
                if updated(result) {
                    Ok(SetOutcome::Updated)
                } else {
                    Err(StoreError::Conflict)
                }
            }
            Err(err) => Err(map_err(err)),
        }
    }
}

/// `^…\z` around the login id with every ASCII punctuation and space character escaped, so that
/// the regex matches exactly that string (PCRE: a backslash before a non-alphanumeric character
/// makes it literal).
fn exact_pattern(login_id: &str) -> String {
    let mut pattern = String::with_capacity(login_id.len() * 2 + 3);
    pattern.push('^');
    for ch in login_id.chars() {
        if ch.is_ascii() && !ch.is_ascii_alphanumeric() {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push_str("\\z");
    pattern
}

#[async_trait]
impl UserStore for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn get_ownid_data(&self, login_id: &str) -> Result<Option<String>, StoreError> {
        let field = self.mapping.ownid_data.as_str();
        let user = self
            .users
            .find_one(self.login_filter(login_id))
            .projection(doc! { field: 1 })
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        match user.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::String(value)) if value.is_empty() => Ok(None),
            Some(Bson::String(value)) => Ok(Some(value.clone())),
            Some(other) => Err(StoreError::Other(format!(
                "field {field} holds a {:?}, not a string",
                other.element_type()
            ))),
        }
    }

    async fn set_ownid_data(
        &self,
        login_id: &str,
        ownid_data: &str,
        create_missing: bool,
    ) -> Result<SetOutcome, StoreError> {
        if ownid_data.len() as u64 > MAX_BSON_BYTES {
            return Err(StoreError::TooLarge {
                max_chars: MAX_BSON_BYTES,
            });
        }
        let update = doc! { "$set": { self.mapping.ownid_data.as_str(): ownid_data } };
        if create_missing {
            let fields = doc! { self.mapping.ownid_data.as_str(): ownid_data };
            return self.create_or_update(login_id, fields, update).await;
        }
        let result = self
            .users
            .update_one(self.login_filter(login_id), update)
            .await
            .map_err(map_err)?;
        if result.matched_count == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(SetOutcome::Updated)
    }

    async fn get_session_user(&self, login_id: &str) -> Result<SessionUser, StoreError> {
        let mut projection = Document::new();
        for field in self.mapping.session_columns() {
            // A field named twice (a claim on the login id) is one projection entry.
            projection.insert(field.as_str(), 1);
        }
        let user = self
            .users
            .find_one(self.login_filter(login_id))
            .projection(projection)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let mut subject = login_id.to_owned();
        if let Some(field) = &self.mapping.user_id {
            match user.get(field.as_str()).cloned().map(to_json) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(id)) => subject = id,
                Some(other) => subject = other.to_string(),
            }
        }
        let mut claims = serde_json::Map::new();
        for (claim, field) in &self.mapping.claims {
            // Cloned, not removed: two claims may read the same field.
            let value = user.get(field.as_str()).cloned().map(to_json);
            if let Some(value) = value.filter(|value| !value.is_null()) {
                claims.insert(claim.clone(), value);
            }
        }
        Ok(SessionUser { subject, claims })
    }

    async fn create_user(&self, login_id: &str) -> Result<bool, StoreError> {
        // An update that changes nothing: it only tells whether exactly this user exists.
        let update = doc! { "$setOnInsert": { self.mapping.login_id.as_str(): login_id } };
        let outcome = self
            .create_or_update(login_id, Document::new(), update)
            .await?;
        Ok(outcome == SetOutcome::Created)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn inspect(&self) -> Result<SchemaReport, StoreError> {
        let m = &self.mapping;
        let mut report = SchemaReport::default();
        match self.collection_type().await?.as_deref() {
            None => {
                report.essential(
                    checks::TABLE,
                    false,
                    format!("collection {} does not exist", m.table),
                );
                return Ok(report);
            }
            Some("view") => {
                report.essential(
                    checks::TABLE,
                    false,
                    format!("{} is a view, whose documents cannot be written", m.table),
                );
                return Ok(report);
            }
            Some(_) => {}
        }
        report.essential(
            checks::TABLE,
            true,
            format!("collection {} exists", m.table),
        );
        report.essential(
            checks::LOGIN_ID_COLUMN,
            true,
            format!(
                "{}: documents are schemaless, no column to check",
                m.login_id
            ),
        );
        report.essential(
            checks::OWNID_DATA_COLUMN,
            true,
            format!(
                "{}: documents are schemaless, no column to check",
                m.ownid_data
            ),
        );
        report.advisory(
            checks::OWNID_DATA_WIDTH,
            true,
            "BSON strings hold up to 16 MB",
        );
        let (unique, loose) = self.login_id_indexes().await?;
        if let Some(collation) = loose {
            report.advisory(
                checks::LOGIN_ID_COLLATION,
                false,
                format!(
                    "a unique index on {} has the collation {collation}, which ignores case or \
                     accents: lookups still match login ids exactly (a look-alike is another \
                     user), but with create_missing_users a new login id whose look-alike holds \
                     that index is refused with 409 login_id_conflict",
                    m.login_id
                ),
            );
        }
        report.advisory(
            checks::LOGIN_ID_UNIQUE,
            unique,
            if unique {
                format!("a unique index covers {}", m.login_id)
            } else {
                format!(
                    "no unique, non-partial index on exactly {{{}: 1}}: concurrent \
                     create_missing_users upserts can duplicate a user, and lookups scan the \
                     collection unless another index serves them",
                    m.login_id
                )
            },
        );
        Ok(report)
    }

    async fn apply_schema(&self, create_table: bool) -> Result<Vec<String>, StoreError> {
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
                return Err(StoreError::Other(format!(
                    "collection {} does not exist (the demo collection is only created when \
                     allowed)",
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
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;

    #[test]
    fn bson_values_become_plain_json_where_they_can() {
        let id = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        assert_eq!(to_json(Bson::ObjectId(id)), "65a1b2c3d4e5f60718293a4b");
        assert_eq!(to_json(Bson::Int64(42)), 42);
        assert_eq!(to_json(Bson::Boolean(true)), true);
        assert_eq!(to_json(Bson::Null), serde_json::Value::Null);
        assert_eq!(
            to_json(Bson::Array(vec![
                Bson::String("admin".into()),
                Bson::Int32(1)
            ])),
            serde_json::json!(["admin", 1])
        );
        assert_eq!(
            to_json(Bson::Document(doc! { "org": id })),
            serde_json::json!({ "org": "65a1b2c3d4e5f60718293a4b" })
        );
        assert_eq!(
            to_json(Bson::DateTime(mongodb::bson::DateTime::from_millis(0))),
            "1970-01-01T00:00:00Z"
        );
    }

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
