//! `apps`: several OwnID applications in one server (brands, or an admin app beside the customer
//! app). Each entry is one application with its own base path, `ownid` and `session` sections,
//! and either a users mapping over the top-level `storage` database or a `storage` section of its
//! own. Without `apps`, the top-level sections are the one application, named `default`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::server::{FIXED_ROUTES, OPERATIONS};
use super::{read_secret_file, ConfigError};
use super::{Config, OwnIdConfig, SessionConfig, StorageConfig, UsersConfig};
use crate::signature::effective_hmac_key;

/// The name of the one application of a configuration without `apps`.
pub const DEFAULT_APP: &str = "default";

/// One entry of `apps`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    /// Names the application in metrics (`app` label), logs, the OpenAPI document and the
    /// command line's `--app`.
    pub name: String,
    /// Where its three endpoints are mounted, as `server.base_path` for a single application.
    pub base_path: String,
    /// Its shared secret(s), replay protection and response mode; every key of the top-level
    /// section, with the same defaults.
    #[serde(default)]
    pub ownid: OwnIdConfig,
    /// Its session tokens; every key of the top-level section, with the same defaults.
    #[serde(default)]
    pub session: SessionConfig,
    /// Its users table and columns in the database of the top-level `storage` section.
    pub users: Option<UsersConfig>,
    /// A database of its own instead (a whole `storage` section, `users` included).
    pub storage: Option<StorageConfig>,
}

/// One application as the server runs it: its name and a single-application [`Config`] (the
/// shared `server`, `log` and `metrics` sections with the application's base path, `ownid`,
/// `session` and `storage`).
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub name: String,
    pub config: Config,
}

impl Config {
    /// The applications this configuration serves: the `apps` entries, or the top-level
    /// sections as the one application [`DEFAULT_APP`].
    pub fn apps(&self) -> Vec<AppConfig> {
        if self.apps.is_empty() {
            return vec![AppConfig {
                name: DEFAULT_APP.to_owned(),
                config: self.clone(),
            }];
        }
        self.apps
            .iter()
            .map(|entry| {
                let mut config = Config {
                    apps: Vec::new(),
                    ownid: entry.ownid.clone(),
                    session: entry.session.clone(),
                    storage: match (&entry.storage, &entry.users) {
                        (Some(storage), _) => storage.clone(),
                        (None, users) => StorageConfig {
                            users: users.clone().unwrap_or_else(|| self.storage.users.clone()),
                            ..self.storage.clone()
                        },
                    },
                    ..self.clone()
                };
                config.server.base_path = entry.base_path.clone();
                AppConfig {
                    name: entry.name.clone(),
                    config,
                }
            })
            .collect()
    }

    /// The application a command acts on: the one named, or the only one.
    pub fn app(&self, name: Option<&str>) -> Result<AppConfig, ConfigError> {
        let apps = self.apps();
        let names = || {
            apps.iter()
                .map(|app| app.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            None if apps.len() == 1 => Ok(apps[0].clone()),
            None => Err(ConfigError(format!(
                "several OwnID applications are configured ({}): choose one with --app",
                names()
            ))),
            Some(name) => apps
                .iter()
                .find(|app| app.name == name)
                .cloned()
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--app {name:?}: no such application; configured: {}",
                        names()
                    ))
                }),
        }
    }

    /// With `apps`, the top-level `ownid` and `session` sections and `server.base_path` belong
    /// to the entries: setting them too would be ignored, so it is refused.
    pub(super) fn refuse_top_level_app_keys(
        &self,
        set: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        if self.apps.is_empty() {
            return Ok(());
        }
        for (key, instead) in [
            ("ownid", "apps[].ownid"),
            ("session", "apps[].session"),
            ("server.base_path", "apps[].base_path"),
        ] {
            if set(key) {
                return Err(ConfigError::at(
                    key,
                    format!(
                        "with apps, each application has its own: set {instead} in each entry \
                         (an OWNID_BRIDGE__ variable may set it too)"
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn resolve_app_files(&mut self) -> Result<(), ConfigError> {
        for (index, entry) in self.apps.iter_mut().enumerate() {
            let at = |key: &str| format!("apps[{index}].{key}");
            read_secret_file(
                &mut entry.ownid.shared_secret,
                &entry.ownid.shared_secret_file,
                &at("ownid.shared_secret"),
            )?;
            read_secret_file(
                &mut entry.session.secret,
                &entry.session.secret_file,
                &at("session.secret"),
            )?;
        }
        Ok(())
    }

    /// Each entry's sections with the checks of the top-level ones, then what the entries must
    /// not share.
    pub(super) fn validate_apps(&mut self) -> Result<(), ConfigError> {
        for (index, entry) in self.apps.iter_mut().enumerate() {
            let prefix = format!("apps[{index}].");
            if !valid_name(&entry.name) {
                return Err(ConfigError::at(
                    &format!("{prefix}name"),
                    format!(
                        "{:?} must be 1 to 32 lower-case letters, digits, - and _, starting \
                         with a letter or digit",
                        entry.name
                    ),
                ));
            }
            entry.base_path =
                super::server::base_path(&entry.base_path, &format!("{prefix}base_path"))?;
            if entry.storage.is_some() && entry.users.is_some() {
                return Err(ConfigError::at(
                    &format!("{prefix}users"),
                    "set users (a table in the shared storage) or storage (a database of its \
                     own, with storage.users), not both",
                ));
            }
            if entry.ownid.shared_secret.is_none() {
                return Err(ConfigError::at(
                    &format!("{prefix}ownid.shared_secret"),
                    "each application needs its own shared secret from the OwnID console (or \
                     ownid.shared_secret_file); ${VAR} references work here",
                ));
            }
            if entry.session.algorithm.is_hmac() && entry.session.secret.is_none() {
                return Err(ConfigError::at(
                    &format!("{prefix}session.secret"),
                    format!(
                        "{:?} signs this application's session tokens with it; set it (or \
                         session.secret_file)",
                        entry.session.algorithm
                    ),
                ));
            }
            let within = |err: ConfigError| ConfigError(format!("{prefix}{}", err.0));
            entry.ownid.validate().map_err(within)?;
            entry.session.validate().map_err(within)?;
            if let Some(storage) = &entry.storage {
                storage.validate().map_err(within)?;
            }
        }
        let apps = self.apps();
        for (index, app) in apps.iter().enumerate() {
            for (other_index, other) in apps.iter().enumerate().take(index) {
                let clash = |what: &str| {
                    Err(ConfigError::at(
                        &format!("apps[{index}]"),
                        format!(
                            "{what} as apps[{other_index}] ({:?}); each application needs its own",
                            other.name
                        ),
                    ))
                };
                let (ours, theirs) = (&app.config, &other.config);
                if app.name == other.name {
                    return clash("the same name");
                }
                if nested(&ours.server.base_path, &theirs.server.base_path) {
                    return clash("a base path equal to, or nested in, the base path");
                }
                if shares_a_secret(&ours.ownid, &theirs.ownid) {
                    // A request signed for one would pass the other's check.
                    return clash("a shared secret (current or previous) in common");
                }
                if same_data_column(&ours.storage, &theirs.storage) {
                    return clash("the same ownIdData column (database, table and column)");
                }
                let asymmetric =
                    !ours.session.algorithm.is_hmac() && !theirs.session.algorithm.is_hmac();
                if asymmetric && ours.session.jwks_path == theirs.session.jwks_path {
                    return clash("the same session.jwks_path");
                }
            }
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Whether one base path is the other or lies under it (`/ownid` and `/ownid/admin`).
fn nested(a: &str, b: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    under(a, b) || under(b, a)
}

/// Whether two applications accept a common secret, current or previous: compared as the keys
/// HMAC really signs with ([`effective_hmac_key`]), since texts that differ can sign alike
/// (`K` and `K` followed by a zero byte); as written when one does not decode.
fn shares_a_secret(a: &OwnIdConfig, b: &OwnIdConfig) -> bool {
    #[derive(PartialEq)]
    enum Key {
        Hmac([u8; 64]),
        Text(String),
    }
    let keys = |ownid: &OwnIdConfig| -> Vec<Key> {
        ownid
            .shared_secret
            .iter()
            .chain(
                ownid
                    .previous_shared_secrets
                    .iter()
                    .map(|previous| &previous.secret),
            )
            .map(|secret| match effective_hmac_key(secret) {
                Some(key) => Key::Hmac(key),
                None => Key::Text(secret.expose().trim().to_owned()),
            })
            .collect()
    };
    let theirs = keys(b);
    keys(a).iter().any(|key| theirs.contains(key))
}

fn same_data_column(a: &StorageConfig, b: &StorageConfig) -> bool {
    // SQLite's names ignore ASCII case, quoted or not; so do MySQL's column names (and its table
    // names where `lower_case_table_names` is set: counted as one, on the side of refusing).
    // PostgreSQL's quoted names and MongoDB's are case-sensitive.
    let same_name: fn(&str, &str) -> bool = match a.backend {
        super::Backend::Sqlite | super::Backend::Mysql => |x, y| x.eq_ignore_ascii_case(y),
        super::Backend::Postgres | super::Backend::Mongodb => |x, y| x == y,
    };
    a.backend == b.backend
        && same_database(a, b)
        && same_name(&a.users.table.to_string(), &b.users.table.to_string())
        && same_name(
            a.users.ownid_data.identifier().as_str(),
            b.users.ownid_data.identifier().as_str(),
        )
}

/// Whether two URLs of one backend name the same database: the same text, or on SQLite the
/// same file however the URLs spell it (`sqlite://./apps.db` and `sqlite:apps.db`).
fn same_database(a: &StorageConfig, b: &StorageConfig) -> bool {
    if a.url.expose() == b.url.expose() {
        return true;
    }
    #[cfg(feature = "sqlite")]
    if a.backend == super::Backend::Sqlite {
        let file = |storage: &StorageConfig| {
            ownid_bridge_sqlite::database_file(storage.url.expose()).map(|file| resolved(&file))
        };
        return file(a).is_some_and(|file_a| file(b) == Some(file_a));
    }
    false
}

/// `path` from the working directory, with `.` and `..` taken out, and through its symbolic
/// links when it exists.
#[cfg(feature = "sqlite")]
fn resolved(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let absolute = std::env::current_dir().unwrap_or_default().join(path);
    let mut lexical = std::path::PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    std::fs::canonicalize(&lexical).unwrap_or(lexical)
}

impl Config {
    /// A base path or JWKS path on a route the server already has would make the router panic
    /// at start (two routes on one path), or replace an OwnID operation without a word: each
    /// application's JWKS path (served with an asymmetric algorithm) must be none of the fixed
    /// routes and no application's base path or operation path. Base paths are checked against
    /// the fixed routes where they are read ([`super::server::base_path`]).
    pub(super) fn validate_routes(&self) -> Result<(), ConfigError> {
        let apps = self.apps();
        for (index, app) in apps.iter().enumerate() {
            let session = &app.config.session;
            if session.algorithm.is_hmac() {
                continue;
            }
            let key = if self.apps.is_empty() {
                "session.jwks_path".to_owned()
            } else {
                format!("apps[{index}].session.jwks_path")
            };
            let jwks = session.jwks_path.trim_end_matches('/');
            let taken = |what: String| {
                Err(ConfigError::at(
                    &key,
                    format!("{:?} is {what}; choose another path", session.jwks_path),
                ))
            };
            if let Some(what) = super::server::unplain_path(&session.jwks_path) {
                return Err(ConfigError::at(
                    &key,
                    format!(
                        "{:?} has {what}; write the path the router serves",
                        session.jwks_path
                    ),
                ));
            }
            if FIXED_ROUTES.contains(&jwks) {
                return taken(format!(
                    "a route of the server ({})",
                    FIXED_ROUTES.join(", ")
                ));
            }
            for other in &apps {
                let base = &other.config.server.base_path;
                if jwks == base {
                    return taken(format!("the base path of application {:?}", other.name));
                }
                for operation in OPERATIONS {
                    if jwks == format!("{base}/{operation}") {
                        return taken(format!(
                            "the path of {operation} of application {:?}",
                            other.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
