//! The replay guard's storage (`ownid.replay_protection: storage`): the signatures of accepted
//! requests, kept in the configured database so that every instance over it refuses a replay.
//!
//! One row (document) per signature: `signature` (64 lowercase hex digits, the key),
//! `expires_at` (Unix ms after which the signature is refused by the clock check anyway),
//! `holder` (a random number naming the reservation) and `lease_until` (Unix ms; NULL once the
//! request was answered). A row with a lease is *in flight*: its request is being answered, and
//! when the instance answering it died, another may take the signature over once the lease has
//! passed. A row without a lease is *used*: that signature is never accepted again. A released
//! row (the request answered 5xx) keeps a lease that has passed (0), so that it may be taken over
//! at once, by a request for the same operation only.
//!
//! OwnID signs the body, not the path, so a signature is bound to the operation it was first sent
//! to: the two lowest bits of a holder ([`OPERATION_BITS`]) name that operation, and a row is
//! taken over only by a holder with the same two bits. For any other operation the signature is
//! [`Claim::Used`], a replay.

use async_trait::async_trait;

use crate::{Level, SchemaCheck, StoreError};

/// The default name of the table (or collection).
pub const DEFAULT_LEDGER_TABLE: &str = "ownid_replay_guard";

/// The bits of a holder that name the operation its request was sent to (see the module's
/// documentation).
pub const OPERATION_BITS: i64 = 0b11;

/// The name of the ledger's line in `check`.
pub const LEDGER_CHECK: &str = "replay guard table";

/// A reservation to record: what [`SignatureLedger::reserve`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserve<'a> {
    /// The signature in lowercase hex.
    pub signature: &'a str,
    pub expires_at_ms: i64,
    pub holder: i64,
    pub lease_until_ms: i64,
    /// The reserving instance's clock: a lease that ended before it may be taken over.
    pub now_ms: i64,
}

/// What [`SignatureLedger::reserve`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The signature is this request's: it was new, or its earlier holder's lease had passed.
    Reserved,
    /// Another request with this signature is being answered (its lease has not passed).
    InFlight,
    /// A request with this signature was answered, or the signature was sent to another
    /// operation: a replay.
    Used,
}

/// Accepted signatures in the database. Every method is one or a few single-row statements, each
/// atomic on its own: two instances reserving one signature at once get one `Reserved`.
#[async_trait]
pub trait SignatureLedger: Send + Sync + 'static {
    /// Records the signature as in flight for `holder`, unless another holds it.
    async fn reserve(&self, reserve: &Reserve<'_>) -> Result<Claim, StoreError>;

    /// Ends `holder`'s reservation as used. `Ok(false)` when the reservation was no longer
    /// `holder`'s (its lease passed and another took it over).
    async fn mark_used(&self, signature: &str, holder: i64) -> Result<bool, StoreError>;

    /// Gives up `holder`'s reservation (the request answered 5xx or was dropped), so that the
    /// signature may be reserved again at once, for the same operation only.
    async fn release(&self, signature: &str, holder: i64) -> Result<(), StoreError>;

    /// Forgets the signatures that expired before `before_ms`; how many.
    async fn forget_expired(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Whether the table exists with the columns above (`check`; changes nothing).
    async fn inspect(&self) -> Result<SchemaCheck, StoreError>;

    /// Creates the table and its expiry index when missing; a line per statement run (with
    /// `dry_run`, a line per statement it would run, and nothing is changed).
    async fn apply_schema(&self, dry_run: bool) -> Result<Vec<String>, StoreError>;
}

/// A check line for the ledger table.
pub fn ledger_check(ok: bool, detail: impl Into<String>) -> SchemaCheck {
    SchemaCheck {
        name: LEDGER_CHECK.into(),
        level: if ok { Level::Ok } else { Level::Fail },
        detail: detail.into(),
        fix: (!ok).then(|| "run `ownid-bridge schema` to create it".to_owned()),
        fails_when_creating: false,
    }
}
