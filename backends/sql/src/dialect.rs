//! The differences between the SQL dialects the statements and the schema plan are written for.

use ownid_bridge_store::Identifier;

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
