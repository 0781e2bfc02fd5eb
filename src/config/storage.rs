//! `storage`: the backend, its URL, the user table's mapping and the connection pool.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ownid_bridge_store::{Identifier, PoolSettings, TableName, UsersMapping};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{positive, ConfigError};
use crate::secret::DatabaseUrl;

/// Also a command-line value (`ownid-bench --backend`), spelt as in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    /// PostgreSQL and its wire-compatible kin (CockroachDB, YugabyteDB).
    Postgres,
    /// MySQL and MariaDB.
    #[serde(alias = "mariadb")]
    #[value(alias = "mariadb")]
    Mysql,
    Mongodb,
}

/// By hand: the derive would leave out the alias `mariadb`.
impl JsonSchema for Backend {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Backend".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The database: sqlite (the embedded default), postgres (also its \
                wire-compatible kin), mysql or mariadb (MySQL and MariaDB), mongodb.",
            "type": "string",
            "enum": ["sqlite", "postgres", "mysql", "mariadb", "mongodb"]
        })
    }
}

impl Backend {
    /// The name `storage.backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Mongodb => "mongodb",
        }
    }

    /// The Cargo feature that compiles the backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Mongodb => "mongodb",
        }
    }

    /// The URL schemes the backend's driver understands.
    pub fn schemes(self) -> &'static [&'static str] {
        match self {
            Backend::Sqlite => &["sqlite"],
            Backend::Postgres => &["postgres", "postgresql"],
            Backend::Mysql => &["mysql", "mariadb"],
            Backend::Mongodb => &["mongodb", "mongodb+srv"],
        }
    }
}

/// The user table's names, each checked as it is read: a bad name is an error naming its key, and
/// the mapping the store gets needs no second check.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// The users table (MongoDB: collection), optionally with its schema (PostgreSQL) or database
    /// (MySQL/MariaDB): `members` or `auth.members`.
    pub table: Table,
    /// The column (field) holding the login id: an e-mail address or a phone number.
    pub login_id: Column,
    /// The column (field) OwnID's data is stored in (at least 5000 characters).
    pub ownid_data: Column,
    /// Optional column whose value becomes the JWT `sub`.
    pub user_id: Option<Column>,
    /// Extra JWT claims: claim name → column.
    #[schemars(extend("propertyNames" = { "not": { "enum": RESERVED_CLAIMS } }))]
    pub claims: BTreeMap<Claim, Column>,
}

impl Default for UsersConfig {
    fn default() -> Self {
        let mapping = UsersMapping::demo();
        UsersConfig {
            table: Table(mapping.table),
            login_id: Column(mapping.login_id),
            ownid_data: Column(mapping.ownid_data),
            user_id: None,
            claims: BTreeMap::new(),
        }
    }
}

impl UsersConfig {
    pub fn mapping(&self) -> UsersMapping {
        UsersMapping {
            table: self.table.0.clone(),
            login_id: self.login_id.0.clone(),
            ownid_data: self.ownid_data.0.clone(),
            user_id: self.user_id.as_ref().map(|column| column.0.clone()),
            claims: self
                .claims
                .iter()
                .map(|(claim, column)| (claim.0.clone(), column.0.clone()))
                .collect(),
        }
    }
}

/// The users table's name from the configuration, a valid [`TableName`] once read: `members`, or
/// `auth.members` (schema or database, then table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table(TableName);

impl Table {
    pub fn new(name: &str) -> Result<Self, ownid_bridge_store::IdentifierError> {
        TableName::new(name).map(Table)
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        TableName::new(&name)
            .map(Table)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Table {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl JsonSchema for Table {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Table".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_$]{0,63}(\\.[A-Za-z_][A-Za-z0-9_$]{0,63})?$",
            "description": "A table (collection) name, optionally after its schema (PostgreSQL) \
                or database (MySQL/MariaDB) and a dot: letters, digits, _ and $, each part \
                starting with a letter or _."
        })
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PartialEq<&str> for Table {
    fn eq(&self, other: &&str) -> bool {
        self.0.to_string() == *other
    }
}

/// A table or column name from the configuration, a valid [`Identifier`] once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column(Identifier);

impl Column {
    pub fn new(name: &str) -> Result<Self, ownid_bridge_store::IdentifierError> {
        Identifier::new(name).map(Column)
    }

    pub fn identifier(&self) -> &Identifier {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Identifier::new(&name)
            .map(Column)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Column {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl JsonSchema for Column {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Column".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A table, column, collection or field name: letters, digits, _ and $, \
                starting with a letter or _."
        })
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PartialEq<&str> for Column {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

/// Claims the server sets itself; a configured column may not replace them.
const RESERVED_CLAIMS: [&str; 7] = ["sub", "iat", "exp", "jti", "iss", "aud", "nbf"];

/// The name of a claim copied from a column: any name but those the server sets itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Claim(String);

impl JsonSchema for Claim {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Claim".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "not": { "enum": RESERVED_CLAIMS }
        })
    }
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(serde::de::Error::custom(
                "this claim is set by the server and cannot come from a column",
            ));
        }
        Ok(Claim(name))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: Backend,
    pub url: DatabaseUrl,
    /// Create the demo table at start-up when the table is missing. Defaults to true on SQLite
    /// (zero set-up) and false elsewhere, so a misspelt table name on a company database stops
    /// start-up instead of creating an empty table.
    pub create_demo_table: Option<bool>,
    pub users: UsersConfig,
    /// The store's own settings type, deserialized as it is.
    pub pool: PoolSettings,
    /// Retrying an operation the database refused for a conflict with another one.
    pub retries: RetrySettings,
    /// A connection pooler between the server and the database, and its mode.
    pub pooler: Pooler,
    /// MySQL/MariaDB: on a Galera node, reads wait until the node has applied every write the
    /// cluster committed before them (`wsrep_sync_wait = 1`), so that a set through one instance
    /// is seen by a get through another. Off trades that for the wait's cost.
    pub galera_sync_wait: bool,
    /// How long `serve` waits for an unreachable database at start-up, trying again with
    /// backoff, before it gives up (exit 2). Meanwhile `/healthz` answers and `/readyz` is 503.
    #[serde(
        deserialize_with = "super::de::duration",
        serialize_with = "super::de::serialize_duration"
    )]
    #[schemars(schema_with = "super::de::duration_schema")]
    pub startup_wait: Duration,
}

/// `storage.pooler`: what sits between the server and the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// The database itself, or a pooler in session mode (a server connection per client
    /// connection): nothing changes.
    #[default]
    None,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supavisor's transaction
    /// port, PgCat, RDS Proxy): PostgreSQL only. No prepared statement is kept across
    /// transactions and each statement runs in a transaction of its own.
    Transaction,
}

/// `storage.retries`: how an operation the database refused for a conflict with another
/// statement (a serialization failure, a deadlock, a Galera certification conflict, ...) is run
/// again: exponential backoff from `first_delay` up to `max_delay` per wait, each wait stretched
/// by a random 0–100 %, at most `attempts` tries in all and never more than `total_delay` of
/// waiting for one request. Then the answer is 503 with `Retry-After`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Tries in all, the first included; 1 turns retrying off.
    pub attempts: u32,
    /// The first wait.
    #[serde(
        deserialize_with = "super::de::duration",
        serialize_with = "super::de::serialize_duration"
    )]
    #[schemars(schema_with = "super::de::duration_schema")]
    pub first_delay: Duration,
    /// The longest single wait.
    #[serde(
        deserialize_with = "super::de::duration",
        serialize_with = "super::de::serialize_duration"
    )]
    #[schemars(schema_with = "super::de::duration_schema")]
    pub max_delay: Duration,
    /// The most waiting for one request, all waits together.
    #[serde(
        deserialize_with = "super::de::duration",
        serialize_with = "super::de::serialize_duration"
    )]
    #[schemars(schema_with = "super::de::duration_schema")]
    pub total_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            attempts: 10,
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
            total_delay: Duration::from_secs(1),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Sqlite,
            url: DatabaseUrl::new("sqlite://ownid-bridge.db"),
            create_demo_table: None,
            users: UsersConfig::default(),
            pool: PoolSettings::default(),
            retries: RetrySettings::default(),
            startup_wait: Duration::from_secs(60),
            pooler: Pooler::None,
            galera_sync_wait: true,
        }
    }
}

impl StorageConfig {
    pub fn creates_demo_table(&self) -> bool {
        self.create_demo_table
            .unwrap_or(self.backend == Backend::Sqlite)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive(
            "storage.pool.max_connections",
            self.pool.max_connections == 0,
        )?;
        positive("storage.retries.attempts", self.retries.attempts == 0)?;
        if self.pooler == Pooler::Transaction && self.backend != Backend::Postgres {
            return Err(ConfigError::at(
                "storage.pooler",
                format!(
                    "transaction is for PostgreSQL behind a transaction-mode pooler; \
                     storage.backend is {}",
                    self.backend.name()
                ),
            ));
        }
        // Only the scheme is quoted: a value that is not a URL (a libpq `host=... password=...`
        // string) may hold a password where masking does not look for one.
        let scheme = self.url.scheme();
        let schemes = self.backend.schemes();
        if !scheme
            .as_deref()
            .is_some_and(|scheme| schemes.contains(&scheme))
        {
            let got = match &scheme {
                Some(scheme) => format!("got the scheme {scheme}:"),
                None => "got a value that does not start with a scheme; a libpq key/value \
                         string is not accepted"
                    .to_owned(),
            };
            return Err(ConfigError::at(
                "storage.url",
                format!(
                    "storage.backend {} expects a URL starting with {}: ({got})",
                    self.backend.feature(),
                    schemes.join(": or "),
                ),
            ));
        }
        Ok(())
    }
}
