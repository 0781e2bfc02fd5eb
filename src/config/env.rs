//! `${VAR}` expansion in the file's strings, and `OWNID_BRIDGE__A__B` overrides.

use serde_yaml::Value;

use super::{ConfigError, ENV_PREFIX};

/// Replaces `${VAR}` and `${VAR:-default}` in every string of the tree; `$$` is a literal `$`.
pub(super) fn expand_vars(
    value: &mut Value,
    path: &str,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
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
pub(super) fn apply_overrides(
    tree: &mut Value,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
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
