//! The one YAML file, with `${VAR}` references and `OWNID_BRIDGE__SECTION__KEY` overrides.
//!
//! Loading goes: YAML text → a figment value tree → `${VAR}` expanded (each error names the key)
//! → environment overrides layered over it (figment) → typed structs (unknown keys and bad values
//! are errors naming the key's path) → secrets read from their files.

mod apps;
mod de;
mod env;
mod ownid;
mod schema;
mod server;
mod session;
mod storage;

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Yaml};
use figment::value::{Dict, Value};
use figment::Figment;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use env::{expand_vars, Overrides};

pub use apps::{AppConfig, AppEntry, DEFAULT_APP};
pub use ownid::{Normalization, OwnIdConfig, PreviousSecret, ReplayProtection, ResponseMode};
pub use schema::{json_schema, json_schema_text};
/// The paths of the server's own routes, which `app` mounts and `validate` keeps free.
pub mod fixed_routes {
    pub use super::server::{
        DOCS, DOCS_FAVICON, FIXED_ROUTES, HEALTHZ, METRICS, OPENAPI_JSON, OPENAPI_YAML, READYZ,
    };
}
pub use server::{DocsConfig, LogConfig, LogFormat, MetricsConfig, ServerConfig, TlsConfig};
pub use session::{JwtAlgorithm, PublicKeyConfig, SessionConfig, SessionTtls};
pub use storage::{Backend, Claim, Column, Pooler, RetrySettings, StorageConfig, UsersConfig};

/// The prefix of environment overrides: `OWNID_BRIDGE__OWNID__SHARED_SECRET` sets
/// `ownid.shared_secret`.
pub const ENV_PREFIX: &str = "OWNID_BRIDGE__";

/// The example configuration, every key documented. `ownid-bridge config example` prints it.
pub const EXAMPLE: &str = include_str!("../../config.example.yaml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    pub fn at(path: &str, message: impl fmt::Display) -> Self {
        ConfigError(format!("{path}: {message}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The configuration file. Every key is optional; absent keys take their defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(title = "ownid-bridge configuration")]
pub struct Config {
    /// How the HTTP server listens.
    pub server: ServerConfig,
    /// The shared secret, replay protection and how OwnID's calls are answered.
    pub ownid: OwnIdConfig,
    /// The session tokens (JWT) issued after a login.
    pub session: SessionConfig,
    /// The user database, its table and the connection pool.
    pub storage: StorageConfig,
    /// Logging to standard error.
    pub log: LogConfig,
    /// Prometheus metrics at `/metrics`.
    pub metrics: MetricsConfig,
    /// Swagger UI at `/docs`.
    pub docs: DocsConfig,
    /// Several OwnID applications in one server; empty: the top-level sections are the one
    /// application (see `apps.rs`).
    pub apps: Vec<AppEntry>,
}

impl Config {
    /// Loads the file (or the defaults when `path` is `None`) with the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|err| {
                ConfigError(format!("cannot read config file {}: {err}", path.display()))
            })?,
            None => String::new(),
        };
        Config::from_yaml(&text, &env)
    }

    /// Loads from YAML text and an explicit environment (tests pass their own).
    pub fn from_yaml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        // An empty file, or one of comments only, is the defaults.
        let file: Option<Dict> =
            Yaml::from_str(text).map_err(|err| ConfigError(format!("invalid YAML: {err}")))?;
        let mut tree = Value::from(file.unwrap_or_default());
        expand_vars(&mut tree, "", env)?;
        let figment = Figment::from(Serialized::defaults(tree)).merge(Overrides::new(env));
        let mut config: Config = figment.extract_lossy().map_err(de::config_error)?;
        config.refuse_top_level_app_keys(|key| figment.contains(key))?;
        config.resolve_files()?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_files(&mut self) -> Result<(), ConfigError> {
        read_secret_file(
            &mut self.ownid.shared_secret,
            &self.ownid.shared_secret_file,
            "ownid.shared_secret",
        )?;
        read_secret_file(
            &mut self.session.secret,
            &self.session.secret_file,
            "session.secret",
        )?;
        self.resolve_app_files()
    }

    /// The checks no type expresses, section by section, in the file's order.
    fn validate(&mut self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.ownid.validate()?;
        self.session.validate()?;
        self.storage.validate()?;
        self.validate_apps()?;
        self.validate_routes()
    }
}

/// A secret file that users other than its owner can read or write (whoever can write it
/// replaces the secret or key, and mints tokens after the next restart): the configuration key
/// naming it, the file, its permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposedSecretFile {
    pub key: String,
    pub path: PathBuf,
    pub mode: u32,
}

/// "its group and others", "its group" or "others", from the group and other bits of one kind.
fn whom(group: bool, other: bool) -> Option<&'static str> {
    match (group, other) {
        (true, true) => Some("its group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    }
}

impl fmt::Display for ExposedSecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = self.mode;
        let readers = whom(mode & 0o040 != 0, mode & 0o004 != 0);
        let writers = whom(mode & 0o020 != 0, mode & 0o002 != 0);
        let what = match (readers, writers) {
            (Some(r), Some(w)) => format!("readable by {r} and writable by {w}"),
            (Some(r), None) => format!("readable by {r}"),
            (None, Some(w)) => format!("writable by {w} (who can replace the secret)"),
            (None, None) => "private".to_owned(),
        };
        write!(
            f,
            "{}: {} is {what} (mode {:o}); `chmod 600 {}` makes it its owner's only",
            self.key,
            self.path.display(),
            mode & 0o777,
            self.path.display()
        )
    }
}

impl Config {
    /// The secret files (shared secret, session secret, private keys, the TLS key) that their
    /// group or everyone can read or write: warned about at start-up and by `check`, not refused
    /// (a container may run as a user that only a group grants the file to).
    pub fn exposed_secret_files(&self) -> Vec<ExposedSecretFile> {
        let mut files: Vec<(String, &Path)> = Vec::new();
        let several = !self.apps.is_empty();
        for (index, entry) in self.apps.iter().enumerate() {
            let key = |name: &str| format!("apps[{index}].{name}");
            files.extend(
                [
                    (
                        key("ownid.shared_secret_file"),
                        &entry.ownid.shared_secret_file,
                    ),
                    (key("session.secret_file"), &entry.session.secret_file),
                    (
                        key("session.private_key_file"),
                        &entry.session.private_key_file,
                    ),
                ]
                .into_iter()
                .filter_map(|(key, file)| Some((key, file.as_deref()?))),
            );
        }
        if !several {
            files.extend(
                [
                    ("ownid.shared_secret_file", &self.ownid.shared_secret_file),
                    ("session.secret_file", &self.session.secret_file),
                    ("session.private_key_file", &self.session.private_key_file),
                ]
                .into_iter()
                .filter_map(|(key, file)| Some((key.to_owned(), file.as_deref()?))),
            );
        }
        if let Some(tls) = &self.server.tls {
            files.push(("server.tls.key_file".into(), &tls.key_file));
        }
        files
            .into_iter()
            .filter_map(|(key, path)| {
                let mode = permission_bits(path)?;
                (mode & 0o066 != 0).then(|| ExposedSecretFile {
                    key,
                    path: path.to_owned(),
                    mode,
                })
            })
            .collect()
    }
}

#[cfg(unix)]
fn permission_bits(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .ok()
        .map(|meta| meta.permissions().mode())
}

#[cfg(not(unix))]
fn permission_bits(_: &Path) -> Option<u32> {
    None
}

/// `path: must be positive` when `zero`.
fn positive(path: &str, zero: bool) -> Result<(), ConfigError> {
    if zero {
        return Err(ConfigError::at(path, "must be positive"));
    }
    Ok(())
}

fn read_secret_file(
    value: &mut Option<Secret>,
    file: &Option<PathBuf>,
    path: &str,
) -> Result<(), ConfigError> {
    let Some(file) = file else { return Ok(()) };
    if value.is_some() {
        return Err(ConfigError::at(
            path,
            format!("set either {path} or {path}_file, not both"),
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|err| {
        ConfigError::at(
            &format!("{path}_file"),
            format!("cannot read {}: {err}", file.display()),
        )
    })?;
    *value = Some(Secret::new(text.trim()));
    Ok(())
}

#[cfg(test)]
mod tests;
