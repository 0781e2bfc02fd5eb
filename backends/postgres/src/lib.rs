//! The PostgreSQL backend (also the wire protocol of CockroachDB and YugabyteDB).
//!
//! Lookups use `WHERE login_id = $1`, so they need a B-tree index on the login-id column; the
//! unique index `schema` creates is one. Statements are prepared once per connection and cached by
//! sqlx; connections come from the SQL backends' own pool (`ownid_bridge_sql::Pool`).

use std::str::FromStr;

use ownid_bridge_sql::{
    connector, Column, ColumnKind, Dialect, Pool, SqlBackend, SqlStore, TableFacts,
};
use ownid_bridge_store::{PoolSettings, StoreError, UsersMapping};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Row;

/// The pool of PostgreSQL connections.
pub type PgPool = Pool<PgConnection>;

#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:5432/database` (or `postgresql://`).
    pub url: String,
    pub mapping: UsersMapping,
    pub pool: PoolSettings,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supavisor, PgCat, RDS
    /// Proxy) is between the server and the database: see [`open_pool`].
    pub transaction_pooler: bool,
}

/// The store's pool for `url`. It connects when a connection is first needed: the server starts
/// (and answers 503) while the database is down, and the pool connects once it is back.
/// `ownid-bench raw` measures the database through this same pool. Must be called within a
/// Tokio runtime.
///
/// No startup parameter beyond those every pooler passes on (sqlx's `extra_float_digits` is
/// left out: PgBouncer refuses it unless told to ignore it, and PostgreSQL 12 and later print
/// floats exactly without it; results come in binary anyway). With `transaction_pooler`, no
/// prepared statement is kept (sqlx's statement cache is off, the data path's statements are
/// unnamed) and every statement runs in a transaction of its own ([`Pool::in_transactions`]),
/// because the pooler may give the next transaction another server connection.
///
/// `settings.statement_timeout` becomes the session's `statement_timeout` (a `SET` when a
/// connection opens), which bounds the waits for locks too; behind a transaction pooler, where a
/// session setting would stay on a server connection other clients get, a `SET LOCAL` in each
/// transaction's `BEGIN` instead, in the same round trip. A statement that runs out is cancelled
/// by the server (SQLSTATE 57014): 503 with `Retry-After`.
pub fn open_pool(
    url: &str,
    settings: &PoolSettings,
    transaction_pooler: bool,
) -> Result<PgPool, StoreError> {
    let targets = Targets::parse(url)?;
    let hosts = targets.urls.len() as u32;
    let mut candidates = Vec::with_capacity(targets.urls.len());
    for url in &targets.urls {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Other("invalid PostgreSQL URL".into()))?
            .application_name("ownid-bridge")
            .extra_float_digits(None);
        if transaction_pooler {
            options = options.statement_cache_capacity(0);
        }
        candidates.push(options);
    }
    let (connect, settings) = if hosts == 1 && !targets.read_write {
        (connector(candidates.remove(0)), settings.clone())
    } else {
        // Each host gets the connect timeout, as with libpq.
        let per_host = settings.connect_timeout;
        let settings = PoolSettings {
            connect_timeout: per_host * hosts,
            ..settings.clone()
        };
        (
            first_writable(candidates, targets.read_write, per_host),
            settings,
        )
    };
    let timeout = settings
        .statement_timeout
        .map(|timeout| timeout.as_millis().max(1));
    Ok(match (transaction_pooler, timeout) {
        (true, timeout) => {
            let begin = timeout.map(|ms| format!("BEGIN; SET LOCAL statement_timeout = {ms}"));
            Pool::new_in_transactions(connect, &settings, settings.max_connections, begin)
        }
        (false, Some(ms)) => Pool::new(
            with_statement_timeout(connect, ms),
            &settings,
            settings.max_connections,
        ),
        (false, None) => Pool::new(connect, &settings, settings.max_connections),
    })
}

/// `connect`, then `SET statement_timeout` on the new connection.
fn with_statement_timeout(
    connect: ownid_bridge_sql::Connect<PgConnection>,
    ms: u128,
) -> ownid_bridge_sql::Connect<PgConnection> {
    let set: std::sync::Arc<str> = format!("SET statement_timeout = {ms}").into();
    std::sync::Arc::new(move || {
        let (connect, set) = (std::sync::Arc::clone(&connect), std::sync::Arc::clone(&set));
        Box::pin(async move {
            let mut conn = connect().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(set))
                .execute(&mut conn)
                .await?;
            Ok(conn)
        })
    })
}

/// The hosts of a libpq-style URL (`postgres://u@h1:5432,h2:5433/db?target_session_attrs=...`),
/// each as a URL of its own, and whether the session must accept writes.
#[derive(Debug, PartialEq, Eq)]
struct Targets {
    urls: Vec<String>,
    read_write: bool,
}

impl Targets {
    fn parse(url: &str) -> Result<Targets, StoreError> {
        let invalid = |why: &str| StoreError::Other(format!("invalid PostgreSQL URL: {why}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut read_write = false;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("target_session_attrs", value)) => {
                    read_write = match value {
                        "any" => false,
                        "read-write" | "primary" => true,
                        _ => {
                            return Err(invalid(
                                "target_session_attrs must be any, read-write or primary: \
                                 the server writes",
                            ))
                        }
                    }
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let urls = hosts
            .split(',')
            .map(|host| {
                if host.is_empty() {
                    Err(invalid("an empty host in the host list"))
                } else {
                    Ok(format!("{scheme}://{user}{host}{path}{query}"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Targets { urls, read_write })
    }
}

/// Connects to the hosts in order, as libpq does with several hosts: the first that answers
/// (and, with `read_write`, accepts writes: `transaction_read_only` is off, so not a standby) is
/// used. After a failover the promoted standby is found this way without a restart.
fn first_writable(
    candidates: Vec<PgConnectOptions>,
    read_write: bool,
    per_host: std::time::Duration,
) -> ownid_bridge_sql::Connect<PgConnection> {
    let candidates = std::sync::Arc::new(candidates);
    std::sync::Arc::new(move || {
        let candidates = std::sync::Arc::clone(&candidates);
        Box::pin(async move {
            let mut last = None;
            for options in candidates.iter() {
                let connected =
                    tokio::time::timeout(per_host, sqlx::ConnectOptions::connect(options)).await;
                let mut conn = match connected {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(err)) => {
                        last = Some(err);
                        continue;
                    }
                    Err(_) => {
                        last = Some(sqlx::Error::PoolTimedOut);
                        continue;
                    }
                };
                if !read_write {
                    return Ok(conn);
                }
                let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
                    .persistent(false)
                    .fetch_one(&mut conn)
                    .await?;
                if read_only == "off" {
                    return Ok(conn);
                }
                let _ = sqlx::Connection::close(conn).await;
                last = Some(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "no host of storage.url accepts writes yet (target_session_attrs=read-write)",
                )));
            }
            Err(last.unwrap_or(sqlx::Error::PoolTimedOut))
        })
    })
}

/// The PostgreSQL backend of [`SqlStore`].
pub struct Postgres;

/// A users table in PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

impl SqlBackend for Postgres {
    type Database = sqlx::Postgres;
    type Options = PostgresOptions;
    const DIALECT: Dialect = Dialect::Postgres;
    const NAME: &'static str = "postgres";

    async fn open(options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let settings = options.pool;
        let pool = open_pool(&options.url, &settings, options.transaction_pooler)?;
        Ok(SqlStore::new(pool.clone(), pool, settings, options.mapping))
    }

    async fn facts(store: &PostgresStore) -> Result<TableFacts, StoreError> {
        facts(store).await
    }

    fn rows_affected(done: &sqlx::postgres::PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// The users table as the catalogue describes it. An unqualified name is the table the search
/// path finds (like the unqualified name in the statements); `schema.table` is looked up in that
/// schema.
async fn facts(store: &PostgresStore) -> Result<TableFacts, StoreError> {
    let classify = |err| store.classify(err);
    let table = &store.mapping().table;
    let schema = table.schema.as_ref().map(|s| s.as_str().to_owned());
    let mut conn = store.reader().acquire().await.map_err(classify)?;
    let Some(found) = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT c.oid::int8 FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = $1 AND c.relkind IN ('r', 'p') \
         AND CASE WHEN $2::text IS NULL THEN pg_catalog.pg_table_is_visible(c.oid) \
                  ELSE n.nspname = $2::text END",
            )
            .persistent(false)
            .bind(table.name.as_str())
            .bind(schema.as_deref())
            .fetch_optional(conn)
            .await
        })
        .await
        .map_err(classify)?
    else {
        // For "did you mean": the tables of that schema, or those the search path finds.
        let others: Vec<String> = conn
            .run(async |conn| {
                sqlx::query_scalar(
                    "SELECT CASE WHEN $1::text IS NULL AND n.nspname <> 'public' \
                     THEN n.nspname || '.' || c.relname ELSE c.relname::text END \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') \
             AND CASE WHEN $1::text IS NULL \
                      THEN n.nspname NOT IN ('pg_catalog', 'information_schema') \
                           AND n.nspname NOT LIKE 'pg\\_%' \
                      ELSE n.nspname = $1::text END \
             ORDER BY 1 LIMIT 1000",
                )
                .persistent(false)
                .bind(schema.as_deref())
                .fetch_all(conn)
                .await
            })
            .await
            .map_err(classify)?;
        return Ok(TableFacts {
            other_tables: others,
            ..TableFacts::default()
        });
    };
    let oid: i64 = found.try_get(0).map_err(|err| store.classify(err))?;
    // The type's category decides its kind (a domain's base type); the base type's name without
    // the modifier is what a lookup parameter is cast to (`citext`, also under a domain): never
    // the domain itself, whose CHECK would then judge every login id asked for (a refused one
    // is an unknown user, not an error), and whose base type's index it uses all the same.
    let rows = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
         CASE WHEN b.oid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4 \
              THEN (a.atttypmod - 4)::int8 \
              WHEN t.typtypmod > 4 AND b.oid IN ('varchar'::regtype, 'bpchar'::regtype) \
              THEN (t.typtypmod - 4)::int8 END, \
         CASE WHEN b.typname = 'citext' THEN 'citext' \
              WHEN NOT co.collisdeterministic \
              THEN co.collname::text || ' (nondeterministic)' END, \
         CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END, \
         pg_catalog.format_type(b.oid, NULL), b.typname::text, b.typcategory::text, \
         a.attgenerated <> '', NOT a.attnotnull \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype \
                                                   ELSE t.oid END \
         LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
         LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
            )
            .persistent(false)
            .bind(oid)
            .fetch_all(conn)
            .await
        })
        .await
        .map_err(classify)?;
    let mut columns = Vec::new();
    for row in rows {
        let get = |err| store.classify(err);
        let max_chars: Option<i64> = row.try_get(2).map_err(get)?;
        let loose: Option<String> = row.try_get(3).map_err(get)?;
        let base: String = row.try_get(6).map_err(get)?;
        let category: String = row.try_get(7).map_err(get)?;
        columns.push(Column {
            name: row.try_get(0).map_err(get)?,
            declared: row.try_get(1).map_err(get)?,
            kind: kind(&base, &category),
            type_name: Some(row.try_get(5).map_err(get)?),
            generated: row.try_get(8).map_err(get)?,
            nullable: row.try_get(9).map_err(get)?,
            max_chars: max_chars.map(|n| n as u64),
            loose: loose.is_some(),
            collation: loose,
            default: row.try_get(4).map_err(get)?,
            ..Column::default()
        });
    }
    let unique = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT 1 FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = $1::int8::oid AND i.indisunique AND i.indisvalid AND i.indnatts = 1 \
         AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2",
            )
            .persistent(false)
            .bind(oid)
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

/// A column's kind from its (base) type's name and category (`pg_type.typcategory`): S string,
/// N numeric, B boolean, U user-defined (json, jsonb, bytea, uuid, ...), E enum, D date/time,
/// A array, ...
fn kind(base: &str, category: &str) -> ColumnKind {
    match (base, category) {
        ("json" | "jsonb", _) => ColumnKind::Json,
        ("bytea", _) => ColumnKind::Binary,
        (_, "S") => ColumnKind::Text,
        (_, "N") => ColumnKind::Number,
        (_, "B") => ColumnKind::Boolean,
        _ => ColumnKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_is_one_url_per_host() {
        let targets = Targets::parse(
            "postgres://app:pw@h1:5432,h2:5433,[::1]:5434/db?sslmode=disable&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(
            targets,
            Targets {
                urls: vec![
                    "postgres://app:pw@h1:5432/db?sslmode=disable".into(),
                    "postgres://app:pw@h2:5433/db?sslmode=disable".into(),
                    "postgres://app:pw@[::1]:5434/db?sslmode=disable".into(),
                ],
                read_write: true,
            }
        );
        let single = Targets::parse("postgresql://localhost/db").unwrap();
        assert_eq!(single.urls, vec!["postgresql://localhost/db".to_owned()]);
        assert!(!single.read_write);
        assert!(Targets::parse("postgres://h1,,h2/db").is_err());
        assert!(Targets::parse("postgres://h1,h2/db?target_session_attrs=standby").is_err());
    }
}
