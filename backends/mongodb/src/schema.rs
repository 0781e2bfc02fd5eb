//! The collection and its unique login-id index: what `inspect` reports and `apply_schema`
//! creates.
//!
//! Documents are schemaless, but a collection can still refuse what the store writes: a
//! `$jsonSchema` validator whose property for the ownIdData or login-id field does not admit a
//! string, and its default collation, which the unique index inherits. Both are read raw from
//! `listCollections` (servers without that command, such as the in-memory ones used in tests,
//! have neither).

use mongodb::bson::{doc, Bson, Document};
use mongodb::IndexModel;
use ownid_bridge_store::{
    checks, closest, did_you_mean, SchemaChanges, SchemaOptions, SchemaReport, StoreError,
    UsersMapping, MIN_OWNID_DATA_CHARS,
};

use crate::error::{map_err, server_code, COMMAND_NOT_FOUND, DUPLICATE_KEY};
use crate::MongoStore;

/// The line about the collection's validator as a whole (required fields that created users
/// lack, query operators that are not read).
pub const VALIDATOR_CHECK: &str = "collection validator";

/// How many look-alike or duplicate login ids an error names.
const NAMED_DUPLICATES: usize = 20;

/// A collation as a comparable value: `None` is the simple (binary) collation, which MongoDB
/// also reports as an absent `collation` or `{locale: "simple"}`.
fn collation_of(holder: &Document) -> Option<Document> {
    holder
        .get_document("collation")
        .ok()
        .filter(|collation| collation.get_str("locale").unwrap_or("simple") != "simple")
        .cloned()
}

fn number(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

/// `{locale: "en", strength: 2}` for a collation that compares at strength 1 or 2 (without
/// case, or without case and accents); `None` for the simple one and strength 3 or more.
fn loose(collation: Option<&Document>) -> Option<String> {
    let collation = collation?;
    let locale = collation.get_str("locale").unwrap_or("simple");
    let strength = number(collation.get("strength")).unwrap_or(3);
    (locale != "simple" && strength < 3)
        .then(|| format!("{{locale: {locale:?}, strength: {strength}}}"))
}

/// Whether `keys` is exactly `{login_id: 1}` or `{login_id: -1}` (in any numeric type; a string
/// there is a special index such as "hashed" or "text").
fn single_key_on(index: &Document, login_id: &str) -> bool {
    let Ok(keys) = index.get_document("key") else {
        return false;
    };
    keys.len() == 1 && number(keys.get(login_id)).is_some_and(|n| n.abs() == 1)
}

/// Whether an index (a `listIndexes` entry) is unique on exactly the login-id field, applies to
/// every document, and serves the backend's plain equality lookups: its collation is the
/// collection's default (`collection_collation`, `None` for simple), which queries without a
/// collation of their own use.
fn is_login_id_unique_index(
    index: &Document,
    login_id: &str,
    collection_collation: Option<&Document>,
) -> bool {
    let unique = index.get_bool("unique").unwrap_or(false);
    let partial = index.contains_key("partialFilterExpression");
    let hidden = index.get_bool("hidden").unwrap_or(false);
    let same_collation = collation_of(index).as_ref() == collection_collation;
    single_key_on(index, login_id) && unique && !partial && !hidden && same_collation
}

/// The collation of a unique index on the login id that compares loosely, as `loose` spells it.
fn loose_collation(index: &Document, login_id: &str) -> Option<String> {
    let keys = index.get_document("key").ok()?;
    let on_login_id = keys.len() == 1 && keys.contains_key(login_id);
    let unique = index.get_bool("unique").unwrap_or(false);
    if !(on_login_id && unique) {
        return None;
    }
    loose(collation_of(index).as_ref())
}

/// A value as mongosh reads it (relaxed extended JSON).
fn shell(value: impl Into<Bson>) -> String {
    value.into().into_relaxed_extjson().to_string()
}

/// `db.getCollection("users")`.
fn shell_collection(name: &str) -> String {
    format!("db.getCollection({})", shell(name))
}

/// The command `schema` runs: the unique index on the login id, named `<login_id>_unique`,
/// with the collection's default collation (the one lookups use).
fn create_index_command(collection: &str, login_id: &str) -> String {
    format!(
        "{}.createIndex({}, {})",
        shell_collection(collection),
        shell(doc! { login_id: 1 }),
        shell(doc! { "unique": true, "name": index_name(login_id) })
    )
}

fn index_name(login_id: &str) -> String {
    format!("{login_id}_unique")
}

/// Why a `$jsonSchema` property refuses OwnID's string (`what the schema says`), if it does:
/// `bsonType`/`type` without "string", an `enum`, a `maxLength` under `min_length`.
fn refusal(property: &Document, min_length: Option<u64>) -> Option<String> {
    let admits_string = |value: &Bson| match value {
        Bson::String(kind) => kind == "string",
        Bson::Array(kinds) => kinds
            .iter()
            .any(|kind| matches!(kind, Bson::String(kind) if kind == "string")),
        _ => true,
    };
    for key in ["bsonType", "type"] {
        if let Some(value) = property.get(key).filter(|value| !admits_string(value)) {
            return Some(format!("{key}: {}", shell(value.clone())));
        }
    }
    if let Some(values) = property.get("enum") {
        return Some(format!("enum: {}", shell(values.clone())));
    }
    let max = number(property.get("maxLength"));
    if let (Some(max), Some(min)) = (max, min_length) {
        if max < min as i64 {
            return Some(format!("maxLength: {max}"));
        }
    }
    None
}

/// `property` changed so that it admits OwnID's string: "string" added to `bsonType`/`type`,
/// `enum` removed, a short `maxLength` removed.
fn admitting(property: &Document, min_length: Option<u64>) -> Document {
    let mut fixed = property.clone();
    for key in ["bsonType", "type"] {
        match fixed.get(key).cloned() {
            Some(Bson::String(kind)) if kind != "string" => {
                fixed.insert(key, vec![Bson::String(kind), "string".into()]);
            }
            Some(Bson::Array(mut kinds))
                if !kinds
                    .iter()
                    .any(|k| matches!(k, Bson::String(k) if k == "string")) =>
            {
                kinds.push("string".into());
                fixed.insert(key, kinds);
            }
            _ => {}
        }
    }
    fixed.remove("enum");
    if let (Some(max), Some(min)) = (number(fixed.get("maxLength")), min_length) {
        if max < min as i64 {
            fixed.remove("maxLength");
        }
    }
    fixed
}

/// What the collection's validator does to one field the store writes.
#[derive(Debug, PartialEq)]
struct Refusal {
    field: String,
    /// What the schema says: `bsonType: "int"`, `additionalProperties: false without it`.
    says: String,
    /// The refusal is about the length (`maxLength`), not the type.
    length: bool,
}

/// The collection's validator as the store meets it.
#[derive(Debug, Default, PartialEq)]
struct ValidatorReading {
    refusals: Vec<Refusal>,
    /// Fields `required` other than the login id and ownIdData: a document that
    /// `create_missing_users` inserts lacks them.
    required: Vec<String>,
    /// Top-level query operators next to (or instead of) `$jsonSchema`, which are not read.
    unread: Vec<String>,
    /// The validator with every refusal fixed, for `collMod`.
    fixed: Option<Document>,
    /// Writes are refused (not `validationAction: "warn"` or `validationLevel: "off"`).
    enforced: bool,
}

/// Reads `options.validator` (a `listCollections` entry's options) for the login-id and
/// ownIdData fields.
fn read_validator(options: &Document, login_id: &str, ownid_data: &str) -> ValidatorReading {
    let Ok(validator) = options.get_document("validator") else {
        return ValidatorReading::default();
    };
    let enforced = options.get_str("validationAction").unwrap_or("error") != "warn"
        && options.get_str("validationLevel").unwrap_or("strict") != "off";
    let mut reading = ValidatorReading {
        enforced,
        ..ValidatorReading::default()
    };
    reading.unread = validator
        .keys()
        .filter(|key| key.as_str() != "$jsonSchema")
        .cloned()
        .collect();
    let Ok(schema) = validator.get_document("$jsonSchema") else {
        return reading;
    };
    let mut fixed_schema = schema.clone();
    let properties = schema.get_document("properties").ok();
    let closed = schema.get_bool("additionalProperties") == Ok(false);
    let fields = [
        (ownid_data, Some(MIN_OWNID_DATA_CHARS)),
        (login_id, None::<u64>),
    ];
    let mut fixed_properties = properties.cloned().unwrap_or_default();
    for (field, min_length) in fields {
        match properties.and_then(|p| p.get_document(field).ok()) {
            Some(property) => {
                if let Some(says) = refusal(property, min_length) {
                    reading.refusals.push(Refusal {
                        field: field.to_owned(),
                        length: says.starts_with("maxLength"),
                        says,
                    });
                    fixed_properties.insert(field, admitting(property, min_length));
                }
            }
            None if closed => {
                reading.refusals.push(Refusal {
                    field: field.to_owned(),
                    says: "additionalProperties: false, and no property for it".into(),
                    length: false,
                });
                fixed_properties.insert(field, doc! { "bsonType": "string" });
            }
            None => {}
        }
    }
    if let Ok(required) = schema.get_array("required") {
        reading.required = required
            .iter()
            .filter_map(|name| name.as_str())
            .filter(|name| *name != login_id && *name != ownid_data && *name != "_id")
            .map(str::to_owned)
            .collect();
    }
    if !reading.refusals.is_empty() {
        fixed_schema.insert("properties", fixed_properties);
        let mut fixed = validator.clone();
        fixed.insert("$jsonSchema", fixed_schema);
        reading.fixed = Some(fixed);
    }
    reading
}

/// "collection customer does not exist; did you mean `customers`? (the database has: ...)";
/// `names` is `None` where the server cannot list its collections.
fn missing_message(wanted: &str, names: Option<&[String]>) -> String {
    match names {
        Some(names) => format!(
            "collection {wanted} does not exist{}",
            did_you_mean(wanted, names.iter().map(String::as_str), "the database has")
        ),
        None => format!(
            "collection {wanted} does not exist (it has no documents and no index but `_id_`; \
             this server does not list its collections)"
        ),
    }
}

/// The lines about the fields the store writes, as the collection's validator treats them.
fn report_validator(report: &mut SchemaReport, m: &UsersMapping, options: &Document) {
    let name = m.table.to_string();
    let reading = read_validator(options, m.login_id.as_str(), m.ownid_data.as_str());
    let validated = options.contains_key("validator");
    let fix = reading.fixed.as_ref().map(|fixed| {
        format!(
            "db.runCommand({{\"collMod\": {}, \"validator\": {}}})",
            shell(name.as_str()),
            shell(fixed.clone())
        )
    });
    let unenforced = if reading.enforced {
        ""
    } else {
        " (the validator only logs: validationAction \"warn\" or validationLevel \"off\"; \
         writes are not refused)"
    };
    for (check, field) in [
        (checks::LOGIN_ID_COLUMN, &m.login_id),
        (checks::OWNID_DATA_COLUMN, &m.ownid_data),
    ] {
        let refused = reading
            .refusals
            .iter()
            .find(|r| r.field == field.as_str() && !r.length);
        match refused {
            Some(refusal) => {
                let detail = format!(
                    "{field}: the collection's $jsonSchema validator says {}, which refuses \
                     OwnID's string{unenforced}",
                    refusal.says
                );
                if reading.enforced {
                    report.fail(check, detail, fix.clone());
                } else {
                    report.warn(check, detail, fix.clone());
                }
            }
            None if validated => report.pass(
                check,
                format!("{field}: the collection's validator admits a string"),
            ),
            None => report.pass(
                check,
                format!("{field}: documents are schemaless, no column to check"),
            ),
        }
    }
    match reading
        .refusals
        .iter()
        .find(|r| r.field == m.ownid_data.as_str() && r.length)
    {
        Some(refusal) => {
            let detail = format!(
                "{}: the collection's $jsonSchema validator says {}, under the \
                 {MIN_OWNID_DATA_CHARS} characters OwnID needs{unenforced}",
                m.ownid_data, refusal.says
            );
            if reading.enforced {
                report.fail(checks::OWNID_DATA_WIDTH, detail, fix.clone());
            } else {
                report.warn(checks::OWNID_DATA_WIDTH, detail, fix.clone());
            }
        }
        None => report.pass(checks::OWNID_DATA_WIDTH, "BSON strings hold up to 16 MB"),
    }
    if !reading.required.is_empty() && reading.enforced {
        report.warn_unless_creating(
            VALIDATOR_CHECK,
            format!(
                "the validator requires {}, which a user created by create_missing_users \
                 (a document of {} and {} only) lacks: such creations would be refused",
                reading.required.join(", "),
                m.login_id,
                m.ownid_data
            ),
            Some(format!(
                "drop them from the validator's `required` (db.runCommand({{\"collMod\": \
                 {}, \"validator\": ...}})), or leave ownid.create_missing_users off",
                shell(name.as_str())
            )),
        );
    }
    if !reading.unread.is_empty() && reading.enforced {
        report.warn(
            VALIDATOR_CHECK,
            format!(
                "the validator has query expressions ({}) that ownid-bridge does not read: \
                 make sure they admit a string in {} and {}, or writes they refuse answer \
                 500",
                reading.unread.join(", "),
                m.login_id,
                m.ownid_data
            ),
            Some(format!(
                "express the rules on these fields as $jsonSchema properties \
                 (db.runCommand({{\"collMod\": {}, \"validator\": {{\"$jsonSchema\": ...}}}}))",
                shell(name.as_str())
            )),
        );
    }
}

/// The collation line: the collection's default collation, else a unique index's, when it
/// compares loosely.
fn report_collation(
    report: &mut SchemaReport,
    m: &UsersMapping,
    collection_collation: Option<&Document>,
    index_collation: Option<(&str, &str)>,
) {
    let name = m.table.to_string();
    if let Some(collation) = loose(collection_collation) {
        report.warn_unless_creating(
            checks::LOGIN_ID_COLLATION,
            format!(
                "the collection's default collation {collation} ignores case or accents, \
                 and its indexes inherit it: lookups still match login ids exactly (a \
                 look-alike is another user), but with create_missing_users a new login id \
                 whose look-alike holds the unique index is refused with 409 \
                 login_id_conflict"
            ),
            Some(format!(
                "a collection's collation cannot be changed: copy the documents into a \
                 collection with the simple collation (db.createCollection(\"{name}_exact\", \
                 {{collation: {{locale: \"simple\"}}}}); {}.aggregate([{{$out: \
                 \"{name}_exact\"}}])) and name it in users.table, or leave \
                 ownid.create_missing_users off",
                shell_collection(&name)
            )),
        );
    } else if let Some((collation, index)) = index_collation {
        report.warn_unless_creating(
            checks::LOGIN_ID_COLLATION,
            format!(
                "the unique index {} on {} has the collation {collation}, which ignores case \
                 or accents: lookups still match login ids exactly (a look-alike is another \
                 user), but with create_missing_users a new login id whose look-alike holds \
                 that index is refused with 409 login_id_conflict",
                shell(index),
                m.login_id
            ),
            Some(format!(
                "replace it with a unique index with the simple collation (the default): {}, \
                 then {}.dropIndex({}); or leave ownid.create_missing_users off",
                create_index_command(&name, m.login_id.as_str()),
                shell_collection(&name),
                shell(index)
            )),
        );
    }
}

/// What `listCollections` says about the users collection.
#[derive(Debug)]
enum Listing {
    /// It exists: its type (`collection`, `view`, `timeseries`) and options (validator,
    /// collation); empty options where the server does not implement `listCollections`.
    Found { kind: String, options: Document },
    /// It does not: the database's collections, `None` where they cannot be listed.
    Missing { names: Option<Vec<String>> },
}

/// How the login-id field is indexed.
#[derive(Debug, Default)]
struct LoginIndexes {
    /// A unique index on exactly the login id, with the collection's collation, serves lookups.
    exact: bool,
    /// The collation of a unique index on it that compares loosely, and the index's name.
    loose: Option<(String, String)>,
    /// Indexes that stop `schema` from creating its own: on the same key with the same
    /// collation but not unique (or partial, or hidden), or with its name but another key.
    in_the_way: Vec<String>,
}

impl MongoStore {
    fn collection_name(&self) -> String {
        self.mapping.table.to_string()
    }

    /// The users collection as `listCollections` reports it, read raw rather than as the
    /// driver's specification type, so that a collection option the driver does not model
    /// cannot fail the check.
    async fn listing(&self) -> Result<Listing, StoreError> {
        let wanted = self.collection_name();
        let listed = self.database.list_collections().await;
        let mut cursor = match listed {
            Ok(cursor) => cursor,
            Err(err) if server_code(&err) == Some(COMMAND_NOT_FOUND) => {
                return self.collection_seems_to_exist().await;
            }
            Err(err) => return Err(map_err(err)),
        };
        let mut names = Vec::new();
        while cursor.advance().await.map_err(map_err)? {
            let entry = Document::try_from(cursor.current())
                .map_err(|err| StoreError::Other(format!("unreadable collection entry: {err}")))?;
            let Ok(name) = entry.get_str("name") else {
                continue;
            };
            if name == wanted {
                return Ok(Listing::Found {
                    kind: entry.get_str("type").unwrap_or("collection").to_owned(),
                    options: entry.get_document("options").cloned().unwrap_or_default(),
                });
            }
            if !name.starts_with("system.") {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(Listing::Missing { names: Some(names) })
    }

    /// For servers that implement the CRUD commands but not `listCollections` (in-memory
    /// MongoDB-compatible servers used in tests): such servers answer `listIndexes` with an `_id_`
    /// index even for a collection that does not exist, so a collection "exists" when it has
    /// another index or at least one document.
    async fn collection_seems_to_exist(&self) -> Result<Listing, StoreError> {
        let names = self.users.list_index_names().await.map_err(map_err)?;
        let exists = names.iter().any(|name| name != "_id_")
            || self
                .users
                .find_one(Document::new())
                .projection(doc! { "_id": 1 })
                .await
                .map_err(map_err)?
                .is_some();
        Ok(if exists {
            Listing::Found {
                kind: "collection".into(),
                options: Document::new(),
            }
        } else {
            Listing::Missing { names: None }
        })
    }

    fn missing_message(&self, names: Option<&[String]>) -> String {
        missing_message(&self.collection_name(), names)
    }

    async fn login_id_indexes(
        &self,
        collection_collation: Option<&Document>,
    ) -> Result<LoginIndexes, StoreError> {
        let login = self.mapping.login_id.as_str();
        let own_name = index_name(login);
        let mut found = LoginIndexes::default();
        let mut cursor = self.users.list_indexes().await.map_err(map_err)?;
        while cursor.advance().await.map_err(map_err)? {
            // Read the raw entry rather than the driver's `IndexModel`, so that an index option
            // the driver does not model cannot make the whole check fail.
            let index = Document::try_from(cursor.current())
                .map_err(|err| StoreError::Other(format!("unreadable index entry: {err}")))?;
            let name = index.get_str("name").unwrap_or("").to_owned();
            if is_login_id_unique_index(&index, login, collection_collation) {
                found.exact = true;
                continue;
            }
            if let Some(collation) = loose_collation(&index, login) {
                found.loose = Some((collation, name.clone()));
            }
            let same_key = index
                .get_document("key")
                .is_ok_and(|keys| keys.len() == 1 && number(keys.get(login)) == Some(1));
            let same_collation = collation_of(&index).as_ref() == collection_collation;
            if (same_key && same_collation) || name == own_name {
                found
                    .in_the_way
                    .push(format!("{name} {}", shell(index.clone())));
            }
        }
        Ok(found)
    }

    /// The login ids that the unique index would call duplicates (under the collection's
    /// collation, which the aggregation uses as the index would): at most
    /// [`NAMED_DUPLICATES`] as `"a@example.com" (2 documents)`, and how many in all.
    async fn duplicates(&self) -> Result<(Vec<String>, u64), StoreError> {
        let login = format!("${}", self.mapping.login_id.as_str());
        let pipeline = [
            doc! { "$group": {
                "_id": &login,
                "documents": { "$sum": 1 },
                "spellings": { "$addToSet": &login },
            } },
            doc! { "$match": { "documents": { "$gt": 1 } } },
        ];
        let mut cursor = self.users.aggregate(pipeline).await.map_err(map_err)?;
        let (mut named, mut total) = (Vec::new(), 0);
        while cursor.advance().await.map_err(map_err)? {
            total += 1;
            if named.len() >= NAMED_DUPLICATES {
                continue;
            }
            let group = Document::try_from(cursor.current())
                .map_err(|err| StoreError::Other(format!("unreadable aggregation: {err}")))?;
            let count = number(group.get("documents")).unwrap_or(0);
            let spellings = match group.get("_id") {
                None | Some(Bson::Null) => format!("no {} (missing or null)", &login[1..]),
                Some(_) => group
                    .get_array("spellings")
                    .map(|all| {
                        all.iter()
                            .map(|spelling| match spelling {
                                Bson::String(text) => text.clone(),
                                other => shell(other.clone()),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            };
            named.push(format!("{spellings} ({count} documents)"));
        }
        Ok((named, total))
    }

    /// The report of [`UserStore::inspect`](ownid_bridge_store::UserStore::inspect).
    pub(crate) async fn inspect_collection(&self) -> Result<SchemaReport, StoreError> {
        let m = &self.mapping;
        let name = self.collection_name();
        let mut report = SchemaReport::default();
        let options = match self.listing().await? {
            Listing::Missing { names } => {
                report.fail(
                    checks::TABLE,
                    self.missing_message(names.as_deref()),
                    Some(
                        "correct users.table, or create the collection with \
                         `ownid-bridge schema --create-table`"
                            .into(),
                    ),
                );
                return Ok(report);
            }
            Listing::Found { kind, .. } if kind == "view" => {
                report.fail(
                    checks::TABLE,
                    format!("{name} is a view, whose documents cannot be written"),
                    Some("name a collection in users.table".into()),
                );
                return Ok(report);
            }
            Listing::Found { options, .. } => options,
        };
        report.pass(checks::TABLE, format!("collection {name} exists"));
        report_validator(&mut report, m, &options);
        let collection_collation = collation_of(&options);
        let indexes = self.login_id_indexes(collection_collation.as_ref()).await?;
        report_collation(
            &mut report,
            m,
            collection_collation.as_ref(),
            indexes
                .loose
                .as_ref()
                .map(|(collation, index)| (collation.as_str(), index.as_str())),
        );
        if indexes.exact {
            report.pass(
                checks::LOGIN_ID_UNIQUE,
                format!("a unique index covers {}", m.login_id),
            );
        } else {
            report.warn_unless_creating(
                checks::LOGIN_ID_UNIQUE,
                format!(
                    "no unique, non-partial index on exactly {{{}: 1}} with the collection's \
                     collation: concurrent create_missing_users upserts can duplicate a user, \
                     and lookups scan the collection unless another index serves them",
                    m.login_id
                ),
                Some(format!(
                    "`ownid-bridge schema` runs {}",
                    create_index_command(&name, m.login_id.as_str())
                )),
            );
        }
        Ok(report)
    }

    /// The changes of [`UserStore::apply_schema`](ownid_bridge_store::UserStore::apply_schema).
    ///
    /// Every precondition is checked before anything is run: the collection exists (or may be
    /// created), no index is in the way of the unique one, no login ids the index would call
    /// duplicates.
    pub(crate) async fn apply_collection_schema(
        &self,
        options: &SchemaOptions,
    ) -> Result<SchemaChanges, StoreError> {
        let m = &self.mapping;
        let name = self.collection_name();
        let mut changes = SchemaChanges::default();
        let collection_options = match self.listing().await? {
            Listing::Missing { names } => {
                // The demo's own collection is not created under a name that looks like a
                // misspelling of one that exists (`customer` beside `customers`).
                let misspelt = options.demo
                    && names.as_deref().is_some_and(|names| {
                        closest(&name, names.iter().map(String::as_str)).is_some()
                    });
                if !options.create_table || misspelt {
                    return Err(StoreError::Schema(format!(
                        "{}; `schema` creates the users collection only when told to \
                         (`ownid-bridge schema --create-table`)",
                        self.missing_message(names.as_deref())
                    )));
                }
                // No `create` command: `createIndexes` creates a missing collection with the
                // index (documented MongoDB behaviour), which also works on compatible servers
                // that do not implement `create`, and cannot race with another instance
                // creating it.
                changes
                    .notes
                    .push(format!("createIndex creates the collection {name}"));
                None
            }
            Listing::Found { kind, .. } if kind == "view" => {
                return Err(StoreError::Schema(format!(
                    "{name} is a view, whose documents cannot be written; name a collection"
                )))
            }
            Listing::Found { options, .. } => Some(options),
        };
        if let Some(collection_options) = &collection_options {
            let collation = collation_of(collection_options);
            let indexes = self.login_id_indexes(collation.as_ref()).await?;
            if indexes.exact {
                return Ok(changes);
            }
            if !indexes.in_the_way.is_empty() {
                return Err(StoreError::Schema(format!(
                    "the unique index on {{{}: 1}} cannot be created beside {}: drop it first \
                     ({}.dropIndex(\"<name>\")), then run `ownid-bridge schema` again; nothing \
                     was changed",
                    m.login_id,
                    indexes.in_the_way.join(", "),
                    shell_collection(&name)
                )));
            }
            let (named, total) = self.duplicates().await?;
            if total > 0 {
                return Err(StoreError::Schema(format!(
                    "a unique index on {{{}: 1}} cannot be built: {total} login id(s) are held \
                     by more than one document{} (spellings that differ only in what the \
                     collection's collation ignores count as one): {}. Nothing was changed; \
                     merge or remove the duplicates, then run `schema` again",
                    m.login_id,
                    if total as usize > named.len() {
                        format!(", the first {} shown", named.len())
                    } else {
                        String::new()
                    },
                    named.join("; ")
                )));
            }
        }
        let command = create_index_command(&name, m.login_id.as_str());
        if options.dry_run {
            changes.statements.push(command);
            return Ok(changes);
        }
        let index = IndexModel::builder()
            .keys(doc! { m.login_id.as_str(): 1 })
            .options(
                mongodb::options::IndexOptions::builder()
                    .name(index_name(m.login_id.as_str()))
                    .unique(true)
                    .build(),
            )
            .build();
        if let Err(err) = self.users.create_index(index).await {
            // Between the checks and now: another writer added a duplicate, or the server
            // refused for a reason of its own. The index build is all or nothing.
            let applied = if changes.statements.is_empty() {
                "nothing was applied".to_owned()
            } else {
                format!("applied before it: {}", changes.statements.join("; "))
            };
            return Err(match (server_code(&err), map_err(err)) {
                (Some(DUPLICATE_KEY), _) => StoreError::Schema(format!(
                    "{command} failed: a login id appears in more than one document (written \
                     since the check?); {applied}"
                )),
                (Some(85 | 86), StoreError::Other(detail)) => {
                    StoreError::Schema(format!("{command} failed: {detail}; {applied}"))
                }
                (_, StoreError::Other(detail)) => {
                    StoreError::Other(format!("{command} failed: {detail}; {applied}"))
                }
                (_, other) => other,
            });
        }
        changes.statements.push(command);
        Ok(changes)
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
            assert!(
                is_login_id_unique_index(&index, "login_id", None),
                "{index}"
            );
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
            assert!(
                !is_login_id_unique_index(&index, "login_id", None),
                "{index}"
            );
        }
    }

    /// On a collection with a default collation, queries use that collation, so the index that
    /// serves them (and the one `schema` creates, which inherits it) is the one with it.
    #[test]
    fn on_a_collated_collection_the_index_with_its_collation_counts() {
        let options = doc! { "collation": { "locale": "en", "strength": 2 } };
        let collection = collation_of(&options);
        let inherited = doc! { "key": { "login_id": 1 }, "unique": true,
        "collation": { "locale": "en", "strength": 2 } };
        assert!(is_login_id_unique_index(
            &inherited,
            "login_id",
            collection.as_ref()
        ));
        let simple = doc! { "key": { "login_id": 1 }, "unique": true };
        assert!(!is_login_id_unique_index(
            &simple,
            "login_id",
            collection.as_ref()
        ));
        assert_eq!(
            loose(collection.as_ref()).as_deref(),
            Some("{locale: \"en\", strength: 2}")
        );
        assert_eq!(
            loose(collation_of(&doc! { "collation": { "locale": "en" } }).as_ref()),
            None
        );
        assert_eq!(
            loose(collation_of(&doc! { "collation": { "locale": "simple" } }).as_ref()),
            None
        );
        assert_eq!(collation_of(&doc! {}), None);
    }

    fn validated(schema: Document) -> Document {
        doc! { "validator": { "$jsonSchema": schema } }
    }

    #[test]
    fn a_validator_that_refuses_strings_is_named_with_its_fix() {
        let options = validated(doc! {
            "bsonType": "object",
            "properties": {
                "ownid_data": { "bsonType": "object", "description": "profile" },
                "login_id": { "bsonType": ["int", "long"] },
            },
        });
        let reading = read_validator(&options, "login_id", "ownid_data");
        assert!(reading.enforced);
        assert_eq!(
            reading.refusals,
            [
                Refusal {
                    field: "ownid_data".into(),
                    says: "bsonType: \"object\"".into(),
                    length: false
                },
                Refusal {
                    field: "login_id".into(),
                    says: "bsonType: [\"int\",\"long\"]".into(),
                    length: false
                },
            ]
        );
        let fixed = reading.fixed.unwrap();
        let properties = fixed
            .get_document("$jsonSchema")
            .unwrap()
            .get_document("properties")
            .unwrap();
        assert_eq!(
            properties.get_document("ownid_data").unwrap(),
            &doc! { "bsonType": ["object", "string"], "description": "profile" }
        );
        assert_eq!(
            properties.get_document("login_id").unwrap(),
            &doc! { "bsonType": ["int", "long", "string"] }
        );
        // The fixed validator refuses nothing.
        let again = read_validator(&doc! { "validator": fixed }, "login_id", "ownid_data");
        assert!(again.refusals.is_empty(), "{again:?}");
    }

    #[test]
    fn enums_short_max_lengths_and_closed_schemas_refuse_too() {
        let cases = [
            (
                doc! { "properties": { "ownid_data": { "enum": ["a", "b"] } } },
                "enum: [\"a\",\"b\"]",
                false,
            ),
            (
                doc! { "properties": { "ownid_data": { "type": "string", "maxLength": 255 } } },
                "maxLength: 255",
                true,
            ),
            (
                doc! { "properties": { "ownid_data": { "type": "number" } } },
                "type: \"number\"",
                false,
            ),
            (
                doc! { "additionalProperties": false,
                "properties": { "_id": {}, "login_id": { "bsonType": "string" } } },
                "additionalProperties: false, and no property for it",
                false,
            ),
        ];
        for (schema, says, length) in cases {
            let reading = read_validator(&validated(schema.clone()), "login_id", "ownid_data");
            assert_eq!(
                reading.refusals,
                [Refusal {
                    field: "ownid_data".into(),
                    says: says.into(),
                    length
                }],
                "{schema}"
            );
            let fixed = reading.fixed.unwrap();
            let again = read_validator(&doc! { "validator": fixed }, "login_id", "ownid_data");
            assert!(again.refusals.is_empty(), "{schema}: {again:?}");
        }
    }

    #[test]
    fn validators_that_admit_strings_or_only_warn_are_not_refusals() {
        let admitting = [
            doc! { "properties": { "ownid_data": { "bsonType": ["string", "null"] } } },
            doc! { "properties": { "ownid_data": { "type": "string", "maxLength": 100000 } } },
            doc! { "properties": { "email": { "bsonType": "string" } } },
            doc! { "additionalProperties": true, "properties": {} },
        ];
        for schema in admitting {
            let reading = read_validator(&validated(schema.clone()), "login_id", "ownid_data");
            assert!(reading.refusals.is_empty(), "{schema}: {reading:?}");
            assert!(reading.fixed.is_none());
        }
        let mut warn_only =
            validated(doc! { "properties": { "ownid_data": { "bsonType": "int" } } });
        warn_only.insert("validationAction", "warn");
        let reading = read_validator(&warn_only, "login_id", "ownid_data");
        assert!(!reading.enforced);
        assert_eq!(reading.refusals.len(), 1);
        let mut off = validated(doc! {});
        off.insert("validationLevel", "off");
        assert!(!read_validator(&off, "login_id", "ownid_data").enforced);
        let mut moderate = validated(doc! {});
        moderate.insert("validationLevel", "moderate");
        assert!(read_validator(&moderate, "login_id", "ownid_data").enforced);
        assert_eq!(
            read_validator(&doc! {}, "login_id", "ownid_data"),
            ValidatorReading::default()
        );
    }

    #[test]
    fn required_fields_and_query_operators_are_reported() {
        let options = doc! { "validator": {
            "$jsonSchema": { "required": ["_id", "login_id", "tenant", "ownid_data", "created"] },
            "status": { "$in": ["active", "locked"] },
        } };
        let reading = read_validator(&options, "login_id", "ownid_data");
        assert_eq!(reading.required, ["tenant", "created"]);
        assert_eq!(reading.unread, ["status"]);
        assert!(reading.refusals.is_empty());
    }

    /// The lines `check` prints for a validator, settled as `check` settles them.
    fn validator_lines(options: &Document, create_missing_users: bool) -> String {
        let mut report = SchemaReport::default();
        report_validator(&mut report, &UsersMapping::demo(), options);
        report.settle(create_missing_users).to_string()
    }

    #[test]
    fn check_fails_on_a_validator_that_refuses_strings_and_warns_when_it_only_logs() {
        let refusing = validated(doc! { "properties": { "ownid_data": { "bsonType": "object" } } });
        let lines = validator_lines(&refusing, false);
        assert_eq!(
            lines,
            "ok   login_id column: login_id: the collection's validator admits a string\n\
             FAIL ownid_data column: ownid_data: the collection's $jsonSchema validator says \
             bsonType: \"object\", which refuses OwnID's string\n     \
             fix: db.runCommand({\"collMod\": \"users\", \"validator\": {\"$jsonSchema\":\
             {\"properties\":{\"ownid_data\":{\"bsonType\":[\"object\",\"string\"]}}}}})\n\
             ok   ownid_data width: BSON strings hold up to 16 MB\n"
        );
        let mut logged = refusing.clone();
        logged.insert("validationAction", "warn");
        let lines = validator_lines(&logged, true);
        assert!(
            lines.contains(
                "warn ownid_data column: ownid_data: the collection's $jsonSchema validator says \
                 bsonType: \"object\", which refuses OwnID's string (the validator only logs"
            ),
            "{lines}"
        );
        assert!(!lines.contains("FAIL"), "{lines}");

        let short = validated(doc! { "properties": { "ownid_data": { "maxLength": 255 } } });
        let lines = validator_lines(&short, false);
        assert!(
            lines.contains(
                "FAIL ownid_data width: ownid_data: the collection's $jsonSchema validator says \
                 maxLength: 255, under the 5000 characters OwnID needs"
            ),
            "{lines}"
        );
        assert!(lines.contains("ok   ownid_data column"), "{lines}");

        let without_validator = validator_lines(&doc! {}, true);
        assert_eq!(
            without_validator,
            "ok   login_id column: login_id: documents are schemaless, no column to check\n\
             ok   ownid_data column: ownid_data: documents are schemaless, no column to check\n\
             ok   ownid_data width: BSON strings hold up to 16 MB\n"
        );
    }

    #[test]
    fn required_fields_fail_only_when_creating_users() {
        let options = validated(doc! { "required": ["login_id", "tenant"] });
        let safe = validator_lines(&options, false);
        assert!(
            safe.contains("warn collection validator: the validator requires tenant")
                && safe.contains("(safe while ownid.create_missing_users is off)"),
            "{safe}"
        );
        let unsafe_ = validator_lines(&options, true);
        assert!(
            unsafe_.contains("FAIL collection validator: the validator requires tenant"),
            "{unsafe_}"
        );
    }

    #[test]
    fn a_loose_collection_collation_warns_unless_creating_with_mongodb_advice() {
        let mut report = SchemaReport::default();
        let collation = doc! { "locale": "en", "strength": 2 };
        report_collation(&mut report, &UsersMapping::demo(), Some(&collation), None);
        let safe = report.clone().settle(false);
        assert!(safe.is_ok());
        let line = safe.check(checks::LOGIN_ID_COLLATION).unwrap();
        assert_eq!(line.level, ownid_bridge_store::Level::Warn);
        assert!(
            line.detail.starts_with(
                "the collection's default collation {locale: \"en\", strength: 2} ignores case"
            ),
            "{safe}"
        );
        assert!(
            line.fix.as_deref().unwrap().contains(
                "db.createCollection(\"users_exact\", {collation: {locale: \"simple\"}})"
            ),
            "{safe}"
        );
        assert!(!report.settle(true).is_ok());

        let mut strict = SchemaReport::default();
        let strength_3 = doc! { "locale": "en", "strength": 3 };
        report_collation(&mut strict, &UsersMapping::demo(), Some(&strength_3), None);
        assert!(strict.checks.is_empty());
    }

    #[test]
    fn a_missing_collection_names_the_closest_one() {
        let names = ["customers".to_owned(), "orders".to_owned()];
        assert_eq!(
            missing_message("customer", Some(&names)),
            "collection customer does not exist; did you mean `customers`? (the database has: \
             customers, orders)"
        );
        assert_eq!(
            missing_message("customer", Some(&[])),
            "collection customer does not exist (the database has none)"
        );
        assert!(missing_message("customer", None).contains("does not list its collections"));
    }

    #[test]
    fn commands_are_printed_in_mongosh_syntax() {
        assert_eq!(
            create_index_command("auth.members", "login_id"),
            "db.getCollection(\"auth.members\").createIndex({\"login_id\":1}, \
             {\"unique\":true,\"name\":\"login_id_unique\"})"
        );
    }
}
