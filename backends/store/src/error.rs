use std::fmt;

/// The errors a backend reports. The API maps each to one status; the text of `Unavailable` and
/// `Other` goes to the log only, never to a response body.
#[derive(Debug)]
pub enum StoreError {
    /// No user with that login id (404, or the legacy body).
    NotFound,
    /// The database cannot be reached, or the pool timed out (503 with `Retry-After`).
    Unavailable(String),
    /// The database refused this statement for a conflict with another one, and the same
    /// statement may well succeed if run again: a serialization failure, a deadlock, a lock
    /// timeout, a Galera certification conflict, SQLite's busy database, MongoDB's write
    /// conflict. The server retries it; when retries run out, 503 with `Retry-After`.
    Contention(String),
    /// The value does not fit the column (413); nothing was written.
    TooLarge { max_chars: u64 },
    /// The login id is new, but the table's unique login-id index already holds one that its
    /// collation treats as equal (`Alice@…` beside `alice@…` under a case-insensitive collation).
    /// That row is another user: nothing is written (409 `login_id_conflict`).
    Conflict,
    /// The table is not what the configuration says, or refuses what is written for a reason
    /// of its own: a missing table or column, a type the value cannot be written into, a
    /// constraint, duplicates that stop a unique index. Running the same thing again cannot
    /// help until the table is changed (500 in the API; the command-line tools say so).
    Schema(String),
    /// Anything else: a bug or an unexpected database error (500).
    Other(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("user not found"),
            StoreError::Unavailable(detail) => write!(f, "storage unavailable: {detail}"),
            StoreError::Contention(detail) => write!(f, "storage contention: {detail}"),
            StoreError::TooLarge { max_chars } => {
                write!(f, "value longer than the column's {max_chars} characters")
            }
            StoreError::Conflict => f.write_str(
                "a login id that the database's collation treats as equal belongs to another user",
            ),
            StoreError::Schema(detail) => write!(f, "the users table: {detail}"),
            StoreError::Other(detail) => write!(f, "storage error: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// A user whose user-id column (`users.user_id`) is NULL: no session token can name it
    /// (SPEC §3), since falling back to the login id could name another user (a login id `1001`
    /// beside a user whose id is `1001`). A 500 whose log line says what to fix.
    pub fn no_user_id(column: impl fmt::Display) -> StoreError {
        StoreError::Other(format!(
            "the user's {column} (users.user_id) is NULL or empty: no session token is issued, \
             since `sub` never falls back to the login id and an empty `sub` would be every such \
             user's; give the user a unique id (or a generated default for the column, such as \
             an identity, a sequence or a UUID, for users created by create_missing_users)"
        ))
    }

    /// Whether the error is the table's, which running again cannot fix:
    /// [`StoreError::Schema`].
    pub fn is_schema(&self) -> bool {
        matches!(self, StoreError::Schema(_))
    }

    /// Whether running the same operation again may succeed: [`StoreError::Contention`].
    pub fn is_contention(&self) -> bool {
        matches!(self, StoreError::Contention(_))
    }
}
