//! Load: 10,000 `setOwnIDDataByLoginId` over 256 concurrent connections to the real server (in
//! process, over TCP) on PostgreSQL, with the default pool settings. Every answer must be 204 (no
//! 5xx, in particular no 503 from a pool that cannot keep up), and every value must be stored
//! afterwards, as read back with SQL. Throughput is printed, never asserted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{backend_config, fresh_timestamp, serve_tcp, sign};
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;

const SETS: usize = 10_000;
const CONNECTIONS: usize = 256;

fn login(index: usize) -> String {
    format!("load-{index:05}@example.com")
}

fn value(run: &str, index: usize) -> String {
    // About the size of real ownIdData (1-5 KB).
    format!("{run}:{index:05}:{}", "d".repeat(1024))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_sets_over_256_connections_on_postgres() {
    let _group = crate::common::exclusive("load").await;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let config = backend_config(
        "postgres",
        &url,
        "load",
        &[
            ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            // All 256 connections come from one address (loopback), as from one OwnID host; the
            // default share of one address is an eighth of max_connections (64).
            ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS_PER_ADDRESS", "256"),
        ],
    );
    let table = config.storage.users.table.clone();
    let pool = config.storage.pool.clone();
    let store = storage::open(&config.storage, false)
        .await
        .expect("open the store");
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema");

    // The users, in one statement.
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    // The table name is ours (a UUID), so building the statement with it is safe.
    let created = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO \"{table}\" (login_id) \
         SELECT 'load-' || lpad(g::text, 5, '0') || '@example.com' \
         FROM generate_series(0, $1) AS g"
    )))
    .bind(SETS as i64 - 1)
    .execute(&db)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(created, SETS as u64);

    let (addr, server) = serve_tcp(config, store).await;
    let endpoint = format!("http://{addr}/ownid/setOwnIDDataByLoginId");

    // 256 tasks, each with a client of its own that keeps one connection: 256 connections, each
    // sending its requests one after another. The tasks take the next user until all are done.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(CONNECTIONS + 1));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (next, barrier, endpoint, run) =
                (next.clone(), barrier.clone(), endpoint.clone(), run.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut answers = Vec::new();
                barrier.wait().await;
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= SETS {
                        return answers;
                    }
                    let body = serde_json::json!({
                        "loginId": login(index),
                        "ownIdData": value(&run, index),
                    })
                    .to_string();
                    let timestamp = fresh_timestamp();
                    let signature = sign(&body, &timestamp);
                    let started = Instant::now();
                    let answer = client
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .header("ownid-timestamp", &timestamp)
                        .header("ownid-signature", signature)
                        .body(body)
                        .send()
                        .await;
                    let status = match answer {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status.to_string()
                        }
                        Err(err) => format!("client error: {err}"),
                    };
                    answers.push((index, status, started.elapsed()));
                }
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("a client task panicked"));
    }
    let took = started.elapsed();
    assert!(!server.is_finished(), "the server stopped");

    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, status, _) in &answers {
        *statuses.entry(status.as_str()).or_default() += 1;
    }
    let mut latencies: Vec<Duration> = answers.iter().map(|(_, _, latency)| *latency).collect();
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "load: {SETS} sets over {CONNECTIONS} connections in {:.2} s: {:.0} requests/s; latency \
         p50 {:?}, p99 {:?}, max {:?}; pool max_connections {}, acquire_timeout {:?}; statuses \
         {statuses:?}",
        took.as_secs_f64(),
        SETS as f64 / took.as_secs_f64(),
        percentile(50),
        percentile(99),
        latencies.last().unwrap(),
        pool.max_connections,
        pool.acquire_timeout,
    );
    assert_eq!(answers.len(), SETS);
    let not_204: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| status != "204")
        .take(20)
        .collect();
    assert!(
        not_204.is_empty(),
        "answers other than 204 ({statuses:?}), the first ones: {not_204:?}"
    );

    // Every value, read back from the table itself.
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT login_id, ownid_data FROM \"{table}\""
    )))
    .fetch_all(&db)
    .await
    .unwrap();
    let stored: HashMap<String, Option<String>> = rows.into_iter().collect();
    assert_eq!(stored.len(), SETS);
    let wrong: Vec<String> = (0..SETS)
        .filter(|&index| stored.get(&login(index)) != Some(&Some(value(&run, index))))
        .map(login)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {SETS} values are not stored as sent, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    println!("load: all {SETS} values stored");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE \"{table}\"")))
        .execute(&db)
        .await
        .unwrap();
}
