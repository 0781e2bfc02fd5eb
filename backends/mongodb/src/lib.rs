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

mod error;
mod filter;
mod json;
mod ledger;
mod schema;

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use ownid_bridge_store::{
    ExportBatches, ExportSink, Identifier, PoolSettings, SchemaChanges, SchemaOptions,
    SchemaReport, SessionUser, SetOutcome, SignatureLedger, StoreError, UserStore, UsersMapping,
};

use error::{bounded, is_duplicate_key, map_err, MAX_BSON_BYTES};
use json::to_json;

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
    /// `storage.pool.statement_timeout`: `maxTimeMS` of reads, and how long any operation of the
    /// data path is waited for ([`bounded`]).
    timeout: Option<Duration>,
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
        let users = database.collection::<Document>(&options.mapping.table.to_string());
        let store = MongoStore {
            database,
            users,
            mapping: options.mapping,
            timeout: options.pool.statement_timeout,
        };
        // The client connects lazily; a round trip now makes a wrong host fail at start-up.
        store.ping().await?;
        Ok(store)
    }

    /// A lookup's options: `projection`, and the statement timeout as the server's `maxTimeMS`.
    fn read(&self, projection: Document) -> mongodb::options::FindOneOptions {
        mongodb::options::FindOneOptions::builder()
            .projection(projection)
            .max_time(self.timeout)
            .build()
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

/// The ownIdData a field holds, as get answers it: a string as it is; null, undefined and the
/// empty string as no data; any other value (an object, a number, an array that some other code
/// wrote) as its relaxed extended JSON text, never an error.
fn ownid_data_text(value: &Bson) -> Option<String> {
    match value {
        Bson::Null | Bson::Undefined => None,
        Bson::String(text) if text.is_empty() => None,
        Bson::String(text) => Some(text.clone()),
        other => Some(other.clone().into_relaxed_extjson().to_string()),
    }
}

#[async_trait]
impl UserStore for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn get_ownid_data(&self, login_id: &str) -> Result<Option<String>, StoreError> {
        bounded(self.timeout, async {
            let field = self.mapping.ownid_data.as_str();
            let user = self
                .users
                .find_one(self.login_filter(login_id))
                .with_options(self.read(doc! { field: 1 }))
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
            Ok(user.get(field).and_then(ownid_data_text))
        })
        .await
    }

    async fn set_ownid_data(
        &self,
        login_id: &str,
        ownid_data: &str,
        create_missing: bool,
    ) -> Result<SetOutcome, StoreError> {
        bounded(self.timeout, async {
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
        })
        .await
    }

    async fn get_session_user(&self, login_id: &str) -> Result<SessionUser, StoreError> {
        bounded(self.timeout, async {
            let mut projection = Document::new();
            for field in self.mapping.session_columns() {
                // A field named twice (a claim on the login id) is one projection entry.
                projection.insert(field.as_str(), 1);
            }
            let user = self
                .users
                .find_one(self.login_filter(login_id))
                .with_options(self.read(projection))
                .await
                .map_err(map_err)?
                .ok_or(StoreError::NotFound)?;
            let mut subject = login_id.to_owned();
            if let Some(field) = &self.mapping.user_id {
                match user.get(field.as_str()).cloned().map(to_json) {
                    None | Some(serde_json::Value::Null) => {
                        return Err(StoreError::no_user_id(field))
                    }
                    // An empty id is no subject either: every user with it would share one `sub`.
                    Some(serde_json::Value::String(id)) if id.trim().is_empty() => {
                        return Err(StoreError::no_user_id(field))
                    }
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
        })
        .await
    }

    async fn create_user(&self, login_id: &str) -> Result<bool, StoreError> {
        bounded(self.timeout, async {
            // An update that changes nothing: it only tells whether exactly this user exists.
            let update = doc! { "$setOnInsert": { self.mapping.login_id.as_str(): login_id } };
            let outcome = self
                .create_or_update(login_id, Document::new(), update)
                .await?;
            Ok(outcome == SetOutcome::Created)
        })
        .await
    }

    async fn export_ownid_data(
        &self,
        batch: usize,
        sink: ExportSink<'_>,
    ) -> Result<u64, StoreError> {
        let mut batches = ExportBatches::new(batch, sink);
        let (login, data) = (
            self.mapping.login_id.as_str(),
            self.mapping.ownid_data.as_str(),
        );
        // Null is skipped below rather than here: some compatible servers match a missing
        // field with `$nin: [null]`.
        let mut cursor = self
            .users
            .find(doc! { data: { "$exists": true, "$ne": "" } })
            .projection(doc! { login: 1, data: 1 })
            .batch_size(u32::try_from(batch).unwrap_or(u32::MAX))
            .await
            .map_err(map_err)?;
        while cursor.advance().await.map_err(map_err)? {
            let user = Document::try_from(cursor.current())
                .map_err(|err| StoreError::Other(format!("unreadable document: {err}")))?;
            // What get answers for the user: a non-string value some other code wrote as its
            // JSON text.
            let Some(value) = user.get(data).and_then(ownid_data_text) else {
                continue;
            };
            let Some(Bson::String(login_id)) = user.get(login) else {
                return Err(StoreError::Schema(format!(
                    "a document with ownIdData has a {login} that is not a string (_id {}): \
                     OwnID's login ids are strings, so no request can reach it; give it a \
                     string login id or remove its {data}",
                    user.get("_id").map(ToString::to_string).unwrap_or_default()
                )));
            };
            batches.push(login_id.clone(), value)?;
        }
        batches.finish()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn inspect(&self) -> Result<SchemaReport, StoreError> {
        self.inspect_collection().await
    }

    async fn apply_schema(&self, options: &SchemaOptions) -> Result<SchemaChanges, StoreError> {
        self.apply_collection_schema(options).await
    }

    fn signature_ledger(&self, table: &Identifier) -> Option<std::sync::Arc<dyn SignatureLedger>> {
        Some(std::sync::Arc::new(ledger::MongoLedger::new(
            &self.database,
            table,
            self.timeout,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_stored_value_is_answered_never_an_error() {
        assert_eq!(
            ownid_data_text(&Bson::String("abc".into())).as_deref(),
            Some("abc")
        );
        assert_eq!(ownid_data_text(&Bson::String(String::new())), None);
        assert_eq!(ownid_data_text(&Bson::Null), None);
        assert_eq!(ownid_data_text(&Bson::Undefined), None);
        assert_eq!(ownid_data_text(&Bson::Int32(12)).as_deref(), Some("12"));
        assert_eq!(
            ownid_data_text(&Bson::Document(doc! { "a": [1, "x"], "b": true })).as_deref(),
            Some(r#"{"a":[1,"x"],"b":true}"#)
        );
        let id = mongodb::bson::oid::ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        assert_eq!(
            ownid_data_text(&Bson::ObjectId(id)).as_deref(),
            Some(r#"{"$oid":"65a1b2c3d4e5f60718293a4b"}"#)
        );
    }
}
