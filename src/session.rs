//! Session tokens (SPEC §3): JWTs signed with jsonwebtoken, HS256 by default; RS256, ES256 and
//! EdDSA from a PEM private key, whose public key is published as a JWKS document.

use std::path::PathBuf;
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

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3; NIST SP 800-57 retired smaller
/// ones). A 1024-bit key can be factored by a well-funded attacker, a 512-bit one by anyone with
/// a few days of cloud time, and its holder can then sign tokens as this server.
pub const MIN_RSA_BITS: usize = 2048;

/// ES256 is ECDSA on P-256 (secp256r1), and the JWKS says `"crv": "P-256"`.
const P256: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Why a key that parses is still refused for `algorithm`: an RSA modulus under
/// [`MIN_RSA_BITS`], or an ES256 key on another curve than P-256. `pem` is the file as read;
/// `jwk` its public key, once derived.
fn weakness(algorithm: JwtAlgorithm, pem: &[u8], jwk: Option<&Jwk>) -> Option<String> {
    use jsonwebtoken::jwk::AlgorithmParameters;
    match algorithm {
        JwtAlgorithm::RS256 => {
            let Some(AlgorithmParameters::RSA(rsa)) = jwk.map(|jwk| &jwk.algorithm) else {
                return None;
            };
            use base64::Engine as _;
            let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .ok()?;
            let first = modulus.iter().position(|&byte| byte != 0)?;
            let bits = (modulus.len() - first) * 8 - modulus[first].leading_zeros() as usize;
            (bits < MIN_RSA_BITS).then(|| {
                format!(
                    "a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required \
                     (openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072)"
                )
            })
        }
        JwtAlgorithm::ES256 => {
            let curve = ec_curve(pem)?;
            (curve != P256).then(|| {
                format!(
                    "an EC key on the curve {curve}, not P-256 (1.2.840.10045.3.1.7), which ES256 \
                     signs with (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)"
                )
            })
        }
        _ => None,
    }
}

/// The named curve of a PKCS#8 private key or an SPKI public key in PEM form; `None` when the
/// file is neither (jsonwebtoken then says what is wrong with it).
fn ec_curve(pem: &[u8]) -> Option<pkcs8::ObjectIdentifier> {
    let parsed = pem::parse(pem).ok()?;
    let der = parsed.contents();
    match parsed.tag() {
        "PRIVATE KEY" => pkcs8::PrivateKeyInfo::try_from(der)
            .ok()?
            .algorithm
            .parameters_oid()
            .ok(),
        "PUBLIC KEY" => pkcs8::SubjectPublicKeyInfoRef::try_from(der)
            .ok()?
            .algorithm
            .parameters_oid()
            .ok(),
        _ => None,
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

/// Why the session configuration cannot sign tokens; each names its configuration key.
#[derive(Debug, thiserror::Error)]
pub enum SessionKeyError {
    #[error(
        "session.private_key_file is set but session.algorithm is {0:?}; choose RS256, ES256 or \
         EdDSA to sign with a private key"
    )]
    PrivateKeyWithHmac(JwtAlgorithm),
    #[error("session.secret is required for HMAC algorithms")]
    MissingSecret,
    #[error("session.secret is {bytes} bytes; {algorithm:?} secrets must be at least {min} bytes")]
    ShortSecret {
        bytes: usize,
        algorithm: JwtAlgorithm,
        min: usize,
    },
    #[error("session.private_key_file is required for {0:?}")]
    MissingPrivateKey(JwtAlgorithm),
    #[error("session.private_key_file: cannot read {}: {source}", path.display())]
    ReadPrivateKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "session.private_key_file: {} is not a {algorithm:?} private key in PEM form: {source}",
        path.display()
    )]
    NotPrivateKey {
        path: PathBuf,
        algorithm: JwtAlgorithm,
        source: jsonwebtoken::errors::Error,
    },
    #[error("session.private_key_file: {} is {reason}", path.display())]
    WeakKey { path: PathBuf, reason: String },
    #[error("session.private_key_file: cannot derive the public key of {}: {source}", path.display())]
    PublicKey {
        path: PathBuf,
        source: jsonwebtoken::errors::Error,
    },
    #[error("session.previous_public_keys[{index}]: {reason}")]
    PreviousKey {
        index: usize,
        reason: PreviousKeyError,
    },
    #[error("session: the configured key cannot sign: {0}")]
    CannotSign(jsonwebtoken::errors::Error),
}

/// Why an earlier public key cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum PreviousKeyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a {algorithm:?} public key in PEM form: {source}", path.display())]
    NotPublicKey {
        path: PathBuf,
        algorithm: JwtAlgorithm,
        source: jsonwebtoken::errors::Error,
    },
    #[error(transparent)]
    Jwk(jsonwebtoken::errors::Error),
    #[error("{} is {reason}", path.display())]
    Weak { path: PathBuf, reason: String },
}

/// The JWKS entry of an earlier key, from its public PEM.
fn previous_jwk(
    configured: JwtAlgorithm,
    alg: Algorithm,
    previous: &crate::config::PublicKeyConfig,
) -> Result<Jwk, PreviousKeyError> {
    let path = || previous.file.clone();
    let pem = std::fs::read(&previous.file).map_err(|source| PreviousKeyError::Read {
        path: path(),
        source,
    })?;
    // Checked before it is parsed: a 65-byte point of another curve would pass for P-256.
    if let Some(reason) = weakness(configured, &pem, None) {
        return Err(PreviousKeyError::Weak {
            path: path(),
            reason,
        });
    }
    let key = match configured {
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
        JwtAlgorithm::ES256 => DecodingKey::from_ec_pem(&pem),
        _ => DecodingKey::from_ed_pem(&pem),
    }
    .map_err(|source| PreviousKeyError::NotPublicKey {
        path: path(),
        algorithm: configured,
        source,
    })?;
    let mut jwk = Jwk::from_decoding_key(&key, Some(alg)).map_err(PreviousKeyError::Jwk)?;
    // A token that verifies with a published key is trusted as much as one signed now.
    if let Some(reason) = weakness(configured, &pem, Some(&jwk)) {
        return Err(PreviousKeyError::Weak {
            path: path(),
            reason,
        });
    }
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_id = Some(previous.key_id.clone());
    Ok(jwk)
}

impl SessionIssuer {
    /// Builds the issuer. `secret` is the HMAC secret to use (the configured one, or one
    /// generated for this run); asymmetric algorithms read `private_key_file` instead.
    pub fn new(config: &SessionConfig, secret: Option<&Secret>) -> Result<Self, SessionKeyError> {
        let alg = algorithm(config.algorithm);
        let (key, jwks) = if config.algorithm.is_hmac() {
            if config.private_key_file.is_some() {
                return Err(SessionKeyError::PrivateKeyWithHmac(config.algorithm));
            }
            let secret = secret.ok_or(SessionKeyError::MissingSecret)?;
            let min = min_hmac_secret_bytes(config.algorithm);
            if secret.expose().len() < min {
                return Err(SessionKeyError::ShortSecret {
                    bytes: secret.expose().len(),
                    algorithm: config.algorithm,
                    min,
                });
            }
            (EncodingKey::from_secret(secret.expose().as_bytes()), None)
        } else {
            let path = config
                .private_key_file
                .as_ref()
                .ok_or(SessionKeyError::MissingPrivateKey(config.algorithm))?;
            let pem = std::fs::read(path).map_err(|source| SessionKeyError::ReadPrivateKey {
                path: path.clone(),
                source,
            })?;
            let weak = |reason| SessionKeyError::WeakKey {
                path: path.clone(),
                reason,
            };
            if let Some(reason) = weakness(config.algorithm, &pem, None) {
                return Err(weak(reason));
            }
            let parsed = match config.algorithm {
                JwtAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                JwtAlgorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                _ => EncodingKey::from_ed_pem(&pem),
            };
            let key = parsed.map_err(|source| SessionKeyError::NotPrivateKey {
                path: path.clone(),
                algorithm: config.algorithm,
                source,
            })?;
            let mut jwk =
                Jwk::from_encoding_key(&key, alg).map_err(|source| SessionKeyError::PublicKey {
                    path: path.clone(),
                    source,
                })?;
            if let Some(reason) = weakness(config.algorithm, &pem, Some(&jwk)) {
                return Err(weak(reason));
            }
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_id = config.key_id.clone();
            let mut keys = vec![jwk];
            for (i, previous) in config.previous_public_keys.iter().enumerate() {
                keys.push(
                    previous_jwk(config.algorithm, alg, previous)
                        .map_err(|reason| SessionKeyError::PreviousKey { index: i, reason })?,
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
            .map_err(SessionKeyError::CannotSign)?;
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
