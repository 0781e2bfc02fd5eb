//! The one place that turns `storage.backend` into a store, and readies it for serving (the
//! start-up schema policy).

use std::sync::Arc;

use ownid_bridge_store::{checks, SchemaReport, StoreError, UserStore};

use crate::config::{Backend, Config, ConfigError, StorageConfig};

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
        "the users table cannot be used as configured:\n{0}run `ownid-bridge check` for details \
         and `ownid-bridge schema` to create what is missing"
    )]
    Unusable(SchemaReport),
    #[error(
        "ownid.create_missing_users needs a unique index on the login-id column; run \
         `ownid-bridge schema` to create it"
    )]
    NoUniqueIndex,
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
    let mut report = store.inspect().await?;
    let table_missing = report.check(checks::TABLE).is_some_and(|check| !check.ok);
    if table_missing && config.storage.creates_demo_table() {
        for change in store.apply_schema(true).await? {
            tracing::info!(change, "created the demo table");
        }
        report = store.inspect().await?;
    }
    if !report.is_usable() {
        return Err(NotServable::Unusable(report));
    }
    let unique = report
        .check(checks::LOGIN_ID_UNIQUE)
        .is_some_and(|check| check.ok);
    if config.ownid.create_missing_users && !unique {
        return Err(NotServable::NoUniqueIndex);
    }
    for problem in report.problems() {
        tracing::warn!(check = %problem.name, detail = %problem.detail, "storage check failed");
    }
    Ok(store)
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
        Backend::Postgres => {
            shared(
                ownid_bridge_postgres::PostgresStore::connect(
                    ownid_bridge_postgres::PostgresOptions { url, mapping, pool },
                )
                .await,
            )
        }
        #[cfg(feature = "mysql")]
        Backend::Mysql => shared(
            ownid_bridge_mysql::MySqlStore::connect(ownid_bridge_mysql::MySqlOptions {
                url,
                mapping,
                pool,
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
