//! The SQL backends' pool (`ownid_bridge_sql::Pool`), on SQLite connections: which connections
//! go back to the pool and which are closed, and the bounds on waiting and connecting.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ownid_bridge_sql::{Connect, Pool};
use ownid_bridge_store::PoolSettings;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::ConnectOptions;

/// A statement that keeps SQLite busy for seconds.
const SLOW: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) \
                    SELECT count(*) FROM n WHERE i < 1000000000";

struct Fixture {
    _dir: tempfile::TempDir,
    connects: Arc<AtomicUsize>,
    connect: Connect<SqliteConnection>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::from_str(&format!(
        "sqlite://{}",
        dir.path().join("pool.db").display()
    ))
    .unwrap()
    .create_if_missing(true);
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connects);
    let connect: Connect<SqliteConnection> = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let options = options.clone();
        Box::pin(async move { options.connect().await })
    });
    Fixture {
        _dir: dir,
        connects,
        connect,
    }
}

impl Fixture {
    /// A pool of at most `max` connections to the fixture's file, default settings otherwise.
    fn pool(&self, acquire_timeout: Duration, max: u32) -> Pool<SqliteConnection> {
        let settings = PoolSettings {
            acquire_timeout,
            ..PoolSettings::default()
        };
        Pool::new(Arc::clone(&self.connect), &settings, max)
    }
}

async fn select_one(pool: &Pool<SqliteConnection>) {
    let mut conn = pool.acquire().await.unwrap();
    conn.run(async |conn| sqlx::query("SELECT 1").execute(conn).await)
        .await
        .unwrap();
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_settled_connection_is_reused_and_one_left_unsettled_is_closed() {
    let fixture = fixture();
    let pool = fixture.pool(Duration::from_secs(3), 4);
    assert_eq!(pool.size(), 0, "nothing is opened before it is needed");

    for _ in 0..5 {
        select_one(&pool).await;
    }
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 1);
    assert_eq!((pool.size(), pool.num_idle()), (1, 1));

    // An error the database answered with leaves the connection usable.
    let mut conn = pool.acquire().await.unwrap();
    let result = conn
        .run(async |conn| {
            sqlx::query("SELECT * FROM no_such_table")
                .execute(conn)
                .await
        })
        .await;
    assert!(matches!(result, Err(sqlx::Error::Database(_))));
    drop(conn);
    assert_eq!((pool.size(), pool.num_idle()), (1, 1));
    select_one(&pool).await;
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 1);

    // Taken and dropped without a settled statement: its state is unknown, so it is closed.
    let conn = pool.acquire().await.unwrap();
    assert_eq!((pool.size(), pool.num_idle()), (1, 0));
    drop(conn);
    assert_eq!((pool.size(), pool.num_idle()), (0, 0));
    select_one(&pool).await;
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_statement_cancelled_halfway_closes_its_connection() {
    let fixture = fixture();
    let pool = fixture.pool(Duration::from_secs(3), 4);
    select_one(&pool).await;
    let cancelled = tokio::time::timeout(Duration::from_millis(100), async {
        let mut conn = pool.acquire().await.unwrap();
        conn.run(async |conn| sqlx::query(SLOW).execute(conn).await)
            .await
            .map(|_| ())
    })
    .await;
    assert!(
        cancelled.is_err(),
        "the slow statement finished: {cancelled:?}"
    );
    assert_eq!((pool.size(), pool.num_idle()), (0, 0));
    // The next request gets a new connection, not the one with a statement still running.
    select_one(&pool).await;
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn waiting_for_a_connection_ends_at_the_acquire_timeout() {
    let fixture = fixture();
    let pool = fixture.pool(Duration::from_millis(300), 2);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(pool.acquire().await.unwrap());
    }
    let started = Instant::now();
    let result = pool.acquire().await;
    assert!(
        matches!(result, Err(sqlx::Error::PoolTimedOut)),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(pool.size(), 2, "never more than the maximum");

    // A waiter gets the connection handed back.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { select_one(&pool).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut conn = held.pop().unwrap();
    conn.run(async |conn| sqlx::query("SELECT 1").execute(conn).await)
        .await
        .unwrap();
    drop(conn);
    waiter.await.unwrap();
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_or_hanging_connect_is_an_error_and_counts_nothing() {
    let refused: Connect<SqliteConnection> = Arc::new(|| {
        Box::pin(async {
            Err(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )))
        })
    });
    let pool = Pool::new(refused, &PoolSettings::default(), 2);
    let started = Instant::now();
    assert!(matches!(pool.acquire().await, Err(sqlx::Error::Io(_))));
    assert!(
        started.elapsed() < PoolSettings::default().acquire_timeout,
        "a refused connection is reported at once, not retried until the acquire timeout"
    );
    assert_eq!(pool.size(), 0);

    let hanging: Connect<SqliteConnection> =
        Arc::new(|| Box::pin(std::future::pending::<Result<SqliteConnection, sqlx::Error>>()));
    let settings = PoolSettings {
        connect_timeout: Duration::from_millis(200),
        acquire_timeout: Duration::from_secs(30),
        ..PoolSettings::default()
    };
    let pool = Pool::new(hanging, &settings, 2);
    let started = Instant::now();
    assert!(matches!(
        pool.acquire().await,
        Err(sqlx::Error::PoolTimedOut)
    ));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(pool.size(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout_down_to_the_minimum() {
    let fixture = fixture();
    let settings = PoolSettings {
        min_connections: 1,
        idle_timeout: Some(Duration::from_secs(1)),
        ..PoolSettings::default()
    };
    let pool = Pool::new(Arc::clone(&fixture.connect), &settings, 4);
    eventually("the minimum is opened", || pool.size() == 1).await;

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        conn.run(async |conn| sqlx::query("SELECT 1").execute(conn).await)
            .await
            .unwrap();
        held.push(conn);
    }
    assert_eq!(pool.size(), 3);
    drop(held);
    assert_eq!((pool.size(), pool.num_idle()), (3, 3));
    eventually("idle connections are closed", || pool.size() == 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pool.size(), 1, "the minimum stays open");
    select_one(&pool).await;
}

/// A statement that finished does not vouch for the next one: cancelled halfway, it leaves the
/// connection to be closed (the hand-written pool kept the first statement's "reusable" and put
/// the connection back with the slow statement still running).
#[tokio::test]
async fn a_statement_cancelled_after_a_finished_one_still_closes_its_connection() {
    let fixture = fixture();
    let pool = fixture.pool(Duration::from_secs(3), 4);
    let mut conn = pool.acquire().await.unwrap();
    conn.run(async |conn| sqlx::query("SELECT 1").execute(conn).await)
        .await
        .unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        conn.run(async |conn| sqlx::query(SLOW).execute(conn).await),
    )
    .await;
    assert!(cancelled.is_err(), "the slow statement finished");
    drop(conn);
    assert_eq!((pool.size(), pool.num_idle()), (0, 0));
    select_one(&pool).await;
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 2);
}

/// Connections being opened hold their place in the maximum, whether a request or the upkeep
/// task (topping up to the minimum) opens them.
#[tokio::test]
async fn connections_being_opened_count_against_the_maximum() {
    let fixture = fixture();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let slow: Connect<SqliteConnection> = {
        let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
        let connect = Arc::clone(&fixture.connect);
        Arc::new(move || {
            let (in_flight, peak, connect) = (
                Arc::clone(&in_flight),
                Arc::clone(&peak),
                Arc::clone(&connect),
            );
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let conn = connect().await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                conn
            })
        })
    };
    let settings = PoolSettings {
        min_connections: 2,
        ..PoolSettings::default()
    };
    let pool = Pool::new(slow, &settings, 2);
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { select_one(&pool).await })
        })
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    // Let the upkeep task run too (it ticks every second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    select_one(&pool).await;
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(fixture.connects.load(Ordering::SeqCst), 2);
    assert_eq!(pool.size(), 2);
}
