//! The one place that turns `storage.backend` into a store, and readies it for serving (the
//! start-up schema policy).

use std::sync::Arc;

use ownid_bridge_store::{
    checks, SchemaChanges, SchemaOptions, SchemaReport, SignatureLedger, StoreError, UserStore,
};

use crate::config::{Backend, Config, ConfigError, ReplayProtection, StorageConfig};

/// Why a store could not be opened: its configuration, or the backend itself.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(ConfigError),
    #[error(transparent)]
    Store(StoreError),
}

/// Why the store cannot serve: it did not open, or the users table is not fit for the
/// configuration.
#[derive(Debug, thiserror::Error)]
pub enum NotServable {
    #[error("storage ({url}): {source}")]
    Open { url: String, source: OpenError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the database cannot be served as configured:\n{}(`ownid-bridge check` shows every \
         line; `ownid-bridge check --format json` for a pipeline)",
        failed_lines(.0)
    )]
    Unusable(SchemaReport),
    #[error("ownid.replay_protection: storage is not available on the {0} backend")]
    NoLedger(&'static str),
}

/// The failed lines of a report, with their fixes.
fn failed_lines(report: &SchemaReport) -> String {
    SchemaReport {
        checks: report.problems().cloned().collect(),
    }
    .to_string()
}

/// The replay guard's table when `ownid.replay_protection` is `storage`; `None` otherwise, or
/// when the backend has none.
pub fn signature_ledger(
    config: &Config,
    store: &dyn UserStore,
) -> Option<Arc<dyn SignatureLedger>> {
    (config.ownid.replay_protection == ReplayProtection::Storage)
        .then(|| store.signature_ledger(config.ownid.replay_table.identifier()))
        .flatten()
}

/// What `check` reports: the users table, and the replay guard's table when the configuration
/// keeps signatures in storage, settled for the configuration (what is safe only without
/// `ownid.create_missing_users` fails with it). `serve` refuses to start on the same failures.
pub async fn inspect(config: &Config, store: &dyn UserStore) -> Result<SchemaReport, StoreError> {
    let mut report = store.inspect().await?;
    if let Some(ledger) = signature_ledger(config, store) {
        report.checks.push(ledger.inspect().await?);
    } else if config.ownid.replay_protection == ReplayProtection::Storage {
        report.fail(
            ownid_bridge_store::LEDGER_CHECK,
            format!("the {} backend cannot keep one", store.backend()),
            Some("ownid.replay_protection: memory".into()),
        );
    }
    Ok(report.settle(config.ownid.create_missing_users))
}

/// What `schema` changes (or, with `options.dry_run`, would change): [`UserStore::apply_schema`],
/// then the replay guard's table when the configuration keeps signatures in storage.
pub async fn apply_schema(
    config: &Config,
    store: &dyn UserStore,
    options: &SchemaOptions,
) -> Result<SchemaChanges, StoreError> {
    let mut changes = store.apply_schema(options).await?;
    if let Some(ledger) = signature_ledger(config, store) {
        changes
            .statements
            .extend(ledger.apply_schema(options.dry_run).await?);
    }
    Ok(changes)
}

/// Opens the store and makes it ready to serve: creates the demo table when allowed and the
/// table is missing, refuses a table the server cannot use, and warns about the rest.
pub async fn open_for_serving(config: &Config) -> Result<Arc<dyn UserStore>, NotServable> {
    let store = open(&config.storage, true)
        .await
        .map_err(|source| NotServable::Open {
            url: config.storage.url.to_string(),
            source,
        })?;
    if config.ownid.replay_protection == ReplayProtection::Storage
        && signature_ledger(config, store.as_ref()).is_none()
    {
        return Err(NotServable::NoLedger(store.backend()));
    }
    let mut report = inspect(config, store.as_ref()).await?;
    let table_missing = report.check(checks::TABLE).is_some_and(|check| !check.ok());
    let ledger_missing = report
        .check(ownid_bridge_store::LEDGER_CHECK)
        .is_some_and(|check| !check.ok());
    if (table_missing || ledger_missing) && config.storage.creates_demo_table() {
        // The demo database: its users table and the replay guard's, whichever is missing
        // (an existing users table is left as it is).
        let mut changes = Vec::new();
        if table_missing {
            // Asked for in so many words (`create_demo_table: true`), it is created; by
            // SQLite's default not under a name that looks like a misspelling.
            let options = match config.storage.create_demo_table {
                Some(true) => SchemaOptions::CREATE_TABLE,
                _ => SchemaOptions::DEMO,
            };
            match store.apply_schema(&options).await {
                Ok(applied) => changes.extend(applied.statements),
                // A company database: the missing table is reported below, with its closest
                // match, instead of being created.
                Err(StoreError::Schema(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if let Some(ledger) = signature_ledger(config, store.as_ref()).filter(|_| ledger_missing) {
            changes.extend(ledger.apply_schema(false).await?);
        }
        for change in changes {
            tracing::info!(change, "created a missing table (demo database)");
        }
        report = inspect(config, store.as_ref()).await?;
    }
    if !report.is_ok() {
        return Err(NotServable::Unusable(report));
    }
    for warning in report.warnings() {
        tracing::warn!(check = %warning.name, detail = %warning.detail, "storage check warns");
    }
    Ok(store)
}

impl NotServable {
    /// Whether trying again later may succeed: the database is unreachable or still starting
    /// (not: bad credentials, a missing database or table, which waiting does not fix).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            NotServable::Open {
                source: OpenError::Store(StoreError::Unavailable(_) | StoreError::Contention(_)),
                ..
            } | NotServable::Store(StoreError::Unavailable(_) | StoreError::Contention(_))
        )
    }
}

/// [`open_for_serving`], tried again with backoff (0.25 s growing to 5 s, jittered) while the
/// database is unreachable, for up to `storage.startup_wait`: Compose and Kubernetes start the
/// server and its database together. Each failed try is logged (the URL without its password);
/// an error waiting cannot fix is returned at once.
pub async fn open_waiting(config: &Config) -> Result<Arc<dyn UserStore>, NotServable> {
    use backon::{ExponentialBuilder, Retryable as _};
    let wait = config.storage.startup_wait;
    let deadline = std::time::Instant::now() + wait;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(250))
        .with_max_delay(std::time::Duration::from_secs(5))
        .without_max_times()
        .with_jitter();
    (|| open_for_serving(config))
        .retry(backoff)
        .when(|err| err.is_transient() && std::time::Instant::now() < deadline)
        // The last wait ends at the deadline, where one more try is made.
        .adjust(|_, delay| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            delay.map(|delay| delay.min(left))
        })
        .notify(|err, delay| {
            tracing::warn!(
                url = %config.storage.url,
                error = %err,
                retry_in = ?delay,
                "the database is not reachable yet; waiting (storage.startup_wait)"
            );
        })
        .await
}

fn shared<S: UserStore>(store: Result<S, StoreError>) -> Result<Arc<dyn UserStore>, OpenError> {
    Ok(Arc::new(store.map_err(OpenError::Store)?))
}

/// Opens the configured store. `create_database` lets the embedded backend create its file;
/// `check` passes false so that it changes nothing.
pub async fn open(
    config: &StorageConfig,
    create_database: bool,
) -> Result<Arc<dyn UserStore>, OpenError> {
    let mapping = config.users.mapping();
    let pool = config.pool.clone();
    let url = config.url.expose().to_owned();
    #[cfg(not(feature = "sqlite"))]
    let _ = create_database;
    match config.backend {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => shared(
            ownid_bridge_sqlite::SqliteStore::connect(ownid_bridge_sqlite::SqliteOptions {
                url,
                mapping,
                pool,
                create_if_missing: create_database,
            })
            .await,
        ),
        #[cfg(feature = "postgres")]
        Backend::Postgres => shared(
            ownid_bridge_postgres::PostgresStore::connect(ownid_bridge_postgres::PostgresOptions {
                url,
                mapping,
                pool,
                transaction_pooler: config.pooler == crate::config::Pooler::Transaction,
            })
            .await,
        ),
        #[cfg(feature = "mysql")]
        Backend::Mysql => shared(
            ownid_bridge_mysql::MySqlStore::connect(ownid_bridge_mysql::MySqlOptions {
                url,
                mapping,
                pool,
                galera_sync_wait: config.galera_sync_wait,
            })
            .await,
        ),
        #[cfg(feature = "mongodb")]
        Backend::Mongodb => shared(
            ownid_bridge_mongodb::MongoStore::connect(ownid_bridge_mongodb::MongoOptions {
                url,
                mapping,
                pool,
            })
            .await,
        ),
        #[allow(unreachable_patterns)]
        compiled_out => Err(OpenError::Config(ConfigError::at(
            "storage.backend",
            format!(
                "{} support is not compiled into this binary; rebuild with `--features {}`",
                compiled_out.feature(),
                compiled_out.feature()
            ),
        ))),
    }
}
