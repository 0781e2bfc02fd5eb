//! `storage`: the backend, its URL, the user table's mapping and the connection pool.

use std::collections::BTreeMap;

use ownid_bridge_store::{Identifier, PoolSettings, UsersMapping};
use serde::Deserialize;

use super::ConfigError;
use crate::secret::DatabaseUrl;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    /// PostgreSQL and its wire-compatible kin (CockroachDB, YugabyteDB).
    Postgres,
    /// MySQL and MariaDB.
    #[serde(alias = "mariadb")]
    Mysql,
    Mongodb,
}

impl Backend {
    /// The Cargo feature that compiles the backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Mongodb => "mongodb",
        }
    }

    /// The URL schemes the backend's driver understands.
    pub fn schemes(self) -> &'static [&'static str] {
        match self {
            Backend::Sqlite => &["sqlite"],
            Backend::Postgres => &["postgres", "postgresql"],
            Backend::Mysql => &["mysql", "mariadb"],
            Backend::Mongodb => &["mongodb", "mongodb+srv"],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    pub table: String,
    pub login_id: String,
    pub ownid_data: String,
    /// Optional column whose value becomes the JWT `sub`.
    pub user_id: Option<String>,
    /// Extra JWT claims: claim name → column.
    pub claims: BTreeMap<String, String>,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            table: "users".into(),
            login_id: "login_id".into(),
            ownid_data: "ownid_data".into(),
            user_id: None,
            claims: BTreeMap::new(),
        }
    }
}

/// Claims the server sets itself; a configured column may not replace them.
const RESERVED_CLAIMS: [&str; 7] = ["sub", "iat", "exp", "jti", "iss", "aud", "nbf"];

impl UsersConfig {
    pub fn mapping(&self) -> Result<UsersMapping, ConfigError> {
        let ident = |path: &str, name: &str| {
            Identifier::new(name).map_err(|err| ConfigError::at(path, err))
        };
        let mut claims = Vec::new();
        for (claim, column) in &self.claims {
            let path = format!("storage.users.claims.{claim}");
            if RESERVED_CLAIMS.contains(&claim.as_str()) {
                return Err(ConfigError::at(
                    &path,
                    "this claim is set by the server and cannot come from a column",
                ));
            }
            claims.push((claim.clone(), ident(&path, column)?));
        }
        Ok(UsersMapping {
            table: ident("storage.users.table", &self.table)?,
            login_id: ident("storage.users.login_id", &self.login_id)?,
            ownid_data: ident("storage.users.ownid_data", &self.ownid_data)?,
            user_id: self
                .user_id
                .as_deref()
                .map(|name| ident("storage.users.user_id", name))
                .transpose()?,
            claims,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: Backend,
    pub url: DatabaseUrl,
    /// Create the demo table at start-up when the table is missing. Defaults to true on SQLite
    /// (zero set-up) and false elsewhere, so a misspelt table name on a company database stops
    /// start-up instead of creating an empty table.
    pub create_demo_table: Option<bool>,
    pub users: UsersConfig,
    /// The store's own settings type, deserialized as it is.
    pub pool: PoolSettings,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Sqlite,
            url: DatabaseUrl::new("sqlite://ownid-bridge.db"),
            create_demo_table: None,
            users: UsersConfig::default(),
            pool: PoolSettings::default(),
        }
    }
}

impl StorageConfig {
    pub fn creates_demo_table(&self) -> bool {
        self.create_demo_table
            .unwrap_or(self.backend == Backend::Sqlite)
    }
}
