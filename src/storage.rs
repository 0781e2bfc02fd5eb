//! The one place that turns `storage.backend` into a store.

use std::sync::Arc;

use ownid_bridge_sqlite::{SqliteOptions, SqliteStore};
use ownid_bridge_store::{StoreError, UserStore};

use crate::config::{Backend, ConfigError, StorageConfig};

#[derive(Debug)]
pub enum OpenError {
    Config(ConfigError),
    Store(StoreError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Config(err) => err.fmt(f),
            OpenError::Store(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {}

/// Opens the configured store. `create_database` lets an embedded backend create its file; `check`
/// passes false so that it changes nothing.
pub async fn open(
    config: &StorageConfig,
    create_database: bool,
) -> Result<Arc<dyn UserStore>, OpenError> {
    let mapping = config.users.mapping().map_err(OpenError::Config)?;
    let pool = config.pool.settings();
    match config.backend {
        Backend::Sqlite => {
            let store = SqliteStore::connect(SqliteOptions {
                url: config.url.expose().to_owned(),
                mapping,
                pool,
                create_if_missing: create_database,
            })
            .await
            .map_err(OpenError::Store)?;
            Ok(Arc::new(store))
        }
    }
}
