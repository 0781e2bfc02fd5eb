use std::fmt;

/// OwnID asks for an ownIdData column of at least this many characters.
pub const MIN_OWNID_DATA_CHARS: u64 = 5000;

/// The names of the checks every backend reports, so callers can look one up.
pub mod checks {
    pub const TABLE: &str = "table";
    pub const LOGIN_ID_COLUMN: &str = "login_id column";
    pub const OWNID_DATA_COLUMN: &str = "ownid_data column";
    pub const USER_ID_COLUMN: &str = "user_id column";
    /// The user-id column's default is one value for every row (`''`, `0`): every user created
    /// without an id would share it as `sub`.
    pub const USER_ID_DEFAULT: &str = "user_id default";
    pub const CLAIM_COLUMN: &str = "claim column";
    pub const OWNID_DATA_WIDTH: &str = "ownid_data width";
    pub const LOGIN_ID_UNIQUE: &str = "login_id unique index";
    /// The login-id column or its unique index compares without case, accents or trailing
    /// spaces (a look-alike then holds the index entry).
    pub const LOGIN_ID_COLLATION: &str = "login_id collation";
}

/// One line of `check`: what was looked at, whether it is right, and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaCheck {
    pub name: String,
    pub ok: bool,
    /// A failed essential check (no table, no column) means the server cannot run at all; the
    /// others (width, unique index) only degrade it, so `serve` warns instead of refusing.
    pub essential: bool,
    pub detail: String,
}

/// The state of the users table as `check` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaReport {
    pub checks: Vec<SchemaCheck>,
}

impl SchemaReport {
    /// Records a check the server cannot run without.
    pub fn essential(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.record(name.into(), ok, true, detail.into());
    }

    /// Records a check whose failure degrades the server but does not stop it.
    pub fn advisory(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.record(name.into(), ok, false, detail.into());
    }

    fn record(&mut self, name: String, ok: bool, essential: bool, detail: String) {
        self.checks.push(SchemaCheck {
            name,
            ok,
            essential,
            detail,
        });
    }

    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }

    /// The failed checks, for a start-up error or a warning.
    pub fn problems(&self) -> impl Iterator<Item = &SchemaCheck> {
        self.checks.iter().filter(|check| !check.ok)
    }

    pub fn check(&self, name: &str) -> Option<&SchemaCheck> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// Whether the server can run at all on this table.
    pub fn is_usable(&self) -> bool {
        self.problems().all(|check| !check.essential)
    }
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {}: {}", check.name, check.detail)?;
        }
        Ok(())
    }
}
