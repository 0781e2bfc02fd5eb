//! The replay guard: each correctly signed request accepted once within its clock-skew window.

use std::sync::Arc;

use super::SignedOperation;

/// The length of an HMAC-SHA256 signature, the replay guard's key.
pub(super) const MAC_LEN: usize = 32;

/// Why the replay guard refused a correctly signed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// The signature was accepted before, or a request carrying it is being answered now.
    Replayed,
    /// The timestamp left the window while the request was arriving, and the guard may already
    /// have forgotten the signature's earlier use: refused rather than taken on trust.
    Stale,
    /// The guard holds `capacity` signatures still inside their window (fail closed: 503).
    Full,
}

/// Signatures of correctly signed requests, each remembered until its timestamp leaves the
/// clock-skew window (`ownid-timestamp + max_clock_skew`; after that the clock check refuses the
/// signature anyway). Per process: see docs/operating.md ("Several instances").
///
/// A signature is reserved when it verifies ("in flight"), marked used when the operation answers
/// 2xx or 4xx, and released when it answers 5xx or the request is dropped before its answer
/// (the client went away), so that OwnID may retry it. It is never accepted twice with a 2xx or
/// 4xx answer in between, and never for another operation than the one it first came to.
///
/// Bounded: at most `capacity` entries; when full, a new signature is refused (never an entry
/// inside its window forgotten). Expired entries leave through a min-heap on their expiry, so
/// each request does O(log n) work under one mutex.
pub struct ReplayGuard {
    state: std::sync::Mutex<GuardState>,
    pub(super) capacity: usize,
}

#[derive(Default)]
struct GuardState {
    entries: std::collections::HashMap<[u8; MAC_LEN], Entry>,
    /// One item per entry: (expiry, signature), soonest first.
    expiries: std::collections::BinaryHeap<std::cmp::Reverse<(i64, [u8; MAC_LEN])>>,
    /// The latest expiry removed so far: a signature expiring then or earlier may have been
    /// accepted and forgotten, so it cannot be told apart from a new one.
    forgotten_through: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EntryState {
    InFlight,
    Used,
    /// Answered 5xx or dropped before its answer: may be reserved again.
    Released,
}

#[derive(Clone, Copy)]
struct Entry {
    state: EntryState,
    operation: SignedOperation,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("entries", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            state: Default::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves a verified signature that expires at `expires_ms`, sent to `operation`.
    /// `now_ms` is the clock reading the request's timestamp was last checked against (once its
    /// body had arrived): every request whose timestamp was inside the window then finds the
    /// entry (or is refused as stale).
    pub fn reserve(
        self: &Arc<Self>,
        mac: &[u8],
        expires_ms: i128,
        now_ms: i128,
        operation: SignedOperation,
    ) -> Result<Reservation, ReplayRefusal> {
        let mac: [u8; MAC_LEN] = mac.try_into().map_err(|_| ReplayRefusal::Replayed)?;
        let expires = clamp_ms(expires_ms);
        let now = clamp_ms(now_ms);
        let mut state = self.lock();
        // Forget what expired before this request's start (never later than it).
        while let Some(std::cmp::Reverse((expiry, key))) = state.expiries.peek().copied() {
            if expiry >= now {
                break;
            }
            state.expiries.pop();
            state.entries.remove(&key);
            state.forgotten_through = state.forgotten_through.max(Some(expiry));
        }
        if state
            .forgotten_through
            .is_some_and(|through| expires <= through)
        {
            return Err(ReplayRefusal::Stale);
        }
        let full = state.entries.len() >= self.capacity;
        match state.entries.get_mut(&mac) {
            Some(entry) if entry.state == EntryState::Released && entry.operation == operation => {
                entry.state = EntryState::InFlight;
            }
            Some(_) => return Err(ReplayRefusal::Replayed),
            None if full => return Err(ReplayRefusal::Full),
            None => {
                state.entries.insert(
                    mac,
                    Entry {
                        state: EntryState::InFlight,
                        operation,
                    },
                );
                state.expiries.push(std::cmp::Reverse((expires, mac)));
            }
        }
        Ok(Reservation {
            guard: self.clone(),
            mac,
            done: false,
        })
    }

    fn finish(&self, mac: &[u8; MAC_LEN], to: EntryState) {
        if let Some(entry) = self.lock().entries.get_mut(mac) {
            if entry.state == EntryState::InFlight {
                entry.state = to;
            }
        }
    }

    /// Signatures held (in flight, used, or released and not yet expired).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(super) fn clamp_ms(ms: i128) -> i64 {
    ms.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A signature reserved by [`ReplayGuard::reserve`]. [`Reservation::used`] marks it used;
/// dropped without that (a 5xx answer, or the request future dropped), it is released.
pub struct Reservation {
    guard: Arc<ReplayGuard>,
    mac: [u8; MAC_LEN],
    done: bool,
}

impl Reservation {
    /// The request was answered (2xx or 4xx): the signature is never accepted again.
    pub fn used(mut self) {
        self.done = true;
        self.guard.finish(&self.mac, EntryState::Used);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.guard.finish(&self.mac, EntryState::Released);
        }
    }
}
