//! The embedded default backend: one SQLite file next to the server, WAL mode with every commit
//! synced (`synchronous = FULL`), zero set-up.
//!
//! Writes go through a pool of exactly one connection and reads through a separate pool: SQLite
//! allows one writer at a time, and queueing writers in the pool (instead of letting several
//! connections race for the file lock) is what keeps "database is locked" away under load.

use std::str::FromStr;
use std::time::Duration;

use ownid_bridge_sql::{
    connector, declared_width, Column, ColumnKind, Dialect, Pool, Pooled, SqlBackend, SqlStore,
    TableFacts,
};
use ownid_bridge_store::{PoolSettings, StoreError, UsersMapping};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::Row;

/// A pool of SQLite connections.
pub type SqlitePool = Pool<SqliteConnection>;
type SqlitePooled = Pooled<SqliteConnection>;

#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// `sqlite://path/to/file.db` or `sqlite:///absolute/path.db`.
    pub url: String,
    pub mapping: UsersMapping,
    pub pool: PoolSettings,
    /// Create the database file when it does not exist (`check` passes false: it changes
    /// nothing).
    pub create_if_missing: bool,
}

/// Page cache of each reader connection: 256 KiB (negative = KiB) instead of SQLite's 2 MiB. A
/// lookup by login id touches a handful of pages, and at the default every reader filled its own
/// 2 MiB with pages the operating system's file cache keeps anyway (the figures:
/// docs/benchmarks.md, "Memory").
const READER_CACHE_SIZE: &str = "-256";

/// Reader connections per CPU. Each SQLite connection is an OS thread running blocking reads, so
/// readers beyond the CPUs only add memory and context switches (measured against one reader per
/// connection: docs/benchmarks.md, "What the profiles led to").
pub const READERS_PER_CPU: u32 = 2;

/// `pool.max_connections`, but at most [`READERS_PER_CPU`] per CPU (and at least one).
fn reader_connections(pool: &PoolSettings) -> u32 {
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
    pool.max_connections
        .min(cpus.saturating_mul(READERS_PER_CPU))
        .max(1)
}

/// The store's two pools for `url`: readers (read-only, at most [`READERS_PER_CPU`] a CPU, a
/// [`READER_CACHE_SIZE`] page cache each) and the one writer, both in WAL mode. `ownid-bench raw`
/// measures the database through these same pools.
pub async fn open_pools(
    url: &str,
    pool: &PoolSettings,
    create_if_missing: bool,
) -> Result<(SqlitePool, SqlitePool), StoreError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Other(
            "an in-memory SQLite database would not be shared between connections; \
             give a file, e.g. sqlite://ownid-bridge.db"
                .into(),
        ));
    }
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|err| StoreError::Other(format!("invalid SQLite URL: {err}")))?
        .create_if_missing(create_if_missing)
        .journal_mode(SqliteJournalMode::Wal)
        // How long a statement waits for another process's write lock: SQLite's statement
        // timeout (its statements are lookups by an index; waiting is all that takes long).
        .busy_timeout(
            pool.statement_timeout
                .unwrap_or(pool.acquire_timeout.max(Duration::from_secs(1))),
        );
    let classify = |err| ownid_bridge_sql::classify(Dialect::Sqlite, err, u64::MAX);
    // FULL: each commit is synced to the WAL before the set is acknowledged. With NORMAL, the
    // last acknowledged sets could roll back after a power loss (a removed passkey would come
    // back). Its cost: docs/benchmarks.md, "Paired A/B: the security changes of issue 11".
    let writer = Pool::new(
        connector(connect.clone().synchronous(SqliteSynchronous::Full)),
        pool,
        1,
    );
    // Opened now, not on first use: a file that cannot be opened (or created) is an error at
    // start-up, and the readers, which are read-only, need the file to exist.
    writer.ping().await.map_err(classify)?;
    let reader = Pool::new(
        connector(
            connect
                .read_only(true)
                .pragma("cache_size", READER_CACHE_SIZE),
        ),
        pool,
        reader_connections(pool),
    );
    reader.ping().await.map_err(classify)?;
    Ok((reader, writer))
}

/// The file a SQLite URL names, as sqlx reads the URL (`sqlite://x.db`, `sqlite:x.db`,
/// `sqlite:///abs/x.db`, with or without `?mode=...`): `None` when the URL does not parse.
pub fn database_file(url: &str) -> Option<std::path::PathBuf> {
    SqliteConnectOptions::from_str(url)
        .ok()
        .map(|options| options.get_filename().to_owned())
}

/// The SQLite backend of [`SqlStore`].
pub struct Sqlite;

/// A users table in SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlBackend for Sqlite {
    type Database = sqlx::Sqlite;
    type Options = SqliteOptions;
    const DIALECT: Dialect = Dialect::Sqlite;
    const NAME: &'static str = "sqlite";

    async fn open(options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(schema) = &options.mapping.table.schema {
            return Err(StoreError::Schema(format!(
                "users.table {}: SQLite has no schemas; name the table alone, without \
                 `{schema}.`",
                options.mapping.table
            )));
        }
        let (reader, writer) =
            open_pools(&options.url, &options.pool, options.create_if_missing).await?;
        Ok(SqlStore::new(reader, writer, options.pool, options.mapping))
    }

    async fn facts(store: &SqliteStore) -> Result<TableFacts, StoreError> {
        facts(store).await
    }

    fn rows_affected(done: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

async fn facts(store: &SqliteStore) -> Result<TableFacts, StoreError> {
    let table = store.mapping().table.name.as_str();
    let classify = |err| store.classify(err);
    let mut conn = store.reader().acquire().await.map_err(classify)?;
    let exists = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            )
            .bind(table)
            .fetch_optional(conn)
            .await
        })
        .await
        .map_err(classify)?
        .is_some();
    if !exists {
        let others = conn
            .run(async |conn| {
                sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                )
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
    // `hidden` is 2 or 3 for a generated column (table_xinfo lists those too).
    let rows = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT name, type, dflt_value, hidden IN (2, 3), \"notnull\" = 0 \
                 FROM pragma_table_xinfo(?1) WHERE hidden <> 1",
            )
            .bind(table)
            .fetch_all(conn)
            .await
        })
        .await
        .map_err(classify)?;
    let mut columns = Vec::new();
    for row in rows {
        let declared: String = row.try_get(1).map_err(classify)?;
        columns.push(Column {
            name: row.try_get(0).map_err(classify)?,
            max_chars: declared_width(&declared),
            kind: affinity(&declared),
            default: row.try_get(2).map_err(classify)?,
            generated: row.try_get(3).map_err(classify)?,
            nullable: row.try_get(4).map_err(classify)?,
            declared,
            ..Column::default()
        });
    }
    let unique_index = login_id_unique_index(store, &mut conn).await?;
    if let Some(collation) = &unique_index {
        let login = columns.iter_mut().find(|c| {
            c.name
                .eq_ignore_ascii_case(store.mapping().login_id.as_str())
        });
        if let Some(login) = login.filter(|_| !collation.eq_ignore_ascii_case("BINARY")) {
            login.loose = true;
            login.collation = Some(format!("COLLATE {collation}"));
        }
    }
    Ok(TableFacts {
        exists,
        columns,
        login_id_unique: unique_index.is_some(),
        ..TableFacts::default()
    })
}

/// A column's kind from its declared type, by SQLite's affinity rules (section 3.1 of
/// "Datatypes In SQLite"): TEXT affinity and BLOB (none) affinity keep a string as it is written;
/// INTEGER, REAL and NUMERIC affinity turn a string that looks like a number into one (`"0012"`
/// would come back `12`), so OwnID's strings cannot be kept byte for byte in them.
fn affinity(declared: &str) -> ColumnKind {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        ColumnKind::Number
    } else if ["CHAR", "CLOB", "TEXT", "BLOB"]
        .iter()
        .any(|t| upper.contains(t))
        || upper.trim().is_empty()
    {
        ColumnKind::Text
    } else {
        // REAL, FLOA, DOUB, and everything else (NUMERIC, DECIMAL, BOOLEAN, DATE, JSON).
        ColumnKind::Number
    }
}

/// The collation of a full (not partial) unique index on exactly the login-id column, or
/// `None` when there is no such index. A column declared `COLLATE NOCASE` gives its index
/// that collation, and the index then calls `Alice@…` and `alice@…` the same entry.
async fn login_id_unique_index(
    store: &SqliteStore,
    conn: &mut SqlitePooled,
) -> Result<Option<String>, StoreError> {
    let classify = |err| store.classify(err);
    let indexes = conn
        .run(async |conn| {
            sqlx::query(
                "SELECT il.name FROM pragma_index_list(?1) AS il \
         WHERE il.\"unique\" = 1 AND il.partial = 0",
            )
            .bind(store.mapping().table.name.as_str())
            .fetch_all(conn)
            .await
        })
        .await
        .map_err(classify)?;
    for index in indexes {
        let name: String = index.try_get(0).map_err(classify)?;
        let columns = conn
            .run(async |conn| {
                sqlx::query("SELECT name, coll FROM pragma_index_xinfo(?1) WHERE key = 1")
                    .bind(&name)
                    .fetch_all(conn)
                    .await
            })
            .await
            .map_err(classify)?;
        if let [only] = columns.as_slice() {
            let column: Option<String> = only.try_get(0).map_err(classify)?;
            if column.is_some_and(|c| c.eq_ignore_ascii_case(store.mapping().login_id.as_str())) {
                return Ok(Some(only.try_get(1).map_err(classify)?));
            }
        }
    }
    Ok(None)
}
