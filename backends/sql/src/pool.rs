//! The SQL backends' connection pool.
//!
//! sqlx's own pool pings every connection when it is handed back (`PoolConnection`'s
//! `return_to_pool`, a band-aid for statements cancelled halfway): one more round trip to the
//! database for every statement, a wake-up of the database process and of a pool task, and the
//! connection unavailable until the answer is in. On PostgreSQL that was a third of the work per
//! request (docs/benchmarks.md). This pool does without it, and stays as safe:
//!
//! * A connection goes back to the pool only when the statement it ran was seen through to its
//!   end, with a result or an error from the database itself ([`Pooled::settle`]). One dropped
//!   mid-statement (the request was cancelled, the client went away) or that failed on the wire
//!   is closed instead, so no connection with a half-read answer is ever handed out again.
//! * A connection idle for [`PING_IF_IDLE_FOR`] or longer is pinged before it is handed out; a
//!   dead one is dropped and the next one (or a new one) taken, unseen by the request. One in
//!   constant use is not pinged: the statement before proved it alive a moment ago.
//! * Waiting for a connection, including opening one, is bounded by the acquire timeout; opening
//!   one also by the connect timeout. Connections idle past the idle timeout are closed (down to
//!   the minimum, which is kept open), and none lives longer than [`MAX_LIFETIME`].
//!
//! Idle connections are reused most-recently-used first, so a light load keeps reusing a few warm
//! connections and the rest reach the idle timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ownid_bridge_store::PoolSettings;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle for less than this is handed out without a ping first (HikariCP's
/// `aliveBypassWindowMs` is the same idea, with the same 500 ms).
pub const PING_IF_IDLE_FOR: Duration = Duration::from_millis(500);

/// No connection is kept longer than this (sqlx's default too): a database behind a load
/// balancer or failing over sees connections move within half an hour.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How often idle connections are checked against the idle timeout and the minimum topped up.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// How long a graceful close (the driver's goodbye message) may take before the socket is just
/// dropped.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Opens one connection, ready for use (a backend's session settings applied).
pub type Connect<C> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<C, sqlx::Error>> + Send>> + Send + Sync>;

/// Opens connections with `options` as they are (a backend with session settings to apply writes
/// its own [`Connect`]).
pub fn connector<C: sqlx::Connection>(options: C::Options) -> Connect<C> {
    Arc::new(move || {
        let options = options.clone();
        Box::pin(async move { sqlx::ConnectOptions::connect(&options).await })
    })
}

/// A pool of connections of type `C` (`PgConnection`, `MySqlConnection`, `SqliteConnection`).
pub struct Pool<C: sqlx::Connection + 'static> {
    shared: Arc<Shared<C>>,
}

impl<C: sqlx::Connection + 'static> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<C: sqlx::Connection + 'static> {
    connect: Connect<C>,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle<C>>>,
    /// One permit per connection that may be in use.
    permits: Arc<Semaphore>,
    /// Connections open, idle or in use.
    open: Arc<AtomicU32>,
    max: u32,
    min: u32,
    connect_timeout: Duration,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
}

/// An open connection, counted in `open` for as long as it exists.
struct Live<C: sqlx::Connection + 'static> {
    raw: Option<C>,
    opened: Instant,
    open: Arc<AtomicU32>,
}

struct Idle<C: sqlx::Connection + 'static> {
    live: Live<C>,
    since: Instant,
}

impl<C: sqlx::Connection + 'static> Live<C> {
    fn new(raw: C, open: &Arc<AtomicU32>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Live {
            raw: Some(raw),
            opened: Instant::now(),
            open: Arc::clone(open),
        }
    }

    fn raw(&mut self) -> &mut C {
        self.raw.as_mut().expect("a live connection")
    }

    /// Closes the connection politely (the database sees a goodbye, not a dropped socket), in the
    /// background.
    fn retire(mut self) {
        if let (Some(raw), Ok(runtime)) = (self.raw.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_WITHIN, raw.close()).await;
            });
        }
    }
}

impl<C: sqlx::Connection + 'static> Drop for Live<C> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<C: sqlx::Connection + 'static> Drop for Shared<C> {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        for idle in idle {
            idle.live.retire();
        }
    }
}

impl<C: sqlx::Connection + 'static> Shared<C> {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle<C>>> {
        // The lock is only held for pushes and pops, which cannot panic halfway.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn open_one(&self) -> Result<Live<C>, sqlx::Error> {
        let raw = tokio::time::timeout(self.connect_timeout, (self.connect)())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Live::new(raw, &self.open))
    }

    /// Closes connections idle past the idle timeout (keeping `min` open) or past their lifetime.
    fn reap(&self) {
        let now = Instant::now();
        let gone = {
            let mut idle = self.idle();
            let mut open = self.open.load(Ordering::Relaxed);
            let mut kept = Vec::with_capacity(idle.len());
            let mut gone = Vec::new();
            // Least recently used first, so the warm connections at the end stay.
            for entry in idle.drain(..) {
                let too_old = now.duration_since(entry.live.opened) >= MAX_LIFETIME;
                let unused = open > self.min
                    && self
                        .idle_timeout
                        .is_some_and(|limit| now.duration_since(entry.since) >= limit);
                if too_old || unused {
                    open = open.saturating_sub(1);
                    gone.push(entry);
                } else {
                    kept.push(entry);
                }
            }
            *idle = kept;
            gone
        };
        for entry in gone {
            entry.live.retire();
        }
    }
}

impl<C: sqlx::Connection + 'static> Pool<C> {
    /// A pool of at most `max` connections, opened by `connect` when needed (none at first: the
    /// server starts, and answers 503, while the database is down). `settings` gives the
    /// minimum kept open and the timeouts. Must be called within a Tokio runtime: a task keeps
    /// the minimum open and closes idle connections, until the last clone of the pool is dropped.
    pub fn new(connect: Connect<C>, settings: &PoolSettings, max: u32) -> Self {
        let max = max.max(1);
        let shared = Arc::new(Shared {
            connect,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max as usize)),
            open: Arc::new(AtomicU32::new(0)),
            max,
            min: settings.min_connections.min(max),
            connect_timeout: settings.connect_timeout,
            acquire_timeout: settings.acquire_timeout,
            idle_timeout: settings.idle_timeout,
        });
        spawn_upkeep(Arc::downgrade(&shared));
        Pool { shared }
    }

    /// A connection, within the acquire timeout: an idle one (pinged first if it sat idle for
    /// [`PING_IF_IDLE_FOR`]) or a new one. Timing out is `sqlx::Error::PoolTimedOut`; failing
    /// to connect is the driver's error.
    pub async fn acquire(&self) -> Result<Pooled<C>, sqlx::Error> {
        tokio::time::timeout(self.shared.acquire_timeout, self.acquire_now())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }

    async fn acquire_now(&self) -> Result<Pooled<C>, sqlx::Error> {
        let permit = Arc::clone(&self.shared.permits)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        loop {
            let Some(Idle { mut live, since }) = self.shared.idle().pop() else {
                break;
            };
            if live.opened.elapsed() >= MAX_LIFETIME {
                live.retire();
                continue;
            }
            if since.elapsed() >= PING_IF_IDLE_FOR && live.raw().ping().await.is_err() {
                // Dead (the database restarted, a proxy cut it): dropped, try the next.
                continue;
            }
            return Ok(self.pooled(live, permit));
        }
        let live = self.shared.open_one().await?;
        Ok(self.pooled(live, permit))
    }

    fn pooled(&self, live: Live<C>, permit: OwnedSemaphorePermit) -> Pooled<C> {
        Pooled {
            live: Some(live),
            shared: Arc::clone(&self.shared),
            reusable: false,
            _permit: permit,
        }
    }

    /// A round trip to the database on a pooled connection.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.acquire().await?;
        let result = conn.ping().await;
        conn.settle(result)
    }

    /// Connections open, idle or in use.
    pub fn size(&self) -> u32 {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Connections open and idle.
    pub fn num_idle(&self) -> u32 {
        u32::try_from(self.shared.idle().len()).unwrap_or(u32::MAX)
    }

    /// The most connections this pool opens.
    pub fn max_connections(&self) -> u32 {
        self.shared.max
    }
}

fn spawn_upkeep<C: sqlx::Connection + 'static>(shared: Weak<Shared<C>>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.reap();
            // Top up to the minimum with free permits only, never taking one a request waits for
            // longer than opening a connection takes.
            while shared.open.load(Ordering::Relaxed) < shared.min {
                let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
                    break;
                };
                let Ok(live) = shared.open_one().await else {
                    break;
                };
                shared.idle().push(Idle {
                    live,
                    since: Instant::now(),
                });
                drop(permit);
            }
        }
    });
}

/// A connection taken from the pool. Run statements on it through `&mut *conn`, then pass each
/// statement's result through [`Pooled::settle`]: the connection goes back to the pool when it
/// is dropped only if the last statement settled ended cleanly (a result, or an error the
/// database answered with); otherwise, or when nothing was settled (the request was cancelled
/// mid-statement), it is closed.
pub struct Pooled<C: sqlx::Connection + 'static> {
    live: Option<Live<C>>,
    shared: Arc<Shared<C>>,
    reusable: bool,
    // Released after `drop` put the connection back, so the next waiter finds it.
    _permit: OwnedSemaphorePermit,
}

impl<C: sqlx::Connection + 'static> Pooled<C> {
    /// Records how a statement on this connection ended and passes its result on.
    pub fn settle<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        self.reusable = reusable_after(&result);
        result
    }
}

/// Whether a connection can run another statement after this result: yes after a result or an
/// error the database sent (the driver reads up to the end of that answer before the next
/// statement); no after an I/O, TLS or protocol error or anything else from the driver's side.
fn reusable_after<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Ok(_) | Err(sqlx::Error::Database(_)))
}

impl<C: sqlx::Connection + 'static> std::ops::Deref for Pooled<C> {
    type Target = C;

    fn deref(&self) -> &C {
        self.live
            .as_ref()
            .and_then(|live| live.raw.as_ref())
            .expect("a live connection")
    }
}

impl<C: sqlx::Connection + 'static> std::ops::DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.live.as_mut().expect("a live connection").raw()
    }
}

impl<C: sqlx::Connection + 'static> Drop for Pooled<C> {
    fn drop(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        if !self.reusable {
            // Dropped without a goodbye: its state is unknown.
            return;
        }
        if live.opened.elapsed() >= MAX_LIFETIME {
            live.retire();
            return;
        }
        self.shared.idle().push(Idle {
            live,
            since: Instant::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_statement_seen_to_its_end_leaves_a_connection_reusable() {
        assert!(reusable_after::<()>(&Ok(())));
        assert!(!reusable_after::<()>(&Err(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset)
        ))));
        assert!(!reusable_after::<()>(&Err(sqlx::Error::Protocol(
            "unexpected message".into()
        ))));
        assert!(!reusable_after::<()>(&Err(sqlx::Error::PoolTimedOut)));
    }
}
