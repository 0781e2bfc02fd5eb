//! The storage contract of ownid-bridge.
//!
//! The HTTP layer talks to one `Arc<dyn UserStore>` and never sees a driver type: every backend
//! (SQLite, PostgreSQL, MySQL/MariaDB, MongoDB) lives in its own crate and maps its driver's errors
//! onto the small [`StoreError`] enum, which the API turns into statuses.

mod error;
mod ledger;
mod mapping;
mod schema;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "serde")]
pub mod duration;
#[cfg(feature = "testing")]
pub mod outage;

pub use error::StoreError;
pub use ledger::{
    ledger_check, Claim, Reserve, SignatureLedger, DEFAULT_LEDGER_TABLE, LEDGER_CHECK,
    OPERATION_BITS,
};
pub use mapping::{Identifier, IdentifierError, TableName, UsersMapping};
pub use schema::{
    checks, closest, did_you_mean, Level, SchemaChanges, SchemaCheck, SchemaOptions, SchemaReport,
    MIN_OWNID_DATA_CHARS,
};

use async_trait::async_trait;

/// What a session token needs to know about a user.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionUser {
    /// The configured user-id column's value, or the login id when none is configured. With a
    /// user-id column, a user whose column is NULL, absent or an empty (or blank) string has no
    /// subject:
    /// [`UserStore::get_session_user`] refuses it ([`StoreError::no_user_id`]) rather than fall
    /// back to the login id, which may be another user's id.
    pub subject: String,
    /// Extra claims copied from configured columns; a NULL column is left out.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// What a set did, so callers can tell an update from a creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Updated,
    Created,
}

/// One user table (or collection) holding OwnID's data next to the company's users.
///
/// Constructors stay out of the trait so that it is object-safe: each backend has its own
/// `connect` with its own options, and `ownid-bridge`'s `storage.rs` is the one place that picks.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// A short name for logs and `check` output, e.g. `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// The stored ownIdData of a user: `Err(NotFound)` when there is no such user, `Ok(None)` when
    /// the user has no data (NULL or the empty string).
    async fn get_ownid_data(&self, login_id: &str) -> Result<Option<String>, StoreError>;

    /// Overwrites the user's ownIdData. Without `create_missing`, a missing user is
    /// `Err(NotFound)`; with it, the user is created atomically (an upsert, safe under concurrency).
    /// A value longer than the column can hold is `Err(TooLarge)` and leaves the stored value as
    /// it was.
    async fn set_ownid_data(
        &self,
        login_id: &str,
        ownid_data: &str,
        create_missing: bool,
    ) -> Result<SetOutcome, StoreError>;

    /// The subject and extra claims for a session token, or `Err(NotFound)`.
    async fn get_session_user(&self, login_id: &str) -> Result<SessionUser, StoreError>;

    /// Adds a user with only a login id (the `users add` command and tests). Returns `false`
    /// when the user already existed.
    async fn create_user(&self, login_id: &str) -> Result<bool, StoreError>;

    /// Cheap round trip to the database, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reports the state of the table without changing anything (the `check` command).
    async fn inspect(&self) -> Result<SchemaReport, StoreError>;

    /// The connection pool's state for the metrics, when the backend has a pool it can read.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Creates what is missing: the users table (only with `options.create_table`), the
    /// ownIdData column, a unique index on the login id; with `options.dry_run`, only says what
    /// it would run. Every precondition is checked first (the table and login column exist; no
    /// login ids that the unique index would call duplicates, up to 20 of them named in the
    /// error), so that nothing is changed when one fails ([`StoreError::Schema`]); a statement
    /// failing after that is reported with what was applied before it.
    async fn apply_schema(&self, options: &SchemaOptions) -> Result<SchemaChanges, StoreError>;

    /// Every user with ownIdData (not NULL, not empty) as `(login id, ownIdData)`, handed to
    /// `sink` in batches of at most `batch`; how many rows. The rows are streamed from one
    /// statement (or cursor), so memory stays bounded whatever the table's size; the order is the
    /// database's. An error from `sink` stops the export and is returned.
    async fn export_ownid_data(
        &self,
        batch: usize,
        sink: ExportSink<'_>,
    ) -> Result<u64, StoreError>;

    /// The replay guard's table (or collection) `table` in this store's database, over the same
    /// connections (`ownid.replay_protection: storage`); `None` when the backend has none.
    fn signature_ledger(&self, table: &Identifier) -> Option<std::sync::Arc<dyn SignatureLedger>> {
        let _ = table;
        None
    }
}

/// Where [`UserStore::export_ownid_data`] hands its rows.
pub type ExportSink<'a> =
    &'a mut (dyn FnMut(Vec<(String, String)>) -> Result<(), StoreError> + Send);

/// Rows of an export, gathered into batches of at most `batch` for the sink.
pub struct ExportBatches<'a> {
    sink: ExportSink<'a>,
    batch: usize,
    rows: Vec<(String, String)>,
    total: u64,
}

impl<'a> ExportBatches<'a> {
    pub fn new(batch: usize, sink: ExportSink<'a>) -> Self {
        let batch = batch.max(1);
        ExportBatches {
            sink,
            batch,
            rows: Vec::with_capacity(batch),
            total: 0,
        }
    }

    /// Adds a row; a full batch goes to the sink, whose error is returned.
    pub fn push(&mut self, login_id: String, ownid_data: String) -> Result<(), StoreError> {
        self.rows.push((login_id, ownid_data));
        if self.rows.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.total += self.rows.len() as u64;
        (self.sink)(std::mem::replace(
            &mut self.rows,
            Vec::with_capacity(self.batch),
        ))
    }

    /// Hands over the last rows; how many rows in all.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        self.flush()?;
        Ok(self.total)
    }
}

/// Connections of a pool at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// Connection-pool settings shared by the pooled backends. With the `serde` feature, the YAML
/// `storage.pool` section itself: absent keys take the defaults, unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema),
    serde(deny_unknown_fields, default)
)]
pub struct PoolSettings {
    /// The most connections the pool opens (per application).
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long opening one connection may take.
    #[cfg_attr(
        feature = "serde",
        serde(
            deserialize_with = "duration::required",
            serialize_with = "duration::serialize"
        ),
        schemars(schema_with = "duration::schema")
    )]
    pub connect_timeout: std::time::Duration,
    /// How long a request waits for a free connection before it is answered 503.
    #[cfg_attr(
        feature = "serde",
        serde(
            deserialize_with = "duration::required",
            serialize_with = "duration::serialize"
        ),
        schemars(schema_with = "duration::schema")
    )]
    pub acquire_timeout: std::time::Duration,
    /// Idle connections above `min_connections` are closed after this long; none keeps them.
    #[cfg_attr(
        feature = "serde",
        serde(
            deserialize_with = "duration::optional",
            serialize_with = "duration::serialize_optional"
        ),
        schemars(schema_with = "duration::schema_optional")
    )]
    pub idle_timeout: Option<std::time::Duration>,
    /// How long one statement (or MongoDB operation) may run, waiting for locks included; then
    /// it is cancelled by the database and the request is answered 503 with `Retry-After`.
    /// Each backend sets it when it connects: PostgreSQL `statement_timeout`, MariaDB
    /// `max_statement_time` (MySQL `max_execution_time`, which bounds reads only) with the lock
    /// waits, SQLite's busy timeout, MongoDB `maxTimeMS` (and a bound on the driver's wait).
    /// `None`: no bound (the command line's `export` and `schema`, whose statements may take
    /// long).
    #[cfg_attr(
        feature = "serde",
        serde(
            deserialize_with = "duration::optional",
            serialize_with = "duration::serialize_optional"
        ),
        schemars(schema_with = "duration::schema_optional")
    )]
    pub statement_timeout: Option<std::time::Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            min_connections: 0,
            connect_timeout: std::time::Duration::from_secs(5),
            acquire_timeout: std::time::Duration::from_secs(3),
            idle_timeout: Some(std::time::Duration::from_secs(600)),
            statement_timeout: Some(std::time::Duration::from_secs(5)),
        }
    }
}
