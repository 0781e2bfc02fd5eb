//! MongoDB errors as store errors: server codes, the duplicate-key race, transient failures.

use mongodb::error::{ErrorKind, WriteFailure};
use ownid_bridge_store::StoreError;

/// A BSON document (the whole user, field names included) is limited to 16 MiB; a value of more
/// bytes than that can never be stored, so it is refused before a round trip.
pub(crate) const MAX_BSON_BYTES: u64 = 16 * 1024 * 1024;

/// Server codes for a document over the BSON limit: `BSONObjectTooLarge`, and the codes older
/// servers used for "resulting document after update is larger than" and "document to upsert is
/// larger than".
const TOO_LARGE_CODES: [i32; 3] = [10334, 17419, 17420];

pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// `WriteConflict`: another operation changed the document first; running again may succeed.
const WRITE_CONFLICT: i32 = 112;
/// `MaxTimeMSExpired`: the operation ran out of its `maxTimeMS` (the statement timeout).
const MAX_TIME_EXPIRED: i32 = 50;
pub(crate) const COMMAND_NOT_FOUND: i32 = 59;

/// Server codes that mean "try again shortly" (a replica-set election, a shutdown, a network
/// problem seen by the server): `HostUnreachable`, `HostNotFound`, `NetworkTimeout`,
/// `ShutdownInProgress`, `PrimarySteppedDown`, `NotWritablePrimary`, `InterruptedAtShutdown`,
/// `InterruptedDueToReplStateChange`, `NotPrimaryNoSecondaryOk`, `NotPrimaryOrSecondary`.
const TRANSIENT_CODES: [i32; 10] = [6, 7, 89, 91, 189, 10107, 11600, 11602, 13435, 13436];

/// The code of a server-side error, whether it came back as a command error or a write error.
pub(crate) fn server_code(err: &mongodb::error::Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => Some(concern.code),
        _ => None,
    }
}

pub(crate) fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    server_code(err) == Some(DUPLICATE_KEY)
}

/// How long past the statement timeout the driver is waited for: the server's own `maxTimeMS`
/// answer normally comes first.
const DRIVER_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs a data-path operation within `storage.pool.statement_timeout`. The server cancels reads
/// at it (`maxTimeMS`); the driver offers no `maxTimeMS` for inserts, updates and deletes, and a
/// server (or a network) that stops answering is not bounded by the driver either, so the wait
/// ends here, shortly after, with a 503. Such a write may still be applied by the server later;
/// every write here is one OwnID repeats or a reservation that expires.
pub(crate) async fn bounded<T>(
    timeout: Option<std::time::Duration>,
    operation: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let Some(timeout) = timeout else {
        return operation.await;
    };
    tokio::time::timeout(timeout + DRIVER_GRACE, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "MongoDB did not answer within storage.pool.statement_timeout ({timeout:?})"
            )))
        })
}

pub(crate) fn map_err(err: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&err) {
        // Its message quotes the key ("dup key: { login: \"alice@...\" }"), a login id that must
        // not reach the log.
        return StoreError::Other("duplicate key error (E11000)".into());
    }
    // The kind's text, not the error's: the latter appends the raw server response. Neither
    // carries the URL's password (the driver redacts credentials from its messages).
    let message = err.kind.to_string();
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => StoreError::Unavailable(message),
        _ => match server_code(&err) {
            Some(WRITE_CONFLICT) => StoreError::Contention(message),
            Some(code) if code == MAX_TIME_EXPIRED || TRANSIENT_CODES.contains(&code) => {
                StoreError::Unavailable(message)
            }
            Some(code) if TOO_LARGE_CODES.contains(&code) => StoreError::TooLarge {
                max_chars: MAX_BSON_BYTES,
            },
            _ => StoreError::Other(message),
        },
    }
}
