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
    UsersMapping,
};

use crate::error::{map_err, server_code, COMMAND_NOT_FOUND, DUPLICATE_KEY};
use crate::validator::report_validator;
use crate::MongoStore;

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

pub(crate) fn number(value: Option<&Bson>) -> Option<i64> {
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
pub(crate) fn shell(value: impl Into<Bson>) -> String {
    value.into().into_relaxed_extjson().to_string()
}

/// `db.getCollection("users")`.
pub(crate) fn shell_collection(name: &str) -> String {
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
