//! Session tokens (SPEC §3): JWTs signed with jsonwebtoken, HS256 by default; RS256, ES256 and
//! EdDSA from a PEM private key, whose public key is published as a JWKS document.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ownid_bridge_store::SessionUser;
use serde_json::{Map, Value};

use crate::config::{JwtAlgorithm, SessionConfig};
use crate::secret::Secret;

/// The shortest HMAC secret accepted for an algorithm: RFC 7518 §3.2 asks for a key at least as
/// long as the hash output, and a short secret is guessable offline from any one token.
pub fn min_hmac_secret_bytes(algorithm: JwtAlgorithm) -> usize {
    match algorithm {
        JwtAlgorithm::HS384 => 48,
        JwtAlgorithm::HS512 => 64,
        _ => 32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    Browser,
    Mobile,
}

/// A signed token and its expiry (Unix seconds).
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: u64,
}

pub struct SessionIssuer {
    header: Header,
    key: EncodingKey,
    ttl: Duration,
    ttl_browser: Option<Duration>,
    ttl_mobile: Option<Duration>,
    issuer: Option<String>,
    audience: Option<String>,
    jwks: Option<JwkSet>,
}

impl std::fmt::Debug for SessionIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIssuer")
            .field("algorithm", &self.header.alg)
            .field("key", &"[redacted]")
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn algorithm(configured: JwtAlgorithm) -> Algorithm {
    match configured {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// The JWKS entry of an earlier key, from its public PEM.
fn previous_jwk(
    configured: JwtAlgorithm,
    alg: Algorithm,
    previous: &crate::config::PublicKeyConfig,
) -> Result<Jwk, String> {
    let pem = std::fs::read(&previous.file)
        .map_err(|err| format!("cannot read {}: {err}", previous.file.display()))?;
    let key = match configured {
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
        JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(&pem),
        _ => DecodingKey::from_ed_pem(&pem),
    }
    .map_err(|err| {
        format!(
            "{} is not a {configured:?} public key in PEM form: {err}",
            previous.file.display()
        )
    })?;
    let mut jwk = Jwk::from_decoding_key(&key, Some(alg)).map_err(|err| err.to_string())?;
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_id = Some(previous.key_id.clone());
    Ok(jwk)
}

impl SessionIssuer {
    /// Builds the issuer. `secret` is the HMAC secret to use (the configured one, or one
    /// generated for this run); asymmetric algorithms read `private_key_file` instead.
    pub fn new(config: &SessionConfig, secret: Option<&Secret>) -> Result<Self, String> {
        let alg = algorithm(config.algorithm);
        let (key, jwks) = if config.algorithm.is_hmac() {
            if config.private_key_file.is_some() {
                return Err(format!(
                    "session.private_key_file is set but session.algorithm is {:?}; choose \
                     RS256, ES256 or EdDSA to sign with a private key",
                    config.algorithm
                ));
            }
            let secret = secret.ok_or("session.secret is required for HMAC algorithms")?;
            let min = min_hmac_secret_bytes(config.algorithm);
            if secret.expose().len() < min {
                return Err(format!(
                    "session.secret is {} bytes; {:?} secrets must be at least {min} bytes",
                    secret.expose().len(),
                    config.algorithm
                ));
            }
            (EncodingKey::from_secret(secret.expose().as_bytes()), None)
        } else {
            let path = config.private_key_file.as_ref().ok_or_else(|| {
                format!(
                    "session.private_key_file is required for {:?}",
                    config.algorithm
                )
            })?;
            let pem = std::fs::read(path).map_err(|err| {
                format!(
                    "session.private_key_file: cannot read {}: {err}",
                    path.display()
                )
            })?;
            let parsed = match config.algorithm {
                JwtAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                JwtAlgorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                _ => EncodingKey::from_ed_pem(&pem),
            };
            let key = parsed.map_err(|err| {
                format!(
                    "session.private_key_file: {} is not a {:?} private key in PEM form: {err}",
                    path.display(),
                    config.algorithm
                )
            })?;
            let mut jwk = Jwk::from_encoding_key(&key, alg).map_err(|err| {
                format!(
                    "session.private_key_file: cannot derive the public key of {}: {err}",
                    path.display()
                )
            })?;
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_id = config.key_id.clone();
            let mut keys = vec![jwk];
            for (i, previous) in config.previous_public_keys.iter().enumerate() {
                keys.push(
                    previous_jwk(config.algorithm, alg, previous)
                        .map_err(|err| format!("session.previous_public_keys[{i}]: {err}"))?,
                );
            }
            (key, Some(JwkSet { keys }))
        };
        let mut header = Header::new(alg);
        header.kid = config.key_id.clone();
        let issuer = SessionIssuer {
            header,
            key,
            ttl: config.ttl,
            ttl_browser: config.ttl_by_session_type.browser,
            ttl_mobile: config.ttl_by_session_type.mobile,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            jwks,
        };
        // Sign once now so that a key jsonwebtoken cannot use fails start-up, not the first login.
        issuer
            .issue(&SessionUser::default(), None)
            .map_err(|err| format!("session: the configured key cannot sign: {err}"))?;
        Ok(issuer)
    }

    /// A fresh random HMAC secret for one run.
    pub fn generate_secret() -> Secret {
        // 64 random bytes: enough for HS512, the longest requirement.
        let bytes: [[u8; 32]; 2] = rand::random();
        let bytes = bytes.concat();
        use base64::Engine as _;
        Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn ttl_for(&self, session_type: Option<SessionType>) -> Duration {
        let specific = match session_type {
            Some(SessionType::Browser) => self.ttl_browser,
            Some(SessionType::Mobile) => self.ttl_mobile,
            None => None,
        };
        specific.unwrap_or(self.ttl)
    }

    pub fn issue(
        &self,
        user: &SessionUser,
        session_type: Option<SessionType>,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let expires_at = now.saturating_add(self.ttl_for(session_type).as_secs());
        // Configured extra claims first, so the registered claims below always win.
        let mut claims: Map<String, Value> = user.claims.clone();
        claims.insert("sub".into(), user.subject.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), expires_at.into());
        claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".into(), issuer.clone().into());
        }
        if let Some(audience) = &self.audience {
            claims.insert("aud".into(), audience.clone().into());
        }
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key)?;
        Ok(IssuedToken { token, expires_at })
    }

    /// The public keys, for asymmetric algorithms only (an HMAC secret is never published).
    pub fn jwks(&self) -> Option<&JwkSet> {
        self.jwks.as_ref()
    }
}
