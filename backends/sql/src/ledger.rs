//! The replay guard's table on the SQL backends ([`SignatureLedger`]), over the store's writer
//! pool: every statement is a single-row insert, update or delete, atomic on its own.

use std::sync::Arc;

use async_trait::async_trait;
use ownid_bridge_store::{
    ledger_check, Claim, Identifier, Reserve, SchemaCheck, SignatureLedger, StoreError,
    OPERATION_BITS,
};
use sqlx::{Database, Row as _};

use crate::store::{run_ddl, DbRow};
use crate::{classify, Conn, Dialect, Pool, SqlBackend};

/// The statements, built once with the table's name quoted.
struct LedgerStatements {
    /// `(signature, expires_at, holder, lease_until)`: inserts unless the signature is there.
    insert: Arc<str>,
    /// `(holder, lease_until, signature, now, operation)`: takes over a reservation whose lease
    /// passed, made for the same operation.
    take_over: Arc<str>,
    /// `(signature)` → `(lease_until, holder)`
    state: Arc<str>,
    /// `(signature, holder)`
    used: Arc<str>,
    /// `(signature, holder)`
    release: Arc<str>,
    /// `(before)`
    forget: Arc<str>,
    /// Reads no row, fails when the table or a column is missing.
    probe: Arc<str>,
    create: Vec<String>,
}

impl LedgerStatements {
    fn new(dialect: Dialect, table: &Identifier) -> Self {
        let p = |n: usize| dialect.param(n);
        let name = table.as_str();
        let index = format!("{}_expiry", &name[..name.len().min(56)]);
        let t = dialect.quote(table);
        let insert = match dialect {
            Dialect::MySql => "INSERT IGNORE INTO",
            Dialect::Sqlite | Dialect::Postgres => "INSERT INTO",
        };
        let on_conflict = match dialect {
            Dialect::MySql => "",
            Dialect::Sqlite | Dialect::Postgres => " ON CONFLICT DO NOTHING",
        };
        let signature_type = match dialect {
            // Hex digits only: ASCII with a binary collation, so no collation folds two apart.
            Dialect::MySql => "VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin",
            Dialect::Sqlite | Dialect::Postgres => "VARCHAR(64)",
        };
        let columns = format!(
            "signature {signature_type} NOT NULL PRIMARY KEY, expires_at BIGINT NOT NULL, \
             holder BIGINT NOT NULL, lease_until BIGINT NULL"
        );
        let create = match dialect {
            Dialect::MySql => vec![format!(
                "CREATE TABLE IF NOT EXISTS {t} ({columns}, INDEX `{index}` (expires_at))"
            )],
            Dialect::Sqlite | Dialect::Postgres => vec![
                format!("CREATE TABLE IF NOT EXISTS {t} ({columns})"),
                format!("CREATE INDEX IF NOT EXISTS \"{index}\" ON {t} (expires_at)"),
            ],
        };
        LedgerStatements {
            insert: format!(
                "{insert} {t} (signature, expires_at, holder, lease_until) \
                 VALUES ({}, {}, {}, {}){on_conflict}",
                p(1),
                p(2),
                p(3),
                p(4)
            )
            .into(),
            take_over: format!(
                "UPDATE {t} SET holder = {}, lease_until = {} \
                 WHERE signature = {} AND lease_until < {} AND (holder & {OPERATION_BITS}) = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5)
            )
            .into(),
            state: format!(
                "SELECT lease_until, holder FROM {t} WHERE signature = {}",
                p(1)
            )
            .into(),
            used: format!(
                "UPDATE {t} SET lease_until = NULL WHERE signature = {} AND holder = {}",
                p(1),
                p(2)
            )
            .into(),
            // Kept, with a lease that has passed: the row still names the operation.
            release: format!(
                "UPDATE {t} SET lease_until = 0 \
                 WHERE signature = {} AND holder = {} AND lease_until IS NOT NULL",
                p(1),
                p(2)
            )
            .into(),
            forget: format!("DELETE FROM {t} WHERE expires_at < {}", p(1)).into(),
            probe: format!(
                "SELECT signature, expires_at, holder, lease_until FROM {t} WHERE 1 = 0"
            )
            .into(),
            create,
        }
    }
}

/// One bind parameter of a ledger statement.
#[derive(Clone, Copy)]
enum Param<'a> {
    Text(&'a str),
    Number(i64),
}

/// The replay guard's table in a SQL database.
pub struct SqlLedger<B: SqlBackend> {
    writer: Pool<Conn<B>>,
    prepared: bool,
    table: Identifier,
    sql: LedgerStatements,
}

impl<B: SqlBackend> SqlLedger<B> {
    pub(crate) fn new(writer: Pool<Conn<B>>, prepared: bool, table: &Identifier) -> Self {
        SqlLedger {
            writer,
            prepared,
            table: table.clone(),
            sql: LedgerStatements::new(B::DIALECT, table),
        }
    }
}

impl<B: SqlBackend> SqlLedger<B>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
    for<'q> &'q str: sqlx::Encode<'q, B::Database> + sqlx::Type<B::Database>,
    for<'q> i64: sqlx::Encode<'q, B::Database> + sqlx::Type<B::Database>,
    for<'r> i64: sqlx::Decode<'r, B::Database>,
    usize: sqlx::ColumnIndex<DbRow<B>>,
{
    fn classify(err: sqlx::Error) -> StoreError {
        classify(B::DIALECT, err, u64::MAX)
    }

    fn query<'q>(
        &self,
        statement: &Arc<str>,
        params: &[Param<'q>],
    ) -> sqlx::query::Query<'q, B::Database, <B::Database as Database>::Arguments> {
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(Arc::clone(statement))).persistent(self.prepared);
        for param in params {
            query = match *param {
                Param::Text(text) => query.bind(text),
                Param::Number(number) => query.bind(number),
            };
        }
        query
    }

    /// Runs a statement on a writer connection; the rows it changed.
    async fn execute(&self, statement: &Arc<str>, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(Self::classify)?;
        let done = conn
            .run(async |conn| self.query(statement, params).execute(conn).await)
            .await
            .map_err(Self::classify)?;
        Ok(B::rows_affected(&done))
    }

    /// The row's lease and holder: `None` when there is no row; the lease is `None` when the
    /// signature was used.
    async fn state(&self, signature: &str) -> Result<Option<(Option<i64>, i64)>, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(Self::classify)?;
        let row = conn
            .run(async |conn| {
                self.query(&self.sql.state, &[Param::Text(signature)])
                    .fetch_optional(conn)
                    .await
            })
            .await
            .map_err(Self::classify)?;
        row.map(|row| Ok((row.try_get::<Option<i64>, _>(0)?, row.try_get::<i64, _>(1)?)))
            .transpose()
            .map_err(Self::classify)
    }
}

#[async_trait]
impl<B: SqlBackend> SignatureLedger for SqlLedger<B>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
    for<'q> &'q str: sqlx::Encode<'q, B::Database> + sqlx::Type<B::Database>,
    for<'q> i64: sqlx::Encode<'q, B::Database> + sqlx::Type<B::Database>,
    for<'r> i64: sqlx::Decode<'r, B::Database>,
    usize: sqlx::ColumnIndex<DbRow<B>>,
{
    async fn reserve(&self, reserve: &Reserve<'_>) -> Result<Claim, StoreError> {
        // A row released or forgotten between two statements sends the loop round again; after
        // a few rounds the signature is treated as in flight (refused, retried by the caller).
        for _ in 0..3 {
            let inserted = self
                .execute(
                    &self.sql.insert,
                    &[
                        Param::Text(reserve.signature),
                        Param::Number(reserve.expires_at_ms),
                        Param::Number(reserve.holder),
                        Param::Number(reserve.lease_until_ms),
                    ],
                )
                .await?;
            if inserted > 0 {
                return Ok(Claim::Reserved);
            }
            let taken = self
                .execute(
                    &self.sql.take_over,
                    &[
                        Param::Number(reserve.holder),
                        Param::Number(reserve.lease_until_ms),
                        Param::Text(reserve.signature),
                        Param::Number(reserve.now_ms),
                        Param::Number(reserve.holder & OPERATION_BITS),
                    ],
                )
                .await?;
            if taken > 0 {
                return Ok(Claim::Reserved);
            }
            match self.state(reserve.signature).await? {
                Some((_, holder)) if holder & OPERATION_BITS != reserve.holder & OPERATION_BITS => {
                    return Ok(Claim::Used)
                }
                Some((None, _)) => return Ok(Claim::Used),
                Some((Some(_), _)) => return Ok(Claim::InFlight),
                None => continue,
            }
        }
        Ok(Claim::InFlight)
    }

    async fn mark_used(&self, signature: &str, holder: i64) -> Result<bool, StoreError> {
        let params = [Param::Text(signature), Param::Number(holder)];
        Ok(self.execute(&self.sql.used, &params).await? > 0)
    }

    async fn release(&self, signature: &str, holder: i64) -> Result<(), StoreError> {
        let params = [Param::Text(signature), Param::Number(holder)];
        self.execute(&self.sql.release, &params).await.map(drop)
    }

    async fn forget_expired(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.execute(&self.sql.forget, &[Param::Number(before_ms)])
            .await
    }

    async fn inspect(&self) -> Result<SchemaCheck, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(Self::classify)?;
        let probed = conn
            .run(async |conn| {
                sqlx::query(sqlx::AssertSqlSafe(Arc::clone(&self.sql.probe)))
                    .persistent(false)
                    .fetch_optional(conn)
                    .await
            })
            .await;
        Ok(match probed {
            Ok(_) => ledger_check(true, format!("{} is ready", self.table)),
            Err(err) => match Self::classify(err) {
                StoreError::Schema(detail) | StoreError::Other(detail) => ledger_check(
                    false,
                    format!(
                        "{} is missing or has other columns ({detail}); `ownid-bridge schema` \
                         creates it",
                        self.table
                    ),
                ),
                other => return Err(other),
            },
        })
    }

    async fn apply_schema(&self, dry_run: bool) -> Result<Vec<String>, StoreError> {
        if self.inspect().await?.ok() {
            return Ok(Vec::new());
        }
        if dry_run {
            return Ok(self.sql.create.clone());
        }
        run_ddl::<B>(&self.writer, &self.sql.create, Self::classify).await?;
        let check = self.inspect().await?;
        if !check.ok() {
            return Err(StoreError::Other(format!(
                "{} exists with other columns than the replay guard's: {}",
                self.table, check.detail
            )));
        }
        Ok(self.sql.create.clone())
    }
}
