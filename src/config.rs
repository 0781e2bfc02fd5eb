//! The one YAML file, with `${VAR}` references and `OWNID_BRIDGE__SECTION__KEY` overrides.
//!
//! Loading goes: YAML text → a value tree → `${VAR}` expanded (each error names the key) →
//! environment overrides written into the tree → typed structs (unknown keys and bad values are
//! errors naming the key's path) → secrets read from their files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use ownid_bridge_store::{Identifier, PoolSettings, UsersMapping};
use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

use crate::secret::{DatabaseUrl, Secret};

/// The prefix of environment overrides: `OWNID_BRIDGE__OWNID__SHARED_SECRET` sets
/// `ownid.shared_secret`.
pub const ENV_PREFIX: &str = "OWNID_BRIDGE__";

/// The example configuration, every key documented. `ownid-bridge config example` prints it.
pub const EXAMPLE: &str = include_str!("../config.example.yaml");

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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub ownid: OwnIdConfig,
    pub session: SessionConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at `/metrics`.
    #[serde(deserialize_with = "boolean")]
    pub enabled: bool,
    /// A separate `host:port` for `/metrics` (e.g. an internal interface); empty: the main port.
    pub listen: Option<String>,
    /// Only callers from these networks may read `/metrics` (the caller's address as
    /// `server.trusted_proxies` resolves it); others get 403. Default: loopback only. Empty:
    /// anyone.
    #[serde(deserialize_with = "networks")]
    pub allowed_networks: Vec<IpNet>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
            allowed_networks: vec![
                "127.0.0.0/8".parse().expect("a network"),
                "::1/128".parse().expect("a network"),
            ],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free port (the chosen address is logged).
    pub listen: String,
    /// Where the three endpoints are mounted, e.g. `/ownid`.
    pub base_path: String,
    #[serde(deserialize_with = "number")]
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// How long a request body may take to arrive (slow clients get 408).
    #[serde(deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Connections with no traffic for this long are closed.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// How long a whole request head (request line and headers) may take to arrive, however
    /// steadily it trickles; then 408.
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// Open connections served at once; further connections wait in the listen backlog. The
    /// default (512) stays well below the usual soft file-descriptor limit of 1024.
    #[serde(deserialize_with = "number")]
    pub max_connections: usize,
    /// Proxies whose `X-Forwarded-For` header is believed (CIDRs or addresses).
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// Serve HTTPS (rustls) with this certificate and key.
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub certificate_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            base_path: "/ownid".into(),
            max_body_bytes: 65536,
            shutdown_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseMode {
    /// OwnID's OpenAPI contract: 404 for a missing user, 204 for a user without data.
    #[default]
    Standard,
    /// The older samples: 200 with `{"errorCode": 404, ...}` and `{"ownIdData": ""}`.
    Legacy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    #[default]
    None,
    /// Lower-cases the login id before validation and lookup; stored ids must be lower-case.
    Lowercase,
}

impl Normalization {
    pub fn apply<'a>(&self, login_id: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Normalization::None => login_id.into(),
            Normalization::Lowercase => login_id.to_lowercase().into(),
        }
    }
}

/// An entry of `ownid.previous_shared_secrets`: a secret, accepted until `expires` when set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: Secret,
    pub expires: Option<std::time::SystemTime>,
}

impl From<Secret> for PreviousSecret {
    fn from(secret: Secret) -> Self {
        PreviousSecret {
            secret,
            expires: None,
        }
    }
}

/// Where accepted signatures are remembered (`ownid.replay_protection`). An enum so that a mode
/// shared by several instances can join `off` and `memory` under the same key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayProtection {
    /// Every correctly signed request inside the clock-skew window is accepted, repeats too.
    Off,
    /// Each signature is accepted once per instance, remembered in this process's memory.
    #[default]
    Memory,
}

impl<'de> Deserialize<'de> for ReplayProtection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The key was a boolean before it was a mode: `true`/`false` (YAML or strings) still work.
        match Scalar::<bool>::deserialize(deserializer)? {
            Scalar::Native(true) => Ok(ReplayProtection::Memory),
            Scalar::Native(false) => Ok(ReplayProtection::Off),
            Scalar::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "memory" | "true" => Ok(ReplayProtection::Memory),
                "off" | "false" => Ok(ReplayProtection::Off),
                _ => Err(serde::de::Error::custom(format!(
                    "invalid value {text:?}: expected one of off, memory"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnIdConfig {
    /// The application's shared secret from the OwnID console (base64).
    pub shared_secret: Option<Secret>,
    /// A file holding the shared secret instead (surrounding white space is ignored).
    pub shared_secret_file: Option<PathBuf>,
    /// Secrets still accepted while a new shared secret is rolled out: a list whose items are a
    /// secret or `{ secret, expires }` (RFC 3339, UTC), or one comma-separated string.
    #[serde(deserialize_with = "previous_secrets")]
    pub previous_shared_secrets: Vec<PreviousSecret>,
    /// Accept each signed request only once within its clock-skew window: `off` or `memory`
    /// (this instance's memory, the default). `true` and `false` mean `memory` and `off`.
    pub replay_protection: ReplayProtection,
    /// The most signatures the replay guard holds at once (each until its timestamp leaves the
    /// window). When it is full, new signed requests are refused with 503 rather than an entry
    /// still inside its window forgotten.
    #[serde(deserialize_with = "number")]
    pub replay_max_entries: usize,
    #[serde(deserialize_with = "duration")]
    pub max_clock_skew: Duration,
    pub responses: ResponseMode,
    /// The longest ownIdData accepted, in characters; longer values are refused with 413.
    #[serde(deserialize_with = "number")]
    pub max_ownid_data_chars: usize,
    /// Create the user on `setOwnIDDataByLoginId` when the login id is unknown.
    #[serde(deserialize_with = "boolean")]
    pub create_missing_users: bool,
    pub login_id_normalization: Normalization,
    /// When non-empty, only callers from these networks reach the OwnID operations (403).
    #[serde(deserialize_with = "networks")]
    pub allowed_networks: Vec<IpNet>,
}

impl Default for OwnIdConfig {
    fn default() -> Self {
        OwnIdConfig {
            shared_secret: None,
            shared_secret_file: None,
            previous_shared_secrets: Vec::new(),
            replay_protection: ReplayProtection::Memory,
            replay_max_entries: 500_000,
            max_clock_skew: Duration::from_secs(60),
            responses: ResponseMode::Standard,
            max_ownid_data_chars: 16384,
            create_missing_users: false,
            login_id_normalization: Normalization::None,
            allowed_networks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    #[default]
    HS256,
    HS384,
    HS512,
    RS256,
    ES256,
    EdDSA,
}

impl JwtAlgorithm {
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionTtls {
    #[serde(deserialize_with = "optional_duration")]
    pub browser: Option<Duration>,
    #[serde(deserialize_with = "optional_duration")]
    pub mobile: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub algorithm: JwtAlgorithm,
    /// HMAC secret (HS*), used as raw bytes. At least 32 bytes.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    /// PEM private key (RS256, ES256, EdDSA); its public key is served as JWKS.
    pub private_key_file: Option<PathBuf>,
    /// `kid` in the token header and the JWKS entry.
    pub key_id: Option<String>,
    /// Public keys of earlier signing keys, still published in the JWKS during a key rotation so
    /// that tokens they signed keep verifying until they expire.
    pub previous_public_keys: Vec<PublicKeyConfig>,
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// Lifetimes per `sessionType`; a type not listed uses `ttl`.
    pub ttl_by_session_type: SessionTtls,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Where the JWKS document is served (asymmetric algorithms only).
    pub jwks_path: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            secret_file: None,
            private_key_file: None,
            key_id: None,
            previous_public_keys: Vec::new(),
            ttl: Duration::from_secs(3600),
            ttl_by_session_type: SessionTtls::default(),
            issuer: None,
            audience: None,
            jwks_path: "/.well-known/jwks.json".into(),
        }
    }
}

/// A public key published in the JWKS: a PEM file and its `kid`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    pub file: PathBuf,
    pub key_id: String,
}

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
pub struct PoolConfig {
    #[serde(deserialize_with = "number")]
    pub max_connections: u32,
    #[serde(deserialize_with = "number")]
    pub min_connections: u32,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub acquire_timeout: Duration,
    #[serde(deserialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let defaults = PoolSettings::default();
        PoolConfig {
            max_connections: defaults.max_connections,
            min_connections: defaults.min_connections,
            connect_timeout: defaults.connect_timeout,
            acquire_timeout: defaults.acquire_timeout,
            idle_timeout: defaults.idle_timeout,
        }
    }
}

impl PoolConfig {
    pub fn settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.max_connections,
            min_connections: self.min_connections,
            connect_timeout: self.connect_timeout,
            acquire_timeout: self.acquire_timeout,
            idle_timeout: self.idle_timeout,
        }
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
    #[serde(deserialize_with = "optional_boolean")]
    pub create_demo_table: Option<bool>,
    pub users: UsersConfig,
    pub pool: PoolConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Sqlite,
            url: DatabaseUrl::new("sqlite://ownid-bridge.db"),
            create_demo_table: None,
            users: UsersConfig::default(),
            pool: PoolConfig::default(),
        }
    }
}

impl StorageConfig {
    pub fn creates_demo_table(&self) -> bool {
        self.create_demo_table
            .unwrap_or(self.backend == Backend::Sqlite)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `ownid_bridge=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
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
        let mut tree: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(text).map_err(|err| ConfigError(format!("invalid YAML: {err}")))?
        };
        if tree.is_null() {
            tree = Value::Mapping(Default::default());
        }
        expand_vars(&mut tree, "", env)?;
        apply_overrides(&mut tree, env)?;
        let mut config: Config = serde_path_to_error::deserialize(tree).map_err(|err| {
            let path = err.path().to_string();
            ConfigError::at(if path == "." { "(top level)" } else { &path }, err.inner())
        })?;
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
        )
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let base = self.server.base_path.trim_end_matches('/');
        if !base.starts_with('/')
            || !base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
        {
            return Err(ConfigError::at(
                "server.base_path",
                format!(
                    "{:?} must start with '/' and use only letters, digits and -_.~/",
                    self.server.base_path
                ),
            ));
        }
        self.server.base_path = base.to_owned();
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::at("server.max_body_bytes", "must be positive"));
        }
        if self.server.header_timeout.is_zero() {
            return Err(ConfigError::at("server.header_timeout", "must be positive"));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::at(
                "server.max_connections",
                "must be positive",
            ));
        }
        if self.ownid.max_ownid_data_chars == 0 {
            return Err(ConfigError::at(
                "ownid.max_ownid_data_chars",
                "must be positive",
            ));
        }
        if self.ownid.replay_max_entries == 0 {
            return Err(ConfigError::at(
                "ownid.replay_max_entries",
                "must be positive",
            ));
        }
        if self.session.ttl.is_zero() {
            return Err(ConfigError::at("session.ttl", "must be positive"));
        }
        if !self.session.jwks_path.starts_with('/') {
            return Err(ConfigError::at("session.jwks_path", "must start with '/'"));
        }
        if self.storage.pool.max_connections == 0 {
            return Err(ConfigError::at(
                "storage.pool.max_connections",
                "must be positive",
            ));
        }
        let scheme = self
            .storage
            .url
            .expose()
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_default();
        let schemes = self.storage.backend.schemes();
        if !schemes.contains(&scheme.as_str()) {
            return Err(ConfigError::at(
                "storage.url",
                format!(
                    "storage.backend {} expects a URL starting with {}: (got {})",
                    self.storage.backend.feature(),
                    schemes.join(": or "),
                    self.storage.url
                ),
            ));
        }
        self.storage.users.mapping()?;
        Ok(())
    }
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

/// Replaces `${VAR}` and `${VAR:-default}` in every string of the tree; `$$` is a literal `$`.
fn expand_vars(value: &mut Value, path: &str, env: &[(String, String)]) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => *text = expand_string(text, path, env)?,
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_vars(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{key:?}"));
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_vars(item, &child, env)?;
            }
        }
        Value::Tagged(tagged) => expand_vars(&mut tagged.value, path, env)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn expand_string(text: &str, path: &str, env: &[(String, String)]) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                ConfigError::at(path, "unclosed ${ in value (write $$ for a literal $)")
            })?;
            let reference = &body[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError::at(
                    path,
                    format!("${{{reference}}} is not a valid variable reference"),
                ));
            }
            match (lookup(env, name), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(ConfigError::at(
                        path,
                        format!("environment variable {name} is not set"),
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes `OWNID_BRIDGE__A__B=value` into the tree as `a.b: "value"`. Values stay strings; the
/// numeric and boolean fields accept strings, so `OWNID_BRIDGE__SERVER__MAX_BODY_BYTES=1000`
/// works without guessing types here.
fn apply_overrides(tree: &mut Value, env: &[(String, String)]) -> Result<(), ConfigError> {
    let mut overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(key, _)| key.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (key, value) in overrides {
        let segments: Vec<String> = key[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_lowercase)
            .collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError(format!(
                "{key}: empty key segment in environment override"
            )));
        }
        let mut node = &mut *tree;
        for (i, segment) in segments.iter().enumerate() {
            if !node.is_mapping() {
                return Err(ConfigError(format!(
                    "{key}: {} is not a section",
                    segments[..i].join(".")
                )));
            }
            let map = node.as_mapping_mut().expect("checked above");
            let entry = map
                .entry(Value::String(segment.clone()))
                .or_insert(Value::Null);
            if i + 1 == segments.len() {
                *entry = Value::String(value.clone());
            } else if entry.is_null() {
                *entry = Value::Mapping(Default::default());
            }
            node = entry;
        }
    }
    Ok(())
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(text.trim()).map_err(|err| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({err}); write e.g. \"60s\", \"5m\", \"1h\""
        ))
    })
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() || text.trim() == "none" => Ok(None),
        Some(text) => humantime::parse_duration(text.trim())
            .map(Some)
            .map_err(|err| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({err}); write e.g. \"60s\", \"5m\", or none"
                ))
            }),
    }
}

/// A scalar that may arrive as its native YAML type or as a string (environment overrides and
/// `${VAR}` expansions are always strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar<T> {
    Native(T),
    Text(String),
}

fn parse_scalar<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: Deserialize<'de> + FromStr,
    T::Err: fmt::Display,
    D: Deserializer<'de>,
{
    match Scalar::<T>::deserialize(deserializer)? {
        Scalar::Native(value) => Ok(value),
        Scalar::Text(text) => text
            .trim()
            .parse()
            .map_err(|err| serde::de::Error::custom(format!("invalid value {text:?}: {err}"))),
    }
}

fn number<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: Deserialize<'de> + FromStr,
    T::Err: fmt::Display,
    D: Deserializer<'de>,
{
    parse_scalar(deserializer)
}

/// A list of networks: a YAML sequence, or one comma-separated string (as an environment
/// override gives it). A bare address means that address alone.
fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    string_list(deserializer)?
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{item:?} is not a network (e.g. 10.0.0.0/8) or an address"
                    ))
                })
        })
        .collect()
}

/// Previous shared secrets: a YAML sequence whose items are a secret or a mapping
/// `{ secret: ..., expires: 2026-12-31T00:00:00Z }`, or one comma-separated string of secrets
/// (base64 has no commas), as an environment override gives it.
fn previous_secrets<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PreviousSecret>, D::Error> {
    use serde::de::Error as _;
    let plain = |text: &str| PreviousSecret::from(Secret::new(text.trim()));
    let items = match Value::deserialize(deserializer)? {
        Value::Null => return Ok(Vec::new()),
        Value::String(text) => {
            return Ok(text
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(plain)
                .collect())
        }
        Value::Sequence(items) => items,
        _ => {
            return Err(D::Error::custom(
                "expected a list of secrets (or one comma-separated string)",
            ))
        }
    };
    let mut secrets = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(text) if text.trim().is_empty() => {}
            Value::String(text) => secrets.push(plain(&text)),
            Value::Mapping(map) => {
                let mut secret = None;
                let mut expires = None;
                for (key, value) in map {
                    match (key.as_str(), value) {
                        (Some("secret"), Value::String(text)) => {
                            secret = Some(Secret::new(text.trim()))
                        }
                        (Some("expires"), Value::String(text)) => {
                            let time = humantime::parse_rfc3339(text.trim()).map_err(|_| {
                                D::Error::custom(format!(
                                    "item {i}: expires {text:?} is not an RFC 3339 time in UTC, \
                                     e.g. \"2026-12-31T00:00:00Z\""
                                ))
                            })?;
                            expires = Some(time);
                        }
                        (Some(key @ ("secret" | "expires")), _) => {
                            return Err(D::Error::custom(format!(
                                "item {i}: {key} must be a string"
                            )))
                        }
                        (key, _) => {
                            return Err(D::Error::custom(format!(
                                "item {i}: unknown field {key:?}, expected secret or expires"
                            )))
                        }
                    }
                }
                let secret = secret.ok_or_else(|| {
                    D::Error::custom(format!("item {i}: a mapping needs a secret"))
                })?;
                secrets.push(PreviousSecret { secret, expires });
            }
            _ => {
                return Err(D::Error::custom(format!(
                    "item {i}: expected a secret or {{ secret, expires }}"
                )))
            }
        }
    }
    Ok(secrets)
}

fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    let items = match List::deserialize(deserializer)? {
        List::Many(items) => items,
        List::One(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    parse_scalar(deserializer)
}

fn optional_boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    Ok(Some(parse_scalar(deserializer)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(yaml: &str, vars: &[(&str, &str)]) -> String {
        Config::from_yaml(yaml, &env(vars)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_without_a_file() {
        let config = Config::from_yaml("", &[]).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(config.server.base_path, "/ownid");
        assert_eq!(config.ownid.max_clock_skew, Duration::from_secs(60));
        assert!(config.ownid.shared_secret.is_none());
        assert!(config.session.secret.is_none());
        assert_eq!(config.storage.url.expose(), "sqlite://ownid-bridge.db");
        assert!(config.storage.creates_demo_table());
    }

    #[test]
    fn the_example_file_loads() {
        let config = Config::from_yaml(
            EXAMPLE,
            &env(&[
                (
                    "OWNID_SHARED_SECRET",
                    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
                ),
                (
                    "OWNID_BRIDGE_JWT_SECRET",
                    "an-hmac-secret-of-at-least-32-bytes!!",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.storage.users.table, "users");
        assert!(config.ownid.shared_secret.is_some());
    }

    #[test]
    fn variables_expand_with_defaults_and_escapes() {
        let config = Config::from_yaml(
            "server: { listen: \"${HOST:-0.0.0.0}:${PORT}\", base_path: \"/a$$b\" }",
            &env(&[("PORT", "9000")]),
        );
        // `$` is not allowed in a base path; the expansion itself worked.
        assert_eq!(
            config.unwrap_err().to_string(),
            "server.base_path: \"/a$b\" must start with '/' and use only letters, digits and -_.~/"
        );
        let config = Config::from_yaml(
            "server: { listen: \"${HOST:-0.0.0.0}:${PORT}\" }",
            &env(&[("PORT", "9000")]),
        )
        .unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:9000");
    }

    #[test]
    fn a_missing_variable_names_the_key() {
        assert_eq!(
            error("ownid:\n  shared_secret: \"${NOPE_NOT_SET}\"\n", &[]),
            "ownid.shared_secret: environment variable NOPE_NOT_SET is not set"
        );
    }

    #[test]
    fn an_unknown_key_names_its_path() {
        let message = error("storage:\n  users:\n    tabel: people\n", &[]);
        assert!(
            message.starts_with("storage.users.tabel: unknown field `tabel`, expected one of"),
            "{message}"
        );
        let message = error("servre: {}\n", &[]);
        assert!(message.contains("unknown field `servre`"), "{message}");
    }

    #[test]
    fn a_bad_duration_names_its_path() {
        let message = error("ownid: { max_clock_skew: soon }\n", &[]);
        assert!(
            message.starts_with("ownid.max_clock_skew: invalid duration \"soon\""),
            "{message}"
        );
    }

    #[test]
    fn environment_overrides_win_and_accept_strings_for_numbers() {
        let config = Config::from_yaml(
            "server: { max_body_bytes: 100 }\nownid: { create_missing_users: false }\n",
            &env(&[
                ("OWNID_BRIDGE__SERVER__MAX_BODY_BYTES", "2048"),
                ("OWNID_BRIDGE__OWNID__CREATE_MISSING_USERS", "true"),
                ("OWNID_BRIDGE__OWNID__SHARED_SECRET", "c2VjcmV0"),
                ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "accounts"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.max_body_bytes, 2048);
        assert!(config.ownid.create_missing_users);
        assert_eq!(config.ownid.shared_secret.unwrap().expose(), "c2VjcmV0");
        assert_eq!(config.storage.users.table, "accounts");
    }

    #[test]
    fn an_unknown_override_is_an_error_too() {
        let message = error("", &[("OWNID_BRIDGE__SERVER__LISTNE", "x")]);
        assert!(message.contains("unknown field `listne`"), "{message}");
    }

    #[test]
    fn secrets_are_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "c2VjcmV0\n").unwrap();
        let yaml = format!(
            "ownid: {{ shared_secret_file: {:?} }}",
            file.display().to_string()
        );
        let config = Config::from_yaml(&yaml, &[]).unwrap();
        assert_eq!(config.ownid.shared_secret.unwrap().expose(), "c2VjcmV0");
        let both = format!(
            "ownid: {{ shared_secret: x, shared_secret_file: {:?} }}",
            file.display().to_string()
        );
        assert!(error(&both, &[]).starts_with("ownid.shared_secret: set either"));
        let missing = error("session: { secret_file: /nonexistent/secret }", &[]);
        assert!(
            missing.starts_with("session.secret_file: cannot read"),
            "{missing}"
        );
    }

    #[test]
    fn networks_accept_lists_strings_and_bare_addresses() {
        let config = Config::from_yaml(
            "ownid: { allowed_networks: [\"203.0.113.0/24\", \"2001:db8::1\"] }",
            &env(&[(
                "OWNID_BRIDGE__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8, 127.0.0.1",
            )]),
        )
        .unwrap();
        assert_eq!(config.ownid.allowed_networks.len(), 2);
        assert_eq!(config.server.trusted_proxies.len(), 2);
        let message = error("ownid: { allowed_networks: [\"10.0.0.0/33\"] }", &[]);
        assert!(message.starts_with("ownid.allowed_networks"), "{message}");
    }

    #[test]
    fn the_url_must_match_the_backend() {
        let message = error("storage: { backend: postgres }", &[]);
        assert!(
            message.starts_with("storage.url: storage.backend postgres expects"),
            "{message}"
        );
        let config = Config::from_yaml(
            "storage: { backend: mariadb, url: \"mariadb://app:pw@db/users\" }",
            &[],
        )
        .unwrap();
        assert_eq!(config.storage.backend, Backend::Mysql);
        assert!(!config.storage.creates_demo_table());
        let message = error("storage: { backend: oracle }", &[]);
        assert!(
            message.starts_with("storage.backend: unknown variant `oracle`"),
            "{message}"
        );
    }

    #[test]
    fn invalid_identifiers_name_their_key() {
        let message = error("storage: { users: { ownid_data: \"x; drop table\" } }", &[]);
        assert!(
            message.starts_with("storage.users.ownid_data:"),
            "{message}"
        );
        let message = error("storage: { users: { claims: { sub: id } } }", &[]);
        assert!(
            message.starts_with("storage.users.claims.sub:"),
            "{message}"
        );
    }

    #[test]
    fn debug_output_redacts_secrets_and_url_passwords() {
        let config = Config::from_yaml(
            "ownid: { shared_secret: c2VjcmV0LXZhbHVl }\n\
             session: { secret: jwt-secret-value-jwt-secret-value }\n\
             storage: { url: \"sqlite://user:pa55word@localhost/x.db\" }\n",
            &[],
        )
        .unwrap();
        let debug = format!("{config:?}");
        for leaked in ["c2VjcmV0LXZhbHVl", "jwt-secret-value", "pa55word"] {
            assert!(!debug.contains(leaked), "{leaked} in {debug}");
        }
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn replay_protection_is_a_mode_and_the_old_booleans_still_work() {
        let mode = |yaml: &str, vars: &[(&str, &str)]| {
            Config::from_yaml(yaml, &env(vars))
                .unwrap()
                .ownid
                .replay_protection
        };
        assert_eq!(mode("", &[]), ReplayProtection::Memory);
        assert_eq!(
            mode("ownid: { replay_protection: off }", &[]),
            ReplayProtection::Off
        );
        assert_eq!(
            mode("ownid: { replay_protection: memory }", &[]),
            ReplayProtection::Memory
        );
        assert_eq!(
            mode("ownid: { replay_protection: false }", &[]),
            ReplayProtection::Off
        );
        assert_eq!(
            mode("ownid: { replay_protection: true }", &[]),
            ReplayProtection::Memory
        );
        for (value, expected) in [
            ("false", ReplayProtection::Off),
            ("true", ReplayProtection::Memory),
            ("off", ReplayProtection::Off),
            ("memory", ReplayProtection::Memory),
        ] {
            assert_eq!(
                mode("", &[("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", value)]),
                expected,
                "{value}"
            );
        }
        let message = error("ownid: { replay_protection: sometimes }", &[]);
        assert!(
            message.starts_with("ownid.replay_protection:") && message.contains("off, memory"),
            "{message}"
        );
        assert_eq!(
            Config::from_yaml("", &[]).unwrap().ownid.replay_max_entries,
            500_000
        );
        let message = error("ownid: { replay_max_entries: 0 }", &[]);
        assert!(
            message.starts_with("ownid.replay_max_entries: must be positive"),
            "{message}"
        );
    }

    #[test]
    fn previous_secrets_are_strings_or_carry_an_expiry() {
        let config = Config::from_yaml(
            "ownid:\n  previous_shared_secrets:\n    - c2VjcmV0LW9uZQ==\n    \
             - { secret: c2VjcmV0LXR3bw==, expires: \"2026-12-31T00:00:00Z\" }\n",
            &[],
        )
        .unwrap();
        let previous = &config.ownid.previous_shared_secrets;
        assert_eq!(previous.len(), 2);
        assert_eq!(previous[0].secret.expose(), "c2VjcmV0LW9uZQ==");
        assert_eq!(previous[0].expires, None);
        assert_eq!(previous[1].secret.expose(), "c2VjcmV0LXR3bw==");
        assert_eq!(
            previous[1].expires,
            Some(humantime::parse_rfc3339("2026-12-31T00:00:00Z").unwrap())
        );
        let config = Config::from_yaml(
            "",
            &env(&[(
                "OWNID_BRIDGE__OWNID__PREVIOUS_SHARED_SECRETS",
                "c2VjcmV0LW9uZQ==, c2VjcmV0LXR3bw==",
            )]),
        )
        .unwrap();
        assert_eq!(config.ownid.previous_shared_secrets.len(), 2);
        let message = error(
            "ownid: { previous_shared_secrets: [{ secret: x, expires: tomorrow }] }",
            &[],
        );
        assert!(
            message.starts_with("ownid.previous_shared_secrets: item 0: expires \"tomorrow\""),
            "{message}"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }
}
