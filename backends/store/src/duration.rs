//! Durations in configuration files, written like `"500ms"`, `"60s"`, `"5m"` or `"1h"`.
//!
//! humantime-serde would do the parsing, but its error ("invalid value: string \"soon\", expected
//! a duration") drops humantime's reason and an example of the syntax; these keep both.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

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
