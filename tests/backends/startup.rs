//! `serve` started before its database (Compose, Kubernetes): it waits `storage.startup_wait` for
//! an unreachable database, answering `/healthz` and a not-ready `/readyz` meanwhile, and gives up
//! with exit status 2 when the wait runs out, or at once for what waiting cannot fix.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{free_port, read_stderr, JWT_SECRET, SECRET};
use ownid_bridge_store::outage::{required_url, server_addr, with_server, OutageProxy};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A password the test database does not ask for (trust authentication), to see that it never
/// reaches the log.
const PASSWORD: &str = "never-logged-pw";

/// A configuration on PostgreSQL at `url`, listening on `port`, waiting `wait` at start-up.
fn write_config(dir: &Path, url: &str, port: u16, wait: &str) -> PathBuf {
    let path = dir.join("ownid-bridge.yaml");
    let table = format!("startup_{}", uuid::Uuid::new_v4().simple());
    let yaml = format!(
        "server:\n  listen: \"127.0.0.1:{port}\"\n\
         ownid:\n  shared_secret: \"{SECRET}\"\n\
         session:\n  secret: \"{JWT_SECRET}\"\n\
         storage:\n  backend: postgres\n  url: \"{url}\"\n  create_demo_table: true\n  \
         startup_wait: \"{wait}\"\n  users: {{ table: {table} }}\n  \
         pool: {{ connect_timeout: \"1s\", acquire_timeout: \"1s\" }}\n"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn serve(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("OWNID_BRIDGE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The status of `GET path`, or `None` while nothing answers.
async fn status(port: u16, path: &str) -> Option<u16> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// The URL of the test database with [`PASSWORD`] in it, through `proxy`.
fn url_through(proxy: &OutageProxy, url: &str) -> String {
    let url = with_server(url, proxy.addr());
    url.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1)
}

#[tokio::test]
async fn serve_waits_for_the_database_and_is_ready_once_it_answers() {
    let _group = crate::common::exclusive("startup").await;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let proxy = OutageProxy::start(server_addr(&url).await).await.unwrap();
    proxy.down().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &url_through(&proxy, &url), port, "60s");
    let mut child = serve(&config);

    // Up, but not ready: the database is unreachable.
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(port, "/healthz").await != Some(200) {
        assert!(Instant::now() < deadline, "/healthz never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(port, "/readyz").await, Some(503));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(port, "/readyz").await, Some(503));
    assert!(child.try_wait().unwrap().is_none(), "serve gave up");
    // An OwnID call now is answered 503, and the log says so.
    let call = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/ownid/getOwnIDDataByLoginId"
        ))
        .body(r#"{"loginId": "early@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(call.status().as_u16(), 503);

    proxy.up().await.unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("not ready within 30 s of the database coming back")
        .unwrap()
        .expect("serve exited");
    assert!(first.contains("listening on"), "{first}");
    assert_eq!(status(port, "/readyz").await, Some(200));
    assert_eq!(status(port, "/healthz").await, Some(200));

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let logs = read_stderr(&mut child).await;
    let waiting = logs
        .lines()
        .filter(|line| line.contains("not reachable yet"))
        .count();
    assert!(waiting >= 2, "each try is logged:\n{logs}");
    let early: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("the server is starting"))
        .collect();
    assert_eq!(
        early.len(),
        1,
        "only the OwnID call, not the probes:\n{logs}"
    );
    assert!(
        early[0].contains("/ownid/getOwnIDDataByLoginId"),
        "{}",
        early[0]
    );
    assert!(!early[0].contains("early@example.com"), "{}", early[0]);
    assert!(
        !logs.contains(PASSWORD),
        "the password reached the log:\n{logs}"
    );
}

#[tokio::test]
async fn serve_gives_up_when_the_wait_runs_out() {
    let _group = crate::common::exclusive("startup").await;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let proxy = OutageProxy::start(server_addr(&url).await).await.unwrap();
    proxy.down().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &url_through(&proxy, &url), port, "3s");
    let started = Instant::now();
    let mut child = serve(&config);
    let waited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let Ok(status) = waited else {
        // What it printed tells why it is still up (a database it reached after all?).
        child.start_kill().unwrap();
        let output = child.wait_with_output().await.unwrap();
        panic!(
            "still waiting 30 s into a 3 s wait; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let status = status.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(2));
    assert!(
        elapsed >= Duration::from_secs(3),
        "gave up after {elapsed:?}"
    );
    let logs = read_stderr(&mut child).await;
    assert!(logs.contains("not reachable yet"), "{logs}");
    assert!(
        !logs.contains(PASSWORD),
        "the password reached the log:\n{logs}"
    );
}

#[tokio::test]
async fn serve_does_not_wait_for_what_waiting_cannot_fix() {
    let _group = crate::common::exclusive("startup").await;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let dir = tempfile::tempdir().unwrap();
    // A role the database does not have: an authentication error, not an outage.
    let wrong_user = url.replacen("postgres@", "no_such_role@", 1);
    assert_ne!(wrong_user, url);
    let config = write_config(dir.path(), &wrong_user, free_port(), "60s");
    let started = Instant::now();
    let mut child = serve(&config);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("still waiting on an authentication error")
        .unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(20));
    let logs = read_stderr(&mut child).await;
    assert!(!logs.contains("not reachable yet"), "{logs}");
}
