//! The users table's shape as a catalogue describes it, and the ownIdData column's limits.

use std::sync::atomic::{AtomicU64, Ordering};

use ownid_bridge_store::{Identifier, StoreError, UsersMapping};

use crate::Dialect;

/// The ownIdData column's limits, refreshed by `inspect`, checked before every write so that an
/// over-long value is refused whole (413) rather than truncated or half-written.
#[derive(Debug)]
pub struct Capacity {
    chars: AtomicU64,
    bytes: AtomicU64,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            chars: AtomicU64::new(u64::MAX),
            bytes: AtomicU64::new(u64::MAX),
        }
    }
}

impl Capacity {
    pub fn set(&self, column: Option<&Column>) {
        let chars = column.and_then(|c| c.max_chars).unwrap_or(u64::MAX);
        let bytes = column.and_then(|c| c.max_bytes).unwrap_or(u64::MAX);
        self.chars.store(chars, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// The limit in characters, for messages (`u64::MAX` when there is none).
    pub fn chars(&self) -> u64 {
        self.chars.load(Ordering::Relaxed)
    }

    pub fn check(&self, value: &str) -> Result<(), StoreError> {
        let (chars, bytes) = (self.chars(), self.bytes.load(Ordering::Relaxed));
        let too_many_bytes = bytes != u64::MAX && value.len() as u64 > bytes;
        let too_many_chars = chars != u64::MAX && value.chars().count() as u64 > chars;
        if too_many_bytes || too_many_chars {
            return Err(StoreError::TooLarge {
                max_chars: if chars == u64::MAX { bytes / 4 } else { chars },
            });
        }
        Ok(())
    }
}

/// What kind of value a column holds, as far as ownid-bridge cares: whether OwnID's strings can
/// be written into it, and how its values are read back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColumnKind {
    /// Character strings (`text`, `varchar`, `char`, `citext`, MySQL's TEXT types, SQLite's TEXT
    /// affinity or none), or a domain over one.
    #[default]
    Text,
    /// JSON (`json`, `jsonb`, MySQL's `JSON`, MariaDB's `JSON` = `LONGTEXT` checked by
    /// `JSON_VALID`): ownIdData is stored as a JSON string.
    Json,
    /// Integers, decimals, floats (SQLite: INTEGER, REAL or NUMERIC affinity, whose conversion
    /// would change a string that looks like a number).
    Number,
    Boolean,
    /// Bytes (`bytea`, `BLOB`, `VARBINARY`): nothing here is written or read as text.
    Binary,
    /// Anything else a value can be read from as text but not written into (`uuid`, dates,
    /// enums, arrays, ...).
    Other,
}

/// The characters a MySQL/MariaDB login-id column's character set can hold. A login id with
/// another one cannot be in the column, and comparing it with the column is an error (1267
/// "Illegal mix of collations"), so the store answers it as not found without asking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Repertoire {
    /// Every character (utf8mb4, utf16, utf32).
    #[default]
    Unicode,
    /// The Basic Multilingual Plane: no emoji or other 4-byte UTF-8 character (utf8mb3, ucs2).
    Bmp,
    /// MySQL's `latin1`, which is Windows-1252 (with its 5 unassigned bytes as C1 controls).
    Latin1,
    Ascii,
}

impl Repertoire {
    /// The repertoire of a MySQL character set, `None` for one not known here (`cp1251`,
    /// `big5`, ...). No character set (not MySQL, not a string column) is `Unicode`.
    pub fn of(charset: Option<&str>) -> Option<Self> {
        let Some(charset) = charset else {
            return Some(Repertoire::Unicode);
        };
        match charset.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf16" | "utf16le" | "utf32" => Some(Repertoire::Unicode),
            "utf8mb3" | "utf8" | "ucs2" => Some(Repertoire::Bmp),
            "latin1" => Some(Repertoire::Latin1),
            "ascii" => Some(Repertoire::Ascii),
            _ => None,
        }
    }

    /// What a login id outside it may contain, for `check`.
    pub fn lacks(self) -> &'static str {
        match self {
            Repertoire::Unicode => "nothing",
            Repertoire::Bmp => "4-byte characters such as emoji",
            Repertoire::Latin1 => "characters outside Western European scripts",
            Repertoire::Ascii => "every non-ASCII character",
        }
    }

    /// Whether every character of `text` is in the repertoire.
    pub fn holds(self, text: &str) -> bool {
        match self {
            Repertoire::Unicode => true,
            Repertoire::Bmp => text.chars().all(|c| (c as u32) <= 0xFFFF),
            Repertoire::Ascii => text.is_ascii(),
            Repertoire::Latin1 => text.chars().all(|c| {
                matches!(c as u32, 0..=0x7F | 0xA0..=0xFF | 0x81 | 0x8D | 0x8F | 0x90 | 0x9D)
                    || "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ".contains(c)
            }),
        }
    }
}

/// One column as the catalogue describes it.
#[derive(Clone, Debug, Default)]
pub struct Column {
    pub name: String,
    /// The declared type, for messages (`TEXT`, `character varying(255)`, ...).
    pub declared: String,
    pub kind: ColumnKind,
    /// PostgreSQL: the name of the type, or of a domain's base type, without modifiers
    /// (`citext`, `jsonb`, `ext.citext`), which a lookup parameter is cast to so that it uses
    /// the column's index, and which tells `json` from `jsonb`.
    pub type_name: Option<String>,
    /// A generated (computed) column, which cannot be written.
    pub generated: bool,
    /// The column admits NULL.
    pub nullable: bool,
    /// The most characters the column holds, when it has a declared limit.
    pub max_chars: Option<u64>,
    /// The most bytes it holds, when the limit is in bytes (MySQL's TEXT types).
    pub max_bytes: Option<u64>,
    /// MySQL only: the character set.
    pub charset: Option<String>,
    /// The collation (MySQL), or what makes the column compare loosely (PostgreSQL: `citext`,
    /// a nondeterministic collation), for `check`.
    pub collation: Option<String>,
    /// Whether values that differ in case, accents or trailing spaces compare equal.
    pub loose: bool,
    /// The column's default as the catalogue spells it (`''`, `''::text`, `nextval(...)`,
    /// `uuid()`), when it has one.
    pub default: Option<String>,
    /// MySQL only: the default is an expression (`DEFAULT_GENERATED`), whatever its spelling.
    pub default_is_expression: bool,
    /// MariaDB: the clauses of the check constraints that name the column (other than the
    /// `json_valid` of its JSON type), which a value written into it must pass.
    pub checks: Vec<String>,
}

/// The shape of the users table, read from the database's catalogue.
#[derive(Clone, Debug, Default)]
pub struct TableFacts {
    pub exists: bool,
    /// When the table does not exist: the tables that do, in the same schema (database), for
    /// "did you mean".
    pub other_tables: Vec<String>,
    pub columns: Vec<Column>,
    /// A full (not partial, not expression) unique index on exactly the login-id column.
    pub login_id_unique: bool,
}

impl Column {
    /// A fixed-point number (MySQL's `DECIMAL`, PostgreSQL's `numeric`), which the drivers do
    /// not decode as a float: read as its text, then as a JSON number.
    pub fn is_decimal(&self) -> bool {
        self.kind == ColumnKind::Number
            && matches!(self.type_name.as_deref(), Some("decimal" | "numeric"))
    }
}

impl TableFacts {
    pub fn column(&self, dialect: Dialect, name: &Identifier) -> Option<&Column> {
        self.columns
            .iter()
            .find(|column| dialect.same_name(&column.name, name.as_str()))
    }

    /// The ownIdData column, when it exists.
    pub fn ownid_data(&self, dialect: Dialect, mapping: &UsersMapping) -> Option<&Column> {
        self.column(dialect, &mapping.ownid_data)
    }
}

/// `VARCHAR(255)`, `NVARCHAR (5000)`, `CHARACTER(20)` → the number; `TEXT` → none.
pub fn declared_width(declared_type: &str) -> Option<u64> {
    let open = declared_type.find('(')?;
    let close = declared_type[open..].find(')')? + open;
    declared_type[open + 1..close].trim().parse().ok()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repertoires_of_mysql_character_sets() {
        let of = |charset| Repertoire::of(charset).unwrap();
        assert!(of(Some("utf8mb4")).holds("a😀@x.com"));
        assert!(of(None).holds("a😀@x.com"));
        assert!(of(Some("utf8mb3")).holds("ünï日本@x.com"));
        assert!(!of(Some("utf8mb3")).holds("a😀@x.com"));
        assert!(of(Some("latin1")).holds("ünï€Ÿ@x.com"));
        assert!(!of(Some("latin1")).holds("aΩ@x.com"));
        assert!(!of(Some("latin1")).holds("a\u{80}@x.com"));
        assert!(!of(Some("ascii")).holds("ü@x.com"));
        assert_eq!(Repertoire::of(Some("cp1251")), None);
    }

    #[test]
    fn reads_declared_widths() {
        assert_eq!(declared_width("VARCHAR(255)"), Some(255));
        assert_eq!(declared_width("nvarchar ( 5000 )"), Some(5000));
        assert_eq!(declared_width("TEXT"), None);
        assert_eq!(declared_width("DECIMAL(10,2)"), None);
    }
}
