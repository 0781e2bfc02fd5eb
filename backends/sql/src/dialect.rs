//! The differences between the SQL dialects the statements and the schema plan are written for.

use ownid_bridge_store::{Identifier, TableName};

use crate::{Column, ColumnKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub fn quote(self, identifier: &Identifier) -> String {
        // Identifiers are validated (no quote characters inside), so wrapping is enough.
        match self {
            Dialect::MySql => format!("`{identifier}`"),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{identifier}\""),
        }
    }

    /// A table name, quoted part by part (`"auth"."members"`, `` `auth`.`members` ``).
    pub fn quote_table(self, table: &TableName) -> String {
        match &table.schema {
            Some(schema) => format!("{}.{}", self.quote(schema), self.quote(&table.name)),
            None => self.quote(&table.name),
        }
    }

    /// The `n`-th bind parameter (1-based). Every statement here uses each parameter once, so
    /// MySQL's positional `?` needs no numbering.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql => "?".into(),
        }
    }

    /// A condition true only when the stored login id equals the parameter byte for byte, whatever
    /// the column's collation, `PAD SPACE` rule or type (`citext`) would call equal. It follows an
    /// ordinary `login = param` term, which keeps the lookup on the login-id index; this one then
    /// drops the rows that only the collation matched (SPEC §1: a look-alike is another user).
    pub(crate) fn exact(self, login: &str, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({login} AS BLOB) = CAST({param} AS BLOB)"),
            // "C" is deterministic and compares bytes; `::text` also strips citext's rules.
            Dialect::Postgres => {
                format!("{login}::text COLLATE \"C\" = {param}::text COLLATE \"C\"")
            }
            // Binary strings compare byte by byte, without the PAD SPACE rule of the _ci and
            // even the _bin collations of MariaDB; CONVERT makes a latin1 column's bytes UTF-8.
            Dialect::MySql => {
                format!("CAST(CONVERT({login} USING utf8mb4) AS BINARY) = CAST({param} AS BINARY)")
            }
        }
    }

    /// `login = param AND exact(login, param)`, the lookup every statement uses: `first` and
    /// `second` are the two bind parameters, both bound to the login id. `cast` is the login
    /// column's type where a text parameter would not use its index (PostgreSQL's `citext`).
    pub(crate) fn login_matches(
        self,
        login: &str,
        first: &str,
        second: &str,
        cast: Option<&str>,
    ) -> String {
        let indexed = match cast {
            Some(cast) => format!("{login} = CAST({first} AS {cast})"),
            None => format!("{login} = {first}"),
        };
        format!("{indexed} AND {}", self.exact(login, second))
    }

    /// The expression that writes OwnID's string (parameter `param`) into an ownIdData column of
    /// `column`'s kind: the string itself, or into a JSON column a JSON string holding it.
    pub(crate) fn write_data(self, param: &str, column: Option<&Column>) -> String {
        match (self, column) {
            (Dialect::Postgres, Some(c)) if c.kind == ColumnKind::Json => {
                let function = if c.type_name.as_deref() == Some("json") {
                    "to_json"
                } else {
                    "to_jsonb"
                };
                format!("{function}(CAST({param} AS text))")
            }
            (Dialect::MySql, Some(c)) if c.kind == ColumnKind::Json => {
                format!("JSON_QUOTE({param})")
            }
            _ => param.to_owned(),
        }
    }

    /// The expression that reads an ownIdData column of `column`'s kind back as text: the
    /// string itself; from a JSON column the JSON string's content, byte for byte, a JSON null as
    /// no data, and any other JSON value (an object some other code wrote) as its JSON text.
    pub(crate) fn read_data(self, data: &str, column: Option<&Column>) -> String {
        match (self, column) {
            (Dialect::Postgres, Some(c)) if c.kind == ColumnKind::Json => {
                format!("{data} #>> '{{}}'")
            }
            (Dialect::MySql, Some(c)) if c.kind == ColumnKind::Json => format!(
                "CASE WHEN JSON_TYPE({data}) = 'NULL' THEN NULL ELSE JSON_UNQUOTE({data}) END"
            ),
            _ => data.to_owned(),
        }
    }

    /// A session column (user id, claim) as the session statement selects it: as it is when the
    /// driver reads its type (text, numbers, booleans), else as text (`uuid`, dates, enums,
    /// JSON, whose text the store then parses).
    pub(crate) fn read_session(self, quoted: &str, column: Option<&Column>) -> String {
        let as_text = column.is_some_and(|c| {
            matches!(c.kind, ColumnKind::Json | ColumnKind::Other) || c.is_decimal()
        });
        match self {
            _ if !as_text => quoted.to_owned(),
            Dialect::Postgres => format!("CAST({quoted} AS text)"),
            Dialect::MySql => format!("CAST({quoted} AS CHAR)"),
            Dialect::Sqlite => format!("CAST({quoted} AS TEXT)"),
        }
    }

    /// The login ids that a unique index on `login` would call duplicates (equal under the
    /// column's collation: the same id twice, or look-alikes under a case-insensitive one), at
    /// most 20 groups: each row is `(the distinct spellings, joined by ", "; rows; groups in all)`.
    pub(crate) fn duplicates(self, table: &str, login: &str) -> String {
        let spellings = match self {
            // "C": distinct bytes, whatever the column's (nondeterministic) collation.
            Dialect::Postgres => format!(
                "string_agg(DISTINCT CAST({login} AS text) COLLATE \"C\", ', ' \
                 ORDER BY CAST({login} AS text) COLLATE \"C\")"
            ),
            Dialect::MySql => format!(
                "CAST(GROUP_CONCAT(DISTINCT CONVERT({login} USING utf8mb4) COLLATE utf8mb4_bin \
                 ORDER BY CONVERT({login} USING utf8mb4) COLLATE utf8mb4_bin SEPARATOR ', ') \
                 AS CHAR)"
            ),
            Dialect::Sqlite => format!("group_concat(DISTINCT {login} COLLATE BINARY)"),
        };
        format!(
            "SELECT {spellings}, CAST(COUNT(*) AS {int}), CAST(COUNT(*) OVER () AS {int}) \
             FROM {table} WHERE {login} IS NOT NULL GROUP BY {login} HAVING COUNT(*) > 1 \
             LIMIT 20",
            int = match self {
                Dialect::MySql => "SIGNED",
                Dialect::Postgres | Dialect::Sqlite => "BIGINT",
            }
        )
    }

    /// The text types to name in advice.
    pub(crate) fn text_types(self) -> &'static str {
        match self {
            Dialect::Postgres => "text, varchar(n) of at least 5000, json or jsonb",
            Dialect::MySql => "MEDIUMTEXT, TEXT, VARCHAR(n) of at least 5000, or JSON, in utf8mb4",
            Dialect::Sqlite => "TEXT",
        }
    }

    /// Advice for an ownIdData column too narrow (or, on MySQL, in another character set), as
    /// the statement that fixes it.
    pub(crate) fn widen(self, table: &TableName, column: &Identifier) -> String {
        let (table, column) = (self.quote_table(table), self.quote(column));
        match self {
            Dialect::Postgres => format!("ALTER TABLE {table} ALTER COLUMN {column} TYPE text"),
            Dialect::MySql => format!(
                "ALTER TABLE {table} MODIFY {column} {} (keep its NULL/NOT NULL and default)",
                self.text_type()
            ),
            Dialect::Sqlite => format!(
                "SQLite does not limit it, but ownid-bridge keeps to the declared width: \
                 declare {column} TEXT (SQLite changes a column's type by rebuilding {table})"
            ),
        }
    }

    /// Advice for a login-id column that compares without case or accents, in the database's
    /// own vocabulary.
    pub(crate) fn exact_collation(self, table: &TableName, column: &Identifier) -> String {
        let (table, column) = (self.quote_table(table), self.quote(column));
        match self {
            Dialect::Postgres => format!(
                "a deterministic collation: ALTER TABLE {table} ALTER COLUMN {column} TYPE text \
                 COLLATE \"C\" (from citext or a nondeterministic collation), or leave \
                 ownid.create_missing_users off"
            ),
            Dialect::MySql => format!(
                "a _bin collation: ALTER TABLE {table} MODIFY {column} VARCHAR(320) CHARACTER \
                 SET utf8mb4 COLLATE utf8mb4_bin NOT NULL (keep its length), or leave \
                 ownid.create_missing_users off"
            ),
            Dialect::Sqlite => format!(
                "a unique index on {table} ({column} COLLATE BINARY) instead of the NOCASE one, \
                 or leave ownid.create_missing_users off"
            ),
        }
    }

    /// The column type for ownIdData when `schema` creates it: unbounded text, and on MySQL a
    /// 16 MB `MEDIUMTEXT` in utf8mb4 (a plain `TEXT` holds only 64 KB, and utf8mb3 refuses 4-byte
    /// characters).
    pub(crate) fn text_type(self) -> &'static str {
        match self {
            Dialect::Sqlite | Dialect::Postgres => "TEXT",
            Dialect::MySql => "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        }
    }

    /// Whether two identifiers name the same column. PostgreSQL keeps the case of quoted names;
    /// SQLite and MySQL compare column names without case.
    pub(crate) fn same_name(self, a: &str, b: &str) -> bool {
        match self {
            Dialect::Postgres => a == b,
            Dialect::Sqlite | Dialect::MySql => a.eq_ignore_ascii_case(b),
        }
    }

    pub(crate) fn create_table(self, table: &str, login: &str, data: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "CREATE TABLE {table} (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \
                 {login} TEXT NOT NULL, {data} TEXT, \
                 \"created_at\" TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            ),
            Dialect::Postgres => format!(
                "CREATE TABLE {table} (\"id\" BIGSERIAL PRIMARY KEY, {login} TEXT NOT NULL, \
                 {data} TEXT, \"created_at\" TIMESTAMPTZ NOT NULL DEFAULT now())"
            ),
            // utf8mb4_bin: login ids compare exactly, as on the other backends.
            Dialect::MySql => format!(
                "CREATE TABLE {table} (`id` BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 {login} VARCHAR(320) NOT NULL, {data} {}, \
                 `created_at` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) \
                 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                self.text_type()
            ),
        }
    }
}
