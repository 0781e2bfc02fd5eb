//! PostgreSQL failover under steady writes: a primary with a synchronous standby
//! (`scripts/servers/postgres.sh start` and `standby`, which scripts/servers/with.sh runs), the server configured with a
//! libpq-style multi-host URL (`target_session_attrs=read-write`). The primary is killed with
//! SIGKILL, the standby promoted; the server keeps serving without a restart, answers only 204
//! and 503 in between, and loses no acknowledged write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;

const WRITERS: usize = 8;

/// What one writer saw: the last value acknowledged (204), the last one sent, and every status.
#[derive(Default)]
struct Writer {
    acknowledged: Option<u64>,
    sent: u64,
    statuses: Vec<(Instant, u16)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failover_keeps_serving_and_loses_no_acknowledged_write() {
    let _group = crate::common::exclusive("failover").await;
    let url = required_url("OWNID_TEST_PG_REPLICA_URL");
    let primary = ServerControl::from_env("postgres.sh", "OWNID_TEST_PG_PRIMARY_DIR");
    let standby = ServerControl::from_env("postgres.sh", "OWNID_TEST_PG_STANDBY_DIR");
    let dir = tempfile::tempdir().unwrap();
    let config = backend_config(
        "postgres",
        &url,
        "failover",
        &[
            ("OWNID_BRIDGE__STORAGE__POOL__CONNECT_TIMEOUT", "1s"),
            ("OWNID_BRIDGE__STORAGE__POOL__ACQUIRE_TIMEOUT", "2s"),
        ],
    );
    let store = storage::open(&config.storage, false).await.expect("open");
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema");
    let app = Arc::new(spawn_with_store(config, store, dir));
    for writer in 0..WRITERS {
        app.add_user(&format!("writer{writer}@example.com")).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
            tokio::spawn(async move {
                let login = format!("writer{writer}@example.com");
                let mut seen = Writer::default();
                while !stop.load(Ordering::SeqCst) {
                    seen.sent += 1;
                    let reply = app.set_data(&login, &seen.sent.to_string()).await;
                    seen.statuses.push((Instant::now(), reply.status));
                    match reply.status {
                        204 => seen.acknowledged = Some(seen.sent),
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    primary.run("kill", &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    standby.run("promote", &[]).await;
    let promoted = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    let mut writers = Vec::new();
    for task in tasks {
        writers.push(task.await.unwrap());
    }

    for (writer, seen) in writers.iter().enumerate() {
        let unexpected: Vec<u16> = seen
            .statuses
            .iter()
            .map(|(_, status)| *status)
            .filter(|status| !matches!(status, 204 | 503))
            .collect();
        assert!(unexpected.is_empty(), "writer {writer}: {unexpected:?}");
        assert!(
            seen.statuses
                .iter()
                .any(|(at, status)| *status == 204 && *at > promoted),
            "writer {writer} never wrote again after the promotion"
        );
        // Nothing acknowledged is lost: the stored value is the last acknowledged one, or a later
        // one that was written but not acknowledged (the connection died before the answer).
        let reply = app.get_data(&format!("writer{writer}@example.com")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let stored: u64 = reply.json()["ownIdData"].as_str().unwrap().parse().unwrap();
        let acknowledged = seen.acknowledged.expect("some write was acknowledged");
        assert!(
            (acknowledged..=seen.sent).contains(&stored),
            "writer {writer}: stored {stored}, acknowledged up to {acknowledged}, sent {}",
            seen.sent
        );
    }
    let failed: usize = writers
        .iter()
        .map(|seen| seen.statuses.iter().filter(|(_, s)| *s == 503).count())
        .sum();
    let total: usize = writers.iter().map(|seen| seen.statuses.len()).sum();
    println!("failover: {total} sets, {failed} answered 503 during the switch");
}
