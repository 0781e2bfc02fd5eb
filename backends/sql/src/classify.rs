//! Driver errors as store errors, each dialect's codes read in that dialect only.

use ownid_bridge_store::StoreError;

use crate::Dialect;

/// Maps a driver error onto the store's error enum, reading the codes of `dialect` only (an
/// all-digit SQLSTATE such as `40001` is not a SQLite result code). `capacity` is the column's
/// limit for the `TooLarge` message (`u64::MAX` when unknown).
///
/// Conditions that pass become `Unavailable` (503 with `Retry-After`, SPEC §1): the connection
/// failing, the server shutting down or out of connections, a statement that ran out of
/// `storage.pool.statement_timeout` (waiting for a lock, or running). A conflict with another
/// statement becomes `Contention`, which the server retries before it answers 503:
/// serialization failures, deadlocks, PostgreSQL's lock_not_available and, on MariaDB Galera,
/// certification conflicts (reported as deadlocks), SQLite's locked database. A timed-out
/// statement is not run again: the timeout bounds the request, and retries would multiply it.
pub fn classify(dialect: Dialect, err: sqlx::Error, capacity: u64) -> StoreError {
    let unavailable = |err: &sqlx::Error| StoreError::Unavailable(err.to_string());
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A reply the driver could not read is what a connection cut mid-answer looks like.
        | sqlx::Error::Protocol(_) => unavailable(&err),
        sqlx::Error::Database(db) => match database_condition(dialect, db.as_ref()) {
            Condition::Unavailable => unavailable(&err),
            Condition::Contention => StoreError::Contention(err.to_string()),
            Condition::TooLong => StoreError::TooLarge {
                max_chars: capacity,
            },
            Condition::Unique => StoreError::Conflict,
            Condition::Schema => StoreError::Schema(err.to_string()),
            Condition::Other => StoreError::Other(err.to_string()),
        },
        _ => StoreError::Other(err.to_string()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Condition {
    Unavailable,
    Contention,
    TooLong,
    /// A unique index refused the row. Its message names the value (MySQL's "Duplicate entry
    /// 'alice@...'"), so it is mapped without its text.
    Unique,
    /// The table's shape refused the statement: no such table or column, a type the value
    /// cannot be written into, a check constraint. Running it again cannot help.
    Schema,
    Other,
}

fn database_condition(dialect: Dialect, db: &dyn sqlx::error::DatabaseError) -> Condition {
    if db.is_unique_violation() {
        return Condition::Unique;
    }
    let code = db.code().unwrap_or_default();
    match dialect {
        // SQLite result codes, extended: plain SQLITE_BUSY (5) is the busy timeout (the statement
        // timeout) run out; its extended forms and SQLITE_LOCKED (6) are conflicts met at once.
        Dialect::Sqlite => match code.parse::<i32>() {
            Ok(5) => Condition::Unavailable,
            Ok(number) if matches!(number & 0xff, 5 | 6) => Condition::Contention,
            // SQLITE_ERROR for a missing table or column; 275 SQLITE_CONSTRAINT_CHECK.
            Ok(1)
                if ["no such table", "no such column", "has no column"]
                    .iter()
                    .any(|what| db.message().contains(what)) =>
            {
                Condition::Schema
            }
            Ok(275) => Condition::Schema,
            _ => Condition::Other,
        },
        Dialect::Postgres => postgres_condition(&code),
        Dialect::MySql => mysql_condition(mysql_number(db), &code),
    }
}

/// PostgreSQL SQLSTATEs: class 08 (connection exception), 40001 serialization_failure, 40P01
/// deadlock_detected, 53300 too_many_connections, 55P03 lock_not_available, 57014
/// query_canceled (`statement_timeout`), 57P0x (admin or crash shutdown, cannot connect now,
/// database dropped); 22001 string_data_right_truncation; the table's shape: 42P01
/// undefined_table, 42703 undefined_column, 3F000 invalid_schema_name, 42804 datatype_mismatch,
/// 42883 undefined_function (`integer = text`), 22P02 invalid_text_representation, 23514
/// check_violation, 428C9 generated_always.
fn postgres_condition(sqlstate: &str) -> Condition {
    match sqlstate {
        "22001" => Condition::TooLong,
        "42P01" | "42703" | "3F000" | "42804" | "42883" | "22P02" | "23514" | "428C9" => {
            Condition::Schema
        }
        "40001" | "40P01" | "55P03" => Condition::Contention,
        "53300" | "57014" => Condition::Unavailable,
        c if c.starts_with("08") || c.starts_with("57P0") => Condition::Unavailable,
        _ => Condition::Other,
    }
}

/// MySQL/MariaDB error numbers, then SQLSTATEs: 1213 deadlock (also Galera's certification
/// conflict), 1040 too many connections, 2006 server gone away, 2013 connection lost, 1047
/// (Galera: node not ready for queries), the statement timeout run out (1969 MariaDB
/// `max_statement_time`, 3024 MySQL `max_execution_time`, 1205 a lock wait); 1406 data too long;
/// the table's shape: 1146 no such table, 1054 unknown column, 1049 unknown database, 1366
/// incorrect string value (a character the column's character set lacks), 1265 data truncated
/// (an enum), 3140 invalid JSON, 4025 and 3819 a check constraint (MariaDB's JSON_VALID), 3105
/// a generated column, 1292 incorrect value.
fn mysql_condition(number: Option<u16>, sqlstate: &str) -> Condition {
    match number {
        Some(1213) => return Condition::Contention,
        Some(1146 | 1054 | 1049 | 1366 | 1265 | 3140 | 4025 | 3819 | 3105 | 1292) => {
            return Condition::Schema
        }
        Some(1040 | 2006 | 2013 | 1047 | 1205 | 1969 | 3024) => return Condition::Unavailable,
        Some(1406) => return Condition::TooLong,
        _ => {}
    }
    match sqlstate {
        "22001" => Condition::TooLong,
        "40001" => Condition::Contention,
        c if c.starts_with("08") => Condition::Unavailable,
        _ => Condition::Other,
    }
}

/// A MySQL/MariaDB error's number (`None` for other databases).
#[cfg(feature = "mysql")]
pub fn mysql_number(db: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|err| err.number())
}

#[cfg(not(feature = "mysql"))]
pub fn mysql_number(_: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_in_their_own_dialect() {
        // An all-digit SQLSTATE is not a SQLite result code, and the reverse.
        assert_eq!(postgres_condition("40001"), Condition::Contention);
        assert_eq!(postgres_condition("40P01"), Condition::Contention);
        assert_eq!(postgres_condition("08006"), Condition::Unavailable);
        assert_eq!(postgres_condition("57P03"), Condition::Unavailable);
        assert_eq!(postgres_condition("22001"), Condition::TooLong);
        assert_eq!(postgres_condition("00005"), Condition::Other);
        assert_eq!(mysql_condition(Some(1205), "HY000"), Condition::Unavailable);
        assert_eq!(mysql_condition(Some(1969), "70100"), Condition::Unavailable);
        assert_eq!(postgres_condition("57014"), Condition::Unavailable);
        assert_eq!(mysql_condition(Some(1213), "40001"), Condition::Contention);
        assert_eq!(mysql_condition(Some(2013), "HY000"), Condition::Unavailable);
        assert_eq!(mysql_condition(Some(1406), "22001"), Condition::TooLong);
        assert_eq!(mysql_condition(Some(1064), "42000"), Condition::Other);
        assert_eq!(postgres_condition("42P01"), Condition::Schema);
        assert_eq!(mysql_condition(Some(1146), "42S02"), Condition::Schema);
    }
}
