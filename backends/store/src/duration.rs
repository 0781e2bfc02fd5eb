//! Durations in configuration files, written like `"500ms"`, `"60s"`, `"5m"` or `"1h"`.
//!
//! humantime-serde would do the parsing, but its error ("invalid value: string \"soon\", expected
//! a duration") drops humantime's reason and an example of the syntax; these keep both.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// A required duration.
pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(text.trim()).map_err(|err| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?} ({err}); write e.g. \"60s\", \"5m\", \"1h\""
        ))
    })
}

/// An optional duration: absent, empty or `none` means none.
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
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

/// A duration as it is written (`config show`, the schema's defaults): `"1m"`, `"500ms"`.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*duration))
}

/// An optional duration as it is written; none as `none`.
pub fn serialize_optional<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serialize(duration, serializer),
        None => serializer.serialize_str("none"),
    }
}

/// The JSON Schema of a duration.
pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "description": "A duration: a number and a unit, e.g. \"500ms\", \"60s\", \"5m\", \"1h\", \"30d\"."
    })
}

/// The JSON Schema of an optional duration.
pub fn schema_optional(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["string", "null"],
        "description": "A duration (e.g. \"10m\"), or none (empty, null or \"none\")."
    })
}
