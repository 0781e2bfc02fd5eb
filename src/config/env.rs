//! The environment's two ways into the configuration: `${VAR}` references in the file's strings,
//! and `OWNID_BRIDGE__SECTION__KEY` overrides layered over the file.

use figment::error::Kind;
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::{ConfigError, ENV_PREFIX};

/// Replaces `${VAR}` and `${VAR:-default}` in every string of the tree; `$$` is a literal `$`.
/// No library does this, and its errors name the key the reference is in.
pub(super) fn expand_vars(
    value: &mut Value,
    path: &str,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    match value {
        Value::String(_, text) => *text = expand_string(text, path, env)?,
        Value::Array(_, items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_vars(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Dict(_, map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                expand_vars(item, &child, env)?;
            }
        }
        Value::Char(..) | Value::Bool(..) | Value::Num(..) | Value::Empty(..) => {}
    }
    Ok(())
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A string of the configuration, cut at its `${...}` references.
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn expand_string(text: &str, path: &str, env: &[(String, String)]) -> Result<String, ConfigError> {
    let pieces = pieces(text, path, env)?;
    let encoded = if is_storage_url(path) {
        url_parts_to_encode(&pieces)
    } else {
        vec![false; pieces.len()]
    };
    let mut out = String::with_capacity(text.len());
    for (piece, encode) in pieces.iter().zip(encoded) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Var(value) if encode => {
                out.extend(percent_encoding::utf8_percent_encode(value, URL_COMPONENT))
            }
            Piece::Var(value) => out.push_str(value),
        }
    }
    Ok(out)
}

/// `storage.url`, or an application's own.
fn is_storage_url(path: &str) -> bool {
    path == "storage.url" || (path.starts_with("apps[") && path.ends_with("].storage.url"))
}

/// What percent-encoding leaves alone in a URL component: RFC 3986's unreserved characters.
const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Which references of a URL are percent-encoded: those in its user information and its
/// query, where a password goes. A password with `#`, `/`, `?` or `@` pasted in as it is would
/// end the user information early, and the driver would read part of it as the host (and print
/// it in its errors). The host, port and path are taken as they are (`${DB_HOST}:5432`, a list
/// of hosts), and so is a URL that is one reference as a whole (`${DATABASE_URL}`). Where a
/// reference is, the literal text around it says.
fn url_parts_to_encode(pieces: &[Piece<'_>]) -> Vec<bool> {
    let mut encode = vec![false; pieces.len()];
    if pieces.len() == 1 {
        return encode;
    }
    // The literal text with one U+E000 (private use) standing for each reference.
    const REFERENCE: char = '\u{E000}';
    let mut template = String::new();
    let mut at = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Text(text) => template.push_str(text),
            Piece::Var(_) => {
                at.push((i, template.len()));
                template.push(REFERENCE);
            }
        }
    }
    let Some(scheme_end) = template.find("://") else {
        return encode;
    };
    let authority_start = scheme_end + 3;
    let authority_end = template[authority_start..]
        .find(['/', '?', '#'])
        .map_or(template.len(), |end| authority_start + end);
    let user_end = template[authority_start..authority_end]
        .rfind('@')
        .map(|end| authority_start + end);
    let query = template[authority_end..]
        .find('?')
        .map(|start| authority_end + start)
        .map(|start| {
            let end = template[start..]
                .find('#')
                .map_or(template.len(), |end| start + end);
            start..end
        });
    for (i, position) in at {
        let in_user = user_end.is_some_and(|end| (authority_start..end).contains(&position));
        let in_query = query
            .as_ref()
            .is_some_and(|query| query.contains(&position));
        encode[i] = in_user || in_query;
    }
    encode
}

fn pieces<'a>(
    text: &'a str,
    path: &str,
    env: &'a [(String, String)],
) -> Result<Vec<Piece<'a>>, ConfigError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push(Piece::Text(&rest[..at]));
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push(Piece::Text("$"));
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
                (Some(value), _) => out.push(Piece::Var(value)),
                (None, Some(default)) => out.push(Piece::Var(default)),
                (None, None) => {
                    return Err(ConfigError::at(
                        path,
                        format!("environment variable {name} is not set"),
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push(Piece::Text("$"));
            rest = after;
        }
    }
    out.push(Piece::Text(rest));
    out.retain(|piece| !matches!(piece, Piece::Text("")));
    Ok(out)
}

/// `OWNID_BRIDGE__A__B=value` as the key `a.b` with the string `"value"`, a figment provider
/// merged over the file.
///
/// Why not figment's own `Env`: it reads the process environment only, while loading takes the
/// environment as a list (tests pass their own, side by side); and it parses values as typed data,
/// so `123` would stop being a string and `"x"` would lose its quotes, changing what a secret or a
/// key id means. Here values stay strings, and the typed fields read numbers and booleans from
/// strings (`Figment::extract_lossy`).
pub(super) struct Overrides<'a> {
    env: &'a [(String, String)],
}

impl<'a> Overrides<'a> {
    pub(super) fn new(env: &'a [(String, String)]) -> Self {
        Overrides { env }
    }
}

impl Provider for Overrides<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment override")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut overrides: Vec<&(String, String)> = self
            .env
            .iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        let mut dict = Dict::new();
        for (key, value) in overrides {
            let segments: Vec<String> = key[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            if segments.iter().any(String::is_empty) {
                return Err(message(format!(
                    "{key}: empty key segment in environment override"
                )));
            }
            let mut node = &mut dict;
            for (i, segment) in segments.iter().enumerate() {
                if i + 1 == segments.len() {
                    node.insert(segment.clone(), Value::from(value.clone()));
                    break;
                }
                let entry = node
                    .entry(segment.clone())
                    .or_insert_with(|| Dict::new().into());
                let Value::Dict(_, inner) = entry else {
                    return Err(message(format!(
                        "{key}: {} is not a section",
                        segments[..=i].join(".")
                    )));
                };
                node = inner;
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn message(text: String) -> figment::Error {
    Kind::Message(text).into()
}
