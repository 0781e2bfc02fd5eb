//! The one place that turns `storage.backend` into a store.

use std::sync::Arc;

use ownid_bridge_store::{StoreError, UserStore};

use crate::config::{Backend, ConfigError, StorageConfig};

/// Why a store could not be opened: its configuration, or the backend itself.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(ConfigError),
    #[error(transparent)]
    Store(StoreError),
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
