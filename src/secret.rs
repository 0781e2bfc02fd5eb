//! Values that must never be printed: shared secrets, JWT keys, database passwords.

use std::fmt;

use serde::Deserialize;

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

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A database URL whose `Debug` and `Display` hide the password, so that logging the
/// configuration (or an error that quotes it) does not leak the credentials.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut parsed) if parsed.password().is_some() => {
                // set_password only fails for URLs that cannot carry one, and this one does.
                let _ = parsed.set_password(Some("***"));
                parsed.to_string()
            }
            Ok(_) => self.0.clone(),
            // Unparseable: it may still hold a password in some driver-specific form.
            Err(_) => match self.0.split_once('@') {
                Some((_, host)) => format!("***@{host}"),
                None => self.0.clone(),
            },
        }
    }
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
}
