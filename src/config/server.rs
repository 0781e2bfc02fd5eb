//! `server`, `metrics` and `log`: how the HTTP server listens, and what it reports.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::de::{duration, duration_schema, networks, serialize_duration};
use super::{positive, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at `/metrics`.
    pub enabled: bool,
    /// A separate `host:port` for `/metrics` (e.g. an internal interface); empty: the main port.
    pub listen: Option<String>,
    /// Only callers from these networks may read `/metrics` (the caller's address as
    /// `server.trusted_proxies` resolves it); others get 403. Default: loopback only. Empty:
    /// anyone.
    #[serde(
        deserialize_with = "networks",
        serialize_with = "super::de::serialize_networks"
    )]
    #[schemars(schema_with = "super::de::networks_schema")]
    pub allowed_networks: Vec<IpNet>,
}

/// Loopback only: `127.0.0.0/8` and `::1`.
fn loopback() -> Vec<IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("a network"),
        "::1/128".parse().expect("a network"),
    ]
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
            allowed_networks: loopback(),
        }
    }
}

/// `docs`: the Swagger UI page at `/docs`, where staff type a shared secret to sign "Try it out"
/// requests. That secret is the production one on a production server, so the page answers only
/// where it is wanted.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DocsConfig {
    /// Serve Swagger UI at `/docs` (false: 404). `/openapi.json` and `/openapi.yaml` hold no
    /// secret and are always served.
    pub enabled: bool,
    /// Only callers from these networks get the page (the caller's address as
    /// `server.trusted_proxies` resolves it); others get 403. Default: loopback only (reach it
    /// through an SSH tunnel, or list the staff's network). Empty: anyone.
    #[serde(
        deserialize_with = "networks",
        serialize_with = "super::de::serialize_networks"
    )]
    #[schemars(schema_with = "super::de::networks_schema")]
    pub allowed_networks: Vec<IpNet>,
}

impl Default for DocsConfig {
    fn default() -> Self {
        DocsConfig {
            enabled: true,
            allowed_networks: loopback(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks a free port (the chosen address is logged).
    pub listen: String,
    /// Where the three endpoints are mounted, e.g. `/ownid`.
    pub base_path: String,
    /// The largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub shutdown_timeout: Duration,
    /// How long a request body may take to arrive (slow clients get 408).
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub body_timeout: Duration,
    /// Connections with no traffic for this long are closed.
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub idle_timeout: Duration,
    /// How long a whole request head (request line and headers) may take to arrive, however
    /// steadily it trickles; then 408.
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub header_timeout: Duration,
    /// Open connections served at once; further connections wait in the listen backlog. The
    /// default (512) stays well below the usual soft file-descriptor limit of 1024.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv4 address, an IPv6 /64) at once; further
    /// ones are closed when accepted. `trusted_proxies` are not limited. Default: an eighth of
    /// `max_connections` (64 of 512), at least 4 or a quarter of it, whichever is fewer: two or
    /// three hosts (addresses are cheap) cannot hold every place, it takes more than eight.
    pub max_connections_per_address: Option<usize>,
    /// Proxies whose `X-Forwarded-For` header is believed (CIDRs or addresses).
    #[serde(
        deserialize_with = "networks",
        serialize_with = "super::de::serialize_networks"
    )]
    #[schemars(schema_with = "super::de::networks_schema")]
    pub trusted_proxies: Vec<IpNet>,
    /// Serve HTTPS (rustls) with this certificate and key.
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
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
            max_connections_per_address: None,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (one line per event) or `json` (one object per line).
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

impl ServerConfig {
    /// `max_connections_per_address`, or when it is not set an eighth of `max_connections`, at
    /// least 4 or a quarter of it (whichever is fewer), at least 1. Half (the former default)
    /// let two addresses take every place with keep-alive connections that never authenticate.
    pub fn connections_per_address(&self) -> usize {
        let total = self.max_connections;
        self.max_connections_per_address
            .unwrap_or((total / 8).max((total / 4).min(4)).max(1))
    }

    /// `https` with `server.tls`, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        self.base_path = base_path(&self.base_path, "server.base_path")?;
        positive("server.max_body_bytes", self.max_body_bytes == 0)?;
        positive("server.header_timeout", self.header_timeout.is_zero())?;
        positive("server.max_connections", self.max_connections == 0)?;
        positive(
            "server.max_connections_per_address",
            self.max_connections_per_address == Some(0),
        )
    }
}

/// `GET /healthz` (`app/mod.rs` mounts each fixed route by these names, so that the refused set
/// below is the set the router has).
pub const HEALTHZ: &str = "/healthz";
/// `GET /readyz`.
pub const READYZ: &str = "/readyz";
/// `GET /docs`, the Swagger UI.
pub const DOCS: &str = "/docs";
/// The Swagger UI's icon, served beside it.
pub const DOCS_FAVICON: &str = "/docs/favicon.svg";
/// `GET /metrics` on the main port.
pub const METRICS: &str = "/metrics";
/// The OpenAPI document as JSON.
pub const OPENAPI_JSON: &str = "/openapi.json";
/// The OpenAPI document as YAML.
pub const OPENAPI_YAML: &str = "/openapi.yaml";

/// The routes the server has besides the applications' (`app/mod.rs`, which mounts exactly
/// these, by the names above): no base path or JWKS path may take one. A route mounted only when
/// a feature is on (`/docs`, `/metrics`) is refused whether it is on or not.
pub const FIXED_ROUTES: [&str; 7] = [
    HEALTHZ,
    READYZ,
    DOCS,
    DOCS_FAVICON,
    METRICS,
    OPENAPI_JSON,
    OPENAPI_YAML,
];

/// A path the router would not mount as written: poem merges `//` into `/` (so `//healthz` is
/// `/healthz`, a panic at start on a duplicate route), and a `.` or `..` segment names another
/// path than it reads as. `None` when `path` is a plain absolute path.
pub(super) fn unplain_path(path: &str) -> Option<&'static str> {
    let inner = path.strip_prefix('/')?.trim_end_matches('/');
    if inner.is_empty() {
        return None;
    }
    inner.split('/').find_map(|segment| match segment {
        "" => Some("an empty segment (//)"),
        "." | ".." => Some("a . or .. segment"),
        _ => None,
    })
}

/// The OwnID operations' paths under a base path (`api/operations.rs`).
pub const OPERATIONS: [&str; 3] = [
    "setOwnIDDataByLoginId",
    "getOwnIDDataByLoginId",
    "getSessionByLoginId",
];

/// A base path as configured (`key` names it in the error), without its trailing `/`; none of
/// [`FIXED_ROUTES`].
pub(super) fn base_path(value: &str, key: &str) -> Result<String, ConfigError> {
    let base = value.trim_end_matches('/');
    if !base.starts_with('/')
        || !base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c))
    {
        return Err(ConfigError::at(
            key,
            format!("{value:?} must start with '/' and use only letters, digits and -_.~/"),
        ));
    }
    if let Some(what) = unplain_path(base) {
        return Err(ConfigError::at(
            key,
            format!("{value:?} has {what}; write the path the router serves"),
        ));
    }
    if FIXED_ROUTES.contains(&base) {
        return Err(ConfigError::at(
            key,
            format!(
                "{base:?} is a route of the server ({}); choose another base path",
                FIXED_ROUTES.join(", ")
            ),
        ));
    }
    Ok(base.to_owned())
}
