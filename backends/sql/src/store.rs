//! The data path of the three SQL backends, written once: [`SqlStore`] over a [`SqlBackend`].
//!
//! A backend crate supplies only what differs (its driver, how it connects, how it reads the
//! table's shape from its catalogue); the statements, the lookups, the exact login-id match,
//! the error mapping and the schema commands are here. Every statement runs through
//! [`Pooled::run`], which settles the connection on every path.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use ownid_bridge_store::{
    ExportBatches, ExportSink, Identifier, PoolSettings, PoolStatus, SchemaChanges, SchemaOptions,
    SchemaReport, SessionUser, SetOutcome, SignatureLedger, StoreError, UserStore, UsersMapping,
};
use sqlx::{Database, Row as _};

use crate::{
    classify, plan, report, within, Capacity, Dialect, Pool, Pooled, SqlLedger, Statements,
    TableFacts,
};

/// A driver's connection, row and statement result, for backend `B`.
pub type Conn<B> = <<B as SqlBackend>::Database as Database>::Connection;
pub(crate) type DbRow<B> = <<B as SqlBackend>::Database as Database>::Row;
type Done<B> = <<B as SqlBackend>::Database as Database>::QueryResult;

/// What one SQL database brings to [`SqlStore`].
pub trait SqlBackend: Sized + Send + Sync + 'static {
    /// The sqlx driver.
    type Database: Database + sqlx::database::HasStatementCache;
    /// The backend's own connection options (URL, mapping, pool settings, ...).
    type Options: Send;
    /// Its SQL syntax: quoting, parameters, the exact comparison, upserts, types.
    const DIALECT: Dialect;
    /// The name in logs and `check` output.
    const NAME: &'static str;

    /// Opens the store's pools (connecting lazily or not, as the database needs).
    fn open(
        options: Self::Options,
    ) -> impl Future<Output = Result<SqlStore<Self>, StoreError>> + Send;

    /// The users table's shape, read from the database's catalogue.
    fn facts(store: &SqlStore<Self>)
        -> impl Future<Output = Result<TableFacts, StoreError>> + Send;

    /// Rows a statement changed (sqlx has no driver-independent accessor for it).
    fn rows_affected(done: &Done<Self>) -> u64;
}

/// A user table in a SQL database.
pub struct SqlStore<B: SqlBackend> {
    reader: Pool<Conn<B>>,
    writer: Pool<Conn<B>>,
    settings: PoolSettings,
    mapping: UsersMapping,
    /// Rebuilt by `inspect` from the table's shape (the ownIdData column's kind, the login
    /// column's type): see [`Statements::new`].
    sql: std::sync::RwLock<Arc<Statements>>,
    /// The ownIdData column's limits, refreshed by `inspect`.
    capacity: Capacity,
    /// Whether statements are prepared once per connection and kept (named prepared statements,
    /// cached by sqlx); not behind a transaction pooler, where the next transaction may run on
    /// another server connection (see [`Pool::new_in_transactions`]).
    prepared: bool,
}

impl<B: SqlBackend> SqlStore<B> {
    /// A store over `reader` and `writer` (the same pool twice where one suffices). Its
    /// statements are those of plain text columns until `inspect` reads the table.
    pub fn new(
        reader: Pool<Conn<B>>,
        writer: Pool<Conn<B>>,
        settings: PoolSettings,
        mapping: UsersMapping,
    ) -> Self {
        SqlStore {
            prepared: !writer.runs_in_transactions(),
            reader,
            writer,
            settings,
            sql: std::sync::RwLock::new(Arc::new(Statements::new(
                B::DIALECT,
                &mapping,
                &TableFacts::default(),
            ))),
            mapping,
            capacity: Capacity::default(),
        }
    }

    /// The statements this store runs (tests `EXPLAIN` them to see the index used).
    pub fn statements(&self) -> Arc<Statements> {
        Arc::clone(
            &self
                .sql
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn mapping(&self) -> &UsersMapping {
        &self.mapping
    }

    /// The pool the catalogue is read through.
    pub fn reader(&self) -> &Pool<Conn<B>> {
        &self.reader
    }

    /// A driver error as the store's error, in this backend's dialect.
    pub fn classify(&self, err: sqlx::Error) -> StoreError {
        classify(B::DIALECT, err, self.capacity.chars())
    }

    /// Runs `statement` on `conn` ([`Pooled::run`]: a connection whose statement did not finish
    /// is never reused) and classifies its error.
    async fn run<T>(
        &self,
        conn: &mut Pooled<Conn<B>>,
        statement: impl AsyncFnOnce(&mut Conn<B>) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        conn.run(statement).await.map_err(|err| self.classify(err))
    }

    /// `NotFound` for a login id that the login-id column's character set cannot hold (MySQL's
    /// utf8mb3 and an emoji): no row has it, and comparing it with the column is an error.
    fn holdable(&self, login_id: &str) -> Result<(), StoreError> {
        if self.statements().login_repertoire.holds(login_id) {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn acquire(&self, pool: &Pool<Conn<B>>) -> Result<Pooled<Conn<B>>, StoreError> {
        pool.acquire().await.map_err(|err| self.classify(err))
    }
}

impl<B: SqlBackend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
    for<'q> &'q str: sqlx::Encode<'q, B::Database> + sqlx::Type<B::Database>,
    for<'q> i64: sqlx::Encode<'q, B::Database>,
    usize: sqlx::ColumnIndex<DbRow<B>>,
    for<'r> String: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i64: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i32: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i16: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i8: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> bool: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> f64: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> f32: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
{
    /// Opens the store and reads its table (bounded, so that an unreachable database is an error
    /// at start-up rather than a hang).
    pub async fn connect(options: B::Options) -> Result<Self, StoreError> {
        let store = B::open(options).await?;
        within(&store.settings, B::NAME, store.inspect()).await?;
        Ok(store)
    }

    /// The row `statement` (the login id bound twice, see [`Statements`]) finds on a reader
    /// connection, or `NotFound`.
    async fn lookup(&self, statement: &Arc<str>, login_id: &str) -> Result<DbRow<B>, StoreError> {
        let mut conn = self.acquire(&self.reader).await?;
        let statement = Arc::clone(statement);
        self.run(&mut conn, async |conn| {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .persistent(self.prepared)
                .bind(login_id)
                .bind(login_id)
                .fetch_optional(conn)
                .await
        })
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Overwrites the ownIdData of exactly `login_id`; whether such a row was there.
    async fn update_exact(
        &self,
        conn: &mut Pooled<Conn<B>>,
        login_id: &str,
        ownid_data: &str,
    ) -> Result<bool, StoreError> {
        let statement = Arc::clone(&self.statements().update);
        let done = self
            .run(conn, async |conn| {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .persistent(self.prepared)
                    .bind(ownid_data)
                    .bind(login_id)
                    .bind(login_id)
                    .execute(conn)
                    .await
            })
            .await?;
        Ok(B::rows_affected(&done) > 0)
    }

    /// Runs a statement that takes only login-id parameters, `count` of them.
    async fn execute_with_login(
        &self,
        conn: &mut Pooled<Conn<B>>,
        statement: &Arc<str>,
        login_id: &str,
        count: usize,
    ) -> Result<u64, StoreError> {
        let statement = Arc::clone(statement);
        let done = self
            .run(conn, async |conn| {
                let mut query =
                    sqlx::query(sqlx::AssertSqlSafe(statement)).persistent(self.prepared);
                for _ in 0..count {
                    query = query.bind(login_id);
                }
                query.execute(conn).await
            })
            .await?;
        Ok(B::rows_affected(&done))
    }

    /// A column value as JSON: the first Rust type the driver agrees to decode it as.
    fn json_value(row: &DbRow<B>, index: usize) -> Result<serde_json::Value, sqlx::Error> {
        fn json<T: Into<serde_json::Value>>(value: Option<T>) -> serde_json::Value {
            value.map_or(serde_json::Value::Null, Into::into)
        }
        if let Ok(value) = row.try_get::<Option<String>, _>(index) {
            return Ok(json(value));
        }
        if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
            return Ok(json(value));
        }
        if let Ok(value) = row.try_get::<Option<i32>, _>(index) {
            return Ok(json(value));
        }
        if let Ok(value) = row.try_get::<Option<i16>, _>(index) {
            return Ok(json(value));
        }
        if let Ok(value) = row.try_get::<Option<i8>, _>(index) {
            return Ok(json(value));
        }
        if let Ok(value) = row.try_get::<Option<bool>, _>(index) {
            return Ok(json(value));
        }
        if let Ok(value) = row.try_get::<Option<f64>, _>(index) {
            return Ok(json(value));
        }
        Ok(json(row.try_get::<Option<f32>, _>(index)?))
    }
}

#[async_trait]
impl<B: SqlBackend> UserStore for SqlStore<B>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
    for<'q> &'q str: sqlx::Encode<'q, B::Database> + sqlx::Type<B::Database>,
    for<'q> i64: sqlx::Encode<'q, B::Database>,
    usize: sqlx::ColumnIndex<DbRow<B>>,
    for<'r> String: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i64: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i32: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i16: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i8: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> bool: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> f64: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> f32: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
{
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn get_ownid_data(&self, login_id: &str) -> Result<Option<String>, StoreError> {
        self.holdable(login_id)?;
        let row = self.lookup(&self.statements().get, login_id).await?;
        let data: Option<String> = row.try_get(0).map_err(|err| self.classify(err))?;
        Ok(data.filter(|value| !value.is_empty()))
    }

    async fn set_ownid_data(
        &self,
        login_id: &str,
        ownid_data: &str,
        create_missing: bool,
    ) -> Result<SetOutcome, StoreError> {
        self.capacity.check(ownid_data)?;
        self.holdable(login_id)?;
        let mut conn = self.acquire(&self.writer).await?;
        if self.update_exact(&mut conn, login_id, ownid_data).await? {
            return Ok(SetOutcome::Updated);
        }
        if !create_missing {
            return Err(StoreError::NotFound);
        }
        let insert = Arc::clone(&self.statements().insert);
        let inserted = self
            .run(&mut conn, async |conn| {
                sqlx::query(sqlx::AssertSqlSafe(insert))
                    .persistent(self.prepared)
                    .bind(login_id)
                    .bind(ownid_data)
                    .execute(conn)
                    .await
            })
            .await;
        match inserted {
            Ok(_) => Ok(SetOutcome::Created),
            // The unique index refused the row: either another request created this user since
            // the update above (then it is there to update now), or a look-alike login id holds
            // the index entry (then nothing is written).
            Err(StoreError::Conflict) => {
                if self.update_exact(&mut conn, login_id, ownid_data).await? {
                    Ok(SetOutcome::Updated)
                } else {
                    Err(StoreError::Conflict)
                }
            }
            Err(err) => Err(err),
        }
    }

    async fn get_session_user(&self, login_id: &str) -> Result<SessionUser, StoreError> {
        self.holdable(login_id)?;
        let sql = self.statements();
        let row = self.lookup(&sql.session, login_id).await?;
        let unreadable = |column: &Identifier, err: sqlx::Error| {
            StoreError::Other(format!(
                "column {column} cannot be read as a JSON value: {err}"
            ))
        };
        let value = |index: usize, column: &Identifier| {
            let value = Self::json_value(&row, index).map_err(|err| unreadable(column, err))?;
            match value {
                // A decimal, read as its text: its number (a text that is none, PostgreSQL's
                // NaN, as it is).
                serde_json::Value::String(text) if sql.session_decimal[index - 1] => {
                    Ok(match text.parse::<serde_json::Number>() {
                        Ok(number) => serde_json::Value::Number(number),
                        Err(_) => serde_json::Value::String(text),
                    })
                }
                // A JSON column, read as its text: its value.
                serde_json::Value::String(text) if sql.session_json[index - 1] => {
                    serde_json::from_str(&text).map_err(|err| {
                        StoreError::Other(format!("column {column} holds invalid JSON: {err}"))
                    })
                }
                other => Ok(other),
            }
        };
        let mut index = 1;
        let mut subject = login_id.to_owned();
        if let Some(column) = &self.mapping.user_id {
            match value(index, column)? {
                // An empty id is no subject either: every user with it would share one `sub`.
                serde_json::Value::String(id) if id.trim().is_empty() => {
                    return Err(StoreError::no_user_id(column))
                }
                serde_json::Value::String(id) => subject = id,
                serde_json::Value::Null => return Err(StoreError::no_user_id(column)),
                other => subject = other.to_string(),
            }
            index += 1;
        }
        let mut claims = serde_json::Map::new();
        for (claim, column) in &self.mapping.claims {
            let value = value(index, column)?;
            if !value.is_null() {
                claims.insert(claim.clone(), value);
            }
            index += 1;
        }
        Ok(SessionUser { subject, claims })
    }

    async fn create_user(&self, login_id: &str) -> Result<bool, StoreError> {
        if self.holdable(login_id).is_err() {
            return Err(StoreError::Schema(format!(
                "the login-id column {} cannot hold this login id: its character set lacks \
                 some of its characters",
                self.mapping.login_id
            )));
        }
        let mut conn = self.acquire(&self.writer).await?;
        match self
            .execute_with_login(&mut conn, &self.statements().insert_user, login_id, 3)
            .await
        {
            Ok(inserted) => Ok(inserted > 0),
            // Created meanwhile by another request, or a look-alike holds the index.
            Err(StoreError::Conflict) => {
                drop(conn);
                match self.lookup(&self.statements().get, login_id).await {
                    Ok(_) => Ok(false),
                    Err(StoreError::NotFound) => Err(StoreError::Conflict),
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    async fn export_ownid_data(
        &self,
        batch: usize,
        sink: ExportSink<'_>,
    ) -> Result<u64, StoreError> {
        use futures_util::TryStreamExt as _;
        let mut batches = ExportBatches::new(batch, sink);
        let mut conn = self.acquire(&self.reader).await?;
        let statement = Arc::clone(&self.statements().export);
        // The sink's error ends the statement early; it is returned as it is.
        let mut stopped = None;
        self.run(&mut conn, async |conn| {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(statement))
                .persistent(self.prepared)
                .fetch(conn);
            while let Some(row) = rows.try_next().await? {
                if let Err(err) = batches.push(row.try_get(0)?, row.try_get(1)?) {
                    stopped = Some(err);
                    break;
                }
            }
            Ok(())
        })
        .await?;
        match stopped {
            Some(err) => Err(err),
            None => batches.finish(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.acquire(&self.reader).await?;
        self.run(&mut conn, async |conn| {
            sqlx::query("SELECT 1")
                .persistent(self.prepared)
                .execute(conn)
                .await
        })
        .await?;
        Ok(())
    }

    async fn inspect(&self) -> Result<SchemaReport, StoreError> {
        let facts = B::facts(self).await?;
        self.capacity
            .set(facts.ownid_data(B::DIALECT, &self.mapping));
        let statements = Statements::new(B::DIALECT, &self.mapping, &facts);
        *self
            .sql
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(statements);
        Ok(report(B::DIALECT, &self.mapping, &facts))
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let size = self.reader.size();
        let idle = self.reader.num_idle();
        Some(PoolStatus {
            in_use: size.saturating_sub(idle),
            idle,
            max: self.reader.max_connections(),
        })
    }

    async fn apply_schema(&self, options: &SchemaOptions) -> Result<SchemaChanges, StoreError> {
        let facts = B::facts(self).await?;
        let plan = plan(B::DIALECT, &self.mapping, &facts, options)?;
        if plan.check_duplicates {
            self.refuse_duplicates().await?;
        }
        let transactional = matches!(B::DIALECT, Dialect::Postgres | Dialect::Sqlite);
        let changes = SchemaChanges {
            in_transaction: if transactional {
                plan.statements.len()
            } else {
                0
            },
            statements: plan.all().cloned().collect(),
            notes: plan.notes.clone(),
        };
        if options.dry_run || plan.is_empty() {
            return Ok(changes);
        }
        if transactional {
            run_in_transaction::<B>(&self.writer, &plan.statements, |err| self.classify(err))
                .await?;
        } else {
            run_ddl::<B>(&self.writer, &plan.statements, |err| self.classify(err)).await?;
        }
        if let Some(index) = &plan.concurrent_index {
            self.build_concurrently(index, &plan.statements).await?;
        }
        self.inspect().await?;
        Ok(changes)
    }

    fn signature_ledger(&self, table: &Identifier) -> Option<Arc<dyn SignatureLedger>> {
        Some(Arc::new(SqlLedger::<B>::new(
            self.writer.clone(),
            self.prepared,
            table,
        )))
    }
}

impl<B: SqlBackend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
    usize: sqlx::ColumnIndex<DbRow<B>>,
    for<'r> Option<String>: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
    for<'r> i64: sqlx::Decode<'r, B::Database> + sqlx::Type<B::Database>,
{
    /// `schema`'s precondition for the unique index: no two rows hold login ids that the index
    /// would call equal. The error names up to 20 of them.
    async fn refuse_duplicates(&self) -> Result<(), StoreError> {
        let statement = B::DIALECT.duplicates(
            &B::DIALECT.quote_table(&self.mapping.table),
            &B::DIALECT.quote(&self.mapping.login_id),
        );
        let mut conn = self.acquire(&self.reader).await?;
        let rows = self
            .run(&mut conn, async |conn| {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .persistent(false)
                    .fetch_all(conn)
                    .await
            })
            .await?;
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let groups: i64 = first.try_get(2).map_err(|err| self.classify(err))?;
        let mut named = Vec::new();
        for row in &rows {
            let spellings: Option<String> = row.try_get(0).map_err(|err| self.classify(err))?;
            let count: i64 = row.try_get(1).map_err(|err| self.classify(err))?;
            named.push(format!("{} ({count} rows)", spellings.unwrap_or_default()));
        }
        Err(StoreError::Schema(format!(
            "a unique index on {} cannot be built: {groups} login id(s) are held by more than one \
             row{} (spellings that differ only in what the column's collation ignores count as \
             one){}: {}. Nothing was changed; merge or remove the duplicates, then run `schema` \
             again",
            self.mapping.login_id,
            if groups > 20 {
                ", the first 20 shown"
            } else {
                ""
            },
            "",
            named.join("; ")
        )))
    }

    /// PostgreSQL's `CREATE UNIQUE INDEX CONCURRENTLY`, after the other statements committed. A
    /// failed build leaves an invalid index behind, which is dropped (concurrently) so that a
    /// later run starts clean.
    ///
    /// The index is created in the table's schema, so the clean-up names it there (an unqualified
    /// name would be looked up on the search path, and could drop another table's index of that
    /// name); and a name some relation already holds is refused before the build, so that the
    /// clean-up can only ever drop what the failed build left.
    async fn build_concurrently(&self, index: &str, applied: &[String]) -> Result<(), StoreError> {
        let name = index_name_of(index);
        let bare = name.trim_matches('"');
        // Identifiers hold only letters, digits, `_` and `$` (no quotes): safe in a literal.
        let table = B::DIALECT.quote_table(&self.mapping.table);
        let lookup = format!(
            "SELECT CAST(quote_ident(n.nspname) AS text), \
             CAST((SELECT count(*) FROM pg_catalog.pg_class r \
                   WHERE r.relnamespace = n.oid AND r.relname = '{bare}') AS BIGINT) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid = c.relnamespace WHERE c.oid = CAST('{table}' AS regclass)"
        );
        let mut conn = self.acquire(&self.writer).await?;
        let row = self
            .run(&mut conn, async |conn| {
                sqlx::query(sqlx::AssertSqlSafe(lookup))
                    .persistent(false)
                    .fetch_one(conn)
                    .await
            })
            .await?;
        drop(conn);
        let schema: Option<String> = row.try_get(0).map_err(|err| self.classify(err))?;
        let taken: i64 = row.try_get(1).map_err(|err| self.classify(err))?;
        let qualified = format!("{}.{name}", schema.unwrap_or_default());
        if taken > 0 {
            return Err(StoreError::Schema(format!(
                "{index}: a relation named {qualified} already exists (an index on another \
                 expression, or another table's); nothing was built or dropped; rename it, or \
                 create the unique index on {} yourself; applied before it: {}",
                self.mapping.login_id,
                if applied.is_empty() {
                    "nothing".to_owned()
                } else {
                    applied.join("; ")
                }
            )));
        }
        let ran = run_ddl::<B>(&self.writer, &[index.to_owned()], |err| self.classify(err)).await;
        let Err(err) = ran else {
            return Ok(());
        };
        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}");
        let dropped = match run_ddl::<B>(&self.writer, std::slice::from_ref(&drop), |e| {
            self.classify(e)
        })
        .await
        {
            Ok(()) => format!("the invalid index it left was dropped ({drop})"),
            Err(drop_err) => format!("dropping the invalid index it left failed too: {drop_err}"),
        };
        // The failure's own text, without the error kind's prefix (it is wrapped again here).
        let failure = match err {
            StoreError::Schema(detail) | StoreError::Other(detail) => detail,
            other => other.to_string(),
        };
        Err(StoreError::Schema(format!(
            "{failure}; {dropped}; committed before it: {}",
            if applied.is_empty() {
                "nothing".to_owned()
            } else {
                applied.join("; ")
            }
        )))
    }
}

/// The (quoted) index name of a `CREATE UNIQUE INDEX [CONCURRENTLY] name ON ...` statement.
fn index_name_of(statement: &str) -> &str {
    statement
        .split(" ON ")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .unwrap_or_default()
}

/// Runs schema statements in one transaction on one writer connection, unprepared: all of them
/// or none. An error names the statement and says that nothing was applied.
pub(crate) async fn run_in_transaction<B: SqlBackend>(
    writer: &Pool<Conn<B>>,
    statements: &[String],
    classify: impl Fn(sqlx::Error) -> StoreError,
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
{
    let mut conn = writer.acquire().await.map_err(&classify)?;
    let raw = unprepared::<B>;
    raw(&mut conn, "BEGIN").await.map_err(&classify)?;
    for statement in statements {
        if let Err(err) = raw(&mut conn, statement).await {
            let rolled_back = raw(&mut conn, "ROLLBACK").await;
            let state = match rolled_back {
                Ok(_) => "rolled back: nothing was applied".to_owned(),
                Err(rollback) => format!("the rollback failed too ({rollback})"),
            };
            return Err(schema_failure(statement, classify(err), &state));
        }
    }
    raw(&mut conn, "COMMIT").await.map_err(&classify)?;
    Ok(())
}

/// Runs one schema statement on `conn`, unprepared (DDL is run once).
async fn unprepared<B: SqlBackend>(
    conn: &mut Pooled<Conn<B>>,
    statement: &str,
) -> Result<(), sqlx::Error>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
{
    conn.run(async |conn| {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .persistent(false)
            .execute(conn)
            .await
    })
    .await
    .map(drop)
}

/// A statement of `schema` that failed: the table's problem or another, with its statement.
fn schema_failure(statement: &str, err: StoreError, state: &str) -> StoreError {
    match err {
        StoreError::Schema(detail) | StoreError::Other(detail) => {
            StoreError::Schema(format!("{statement}: {detail}; {state}"))
        }
        other => StoreError::Unavailable(format!("{statement}: {other}; {state}")),
    }
}

/// Runs schema statements in order on one writer connection, unprepared, each committing by
/// itself (MySQL/MariaDB DDL): a failure names the statement and what was applied before it.
/// `classify` maps a failure to get the connection.
pub(crate) async fn run_ddl<B: SqlBackend>(
    writer: &Pool<Conn<B>>,
    statements: &[String],
    classify: impl Fn(sqlx::Error) -> StoreError,
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: sqlx::Executor<'c, Database = B::Database>,
    <B::Database as Database>::Arguments: sqlx::IntoArguments<B::Database>,
{
    let mut conn = writer.acquire().await.map_err(&classify)?;
    for (done, statement) in statements.iter().enumerate() {
        if let Err(err) = unprepared::<B>(&mut conn, statement).await {
            let state = match done {
                0 if statements.len() == 1 => "it was not applied".to_owned(),
                0 => "nothing was applied".to_owned(),
                _ => format!("applied before it: {}", statements[..done].join("; ")),
            };
            return Err(schema_failure(statement, classify(err), &state));
        }
    }
    Ok(())
}
