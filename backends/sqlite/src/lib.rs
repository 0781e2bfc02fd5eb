//! The embedded default backend: one SQLite file next to the server, WAL mode, zero set-up.
//!
//! Writes go through a pool of exactly one connection and reads through a separate pool: SQLite
//! allows one writer at a time, and queueing writers in the pool (instead of letting several
//! connections race for the file lock) is what keeps "database is locked" away under load.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ownid_bridge_store::{
    checks, Identifier, PoolSettings, SchemaReport, SessionUser, SetOutcome, StoreError, UserStore,
    UsersMapping, MIN_OWNID_DATA_CHARS,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, TypeInfo, ValueRef};

/// Stands for "no declared width" in [`SqliteStore::capacity`].
const UNLIMITED: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// `sqlite://path/to/file.db` (created when missing) or `sqlite:///absolute/path.db`.
    pub url: String,
    pub mapping: UsersMapping,
    pub pool: PoolSettings,
    /// Create the database file when it does not exist (`check` passes false: it changes
    /// nothing).
    pub create_if_missing: bool,
}

/// The statements, built once from the mapping with every identifier quoted.
struct Statements {
    get: Arc<str>,
    update: Arc<str>,
    upsert: Arc<str>,
    session: Arc<str>,
    insert_user: Arc<str>,
}

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    mapping: UsersMapping,
    sql: Statements,
    /// The ownIdData column's declared width in characters (`VARCHAR(n)`), refreshed by
    /// `inspect`. SQLite would store a longer value, but the declared width is the owner's
    /// statement of what the column holds, and other readers of the table may rely on it.
    capacity: AtomicU64,
}

fn quote(identifier: &Identifier) -> String {
    // Identifiers are validated (no quotes inside), so wrapping is enough.
    format!("\"{identifier}\"")
}

fn sql(text: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(Arc::clone(text))
}

fn map_err(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => StoreError::Unavailable(err.to_string()),
        // SQLITE_BUSY (5), SQLITE_LOCKED (6) and their extended codes: another process holds the
        // file longer than busy_timeout. Transient, so 503 rather than 500.
        sqlx::Error::Database(db)
            if db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6)) =>
        {
            StoreError::Unavailable(err.to_string())
        }
        _ => StoreError::Other(err.to_string()),
    }
}

/// `VARCHAR(255)`, `NVARCHAR (5000)`, `CHARACTER(20)` → the number; `TEXT` → none.
fn declared_width(declared_type: &str) -> Option<u64> {
    let open = declared_type.find('(')?;
    let close = declared_type[open..].find(')')? + open;
    declared_type[open + 1..close].trim().parse().ok()
}

impl SqliteStore {
    pub async fn connect(options: SqliteOptions) -> Result<Self, StoreError> {
        if options.url.contains(":memory:") || options.url.contains("mode=memory") {
            return Err(StoreError::Other(
                "an in-memory SQLite database would not be shared between connections; \
                 give a file, e.g. sqlite://ownid-bridge.db"
                    .into(),
            ));
        }
        let connect = SqliteConnectOptions::from_str(&options.url)
            .map_err(|err| StoreError::Other(format!("invalid SQLite URL: {err}")))?
            .create_if_missing(options.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.pool.acquire_timeout.max(Duration::from_secs(1)));

        let writer = pool_options(&options.pool, 1)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        let reader = pool_options(&options.pool, options.pool.max_connections.max(1))
            .connect_with(connect.read_only(true))
            .await
            .map_err(map_err)?;

        let m = &options.mapping;
        let (table, login, data) = (quote(&m.table), quote(&m.login_id), quote(&m.ownid_data));
        let session_columns: Vec<String> = m.session_columns().into_iter().map(quote).collect();
        let sql = Statements {
            get: format!("SELECT {data} FROM {table} WHERE {login} = ?1 LIMIT 1").into(),
            update: format!("UPDATE {table} SET {data} = ?2 WHERE {login} = ?1").into(),
            upsert: format!(
                "INSERT INTO {table} ({login}, {data}) VALUES (?1, ?2) \
                 ON CONFLICT ({login}) DO UPDATE SET {data} = excluded.{data}"
            )
            .into(),
            session: format!(
                "SELECT {} FROM {table} WHERE {login} = ?1 LIMIT 1",
                session_columns.join(", ")
            )
            .into(),
            insert_user: format!(
                "INSERT INTO {table} ({login}) SELECT ?1 \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {login} = ?1)"
            )
            .into(),
        };
        let store = SqliteStore {
            reader,
            writer,
            mapping: options.mapping,
            sql,
            capacity: AtomicU64::new(UNLIMITED),
        };
        store.inspect().await?;
        Ok(store)
    }

    async fn table_exists(&self) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
        )
        .bind(self.mapping.table.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(row.is_some())
    }

    /// `(name, declared type)` of every column of the table.
    async fn columns(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, type FROM pragma_table_info(?1)")
            .bind(self.mapping.table.as_str())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(map_err)
    }

    /// Whether a full (not partial) unique index covers exactly the login-id column.
    async fn login_id_is_unique(&self) -> Result<bool, StoreError> {
        let indexes = sqlx::query(
            "SELECT il.name FROM pragma_index_list(?1) AS il \
             WHERE il.\"unique\" = 1 AND il.partial = 0",
        )
        .bind(self.mapping.table.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        for index in indexes {
            let name: String = index.try_get(0).map_err(map_err)?;
            let columns = sqlx::query("SELECT name FROM pragma_index_info(?1)")
                .bind(&name)
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
            if let [only] = columns.as_slice() {
                let column: Option<String> = only.try_get(0).map_err(map_err)?;
                if column.is_some_and(|c| c.eq_ignore_ascii_case(self.mapping.login_id.as_str())) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn check_capacity(&self, value: &str) -> Result<(), StoreError> {
        let capacity = self.capacity.load(Ordering::Relaxed);
        if capacity != UNLIMITED && value.chars().count() as u64 > capacity {
            return Err(StoreError::TooLarge {
                max_chars: capacity,
            });
        }
        Ok(())
    }
}

fn pool_options(settings: &PoolSettings, max: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(settings.min_connections.min(max))
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
}

fn find_column<'a>(columns: &'a [(String, String)], wanted: &Identifier) -> Option<&'a str> {
    columns
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(wanted.as_str()))
        .map(|(_, declared)| declared.as_str())
}

/// A column value as JSON, following SQLite's storage class rather than the declared type.
fn json_value(row: &SqliteRow, index: usize) -> Result<serde_json::Value, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let value = match raw.type_info().name() {
        "INTEGER" => serde_json::Value::from(row.try_get::<i64, _>(index)?),
        "REAL" => serde_json::Value::from(row.try_get::<f64, _>(index)?),
        "BOOLEAN" => serde_json::Value::from(row.try_get::<bool, _>(index)?),
        _ => serde_json::Value::from(row.try_get::<String, _>(index)?),
    };
    Ok(value)
}

#[async_trait]
impl UserStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn get_ownid_data(&self, login_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(sql(&self.sql.get))
            .bind(login_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let data: Option<String> = row.try_get(0).map_err(map_err)?;
        Ok(data.filter(|value| !value.is_empty()))
    }

    async fn set_ownid_data(
        &self,
        login_id: &str,
        ownid_data: &str,
        create_missing: bool,
    ) -> Result<SetOutcome, StoreError> {
        self.check_capacity(ownid_data)?;
        let updated = sqlx::query(sql(&self.sql.update))
            .bind(login_id)
            .bind(ownid_data)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        if updated > 0 {
            return Ok(SetOutcome::Updated);
        }
        if !create_missing {
            return Err(StoreError::NotFound);
        }
        // The upsert, not a plain insert: another instance on the same file may have created the
        // user between the update and here.
        sqlx::query(sql(&self.sql.upsert))
            .bind(login_id)
            .bind(ownid_data)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(SetOutcome::Created)
    }

    async fn get_session_user(&self, login_id: &str) -> Result<SessionUser, StoreError> {
        let row = sqlx::query(sql(&self.sql.session))
            .bind(login_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let mut index = 1;
        let mut subject = login_id.to_owned();
        if self.mapping.user_id.is_some() {
            match json_value(&row, index).map_err(map_err)? {
                serde_json::Value::String(id) => subject = id,
                serde_json::Value::Null => {}
                other => subject = other.to_string(),
            }
            index += 1;
        }
        let mut claims = serde_json::Map::new();
        for (claim, _) in &self.mapping.claims {
            let value = json_value(&row, index).map_err(map_err)?;
            if !value.is_null() {
                claims.insert(claim.clone(), value);
            }
            index += 1;
        }
        Ok(SessionUser { subject, claims })
    }

    async fn create_user(&self, login_id: &str) -> Result<bool, StoreError> {
        let inserted = sqlx::query(sql(&self.sql.insert_user))
            .bind(login_id)
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(inserted > 0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn inspect(&self) -> Result<SchemaReport, StoreError> {
        let m = &self.mapping;
        let mut report = SchemaReport::default();
        if !self.table_exists().await? {
            report.essential(
                checks::TABLE,
                false,
                format!("table {} does not exist", m.table),
            );
            return Ok(report);
        }
        report.essential(checks::TABLE, true, format!("table {} exists", m.table));
        let columns = self.columns().await?;
        let mut wanted = vec![(checks::LOGIN_ID_COLUMN, &m.login_id)];
        wanted.extend(m.user_id.iter().map(|c| (checks::USER_ID_COLUMN, c)));
        wanted.extend(m.claims.iter().map(|(_, c)| (checks::CLAIM_COLUMN, c)));
        for (what, column) in wanted {
            let found = find_column(&columns, column).is_some();
            let state = if found { "present" } else { "missing" };
            report.essential(what, found, format!("{column} {state}"));
        }
        match find_column(&columns, &m.ownid_data) {
            None => {
                report.essential(
                    checks::OWNID_DATA_COLUMN,
                    false,
                    format!("{} missing", m.ownid_data),
                );
            }
            Some(declared) => {
                report.essential(
                    checks::OWNID_DATA_COLUMN,
                    true,
                    format!("{} present", m.ownid_data),
                );
                let width = declared_width(declared);
                self.capacity
                    .store(width.unwrap_or(UNLIMITED), Ordering::Relaxed);
                match width {
                    Some(width) => report.advisory(
                        checks::OWNID_DATA_WIDTH,
                        width >= MIN_OWNID_DATA_CHARS,
                        format!(
                            "declared {declared}: {width} characters (OwnID needs at least \
                             {MIN_OWNID_DATA_CHARS})"
                        ),
                    ),
                    None => report.advisory(
                        checks::OWNID_DATA_WIDTH,
                        true,
                        format!("declared {declared:?}: no length limit"),
                    ),
                }
            }
        }
        let unique = self.login_id_is_unique().await?;
        report.advisory(
            checks::LOGIN_ID_UNIQUE,
            unique,
            if unique {
                format!("a unique index covers {}", m.login_id)
            } else {
                format!(
                    "no unique index on {}: lookups scan the table and create_missing_users \
                     cannot upsert",
                    m.login_id
                )
            },
        );
        Ok(report)
    }

    async fn apply_schema(&self, create_table: bool) -> Result<Vec<String>, StoreError> {
        let m = &self.mapping;
        let (table, login, data) = (quote(&m.table), quote(&m.login_id), quote(&m.ownid_data));
        let mut statements = Vec::new();
        let creating = !self.table_exists().await?;
        if creating {
            if !create_table {
                return Err(StoreError::Other(format!(
                    "table {} does not exist (the demo table is only created when allowed)",
                    m.table
                )));
            }
            statements.push(format!(
                "CREATE TABLE {table} (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \
                 {login} TEXT NOT NULL, {data} TEXT, \
                 \"created_at\" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            ));
        } else if find_column(&self.columns().await?, &m.ownid_data).is_none() {
            statements.push(format!("ALTER TABLE {table} ADD COLUMN {data} TEXT"));
        }
        if creating || !self.login_id_is_unique().await? {
            statements.push(format!(
                "CREATE UNIQUE INDEX \"{}_{}_key\" ON {table} ({login})",
                m.table, m.login_id
            ));
        }
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        for statement in &statements {
            sqlx::query(AssertSqlSafe(statement.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(|err| StoreError::Other(format!("{statement}: {err}")))?;
        }
        tx.commit().await.map_err(map_err)?;
        if !statements.is_empty() {
            self.inspect().await?;
        }
        Ok(statements)
    }
}

#[cfg(test)]
mod tests {
    use super::declared_width;

    #[test]
    fn reads_declared_widths() {
        assert_eq!(declared_width("VARCHAR(255)"), Some(255));
        assert_eq!(declared_width("nvarchar ( 5000 )"), Some(5000));
        assert_eq!(declared_width("TEXT"), None);
        assert_eq!(declared_width("DECIMAL(10,2)"), None);
    }
}
