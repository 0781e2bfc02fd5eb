//! What the SQL backends (SQLite, PostgreSQL, MySQL/MariaDB) share. Each backend crate keeps only
//! its dialect apart: how it connects, and how it reads the table's shape (`TableFacts`) from its
//! catalogue. The statements, the schema report and plan, the error mapping and the data path
//! (the [`sql_user_store!`] macro) are written once here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ownid_bridge_store::{
    checks, Identifier, SchemaReport, StoreError, UsersMapping, MIN_OWNID_DATA_CHARS,
};

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

pub mod pool;
pub use pool::{connector, Connect, Pool, Pooled, PING_IF_IDLE_FOR};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub fn quote(self, identifier: &Identifier) -> String {
        // Identifiers are validated (no quote characters inside), so wrapping is enough.
        match self {
            Dialect::MySql => format!("`{identifier}`"),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{identifier}\""),
        }
    }

    /// The `n`-th bind parameter (1-based). Every statement here uses each parameter once, so
    /// MySQL's positional `?` needs no numbering.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql => "?".into(),
        }
    }

    /// The column type for ownIdData when `schema` creates it: unbounded text, and on MySQL a
    /// 16 MB `MEDIUMTEXT` in utf8mb4 (a plain `TEXT` holds only 64 KB, and utf8mb3 refuses 4-byte
    /// characters).
    fn text_type(self) -> &'static str {
        match self {
            Dialect::Sqlite | Dialect::Postgres => "TEXT",
            Dialect::MySql => "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        }
    }

    /// Whether two identifiers name the same column. PostgreSQL keeps the case of quoted names;
    /// SQLite and MySQL compare column names without case.
    fn same_name(self, a: &str, b: &str) -> bool {
        match self {
            Dialect::Postgres => a == b,
            Dialect::Sqlite | Dialect::MySql => a.eq_ignore_ascii_case(b),
        }
    }

    fn create_table(self, table: &str, login: &str, data: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "CREATE TABLE {table} (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \
                 {login} TEXT NOT NULL, {data} TEXT, \
                 \"created_at\" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            ),
            Dialect::Postgres => format!(
                "CREATE TABLE {table} (\"id\" BIGSERIAL PRIMARY KEY, {login} TEXT NOT NULL, \
                 {data} TEXT, \"created_at\" TIMESTAMPTZ NOT NULL DEFAULT now())"
            ),
            // utf8mb4_bin: login ids compare exactly, as on the other backends.
            Dialect::MySql => format!(
                "CREATE TABLE {table} (`id` BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 {login} VARCHAR(320) NOT NULL, {data} {}, \
                 `created_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) \
                 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                self.text_type()
            ),
        }
    }
}

/// The data-path statements, built once from the mapping with every identifier quoted.
pub struct Statements {
    /// `(login)` → `(ownid_data)`
    pub get: Arc<str>,
    /// `(ownid_data, login)`
    pub update: Arc<str>,
    /// `(login, ownid_data)`
    pub upsert: Arc<str>,
    /// `(login)` → `(login, [user_id], claims...)`
    pub session: Arc<str>,
    /// `(login, login)`
    pub insert_user: Arc<str>,
}

impl Statements {
    pub fn new(dialect: Dialect, mapping: &UsersMapping) -> Self {
        let q = |identifier: &Identifier| dialect.quote(identifier);
        let p = |n: usize| dialect.param(n);
        let (table, login, data) = (
            q(&mapping.table),
            q(&mapping.login_id),
            q(&mapping.ownid_data),
        );
        let session_columns: Vec<String> = mapping.session_columns().into_iter().map(q).collect();
        let upsert = match dialect {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "INSERT INTO {table} ({login}, {data}) VALUES ({}, {}) \
                 ON CONFLICT ({login}) DO UPDATE SET {data} = excluded.{data}",
                p(1),
                p(2)
            ),
            // VALUES() rather than MySQL 8's row alias: MariaDB only knows VALUES().
            Dialect::MySql => format!(
                "INSERT INTO {table} ({login}, {data}) VALUES (?, ?) \
                 ON DUPLICATE KEY UPDATE {data} = VALUES({data})"
            ),
        };
        let from_nothing = if dialect == Dialect::MySql {
            " FROM DUAL"
        } else {
            ""
        };
        Statements {
            get: format!(
                "SELECT {data} FROM {table} WHERE {login} = {} LIMIT 1",
                p(1)
            )
            .into(),
            update: format!(
                "UPDATE {table} SET {data} = {} WHERE {login} = {}",
                p(1),
                p(2)
            )
            .into(),
            upsert: upsert.into(),
            session: format!(
                "SELECT {} FROM {table} WHERE {login} = {} LIMIT 1",
                session_columns.join(", "),
                p(1)
            )
            .into(),
            insert_user: format!(
                "INSERT INTO {table} ({login}) SELECT {}{from_nothing} \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {login} = {})",
                p(1),
                p(2)
            )
            .into(),
        }
    }
}

/// The ownIdData column's limits, refreshed by `inspect`, checked before every write so that an
/// over-long value is refused whole (413) rather than truncated or half-written.
#[derive(Debug)]
pub struct Capacity {
    chars: AtomicU64,
    bytes: AtomicU64,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            chars: AtomicU64::new(u64::MAX),
            bytes: AtomicU64::new(u64::MAX),
        }
    }
}

impl Capacity {
    pub fn set(&self, column: Option<&Column>) {
        let chars = column.and_then(|c| c.max_chars).unwrap_or(u64::MAX);
        let bytes = column.and_then(|c| c.max_bytes).unwrap_or(u64::MAX);
        self.chars.store(chars, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// The limit in characters, for messages (`u64::MAX` when there is none).
    pub fn chars(&self) -> u64 {
        self.chars.load(Ordering::Relaxed)
    }

    pub fn check(&self, value: &str) -> Result<(), StoreError> {
        let (chars, bytes) = (self.chars(), self.bytes.load(Ordering::Relaxed));
        let too_many_bytes = bytes != u64::MAX && value.len() as u64 > bytes;
        let too_many_chars = chars != u64::MAX && value.chars().count() as u64 > chars;
        if too_many_bytes || too_many_chars {
            return Err(StoreError::TooLarge {
                max_chars: if chars == u64::MAX { bytes / 4 } else { chars },
            });
        }
        Ok(())
    }
}

/// One column as the catalogue describes it.
#[derive(Clone, Debug, Default)]
pub struct Column {
    pub name: String,
    /// The declared type, for messages (`TEXT`, `character varying(255)`, ...).
    pub declared: String,
    /// The most characters the column holds, when it has a declared limit.
    pub max_chars: Option<u64>,
    /// The most bytes it holds, when the limit is in bytes (MySQL's TEXT types).
    pub max_bytes: Option<u64>,
    /// MySQL only: the character set and collation.
    pub charset: Option<String>,
    pub collation: Option<String>,
}

/// The shape of the users table, read from the database's catalogue.
#[derive(Clone, Debug, Default)]
pub struct TableFacts {
    pub exists: bool,
    pub columns: Vec<Column>,
    /// A full (not partial, not expression) unique index on exactly the login-id column.
    pub login_id_unique: bool,
}

impl TableFacts {
    fn column(&self, dialect: Dialect, name: &Identifier) -> Option<&Column> {
        self.columns
            .iter()
            .find(|column| dialect.same_name(&column.name, name.as_str()))
    }

    /// The ownIdData column, when it exists.
    pub fn ownid_data(&self, dialect: Dialect, mapping: &UsersMapping) -> Option<&Column> {
        self.column(dialect, &mapping.ownid_data)
    }
}

/// `VARCHAR(255)`, `NVARCHAR (5000)`, `CHARACTER(20)` → the number; `TEXT` → none.
pub fn declared_width(declared_type: &str) -> Option<u64> {
    let open = declared_type.find('(')?;
    let close = declared_type[open..].find(')')? + open;
    declared_type[open + 1..close].trim().parse().ok()
}

/// The `check` report for a table, the same for every SQL dialect.
pub fn report(dialect: Dialect, mapping: &UsersMapping, facts: &TableFacts) -> SchemaReport {
    let mut report = SchemaReport::default();
    if !facts.exists {
        report.essential(
            checks::TABLE,
            false,
            format!("table {} does not exist", mapping.table),
        );
        return report;
    }
    report.essential(
        checks::TABLE,
        true,
        format!("table {} exists", mapping.table),
    );
    let mut wanted = vec![(checks::LOGIN_ID_COLUMN, &mapping.login_id)];
    wanted.extend(mapping.user_id.iter().map(|c| (checks::USER_ID_COLUMN, c)));
    wanted.extend(
        mapping
            .claims
            .iter()
            .map(|(_, c)| (checks::CLAIM_COLUMN, c)),
    );
    for (what, name) in wanted {
        let found = facts.column(dialect, name).is_some();
        let state = if found { "present" } else { "missing" };
        report.essential(what, found, format!("{name} {state}"));
    }
    match facts.column(dialect, &mapping.ownid_data) {
        None => report.essential(
            checks::OWNID_DATA_COLUMN,
            false,
            format!("{} missing", mapping.ownid_data),
        ),
        Some(column) => {
            report.essential(
                checks::OWNID_DATA_COLUMN,
                true,
                format!("{} present", mapping.ownid_data),
            );
            match column.max_chars.or(column.max_bytes.map(|bytes| bytes / 4)) {
                Some(width) => report.advisory(
                    checks::OWNID_DATA_WIDTH,
                    width >= MIN_OWNID_DATA_CHARS,
                    format!(
                        "declared {}: {width} characters (OwnID needs at least \
                         {MIN_OWNID_DATA_CHARS})",
                        column.declared
                    ),
                ),
                None => report.advisory(
                    checks::OWNID_DATA_WIDTH,
                    true,
                    format!(
                        "declared {:?}: no length limit below OwnID's needs",
                        column.declared
                    ),
                ),
            }
            if let Some(charset) = &column.charset {
                report.advisory(
                    "ownid_data charset",
                    charset.starts_with("utf8mb4"),
                    format!(
                        "{charset} (utf8mb4 is needed to store 4-byte UTF-8 characters byte for \
                         byte)"
                    ),
                );
            }
        }
    }
    if let Some(collation) = facts
        .column(dialect, &mapping.login_id)
        .and_then(|column| column.collation.as_ref())
    {
        let exact = !collation.ends_with("_ci");
        report.advisory(
            "login_id collation",
            exact,
            if exact {
                format!("{collation}: login ids compare exactly")
            } else {
                format!(
                    "{collation} is case-insensitive: lookups ignore case here but not on other \
                     backends (use login_id_normalization: lowercase, or a _bin collation)"
                )
            },
        );
    }
    report.advisory(
        checks::LOGIN_ID_UNIQUE,
        facts.login_id_unique,
        if facts.login_id_unique {
            format!("a unique index covers {}", mapping.login_id)
        } else {
            format!(
                "no unique index on {}: lookups scan the table and create_missing_users cannot \
                 upsert",
                mapping.login_id
            )
        },
    );
    report
}

/// The statements `schema` runs to make the table usable; empty when nothing is missing.
pub fn plan(
    dialect: Dialect,
    mapping: &UsersMapping,
    facts: &TableFacts,
    create_table: bool,
) -> Result<Vec<String>, StoreError> {
    let (table, login, data) = (
        dialect.quote(&mapping.table),
        dialect.quote(&mapping.login_id),
        dialect.quote(&mapping.ownid_data),
    );
    let mut statements = Vec::new();
    if !facts.exists {
        if !create_table {
            return Err(StoreError::Other(format!(
                "table {} does not exist (the demo table is only created when allowed)",
                mapping.table
            )));
        }
        statements.push(dialect.create_table(&table, &login, &data));
    } else if facts.column(dialect, &mapping.ownid_data).is_none() {
        statements.push(format!(
            "ALTER TABLE {table} ADD COLUMN {data} {}",
            dialect.text_type()
        ));
    }
    if !facts.exists || !facts.login_id_unique {
        let index = dialect.quote(&index_name(mapping));
        statements.push(format!("CREATE UNIQUE INDEX {index} ON {table} ({login})"));
    }
    Ok(statements)
}

fn index_name(mapping: &UsersMapping) -> Identifier {
    let name = format!("{}_{}_key", mapping.table, mapping.login_id);
    // Within the 64-character identifier limit of PostgreSQL and MySQL.
    Identifier::new(&name)
        .unwrap_or_else(|_| Identifier::new("ownid_bridge_login_id_key").expect("a valid name"))
}

/// Bounds a first contact with the database (the acquire timeout bounds each later request).
/// The limit is the longer of the pool's connect and acquire timeouts.
pub async fn within<T>(
    settings: &ownid_bridge_store::PoolSettings,
    what: &str,
    future: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let limit = settings.connect_timeout.max(settings.acquire_timeout);
    tokio::time::timeout(limit, future).await.map_err(|_| {
        StoreError::Unavailable(format!("timed out after {limit:?} connecting to {what}"))
    })?
}

/// Maps a driver error onto the store's error enum. `capacity` is the column's limit for the
/// `TooLarge` message (`u64::MAX` when unknown).
pub fn classify(err: sqlx::Error, capacity: u64) -> StoreError {
    let unavailable = |err: &sqlx::Error| StoreError::Unavailable(err.to_string());
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A reply the driver could not read is what a connection cut mid-answer looks like.
        | sqlx::Error::Protocol(_) => unavailable(&err),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|code| code.into_owned()).unwrap_or_default();
            if let Ok(number) = code.parse::<i32>() {
                // SQLite result codes: SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended or not.
                return if matches!(number & 0xff, 5 | 6) {
                    unavailable(&err)
                } else {
                    StoreError::Other(err.to_string())
                };
            }
            // SQLSTATE, as PostgreSQL and MySQL/MariaDB report it.
            match code.as_str() {
                // string_data_right_truncation: MySQL's "data too long" (1406) in strict mode,
                // PostgreSQL's "value too long for type character varying(n)".
                "22001" => StoreError::TooLarge {
                    max_chars: capacity,
                },
                // connection exceptions, shutdown, too many connections, and the retryable
                // serialization failure and deadlock.
                c if c.starts_with("08")
                    || c.starts_with("57P0")
                    || c == "53300"
                    || c == "40001"
                    || c == "40P01" =>
                {
                    unavailable(&err)
                }
                _ => StoreError::Other(err.to_string()),
            }
        }
        _ => StoreError::Other(err.to_string()),
    }
}

/// The data path and schema commands of a SQL store, for a type with these fields:
/// `reader` and `writer` (`Pool`s; the same pool twice where one suffices), `mapping:
/// UsersMapping`, `sql: Statements`, `capacity: Capacity`, and an
/// inherent `async fn facts(&self) -> Result<TableFacts, StoreError>`; plus the driver's row
/// type, the dialect and the backend's name.
#[macro_export]
macro_rules! sql_user_store {
    ($store:ty, $row:ty, $dialect:expr, $name:literal) => {
        impl $store {
            fn classify(&self, err: sqlx::Error) -> ownid_bridge_store::StoreError {
                $crate::classify(err, self.capacity.chars())
            }

            /// The row `statement` (one `login_id` parameter) finds on a reader connection, or
            /// `NotFound`.
            async fn lookup(
                &self,
                statement: &std::sync::Arc<str>,
                login_id: &str,
            ) -> Result<$row, ownid_bridge_store::StoreError> {
                let mut conn = self
                    .reader
                    .acquire()
                    .await
                    .map_err(|err| self.classify(err))?;
                let result = sqlx::query(sqlx::AssertSqlSafe(std::sync::Arc::clone(statement)))
                    .bind(login_id)
                    .fetch_optional(&mut *conn)
                    .await;
                conn.settle(result)
                    .map_err(|err| self.classify(err))?
                    .ok_or(ownid_bridge_store::StoreError::NotFound)
            }

            /// A column value as JSON: the first Rust type the driver agrees to decode it as.
            fn json_value(row: &$row, index: usize) -> Result<serde_json::Value, sqlx::Error> {
                use serde_json::Value;
                use sqlx::Row as _;
                if let Ok(value) = row.try_get::<Option<String>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                if let Ok(value) = row.try_get::<Option<i32>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                if let Ok(value) = row.try_get::<Option<i16>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                if let Ok(value) = row.try_get::<Option<i8>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                if let Ok(value) = row.try_get::<Option<bool>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                if let Ok(value) = row.try_get::<Option<f64>, _>(index) {
                    return Ok(value.map(Value::from).unwrap_or(Value::Null));
                }
                let value = row.try_get::<Option<f32>, _>(index)?;
                Ok(value.map(Value::from).unwrap_or(Value::Null))
            }
        }

        #[$crate::__async_trait]
        impl ownid_bridge_store::UserStore for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn get_ownid_data(
                &self,
                login_id: &str,
            ) -> Result<Option<String>, ownid_bridge_store::StoreError> {
                use sqlx::Row as _;
                let row = self.lookup(&self.sql.get, login_id).await?;
                let data: Option<String> = row.try_get(0).map_err(|err| self.classify(err))?;
                Ok(data.filter(|value| !value.is_empty()))
            }

            async fn set_ownid_data(
                &self,
                login_id: &str,
                ownid_data: &str,
                create_missing: bool,
            ) -> Result<ownid_bridge_store::SetOutcome, ownid_bridge_store::StoreError> {
                self.capacity.check(ownid_data)?;
                let mut conn = self
                    .writer
                    .acquire()
                    .await
                    .map_err(|err| self.classify(err))?;
                let result =
                    sqlx::query(sqlx::AssertSqlSafe(std::sync::Arc::clone(&self.sql.update)))
                        .bind(ownid_data)
                        .bind(login_id)
                        .execute(&mut *conn)
                        .await;
                let updated = conn
                    .settle(result)
                    .map_err(|err| self.classify(err))?
                    .rows_affected();
                if updated > 0 {
                    return Ok(ownid_bridge_store::SetOutcome::Updated);
                }
                if !create_missing {
                    return Err(ownid_bridge_store::StoreError::NotFound);
                }
                // An upsert, not a plain insert: another request or instance may create the same
                // user between the update and here.
                let result =
                    sqlx::query(sqlx::AssertSqlSafe(std::sync::Arc::clone(&self.sql.upsert)))
                        .bind(login_id)
                        .bind(ownid_data)
                        .execute(&mut *conn)
                        .await;
                conn.settle(result).map_err(|err| self.classify(err))?;
                Ok(ownid_bridge_store::SetOutcome::Created)
            }

            async fn get_session_user(
                &self,
                login_id: &str,
            ) -> Result<ownid_bridge_store::SessionUser, ownid_bridge_store::StoreError> {
                let row = self.lookup(&self.sql.session, login_id).await?;
                let unreadable = |column: &ownid_bridge_store::Identifier, err: sqlx::Error| {
                    ownid_bridge_store::StoreError::Other(format!(
                        "column {column} cannot be read as a JSON value: {err}"
                    ))
                };
                let mut index = 1;
                let mut subject = login_id.to_owned();
                if let Some(column) = &self.mapping.user_id {
                    match Self::json_value(&row, index).map_err(|err| unreadable(column, err))? {
                        serde_json::Value::String(id) => subject = id,
                        serde_json::Value::Null => {}
                        other => subject = other.to_string(),
                    }
                    index += 1;
                }
                let mut claims = serde_json::Map::new();
                for (claim, column) in &self.mapping.claims {
                    let value =
                        Self::json_value(&row, index).map_err(|err| unreadable(column, err))?;
                    if !value.is_null() {
                        claims.insert(claim.clone(), value);
                    }
                    index += 1;
                }
                Ok(ownid_bridge_store::SessionUser { subject, claims })
            }

            async fn create_user(
                &self,
                login_id: &str,
            ) -> Result<bool, ownid_bridge_store::StoreError> {
                let mut conn = self
                    .writer
                    .acquire()
                    .await
                    .map_err(|err| self.classify(err))?;
                let result = sqlx::query(sqlx::AssertSqlSafe(std::sync::Arc::clone(
                    &self.sql.insert_user,
                )))
                .bind(login_id)
                .bind(login_id)
                .execute(&mut *conn)
                .await;
                let inserted = conn
                    .settle(result)
                    .map_err(|err| self.classify(err))?
                    .rows_affected();
                Ok(inserted > 0)
            }

            async fn ping(&self) -> Result<(), ownid_bridge_store::StoreError> {
                let mut conn = self
                    .reader
                    .acquire()
                    .await
                    .map_err(|err| self.classify(err))?;
                let result = sqlx::query("SELECT 1").execute(&mut *conn).await;
                conn.settle(result).map_err(|err| self.classify(err))?;
                Ok(())
            }

            async fn inspect(
                &self,
            ) -> Result<ownid_bridge_store::SchemaReport, ownid_bridge_store::StoreError> {
                let facts = self.facts().await?;
                self.capacity.set(facts.ownid_data($dialect, &self.mapping));
                Ok($crate::report($dialect, &self.mapping, &facts))
            }

            fn pool_status(&self) -> Option<ownid_bridge_store::PoolStatus> {
                let size = self.reader.size();
                let idle = self.reader.num_idle();
                Some(ownid_bridge_store::PoolStatus {
                    in_use: size.saturating_sub(idle),
                    idle,
                    max: self.reader.max_connections(),
                })
            }

            async fn apply_schema(
                &self,
                create_table: bool,
            ) -> Result<Vec<String>, ownid_bridge_store::StoreError> {
                let facts = self.facts().await?;
                let statements = $crate::plan($dialect, &self.mapping, &facts, create_table)?;
                let mut conn = self
                    .writer
                    .acquire()
                    .await
                    .map_err(|err| self.classify(err))?;
                for statement in &statements {
                    let result = sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                        .execute(&mut *conn)
                        .await;
                    conn.settle(result).map_err(|err| {
                        ownid_bridge_store::StoreError::Other(format!("{statement}: {err}"))
                    })?;
                }
                drop(conn);
                if !statements.is_empty() {
                    ownid_bridge_store::UserStore::inspect(self).await?;
                }
                Ok(statements)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_declared_widths() {
        assert_eq!(declared_width("VARCHAR(255)"), Some(255));
        assert_eq!(declared_width("nvarchar ( 5000 )"), Some(5000));
        assert_eq!(declared_width("TEXT"), None);
        assert_eq!(declared_width("DECIMAL(10,2)"), None);
    }

    #[test]
    fn statements_quote_per_dialect_and_number_parameters() {
        let mapping = UsersMapping {
            table: Identifier::new("Order").unwrap(),
            login_id: Identifier::new("order").unwrap(),
            ownid_data: Identifier::new("OwnIdData").unwrap(),
            user_id: None,
            claims: Vec::new(),
        };
        let pg = Statements::new(Dialect::Postgres, &mapping);
        assert_eq!(
            &*pg.get,
            "SELECT \"OwnIdData\" FROM \"Order\" WHERE \"order\" = $1 LIMIT 1"
        );
        let mysql = Statements::new(Dialect::MySql, &mapping);
        assert_eq!(
            &*mysql.update,
            "UPDATE `Order` SET `OwnIdData` = ? WHERE `order` = ?"
        );
        assert!(mysql
            .upsert
            .contains("ON DUPLICATE KEY UPDATE `OwnIdData` = VALUES(`OwnIdData`)"));
        let sqlite = Statements::new(Dialect::Sqlite, &mapping);
        assert!(sqlite.insert_user.contains("SELECT ?1 WHERE NOT EXISTS"));
    }

    #[test]
    fn a_missing_table_plans_the_demo_table_and_its_index() {
        let mapping = UsersMapping::demo();
        let plan = plan(Dialect::Postgres, &mapping, &TableFacts::default(), true).unwrap();
        assert_eq!(plan.len(), 2);
        assert!(plan[0].starts_with("CREATE TABLE \"users\""));
        assert_eq!(
            plan[1],
            "CREATE UNIQUE INDEX \"users_login_id_key\" ON \"users\" (\"login_id\")"
        );
        assert!(super::plan(Dialect::Postgres, &mapping, &TableFacts::default(), false).is_err());
    }
}
