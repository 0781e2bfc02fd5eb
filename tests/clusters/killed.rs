//! Server processes behind HAProxy over a MariaDB Galera cluster, under steady writes:
//! 1. a Galera node and a server process, both killed with SIGKILL: nothing acknowledged is lost,
//!    every answer is 204 or 503, and service recovers without restarting anything;
//! 2. a rolling restart of the three server processes (SIGTERM, then a new process on the same
//!    port, one instance at a time): not a single call fails.
//!
//! Both tests run three server processes (the real binary), instance i over Galera node i of the
//! cluster that `scripts/servers/galera.sh` starts (scripts/servers/with.sh does; `OWNID_TEST_GALERA_URLS`
//! names the nodes and `OWNID_TEST_GALERA_DIR` is the cluster's directory, for `galera.sh kill` and
//! `start-node`), all on one users table, with HAProxy (`scripts/servers/haproxy.sh`) in front of the
//! three. Writers send signed sets through HAProxy, each on a user of its own with an increasing
//! sequence number in the value. The two tests take one lock first and never run at the same
//! time (the first kills a node the second uses).
//!
//! **Killed.** A few seconds in, Galera node 3 is killed (instance 3 then has no database) and
//! instance 2 is killed (in-flight requests lose their connection); node 3 is restarted a few
//! seconds later, instance 2 never, instances 1 and 3 are never restarted. Then:
//! - every answer the writers saw is 204 or 503 (a 502, a 504 or a transport error fails);
//! - every writer was served 204 after the kills and after node 3's restart;
//! - instance 3 is ready again once node 3 is back, without a restart, and serves reads;
//! - for each writer, the value read through instance 1 and through instance 3 (they agree) is
//!   the last acknowledged one or a later one (a write answered 503 may still have landed).
//!
//! **Rolling restart.** Galera is left alone. A few seconds in, instances 1, 2 and 3 are
//! restarted one after the other, with the HAProxy settings below and no runtime API command:
//! 1. SIGTERM to the instance, and wait for its process to exit (it finishes its in-flight
//!    requests within `server.shutdown_timeout` and closes its listener);
//! 2. wait until HAProxy has marked it DOWN (`fall 2` failed checks, about 0.5 to 1 s with
//!    `inter 500ms`; the test reads `show stat`, an operator may as well wait `fall` x `inter`
//!    plus a second). Meanwhile requests HAProxy sends there are refused and sent again to
//!    another instance (`retry-on conn-failure`, `option redispatch 1`), and a request sent on
//!    an idle connection that the stopping instance was closing is sent again too
//!    (`empty-response`);
//! 3. start a new process with the same configuration and port, wait until its `/readyz`
//!    answers 200 and HAProxy has it UP again (`rise 2` good checks), and it serves;
//! 4. only then the next instance.
//!
//! Step 2 is the one that matters. Restarting at once (the new process started as soon as the
//! old one has exited) fails calls with 503: the new process listens before its store is open,
//! and until it is (80 to 120 ms here, from "listening" to "ready" in its log) it answers
//! everything but `/healthz` 503 `storage_unavailable`, "the server is starting". HAProxy,
//! checking every 500 ms, never saw the port closed long enough to take the instance out
//! (`fall 2`) and sent it requests in that window. A 503 is the server's own answer, which
//! HAProxy rightly does not retry, so callers got it: 54 of 7,085 and 63 of 8,343 sets in two
//! runs, each answered by a new process between its "listening" and its "ready", and otherwise
//! only 204s (no 502, no transport error; the requests sent to the stopping or stopped
//! processes were retried). Waiting for DOWN means a new process is sent requests only after
//! two good `/readyz` checks. Taking the instance out first with the runtime API (`set server
//! bridges/instanceN state drain`, then `ready` once the new process is ready) would also do,
//! without the retries, but is not needed.
//!
//! Writers go on throughout and for 3 s after the last restart. Then:
//! - every answer the writers saw is 204: not one 503, 502, 504 or transport error;
//! - each instance exited with status 0 on SIGTERM, a new process (another pid) took its port,
//!   and the new process served sets through HAProxy (its own `ownid_bridge_requests_total`);
//! - for each writer, the value read through instance 1 and through instance 2 (they agree) is
//!   the last acknowledged one or a later one.
//!
//! The HAProxy settings both tests use (what docs/scaling.md recommends):
//! - `option httpchk GET /readyz` with `check inter 500ms fall 2 rise 2`: an instance whose
//!   database is down answers `/readyz` 503 and leaves the rotation within about a second; a
//!   dead or stopped instance fails its checks just as fast; either comes back after two good
//!   checks;
//! - `retries 3`, `option redispatch 1`: each retry goes to another server, with no turn-around
//!   delay on the one that just failed;
//! - `retry-on conn-failure empty-response response-timeout`: a request whose instance died or
//!   stopped before answering (refused connection, or connection closed with nothing received)
//!   is sent again to another instance. A set is safe to repeat (it writes the same value), and
//!   the signature is accepted there because `ownid.replay_protection: memory` keeps each
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
//!   `timeout client 30s`;
//! - `stats socket ... level admin`: the runtime API, which the test reads (`show stat`) to see
//!   each server's state and sessions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const DATABASE: &str = "ownid_bridge_killed_test";
const WRITERS: usize = 6;

/// Taken first by each test: they must not run at the same time (cargo runs a file's tests in
/// parallel by default), since one kills a Galera node the other uses.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts Galera node 3 again when it is dropped while the node is down (a failed assertion
/// between the kill and the restart): later tests use the cluster.
struct NodeGuard {
    galera: ServerControl,
    down: bool,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if self.down {
            self.galera.run_blocking("start-node", &["3"]);
        }
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

/// The response to `GET path` on `port`, or `None` while nothing answers.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Waits until `/readyz` on `port` answers 200; how long that took, or `None` after `limit`.
async fn ready_within(port: u16, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if get(port, "/readyz").await.map(|(status, _)| status) == Some(200) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// HAProxy's answer to a runtime API `command` on its stats socket in `dir`.
async fn haproxy_command(dir: &Path, command: &str) -> std::io::Result<String> {
    let mut socket = tokio::net::UnixStream::connect(dir.join("haproxy.sock")).await?;
    socket.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// HAProxy's view of server `instance<n>` (`show stat`): its status (`UP`, `DOWN`, `UP 1/2`,
/// `MAINT`, `DRAIN`...) and its current sessions.
async fn haproxy_server(dir: &Path, n: usize) -> Option<(String, u64)> {
    let stat = haproxy_command(dir, "show stat").await.ok()?;
    let mut lines = stat.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let column = |name: &str| header.iter().position(|field| *field == name);
    let (status, sessions) = (column("status")?, column("scur")?);
    let name = format!("instance{n}");
    let fields: Vec<&str> = lines
        .map(|line| line.split(',').collect::<Vec<_>>())
        .find(|fields| fields.len() > 1 && fields[0] == "bridges" && fields[1] == name)?;
    Some((
        fields.get(status)?.to_string(),
        fields.get(sessions)?.parse().ok()?,
    ))
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

/// The sets instance `port` answered since its process started (its own
/// `ownid_bridge_requests_total`, whatever the status), or `None` when `/metrics` does not
/// answer.
async fn sets_served(port: u16) -> Option<u64> {
    let (status, text) = get(port, "/metrics").await?;
    if status != 200 {
        return None;
    }
    Some(
        text.lines()
            .filter(|line| {
                line.starts_with("ownid_bridge_requests_total{")
                    && line.contains("operation=\"setOwnIDDataByLoginId\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
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

/// `WRITERS` writers sending sets through HAProxy on `port` until `stop`, each on its own user
/// with an increasing sequence number.
fn start_writers(port: u16, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<Writer>> {
    let client = reqwest::Client::new();
    (0..WRITERS)
        .map(|writer| {
            let (client, stop) = (client.clone(), Arc::clone(stop));
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
                    let answer = signed_post(&client, port, "setOwnIDDataByLoginId", body)
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
        .collect()
}

/// Stops the writers and collects what they saw.
async fn stop_writers(stop: &AtomicBool, tasks: Vec<JoinHandle<Writer>>) -> Vec<Writer> {
    stop.store(true, Ordering::SeqCst);
    let mut writers = Vec::new();
    for task in tasks {
        writers.push(task.await.unwrap());
    }
    // HAProxy logs a request after answering it: let its last lines reach the log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    writers
}

/// How many answers of each status (or transport error) the writers saw.
fn histogram(writers: &[Writer]) -> BTreeMap<String, usize> {
    let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
    for seen in writers {
        for (_, answer) in &seen.answers {
            let key = match answer {
                Ok(status) => status.to_string(),
                Err(err) => format!("transport error: {err}"),
            };
            *histogram.entry(key).or_default() += 1;
        }
    }
    histogram
}

/// The last `limit` lines of `path` that `keep` selects.
fn log_lines(path: &Path, limit: usize, keep: impl Fn(&str) -> bool) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|line| keep(line)).collect();
    lines[lines.len().saturating_sub(limit)..].join("\n")
}

/// From HAProxy's log (`option httplog`): the POSTs by server, and how many were retried and
/// how many redispatched (the retries count of `actconn/feconn/beconn/srv_conn/retries`, `+`
/// when redispatched).
fn haproxy_counts(dir: &Path) -> (BTreeMap<String, usize>, usize, usize) {
    let text = std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default();
    let mut servers: BTreeMap<String, usize> = BTreeMap::new();
    let (mut retried, mut redispatched) = (0, 0);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 12 || !fields[11].contains('/') || !line.contains("\"POST ") {
            continue;
        }
        let server = fields[3].split_once('/').map_or(fields[3], |(_, s)| s);
        *servers.entry(server.to_owned()).or_default() += 1;
        let retries = fields[10].rsplit('/').next().unwrap_or("0");
        redispatched += usize::from(retries.starts_with('+'));
        retried += usize::from(retries.trim_start_matches('+') != "0");
    }
    (servers, retried, redispatched)
}

/// The requests HAProxy has retried so far.
fn haproxy_retried(dir: &Path) -> usize {
    haproxy_counts(dir).1
}

/// HAProxy's `DroppedLogs` (`show info`): log lines it could not write, which the counts from
/// its log then miss.
async fn haproxy_dropped_logs(dir: &Path) -> Option<u64> {
    let info = haproxy_command(dir, "show info").await.ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("DroppedLogs: "))?
        .trim()
        .parse()
        .ok()
}

/// [`haproxy_counts`], for a person.
fn haproxy_summary(dir: &Path) -> String {
    let (servers, retried, redispatched) = haproxy_counts(dir);
    let requests: usize = servers.values().sum();
    format!(
        "{requests} POSTs, by server {servers:?}, {retried} retried ({redispatched} redispatched)"
    )
}

/// HAProxy's log lines other than 204s (and its retried requests, whatever their status) and
/// the instances' warnings and errors, for a failure.
fn diagnostics(dir: &Path) -> String {
    let mut text = format!(
        "--- haproxy.log (not 204, or retried):\n{}\n",
        log_lines(&dir.join("haproxy.log"), 60, |line| {
            !line.contains(" 204 ")
                || line
                    .split_whitespace()
                    .nth(10)
                    .and_then(|counts| counts.rsplit('/').next())
                    .is_some_and(|retries| retries != "0")
        })
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

/// A new process with `config`, its output appended to `log`, once `/readyz` on `port` answers
/// 200.
async fn start_instance(config: &Path, log: &Path, port: u16) -> Child {
    let child = binary(&[], config, log).spawn().unwrap();
    assert!(
        ready_within(port, Duration::from_secs(60)).await.is_some(),
        "{} never became ready:\n{}",
        config.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    child
}

/// Three instances over the three Galera nodes, on a fresh table with the writers' users, and
/// HAProxy in front of them, every server in rotation.
struct Setup {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    configs: Vec<PathBuf>,
    logs: Vec<PathBuf>,
    instances: Vec<Option<Child>>,
    proxy_port: u16,
    haproxy: ServerControl,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.haproxy.run_blocking("stop", &[]);
    }
}

impl Setup {
    async fn start() -> Setup {
        let urls = galera_node_urls(DATABASE).await;
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

        let mut instances = Vec::new();
        for i in 0..3 {
            instances.push(Some(start_instance(&configs[i], &logs[i], ports[i]).await));
        }
        let haproxy = ServerControl::new("haproxy.sh", dir.path());
        let servers: Vec<String> = ports.iter().map(u16::to_string).collect();
        let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
        let proxy_port = haproxy.run("start", &servers).await.1.parse().unwrap();
        let setup = Setup {
            dir,
            ports,
            configs,
            logs,
            instances,
            proxy_port,
            haproxy,
        };
        assert!(
            ready_within(proxy_port, Duration::from_secs(10))
                .await
                .is_some(),
            "HAProxy never answered /readyz 200:\n{}",
            diagnostics(setup.path())
        );
        // Every server passes its first checks (rise 2) before the writes start.
        for n in 1..=3 {
            assert!(
                setup.in_rotation_within(n, Duration::from_secs(10)).await,
                "HAProxy never had instance {n} UP: {:?}",
                haproxy_server(setup.path(), n).await
            );
        }
        setup
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Asserts that no server process has exited.
    fn assert_instances_running(&mut self) {
        for instance in self.instances.iter_mut().flatten() {
            assert!(
                instance.try_wait().unwrap().is_none(),
                "an instance exited: {}",
                diagnostics(self.dir.path())
            );
        }
    }

    /// A new process of instance `i + 1`, once its `/readyz` answers 200.
    async fn start_instance(&self, i: usize) -> Child {
        start_instance(&self.configs[i], &self.logs[i], self.ports[i]).await
    }

    /// Whether HAProxy has server `instance<n>` UP now.
    async fn in_rotation(&self, n: usize) -> bool {
        let state = haproxy_server(self.path(), n).await;
        state.is_some_and(|(status, _)| status == "UP")
    }

    /// Waits until HAProxy has server `instance<n>` UP; false after `limit`.
    async fn in_rotation_within(&self, n: usize, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.in_rotation(n).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Waits until HAProxy has server `instance<n>` DOWN; false after `limit`.
    async fn down_within(&self, n: usize, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            let state = haproxy_server(self.path(), n).await;
            if state.is_some_and(|(status, _)| status.starts_with("DOWN")) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Asserts that nothing acknowledged is lost: for each writer, the value read directly
    /// through the instances at `ports` (they agree) is its last acknowledged one or later.
    async fn assert_nothing_lost(&self, writers: &[Writer], ports: [u16; 2]) {
        let client = reqwest::Client::new();
        for (writer, seen) in writers.iter().enumerate() {
            let acknowledged = seen.acknowledged.expect("some write was acknowledged");
            let first = stored_seq(&client, ports[0], writer).await;
            let second = stored_seq(&client, ports[1], writer).await;
            assert_eq!(
                first, second,
                "writer {writer}: instances on ports {ports:?} disagree"
            );
            let stored = first.unwrap_or_else(|err| panic!("writer {writer}: get: {err}"));
            assert!(
                (acknowledged..=seen.sent).contains(&stored),
                "writer {writer}: stored {stored}, acknowledged up to {acknowledged}, sent {}",
                seen.sent
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_galera_node_and_instance_behind_haproxy_lose_nothing_acknowledged() {
    let _group = crate::common::exclusive("killed").await;
    let _serial = SERIAL.lock().await;
    let galera = ServerControl::from_env("galera.sh", "OWNID_TEST_GALERA_DIR");
    let mut setup = Setup::start().await;
    let (ports, proxy_port) = (setup.ports.clone(), setup.proxy_port);

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks = start_writers(proxy_port, &stop);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut node3 = NodeGuard {
        galera: galera.clone(),
        down: true,
    };
    galera.run("kill", &["3"]).await;
    let mut instance2 = setup.instances[1].take().unwrap();
    instance2.start_kill().unwrap();
    instance2.wait().await.unwrap();
    let killed = Instant::now();
    println!(
        "killed: Galera node 3 and instance 2 killed {:?} into the writes",
        killed - started
    );

    tokio::time::sleep(Duration::from_secs(6)).await;
    let restarting = Instant::now();
    galera.run("start-node", &["3"]).await;
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
    let writers = stop_writers(&stop, tasks).await;

    // The figures, printed whatever follows.
    let histogram = histogram(&writers);
    let total: usize = histogram.values().sum();
    println!(
        "killed: {total} sets in {:?}: {histogram:?}; instance 3 recovery: {recovery:?}",
        started.elapsed()
    );
    println!(
        "killed: HAProxy: {}; {:?} log lines dropped",
        haproxy_summary(setup.path()),
        haproxy_dropped_logs(setup.path()).await
    );

    let unexpected: usize = histogram
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "204" | "503"))
        .map(|(_, count)| count)
        .sum();
    assert_eq!(
        unexpected,
        0,
        "answers other than 204 and 503: {histogram:#?}\n{}",
        diagnostics(setup.path())
    );
    for (writer, seen) in writers.iter().enumerate() {
        for (after, label) in [(killed, "the kills"), (restarted, "node 3's restart")] {
            assert!(
                seen.answers
                    .iter()
                    .any(|(at, answer)| *at > after && *answer == Ok(204)),
                "writer {writer} was never served 204 after {label}\n{}",
                diagnostics(setup.path())
            );
        }
    }
    assert!(
        recovery.is_some(),
        "instance 3 was not ready within 30 s of node 3's restart\n{}",
        diagnostics(setup.path())
    );

    // Nothing acknowledged is lost, as read through instance 1 and through instance 3 (over the
    // restarted node) directly.
    setup
        .assert_nothing_lost(&writers, [ports[0], ports[2]])
        .await;
    setup.assert_instances_running();
}

/// Records HAProxy's successive statuses of `instance<n>` until `done`.
fn watch_statuses(dir: PathBuf, n: usize, done: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut statuses: Vec<String> = Vec::new();
        loop {
            // Read once more after `done`: the last status is the one the restart ended with.
            let last = done.load(Ordering::SeqCst);
            if let Some((status, _)) = haproxy_server(&dir, n).await {
                if statuses.last() != Some(&status) {
                    statuses.push(status);
                }
            }
            if last {
                return statuses;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Sends SIGTERM to `pid`.
fn terminate(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_behind_haproxy_fails_no_call() {
    let _group = crate::common::exclusive("killed").await;
    let _serial = SERIAL.lock().await;
    let mut setup = Setup::start().await;
    let proxy_port = setup.proxy_port;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks = start_writers(proxy_port, &stop);
    tokio::time::sleep(Duration::from_secs(3)).await;

    for i in 0..3 {
        let n = i + 1;
        let done = Arc::new(AtomicBool::new(false));
        let watcher = watch_statuses(setup.path().to_owned(), n, Arc::clone(&done));
        let mut old = setup.instances[i].take().unwrap();
        let old_pid = old.id().unwrap();
        let retried_before = haproxy_retried(setup.path());
        let sigterm = Instant::now();
        terminate(old_pid);
        let exit = tokio::time::timeout(Duration::from_secs(40), old.wait())
            .await
            .unwrap_or_else(|_| panic!("instance {n} still running 40 s after SIGTERM"))
            .unwrap();
        let stopped = sigterm.elapsed();
        assert!(
            exit.success(),
            "instance {n} exited with {exit} on SIGTERM\n{}",
            diagnostics(setup.path())
        );
        // No new process before HAProxy has taken the instance out (two failed checks): the new
        // process answers 503 while it opens its store, and a HAProxy that has not noticed the
        // restart passes those 503s on (see the module documentation).
        assert!(
            setup.down_within(n, Duration::from_secs(10)).await,
            "HAProxy still had instance {n} in rotation 10 s after it exited: {:?}",
            haproxy_server(setup.path(), n).await
        );
        let down = sigterm.elapsed();
        let new = setup.start_instance(i).await;
        let ready = sigterm.elapsed();
        let new_pid = new.id().unwrap();
        setup.instances[i] = Some(new);
        assert_ne!(old_pid, new_pid, "instance {n}: the same pid");
        // Back in rotation: HAProxy has it UP, and it has served a set through HAProxy.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if setup.in_rotation(n).await && sets_served(setup.ports[i]).await.unwrap_or(0) > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "instance {n} not back in rotation 15 s after it was ready: {:?}, {:?} sets\n{}",
                haproxy_server(setup.path(), n).await,
                sets_served(setup.ports[i]).await,
                diagnostics(setup.path())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let serving = sigterm.elapsed();
        done.store(true, Ordering::SeqCst);
        let statuses = watcher.await.unwrap();
        // From SIGTERM: the old process exited, the new one ready, UP in HAProxy and serving.
        println!(
            "killed: instance {n} restarted, pid {old_pid} -> {new_pid}: exited after \
             {stopped:?}, DOWN in HAProxy after {down:?}, ready after {ready:?}, serving \
             through HAProxy after {serving:?}; HAProxy's statuses: {statuses:?}; {} requests \
             retried by HAProxy meanwhile",
            haproxy_retried(setup.path()) - retried_before
        );
    }
    let last_restart = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writers = stop_writers(&stop, tasks).await;

    // The figures, printed whatever follows.
    let histogram = histogram(&writers);
    let total: usize = histogram.values().sum();
    let mut served = Vec::new();
    for port in &setup.ports {
        served.push(sets_served(*port).await);
    }
    println!(
        "killed: rolling restart: {total} sets in {:?}: {histogram:?}; sets served by the new \
         processes: {served:?}",
        started.elapsed()
    );
    println!(
        "killed: HAProxy: {}; {:?} log lines dropped",
        haproxy_summary(setup.path()),
        haproxy_dropped_logs(setup.path()).await
    );

    assert_eq!(
        histogram.get("204"),
        Some(&total),
        "answers other than 204 during a rolling restart: {histogram:#?}\n{}",
        diagnostics(setup.path())
    );
    for (writer, seen) in writers.iter().enumerate() {
        assert!(
            seen.answers.iter().any(|(at, _)| *at > last_restart),
            "writer {writer} sent nothing after the last restart"
        );
    }
    for (i, count) in served.iter().enumerate() {
        assert!(
            count.is_some_and(|count| count > 0),
            "instance {} served no set after its restart: {count:?}",
            i + 1
        );
    }
    setup
        .assert_nothing_lost(&writers, [setup.ports[0], setup.ports[1]])
        .await;
    setup.assert_instances_running();
}
