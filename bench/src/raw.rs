//! `raw`: the server's own single-row statements, straight through the same driver.
//!
//! The SQL comes from `ownid_bridge_sql::Statements` (the very strings the server prepares), the
//! pools are the ones each backend's store opens (`open_pool`, SQLite's `open_pools`: connection
//! settings, pool, SQLite's reader cap), and sqlx prepares each statement once per connection and
//! caches it, as in the server. What is left out is exactly the HTTP server:
//! parsing, signature check, JSON, routing, logging and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Bson, Document};
use ownid_bridge_sql::{Dialect, Statements};
use ownid_bridge_store::{PoolSettings, UsersMapping};
use sqlx::{AssertSqlSafe, Row};

use crate::{login_id, ownid_data, Backend, BoxError, Op, Rng};

pub struct RawOptions {
    pub backend: Backend,
    pub url: String,
    pub users: u64,
    pub op: Op,
    pub concurrency: u32,
    pub pool: u32,
    pub seconds: f64,
    pub warmup: f64,
}

enum Target {
    Sqlite {
        reader: ownid_bridge_sqlite::SqlitePool,
        writer: ownid_bridge_sqlite::SqlitePool,
        sql: Statements,
    },
    Postgres {
        pool: ownid_bridge_postgres::PgPool,
        sql: Statements,
    },
    MySql {
        pool: ownid_bridge_mysql::MySqlPool,
        sql: Statements,
    },
    Mongo {
        users: mongodb::Collection<Document>,
        mapping: UsersMapping,
    },
}

/// One operation of the server's data path, with the driver's error as text.
macro_rules! sql_op {
    ($reader:expr, $writer:expr, $sql:expr, $op:expr, $login:expr, $value:expr) => {{
        match $op {
            Op::Get => {
                let mut conn = $reader.acquire().await.map_err(|err| err.to_string())?;
                let result = sqlx::query(AssertSqlSafe(Arc::clone(&$sql.get)))
                    .bind($login)
                    .bind($login)
                    .fetch_optional(&mut *conn)
                    .await;
                let row = conn
                    .settle(result)
                    .map_err(|err| err.to_string())?
                    .ok_or("no such user")?;
                let data: Option<String> = row.try_get(0).map_err(|err| err.to_string())?;
                if data.is_none() {
                    return Err("no ownIdData".into());
                }
            }
            Op::Set => {
                let mut conn = $writer.acquire().await.map_err(|err| err.to_string())?;
                let result = sqlx::query(AssertSqlSafe(Arc::clone(&$sql.update)))
                    .bind($value)
                    .bind($login)
                    .bind($login)
                    .execute(&mut *conn)
                    .await;
                let updated = conn
                    .settle(result)
                    .map_err(|err| err.to_string())?
                    .rows_affected();
                if updated == 0 {
                    return Err("no such user".into());
                }
            }
            Op::Session => {
                let mut conn = $reader.acquire().await.map_err(|err| err.to_string())?;
                let result = sqlx::query(AssertSqlSafe(Arc::clone(&$sql.session)))
                    .bind($login)
                    .bind($login)
                    .fetch_optional(&mut *conn)
                    .await;
                let row = conn
                    .settle(result)
                    .map_err(|err| err.to_string())?
                    .ok_or("no such user")?;
                let _subject: String = row.try_get(0).map_err(|err| err.to_string())?;
            }
        }
        Ok(())
    }};
}

impl Target {
    async fn connect(options: &RawOptions) -> Result<Target, BoxError> {
        let mapping = UsersMapping::demo();
        let pool = options.pool;
        // The server's own pool options (connection checks included), with a longer wait.
        let settings = PoolSettings {
            max_connections: pool,
            acquire_timeout: Duration::from_secs(30),
            ..PoolSettings::default()
        };
        Ok(match options.backend {
            Backend::Sqlite => {
                let (reader, writer) =
                    ownid_bridge_sqlite::open_pools(&options.url, &settings, false).await?;
                Target::Sqlite {
                    reader,
                    writer,
                    sql: Statements::new(Dialect::Sqlite, &mapping, None),
                }
            }
            Backend::Postgres => {
                let pool = ownid_bridge_postgres::open_pool(&options.url, &settings)?;
                // The pool connects lazily; an unreachable database fails here, not in the run.
                pool.ping().await?;
                Target::Postgres {
                    pool,
                    sql: Statements::new(Dialect::Postgres, &mapping, None),
                }
            }
            Backend::Mysql => {
                let pool = ownid_bridge_mysql::open_pool(&options.url, &settings)?;
                pool.ping().await?;
                Target::MySql {
                    pool,
                    sql: Statements::new(Dialect::MySql, &mapping, None),
                }
            }
            Backend::Mongodb => Target::Mongo {
                users: crate::seed::mongo_collection(&options.url, &mapping, pool).await?,
                mapping,
            },
        })
    }

    async fn call(&self, op: Op, login: &str, value: &str) -> Result<(), String> {
        match self {
            Target::Sqlite {
                reader,
                writer,
                sql,
            } => sql_op!(reader, writer, sql, op, login, value),
            Target::Postgres { pool, sql } => sql_op!(pool, pool, sql, op, login, value),
            Target::MySql { pool, sql } => sql_op!(pool, pool, sql, op, login, value),
            Target::Mongo { users, mapping } => {
                // The backend's own calls: find_one with a projection, update_one with $set.
                let filter = doc! { mapping.login_id.as_str(): login };
                match op {
                    Op::Get | Op::Session => {
                        let field = if op == Op::Get {
                            mapping.ownid_data.as_str()
                        } else {
                            mapping.login_id.as_str()
                        };
                        let user = users
                            .find_one(filter)
                            .projection(doc! { field: 1 })
                            .await
                            .map_err(|err| err.kind.to_string())?
                            .ok_or("no such user")?;
                        match user.get(field) {
                            Some(Bson::String(_)) => {}
                            _ => return Err(format!("no string {field}")),
                        }
                    }
                    Op::Set => {
                        let update = doc! { "$set": { mapping.ownid_data.as_str(): value } };
                        let result = users
                            .update_one(filter, update)
                            .await
                            .map_err(|err| err.kind.to_string())?;
                        if result.matched_count == 0 {
                            return Err("no such user".into());
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// What one task measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

pub async fn run(options: RawOptions) -> Result<(), BoxError> {
    let target = Arc::new(Target::connect(&options).await?);
    // Distinct 1 KB values to write, like the pre-signed set requests carry.
    let values: Arc<Vec<String>> = Arc::new((0..64).map(|i| ownid_data(1_000_000 + i)).collect());
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(options.warmup.max(0.0));
    let until = measure_from + Duration::from_secs_f64(options.seconds.max(0.1));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..options.concurrency {
        let target = Arc::clone(&target);
        let values = Arc::clone(&values);
        let (op, users) = (options.op, options.users);
        tasks.spawn(async move {
            let mut rng = Rng::new(u64::from(task) * 7919 + 17);
            let mut tally = Tally::default();
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let login = login_id(rng.below(users));
                let value = &values[rng.below(values.len() as u64) as usize];
                // A statement still running at the end of the window is abandoned, as wrk
                // abandons its requests in flight.
                let deadline = tokio::time::Instant::from_std(until);
                let Ok(result) =
                    tokio::time::timeout_at(deadline, target.call(op, &login, value)).await
                else {
                    break;
                };
                let done = Instant::now();
                // Counted when it completes inside the measured window, as wrk counts.
                if done >= measure_from && done < until {
                    let micros = done.duration_since(sent).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    if let Err(err) = result {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(err);
                    }
                }
            }
            tally
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    if let Some(err) = first_error {
        eprintln!("ownid-bench raw: {errors} errors, the first: {err}");
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let window = until.duration_since(measure_from).as_secs_f64();
    let round = |x: f64, digits: i32| {
        let scale = 10f64.powi(digits);
        (x * scale).round() / scale
    };
    println!(
        "{}",
        serde_json::json!({
            "rps": round(latencies.len() as f64 / window, 1),
            "p50_ms": round(percentile(50.0), 3),
            "p99_ms": round(percentile(99.0), 3),
            "errors": errors,
        })
    );
    Ok(())
}
