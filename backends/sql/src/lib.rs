//! What the SQL backends (SQLite, PostgreSQL, MySQL/MariaDB) share. Each backend crate keeps only
//! its dialect apart: how it connects, and how it reads the table's shape (`TableFacts`) from its
//! catalogue. The statements, the schema report and plan, the error mapping and the data path
//! ([`SqlStore`] over a [`SqlBackend`]) are written once here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ownid_bridge_store::{
    checks, Identifier, SchemaReport, StoreError, UsersMapping, MIN_OWNID_DATA_CHARS,
};

pub mod pool;
mod store;
pub use pool::{connector, Connect, Pool, Pooled, PING_IF_IDLE_FOR};
pub use store::{Conn, SqlBackend, SqlStore};

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

    /// A condition true only when the stored login id equals the parameter byte for byte, whatever
    /// the column's collation, `PAD SPACE` rule or type (`citext`) would call equal. It follows an
    /// ordinary `login = param` term, which keeps the lookup on the login-id index; this one then
    /// drops the rows that only the collation matched (SPEC §1: a look-alike is another user).
    fn exact(self, login: &str, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({login} AS BLOB) = CAST({param} AS BLOB)"),
            // "C" is deterministic and compares bytes; `::text` also strips citext's rules.
            Dialect::Postgres => {
                format!("{login}::text COLLATE \"C\" = {param}::text COLLATE \"C\"")
            }
            // Binary strings compare byte by byte, without the PAD SPACE rule of the _ci and
            // even the _bin collations of MariaDB; CONVERT makes a latin1 column's bytes UTF-8.
            Dialect::MySql => {
                format!("CAST(CONVERT({login} USING utf8mb4) AS BINARY) = CAST({param} AS BINARY)")
            }
        }
    }

    /// `login = param AND exact(login, param)`, the lookup every statement uses: `first` and
    /// `second` are the two bind parameters, both bound to the login id. `cast` is the login
    /// column's type where a text parameter would not use its index (PostgreSQL's `citext`).
    fn login_matches(self, login: &str, first: &str, second: &str, cast: Option<&str>) -> String {
        let indexed = match cast {
            Some(cast) => format!("{login} = CAST({first} AS {cast})"),
            None => format!("{login} = {first}"),
        };
        format!("{indexed} AND {}", self.exact(login, second))
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

/// The data-path statements, built once from the mapping with every identifier quoted. Every
/// lookup matches the login id exactly (see [`Dialect::exact`]) and binds it twice: once for the
/// index, once for the byte comparison.
pub struct Statements {
    /// `(login, login)` → `(ownid_data)`
    pub get: Arc<str>,
    /// `(ownid_data, login, login)`
    pub update: Arc<str>,
    /// `(login, ownid_data)`: a plain insert. A unique violation means the user was created
    /// meanwhile, or that a look-alike login id holds the index entry.
    pub insert: Arc<str>,
    /// `(login, login)` → `(login, [user_id], claims...)`
    pub session: Arc<str>,
    /// `(login, login, login)`: inserts the login id unless exactly that one exists.
    pub insert_user: Arc<str>,
}

impl Statements {
    /// `login_cast`: the type to cast the lookup parameter to so that it uses the login-id index
    /// (PostgreSQL `citext`; `None` elsewhere).
    pub fn new(dialect: Dialect, mapping: &UsersMapping, login_cast: Option<&str>) -> Self {
        let q = |identifier: &Identifier| dialect.quote(identifier);
        let p = |n: usize| dialect.param(n);
        let (table, login, data) = (
            q(&mapping.table),
            q(&mapping.login_id),
            q(&mapping.ownid_data),
        );
        let matches =
            |first: usize| dialect.login_matches(&login, &p(first), &p(first + 1), login_cast);
        let session_columns: Vec<String> = mapping.session_columns().into_iter().map(q).collect();
        let from_nothing = if dialect == Dialect::MySql {
            " FROM DUAL"
        } else {
            ""
        };
        Statements {
            get: format!("SELECT {data} FROM {table} WHERE {} LIMIT 1", matches(1)).into(),
            update: format!("UPDATE {table} SET {data} = {} WHERE {}", p(1), matches(2)).into(),
            insert: format!(
                "INSERT INTO {table} ({login}, {data}) VALUES ({}, {})",
                p(1),
                p(2)
            )
            .into(),
            session: format!(
                "SELECT {} FROM {table} WHERE {} LIMIT 1",
                session_columns.join(", "),
                matches(1)
            )
            .into(),
            insert_user: format!(
                "INSERT INTO {table} ({login}) SELECT {}{from_nothing} \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {})",
                p(1),
                matches(2)
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
    /// MySQL only: the character set.
    pub charset: Option<String>,
    /// The collation (MySQL), or what makes the column compare loosely (PostgreSQL: `citext`,
    /// a nondeterministic collation), for `check`.
    pub collation: Option<String>,
    /// Whether values that differ in case, accents or trailing spaces compare equal.
    pub loose: bool,
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
    if let Some((collation, loose)) = facts
        .column(dialect, &mapping.login_id)
        .and_then(|column| Some((column.collation.as_ref()?, column.loose)))
    {
        let exact = !loose;
        report.advisory(
            checks::LOGIN_ID_COLLATION,
            exact,
            if exact {
                format!("{collation}: login ids compare exactly")
            } else {
                format!(
                    "{collation} ignores case or accents: lookups still match login ids byte \
                     for byte (a look-alike is another user), but with create_missing_users a \
                     new login id whose look-alike holds the unique index is refused with 409 \
                     login_id_conflict (use a _bin collation, or login_id_normalization: \
                     lowercase with lower-case ids)"
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

/// Maps a driver error onto the store's error enum, reading the codes of `dialect` only (an
/// all-digit SQLSTATE such as `40001` is not a SQLite result code). `capacity` is the column's
/// limit for the `TooLarge` message (`u64::MAX` when unknown).
///
/// Retryable conditions become `Unavailable` (503 with `Retry-After`, SPEC §1): the connection
/// failing, the server shutting down or out of connections, serialization failures, deadlocks,
/// lock timeouts and, on MariaDB Galera, certification conflicts (reported as deadlocks).
pub fn classify(dialect: Dialect, err: sqlx::Error, capacity: u64) -> StoreError {
    let unavailable = |err: &sqlx::Error| StoreError::Unavailable(err.to_string());
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A reply the driver could not read is what a connection cut mid-answer looks like.
        | sqlx::Error::Protocol(_) => unavailable(&err),
        sqlx::Error::Database(db) => match database_condition(dialect, db.as_ref()) {
            Condition::Retryable => unavailable(&err),
            Condition::TooLong => StoreError::TooLarge {
                max_chars: capacity,
            },
            Condition::Unique => StoreError::Conflict,
            Condition::Other => StoreError::Other(err.to_string()),
        },
        _ => StoreError::Other(err.to_string()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Condition {
    Retryable,
    TooLong,
    /// A unique index refused the row. Its message names the value (MySQL's "Duplicate entry
    /// 'alice@...'"), so it is mapped without its text.
    Unique,
    Other,
}

fn database_condition(dialect: Dialect, db: &dyn sqlx::error::DatabaseError) -> Condition {
    if db.is_unique_violation() {
        return Condition::Unique;
    }
    let code = db.code().unwrap_or_default();
    match dialect {
        // SQLite result codes: SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended or not.
        Dialect::Sqlite => match code.parse::<i32>() {
            Ok(number) if matches!(number & 0xff, 5 | 6) => Condition::Retryable,
            _ => Condition::Other,
        },
        Dialect::Postgres => postgres_condition(&code),
        Dialect::MySql => mysql_condition(mysql_number(db), &code),
    }
}

/// PostgreSQL SQLSTATEs: class 08 (connection exception), 40001 serialization_failure, 40P01
/// deadlock_detected, 53300 too_many_connections, 55P03 lock_not_available, 57P0x (admin or crash
/// shutdown, cannot connect now, database dropped); 22001 string_data_right_truncation.
fn postgres_condition(sqlstate: &str) -> Condition {
    match sqlstate {
        "22001" => Condition::TooLong,
        "40001" | "40P01" | "53300" | "55P03" => Condition::Retryable,
        c if c.starts_with("08") || c.starts_with("57P0") => Condition::Retryable,
        _ => Condition::Other,
    }
}

/// MySQL/MariaDB error numbers, then SQLSTATEs: 1213 deadlock (also Galera's certification
/// conflict), 1205 lock wait timeout, 1040 too many connections, 2006 server gone away, 2013
/// connection lost, 1047 (Galera: node not ready for queries); 1406 data too long.
fn mysql_condition(number: Option<u16>, sqlstate: &str) -> Condition {
    match number {
        Some(1213 | 1205 | 1040 | 2006 | 2013 | 1047) => return Condition::Retryable,
        Some(1406) => return Condition::TooLong,
        _ => {}
    }
    match sqlstate {
        "22001" => Condition::TooLong,
        "40001" => Condition::Retryable,
        c if c.starts_with("08") => Condition::Retryable,
        _ => Condition::Other,
    }
}

#[cfg(feature = "mysql")]
fn mysql_number(db: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|err| err.number())
}

#[cfg(not(feature = "mysql"))]
fn mysql_number(_: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    None
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
        let pg = Statements::new(Dialect::Postgres, &mapping, None);
        assert_eq!(
            &*pg.get,
            "SELECT \"OwnIdData\" FROM \"Order\" WHERE \"order\" = $1 AND \
             \"order\"::text COLLATE \"C\" = $2::text COLLATE \"C\" LIMIT 1"
        );
        let citext = Statements::new(Dialect::Postgres, &mapping, Some("citext"));
        assert!(citext.get.contains("\"order\" = CAST($1 AS citext) AND"));
        let mysql = Statements::new(Dialect::MySql, &mapping, None);
        assert_eq!(
            &*mysql.update,
            "UPDATE `Order` SET `OwnIdData` = ? WHERE `order` = ? AND \
             CAST(CONVERT(`order` USING utf8mb4) AS BINARY) = CAST(? AS BINARY)"
        );
        assert_eq!(
            &*mysql.insert,
            "INSERT INTO `Order` (`order`, `OwnIdData`) VALUES (?, ?)"
        );
        let sqlite = Statements::new(Dialect::Sqlite, &mapping, None);
        assert!(sqlite.session.ends_with(
            "WHERE \"order\" = ?1 AND CAST(\"order\" AS BLOB) = CAST(?2 AS BLOB) LIMIT 1"
        ));
        assert!(sqlite.insert_user.contains("SELECT ?1 WHERE NOT EXISTS"));
    }

    #[test]
    fn codes_are_read_in_their_own_dialect() {
        // An all-digit SQLSTATE is not a SQLite result code, and the reverse.
        assert_eq!(postgres_condition("40001"), Condition::Retryable);
        assert_eq!(postgres_condition("08006"), Condition::Retryable);
        assert_eq!(postgres_condition("57P03"), Condition::Retryable);
        assert_eq!(postgres_condition("22001"), Condition::TooLong);
        assert_eq!(postgres_condition("00005"), Condition::Other);
        assert_eq!(mysql_condition(Some(1205), "HY000"), Condition::Retryable);
        assert_eq!(mysql_condition(Some(1406), "22001"), Condition::TooLong);
        assert_eq!(mysql_condition(Some(1064), "42000"), Condition::Other);
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
