use std::fmt;

/// A table, column, collection or field name taken from the configuration.
///
/// Names are spliced into statements (a driver cannot bind them), so they are checked here once:
/// letters, digits, `_` and `$`, not starting with a digit, at most 64 bytes. Each backend still
/// quotes them in its own dialect, which is what lets a column be called `order` or `OwnIdData`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierError(pub String);

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdentifierError {}

impl Identifier {
    pub const MAX_LEN: usize = 64;

    pub fn new(name: &str) -> Result<Self, IdentifierError> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if name.len() > Self::MAX_LEN || !first_ok || !rest_ok {
            return Err(IdentifierError(format!(
                "{name:?} is not a valid name: use letters, digits, '_' or '$', starting with a \
                 letter or '_', at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(Identifier(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A table name, possibly qualified by its schema (PostgreSQL) or database (MySQL/MariaDB):
/// `members` or `auth.members`, each part a valid [`Identifier`], quoted part by part. MongoDB
/// takes the whole text as one collection name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: Option<Identifier>,
    pub name: Identifier,
}

impl TableName {
    pub fn new(text: &str) -> Result<Self, IdentifierError> {
        match text.split_once('.') {
            None => Ok(TableName {
                schema: None,
                name: Identifier::new(text)?,
            }),
            Some((schema, name)) if !name.contains('.') => Ok(TableName {
                schema: Some(Identifier::new(schema)?),
                name: Identifier::new(name)?,
            }),
            Some(_) => Err(IdentifierError(format!(
                "{text:?} is not a valid table name: at most one '.', between a schema (or \
                 database) and the table"
            ))),
        }
    }

    /// An unqualified name.
    pub fn plain(name: Identifier) -> Self {
        TableName { schema: None, name }
    }
}

impl From<Identifier> for TableName {
    fn from(name: Identifier) -> Self {
        TableName::plain(name)
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{schema}.")?;
        }
        write!(f, "{}", self.name)
    }
}

/// Where the users live: the table (collection) and the columns (fields) ownid-bridge reads and
/// writes. Every other column of the table is left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsersMapping {
    pub table: TableName,
    pub login_id: Identifier,
    pub ownid_data: Identifier,
    /// When set, its value becomes the JWT `sub` instead of the login id.
    pub user_id: Option<Identifier>,
    /// `(claim name, column)` pairs copied into session tokens.
    pub claims: Vec<(String, Identifier)>,
}

impl UsersMapping {
    /// The demo mapping: table `users`, columns `login_id` and `ownid_data`.
    pub fn demo() -> Self {
        UsersMapping {
            table: TableName::plain(Identifier("users".into())),
            login_id: Identifier("login_id".into()),
            ownid_data: Identifier("ownid_data".into()),
            user_id: None,
            claims: Vec::new(),
        }
    }

    /// Every column a session lookup reads, login id first.
    pub fn session_columns(&self) -> Vec<&Identifier> {
        let mut columns = vec![&self.login_id];
        columns.extend(self.user_id.iter());
        columns.extend(self.claims.iter().map(|(_, column)| column));
        columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_mixed_case_names() {
        for name in ["users", "OwnIdData", "_x", "order", "a$b", "t1"] {
            assert_eq!(Identifier::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn table_names_may_name_their_schema() {
        let plain = TableName::new("members").unwrap();
        assert_eq!((plain.schema, plain.name.as_str()), (None, "members"));
        let qualified = TableName::new("auth.Members").unwrap();
        assert_eq!(qualified.schema.unwrap().as_str(), "auth");
        assert_eq!(qualified.name.as_str(), "Members");
        for bad in ["a.b.c", ".members", "auth.", "a\".b", "auth.m-1"] {
            assert!(TableName::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refuses_names_that_could_escape_quoting() {
        for name in [
            "",
            "1abc",
            "a b",
            "a\"b",
            "a`b",
            "a;drop",
            "a.b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(Identifier::new(name).is_err(), "{name:?} was accepted");
        }
    }
}
