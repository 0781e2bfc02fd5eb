//! Values that must never be printed: shared secrets, JWT keys, database passwords.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A secret string. `Debug` and `Display` print `[redacted]`; the value is only reachable through
/// [`Secret::expose`], which makes every use easy to find.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Serialized as `[redacted]` too: `config show` prints the configuration with it, and no other
/// serialization needs the value.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret: better given as a ${VAR} reference, a *_file key or an \
                OWNID_BRIDGE__ variable than written here.",
            "writeOnly": true
        })
    }
}

/// What a secret prints as.
pub const REDACTED: &str = "[redacted]";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A database URL whose `Debug` and `Display` hide the password, so that logging the
/// configuration (or an error that quotes it) does not leak the credentials.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

/// Query parameters that carry a credential, by a part of their name (compared without case):
/// libpq's `password` and `sslpassword`, `pwd`, MongoDB's `authMechanismProperties` (an AWS
/// session token), anything named a secret, token or key.
const SECRET_PARAMETERS: [&str; 6] = ["pass", "pwd", "secret", "token", "key", "authmechanism"];

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password and credential parameters replaced by `***`.
    ///
    /// Read as text, not parsed: a password written without percent-encoding (`#`, `/`, `?`, `@`
    /// in it) makes a URL unparseable, or parse into another host, port or fragment, with the
    /// password in plain view. So credential parameters are masked wherever they are: after `?`
    /// or `&` up to the next `&`, and as libpq `key=value` words (`host=db password=...`, a
    /// value in single quotes included) at the start or after white space; and everything
    /// between `scheme:` (with any number of slashes: `postgres:/` is a typo seen in the wild)
    /// and the last `@` after a `:` is the password.
    pub fn masked(&self) -> String {
        let text = mask_parameters(&self.0);
        let Some((scheme, rest)) = text.split_once(':') else {
            return text;
        };
        if !is_scheme(scheme) {
            return text;
        }
        let authority = rest.trim_start_matches('/');
        let slashes = &rest[..rest.len() - authority.len()];
        match authority.rfind('@') {
            Some(at) => match authority[..at].split_once(':') {
                Some((user, _)) => format!("{scheme}:{slashes}{user}:***{}", &authority[at..]),
                None => text,
            },
            None => text,
        }
    }

    /// The scheme the value starts with (`postgres`, `mysql`, ...), lower-cased, or `None` when it
    /// does not start with one; for messages that must not quote the rest.
    pub fn scheme(&self) -> Option<String> {
        let (scheme, _) = self.0.split_once(':')?;
        is_scheme(scheme).then(|| scheme.to_ascii_lowercase())
    }
}

/// A URL scheme as RFC 3986 spells it: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Serialized masked, as it prints.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
    }
}

impl schemars::JsonSchema for DatabaseUrl {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DatabaseUrl".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "The database URL: sqlite://, postgres:// (postgresql://), mysql:// \
                (mariadb://), mongodb:// (mongodb+srv://). Give the password as a ${VAR} reference."
        })
    }
}

/// `text` with the value of every `name=value` whose name is one of [`SECRET_PARAMETERS`]
/// replaced by `***`: after a `?` or `&` (a URL's query: the value ends at the next `&`), and at
/// the start or after white space (a libpq key/value string: the value ends at white space, or
/// is a single-quoted string with backslash escapes).
fn mask_parameters(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < text.len() {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let in_query = matches!(before, Some(b'?' | b'&'));
        let starts = in_query || before.is_none_or(|b| b.is_ascii_whitespace());
        if starts {
            let rest = &text[at..];
            let name_len = rest
                .find(|c: char| c == '=' || c == '&' || c == '?' || c.is_whitespace())
                .unwrap_or(rest.len());
            let lower = rest[..name_len].to_ascii_lowercase();
            if name_len > 0
                && rest[name_len..].starts_with('=')
                && SECRET_PARAMETERS.iter().any(|part| lower.contains(part))
            {
                let value_at = at + name_len + 1;
                out.push_str(&text[copied..value_at]);
                out.push_str("***");
                at = value_at + value_len(&text[value_at..], in_query);
                copied = at;
                continue;
            }
        }
        at += text[at..].chars().next().map_or(1, char::len_utf8);
    }
    out.push_str(&text[copied..]);
    out
}

/// The length of a parameter's value at the start of `text`: up to the next `&` in a URL's
/// query; in a libpq key/value string, up to white space, or a single-quoted string (to its
/// closing quote, the whole rest when there is none).
fn value_len(text: &str, in_query: bool) -> usize {
    if in_query {
        return text.find('&').unwrap_or(text.len());
    }
    if let Some(quoted) = text.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        return text.len();
    }
    text.find(|c: char| c.is_whitespace()).unwrap_or(text.len())
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.masked(), f)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    #[test]
    fn url_passwords_are_masked() {
        let url = DatabaseUrl::new("postgres://app:hunter2@db.internal:5432/users");
        assert_eq!(
            format!("{url:?}"),
            "\"postgres://app:***@db.internal:5432/users\""
        );
        assert!(!url.to_string().contains("hunter2"));
        let plain = DatabaseUrl::new("sqlite://ownid-bridge.db");
        assert_eq!(plain.to_string(), "sqlite://ownid-bridge.db");
    }

    #[test]
    fn passwords_in_the_query_are_masked() {
        let url = DatabaseUrl::new(
            "postgres://app@db:5432/users?sslmode=require&password=hunter2&sslpassword=k3y&PWD=x1",
        );
        assert_eq!(
            url.to_string(),
            "postgres://app@db:5432/users?sslmode=require&password=***&sslpassword=***&PWD=***"
        );
        let mongo = DatabaseUrl::new(
            "mongodb://u:p4ss@h1,h2/db?authMechanismProperties=AWS_SESSION_TOKEN:t0ken",
        );
        let shown = format!("{mongo} {mongo:?}");
        assert!(
            !shown.contains("p4ss") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    #[test]
    fn passwords_that_break_the_url_are_masked_whole() {
        // Unencoded `#`, `/`, `?` or `@` in a password: the URL does not parse, or parses into
        // another host, port or fragment. Everything before the last `@` is the user's part.
        for (raw, shown) in [
            (
                "postgres://app:12#x@db/users",
                "postgres://app:***@db/users",
            ),
            ("postgres://app:#x@db/users", "postgres://app:***@db/users"),
            ("postgres://app:a/b@db/users", "postgres://app:***@db/users"),
            ("postgres://app:a?b@db/users", "postgres://app:***@db/users"),
            (
                "mysql://app:p@ss@db:3306/users",
                "mysql://app:***@db:3306/users",
            ),
            ("postgres://app:@db/users", "postgres://app:***@db/users"),
        ] {
            assert_eq!(DatabaseUrl::new(raw).to_string(), shown, "{raw}");
        }
        // Red team, round 3 (R5): one slash (or none) after the scheme, and libpq key/value
        // strings, quoted values included.
        for (raw, shown) in [
            (
                "postgres:/bob:S3cret@127.0.0.1:1/db",
                "postgres:/bob:***@127.0.0.1:1/db",
            ),
            (
                "postgresql:bob:S3cret@db/users",
                "postgresql:bob:***@db/users",
            ),
            (
                "host=127.0.0.1 port=1 user=bob password=S3cret dbname=db",
                "host=127.0.0.1 port=1 user=bob password=*** dbname=db",
            ),
            ("password='S3 \\'cret' host=db", "password=*** host=db"),
            ("host=db\tPassword='S3cret", "host=db\tPassword=***"),
            (
                "postgres://app@db/users?sslpassword=S3cret&sslmode=require",
                "postgres://app@db/users?sslpassword=***&sslmode=require",
            ),
        ] {
            assert_eq!(DatabaseUrl::new(raw).to_string(), shown, "{raw}");
        }
        // Nothing to hide is shown as it is.
        for plain in [
            "postgres://app@db/users",
            "sqlite://data/my@file.db",
            "sqlite:ownid-bridge.db",
            "mongodb+srv://cluster0.example.net/app?retryWrites=true",
        ] {
            assert_eq!(DatabaseUrl::new(plain).to_string(), plain);
        }
    }
}
