//! The data-path statements, built once per store from the mapping.

use std::sync::Arc;

use ownid_bridge_store::{Identifier, UsersMapping};

use crate::Dialect;

/// The data-path statements, built once from the mapping with every identifier quoted. Every
/// lookup matches the login id exactly (see [`Dialect::exact`]) and binds it twice: once for the
/// index, once for the byte comparison.
pub struct Statements {
    /// `(login, login)` → `(ownid_data)`
    pub get: Arc<str>,
    /// `(ownid_data, login, login)`
    pub update: Arc<str>,
    /// `(login, ownid_data)`: a plain insert. A unique violation means the user was created
    /// meanwhile, or that a look-alike login id holds the index entry.
    pub insert: Arc<str>,
    /// `(login, login)` → `(login, [user_id], claims...)`
    pub session: Arc<str>,
    /// `(login, login, login)`: inserts the login id unless exactly that one exists.
    pub insert_user: Arc<str>,
    /// `()` → `(login, ownid_data)` of every user with data.
    pub export: Arc<str>,
}

impl Statements {
    /// `login_cast`: the type to cast the lookup parameter to so that it uses the login-id index
    /// (PostgreSQL `citext`; `None` elsewhere).
    pub fn new(dialect: Dialect, mapping: &UsersMapping, login_cast: Option<&str>) -> Self {
        let q = |identifier: &Identifier| dialect.quote(identifier);
        let p = |n: usize| dialect.param(n);
        let (table, login, data) = (
            q(&mapping.table),
            q(&mapping.login_id),
            q(&mapping.ownid_data),
        );
        let matches =
            |first: usize| dialect.login_matches(&login, &p(first), &p(first + 1), login_cast);
        let session_columns: Vec<String> = mapping.session_columns().into_iter().map(q).collect();
        let from_nothing = if dialect == Dialect::MySql {
            " FROM DUAL"
        } else {
            ""
        };
        Statements {
            get: format!("SELECT {data} FROM {table} WHERE {} LIMIT 1", matches(1)).into(),
            update: format!("UPDATE {table} SET {data} = {} WHERE {}", p(1), matches(2)).into(),
            insert: format!(
                "INSERT INTO {table} ({login}, {data}) VALUES ({}, {})",
                p(1),
                p(2)
            )
            .into(),
            session: format!(
                "SELECT {} FROM {table} WHERE {} LIMIT 1",
                session_columns.join(", "),
                matches(1)
            )
            .into(),
            insert_user: format!(
                "INSERT INTO {table} ({login}) SELECT {}{from_nothing} \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {})",
                p(1),
                matches(2)
            )
            .into(),
            export: format!(
                "SELECT {login}, {data} FROM {table} WHERE {data} IS NOT NULL AND {data} <> ''"
            )
            .into(),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_per_dialect_and_number_parameters() {
        let mapping = UsersMapping {
            table: Identifier::new("Order").unwrap(),
            login_id: Identifier::new("order").unwrap(),
            ownid_data: Identifier::new("OwnIdData").unwrap(),
            user_id: None,
            claims: Vec::new(),
        };
        let pg = Statements::new(Dialect::Postgres, &mapping, None);
        assert_eq!(
            &*pg.get,
            "SELECT \"OwnIdData\" FROM \"Order\" WHERE \"order\" = $1 AND \
             \"order\"::text COLLATE \"C\" = $2::text COLLATE \"C\" LIMIT 1"
        );
        let citext = Statements::new(Dialect::Postgres, &mapping, Some("citext"));
        assert!(citext.get.contains("\"order\" = CAST($1 AS citext) AND"));
        let mysql = Statements::new(Dialect::MySql, &mapping, None);
        assert_eq!(
            &*mysql.update,
            "UPDATE `Order` SET `OwnIdData` = ? WHERE `order` = ? AND \
             CAST(CONVERT(`order` USING utf8mb4) AS BINARY) = CAST(? AS BINARY)"
        );
        assert_eq!(
            &*mysql.insert,
            "INSERT INTO `Order` (`order`, `OwnIdData`) VALUES (?, ?)"
        );
        let sqlite = Statements::new(Dialect::Sqlite, &mapping, None);
        assert!(sqlite.session.ends_with(
            "WHERE \"order\" = ?1 AND CAST(\"order\" AS BLOB) = CAST(?2 AS BLOB) LIMIT 1"
        ));
        assert!(sqlite.insert_user.contains("SELECT ?1 WHERE NOT EXISTS"));
    }
}
