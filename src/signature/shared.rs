//! The replay guard shared by every instance over one database (`ownid.replay_protection:
//! storage`): the states of [`super::ReplayGuard`] kept in a table through a
//! [`SignatureLedger`], so that a signature accepted by one instance is refused by all.
//!
//! A reservation is *in flight* under a lease. The request holding it is cut off with 503 after
//! [`HANDLER_DEADLINE`], and the lease runs twice as long (instances' clocks may differ), so a
//! lease passes only after its request has ended: then another instance may take the signature
//! over, which is how a request whose instance died (SIGKILL, a lost node) can be answered when
//! the load balancer or OwnID sends it again. Answered 2xx or 4xx, the signature is marked used
//! before the answer leaves; answered 5xx, it is released. Taken over or released, a signature
//! passes only to a request for the same operation (see [`SignedOperation`]).
//!
//! Rows are forgotten `keep` after their window closed (so that instances whose clocks run
//! behind still find them). A reservation recorded later than that after its window closed may
//! have followed the forgetting of an earlier use, so it does not count: the request is refused
//! as stale.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ownid_bridge_store::{Claim, Reserve, SignatureLedger, StoreError, OPERATION_BITS};

use super::replay::clamp_ms;
use super::SignedOperation;
use crate::config::RetrySettings;
use crate::retry::retrying;

/// The longest a request holding a reservation runs before it is answered 503.
pub const HANDLER_DEADLINE: Duration = Duration::from_secs(10);

/// How long a reservation stays in flight before another instance may take it over.
const LEASE: Duration = Duration::from_secs(2 * HANDLER_DEADLINE.as_secs());

/// Why the shared guard refused a correctly signed request.
#[derive(Debug)]
pub enum SharedRefusal {
    /// The signature's request was answered: a replay (401).
    Replayed,
    /// Its request is being answered, here or by another instance (503, retry shortly).
    InFlight,
    /// The reservation was recorded so long after the window closed that an earlier use of the
    /// signature may have been forgotten meanwhile (401 `stale_timestamp`).
    Stale,
    /// The database did not answer (503).
    Store(StoreError),
}

/// The replay guard over a [`SignatureLedger`].
pub struct SharedGuard {
    ledger: Arc<dyn SignatureLedger>,
    retries: RetrySettings,
    /// How long after its window closed a signature is kept (`ownid.max_clock_skew`).
    keep: Duration,
}

impl std::fmt::Debug for SharedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedGuard").finish_non_exhaustive()
    }
}

impl SharedGuard {
    /// The guard over `ledger`; signatures are kept `keep` after their window closed.
    pub fn new(
        ledger: Arc<dyn SignatureLedger>,
        retries: RetrySettings,
        keep: Duration,
    ) -> Arc<Self> {
        Arc::new(SharedGuard {
            ledger,
            retries,
            keep,
        })
    }

    /// Reserves a verified signature whose timestamp leaves the window at `expires_ms`, sent to
    /// `operation`. Contention (two instances inserting one signature on Galera) is retried like
    /// any write.
    pub async fn reserve(
        self: &Arc<Self>,
        mac: &[u8],
        expires_ms: i128,
        now_ms: i128,
        operation: SignedOperation,
    ) -> Result<SharedReservation, SharedRefusal> {
        let signature = hex(mac);
        // The holder's low bits name the operation (see the ledger's documentation).
        let holder = (rand::random::<i64>() & !OPERATION_BITS) | operation as i64;
        let now = clamp_ms(now_ms);
        let reserve = Reserve {
            signature: &signature,
            expires_at_ms: clamp_ms(expires_ms),
            holder,
            lease_until_ms: now.saturating_add(LEASE.as_millis() as i64),
            now_ms: now,
        };
        let claim = retrying(&self.retries, "replay_guard", || {
            self.ledger.reserve(&reserve)
        })
        .await
        .map_err(SharedRefusal::Store)?;
        match claim {
            Claim::Reserved => {
                let reservation = SharedReservation {
                    guard: Arc::clone(self),
                    signature,
                    holder,
                    done: false,
                };
                // Forgetting removes a row only `keep` after its window closed, by the clock of
                // the instance that forgets: up to now, no earlier use of this signature can
                // have been forgotten. Past that, this row may stand where one was removed.
                if super::now_ms() > expires_ms + self.keep.as_millis() as i128 {
                    return Err(SharedRefusal::Stale);
                }
                Ok(reservation)
            }
            Claim::InFlight => Err(SharedRefusal::InFlight),
            Claim::Used => Err(SharedRefusal::Replayed),
        }
    }

    /// Forgets, every `every`, the signatures whose window closed more than `keep` ago (the
    /// clock check refuses them anyway; `keep` covers instances whose clocks run behind). Ends
    /// when the guard is dropped.
    pub fn forget_expired_every(self: &Arc<Self>, every: Duration) {
        let keep = self.keep;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let guard: Weak<SharedGuard> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(guard) = guard.upgrade() else { return };
                let before = clamp_ms(super::now_ms() - keep.as_millis() as i128);
                match guard.ledger.forget_expired(before).await {
                    Ok(forgotten) => {
                        tracing::debug!(forgotten, "forgot expired signatures (replay guard)")
                    }
                    Err(err) => tracing::warn!(
                        error = %err,
                        "could not forget expired signatures (replay guard); trying again later"
                    ),
                }
            }
        });
    }
}

/// A signature reserved in the ledger. [`SharedReservation::used`] or
/// [`SharedReservation::release`] ends it; dropped without either (the request future dropped),
/// it is released in the background.
pub struct SharedReservation {
    guard: Arc<SharedGuard>,
    signature: String,
    holder: i64,
    done: bool,
}

impl SharedReservation {
    /// The request was answered 2xx or 4xx: the signature is never accepted again. An error
    /// (or `false`: the lease passed and another request took the signature) means the answer
    /// must not be sent, since the signature could be accepted again.
    pub async fn used(mut self) -> Result<bool, StoreError> {
        self.done = true;
        let guard = &self.guard;
        retrying(&guard.retries, "replay_guard", || {
            guard.ledger.mark_used(&self.signature, self.holder)
        })
        .await
    }

    /// The request was answered 5xx: OwnID may send it again.
    pub async fn release(mut self) {
        self.done = true;
        release(&self.guard, &self.signature, self.holder).await;
    }
}

async fn release(guard: &SharedGuard, signature: &str, holder: i64) {
    let released = retrying(&guard.retries, "replay_guard", || {
        guard.ledger.release(signature, holder)
    })
    .await;
    if let Err(err) = released {
        // Fail closed: the signature stays in flight until its lease passes.
        tracing::warn!(error = %err, "could not release a signature (replay guard)");
    }
}

impl Drop for SharedReservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (guard, signature, holder) = (
            Arc::clone(&self.guard),
            std::mem::take(&mut self.signature),
            self.holder,
        );
        runtime.spawn(async move { release(&guard, &signature, holder).await });
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
