//! The secrets and keys, resolved from the configuration in one place: `serve` builds its
//! signature verifier and session issuer from them, `check` reports each one.

use crate::config::{Config, JwtAlgorithm};
use crate::secret::Secret;
use crate::session::{SessionIssuer, SessionKeyError};
use crate::signature::{SecretError, SignatureVerifier};

/// What to do about a secret that is not configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingSecrets {
    /// Refuse: outside the zero-configuration trial, a missing secret is a forgotten one.
    Refuse,
    /// Generate one for this run (the zero-configuration trial: no configuration file and no
    /// `OWNID_BRIDGE__` variable); the caller prints what was generated.
    Generate,
}

/// Secrets generated because none were configured; printed once by `serve` for a local trial.
#[derive(Debug, Default)]
pub struct GeneratedSecrets {
    pub shared_secret: Option<Secret>,
    pub jwt_secret: bool,
}

/// Why the secrets and keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "ownid.shared_secret is not set: set it (or ownid.shared_secret_file, or \
         OWNID_BRIDGE__OWNID__SHARED_SECRET) to the application's shared secret from the OwnID \
         console. Secrets are generated only when nothing at all is configured (no \
         configuration file and no OWNID_BRIDGE__ environment variable)"
    )]
    NoSharedSecret,
    #[error(
        "session.secret is not set: {0:?} signs session tokens with it; set it (or \
         session.secret_file, or OWNID_BRIDGE__SESSION__SECRET; `ownid-bridge config secret` \
         prints one). Secrets are generated only when nothing at all is configured (no \
         configuration file and no OWNID_BRIDGE__ environment variable)"
    )]
    NoSessionSecret(JwtAlgorithm),
    #[error(transparent)]
    SharedSecret(#[from] SecretError),
    #[error(transparent)]
    SessionKey(#[from] SessionKeyError),
}

/// The verifier and the session issuer a server runs with.
pub struct Keys {
    pub verifier: SignatureVerifier,
    pub sessions: SessionIssuer,
    pub generated: GeneratedSecrets,
}

impl Keys {
    /// Both keys, or the first reason one cannot be used. Both secrets are looked up before
    /// either is decoded, so a configuration missing one is told so first.
    pub fn resolve(config: &Config, missing: MissingSecrets) -> Result<Keys, KeyError> {
        let mut generated = GeneratedSecrets::default();
        let shared = shared_secret(config, missing, &mut generated)?;
        let session = session_secret(config, missing, &mut generated)?;
        Ok(Keys {
            verifier: decode_verifier(config, &shared)?,
            sessions: decode_sessions(config, session.as_ref())?,
            generated,
        })
    }
}

/// The configured shared secret, or a generated one.
fn shared_secret(
    config: &Config,
    missing: MissingSecrets,
    generated: &mut GeneratedSecrets,
) -> Result<Secret, KeyError> {
    match (&config.ownid.shared_secret, missing) {
        (Some(secret), _) => Ok(secret.clone()),
        (None, MissingSecrets::Refuse) => Err(KeyError::NoSharedSecret),
        (None, MissingSecrets::Generate) => {
            let secret = SignatureVerifier::generate_secret();
            generated.shared_secret = Some(secret.clone());
            Ok(secret)
        }
    }
}

/// The configured session secret, a generated one, or none (the algorithm signs with a key
/// pair).
fn session_secret(
    config: &Config,
    missing: MissingSecrets,
    generated: &mut GeneratedSecrets,
) -> Result<Option<Secret>, KeyError> {
    let algorithm = config.session.algorithm;
    match (&config.session.secret, algorithm.is_hmac(), missing) {
        (Some(secret), _, _) => Ok(Some(secret.clone())),
        (None, false, _) => Ok(None),
        (None, true, MissingSecrets::Refuse) => Err(KeyError::NoSessionSecret(algorithm)),
        (None, true, MissingSecrets::Generate) => {
            generated.jwt_secret = true;
            Ok(Some(SessionIssuer::generate_secret()))
        }
    }
}

/// The signature verifier: the shared secret and the previous ones still accepted.
pub fn verifier(
    config: &Config,
    missing: MissingSecrets,
    generated: &mut GeneratedSecrets,
) -> Result<SignatureVerifier, KeyError> {
    decode_verifier(config, &shared_secret(config, missing, generated)?)
}

/// The session issuer: its algorithm with the session secret or key pair.
pub fn sessions(
    config: &Config,
    missing: MissingSecrets,
    generated: &mut GeneratedSecrets,
) -> Result<SessionIssuer, KeyError> {
    decode_sessions(config, session_secret(config, missing, generated)?.as_ref())
}

fn decode_verifier(config: &Config, secret: &Secret) -> Result<SignatureVerifier, KeyError> {
    Ok(SignatureVerifier::new(secret, config.ownid.max_clock_skew)?
        .with_previous(&config.ownid.previous_shared_secrets)?)
}

fn decode_sessions(config: &Config, secret: Option<&Secret>) -> Result<SessionIssuer, KeyError> {
    Ok(SessionIssuer::new(&config.session, secret)?)
}
