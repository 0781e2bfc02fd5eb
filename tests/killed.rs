//! A MariaDB Galera node and a server process, both killed with SIGKILL under steady writes
//! through HAProxy: nothing acknowledged is lost, every answer is 204 or 503, and service
//! recovers without restarting anything.
//!
//! Three server processes (the real binary), instance i over Galera node i of the cluster that
//! `scripts/galera.sh` starts (scripts/test.sh does; `OWNID_TEST_GALERA_URLS` names the nodes and
//! `OWNID_TEST_GALERA_DIR` is the cluster's directory, for `galera.sh kill` and `start-node`), all
//! on one users table. HAProxy (`/usr/sbin/haproxy`) is in front of the three. Writers send
//! signed sets through HAProxy, each on a user of its own with an increasing sequence number in
//! the value. A few seconds in, Galera node 3 is killed (instance 3 then has no database) and
//! instance 2 is killed (in-flight requests lose their connection); node 3 is restarted a few
//! seconds later, instance 2 never, instances 1 and 3 are never restarted. Then:
//! - every answer the writers saw is 204 or 503 (a 502, a 504 or a transport error fails);
//! - every writer was served 204 after the kills and after node 3's restart;
//! - instance 3 is ready again once node 3 is back, without a restart, and serves reads;
//! - for each writer, the value read through instance 1 and through instance 3 (they agree) is
//!   the last acknowledged one or a later one (a write answered 503 may still have landed).
//!
//! The HAProxy settings this relies on (what docs/scaling.md recommends):
//! - `option httpchk GET /readyz` with `check inter 500ms fall 2 rise 2`: an instance whose
//!   database is down answers `/readyz` 503 and leaves the rotation within about a second; a
//!   dead instance fails its checks just as fast; either comes back after two good checks;
//! - `retries 3`, `option redispatch 1`: each retry goes to another server, with no turn-around
//!   delay on the one that just failed;
//! - `retry-on conn-failure empty-response response-timeout`: a request whose instance died
//!   before answering (refused connection, or connection closed with nothing received) is sent
//!   again to another instance. A set is safe to repeat (it writes the same value), and the
//!   signature is accepted there because `ownid.replay_protection: memory` keeps each
//!   instance's guard to itself. 503 is deliberately not retried: it is the server's own
//!   answer, passed on to the caller;
//! - `option http-buffer-request`: the whole request is buffered before it is sent, which the
//!   L7 retries (`empty-response`, `response-timeout`) need to send it again;
//! - `timeout check 6s`: longer than the 5 s `/readyz` gives the database ping before it answers
//!   503 itself. When a Galera node dies the survivors stall every statement, pings included,
//!   until the cluster has evicted it (about 4 s here, with `evs.suspect_timeout=PT3S`; longer
//!   with Galera's defaults). Without `timeout check`, `inter` (500 ms) bounds the whole check:
//!   the surviving instances fail their checks during the stall, HAProxy finds no server and
//!   answers 503 itself for every request until a check passes again;
//! - `timeout connect 1s`, `timeout server 15s` (well above the seconds a statement stalls
//!   while Galera evicts a dead node: the answer comes from the server, not a HAProxy 504),
//!   `timeout client 30s`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ownid_bridge_store::outage::required_url;
use tokio::process::{Child, Command};

const DATABASE: &str = "ownid_bridge_killed_test";
const WRITERS: usize = 6;
const HAPROXY: &str = "/usr/sbin/haproxy";

/// Runs `scripts/galera.sh <action> DIR 3` from the repository root, and fails on an error.
async fn galera_node3(action: &str, dir: &str) {
    let output = Command::new("scripts/galera.sh")
        .args([action, dir, "3"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/galera.sh {action} {dir} 3: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Restarts Galera node 3 when it is dropped while the node is down (a failed assertion between
/// the kill and the restart): later tests use the cluster.
struct NodeGuard {
    dir: String,
    down: bool,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if !self.down {
            return;
        }
        eprintln!("killed: restarting Galera node 3 after a failure");
        let status = std::process::Command::new("scripts/galera.sh")
            .args(["start-node", &self.dir, "3"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .status();
        eprintln!(
            "killed: scripts/galera.sh start-node {} 3: {status:?}",
            self.dir
        );
    }
}

/// Instance `n`'s configuration, over `url`, listening on `port`.
fn write_config(dir: &Path, n: usize, url: &str, table: &str, port: u16) -> PathBuf {
    let path = dir.join(format!("instance{n}.yaml"));
    let yaml = format!(
        "server:\n  listen: \"127.0.0.1:{port}\"\n\
         ownid:\n  shared_secret: \"{SECRET}\"\n  \
         # Each instance's own guard (the default): HAProxy sends a request whose instance died\n  \
         # again to another instance, and a shared guard would refuse that re-send when the dead\n  \
         # instance had already marked the signature used.\n  \
         replay_protection: memory\n\
         session:\n  secret: \"{JWT_SECRET}\"\n\
         storage:\n  backend: mariadb\n  url: \"{url}\"\n  create_demo_table: true\n  \
         users: {{ table: {table} }}\n  \
         pool: {{ connect_timeout: \"1s\", acquire_timeout: \"1s\" }}\n"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The binary with `args`, its output appended to `log`.
fn binary(args: &[&str], config: &Path, log: &Path) -> Command {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ownid-bridge"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("OWNID_BRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .kill_on_drop(true);
    command
}

/// The status of `GET path` on `port`, or `None` while nothing answers.
async fn status(port: u16, path: &str) -> Option<u16> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// Waits until `/readyz` on `port` answers 200; how long that took, or `None` after `limit`.
async fn ready_within(port: u16, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if status(port, "/readyz").await == Some(200) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// HAProxy's configuration: the settings of the module documentation, its log on stdout.
fn haproxy_config(port: u16, servers: &[u16]) -> String {
    let mut config = format!(
        "global\n\
         \x20   log stdout format raw local0\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   log global\n\
         \x20   option httplog\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 30s\n\
         \x20   timeout server 15s\n\
         \x20   timeout check 6s\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   retry-on conn-failure empty-response response-timeout\n\
         \x20   option http-buffer-request\n\
         \n\
         frontend ownid\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend bridges\n\
         \n\
         backend bridges\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /readyz\n"
    );
    for (i, server) in servers.iter().enumerate() {
        config.push_str(&format!(
            "    server instance{} 127.0.0.1:{server} check inter 500ms fall 2 rise 2\n",
            i + 1
        ));
    }
    config
}

/// Validates the configuration (`haproxy -c`) and starts HAProxy in the foreground.
fn start_haproxy(dir: &Path, config: &str) -> Child {
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let check = std::process::Command::new(HAPROXY)
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap_or_else(|err| panic!("{HAPROXY}: {err} (apt-get install haproxy)"));
    assert!(
        check.status.success(),
        "haproxy -c:\n{config}\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
    Command::new(HAPROXY)
        .arg("-f")
        .arg(&path)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A signed POST of `body` to `operation` on `port`: the status and the body, or the transport
/// error.
async fn signed_post(
    client: &reqwest::Client,
    port: u16,
    operation: &str,
    body: String,
) -> Result<(u16, String), String> {
    let (timestamp, signature) = signed_now(&body);
    let response = client
        .post(format!("http://127.0.0.1:{port}/ownid/{operation}"))
        .header("content-type", "application/json")
        .header("ownid-timestamp", timestamp)
        .header("ownid-signature", signature)
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(|err| format!("{err:?}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|err| format!("{err:?}"))?;
    Ok((status, text))
}

fn login(writer: usize) -> String {
    format!("killed{writer}@example.com")
}

/// The sequence number in writer `writer`'s value `w<writer>-<seq>` that `get` answered.
async fn stored_seq(client: &reqwest::Client, port: u16, writer: usize) -> Result<u64, String> {
    let body = serde_json::json!({ "loginId": login(writer) }).to_string();
    let (status, text) = signed_post(client, port, "getOwnIDDataByLoginId", body).await?;
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|err| format!("{err}"))?;
    let value = json["ownIdData"].as_str().unwrap_or_default();
    value
        .strip_prefix(&format!("w{writer}-"))
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(|| format!("not a value of writer {writer}: {text}"))
}

/// What one writer saw.
#[derive(Default)]
struct Writer {
    /// The highest sequence number answered 204.
    acknowledged: Option<u64>,
    /// The last sequence number sent.
    sent: u64,
    /// When each request was sent, and its status or transport error.
    answers: Vec<(Instant, Result<u16, String>)>,
}

/// The last `limit` lines of `path` that `keep` selects.
fn log_lines(path: &Path, limit: usize, keep: impl Fn(&str) -> bool) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|line| keep(line)).collect();
    lines[lines.len().saturating_sub(limit)..].join("\n")
}

/// From HAProxy's log (`option httplog`): requests per server, and how many were retried
/// (the retries count of `actconn/feconn/beconn/srv_conn/retries`, `+` when redispatched).
fn haproxy_summary(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
    let mut servers: BTreeMap<String, usize> = BTreeMap::new();
    let (mut requests, mut retried, mut redispatched) = (0, 0, 0);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 12 || !fields[11].contains('/') || !line.contains("\"POST ") {
            continue;
        }
        requests += 1;
        let server = fields[3].split_once('/').map_or(fields[3], |(_, s)| s);
        *servers.entry(server.to_owned()).or_default() += 1;
        let retries = fields[10].rsplit('/').next().unwrap_or("0");
        redispatched += usize::from(retries.starts_with('+'));
        retried += usize::from(retries.trim_start_matches('+') != "0");
    }
    format!(
        "{requests} POSTs, by server {servers:?}, {retried} retried ({redispatched} redispatched)"
    )
}

/// HAProxy's log lines other than 204s and the instances' warnings and errors, for a failure.
fn diagnostics(dir: &Path) -> String {
    let mut text = format!(
        "--- haproxy.log (not 204):\n{}\n",
        log_lines(&dir.join("haproxy.log"), 60, |line| !line.contains(" 204 "))
    );
    for n in 1..=3 {
        text.push_str(&format!(
            "--- instance{n}.log (warnings, errors):\n{}\n",
            log_lines(&dir.join(format!("instance{n}.log")), 30, |line| {
                line.contains("WARN") || line.contains("ERROR") || line.contains(" 500")
            })
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_galera_node_and_instance_behind_haproxy_lose_nothing_acknowledged() {
    let urls = galera_node_urls(DATABASE).await;
    let galera_dir = required_url("OWNID_TEST_GALERA_DIR");
    let dir = tempfile::tempdir().unwrap();
    let table = format!("killed_{}", uuid::Uuid::new_v4().simple());
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<PathBuf> = (0..3)
        .map(|i| write_config(dir.path(), i + 1, &urls[i], &table, ports[i]))
        .collect();
    let logs: Vec<PathBuf> = (1..=3)
        .map(|n| dir.path().join(format!("instance{n}.log")))
        .collect();

    // The table (the demo table) and the writers' users, through instance 1's configuration.
    let logins: Vec<String> = (0..WRITERS).map(login).collect();
    let mut args = vec!["users", "add"];
    args.extend(logins.iter().map(String::as_str));
    let added = binary(&args, &configs[0], &logs[0]).status().await.unwrap();
    assert!(
        added.success(),
        "users add: {}",
        std::fs::read_to_string(&logs[0]).unwrap_or_default()
    );

    let mut instances: Vec<Option<Child>> = (0..3)
        .map(|i| Some(binary(&[], &configs[i], &logs[i]).spawn().unwrap()))
        .collect();
    for (i, port) in ports.iter().enumerate() {
        assert!(
            ready_within(*port, Duration::from_secs(60)).await.is_some(),
            "instance {} never became ready:\n{}",
            i + 1,
            std::fs::read_to_string(&logs[i]).unwrap_or_default()
        );
    }
    let proxy_port = free_port();
    let _haproxy = start_haproxy(dir.path(), &haproxy_config(proxy_port, &ports));
    assert!(
        ready_within(proxy_port, Duration::from_secs(10))
            .await
            .is_some(),
        "HAProxy never answered /readyz 200:\n{}",
        diagnostics(dir.path())
    );
    // Every server passes its first checks (rise 2) before the writes start.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (client, stop) = (client.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut seen = Writer::default();
                while !stop.load(Ordering::SeqCst) {
                    seen.sent += 1;
                    let body = serde_json::json!({
                        "loginId": login(writer),
                        "ownIdData": format!("w{writer}-{}", seen.sent),
                    })
                    .to_string();
                    let sent_at = Instant::now();
                    let answer = signed_post(&client, proxy_port, "setOwnIDDataByLoginId", body)
                        .await
                        .map(|(status, _)| status);
                    if answer == Ok(204) {
                        seen.acknowledged = Some(seen.sent);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    seen.answers.push((sent_at, answer));
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut node3 = NodeGuard {
        dir: galera_dir.clone(),
        down: true,
    };
    galera_node3("kill", &galera_dir).await;
    let mut instance2 = instances[1].take().unwrap();
    instance2.start_kill().unwrap();
    instance2.wait().await.unwrap();
    let killed = Instant::now();
    println!(
        "killed: Galera node 3 and instance 2 killed {:?} into the writes",
        killed - started
    );

    tokio::time::sleep(Duration::from_secs(6)).await;
    let restarting = Instant::now();
    galera_node3("start-node", &galera_dir).await;
    node3.down = false;
    let restarted = Instant::now();
    println!(
        "killed: Galera node 3 Synced again {:?} after start-node",
        restarted - restarting
    );
    let recovery = ready_within(ports[2], Duration::from_secs(30)).await;
    if let Some(recovery) = recovery {
        println!("killed: instance 3 ready {recovery:?} after node 3 was Synced");
    }
    let remaining = Duration::from_secs(6).saturating_sub(restarted.elapsed());
    tokio::time::sleep(remaining).await;
    stop.store(true, Ordering::SeqCst);
    let mut writers = Vec::new();
    for task in tasks {
        writers.push(task.await.unwrap());
    }

    // The figures, printed whatever follows.
    let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
    for seen in &writers {
        for (_, answer) in &seen.answers {
            let key = match answer {
                Ok(status) => status.to_string(),
                Err(err) => format!("transport error: {err}"),
            };
            *histogram.entry(key).or_default() += 1;
        }
    }
    let total: usize = histogram.values().sum();
    println!(
        "killed: {total} sets in {:?}: {histogram:?}; instance 3 recovery: {recovery:?}",
        started.elapsed()
    );
    println!("killed: HAProxy: {}", haproxy_summary(dir.path()));

    let unexpected: usize = histogram
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "204" | "503"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(
        unexpected,
        0,
        "answers other than 204 and 503: {histogram:#?}\n{}",
        diagnostics(dir.path())
    );
    for (writer, seen) in writers.iter().enumerate() {
        for (after, label) in [(killed, "the kills"), (restarted, "node 3's restart")] {
            assert!(
                seen.answers
                    .iter()
                    .any(|(at, answer)| *at > after && *answer == Ok(204)),
                "writer {writer} was never served 204 after {label}\n{}",
                diagnostics(dir.path())
            );
        }
    }
    assert!(
        recovery.is_some(),
        "instance 3 was not ready within 30 s of node 3's restart\n{}",
        diagnostics(dir.path())
    );

    // Nothing acknowledged is lost, as read through instance 1 and through instance 3 (over the
    // restarted node) directly.
    for (writer, seen) in writers.iter().enumerate() {
        let acknowledged = seen.acknowledged.expect("some write was acknowledged");
        let first = stored_seq(&client, ports[0], writer).await;
        let third = stored_seq(&client, ports[2], writer).await;
        assert_eq!(first, third, "writer {writer}: instances 1 and 3 disagree");
        let stored = first.unwrap_or_else(|err| panic!("writer {writer}: get: {err}"));
        assert!(
            (acknowledged..=seen.sent).contains(&stored),
            "writer {writer}: stored {stored}, acknowledged up to {acknowledged}, sent {}",
            seen.sent
        );
    }
    for instance in instances.iter_mut().flatten() {
        assert!(
            instance.try_wait().unwrap().is_none(),
            "an instance exited: {}",
            diagnostics(dir.path())
        );
    }
}
