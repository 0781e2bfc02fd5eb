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
    /// password in plain view. So the query's credential parameters are masked up to the next
    /// `&` wherever they are, and everything between `://` and the last `@` after a `:` is the
    /// password.
    pub fn masked(&self) -> String {
        let text = mask_parameters(&self.0);
        let Some((scheme, rest)) = text.split_once("://") else {
            return text;
        };
        match rest.rfind('@') {
            Some(at) => match rest[..at].split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
                None => text,
            },
            None => text,
        }
    }
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

/// `text` with the value of every `name=value` after a `?` or `&` whose name is one of
/// [`SECRET_PARAMETERS`] replaced by `***`.
fn mask_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['?', '&']) {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        if name.contains(['?', '&']) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if !SECRET_PARAMETERS.iter().any(|part| lower.contains(part)) {
            continue;
        }
        out.push_str(name);
        out.push_str("=***");
        rest = &value[value.find('&').unwrap_or(value.len())..];
    }
    out.push_str(rest);
    out
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
