//! Database faults under load. For each networked backend, a bounded client keeps calling the
//! real server (in process, over TCP) while the database underneath is killed with SIGKILL and
//! started again by `scripts/servers/<server>.sh kill|start` (the directories scripts/servers/with.sh
//! exports as `OWNID_TEST_*_DIR`). The server must
//! answer `503 storage_unavailable` with `Retry-After` while the database is down, within the
//! acquire timeout (never a hang, never a 500, never a crash), recover without a restart, and keep
//! every set it acknowledged with `204`.
//!
//! How "kept" is checked. A set overwrites the previous value, so what can be read back afterwards
//! is, per login id, its last acknowledged value. Each login id is written by one client task only
//! (its sets are sequential), every value is unique, and the logins are split in two groups:
//! group A is written only until the kill (so its last acknowledged values were written just
//! before the crash: reading them back proves crash durability), group B from the kill on
//! (acknowledged during the outage, after the restart, and after recovery). A set answered with
//! anything but 204 or 404 has an unknown outcome: a COMMIT can be applied by the database and its
//! answer lost with the connection, so the stored value may also be such a later unacknowledged
//! value, and never an earlier one. Reads during the load are checked by the same rule.
//!
//! MongoDB: the throwaway server is jongodb, which keeps its data in memory. A kill loses
//! everything, so durability across a crash cannot be proven on it: for MongoDB only the server's
//! behaviour is asserted (503 while down, no hang, no 500, recovery without a restart), and only
//! sets acknowledged after the restart (the test re-creates the collection and the users first)
//! are read back. Group A's values written before the kill are reported as lost by jongodb, not
//! asserted.
//!
//! The three backends share one lock so that they run one after another.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    backend_config, fresh_timestamp, mongodb_test_database, mysql_test_database, serve_tcp, sign,
    ServerControl,
};
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;
use ownid_bridge_store::UserStore;

/// The server's pool `acquire_timeout` (and `connect_timeout`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest any answer may take: the acquire timeout plus a margin for a driver's own attempt.
const MAX_LATENCY: Duration = Duration::from_secs(5);
/// The client's timeout: well above `MAX_LATENCY`, so that a hang shows as a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent client tasks, and login ids per task and group.
const TASKS: usize = 16;
const LOGINS_PER_TASK: usize = 8;
/// Every fifth request is a read.
const READ_EVERY: u64 = 5;
const BEFORE_KILL: Duration = Duration::from_secs(2);
/// Long enough that a request which starts after the kill and waits the whole acquire timeout
/// still ends inside it, even when it starts only once a first one, begun during the kill, has
/// waited its own: with two acquire timeouts (4 s) those second requests ended a few
/// milliseconds after the restart began, and a run saw no request inside the outage.
const OUTAGE: Duration = Duration::from_secs(3 * ACQUIRE_TIMEOUT.as_secs());
/// After recovery: at least this long, and until every task has this many acknowledged sets.
const AFTER_RECOVERY: Duration = Duration::from_millis(1500);
const SETS_AFTER_RECOVERY: usize = 3 * LOGINS_PER_TASK;
/// After recovery no request may fail; the first requests after it get this much grace.
const RECOVERY_GRACE: Duration = Duration::from_secs(1);

/// One backend's fault test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_killed_under_load() {
    let _group = crate::common::exclusive("faults").await;
    let _serial = SERIAL.lock().await;
    let url = required_url("OWNID_TEST_POSTGRES_URL");
    let server = ServerControl::from_env("postgres.sh", "OWNID_TEST_POSTGRES_DIR");
    fault_story(Backend::Postgres, &url, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_killed_under_load() {
    let _group = crate::common::exclusive("faults").await;
    let _serial = SERIAL.lock().await;
    let server = ServerControl::from_env("mariadb.sh", "OWNID_TEST_MYSQL_DIR");
    let url = mysql_test_database("ownid_bridge_faults_test").await;
    fault_story(Backend::Mysql, &url, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongodb_killed_under_load() {
    let _group = crate::common::exclusive("faults").await;
    let _serial = SERIAL.lock().await;
    let server = ServerControl::from_env("jongodb.sh", "OWNID_TEST_MONGODB_DIR");
    let url = mongodb_test_database("ownid_bridge_faults_test").await;
    fault_story(Backend::Mongodb, &url, &server).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    Mysql,
    Mongodb,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
            Backend::Mongodb => "mongodb",
        }
    }

    /// Whether the database keeps its data across a kill (jongodb does not).
    fn durable(self) -> bool {
        self != Backend::Mongodb
    }
}

/// Starts the database again if the test fails while it is down, so that the tests after this
/// one find it running.
struct RestartOnDrop {
    server: ServerControl,
    armed: bool,
}

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.server.run_blocking("start", &[]);
        }
    }
}

struct Server {
    url: String,
    store: Arc<dyn UserStore>,
    running: ownid_bridge::app::Ready,
}

/// The real server over TCP on a fresh table of `url`'s database.
async fn start_server(backend: Backend, url: &str) -> Server {
    let config = backend_config(
        backend.name(),
        url,
        "faults",
        &[
            ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("OWNID_BRIDGE__STORAGE__POOL__ACQUIRE_TIMEOUT", "2s"),
            ("OWNID_BRIDGE__STORAGE__POOL__CONNECT_TIMEOUT", "2s"),
        ],
    );
    assert_eq!(config.storage.pool.acquire_timeout, ACQUIRE_TIMEOUT);
    let store = storage::open(&config.storage, false)
        .await
        .expect("open the store");
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema");
    let (addr, running) = serve_tcp(config, store.clone()).await;
    Server {
        url: format!("http://{addr}/ownid"),
        store,
        running,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Set,
    Get,
}

/// One request and its answer. Times are offsets from the start of the load.
#[derive(Clone, Debug)]
struct Event {
    task: usize,
    op: Op,
    login: String,
    /// The value a set sent.
    value: Option<String>,
    started: Duration,
    ended: Duration,
    answer: Answer,
}

impl Event {
    fn latency(&self) -> Duration {
        self.ended - self.started
    }

    fn status(&self) -> Option<u16> {
        match &self.answer {
            Answer::Http { status, .. } => Some(*status),
            Answer::ClientError(_) => None,
        }
    }

    fn succeeded(&self) -> bool {
        matches!(self.status(), Some(200 | 204))
    }
}

#[derive(Clone, Debug)]
enum Answer {
    Http {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// No HTTP answer at all (connection error or the client's timeout).
    ClientError(String),
}

/// What the load tasks share with the test.
struct Load {
    started: Instant,
    client: reqwest::Client,
    url: String,
    run: String,
    /// 0 before the kill (group A logins), 1 from the kill on (group B).
    phase: AtomicU8,
    stop: AtomicBool,
    /// Acknowledged sets per task that started at or after `floor` (micros since `started`).
    floor: AtomicU64,
    sets_after_floor: Vec<AtomicUsize>,
}

fn login(group: char, task: usize, index: usize) -> String {
    format!("{group}-{task:02}-{index}@faults.example.com")
}

fn logins(group: char) -> Vec<String> {
    (0..TASKS)
        .flat_map(|task| (0..LOGINS_PER_TASK).map(move |index| login(group, task, index)))
        .collect()
}

async fn call(load: &Load, operation: &str, body: String) -> Answer {
    let timestamp = fresh_timestamp();
    let signature = sign(&body, &timestamp);
    let response = load
        .client
        .post(format!("{}/{operation}", load.url))
        .header("content-type", "application/json")
        .header("ownid-timestamp", &timestamp)
        .header("ownid-signature", signature)
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(err) => return Answer::ClientError(err.to_string()),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap_or("<not text>").to_owned());
    match response.text().await {
        Ok(body) => Answer::Http {
            status,
            retry_after,
            body,
        },
        Err(err) => Answer::ClientError(format!("reading the body: {err}")),
    }
}

/// One client task: sets with unique values (and a read every fifth request) on its own login
/// ids, one request at a time, until told to stop.
async fn client_task(load: Arc<Load>, task: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let padding = "x".repeat(200);
    let mut seq: u64 = 0;
    while !load.stop.load(Ordering::SeqCst) {
        let group = if load.phase.load(Ordering::SeqCst) == 0 {
            'A'
        } else {
            'B'
        };
        let login = login(group, task, seq as usize % LOGINS_PER_TASK);
        let (op, value) = if seq % READ_EVERY == READ_EVERY - 1 {
            (Op::Get, None)
        } else {
            (
                Op::Set,
                Some(format!("{}:{task}:{seq}:{padding}", load.run)),
            )
        };
        let body = match &value {
            Some(value) => serde_json::json!({ "loginId": login, "ownIdData": value }),
            None => serde_json::json!({ "loginId": login }),
        }
        .to_string();
        let operation = match op {
            Op::Set => "setOwnIDDataByLoginId",
            Op::Get => "getOwnIDDataByLoginId",
        };
        let started = load.started.elapsed();
        let answer = call(&load, operation, body).await;
        let ended = load.started.elapsed();
        let event = Event {
            task,
            op,
            login,
            value,
            started,
            ended,
            answer,
        };
        if op == Op::Set
            && event.status() == Some(204)
            && started.as_micros() as u64 >= load.floor.load(Ordering::SeqCst)
        {
            load.sets_after_floor[task].fetch_add(1, Ordering::SeqCst);
        }
        events.push(event);
        seq += 1;
    }
    events
}

/// What a set did, as far as the client can know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOutcome {
    /// 204: the value is stored.
    Acknowledged,
    /// 404 (jongodb after the restart, before the users are back): nothing was written.
    NotApplied,
    /// 503, or no answer: the value may or may not be stored.
    Unknown,
}

/// The sets of one login id, in order, with their outcomes.
type History = Vec<(String, SetOutcome)>;

/// Whether `observed` is what a read may return after `history`: the last acknowledged value or
/// a later value whose outcome is unknown (none and any unknown value when nothing was
/// acknowledged). An earlier acknowledged value, or one never sent, is a lost write.
fn check_read(history: &[(String, SetOutcome)], observed: Option<&str>) -> Result<(), String> {
    let last_ack = history
        .iter()
        .rposition(|(_, outcome)| *outcome == SetOutcome::Acknowledged);
    let later = &history[last_ack.unwrap_or(0)..];
    let allowed = |value: &str| {
        later.iter().enumerate().any(|(i, (sent, outcome))| {
            sent == value && (*outcome == SetOutcome::Unknown || (i == 0 && last_ack.is_some()))
        })
    };
    let ok = match observed {
        None => last_ack.is_none(),
        Some(value) => allowed(value),
    };
    if ok {
        return Ok(());
    }
    let short = |value: &str| value.split(':').take(3).collect::<Vec<_>>().join(":");
    Err(format!(
        "read {:?}, but the last acknowledged set was {:?} (the latest sets: {})",
        observed.map(short),
        last_ack.map(|i| short(&history[i].0)),
        history
            .iter()
            .rev()
            .take(6)
            .map(|(value, outcome)| format!("{} {outcome:?}", short(value)))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The value a get answered: `Ok(None)` for 204, `Ok(Some)` for 200, `Err` otherwise.
fn read_value(answer: &Answer) -> Result<Option<String>, String> {
    match answer {
        Answer::Http { status: 204, .. } => Ok(None),
        Answer::Http {
            status: 200, body, ..
        } => {
            let json: serde_json::Value = serde_json::from_str(body)
                .map_err(|err| format!("a 200 that is not JSON ({err}): {body}"))?;
            json["ownIdData"]
                .as_str()
                .map(|value| Some(value.to_owned()))
                .ok_or_else(|| format!("a 200 without ownIdData: {body}"))
        }
        other => Err(format!("{other:?}")),
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

async fn fault_story(backend: Backend, url: &str, server_control: &ServerControl) {
    let name = backend.name();
    let server = start_server(backend, url).await;
    let group_a = logins('A');
    let group_b = logins('B');
    for login in group_a.iter().chain(&group_b) {
        assert!(server.store.create_user(login).await.unwrap());
    }

    let load = Arc::new(Load {
        started: Instant::now(),
        client: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .unwrap(),
        url: server.url.clone(),
        run: uuid::Uuid::new_v4().simple().to_string(),
        phase: AtomicU8::new(0),
        stop: AtomicBool::new(false),
        floor: AtomicU64::new(u64::MAX),
        sets_after_floor: (0..TASKS).map(|_| AtomicUsize::new(0)).collect(),
    });
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(client_task(load.clone(), task)))
        .collect();
    let at = |load: &Load| load.started.elapsed();

    // Steady load, then the crash.
    tokio::time::sleep(BEFORE_KILL).await;
    let mut restart = RestartOnDrop {
        server: server_control.clone(),
        armed: true,
    };
    let kill_began = at(&load);
    let kill_took = server_control.run("kill", &[]).await.0;
    let killed = at(&load);
    load.phase.store(1, Ordering::SeqCst);
    tokio::time::sleep(OUTAGE).await;
    assert!(
        !server.running.is_finished(),
        "{name}: the server stopped during the outage"
    );

    // Back, on the same data directory (jongodb: empty).
    let start_began = at(&load);
    let start_took = server_control.run("start", &[]).await.0;
    restart.armed = false;
    let restarted = at(&load);
    // jongodb lost everything: the collection, its unique index and the users come back first.
    // Only sets started after this point are checked on it.
    let floor = if backend.durable() {
        restarted
    } else {
        server
            .store
            .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
            .await
            .expect("schema after the restart");
        for login in &group_b {
            server.store.create_user(login).await.unwrap();
        }
        at(&load)
    };
    load.floor.store(floor.as_micros() as u64, Ordering::SeqCst);

    // Until requests succeed again (the same server: no restart, no reconnect by the test), then
    // until every task has written all its logins a few times more.
    let deadline = Instant::now() + Duration::from_secs(30);
    let counts = |load: &Load| -> Vec<usize> {
        load.sets_after_floor
            .iter()
            .map(|count| count.load(Ordering::SeqCst))
            .collect()
    };
    while counts(&load).iter().all(|&count| count == 0) {
        assert!(
            Instant::now() < deadline,
            "{name}: no set succeeded within 30 s of the database's restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovery_seen = at(&load);
    let deadline = Instant::now() + Duration::from_secs(30);
    while at(&load) < recovery_seen + AFTER_RECOVERY
        || counts(&load)
            .iter()
            .any(|&count| count < SETS_AFTER_RECOVERY)
    {
        assert!(
            Instant::now() < deadline,
            "{name}: the load did not get going again after recovery: {:?}",
            counts(&load)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.stop.store(true, Ordering::SeqCst);
    let mut events = Vec::new();
    for task in tasks {
        events.extend(task.await.expect("a client task panicked"));
    }
    let load_ended = at(&load);
    assert!(!server.running.is_finished(), "{name}: the server stopped");
    events.sort_by_key(|event| event.started);

    // The first success after the restart.
    let recovered = events
        .iter()
        .filter(|event| event.started >= floor && event.succeeded())
        .map(|event| event.ended)
        .min()
        .expect("a success after the restart");

    let mut failures: Vec<String> = Vec::new();
    let mut fail = |failure: String| failures.push(failure);
    let describe = |event: &Event| {
        format!(
            "task {} {:?} {} at {} took {}: {:?}",
            event.task,
            event.op,
            event.login,
            ms(event.started),
            ms(event.latency()),
            event.answer
        )
    };

    // Every answer: fast, an expected status, 503s in SPEC §1's shape.
    for event in &events {
        if event.latency() > MAX_LATENCY {
            fail(format!("slower than {MAX_LATENCY:?}: {}", describe(event)));
        }
        match &event.answer {
            Answer::ClientError(err) => {
                fail(format!("no HTTP answer ({err}): {}", describe(event)))
            }
            Answer::Http {
                status: 503,
                retry_after,
                body,
            } => {
                let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                if json["error"] != "storage_unavailable" || retry_after.is_none() {
                    fail(format!(
                        "a 503 without storage_unavailable and Retry-After: {}",
                        describe(event)
                    ));
                }
            }
            Answer::Http {
                status: 200 | 204, ..
            } => {}
            // jongodb comes back empty: until the users are back, they are not found.
            Answer::Http { status: 404, .. }
                if !backend.durable() && event.ended >= kill_began && event.started < floor => {}
            Answer::Http { .. } => fail(format!("unexpected status: {}", describe(event))),
        }
    }
    // While the database was surely down, only 503.
    let down: Vec<&Event> = events
        .iter()
        .filter(|event| event.started >= killed && event.ended <= start_began)
        .collect();
    if down.is_empty() {
        fail(format!("{name}: no request fell inside the outage"));
    }
    for event in &down {
        if event.status() != Some(503) {
            fail(format!("during the outage, not a 503: {}", describe(event)));
        }
    }
    // After recovery (and a grace period for the pool to replace its dead connections), no
    // request fails.
    for event in events
        .iter()
        .filter(|event| event.started >= recovered + RECOVERY_GRACE)
    {
        if !event.succeeded() {
            fail(format!("after recovery: {}", describe(event)));
        }
    }

    // The histories, and the reads made during the load. On jongodb only sets from the floor on
    // count; one started before the floor but still running after the restart may have been
    // written to the new server: its outcome is unknown.
    let mut histories: HashMap<&str, History> = HashMap::new();
    for event in &events {
        let counts = backend.durable() || event.started >= floor || event.ended >= restarted;
        match (event.op, counts) {
            (Op::Set, true) => {
                let outcome = match event.status() {
                    Some(204) if backend.durable() || event.started >= floor => {
                        SetOutcome::Acknowledged
                    }
                    Some(404) => SetOutcome::NotApplied,
                    _ => SetOutcome::Unknown,
                };
                let value = event.value.clone().unwrap();
                histories
                    .entry(&event.login)
                    .or_default()
                    .push((value, outcome));
            }
            (Op::Get, true) if backend.durable() || event.started >= floor => {
                if let Ok(value) = read_value(&event.answer) {
                    let history = histories.get(event.login.as_str()).map(Vec::as_slice);
                    if let Err(err) = check_read(history.unwrap_or(&[]), value.as_deref()) {
                        fail(format!(
                            "a read during the load: {err}: {}",
                            describe(event)
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    // Read everything back through the server. Group A on jongodb is gone with the kill.
    let mut acknowledged_checked = 0;
    let mut unknown_kept = 0;
    let mut lost_by_jongodb = 0;
    for login in group_a.iter().chain(&group_b) {
        let body = serde_json::json!({ "loginId": login }).to_string();
        let answer = call(&load, "getOwnIDDataByLoginId", body).await;
        if !backend.durable() && login.starts_with('A') {
            if matches!(answer, Answer::Http { status: 404, .. }) {
                lost_by_jongodb += 1;
            }
            continue;
        }
        let history = histories
            .get(login.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let Some(last_ack) = history
            .iter()
            .rposition(|(_, outcome)| *outcome == SetOutcome::Acknowledged)
        else {
            fail(format!(
                "{login}: no set was acknowledged, nothing to check"
            ));
            continue;
        };
        match read_value(&answer) {
            Ok(value) => match check_read(history, value.as_deref()) {
                Ok(()) => {
                    acknowledged_checked += 1;
                    if value.as_deref() != Some(history[last_ack].0.as_str()) {
                        unknown_kept += 1;
                    }
                }
                Err(err) => fail(format!("{login} afterwards: {err}")),
            },
            Err(err) => fail(format!("{login} afterwards: {err}")),
        }
    }

    // The report (`cargo test -- --nocapture` shows it).
    let mut by_phase: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for event in &events {
        let phase = if event.ended < kill_began {
            "1 before the kill"
        } else if event.started < start_began {
            "2 kill and outage"
        } else if event.started < recovered {
            "3 restart to recovery"
        } else {
            "4 after recovery"
        };
        let status = event
            .status()
            .map_or_else(|| "client error".to_owned(), |status| status.to_string());
        *by_phase
            .entry(phase)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    let max_latency = events.iter().map(Event::latency).max().unwrap_or_default();
    let max_503 = events
        .iter()
        .filter(|event| event.status() == Some(503))
        .map(Event::latency)
        .max()
        .unwrap_or_default();
    let first_failure = events
        .iter()
        .filter(|event| event.ended >= kill_began && !event.succeeded())
        .map(|event| event.ended)
        .min()
        .unwrap_or_default();
    let last_ack_before_kill = events
        .iter()
        .filter(|event| event.op == Op::Set && event.status() == Some(204))
        .filter(|event| event.ended <= kill_began + kill_took)
        .map(|event| event.ended)
        .max()
        .unwrap_or_default();
    println!(
        "{name}: {} requests over {TASKS} connections in {}; before the kill {}; kill took {} \
         (from its start: last acknowledged set {}, first failed answer {}); outage {}; start \
         took {}; first success {} after the start; load after that {}",
        events.len(),
        ms(load_ended),
        ms(kill_began),
        ms(kill_took),
        ms(last_ack_before_kill.saturating_sub(kill_began)),
        ms(first_failure.saturating_sub(kill_began)),
        ms(start_began - killed),
        ms(start_took),
        ms(recovered - restarted),
        ms(load_ended - recovered),
    );
    for (phase, statuses) in &by_phase {
        println!("{name}:   {phase}: {statuses:?}");
    }
    println!(
        "{name}: {} requests while surely down, all 503: {}; max latency {} (503s: {}); \
         {acknowledged_checked} logins read back with their last acknowledged value or a later \
         unacknowledged one ({unknown_kept} the latter)",
        down.len(),
        down.iter().all(|event| event.status() == Some(503)),
        ms(max_latency),
        ms(max_503),
    );
    if !backend.durable() {
        println!(
            "{name}: jongodb is in memory: {lost_by_jongodb} of {} logins written before the \
             kill are gone, as expected; durability across a crash is not provable on it",
            group_a.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{name}: {} failure(s), the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}
