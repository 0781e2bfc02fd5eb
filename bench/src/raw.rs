//! `raw`: the server's own data path (its `UserStore`, opened as the server opens it), without
//! HTTP.
//!
//! Each backend's store runs the very statements the server prepares, through the same pools
//! (connection settings, SQLite's reader cap) and the same error mapping. What is left out is
//! exactly the HTTP server: parsing, signature check, JSON, routing, logging and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ownid_bridge::cli::Operation;
use ownid_bridge::config::{Backend, StorageConfig};
use ownid_bridge::secret::DatabaseUrl;
use ownid_bridge::storage;
use ownid_bridge_store::{PoolSettings, UserStore};

use crate::{login_id, ownid_data, BoxError, Rng};

pub struct RawOptions {
    pub backend: Backend,
    pub url: String,
    pub users: u64,
    pub op: Operation,
    pub concurrency: u32,
    pub pool: u32,
    pub seconds: f64,
    pub warmup: f64,
}

/// The store the server would open for `options` (`storage::open`, defaults for everything but
/// the backend, the URL and the pool), with a pool of `options.pool` connections and a longer
/// wait for one.
async fn open_store(options: &RawOptions) -> Result<Arc<dyn UserStore>, BoxError> {
    let config = StorageConfig {
        backend: options.backend,
        url: DatabaseUrl::new(options.url.clone()),
        pool: PoolSettings {
            max_connections: options.pool,
            acquire_timeout: Duration::from_secs(30),
            ..PoolSettings::default()
        },
        ..StorageConfig::default()
    };
    Ok(storage::open(&config, false).await?)
}

/// One operation of the data path; a seeded user that is missing, or has no data, is an error.
async fn call(
    store: &dyn UserStore,
    op: Operation,
    login: &str,
    value: &str,
) -> Result<(), String> {
    match op {
        Operation::GetOwnIdDataByLoginId => {
            let data = store
                .get_ownid_data(login)
                .await
                .map_err(|err| err.to_string())?;
            data.map(drop).ok_or_else(|| "no ownIdData".to_owned())
        }
        Operation::SetOwnIdDataByLoginId => store
            .set_ownid_data(login, value, false)
            .await
            .map(drop)
            .map_err(|err| err.to_string()),
        Operation::GetSessionByLoginId => store
            .get_session_user(login)
            .await
            .map(drop)
            .map_err(|err| err.to_string()),
    }
}

/// What one task measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

pub async fn run(options: RawOptions) -> Result<(), BoxError> {
    let store = open_store(&options).await?;
    // Distinct 1 KB values to write, like the pre-signed set requests carry.
    let values: Arc<Vec<String>> = Arc::new((0..64).map(|i| ownid_data(1_000_000 + i)).collect());
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(options.warmup.max(0.0));
    let until = measure_from + Duration::from_secs_f64(options.seconds.max(0.1));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..options.concurrency {
        let store = Arc::clone(&store);
        let values = Arc::clone(&values);
        let (op, users) = (options.op, options.users);
        tasks.spawn(async move {
            let mut rng = Rng::new(u64::from(task) * 7919 + 17);
            let mut tally = Tally::default();
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let login = login_id(rng.below(users));
                let value = &values[rng.below(values.len() as u64) as usize];
                // A statement still running at the end of the window is abandoned, as wrk
                // abandons its requests in flight.
                let deadline = tokio::time::Instant::from_std(until);
                let Ok(result) =
                    tokio::time::timeout_at(deadline, call(&*store, op, &login, value)).await
                else {
                    break;
                };
                let done = Instant::now();
                // Counted when it completes inside the measured window, as wrk counts.
                if done >= measure_from && done < until {
                    let micros = done.duration_since(sent).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    if let Err(err) = result {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(err);
                    }
                }
            }
            tally
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(tally) = tasks.join_next().await {
        let tally = tally?;
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    if let Some(err) = first_error {
        eprintln!("ownid-bench raw: {errors} errors, the first: {err}");
    }
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    let window = until.duration_since(measure_from).as_secs_f64();
    let round = |x: f64, digits: i32| {
        let scale = 10f64.powi(digits);
        (x * scale).round() / scale
    };
    println!(
        "{}",
        serde_json::json!({
            "rps": round(latencies.len() as f64 / window, 1),
            "p50_ms": round(percentile(50.0), 3),
            "p99_ms": round(percentile(99.0), 3),
            "errors": errors,
        })
    );
    Ok(())
}
