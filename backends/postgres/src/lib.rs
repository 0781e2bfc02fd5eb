//! The PostgreSQL backend (also the wire protocol of CockroachDB and YugabyteDB).
//!
//! Lookups use `WHERE login_id = $1`, so they need a B-tree index on the login-id column; the
//! unique index `schema` creates is one. Statements are prepared once per connection and cached by
//! sqlx; connections come from the SQL backends' own pool (`ownid_bridge_sql::Pool`).

use std::str::FromStr;

use ownid_bridge_sql::{connector, Column, Dialect, Pool, SqlBackend, SqlStore, TableFacts};
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
}

/// The store's pool for `url`. It connects when a connection is first needed: the server starts
/// (and answers 503) while the database is down, and the pool connects once it is back.
/// `ownid-bench raw` measures the database through this same pool. Must be called within a
/// Tokio runtime.
pub fn open_pool(url: &str, settings: &PoolSettings) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Other("invalid PostgreSQL URL".into()))?
        .application_name("ownid-bridge");
    Ok(Pool::new(
        connector(options),
        settings,
        settings.max_connections,
    ))
}

/// The type the login-id parameter is cast to so that the lookup uses the column's index: the
/// column's own type when it is not a plain string type (`citext`, or a domain), else none. A
/// `text` parameter compared with a `citext` column compares as text, which is exact but cannot
/// use the citext index.
async fn login_cast(pool: &PgPool, mapping: &UsersMapping) -> Result<Option<String>, StoreError> {
    let classify = |err| ownid_bridge_sql::classify(Dialect::Postgres, err, u64::MAX);
    let mut conn = pool.acquire().await.map_err(classify)?;
    let Some(row) = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         WHERE c.relname = $1 AND c.relkind IN ('r', 'p') \
         AND pg_catalog.pg_table_is_visible(c.oid) AND a.attname = $2 AND NOT a.attisdropped",
            )
            .bind(mapping.table.as_str())
            .bind(mapping.login_id.as_str())
            .fetch_optional(conn)
            .await
        })
        .await
        .map_err(classify)?
    else {
        return Ok(None);
    };
    let type_name: String = row.try_get(0).map_err(classify)?;
    let plain = ["text", "character varying", "character", "name"];
    // The name goes into the statement's text: only what the catalogue prints for an ordinary
    // (possibly schema-qualified) type name is used; anything else keeps the exact text lookup.
    let simple = type_name.split('.').all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    Ok((!plain.contains(&type_name.as_str()) && simple).then_some(type_name))
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
        let pool = open_pool(&options.url, &settings)?;
        let login_cast =
            ownid_bridge_sql::within(&settings, "PostgreSQL", login_cast(&pool, &options.mapping))
                .await?;
        Ok(SqlStore::new(
            pool.clone(),
            pool,
            settings,
            options.mapping,
            login_cast.as_deref(),
        ))
    }

    async fn facts(store: &PostgresStore) -> Result<TableFacts, StoreError> {
        facts(store).await
    }

    fn rows_affected(done: &sqlx::postgres::PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

async fn facts(store: &PostgresStore) -> Result<TableFacts, StoreError> {
    let classify = |err| store.classify(err);
    let mut conn = store.reader().acquire().await.map_err(classify)?;
    // The table as the search path resolves it, like the unqualified name in the statements.
    let Some(table) = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT c.oid::int8 FROM pg_catalog.pg_class c \
         WHERE c.relname = $1 AND c.relkind IN ('r', 'p') \
         AND pg_catalog.pg_table_is_visible(c.oid)",
            )
            .bind(store.mapping().table.as_str())
            .fetch_optional(conn)
            .await
        })
        .await
        .map_err(classify)?
    else {
        return Ok(TableFacts::default());
    };
    let oid: i64 = table.try_get(0).map_err(|err| store.classify(err))?;
    let rows = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
         CASE WHEN a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4 \
              THEN (a.atttypmod - 4)::int8 END, \
         CASE WHEN t.typname = 'citext' THEN 'citext' \
              WHEN NOT co.collisdeterministic \
              THEN co.collname::text || ' (nondeterministic)' END \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped",
            )
            .bind(oid)
            .fetch_all(conn)
            .await
        })
        .await
        .map_err(classify)?;
    let mut columns = Vec::new();
    for row in rows {
        let max_chars: Option<i64> = row.try_get(2).map_err(|err| store.classify(err))?;
        let loose: Option<String> = row.try_get(3).map_err(|err| store.classify(err))?;
        columns.push(Column {
            name: row.try_get(0).map_err(|err| store.classify(err))?,
            declared: row.try_get(1).map_err(|err| store.classify(err))?,
            max_chars: max_chars.map(|n| n as u64),
            loose: loose.is_some(),
            collation: loose,
            ..Column::default()
        });
    }
    let unique = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT 1 FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = $1::int8::oid AND i.indisunique AND i.indnatts = 1 \
         AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2",
            )
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
    })
}
