//! The data-path statements, built once per store from the mapping.

use std::sync::Arc;

use ownid_bridge_store::{Identifier, UsersMapping};

use crate::{Column, ColumnKind, Dialect, Repertoire, TableFacts};

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
    /// For each session column after the login id: whether it is read as JSON text to parse.
    pub session_json: Vec<bool>,
    /// For each session column after the login id: whether it is a decimal read as its text, to
    /// answer as a JSON number.
    pub session_decimal: Vec<bool>,
    /// What the login-id column can hold (MySQL's character sets): a login id with another
    /// character is in no row.
    pub login_repertoire: Repertoire,
}

impl Statements {
    /// The statements for `mapping` over the table `facts` describes: the ownIdData column's
    /// kind decides how it is written and read (a JSON column holds a JSON string), the session
    /// columns' kinds whether they are read as text, and on PostgreSQL the login column's type
    /// (`citext`, a domain) what the lookup parameter is cast to so that it uses the column's
    /// index. A table not yet read (or missing) gives the statements of plain text columns.
    pub fn new(dialect: Dialect, mapping: &UsersMapping, facts: &TableFacts) -> Self {
        let q = |identifier: &Identifier| dialect.quote(identifier);
        let p = |n: usize| dialect.param(n);
        let table = dialect.quote_table(&mapping.table);
        let (login, data) = (q(&mapping.login_id), q(&mapping.ownid_data));
        let data_column = facts.column(dialect, &mapping.ownid_data);
        let read = dialect.read_data(&data, data_column);
        let login_cast = login_cast(dialect, facts.column(dialect, &mapping.login_id));
        let matches = |first: usize| {
            dialect.login_matches(&login, &p(first), &p(first + 1), login_cast.as_deref())
        };
        let mut session_columns = Vec::new();
        let mut session_json = Vec::new();
        let mut session_decimal = Vec::new();
        for column in mapping.session_columns().into_iter().skip(1) {
            let described = facts.column(dialect, column);
            session_columns.push(dialect.read_session(&q(column), described));
            session_json.push(described.is_some_and(|c| c.kind == ColumnKind::Json));
            session_decimal.push(described.is_some_and(Column::is_decimal));
        }
        let from_nothing = if dialect == Dialect::MySql {
            " FROM DUAL"
        } else {
            ""
        };
        let session_list = std::iter::once(login.clone())
            .chain(session_columns)
            .collect::<Vec<_>>()
            .join(", ");
        Statements {
            get: format!("SELECT {read} FROM {table} WHERE {} LIMIT 1", matches(1)).into(),
            update: format!(
                "UPDATE {table} SET {data} = {} WHERE {}",
                dialect.write_data(&p(1), data_column),
                matches(2)
            )
            .into(),
            insert: format!(
                "INSERT INTO {table} ({login}, {data}) VALUES ({}, {})",
                p(1),
                dialect.write_data(&p(2), data_column)
            )
            .into(),
            session: format!(
                "SELECT {session_list} FROM {table} WHERE {} LIMIT 1",
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
                "SELECT {login}, {read} FROM {table} WHERE {read} IS NOT NULL AND {read} <> ''"
            )
            .into(),
            session_json,
            session_decimal,
            login_repertoire: match dialect {
                // A character set not known here: `check` fails it.
                Dialect::MySql => Repertoire::of(
                    facts
                        .column(dialect, &mapping.login_id)
                        .filter(|c| c.kind == ColumnKind::Text)
                        .and_then(|c| c.charset.as_deref()),
                )
                .unwrap_or_default(),
                Dialect::Postgres | Dialect::Sqlite => Repertoire::Unicode,
            },
        }
    }
}

/// PostgreSQL: the type a login-id parameter is cast to so that the lookup uses the column's
/// index: the column's own type when it is not a plain string type (`citext`, or a domain),
/// else none. A `text` parameter compared with a `citext` column compares as text, which is
/// exact but cannot use the citext index.
fn login_cast(dialect: Dialect, column: Option<&Column>) -> Option<String> {
    let type_name = column?
        .type_name
        .as_deref()
        .filter(|_| dialect == Dialect::Postgres)?;
    let plain = ["text", "character varying", "character", "name"];
    // The name goes into the statement's text: only what the catalogue prints for an ordinary
    // (possibly schema-qualified) type name is used; anything else keeps the exact text lookup.
    let simple = type_name.split('.').all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    (column?.kind == ColumnKind::Text && !plain.contains(&type_name) && simple)
        .then(|| type_name.to_owned())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_per_dialect_and_number_parameters() {
        let mapping = UsersMapping {
            table: Identifier::new("Order").unwrap().into(),
            login_id: Identifier::new("order").unwrap(),
            ownid_data: Identifier::new("OwnIdData").unwrap(),
            user_id: None,
            claims: Vec::new(),
        };
        let none = TableFacts::default();
        let pg = Statements::new(Dialect::Postgres, &mapping, &none);
        assert_eq!(
            &*pg.get,
            "SELECT \"OwnIdData\" FROM \"Order\" WHERE \"order\" = $1 AND \
             \"order\"::text COLLATE \"C\" = $2::text COLLATE \"C\" LIMIT 1"
        );
        let citext_table = TableFacts {
            exists: true,
            columns: vec![Column {
                name: "order".into(),
                type_name: Some("citext".into()),
                ..Column::default()
            }],
            ..TableFacts::default()
        };
        let citext = Statements::new(Dialect::Postgres, &mapping, &citext_table);
        assert!(citext.get.contains("\"order\" = CAST($1 AS citext) AND"));
        let mysql = Statements::new(Dialect::MySql, &mapping, &none);
        assert_eq!(
            &*mysql.update,
            "UPDATE `Order` SET `OwnIdData` = ? WHERE `order` = ? AND \
             CAST(CONVERT(`order` USING utf8mb4) AS BINARY) = CAST(? AS BINARY)"
        );
        assert_eq!(
            &*mysql.insert,
            "INSERT INTO `Order` (`order`, `OwnIdData`) VALUES (?, ?)"
        );
        let sqlite = Statements::new(Dialect::Sqlite, &mapping, &none);
        assert!(sqlite.session.ends_with(
            "WHERE \"order\" = ?1 AND CAST(\"order\" AS BLOB) = CAST(?2 AS BLOB) LIMIT 1"
        ));
        assert!(sqlite.insert_user.contains("SELECT ?1 WHERE NOT EXISTS"));
    }

    #[test]
    fn json_columns_hold_a_json_string() {
        let mapping = UsersMapping {
            table: ownid_bridge_store::TableName::new("auth.members").unwrap(),
            ..UsersMapping::demo()
        };
        let json = |type_name: &str| TableFacts {
            exists: true,
            columns: vec![Column {
                name: "ownid_data".into(),
                kind: ColumnKind::Json,
                type_name: Some(type_name.into()),
                ..Column::default()
            }],
            ..TableFacts::default()
        };
        let pg = Statements::new(Dialect::Postgres, &mapping, &json("jsonb"));
        assert!(
            pg.get
                .starts_with("SELECT \"ownid_data\" #>> '{}' FROM \"auth\".\"members\" WHERE"),
            "{}",
            pg.get
        );
        assert!(pg
            .update
            .contains("SET \"ownid_data\" = to_jsonb(CAST($1 AS text))"));
        let pg = Statements::new(Dialect::Postgres, &mapping, &json("json"));
        assert!(
            pg.insert
                .ends_with("VALUES ($1, to_json(CAST($2 AS text)))"),
            "{}",
            pg.insert
        );
        let mysql = Statements::new(Dialect::MySql, &mapping, &json("json"));
        assert!(mysql
            .update
            .starts_with("UPDATE `auth`.`members` SET `ownid_data` = JSON_QUOTE(?)"));
        assert!(mysql.export.contains("JSON_UNQUOTE(`ownid_data`)"));
    }
}
