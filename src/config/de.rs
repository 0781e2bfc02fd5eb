//! Deserializers shared by the sections (durations, lists given as one comma-separated string),
//! their written form (`config show`) and JSON Schema, and figment's errors worded as serde words
//! them, after the key's path.

use figment::error::{Actual, Kind};
use figment::value::Value;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConfigError, PreviousSecret};
use crate::secret::Secret;

/// One duration syntax and one error wording for every section, the store's pool settings too.
pub(super) use ownid_bridge_store::duration::{
    optional as optional_duration, required as duration, schema as duration_schema,
    schema_optional as optional_duration_schema, serialize as serialize_duration,
    serialize_optional as serialize_optional_duration,
};

/// A scalar that may arrive as its native YAML type or as a string (environment overrides and
/// `${VAR}` expansions are always strings). Plain numbers and booleans need no such help:
/// `Figment::extract_lossy` reads them from strings; this is for the types with a custom
/// `Deserialize`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar<T> {
    Native(T),
    Text(String),
}

/// A list of networks: a YAML sequence, or one comma-separated string (as an environment
/// override gives it). A bare address means that address alone.
pub(super) fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
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

/// A list of networks as it is written: CIDRs.
pub(super) fn serialize_networks<S: Serializer>(
    networks: &[IpNet],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(networks.iter().map(ToString::to_string))
}

pub(super) fn networks_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Networks (e.g. 10.0.0.0/8) or addresses: a list, or one comma-separated string.",
        "anyOf": [
            { "type": "array", "items": { "type": "string" } },
            { "type": "string" }
        ]
    })
}

/// Previous shared secrets as they are written: each secret redacted, with its expiry.
pub(super) fn serialize_previous_secrets<S: Serializer>(
    secrets: &[PreviousSecret],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Written<'a> {
        secret: &'a Secret,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires: Option<String>,
    }
    serializer.collect_seq(secrets.iter().map(|previous| {
        Written {
            secret: &previous.secret,
            expires: previous
                .expires
                .map(|time| humantime::format_rfc3339(time).to_string()),
        }
    }))
}

pub(super) fn previous_secrets_schema(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    let secret = generator.subschema_for::<Secret>();
    schemars::json_schema!({
        "description": "Secrets still accepted while a new one is rolled out: a list of secrets or \
            { secret, expires } (RFC 3339, UTC), or one comma-separated string of secrets.",
        "anyOf": [
            {
                "type": "array",
                "items": {
                    "anyOf": [
                        secret,
                        {
                            "type": "object",
                            "properties": {
                                "secret": secret,
                                "expires": {
                                    "type": "string",
                                    "description": "RFC 3339 time in UTC, e.g. \"2026-12-31T00:00:00Z\"."
                                }
                            },
                            "required": ["secret"],
                            "additionalProperties": false
                        }
                    ]
                }
            },
            { "type": "string" }
        ]
    })
}

/// Previous shared secrets: a YAML sequence whose items are a secret or a mapping
/// `{ secret: ..., expires: 2026-12-31T00:00:00Z }`, or one comma-separated string of secrets
/// (base64 has no commas), as an environment override gives it.
pub(super) fn previous_secrets<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<PreviousSecret>, D::Error> {
    use serde::de::Error as _;
    let plain = |text: &str| PreviousSecret::from(Secret::new(text.trim()));
    let items = match <Value as Deserialize>::deserialize(deserializer)? {
        Value::Empty(..) => return Ok(Vec::new()),
        Value::String(_, text) => {
            return Ok(text
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(plain)
                .collect())
        }
        Value::Array(_, items) => items,
        _ => {
            return Err(D::Error::custom(
                "expected a list of secrets (or one comma-separated string)",
            ))
        }
    };
    let mut secrets = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(_, text) if text.trim().is_empty() => {}
            Value::String(_, text) => secrets.push(plain(&text)),
            Value::Dict(_, map) => {
                let mut secret = None;
                let mut expires = None;
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("secret", Value::String(_, text)) => {
                            secret = Some(Secret::new(text.trim()))
                        }
                        ("expires", Value::String(_, text)) => {
                            let time = humantime::parse_rfc3339(text.trim()).map_err(|_| {
                                D::Error::custom(format!(
                                    "item {i}: expires {text:?} is not an RFC 3339 time in UTC, \
                                     e.g. \"2026-12-31T00:00:00Z\""
                                ))
                            })?;
                            expires = Some(time);
                        }
                        (key @ ("secret" | "expires"), _) => {
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

pub(super) fn string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
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

/// A figment error as `path.to.key: message`. figment words some errors its own way ("unknown
/// field: found `x`, expected `one of ...`"); these keep serde's wording, which docs/configuration.md quotes.
pub(super) fn config_error(err: figment::Error) -> ConfigError {
    let message = match &err.kind {
        Kind::UnknownField(field, expected) => {
            format!("unknown field `{field}`, {}", one_of(expected, "fields"))
        }
        Kind::UnknownVariant(variant, expected) => {
            format!(
                "unknown variant `{variant}`, {}",
                one_of(expected, "variants")
            )
        }
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: {}, expected {expected}", unexpected(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: {}, expected {expected}", unexpected(actual))
        }
        // Errors of the override provider itself already say which variable they are about.
        Kind::Message(message) if err.path.is_empty() => return ConfigError(message.clone()),
        kind => kind.to_string(),
    };
    let path = if err.path.is_empty() {
        "(top level)".to_owned()
    } else {
        err.path.join(".")
    };
    ConfigError::at(&path, message)
}

fn one_of(names: &[&str], what: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    match quoted.as_slice() {
        [] => format!("there are no {what}"),
        [one] => format!("expected {one}"),
        [first, second] => format!("expected {first} or {second}"),
        _ => format!("expected one of {}", quoted.join(", ")),
    }
}

fn unexpected(actual: &Actual) -> String {
    match actual {
        Actual::Bool(value) => format!("boolean `{value}`"),
        Actual::Unsigned(value) => format!("integer `{value}`"),
        Actual::Signed(value) => format!("integer `{value}`"),
        Actual::Float(value) => format!("floating point `{value}`"),
        Actual::Char(value) => format!("character `{value}`"),
        Actual::Unit => "unit value".to_owned(),
        Actual::Option => "Option value".to_owned(),
        other => other.to_string(),
    }
}
