//! `seed`: the demo table from the server's own schema code, then users in bulk.

use std::str::FromStr;
use std::time::Instant;

use mongodb::bson::{doc, Document};
use ownid_bridge::config::{Backend, Config};
use ownid_bridge_sql::Dialect;
use ownid_bridge_store::{Identifier, UsersMapping};
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::{login_id, ownid_data, BoxError, OWNID_DATA_LEN};

/// Rows per INSERT ... SELECT statement (each statement is its own transaction).
const SQL_CHUNK: u64 = 250_000;
/// Documents per insertMany.
const MONGO_BATCH: u64 = 1_000;

pub async fn seed(backend: Backend, url: &str, users: u64) -> Result<(), BoxError> {
    let started = Instant::now();
    let mapping = UsersMapping::demo();
    prepare(backend, url, &mapping).await?;

    // The table (collection) and its unique index, exactly as `ownid-bridge schema` makes them.
    let yaml = format!(
        "storage:\n  backend: {}\n  url: {}\n",
        backend.name(),
        serde_json::to_string(url)?
    );
    let config = Config::from_yaml(&yaml, &[])?;
    let store = ownid_bridge::storage::open(&config.storage, true).await?;
    let changes = store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await?;
    drop(store);
    for change in &changes.statements {
        eprintln!("seed: schema: {change}");
    }

    let inserted = match backend {
        Backend::Sqlite => seed_sqlite(url, &mapping, users).await?,
        Backend::Postgres => seed_postgres(url, &mapping, users).await?,
        Backend::Mysql => seed_mysql(url, &mapping, users).await?,
        Backend::Mongodb => seed_mongodb(url, &mapping, users).await?,
    };
    if inserted != users {
        return Err(format!("inserted {inserted} users, expected {users}").into());
    }
    println!(
        "{}",
        serde_json::json!({
            "backend": backend.name(),
            "users": users,
            "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

/// Removes the previous table (collection); for MySQL, creates the database named in the URL.
async fn prepare(backend: Backend, url: &str, mapping: &UsersMapping) -> Result<(), BoxError> {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::from_str(url)?.create_if_missing(true),
            )
            .await?;
            let table = Dialect::Sqlite.quote_table(&mapping.table);
            conn.execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                .await?;
            conn.execute("VACUUM").await?;
            conn.close().await?;
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let table = Dialect::Postgres.quote_table(&mapping.table);
            conn.execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                .await?;
            conn.close().await?;
        }
        Backend::Mysql => {
            let mut server = url::Url::parse(url)?;
            let database = server.path().trim_start_matches('/').to_owned();
            let database = Identifier::new(&database).map_err(|err| {
                format!("the MySQL URL must name the database to use as its path: {err}")
            })?;
            server.set_path("/");
            let mut conn = sqlx::MySqlConnection::connect(server.as_str()).await?;
            conn.execute(AssertSqlSafe(format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
                Dialect::MySql.quote(&database)
            )))
            .await?;
            conn.close().await?;
            let mut conn = sqlx::MySqlConnection::connect(url).await?;
            let table = Dialect::MySql.quote_table(&mapping.table);
            conn.execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                .await?;
            conn.close().await?;
        }
        Backend::Mongodb => {
            let users = mongo_collection(url, mapping, 4).await?;
            if users.drop().await.is_err() {
                // Servers without `drop`: empty it instead (the index stays, which is fine).
                users.delete_many(Document::new()).await?;
            }
        }
    }
    Ok(())
}

/// The one `INSERT ... SELECT` that generates users `?first..=?last` (bound in that order) in the
/// database itself, in `dialect`'s SQL: login id `user{i}@bench.example` and about
/// `OWNID_DATA_LEN` characters of hex for ownIdData.
fn bulk_insert_sql(dialect: Dialect, mapping: &UsersMapping) -> String {
    let q = |identifier: &Identifier| dialect.quote(identifier);
    let (table, login, data) = (
        dialect.quote_table(&mapping.table),
        q(&mapping.login_id),
        q(&mapping.ownid_data),
    );
    match dialect {
        Dialect::Sqlite => {
            let half = OWNID_DATA_LEN / 2;
            format!(
                "WITH RECURSIVE seq(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?2) \
                 INSERT INTO {table} ({login}, {data}) \
                 SELECT 'user' || i || '@bench.example', hex(randomblob({half})) FROM seq"
            )
        }
        Dialect::Postgres => {
            let repeats = OWNID_DATA_LEN / 32; // md5() is 32 hex characters
            format!(
                "INSERT INTO {table} ({login}, {data}) \
                 SELECT 'user' || i || '@bench.example', repeat(md5(i::text), {repeats}) \
                 FROM generate_series($1::int8, $2::int8) AS i"
            )
        }
        Dialect::MySql => {
            let repeats = OWNID_DATA_LEN / 32;
            format!(
                "INSERT INTO {table} ({login}, {data}) \
                 WITH RECURSIVE seq (i) AS \
                   (SELECT CAST(? AS SIGNED) UNION ALL SELECT i + 1 FROM seq WHERE i < ?) \
                 SELECT CONCAT('user', i, '@bench.example'), REPEAT(MD5(i), {repeats}) FROM seq"
            )
        }
    }
}

/// Runs `sql` (see [`bulk_insert_sql`]) once per chunk of `SQL_CHUNK` users out of `0..users`,
/// binding the chunk's first and last index; the rows inserted, read with `rows_affected`.
async fn insert_in_chunks<DB>(
    conn: &mut DB::Connection,
    sql: &str,
    users: u64,
    rows_affected: fn(&DB::QueryResult) -> u64,
) -> Result<u64, BoxError>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut inserted = 0;
    let mut first = 0;
    while first < users {
        let last = (first + SQL_CHUNK).min(users) - 1;
        let done = sqlx::query::<DB>(AssertSqlSafe(sql.to_owned()))
            .bind(first as i64)
            .bind(last as i64)
            .execute(&mut *conn)
            .await?;
        inserted += rows_affected(&done);
        first = last + 1;
    }
    Ok(inserted)
}

async fn seed_sqlite(url: &str, mapping: &UsersMapping, users: u64) -> Result<u64, BoxError> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let inserted = insert_in_chunks::<sqlx::Sqlite>(
        &mut conn,
        &bulk_insert_sql(Dialect::Sqlite, mapping),
        users,
        sqlx::sqlite::SqliteQueryResult::rows_affected,
    )
    .await?;
    conn.execute("ANALYZE").await?;
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
    conn.close().await?;
    Ok(inserted)
}

async fn seed_postgres(url: &str, mapping: &UsersMapping, users: u64) -> Result<u64, BoxError> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let inserted = insert_in_chunks::<sqlx::Postgres>(
        &mut conn,
        &bulk_insert_sql(Dialect::Postgres, mapping),
        users,
        sqlx::postgres::PgQueryResult::rows_affected,
    )
    .await?;
    // What autovacuum would do soon anyway: statistics, hint bits and the visibility map.
    let table = Dialect::Postgres.quote_table(&mapping.table);
    conn.execute(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
        .await?;
    conn.close().await?;
    Ok(inserted)
}

async fn seed_mysql(url: &str, mapping: &UsersMapping, users: u64) -> Result<u64, BoxError> {
    let mut conn = sqlx::MySqlConnection::connect(url).await?;
    // The recursion limit of a CTE: MariaDB's and MySQL's names for it (each ignores the other's).
    let depth = SQL_CHUNK + 10;
    for variable in ["max_recursive_iterations", "cte_max_recursion_depth"] {
        let _ = conn
            .execute(AssertSqlSafe(format!("SET SESSION {variable} = {depth}")))
            .await;
    }
    let inserted = insert_in_chunks::<sqlx::MySql>(
        &mut conn,
        &bulk_insert_sql(Dialect::MySql, mapping),
        users,
        sqlx::mysql::MySqlQueryResult::rows_affected,
    )
    .await?;
    let table = Dialect::MySql.quote_table(&mapping.table);
    conn.execute(AssertSqlSafe(format!("ANALYZE TABLE {table}")))
        .await?;
    conn.close().await?;
    Ok(inserted)
}

pub async fn mongo_collection(
    url: &str,
    mapping: &UsersMapping,
    pool: u32,
) -> Result<mongodb::Collection<Document>, BoxError> {
    let mut options = mongodb::options::ClientOptions::parse(url).await?;
    let database = options
        .default_database
        .clone()
        .ok_or("the MongoDB URL names no database (add it as the path)")?;
    options.max_pool_size = Some(pool.max(1));
    options.app_name = Some("ownid-bench".into());
    let client = mongodb::Client::with_options(options)?;
    Ok(client
        .database(&database)
        .collection(&mapping.table.to_string()))
}

async fn seed_mongodb(url: &str, mapping: &UsersMapping, users: u64) -> Result<u64, BoxError> {
    const IN_FLIGHT: u64 = 4;
    let collection = mongo_collection(url, mapping, IN_FLIGHT as u32).await?;
    let (login, data) = (mapping.login_id.as_str(), mapping.ownid_data.as_str());
    let mut inserted = 0;
    let mut first = 0;
    while first < users {
        // A few batches at a time.
        let mut batches = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            if first >= users {
                break;
            }
            let last = (first + MONGO_BATCH).min(users);
            let documents: Vec<Document> = (first..last)
                .map(|i| doc! { login: login_id(i), data: ownid_data(i) })
                .collect();
            let collection = collection.clone();
            batches.spawn(async move { collection.insert_many(documents).await });
            first = last;
        }
        while let Some(result) = batches.join_next().await {
            inserted += result??.inserted_ids.len() as u64;
        }
    }
    Ok(inserted)
}

pub async fn server_version(backend: Backend, url: &str) -> Result<String, BoxError> {
    Ok(match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await?;
            let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()")
                .fetch_one(&mut conn)
                .await?;
            format!("SQLite {version} (bundled with sqlx)")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let (version,): (String,) = sqlx::query_as("SELECT split_part(version(), ' on ', 1)")
                .fetch_one(&mut conn)
                .await?;
            version
        }
        Backend::Mysql => {
            let mut conn = sqlx::MySqlConnection::connect(url).await?;
            let (version, comment): (String, String) =
                sqlx::query_as("SELECT CAST(VERSION() AS CHAR), CAST(@@version_comment AS CHAR)")
                    .fetch_one(&mut conn)
                    .await?;
            format!("{version} ({comment})")
        }
        Backend::Mongodb => {
            let collection = mongo_collection(url, &UsersMapping::demo(), 1).await?;
            let info = collection
                .client()
                .database("admin")
                .run_command(doc! { "buildInfo": 1 })
                .await?;
            let version = info.get_str("version").unwrap_or("unknown");
            format!("MongoDB wire protocol, buildInfo version {version}")
        }
    })
}
