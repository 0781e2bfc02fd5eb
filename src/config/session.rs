//! `session`: the JWT the server issues after a login.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::de::{
    duration, duration_schema, optional_duration, optional_duration_schema, serialize_duration,
    serialize_optional_duration,
};
use super::{positive, ConfigError};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionTtls {
    #[serde(
        deserialize_with = "optional_duration",
        serialize_with = "serialize_optional_duration"
    )]
    #[schemars(schema_with = "optional_duration_schema")]
    pub browser: Option<Duration>,
    #[serde(
        deserialize_with = "optional_duration",
        serialize_with = "serialize_optional_duration"
    )]
    #[schemars(schema_with = "optional_duration_schema")]
    pub mobile: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// HS256, HS384 or HS512 with `secret`; RS256, ES256 or EdDSA with `private_key_file`.
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
    /// How long a token is valid.
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    #[schemars(schema_with = "duration_schema")]
    pub ttl: Duration,
    /// Lifetimes per `sessionType`; a type not listed uses `ttl`.
    pub ttl_by_session_type: SessionTtls,
    /// The `iss` claim, when set.
    pub issuer: Option<String>,
    /// The `aud` claim, when set.
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
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    pub file: PathBuf,
    pub key_id: String,
}

impl SessionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        positive("session.ttl", self.ttl.is_zero())?;
        if !self.jwks_path.starts_with('/') {
            return Err(ConfigError::at("session.jwks_path", "must start with '/'"));
        }
        Ok(())
    }
}
