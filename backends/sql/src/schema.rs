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
}
