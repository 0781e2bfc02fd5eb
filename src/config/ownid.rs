//! `ownid`: the shared secret, replay protection and how OwnID's calls are answered.

use std::time::Duration;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

use super::de::{
    duration, duration_schema, networks, previous_secrets, serialize_duration, Scalar,
};
use super::{positive, ConfigError};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseMode {
    /// OwnID's OpenAPI contract: 404 for a missing user, 204 for a user without data.
    #[default]
    Standard,
    /// The older samples: 200 with `{"errorCode": 404, ...}` and `{"ownIdData": ""}`.
    Legacy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// The login id as sent.
    #[default]
    None,
    /// Lower-cases the ASCII letters of the login id before validation and lookup; stored ids
    /// must be lower-case. Other characters are left as they are.
    Lowercase,
}

impl Normalization {
    /// ASCII only: Unicode lower-casing maps characters onto ASCII letters (U+212A KELVIN SIGN
    /// becomes `k`), so an id spelt with one would fold onto someone else's.
    pub fn apply<'a>(&self, login_id: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Normalization::None => login_id.into(),
            Normalization::Lowercase if login_id.bytes().any(|b| b.is_ascii_uppercase()) => {
                login_id.to_ascii_lowercase().into()
            }
            Normalization::Lowercase => login_id.into(),
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
    /// Each signature is accepted once by all instances over the configured database, which
    /// keeps it in `ownid.replay_table` (created by `ownid-bridge schema`).
    Storage,
}

impl ReplayProtection {
    /// The name the key takes.
    pub fn name(self) -> &'static str {
        match self {
            ReplayProtection::Off => "off",
            ReplayProtection::Memory => "memory",
            ReplayProtection::Storage => "storage",
        }
    }
}

impl Serialize for ReplayProtection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl JsonSchema for ReplayProtection {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ReplayProtection".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "off, memory (this instance) or storage (every instance over the \
                database); true and false mean memory and off.",
            "anyOf": [
                { "type": "string", "enum": ["off", "memory", "storage"] },
                { "type": "boolean" }
            ]
        })
    }
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
                "storage" => Ok(ReplayProtection::Storage),
                _ => Err(serde::de::Error::custom(format!(
                    "invalid value {text:?}: expected one of off, memory, storage"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OwnIdConfig {
    /// The application's shared secret from the OwnID console (base64).
    pub shared_secret: Option<Secret>,
    /// A file holding the shared secret instead (surrounding white space is ignored).
    pub shared_secret_file: Option<PathBuf>,
    /// Secrets still accepted while a new shared secret is rolled out: a list whose items are a
    /// secret or `{ secret, expires }` (RFC 3339, UTC), or one comma-separated string.
    #[serde(
        deserialize_with = "previous_secrets",
        serialize_with = "super::de::serialize_previous_secrets"
    )]
    #[schemars(schema_with = "super::de::previous_secrets_schema")]
    pub previous_shared_secrets: Vec<PreviousSecret>,
    /// Accept each signed request only once within its clock-skew window: `off`, `memory`
    /// (this instance's memory, the default) or `storage` (the configured database, shared by
    /// every instance over it). `true` and `false` mean `memory` and `off`.
    pub replay_protection: ReplayProtection,
    /// The table (MongoDB: collection) where `replay_protection: storage` keeps signatures.
    pub replay_table: super::storage::Column,
    /// The most signatures the replay guard holds at once (each until its timestamp leaves the
    /// window). When it is full, new signed requests are refused with 503 rather than an entry
    /// still inside its window forgotten.
    pub replay_max_entries: usize,
    /// How far a request's `ownid-timestamp` may be from this server's clock; older or newer
    /// requests get 401 stale_timestamp.
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub max_clock_skew: Duration,
    /// `standard` (OwnID's OpenAPI contract: 404 and 204 with empty bodies) or `legacy` (the
    /// older samples: 200 with `{"errorCode": 404, ...}` and `{"ownIdData": ""}`).
    pub responses: ResponseMode,
    /// The longest ownIdData accepted, in characters; longer values are refused with 413.
    pub max_ownid_data_chars: usize,
    /// Create the user on `setOwnIDDataByLoginId` when the login id is unknown.
    pub create_missing_users: bool,
    /// `none` or `lowercase` (stored login ids must then be lower-case).
    pub login_id_normalization: Normalization,
    /// When non-empty, only callers from these networks reach the OwnID operations (403).
    #[serde(
        deserialize_with = "networks",
        serialize_with = "super::de::serialize_networks"
    )]
    #[schemars(schema_with = "super::de::networks_schema")]
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
            replay_table: super::storage::Column::new(ownid_bridge_store::DEFAULT_LEDGER_TABLE)
                .expect("the default replay table is a valid name"),
            max_clock_skew: Duration::from_secs(60),
            responses: ResponseMode::Standard,
            max_ownid_data_chars: 16384,
            create_missing_users: false,
            login_id_normalization: Normalization::None,
            allowed_networks: Vec::new(),
        }
    }
}

impl OwnIdConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("ownid.max_ownid_data_chars", self.max_ownid_data_chars == 0)?;
        positive("ownid.replay_max_entries", self.replay_max_entries == 0)
    }
}
