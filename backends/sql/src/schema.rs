//! The `check` report and the `schema` plan, the same for every SQL dialect.

use ownid_bridge_store::{
    checks, Identifier, SchemaReport, StoreError, UsersMapping, MIN_OWNID_DATA_CHARS,
};

use crate::{Dialect, TableFacts};

/// The `check` report for a table, the same for every SQL dialect.
pub fn report(dialect: Dialect, mapping: &UsersMapping, facts: &TableFacts) -> SchemaReport {
    let mut report = SchemaReport::default();
    if !facts.exists {
        report.essential(
            checks::TABLE,
            false,
            format!("table {} does not exist", mapping.table),
        );
        return report;
    }
    report.essential(
        checks::TABLE,
        true,
        format!("table {} exists", mapping.table),
    );
    let mut wanted = vec![(checks::LOGIN_ID_COLUMN, &mapping.login_id)];
    wanted.extend(mapping.user_id.iter().map(|c| (checks::USER_ID_COLUMN, c)));
    wanted.extend(
        mapping
            .claims
            .iter()
            .map(|(_, c)| (checks::CLAIM_COLUMN, c)),
    );
    for (what, name) in wanted {
        let found = facts.column(dialect, name).is_some();
        let state = if found { "present" } else { "missing" };
        report.essential(what, found, format!("{name} {state}"));
    }
    if let Some((name, column)) = mapping
        .user_id
        .as_ref()
        .and_then(|name| Some((name, facts.column(dialect, name)?)))
    {
        let constant = column
            .default
            .as_deref()
            .filter(|default| !column.default_is_expression && is_constant(dialect, default));
        report.advisory(
            checks::USER_ID_DEFAULT,
            constant.is_none(),
            match constant {
                Some(default) => format!(
                    "{name} defaults to the constant {default}: every user created without an \
                     id (as create_missing_users creates them) would get the same one, and so \
                     the same `sub` (an empty one gets no token); use a generated default (an \
                     identity, a sequence, a UUID) or none"
                ),
                None => format!("{name} has no constant default"),
            },
        );
    }
    match facts.column(dialect, &mapping.ownid_data) {
        None => report.essential(
            checks::OWNID_DATA_COLUMN,
            false,
            format!("{} missing", mapping.ownid_data),
        ),
        Some(column) => {
            report.essential(
                checks::OWNID_DATA_COLUMN,
                true,
                format!("{} present", mapping.ownid_data),
            );
            match column.max_chars.or(column.max_bytes.map(|bytes| bytes / 4)) {
                Some(width) => report.advisory(
                    checks::OWNID_DATA_WIDTH,
                    width >= MIN_OWNID_DATA_CHARS,
                    format!(
                        "declared {}: {width} characters (OwnID needs at least \
                         {MIN_OWNID_DATA_CHARS})",
                        column.declared
                    ),
                ),
                None => report.advisory(
                    checks::OWNID_DATA_WIDTH,
                    true,
                    format!(
                        "declared {:?}: no length limit below OwnID's needs",
                        column.declared
                    ),
                ),
            }
            if let Some(charset) = &column.charset {
                report.advisory(
                    "ownid_data charset",
                    charset.starts_with("utf8mb4"),
                    format!(
                        "{charset} (utf8mb4 is needed to store 4-byte UTF-8 characters byte for \
                         byte)"
                    ),
                );
            }
        }
    }
    if let Some((collation, loose)) = facts
        .column(dialect, &mapping.login_id)
        .and_then(|column| Some((column.collation.as_ref()?, column.loose)))
    {
        let exact = !loose;
        report.advisory(
            checks::LOGIN_ID_COLLATION,
            exact,
            if exact {
                format!("{collation}: login ids compare exactly")
            } else {
                format!(
                    "{collation} ignores case or accents: lookups still match login ids byte \
                     for byte (a look-alike is another user), but with create_missing_users a \
                     new login id whose look-alike holds the unique index is refused with 409 \
                     login_id_conflict (use a _bin collation, or login_id_normalization: \
                     lowercase with lower-case ids)"
                )
            },
        );
    }
    report.advisory(
        checks::LOGIN_ID_UNIQUE,
        facts.login_id_unique,
        if facts.login_id_unique {
            format!("a unique index covers {}", mapping.login_id)
        } else {
            format!(
                "no unique index on {}: lookups scan the table and create_missing_users cannot \
                 upsert",
                mapping.login_id
            )
        },
    );
    report
}

/// Whether a column default, as the catalogue spells it, is one value for every row: a string or
/// number literal (PostgreSQL adds a cast: `''::text`, `0::bigint`; SQLite keeps parentheses),
/// or on MySQL a bare value (MySQL 8 shows a literal unquoted, and marks an expression
/// `DEFAULT_GENERATED`, read separately). NULL and expressions (`nextval(...)`,
/// `gen_random_uuid()`, `uuid()`, `CURRENT_TIMESTAMP`) are not constants.
pub(crate) fn is_constant(dialect: Dialect, default: &str) -> bool {
    let mut text = default.trim();
    while let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        text = inner.trim();
    }
    if let Some(quoted) = text.strip_prefix('\'') {
        // The end of the string literal ('' is a quote inside it), then nothing or a cast.
        let mut chars = quoted.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                    chars.next();
                    continue;
                }
                let rest = quoted[at + 1..].trim();
                return rest.is_empty() || rest.strip_prefix("::").is_some_and(is_type_name);
            }
        }
        return false;
    }
    let (value, cast) = text.split_once("::").unwrap_or((text, "text"));
    if !is_type_name(cast) {
        return false;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or(value);
    let number = value.strip_prefix(['-', '+']).unwrap_or(value);
    if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return true;
    }
    if ["true", "false"]
        .iter()
        .any(|b| value.eq_ignore_ascii_case(b))
    {
        return true;
    }
    dialect == Dialect::MySql
        && !value.eq_ignore_ascii_case("null")
        && !value.contains('(')
        && !value.eq_ignore_ascii_case("current_timestamp")
}

/// A PostgreSQL type name after `::` (`text`, `character varying(10)`, `"char"`, `integer[]`),
/// not an expression going on.
fn is_type_name(text: &str) -> bool {
    !text.trim().is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _\"(),[]".contains(c))
}

/// The statements `schema` runs to make the table usable; empty when nothing is missing.
pub fn plan(
    dialect: Dialect,
    mapping: &UsersMapping,
    facts: &TableFacts,
    create_table: bool,
) -> Result<Vec<String>, StoreError> {
    let (table, login, data) = (
        dialect.quote(&mapping.table),
        dialect.quote(&mapping.login_id),
        dialect.quote(&mapping.ownid_data),
    );
    let mut statements = Vec::new();
    if !facts.exists {
        if !create_table {
            return Err(StoreError::Other(format!(
                "table {} does not exist (the demo table is only created when allowed)",
                mapping.table
            )));
        }
        statements.push(dialect.create_table(&table, &login, &data));
    } else if facts.column(dialect, &mapping.ownid_data).is_none() {
        statements.push(format!(
            "ALTER TABLE {table} ADD COLUMN {data} {}",
            dialect.text_type()
        ));
    }
    if !facts.exists || !facts.login_id_unique {
        let index = dialect.quote(&index_name(mapping));
        statements.push(format!("CREATE UNIQUE INDEX {index} ON {table} ({login})"));
    }
    Ok(statements)
}

fn index_name(mapping: &UsersMapping) -> Identifier {
    let name = format!("{}_{}_key", mapping.table, mapping.login_id);
    // Within the 64-character identifier limit of PostgreSQL and MySQL.
    Identifier::new(&name)
        .unwrap_or_else(|_| Identifier::new("ownid_bridge_login_id_key").expect("a valid name"))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;

    #[test]
    fn a_missing_table_plans_the_demo_table_and_its_index() {
        let mapping = UsersMapping::demo();
        let plan = plan(Dialect::Postgres, &mapping, &TableFacts::default(), true).unwrap();
        assert_eq!(plan.len(), 2);
        assert!(plan[0].starts_with("CREATE TABLE \"users\""));
        assert_eq!(
            plan[1],
            "CREATE UNIQUE INDEX \"users_login_id_key\" ON \"users\" (\"login_id\")"
        );
        assert!(super::plan(Dialect::Postgres, &mapping, &TableFacts::default(), false).is_err());
    }

    /// Red team, round 3 (R2): a constant default on the user-id column gives every created user
    /// one `sub`; generated defaults do not.
    #[test]
    fn constant_defaults_are_told_from_generated_ones() {
        use Dialect::*;
        for (dialect, default) in [
            (Sqlite, "''"),
            (Sqlite, "'unknown'"),
            (Sqlite, "0"),
            (Sqlite, "(-1)"),
            (Sqlite, "'it''s'"),
            (Postgres, "''::text"),
            (Postgres, "'x'::character varying"),
            (Postgres, "0"),
            (Postgres, "'-1'::integer"),
            (Postgres, "(-1)"),
            (Postgres, "true"),
            (MySql, "''"),
            (MySql, "'abc'"),
            (MySql, "0"),
            (MySql, "abc"),
            (MySql, ""),
        ] {
            assert!(is_constant(dialect, default), "{dialect:?} {default:?}");
        }
        for (dialect, default) in [
            (Sqlite, "NULL"),
            (Sqlite, "(lower(hex(randomblob(16))))"),
            (Sqlite, "CURRENT_TIMESTAMP"),
            (Postgres, "nextval('users_id_seq'::regclass)"),
            (Postgres, "gen_random_uuid()"),
            (Postgres, "NULL::text"),
            (Postgres, "'a'::text || random()::text"),
            (MySql, "NULL"),
            (MySql, "uuid()"),
            (MySql, "current_timestamp()"),
        ] {
            assert!(!is_constant(dialect, default), "{dialect:?} {default:?}");
        }
    }

    #[test]
    fn a_constant_user_id_default_fails_the_check() {
        let mut mapping = UsersMapping::demo();
        mapping.user_id = Some(Identifier::new("account_uuid").unwrap());
        let column = |default: Option<&str>| TableFacts {
            exists: true,
            columns: ["login_id", "ownid_data", "account_uuid"]
                .into_iter()
                .map(|name| Column {
                    name: name.into(),
                    default: (name == "account_uuid")
                        .then(|| default.map(str::to_owned))
                        .flatten(),
                    ..Column::default()
                })
                .collect(),
            login_id_unique: true,
        };
        let report = super::report(Dialect::Sqlite, &mapping, &column(Some("''")));
        let check = report.check(checks::USER_ID_DEFAULT).unwrap();
        assert!(!check.ok && !check.essential, "{report}");
        assert!(report.is_usable());
        for fine in [None, Some("(lower(hex(randomblob(16))))")] {
            let report = super::report(Dialect::Sqlite, &mapping, &column(fine));
            assert!(
                report.check(checks::USER_ID_DEFAULT).unwrap().ok,
                "{report}"
            );
        }
    }
}
