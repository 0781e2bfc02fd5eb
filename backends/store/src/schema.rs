//! What `check` reports and what `schema` plans, the same for every backend.

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
    /// The ownIdData column's character set cannot hold every character (MySQL's utf8mb3,
    /// latin1).
    pub const OWNID_DATA_CHARSET: &str = "ownid_data charset";
    pub const LOGIN_ID_UNIQUE: &str = "login_id unique index";
    /// The login-id column's character set cannot hold every character (MySQL's utf8mb3,
    /// latin1): login ids with others are in no row.
    pub const LOGIN_ID_CHARSET: &str = "login_id charset";
    /// A check constraint names the ownIdData column: `check` cannot tell whether OwnID's values
    /// pass it.
    pub const OWNID_DATA_CONSTRAINT: &str = "ownid_data constraint";
    /// The login-id column or its unique index compares without case, accents or trailing
    /// spaces (a look-alike then holds the index entry).
    pub const LOGIN_ID_COLLATION: &str = "login_id collation";
}

/// How a check came out. `check` exits 1 exactly when a line is [`Level::Fail`], and `serve`
/// refuses to start on the same lines: what fails will fail (or be unsafe) at run time. A
/// [`Level::Warn`] line is safe under the configuration, and says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    /// The level's name in `check --format json`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }

    /// The mark `check` prints before the line.
    pub fn mark(self) -> &'static str {
        match self {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One line of `check`: what was looked at, how it came out, what was found and, when it is not
/// `ok`, how to fix it in the database's own vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaCheck {
    pub name: String,
    pub level: Level,
    pub detail: String,
    pub fix: Option<String>,
    /// A [`Level::Warn`] that becomes [`Level::Fail`] when the configuration creates missing
    /// users (`ownid.create_missing_users`): see [`SchemaReport::settle`].
    pub fails_when_creating: bool,
}

impl SchemaCheck {
    pub fn ok(&self) -> bool {
        self.level != Level::Fail
    }
}

/// The state of the users table as `check` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaReport {
    pub checks: Vec<SchemaCheck>,
}

impl SchemaReport {
    /// Records a line that is fine.
    pub fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.record(name.into(), Level::Ok, detail.into(), None, false);
    }

    /// Records a line that is safe under any configuration, with its reason in `detail`.
    pub fn warn(
        &mut self,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        self.record(name.into(), Level::Warn, detail.into(), fix, false);
    }

    /// Records a line that is safe only while `ownid.create_missing_users` is off; with it on,
    /// [`SchemaReport::settle`] makes it a failure.
    pub fn warn_unless_creating(
        &mut self,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        self.record(name.into(), Level::Warn, detail.into(), fix, true);
    }

    /// Records a line the server cannot serve correctly with: `check` exits 1 and `serve`
    /// refuses to start.
    pub fn fail(
        &mut self,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        self.record(name.into(), Level::Fail, detail.into(), fix, false);
    }

    /// `pass` when `ok`, else `fail`.
    pub fn pass_or_fail(
        &mut self,
        name: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
        fix: Option<String>,
    ) {
        if ok {
            self.pass(name, detail);
        } else {
            self.fail(name, detail, fix);
        }
    }

    fn record(
        &mut self,
        name: String,
        level: Level,
        detail: String,
        fix: Option<String>,
        fails_when_creating: bool,
    ) {
        self.checks.push(SchemaCheck {
            name,
            level,
            detail,
            fix,
            fails_when_creating,
        });
    }

    /// The report under a configuration: with `create_missing_users`, every warning that is safe
    /// only without it becomes a failure, its detail saying why.
    pub fn settle(mut self, create_missing_users: bool) -> SchemaReport {
        if create_missing_users {
            for check in &mut self.checks {
                if check.fails_when_creating && check.level == Level::Warn {
                    check.level = Level::Fail;
                    check.detail.push_str(" (ownid.create_missing_users is on)");
                }
            }
        } else {
            for check in &mut self.checks {
                if check.fails_when_creating && check.level == Level::Warn {
                    check
                        .detail
                        .push_str(" (safe while ownid.create_missing_users is off)");
                }
            }
        }
        self
    }

    /// No line failed: the server will serve correctly.
    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(SchemaCheck::ok)
    }

    /// The failed lines, for a start-up error.
    pub fn problems(&self) -> impl Iterator<Item = &SchemaCheck> {
        self.checks.iter().filter(|check| !check.ok())
    }

    /// The warnings, which `serve` logs.
    pub fn warnings(&self) -> impl Iterator<Item = &SchemaCheck> {
        self.checks
            .iter()
            .filter(|check| check.level == Level::Warn)
    }

    pub fn check(&self, name: &str) -> Option<&SchemaCheck> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The lines as JSON (`check --format json`): `[{name, level, detail, fix?}]`.
    pub fn to_json(&self) -> serde_json::Value {
        self.checks
            .iter()
            .map(|check| {
                let mut line = serde_json::json!({
                    "name": check.name,
                    "level": check.level.name(),
                    "detail": check.detail,
                });
                if let Some(fix) = check.fix.as_deref().filter(|_| check.level != Level::Ok) {
                    line["fix"] = fix.into();
                }
                line
            })
            .collect()
    }
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{} {}: {}", check.level.mark(), check.name, check.detail)?;
            if let Some(fix) = check.fix.as_deref().filter(|_| check.level != Level::Ok) {
                writeln!(f, "     fix: {fix}")?;
            }
        }
        Ok(())
    }
}

/// What `schema` is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Create the users table (collection) when it is missing: the zero-configuration demo,
    /// or `schema --create-table`. Without it a missing table is an error.
    pub create_table: bool,
    /// With `create_table`: not when the missing name is close to a table that exists (`customer`
    /// beside `customers`), as `serve` creates the demo table by SQLite's default: such a name is
    /// a misspelling, never a table to create.
    pub demo: bool,
    /// Print the statements (commands) and change nothing.
    pub dry_run: bool,
    /// PostgreSQL: build the unique index with `CREATE UNIQUE INDEX CONCURRENTLY`, which does not
    /// block writes (outside the transaction of the other statements). Ignored elsewhere.
    pub concurrently: bool,
}

impl SchemaOptions {
    /// Creates the table when it is missing (the demo database, tests).
    pub const CREATE_TABLE: SchemaOptions = SchemaOptions {
        create_table: true,
        demo: false,
        dry_run: false,
        concurrently: false,
    };

    /// What `serve` does for the zero-configuration demo: create the table unless its name looks
    /// like a misspelling of an existing one.
    pub const DEMO: SchemaOptions = SchemaOptions {
        demo: true,
        ..SchemaOptions::CREATE_TABLE
    };
}

/// What `schema` did (or, with `dry_run`, would do): each statement or command, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaChanges {
    pub statements: Vec<String>,
    /// How many of `statements` (from the first) run in one transaction (PostgreSQL, SQLite),
    /// so that a failure among them leaves nothing applied; the rest run one by one.
    pub in_transaction: usize,
    /// Remarks for the operator (`--dry-run` prints them as comments).
    pub notes: Vec<String>,
}

impl SchemaChanges {
    /// Nothing was (or would be) run.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// The names among `candidates` closest to `wanted`, best first: the same name in another case,
/// then those within a small edit distance ("did you mean `customers`?").
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted_lower = wanted.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let lower = candidate.to_lowercase();
        let score = if lower == wanted_lower {
            2.0
        } else {
            let distance = strsim::levenshtein(&wanted_lower, &lower);
            let allowed = (wanted_lower.chars().count() / 3).clamp(1, 3);
            // One name inside the other counts when it is most of it (`customer` in
            // `customers_v2`), not a short word inside a long one (`id` in `ownid_data`).
            let (short, long) = if lower.len() < wanted_lower.len() {
                (&lower, &wanted_lower)
            } else {
                (&wanted_lower, &lower)
            };
            let inside = short.len() >= 4
                && short.len() * 3 >= long.len() * 2
                && long.contains(short.as_str());
            if distance > allowed && !inside {
                continue;
            }
            strsim::jaro_winkler(&wanted_lower, &lower)
        };
        if best.is_none_or(|(top, _)| score > top) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// "; did you mean `x`? (the table has: a, b, c)" for a missing name, listing at most 30 of
/// `existing`; what a missing table or column error ends with.
pub fn did_you_mean<'a>(
    wanted: &str,
    existing: impl IntoIterator<Item = &'a str> + Clone,
    what_has: &str,
) -> String {
    let mut text = String::new();
    if let Some(near) = closest(wanted, existing.clone()) {
        text.push_str(&format!("; did you mean `{near}`?"));
    }
    let all: Vec<&str> = existing.into_iter().collect();
    if all.is_empty() {
        text.push_str(&format!(" ({what_has} none)"));
    } else {
        let shown = all.iter().take(30).copied().collect::<Vec<_>>().join(", ");
        let more = if all.len() > 30 {
            format!(" and {} more", all.len() - 30)
        } else {
            String::new()
        };
        text.push_str(&format!(" ({what_has}: {shown}{more})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name() {
        let tables = ["accounts", "customers", "orders", "Customer_Notes"];
        assert_eq!(closest("customer", tables), Some("customers"));
        assert_eq!(closest("CUSTOMERS", tables), Some("customers"));
        assert_eq!(closest("acounts", tables), Some("accounts"));
        assert_eq!(closest("invoices", tables), None);
        assert_eq!(closest("OwnIdData", ["id", "Email", "plan"]), None);
        assert_eq!(closest("customer", ["customers_v2"]), Some("customers_v2"));
        let message = did_you_mean("customer", tables, "the database has");
        assert!(
            message.starts_with("; did you mean `customers`?"),
            "{message}"
        );
        assert!(message.contains("accounts, customers, orders"), "{message}");
        assert!(did_you_mean("x", [], "the database has").contains("none"));
    }

    #[test]
    fn settling_turns_creation_only_warnings_into_failures() {
        let mut report = SchemaReport::default();
        report.pass("a", "fine");
        report.warn("b", "always safe", None);
        report.warn_unless_creating("c", "safe without creation", Some("fix it".into()));
        assert!(report.clone().settle(false).is_ok());
        let settled = report.settle(true);
        assert!(!settled.is_ok());
        assert_eq!(
            settled
                .problems()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert!(
            settled.to_string().contains("     fix: fix it"),
            "{settled}"
        );
    }
}
