//! The MySQL and MariaDB backend (`mysql://` or `mariadb://` URLs).
//!
//! Two pitfalls are closed at connect time: every session runs in strict mode
//! (`STRICT_ALL_TABLES`), so a value longer than its column is an error (413) instead of being
//! silently truncated; and the connection character set is utf8mb4, so 4-byte UTF-8 round-trips.
//! Lookups use `WHERE login_id = ?`, so they need an index on the login-id column; the unique
//! index `schema` creates is one.

use std::str::FromStr;

use std::sync::Arc;

use ownid_bridge_sql::{Column, ColumnKind, Dialect, Pool, SqlBackend, SqlStore, TableFacts};
use ownid_bridge_store::{PoolSettings, StoreError, UsersMapping};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Executor, Row};

/// The pool of MySQL/MariaDB connections.
pub type MySqlPool = Pool<MySqlConnection>;

#[derive(Clone, Debug)]
pub struct MySqlOptions {
    /// `mysql://user:password@host:3306/database` or `mariadb://...`.
    pub url: String,
    pub mapping: UsersMapping,
    pub pool: PoolSettings,
    /// On a MariaDB Galera node, make reads wait until the node has applied every write the
    /// cluster committed before them (`wsrep_sync_wait = 1`): a set answered by one instance is
    /// then seen by a get on another instance over another node. See [`open_pool`].
    pub galera_sync_wait: bool,
}

/// The store's pool for `url` (utf8mb4, every session in strict mode), connecting when a
/// connection is first needed: the server starts while the database is down. `ownid-bench raw`
/// measures the database through this same pool. Must be called within a Tokio runtime.
///
/// `settings.statement_timeout` bounds each statement, set when a connection opens: MariaDB's
/// `max_statement_time` (every statement, waits for locks included; error 1969), or on MySQL,
/// which has no such bound for writes, `max_execution_time` (reads; error 3024); on both the
/// row and metadata lock waits (`innodb_lock_wait_timeout`, `lock_wait_timeout`, whole seconds
/// rounded up; error 1205). Each is a 503 with `Retry-After`.
///
/// With `galera_sync_wait`, each new connection asks whether it is on a Galera node
/// (`@@wsrep_on`; MySQL has no such variable, MariaDB without a cluster answers OFF) and, if so,
/// sets `wsrep_sync_wait = 1` for the session: Galera replicates writes synchronously but applies
/// them on the other nodes a moment later, and without the wait a read there may still see the
/// old value.
pub fn open_pool(
    url: &str,
    settings: &PoolSettings,
    galera_sync_wait: bool,
) -> Result<MySqlPool, StoreError> {
    let options = MySqlConnectOptions::from_str(url)
        .map_err(|_| StoreError::Other("invalid MySQL/MariaDB URL".into()))?
        .charset("utf8mb4");
    let timeout = settings.statement_timeout;
    let connect: ownid_bridge_sql::Connect<MySqlConnection> = Arc::new(move || {
        let options = options.clone();
        Box::pin(async move {
            let mut conn = options.connect().await?;
            conn.execute(
                "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')",
            )
            .await?;
            if let Some(timeout) = timeout {
                bound_statements(&mut conn, timeout).await?;
            }
            if galera_sync_wait && on_galera(&mut conn).await? {
                conn.execute("SET SESSION wsrep_sync_wait = 1").await?;
            }
            Ok(conn)
        })
    });
    Ok(Pool::new(connect, settings, settings.max_connections))
}

/// Bounds the session's statements and lock waits to `timeout` (see [`open_pool`]).
async fn bound_statements(
    conn: &mut MySqlConnection,
    timeout: std::time::Duration,
) -> Result<(), sqlx::Error> {
    let waits = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let waits = format!("innodb_lock_wait_timeout = {waits}, lock_wait_timeout = {waits}");
    let mariadb = format!(
        "SET SESSION max_statement_time = {:.3}, {waits}",
        timeout.as_secs_f64()
    );
    match conn.execute(sqlx::AssertSqlSafe(mariadb)).await {
        Ok(_) => Ok(()),
        // 1193 unknown system variable: MySQL.
        Err(sqlx::Error::Database(err))
            if ownid_bridge_sql::mysql_number(err.as_ref()) == Some(1193) =>
        {
            let mysql = format!(
                "SET SESSION max_execution_time = {}, {waits}",
                timeout.as_millis().max(1)
            );
            conn.execute(sqlx::AssertSqlSafe(mysql)).await.map(drop)
        }
        Err(err) => Err(err),
    }
}

/// Whether the connection is to a MariaDB Galera node with replication on.
async fn on_galera(conn: &mut MySqlConnection) -> Result<bool, sqlx::Error> {
    match sqlx::query_scalar::<_, i64>("SELECT @@wsrep_on + 0")
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
    {
        Ok(on) => Ok(on == 1),
        // 1193 unknown system variable: MySQL, or MariaDB built without wsrep.
        Err(sqlx::Error::Database(err))
            if ownid_bridge_sql::mysql_number(err.as_ref()) == Some(1193) =>
        {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// The MySQL/MariaDB backend of [`SqlStore`].
pub struct MySql;

/// A users table in MySQL/MariaDB.
pub type MySqlStore = SqlStore<MySql>;

impl SqlBackend for MySql {
    type Database = sqlx::MySql;
    type Options = MySqlOptions;
    const DIALECT: Dialect = Dialect::MySql;
    const NAME: &'static str = "mysql";

    async fn open(options: MySqlOptions) -> Result<MySqlStore, StoreError> {
        let pool = open_pool(&options.url, &options.pool, options.galera_sync_wait)?;
        Ok(SqlStore::new(
            pool.clone(),
            pool,
            options.pool,
            options.mapping,
        ))
    }

    async fn facts(store: &MySqlStore) -> Result<TableFacts, StoreError> {
        facts(store).await
    }

    fn rows_affected(done: &sqlx::mysql::MySqlQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// The users table as `information_schema` describes it. An unqualified name is a table of the
/// connection's database (`DATABASE()`, as in the statements); `db.table` one of database `db`.
async fn facts(store: &MySqlStore) -> Result<TableFacts, StoreError> {
    let table = &store.mapping().table;
    let (schema, name) = (
        table.schema.as_ref().map(|s| s.as_str()),
        table.name.as_str(),
    );
    let classify = |err| store.classify(err);
    let mut conn = store.reader().acquire().await.map_err(classify)?;
    let rows = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
         CAST(DATA_TYPE AS CHAR), CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED), \
         CAST(CHARACTER_SET_NAME AS CHAR), CAST(COLLATION_NAME AS CHAR), \
         CAST(CHARACTER_OCTET_LENGTH AS SIGNED), CAST(COLUMN_DEFAULT AS CHAR), \
         CAST(EXTRA AS CHAR), CAST(IS_NULLABLE = 'YES' AS SIGNED) \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
         ORDER BY ORDINAL_POSITION",
            )
            .persistent(false)
            .bind(schema)
            .bind(name)
            .fetch_all(conn)
            .await
        })
        .await
        .map_err(classify)?;
    if rows.is_empty() {
        // For "did you mean": the tables of that database.
        let others: Vec<String> = conn
            .run(async |conn| {
                sqlx::query_scalar(
                    "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) ORDER BY 1 LIMIT 1000",
                )
                .persistent(false)
                .bind(schema)
                .fetch_all(conn)
                .await
            })
            .await
            .map_err(classify)?;
        return Ok(TableFacts {
            other_tables: others,
            ..TableFacts::default()
        });
    }
    let mut columns = Vec::new();
    for row in rows {
        let get = |err| store.classify(err);
        let data_type: String = row.try_get(2).map_err(get)?;
        let data_type = data_type.to_ascii_lowercase();
        let max: Option<i64> = row.try_get(3).map_err(get)?;
        let octets: Option<i64> = row.try_get(6).map_err(get)?;
        let collation: Option<String> = row.try_get(5).map_err(get)?;
        let extra: String = row
            .try_get::<Option<String>, _>(8)
            .map_err(get)?
            .unwrap_or_default()
            .to_ascii_uppercase();
        let nullable: i64 = row.try_get(9).map_err(get)?;
        // (VAR)CHAR limits count characters; the TEXT types' limits count bytes.
        let counts_characters = matches!(data_type.as_str(), "varchar" | "char");
        let kind = kind(&data_type);
        columns.push(Column {
            name: row.try_get(0).map_err(get)?,
            declared: row.try_get(1).map_err(get)?,
            kind,
            type_name: Some(data_type.clone()),
            // MySQL: VIRTUAL GENERATED, STORED GENERATED; MariaDB also PERSISTENT. Not
            // DEFAULT_GENERATED, which is an expression default.
            generated: extra.contains("VIRTUAL GENERATED")
                || extra.contains("STORED GENERATED")
                || extra.contains("PERSISTENT"),
            nullable: nullable != 0,
            max_chars: max
                .filter(|_| counts_characters && kind == ColumnKind::Text)
                .map(|n| n as u64),
            max_bytes: octets
                .filter(|_| !counts_characters && kind == ColumnKind::Text)
                .map(|n| n as u64),
            charset: row.try_get(4).map_err(get)?,
            loose: collation
                .as_deref()
                .is_some_and(|c| c.ends_with("_ci") || c.ends_with("_ai")),
            collation,
            default: row.try_get(7).map_err(get)?,
            default_is_expression: extra.contains("DEFAULT_GENERATED")
                || extra.contains("AUTO_INCREMENT"),
            checks: Vec::new(),
        });
    }
    // MariaDB's JSON is a LONGTEXT with the check constraint `json_valid(`column`)`; any other
    // check constraint is kept on the columns it names, for `check`.
    for clause in check_clauses(store, &mut conn, schema, name).await? {
        let json = json_valid_column(&clause).and_then(|json| {
            columns.iter_mut().find(|c| {
                c.type_name.as_deref() == Some("longtext") && c.name.eq_ignore_ascii_case(&json)
            })
        });
        if let Some(found) = json {
            found.kind = ColumnKind::Json;
            found.declared = format!("JSON ({}, CHECK json_valid)", found.declared);
            found.max_bytes = None;
            continue;
        }
        let lower = clause.to_lowercase();
        for column in &mut columns {
            if lower.contains(&format!("`{}`", column.name.to_lowercase())) {
                column.checks.push(clause.clone());
            }
        }
    }
    // A unique index on exactly the login-id column, over its full length (no prefix).
    let unique = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT s.INDEX_NAME FROM information_schema.STATISTICS s \
         WHERE s.TABLE_SCHEMA = COALESCE(?, DATABASE()) AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0 \
         GROUP BY s.INDEX_NAME \
         HAVING COUNT(*) = 1 AND MAX(s.COLUMN_NAME) = ? AND MAX(s.SUB_PART) IS NULL",
            )
            .persistent(false)
            .bind(schema)
            .bind(name)
            .bind(store.mapping().login_id.as_str())
            .fetch_optional(conn)
            .await
        })
        .await
        .map_err(classify)?
        .is_some();
    Ok(TableFacts {
        exists: true,
        columns,
        login_id_unique: unique,
        ..TableFacts::default()
    })
}

/// The table's check constraints (their clauses), as MariaDB lists them. MySQL 8 has no
/// `TABLE_NAME` in `CHECK_CONSTRAINTS` (1054), MySQL 5.7 no such table (1109): there, none (MySQL's
/// JSON is a type of its own).
async fn check_clauses(
    store: &MySqlStore,
    conn: &mut ownid_bridge_sql::Pooled<MySqlConnection>,
    schema: Option<&str>,
    name: &str,
) -> Result<Vec<String>, StoreError> {
    let clauses = conn
        .run(async |conn| {
            sqlx::query_scalar::<_, String>(
                "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            )
            .persistent(false)
            .bind(schema)
            .bind(name)
            .fetch_all(conn)
            .await
        })
        .await;
    let clauses = match clauses {
        Ok(clauses) => clauses,
        Err(sqlx::Error::Database(err))
            if matches!(
                ownid_bridge_sql::mysql_number(err.as_ref()),
                Some(1054 | 1109)
            ) =>
        {
            return Ok(Vec::new())
        }
        Err(err) => return Err(store.classify(err)),
    };
    Ok(clauses)
}

/// The column a check clause requires to be valid JSON, when that is all it requires:
/// `json_valid(`c`)`, or `json_valid(`c`) or `c` is null`.
fn json_valid_column(clause: &str) -> Option<String> {
    let compact: String = clause
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let compact = compact
        .strip_prefix('(')
        .and_then(|c| c.strip_suffix(')'))
        .unwrap_or(&compact);
    let rest = compact.strip_prefix("json_valid(`")?;
    let (column, tail) = rest.split_once("`)")?;
    let null_allowed = format!("or`{column}`isnull");
    (tail.is_empty() || tail == null_allowed).then(|| {
        // The clause's original spelling of the name (the comparison is without case).
        let at = clause.find('`').map_or(0, |i| i + 1);
        clause[at..at + column.len()].to_owned()
    })
}

/// A column's kind from its `DATA_TYPE`.
fn kind(data_type: &str) -> ColumnKind {
    match data_type {
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnKind::Text,
        "json" => ColumnKind::Json,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
        | "numeric" | "float" | "double" | "real" | "bit" => ColumnKind::Number,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnKind::Binary
        }
        // enum, set, dates and times, uuid, inet4/inet6, geometry, ...
        _ => ColumnKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_valid_checks_are_told_from_other_checks() {
        assert_eq!(
            json_valid_column("json_valid(`Data`)").as_deref(),
            Some("Data")
        );
        assert_eq!(
            json_valid_column("json_valid(`d`) or `d` is null").as_deref(),
            Some("d")
        );
        assert_eq!(json_valid_column("(json_valid(`d`))").as_deref(), Some("d"));
        assert_eq!(
            json_valid_column("json_valid(`d`) and json_type(`d`) = 'OBJECT'"),
            None
        );
        assert_eq!(json_valid_column("`d` like '{%'"), None);
        assert_eq!(json_valid_column("json_valid(`d`) or `e` is null"), None);
    }

    #[test]
    fn kinds_follow_the_data_type() {
        assert_eq!(kind("varchar"), ColumnKind::Text);
        assert_eq!(kind("mediumtext"), ColumnKind::Text);
        assert_eq!(kind("json"), ColumnKind::Json);
        assert_eq!(kind("bigint"), ColumnKind::Number);
        assert_eq!(kind("varbinary"), ColumnKind::Binary);
        assert_eq!(kind("enum"), ColumnKind::Other);
        assert_eq!(kind("datetime"), ColumnKind::Other);
    }
}
