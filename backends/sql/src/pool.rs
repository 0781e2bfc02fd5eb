//! The SQL backends' connection pool, on deadpool's `managed` pool.
//!
//! deadpool does the pooling: a semaphore of `max_connections` permits (a connection being opened
//! holds one too, so opening ones count against the maximum), idle connections reused
//! most-recently-used first, and a connection handed back without a round trip. What this module
//! adds is what the benchmarks in docs/benchmarks.md asked for on top:
//!
//! * No ping when a connection is handed back (sqlx's own pool pings every connection on its way
//!   back: one more round trip per statement, a third of the work per request on PostgreSQL). A
//!   connection idle for [`PING_IF_IDLE_FOR`] or longer is pinged before it is handed out
//!   instead (deadpool's `recycle`); a dead one is dropped and the next one (or a new one) taken,
//!   unseen by the request.
//! * Statements run through [`Pooled::run`], the only way to reach the driver's connection. It
//!   marks the connection unusable before the statement starts and usable again only when the
//!   statement was seen through to its end, with a result or an error from the database itself.
//!   A connection dropped mid-statement (the request was cancelled, the client went away) or that
//!   failed on the wire is closed instead of handed back, so no connection with a half-read
//!   answer is ever handed out again.
//! * Waiting for a connection, opening one included, is bounded by the acquire timeout; opening
//!   one also by the connect timeout; a refused connect is the driver's error at once. Connections
//!   idle past the idle timeout are closed (down to the minimum, which is kept open), and none
//!   lives longer than [`MAX_LIFETIME`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError, Timeouts};
use ownid_bridge_store::PoolSettings;

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

/// One pooled connection and when it was last handed back.
struct Slot<C: sqlx::Connection + 'static> {
    raw: Option<C>,
    idle_since: Instant,
}

impl<C: sqlx::Connection + 'static> Slot<C> {
    fn raw(&mut self) -> &mut C {
        self.raw.as_mut().expect("a pooled connection")
    }
}

impl<C: sqlx::Connection + 'static> Drop for Slot<C> {
    /// Closes the connection politely (the database sees a goodbye, not a dropped socket), in the
    /// background. A connection whose state is unknown is taken out of its slot first and just
    /// dropped (see [`Pooled`]'s `drop`).
    fn drop(&mut self) {
        if let (Some(raw), Ok(runtime)) = (self.raw.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_WITHIN, raw.close()).await;
            });
        }
    }
}

/// How deadpool opens and checks connections.
struct Manager<C: sqlx::Connection + 'static> {
    connect: Connect<C>,
    connect_timeout: Duration,
}

impl<C: sqlx::Connection + 'static> managed::Manager for Manager<C> {
    type Type = Slot<C>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Slot<C>, sqlx::Error> {
        let raw = tokio::time::timeout(self.connect_timeout, (self.connect)())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Slot {
            raw: Some(raw),
            idle_since: Instant::now(),
        })
    }

    /// Before an idle connection is handed out: too old is closed; idle long enough to have been
    /// cut (the database restarted, a proxy timed it out) is pinged first. A connection used a
    /// moment ago is handed out as it is: its last statement proved it alive.
    async fn recycle(
        &self,
        slot: &mut Slot<C>,
        metrics: &Metrics,
    ) -> Result<(), RecycleError<sqlx::Error>> {
        if metrics.age() >= MAX_LIFETIME {
            return Err(RecycleError::message("past its maximum lifetime"));
        }
        if slot.idle_since.elapsed() >= PING_IF_IDLE_FOR {
            slot.raw().ping().await?;
        }
        Ok(())
    }
}

type Deadpool<C> = managed::Pool<Manager<C>>;

/// How a pool's statements run.
#[derive(Clone)]
enum Mode {
    /// On the connection as they are.
    Direct,
    /// Each in a transaction of its own (see [`Pool::new_in_transactions`]), opened with `begin`
    /// (`BEGIN` and settings for the transaction), or sqlx's own `BEGIN` when `None`.
    InTransactions { begin: Option<Arc<str>> },
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
    pool: Deadpool<C>,
    mode: Mode,
    min: u32,
    acquire_timeout: Duration,
    idle_timeout: Option<Duration>,
}

impl<C: sqlx::Connection + 'static> Drop for Shared<C> {
    /// The last clone of the pool is gone: the idle connections are closed politely (connections
    /// in use are dropped when they are handed back).
    fn drop(&mut self) {
        self.pool.retain(|_, _| false);
        self.pool.close();
    }
}

impl<C: sqlx::Connection + 'static> Pool<C> {
    /// A pool of at most `max` connections, opened by `connect` when needed (none at first: the
    /// server starts, and answers 503, while the database is down). `settings` gives the
    /// minimum kept open and the timeouts. Must be called within a Tokio runtime: a task keeps
    /// the minimum open and closes idle connections, until the last clone of the pool is dropped.
    pub fn new(connect: Connect<C>, settings: &PoolSettings, max: u32) -> Self {
        Self::build(connect, settings, max, Mode::Direct)
    }

    fn build(connect: Connect<C>, settings: &PoolSettings, max: u32, mode: Mode) -> Self {
        let max = max.max(1);
        let manager = Manager {
            connect,
            connect_timeout: settings.connect_timeout,
        };
        let pool = Deadpool::builder(manager)
            .max_size(max as usize)
            .queue_mode(QueueMode::Lifo)
            .build()
            .expect("a pool without deadpool's own timeouts needs no runtime");
        let shared = Arc::new(Shared {
            pool,
            mode,
            min: settings.min_connections.min(max),
            acquire_timeout: settings.acquire_timeout,
            idle_timeout: settings.idle_timeout,
        });
        spawn_upkeep(Arc::downgrade(&shared));
        Pool { shared }
    }

    /// [`Pool::new`], but every statement runs in a transaction of its own (BEGIN, the
    /// statement, COMMIT), for a transaction-mode connection pooler in front of the database
    /// (PgBouncer's `pool_mode = transaction`, Supavisor, PgCat, RDS Proxy): it hands each
    /// transaction to whichever server connection is free, so a statement prepared and then
    /// executed in two round trips outside a transaction may meet a server that never saw it.
    /// `begin` opens each transaction when given (`BEGIN; SET LOCAL ...`: session settings would
    /// stay on a server connection the pooler hands to others), in the same round trip.
    pub fn new_in_transactions(
        connect: Connect<C>,
        settings: &PoolSettings,
        max: u32,
        begin: Option<String>,
    ) -> Self {
        Self::build(
            connect,
            settings,
            max,
            Mode::InTransactions {
                begin: begin.map(Arc::from),
            },
        )
    }

    /// Whether statements run in transactions of their own ([`Pool::new_in_transactions`]).
    pub fn runs_in_transactions(&self) -> bool {
        matches!(self.shared.mode, Mode::InTransactions { .. })
    }

    /// A connection, within the acquire timeout: an idle one (pinged first if it sat idle for
    /// [`PING_IF_IDLE_FOR`]) or a new one. Timing out is `sqlx::Error::PoolTimedOut`; failing
    /// to connect is the driver's error.
    pub async fn acquire(&self) -> Result<Pooled<C>, sqlx::Error> {
        let object = tokio::time::timeout(self.shared.acquire_timeout, self.shared.pool.get())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|err| match err {
                PoolError::Backend(err) => err,
                PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
                _ => sqlx::Error::PoolClosed,
            })?;
        Ok(Pooled {
            object: Some(object),
            reusable: false,
            mode: self.shared.mode.clone(),
        })
    }

    /// A round trip to the database on a pooled connection.
    pub async fn ping(&self) -> Result<(), sqlx::Error>
    where
        C::Database: sqlx::Database<Connection = C>,
    {
        self.acquire()
            .await?
            .run(async |conn| conn.ping().await)
            .await
    }

    /// Connections open, idle or in use.
    pub fn size(&self) -> u32 {
        u32::try_from(self.shared.pool.status().size).unwrap_or(u32::MAX)
    }

    /// Connections open and idle.
    pub fn num_idle(&self) -> u32 {
        u32::try_from(self.shared.pool.status().available).unwrap_or(u32::MAX)
    }

    /// The most connections this pool opens.
    pub fn max_connections(&self) -> u32 {
        u32::try_from(self.shared.pool.status().max_size).unwrap_or(u32::MAX)
    }
}

impl<C: sqlx::Connection + 'static> Shared<C> {
    /// Closes connections idle past the idle timeout (keeping `min` open) or past their lifetime.
    /// deadpool keeps the least recently used first, so the warm connections at the end stay.
    fn reap(&self) {
        let mut open = self.pool.status().size;
        let min = self.min as usize;
        let idle_timeout = self.idle_timeout;
        // The removed slots close their connections as they are dropped.
        drop(self.pool.retain(|slot, metrics| {
            let too_old = metrics.age() >= MAX_LIFETIME;
            let unused =
                open > min && idle_timeout.is_some_and(|limit| slot.idle_since.elapsed() >= limit);
            if too_old || unused {
                open -= 1;
            }
            !(too_old || unused)
        }));
    }

    /// Opens connections up to the minimum, with free permits only: never taking one a request
    /// waits for.
    async fn top_up(&self) {
        let now = Timeouts {
            wait: Some(Duration::ZERO),
            ..Timeouts::new()
        };
        let mut held = Vec::new();
        while self.pool.status().size < self.min as usize {
            match self.pool.timeout_get(&now).await {
                Ok(object) => held.push(object),
                Err(_) => break,
            }
        }
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
            shared.top_up().await;
        }
    });
}

/// A connection taken from the pool. Statements run on it through [`Pooled::run`]; when it is
/// dropped it goes back to the pool only if the last statement ran to its end (a result, or an
/// error the database answered with). Otherwise, or when no statement ran, it is closed.
pub struct Pooled<C: sqlx::Connection + 'static> {
    object: Option<Object<Manager<C>>>,
    reusable: bool,
    mode: Mode,
}

impl<C: sqlx::Connection + 'static> Pooled<C> {
    /// Runs `statement` on the connection and records how it ended: until it returns, the
    /// connection counts as mid-statement, so a statement cancelled halfway (its future dropped)
    /// leaves it to be closed, whatever the statements before it did.
    pub async fn run<T>(
        &mut self,
        statement: impl AsyncFnOnce(&mut C) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error>
    where
        C::Database: sqlx::Database<Connection = C>,
    {
        self.reusable = false;
        let object = self.object.as_mut().expect("a pooled connection");
        let result = match &self.mode {
            Mode::InTransactions { begin } => {
                in_transaction(object.raw(), begin.as_ref(), statement).await
            }
            Mode::Direct => statement(object.raw()).await,
        };
        self.reusable = reusable_after(&result);
        result
    }
}

/// `statement` between BEGIN (or `begin`) and COMMIT (ROLLBACK when it failed; a failed rollback
/// is the error then, so that the connection is not reused).
async fn in_transaction<C, T>(
    conn: &mut C,
    begin: Option<&Arc<str>>,
    statement: impl AsyncFnOnce(&mut C) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error>
where
    C: sqlx::Connection,
    C::Database: sqlx::Database<Connection = C>,
{
    let mut transaction = match begin {
        Some(begin) => {
            conn.begin_with(sqlx::AssertSqlSafe(Arc::clone(begin)))
                .await?
        }
        None => conn.begin().await?,
    };
    match statement(&mut *transaction).await {
        Ok(value) => {
            transaction.commit().await?;
            Ok(value)
        }
        Err(err) => {
            transaction.rollback().await?;
            Err(err)
        }
    }
}

/// Whether a connection can run another statement after this result: yes after a result or an
/// error the database sent (the driver reads up to the end of that answer before the next
/// statement); no after an I/O, TLS or protocol error or anything else from the driver's side.
fn reusable_after<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Ok(_) | Err(sqlx::Error::Database(_)))
}

impl<C: sqlx::Connection + 'static> Drop for Pooled<C> {
    fn drop(&mut self) {
        let Some(mut object) = self.object.take() else {
            return;
        };
        if !self.reusable {
            // Its state is unknown: out of the pool, and dropped without a goodbye.
            drop(Object::take(object).raw.take());
            return;
        }
        if Object::metrics(&object).age() >= MAX_LIFETIME {
            // Closed politely as its slot is dropped.
            drop(Object::take(object));
            return;
        }
        // Handed back to the pool as `object` is dropped.
        object.idle_since = Instant::now();
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
