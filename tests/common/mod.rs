//! A `TestApp` per test: a fresh SQLite file, the real `App` endpoint, and one helper per kind of
//! request. Signed requests are signed exactly like OwnID signs them.

#![allow(dead_code)] // each test binary uses a different subset

pub mod apps;
pub mod existing;
pub mod replay;
pub mod transfer;
pub mod users;

use std::sync::Arc;

use ownid_bridge::app::{self, App};
use ownid_bridge::config::Config;
use ownid_bridge::secret::Secret;
use ownid_bridge::signature::{now_ms, SignatureVerifier};
use ownid_bridge::storage;
use ownid_bridge_store::UserStore;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::EndpointExt;
use serde_json::Value;

/// SPEC §2's test vector secret.
pub const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const JWT_SECRET: &str = "integration-test-jwt-secret-32-bytes-or-more";

pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static>>,
    pub store: Arc<dyn UserStore>,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: poem::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }

    /// Asserts an error response of SPEC §1: the status, a JSON body with `error` and a
    /// non-empty `message`, and nothing else.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "body: {}", self.body);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {}",
            self.body
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "extra fields: {}",
            self.body
        );
        let content_type = self.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
    }

    pub fn assert_empty(&self, status: u16) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body, "", "expected an empty body");
    }
}

/// Config for tests: the vector's secret, a fixed JWT secret, SQLite in `dir`, then `overrides`
/// as `OWNID_BRIDGE__...` environment pairs.
pub fn test_config(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Config {
    let yaml = format!(
        "ownid: {{ shared_secret: \"{SECRET}\" }}\n\
         session: {{ secret: \"{JWT_SECRET}\" }}\n\
         storage: {{ url: \"sqlite://{}\" }}\n",
        dir.join("test.db").display()
    );
    let env: Vec<(String, String)> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_yaml(&yaml, &env).expect("test config")
}

pub async fn spawn(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), overrides);
    let store = storage::open(&config.storage, true)
        .await
        .expect("open store");
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema");
    spawn_with_store(config, store, dir)
}

pub fn spawn_with_store(
    config: Config,
    store: Arc<dyn UserStore>,
    dir: tempfile::TempDir,
) -> TestApp {
    let (app, _) = App::new(config.clone(), store.clone()).expect("app");
    TestApp {
        client: TestClient::new(app.endpoint().boxed()),
        store,
        config,
        dir,
    }
}

pub fn verifier() -> SignatureVerifier {
    SignatureVerifier::new(&Secret::new(SECRET), std::time::Duration::from_secs(60)).unwrap()
}

pub fn sign(body: &str, timestamp: &str) -> String {
    verifier().sign(body.as_bytes(), timestamp)
}

impl TestApp {
    pub fn path(&self, operation: &str) -> String {
        format!("{}/{operation}", self.config.server.base_path)
    }

    /// POST with the given headers and raw body.
    pub async fn post(&self, operation: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.post(self.path(operation)).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await).await
    }

    /// POST signed now with the right secret, as OwnID would.
    pub async fn signed(&self, operation: &str, body: &str) -> Reply {
        let timestamp = fresh_timestamp();
        let signature = sign(body, &timestamp);
        self.post(
            operation,
            body,
            &[
                ("content-type", "application/json"),
                ("ownid-timestamp", &timestamp),
                ("ownid-signature", &signature),
            ],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(path).send().await).await
    }

    pub async fn set_data(&self, login_id: &str, data: &str) -> Reply {
        let body = serde_json::json!({ "loginId": login_id, "ownIdData": data }).to_string();
        self.signed("setOwnIDDataByLoginId", &body).await
    }

    pub async fn get_data(&self, login_id: &str) -> Reply {
        let body = serde_json::json!({ "loginId": login_id }).to_string();
        self.signed("getOwnIDDataByLoginId", &body).await
    }

    pub async fn session(&self, login_id: &str) -> Reply {
        let body = serde_json::json!({ "loginId": login_id }).to_string();
        self.signed("getSessionByLoginId", &body).await
    }

    pub async fn add_user(&self, login_id: &str) {
        assert!(self.store.create_user(login_id).await.unwrap());
    }
}

pub async fn read(response: poem::test::TestResponse) -> Reply {
    let response = response.0;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().into_string().await.unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

/// Config for `backend` at `url`, on a fresh table `<prefix>_<uuid>` created as the demo table,
/// then `overrides`.
pub fn backend_config(
    backend: &str,
    url: &str,
    prefix: &str,
    overrides: &[(&str, &str)],
) -> Config {
    // A table of its own, unless the overrides name one (instances sharing a table); each
    // default here gives way to an override of the same key (figment keeps the first).
    let table = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let defaults = [
        ("OWNID_BRIDGE__STORAGE__BACKEND", backend),
        ("OWNID_BRIDGE__STORAGE__URL", url),
        ("OWNID_BRIDGE__STORAGE__CREATE_DEMO_TABLE", "true"),
        ("OWNID_BRIDGE__STORAGE__USERS__TABLE", table.as_str()),
    ];
    let env: Vec<(String, String)> = defaults
        .iter()
        .filter(|(key, _)| !overrides.iter().any(|(overridden, _)| overridden == key))
        .chain(overrides)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let yaml = format!(
        "ownid: {{ shared_secret: \"{SECRET}\" }}\nsession: {{ secret: \"{JWT_SECRET}\" }}\n"
    );
    Config::from_yaml(&yaml, &env).expect("config")
}

/// The server over TCP, started as `serve` starts it ([`ownid_bridge::app::start`], the one
/// composition root), on `store` (open, with its schema): on the config's `server.listen` (use
/// port 0; [`app::Ready::addr`] is the real one), with a 1 s shutdown timeout, logging errors
/// only. Dropping the answer leaves it serving; [`app::Ready::stop`] stops it.
pub async fn serve_tcp(
    mut config: Config,
    store: Arc<dyn UserStore>,
) -> (std::net::SocketAddr, app::Ready) {
    config.server.shutdown_timeout = std::time::Duration::from_secs(1);
    config.log.level = "error".into();
    let server = app::start(config, app::MissingSecrets::Refuse)
        .await
        .expect("start")
        .serve(vec![store]);
    (server.addr(), server)
}

/// What a [`ScriptedStore`] does to the next data-path call (get, set, session).
#[derive(Default)]
pub struct Script {
    /// Fail the next data-path call with this error.
    pub fail_next: std::sync::Mutex<Option<ownid_bridge_store::StoreError>>,
    /// While set, data-path calls wait for a permit of this semaphore.
    pub gate: std::sync::Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    /// Notified when a data-path call reaches the store.
    pub entered: tokio::sync::Notify,
    /// Fail this many of the next data-path calls with `StoreError::Contention` (as a
    /// serialization failure or a deadlock would).
    pub contention: std::sync::atomic::AtomicU32,
    /// Fail the replay guard's next reservation with this error (`replay_protection: storage`).
    pub fail_reserve: std::sync::Mutex<Option<ownid_bridge_store::StoreError>>,
    /// Fail the replay guard's next `mark_used` with this error.
    pub fail_mark_used: std::sync::Mutex<Option<ownid_bridge_store::StoreError>>,
}

impl Script {
    /// Holds data-path calls until `release` (or until the gate is removed).
    pub fn hold(&self) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *self.gate.lock().unwrap() = Some(gate.clone());
        gate
    }

    pub fn open(&self) {
        if let Some(gate) = self.gate.lock().unwrap().take() {
            gate.add_permits(1 << 20);
        }
    }
}

/// A store that delegates to a real one, with failures and pauses injected by a [`Script`].
pub struct ScriptedStore {
    pub inner: Arc<dyn UserStore>,
    pub script: Arc<Script>,
}

impl ScriptedStore {
    async fn before(&self) -> Result<(), ownid_bridge_store::StoreError> {
        self.script.entered.notify_one();
        let gate = self.script.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.acquire().await.expect("gate open").forget();
        }
        use std::sync::atomic::Ordering;
        let contended = self
            .script
            .contention
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if contended {
            return Err(ownid_bridge_store::StoreError::Contention(
                "could not serialize access due to concurrent update".into(),
            ));
        }
        match self.script.fail_next.lock().unwrap().take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl UserStore for ScriptedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn get_ownid_data(
        &self,
        login_id: &str,
    ) -> Result<Option<String>, ownid_bridge_store::StoreError> {
        self.before().await?;
        self.inner.get_ownid_data(login_id).await
    }

    async fn set_ownid_data(
        &self,
        login_id: &str,
        ownid_data: &str,
        create_missing: bool,
    ) -> Result<ownid_bridge_store::SetOutcome, ownid_bridge_store::StoreError> {
        self.before().await?;
        self.inner
            .set_ownid_data(login_id, ownid_data, create_missing)
            .await
    }

    async fn get_session_user(
        &self,
        login_id: &str,
    ) -> Result<ownid_bridge_store::SessionUser, ownid_bridge_store::StoreError> {
        self.before().await?;
        self.inner.get_session_user(login_id).await
    }

    async fn create_user(&self, login_id: &str) -> Result<bool, ownid_bridge_store::StoreError> {
        self.inner.create_user(login_id).await
    }

    async fn ping(&self) -> Result<(), ownid_bridge_store::StoreError> {
        self.inner.ping().await
    }

    async fn export_ownid_data(
        &self,
        batch: usize,
        sink: ownid_bridge_store::ExportSink<'_>,
    ) -> Result<u64, ownid_bridge_store::StoreError> {
        self.inner.export_ownid_data(batch, sink).await
    }

    async fn inspect(
        &self,
    ) -> Result<ownid_bridge_store::SchemaReport, ownid_bridge_store::StoreError> {
        self.inner.inspect().await
    }

    async fn apply_schema(
        &self,
        options: &ownid_bridge_store::SchemaOptions,
    ) -> Result<ownid_bridge_store::SchemaChanges, ownid_bridge_store::StoreError> {
        self.inner.apply_schema(options).await
    }

    fn signature_ledger(
        &self,
        table: &ownid_bridge_store::Identifier,
    ) -> Option<Arc<dyn ownid_bridge_store::SignatureLedger>> {
        let inner = self.inner.signature_ledger(table)?;
        Some(Arc::new(ScriptedLedger {
            inner,
            script: self.script.clone(),
        }))
    }
}

/// The real store's replay table, with failures injected by a [`Script`].
struct ScriptedLedger {
    inner: Arc<dyn ownid_bridge_store::SignatureLedger>,
    script: Arc<Script>,
}

#[async_trait::async_trait]
impl ownid_bridge_store::SignatureLedger for ScriptedLedger {
    async fn reserve(
        &self,
        reserve: &ownid_bridge_store::Reserve<'_>,
    ) -> Result<ownid_bridge_store::Claim, ownid_bridge_store::StoreError> {
        if let Some(err) = self.script.fail_reserve.lock().unwrap().take() {
            return Err(err);
        }
        self.inner.reserve(reserve).await
    }

    async fn mark_used(
        &self,
        signature: &str,
        holder: i64,
    ) -> Result<bool, ownid_bridge_store::StoreError> {
        if let Some(err) = self.script.fail_mark_used.lock().unwrap().take() {
            return Err(err);
        }
        self.inner.mark_used(signature, holder).await
    }

    async fn release(
        &self,
        signature: &str,
        holder: i64,
    ) -> Result<(), ownid_bridge_store::StoreError> {
        self.inner.release(signature, holder).await
    }

    async fn forget_expired(&self, before_ms: i64) -> Result<u64, ownid_bridge_store::StoreError> {
        self.inner.forget_expired(before_ms).await
    }

    async fn inspect(
        &self,
    ) -> Result<ownid_bridge_store::SchemaCheck, ownid_bridge_store::StoreError> {
        self.inner.inspect().await
    }

    async fn apply_schema(
        &self,
        dry_run: bool,
    ) -> Result<Vec<String>, ownid_bridge_store::StoreError> {
        self.inner.apply_schema(dry_run).await
    }
}

/// `spawn` on a [`ScriptedStore`] over the test's SQLite store.
pub async fn spawn_scripted(overrides: &[(&str, &str)]) -> (TestApp, Arc<Script>) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), overrides);
    let inner = storage::open(&config.storage, true)
        .await
        .expect("open store");
    storage::apply_schema(
        &config,
        inner.as_ref(),
        &ownid_bridge_store::SchemaOptions::CREATE_TABLE,
    )
    .await
    .expect("schema");
    let script = Arc::new(Script::default());
    let store: Arc<dyn UserStore> = Arc::new(ScriptedStore {
        inner,
        script: script.clone(),
    });
    (spawn_with_store(config, store, dir), script)
}

/// Now, in Unix milliseconds, and never the same value twice in this process: two identical
/// bodies signed within one millisecond would otherwise carry the same signature, which replay
/// protection (on by default) refuses.
pub fn fresh_timestamp() -> String {
    static LAST: std::sync::Mutex<i128> = std::sync::Mutex::new(0);
    let mut last = LAST.lock().unwrap();
    *last = now_ms().max(*last + 1);
    last.to_string()
}

/// `ownid-timestamp` and `ownid-signature` for `body`, signed now.
pub fn signed_now(body: &str) -> (String, String) {
    let timestamp = fresh_timestamp();
    let signature = sign(body, &timestamp);
    (timestamp, signature)
}

/// What `serve` printed on its standard output (piped) once it listens: the base URL from its
/// first line (`... listening on URL`), and the lines that followed it (read until none comes
/// for 200 ms).
pub async fn read_banner(child: &mut tokio::process::Child) -> (String, String) {
    use tokio::io::AsyncBufReadExt as _;
    let mut lines =
        tokio::io::BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server printed nothing within 30 s")
        .unwrap()
        .expect("the server exited before listening");
    let url = first
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .trim()
        .to_owned();
    let mut rest = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_millis(200), lines.next_line()).await
    {
        rest.push_str(&line);
        rest.push('\n');
    }
    (url, rest)
}

/// Everything a child process wrote to its standard error (piped), read to its end.
pub async fn read_stderr(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncReadExt;
    let mut logs = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut logs)
        .await
        .unwrap();
    logs
}

/// A database of its own for one test, as `#[sqlx::test]` gives: `backend`'s URL on a new
/// SQLite file (removed with the value), or a new database on the test server of PostgreSQL
/// (`OWNID_TEST_POSTGRES_URL`), MySQL/MariaDB (`OWNID_TEST_MYSQL_URL`) or MongoDB
/// (`OWNID_TEST_MONGODB_URL`), named `prefix_<uuid>`. Databases on a server are left to the
/// throwaway server (scripts/servers/with.sh removes it).
pub async fn fresh_database(backend: &str, prefix: &str) -> FreshDatabase {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let (url, dir) = match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}",
                dir.path().join(format!("{name}.db")).display()
            );
            (url, Some(dir))
        }
        "postgres" => {
            let base = ownid_bridge_store::outage::required_url("OWNID_TEST_POSTGRES_URL");
            let admin = sqlx::PgPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let mut url = url::Url::parse(&base).expect("OWNID_TEST_POSTGRES_URL is a URL");
            url.set_path(&name);
            (url.to_string(), None)
        }
        "mysql" | "mariadb" => {
            let base = ownid_bridge_store::outage::required_url("OWNID_TEST_MYSQL_URL");
            let admin = sqlx::MySqlPool::connect(&base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            (format!("{}/{name}", base.trim_end_matches('/')), None)
        }
        "mongodb" => {
            // Created by its first write.
            let base = ownid_bridge_store::outage::required_url("OWNID_TEST_MONGODB_URL");
            (format!("{}/{name}", base.trim_end_matches('/')), None)
        }
        other => panic!("no test database for backend {other:?}"),
    };
    FreshDatabase { url, _dir: dir }
}

/// See [`fresh_database`].
pub struct FreshDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh database (see [`fresh_database`]) on the test MySQL/MariaDB server, as a URL.
pub async fn mysql_test_database(prefix: &str) -> String {
    fresh_database("mysql", prefix).await.url
}

/// A fresh database (see [`fresh_database`]) on the test MongoDB server, as a URL.
pub async fn mongodb_test_database(prefix: &str) -> String {
    fresh_database("mongodb", prefix).await.url
}

/// A request as OwnID signs it, sent as is to any instance.
pub struct Signed {
    pub operation: &'static str,
    pub body: String,
    pub timestamp: String,
    pub signature: String,
}

impl Signed {
    pub fn set(login_id: &str, data: &str) -> Self {
        let body = serde_json::json!({ "loginId": login_id, "ownIdData": data }).to_string();
        let (timestamp, signature) = signed_now(&body);
        Signed {
            operation: "setOwnIDDataByLoginId",
            body,
            timestamp,
            signature,
        }
    }

    pub fn session(login_id: &str) -> Self {
        let body = serde_json::json!({ "loginId": login_id }).to_string();
        let (timestamp, signature) = signed_now(&body);
        Signed {
            operation: "getSessionByLoginId",
            body,
            timestamp,
            signature,
        }
    }

    pub async fn send(&self, app: &TestApp) -> Reply {
        app.post(
            self.operation,
            &self.body,
            &[
                ("content-type", "application/json"),
                ("ownid-timestamp", &self.timestamp),
                ("ownid-signature", &self.signature),
            ],
        )
        .await
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Galera nodes' URLs (`OWNID_TEST_GALERA_URLS`) with `database`, created once through the
/// first node (Galera replicates the DDL).
pub async fn galera_node_urls(database: &str) -> Vec<String> {
    let urls: Vec<String> = ownid_bridge_store::outage::required_url("OWNID_TEST_GALERA_URLS")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(urls.len(), 3, "three Galera nodes: {urls:?}");
    let admin = sqlx::MySqlPool::connect(&urls[0]).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE IF NOT EXISTS {database}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    urls.iter()
        .map(|url| format!("{}/{database}", url.trim_end_matches('/')))
        .collect()
}

/// Checks that `reply` is how the shared replay guard refuses a copy of a request another
/// instance accepted: `401 replayed_request`, or `503 request_in_flight` while it is answered.
/// Returns the status and the code.
pub fn assert_refused_copy(reply: &Reply, context: &str) -> (u16, String) {
    let code = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        matches!(
            (reply.status, code.as_str()),
            (401, "replayed_request") | (503, "request_in_flight")
        ),
        "{context}: {} {}",
        reply.status,
        reply.body
    );
    (reply.status, code)
}

/// The app over `backend` at `url`, on a fresh table `<prefix>_<uuid>` (created), with
/// configuration overrides.
pub async fn app_on(backend: &str, url: &str, prefix: &str, overrides: &[(&str, &str)]) -> TestApp {
    let config = backend_config(backend, url, prefix, overrides);
    let store = storage::open(&config.storage, true).await.expect("open");
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema");
    spawn_with_store(config, store, tempfile::tempdir().unwrap())
}

impl TestApp {
    /// Runs the real binary with `args` on this app's storage (configured through the
    /// environment only: backend, URL, table, normalization, then `env`), with `stdin` as its
    /// standard input: exit code, stdout, stderr.
    pub async fn cli(
        &self,
        args: &[&str],
        stdin: &str,
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        use tokio::io::AsyncWriteExt as _;
        let storage = &self.config.storage;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("OWNID_BRIDGE_CONFIG")
            .env("OWNID_BRIDGE__STORAGE__BACKEND", storage.backend.name())
            .env("OWNID_BRIDGE__STORAGE__URL", storage.url.expose())
            .env(
                "OWNID_BRIDGE__STORAGE__USERS__TABLE",
                storage.users.table.to_string(),
            )
            .env(
                "OWNID_BRIDGE__OWNID__LOGIN_ID_NORMALIZATION",
                format!("{:?}", self.config.ownid.login_id_normalization).to_lowercase(),
            )
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let output = child.wait_with_output().await.unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// A throwaway server that a test kills and starts again: `scripts/servers/<script> ACTION DIR
/// [ARGS]` with the directory scripts/servers/with.sh exported. Never skipped: a server given by
/// URL has no directory, and the test fails.
#[derive(Clone, Debug)]
pub struct ServerControl {
    script: &'static str,
    dir: String,
}

impl ServerControl {
    /// `script` (e.g. `haproxy.sh`) on `dir`.
    pub fn new(script: &'static str, dir: &std::path::Path) -> Self {
        ServerControl {
            script,
            dir: dir.display().to_string(),
        }
    }

    /// `script` (e.g. `postgres.sh`) on the directory named by the environment `variable`.
    pub fn from_env(script: &'static str, variable: &str) -> Self {
        match std::env::var(variable) {
            Ok(dir) if !dir.is_empty() => ServerControl { script, dir },
            _ => panic!(
                "{variable} is not set: this test kills and starts the throwaway servers that \
                 scripts/servers/with.sh starts (scripts/test.sh runs the suite with them); a \
                 server given by URL cannot be killed"
            ),
        }
    }

    fn command(&self, action: &str, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(format!("scripts/servers/{}", self.script));
        command
            .arg(action)
            .arg(&self.dir)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::null());
        command
    }

    /// Runs the action to its end, fails the test when it fails; how long it took and what it
    /// printed.
    pub async fn run(&self, action: &str, args: &[&str]) -> (std::time::Duration, String) {
        let started = std::time::Instant::now();
        let output = tokio::process::Command::from(self.command(action, args))
            .output()
            .await
            .unwrap_or_else(|err| panic!("scripts/servers/{}: {err}", self.script));
        assert!(
            output.status.success(),
            "scripts/servers/{} {action} {} {args:?} failed ({}):\n{}{}",
            self.script,
            self.dir,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (
            started.elapsed(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
    }

    /// The same from a `Drop` (no runtime): best effort, for a test failing while a server is
    /// down, so that the tests after it find the server running.
    pub fn run_blocking(&self, action: &str, args: &[&str]) {
        let status = self.command(action, args).status();
        eprintln!(
            "scripts/servers/{} {action} {} {args:?}: {status:?}",
            self.script, self.dir
        );
    }
}

/// Overrides that bound every statement to one second.
pub const STATEMENT_TIMEOUT: [(&str, &str); 1] =
    [("OWNID_BRIDGE__STORAGE__POOL__STATEMENT_TIMEOUT", "1s")];

/// `send` while another session holds the table: answered 503 with `Retry-After` once the
/// statement timeout (1 s) runs out, not after the lock is released.
pub async fn held_up_by_a_lock_is_503(app: &TestApp, send: impl AsyncFn(&TestApp) -> Reply) {
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), send(app))
        .await
        .expect("still waiting for the lock after 10 s");
    reply.assert_error(503, "storage_unavailable");
    assert!(reply.headers.get("retry-after").is_some());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "answered after {:?}",
        started.elapsed()
    );
}

/// Tests of one `group` run together, never alongside another group's: each binary holds tests
/// that used to be binaries of their own (run one after the other by cargo), and some must not
/// overlap (Galera nodes killed under another test's writes, 256 connections to PostgreSQL,
/// time limits measured under load). Hold the guard for the whole test.
pub async fn exclusive(group: &'static str) -> Exclusive {
    loop {
        {
            let mut running = EXCLUSIVE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match *running {
                None => {
                    *running = Some((group, 1));
                    return Exclusive;
                }
                Some((current, ref mut count)) if current == group => {
                    *count += 1;
                    return Exclusive;
                }
                Some(_) => {}
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

static EXCLUSIVE: std::sync::Mutex<Option<(&'static str, usize)>> = std::sync::Mutex::new(None);

/// Held by a test of the group [`exclusive`] let in.
pub struct Exclusive;

impl Drop for Exclusive {
    fn drop(&mut self) {
        let mut running = EXCLUSIVE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, count)) = running.as_mut() {
            *count -= 1;
            if *count == 0 {
                *running = None;
            }
        }
    }
}
