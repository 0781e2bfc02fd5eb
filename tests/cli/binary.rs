//! The real binary: a config file, port 0, a signed round trip over TCP, the CLI around it, and a
//! graceful stop on SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{fresh_timestamp, sign, JWT_SECRET, SECRET};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary under test, as cargo built it.
fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ownid-bridge")
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("ownid-bridge.yaml");
    let yaml = format!(
        "server:\n  listen: \"127.0.0.1:0\"\n\
         ownid:\n  shared_secret: \"${{TEST_OWNID_SECRET}}\"\n\
         session:\n  secret_file: \"{}\"\n\
         storage:\n  url: \"sqlite://{}\"\n{extra}",
        dir.join("jwt-secret").display(),
        dir.join("bridge.db").display()
    );
    std::fs::write(dir.join("jwt-secret"), format!("{JWT_SECRET}\n")).unwrap();
    std::fs::write(&path, yaml).unwrap();
    path
}

fn command(config: &Path) -> Command {
    let mut command = Command::new(bin());
    command
        .arg("--config")
        .arg(config)
        .env("TEST_OWNID_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .env_remove("OWNID_BRIDGE_CONFIG")
        .kill_on_drop(true);
    command
}

async fn run(config: &Path, args: &[&str]) -> (i32, String, String) {
    let output = command(config).args(args).output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `serve` and returns the child and its base URL, read from its first line.
async fn start(config: &Path) -> (Child, String) {
    let mut child = command(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, rest) = crate::common::read_banner(&mut child).await;
    assert!(
        rest.contains(&format!("Swagger UI:      {url}/docs")),
        "{rest}"
    );
    // A configured secret is never printed.
    assert!(
        !rest.contains(SECRET) && !rest.contains("shared secret:"),
        "{rest}"
    );
    (child, url)
}

async fn post(url: &str, operation: &str, body: &str) -> (u16, String) {
    let timestamp = fresh_timestamp();
    let signature = sign(body, &timestamp);
    post_with(url, operation, body.to_owned(), &timestamp, &signature).await
}

#[tokio::test]
async fn a_signed_round_trip_over_tcp_and_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (code, out, err) = run(&config, &["users", "add", "alice@example.com"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "added alice@example.com");

    let (child, url) = start(&config).await;
    let secret_data = "device-record-that-must-not-be-logged";
    let set = format!(r#"{{"loginId":"alice@example.com","ownIdData":"{secret_data}"}}"#);
    assert_eq!(
        post(&url, "setOwnIDDataByLoginId", &set).await,
        (204, String::new())
    );
    let (status, body) = post(
        &url,
        "getOwnIDDataByLoginId",
        r#"{"loginId":"alice@example.com"}"#,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!(r#"{{"ownIdData":"{secret_data}"}}"#).as_str())
    );
    let (status, body) = post(
        &url,
        "getSessionByLoginId",
        r#"{"loginId":"alice@example.com"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        post(
            &url,
            "getSessionByLoginId",
            r#"{"loginId":"bob@example.com"}"#
        )
        .await
        .0,
        404
    );

    // `sign --send` talks to the same server.
    let base = format!("{url}/ownid");
    let (code, out, err) = run(
        &config,
        &[
            "sign",
            "getOwnIDDataByLoginId",
            r#"{"loginId":"alice@example.com"}"#,
            "--send",
            "--url",
            &base,
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("200 OK"), "{out}");
    // Without --send it prints a curl command that carries the signature.
    let (code, out, _) = run(
        &config,
        &[
            "sign",
            "getOwnIDDataByLoginId",
            r#"{"loginId":"alice@example.com"}"#,
            "--url",
            &base,
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("curl -i -X POST 'http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("-H 'ownid-signature: "), "{out}");

    let logs = stop(child).await;
    assert!(
        logs.contains("getOwnIDDataByLoginId") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(logs.contains("request_id="), "{logs}");
    for leaked in [secret_data, SECRET, JWT_SECRET, token.as_str()] {
        assert!(
            !logs.contains(leaked),
            "{leaked} leaked into the log:\n{logs}"
        );
    }
}

#[tokio::test]
async fn start_up_refuses_a_shared_secret_that_is_not_base64() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let output = command(&config)
        .env("TEST_OWNID_SECRET", "this is not base64!")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("ownid.shared_secret is not valid base64"),
        "{err}"
    );
    assert!(!err.contains("this is not base64!"), "{err}");
}

#[tokio::test]
async fn config_errors_name_the_key_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "  users: { tabel: people }\n");
    let (code, _, err) = run(&config, &["check"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("storage.users.tabel: unknown field `tabel`"),
        "{err}"
    );

    let config = write_config(dir.path(), "");
    let output = command(&config)
        .env_remove("TEST_OWNID_SECRET")
        .arg("check")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("ownid.shared_secret: environment variable TEST_OWNID_SECRET is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn check_reports_and_schema_repairs_an_existing_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bridge.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE people (email TEXT NOT NULL, name TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let config = write_config(
        dir.path(),
        "  users: { table: people, login_id: email, ownid_data: ownid_data }\n",
    );
    let (code, out, err) = run(&config, &["check"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAIL ownid_data column"), "{out}");
    // check changed nothing: a second check reports the same.
    assert_eq!(run(&config, &["check"]).await.1, out);
    // serve refuses a table without the column, and says what to run.
    let (code, _, err) = run(&config, &["serve"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("ownid-bridge schema"), "{err}");

    let (code, out, err) = run(&config, &["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ADD COLUMN \"ownid_data\""), "{out}");
    assert!(out.contains("CREATE UNIQUE INDEX"), "{out}");
    let (code, out, _) = run(&config, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

/// `ownid.replay_protection: storage`: `check` reports the replay table, `serve` refuses to start
/// without it (outside the demo database), and `schema` creates it.
#[tokio::test]
async fn check_serve_and_schema_know_the_shared_replay_table() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "  create_demo_table: false\n");
    // The users table, made while the replay guard is in memory: no replay table yet. Without
    // the demo table, `schema` creates a users table only when told to.
    let (code, _, err) = run(&config, &["schema"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--create-table"), "{err}");
    let (code, out, err) = run(&config, &["schema", "--create-table"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("ownid_replay_guard"), "{out}");
    let shared = |args: &'static [&'static str]| {
        let mut command = command(&config);
        command
            .env("OWNID_BRIDGE__OWNID__REPLAY_PROTECTION", "storage")
            .args(args);
        async move {
            let output = command.output().await.unwrap();
            (
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let (code, out, _) = shared(&["check"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL replay guard table: ownid_replay_guard"),
        "{out}"
    );
    let (code, _, err) = shared(&["serve"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("replay guard table") && err.contains("ownid-bridge schema"),
        "{err}"
    );
    let (code, out, err) = shared(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("applied: CREATE TABLE IF NOT EXISTS \"ownid_replay_guard\""),
        "{out}"
    );
    let (code, out, _) = shared(&["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok   replay guard table: ownid_replay_guard is ready"),
        "{out}"
    );
}

#[tokio::test]
async fn check_does_not_create_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (code, out, _) = run(&config, &["check"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL storage"), "{out}");
    assert!(!dir.path().join("bridge.db").exists());
}

#[tokio::test]
async fn without_any_configuration_it_generates_secrets_and_the_demo_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bare_command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
    {
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("JWT secret") {
            break;
        }
    }
    assert!(
        printed.contains("listening on http://127.0.0.1:"),
        "{printed}"
    );
    assert!(printed.contains("/docs"), "{printed}");
    assert!(printed.contains("for local trial only"), "{printed}");
    let secret = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("shared secret:"))
        .expect("a generated secret is printed")
        .trim()
        .to_owned();
    assert_eq!(secret.len(), 44, "{secret}");
    assert!(dir.path().join("ownid-bridge.db").exists());
    child.kill().await.unwrap();
}

/// Runs `command` to its end; a server that starts instead of refusing fails the test.
async fn exits(mut command: Command) -> (i32, String, String) {
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the server started instead of refusing to (still running after 30 s)")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A configuration file without the shared secret and the session secret.
fn write_config_without_secrets(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("no-secrets.yaml");
    let yaml = format!(
        "server:\n  listen: \"127.0.0.1:0\"\nstorage:\n  url: \"sqlite://{}\"\n",
        dir.join("bridge.db").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The binary without a configuration file or any `OWNID_BRIDGE__` variable from this process.
fn bare_command(dir: &Path) -> Command {
    let mut command = Command::new(bin());
    command
        .current_dir(dir)
        .env_remove("OWNID_BRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("OWNID_BRIDGE__") {
            command.env_remove(key);
        }
    }
    command
}

#[tokio::test]
async fn a_missing_secret_stops_start_up_once_anything_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    // A configuration file without the shared secret.
    let config = write_config_without_secrets(dir.path());
    let mut command = bare_command(dir.path());
    command.arg("--config").arg(&config).arg("serve");
    let (code, out, err) = exits(command).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("ownid.shared_secret"), "{err}");
    assert!(!out.contains("shared secret:"), "{out}");

    // No file, but the environment configures the server: a forgotten secret variable.
    let mut command = bare_command(dir.path());
    command
        .env("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0")
        .env(
            "OWNID_BRIDGE__STORAGE__URL",
            format!("sqlite://{}", dir.path().join("env.db").display()),
        )
        .arg("serve");
    let (code, out, err) = exits(command).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("ownid.shared_secret"), "{err}");
    assert!(!out.contains("shared secret:"), "{out}");

    // The shared secret is set, the session secret forgotten.
    let mut command = bare_command(dir.path());
    command
        .env("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0")
        .env("OWNID_BRIDGE__OWNID__SHARED_SECRET", SECRET)
        .arg("serve");
    let (code, out, err) = exits(command).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("session.secret"), "{err}");
    assert!(!out.contains("JWT secret:"), "{out}");
}

#[tokio::test]
async fn a_shared_secret_shorter_than_16_bytes_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    // "short-secret" is 12 bytes.
    let short = "c2hvcnQtc2VjcmV0";
    let mut command = command(&config);
    command.env("TEST_OWNID_SECRET", short);
    let (code, out, err) = exits(command).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("ownid.shared_secret"), "{err}");
    assert!(err.contains("at least 16"), "{err}");
    assert!(!err.contains(short), "{err}");

    let path = dir.path().join("previous.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  listen: \"127.0.0.1:0\"\n\
             ownid:\n  shared_secret: \"{SECRET}\"\n  previous_shared_secrets: [\"{short}\"]\n\
             session:\n  secret: \"{JWT_SECRET}\"\n\
             storage:\n  url: \"sqlite://{}\"\n",
            dir.path().join("bridge.db").display()
        ),
    )
    .unwrap();
    let mut command = bare_command(dir.path());
    command.arg("--config").arg(&path).arg("serve");
    let (code, out, err) = exits(command).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("ownid.previous_shared_secrets[0]"), "{err}");
    assert!(err.contains("at least 16"), "{err}");
    assert!(!err.contains(short), "{err}");
}

async fn post_signed_by(
    url: &str,
    operation: &str,
    body: &str,
    verifier: &ownid_bridge::signature::SignatureVerifier,
) -> (u16, String) {
    let timestamp = fresh_timestamp();
    let signature = verifier.sign(body.as_bytes(), &timestamp);
    post_with(url, operation, body.to_owned(), &timestamp, &signature).await
}

/// SIGTERM, then the exit status and everything the server logged.
async fn stop(mut child: Child) -> String {
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server did not stop within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    crate::common::read_stderr(&mut child).await
}

#[tokio::test]
async fn a_previous_secret_past_its_expiry_is_refused_and_warned_about() {
    use ownid_bridge::secret::Secret;
    use ownid_bridge::signature::SignatureVerifier;
    let dir = tempfile::tempdir().unwrap();
    let current = "Y3VycmVudC1zZWNyZXQtY3VycmVudC1zZWNyZXQtY3VycmVudA==";
    let still_valid = "bmV3LXNoYXJlZC1zZWNyZXQtbmV3LXNoYXJlZC1zZWNyZXQ=";
    let plain = "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ=";
    let path = dir.path().join("expiry.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  listen: \"127.0.0.1:0\"\n\
             ownid:\n  shared_secret: \"{current}\"\n  previous_shared_secrets:\n\
             \x20   - {{ secret: \"{SECRET}\", expires: \"2020-01-01T00:00:00Z\" }}\n\
             \x20   - {{ secret: \"{still_valid}\", expires: \"2999-01-01T00:00:00Z\" }}\n\
             \x20   - \"{plain}\"\n\
             session:\n  secret: \"{JWT_SECRET}\"\n\
             storage:\n  url: \"sqlite://{}\"\n",
            dir.path().join("bridge.db").display()
        ),
    )
    .unwrap();
    let (child, url) = start(&path).await;
    let signer = |secret: &str| {
        SignatureVerifier::new(&Secret::new(secret), Duration::from_secs(60)).unwrap()
    };
    let body = r#"{"loginId":"nobody@example.com"}"#;
    // SECRET expired in 2020: refused as if it were unknown.
    let (status, reply) =
        post_signed_by(&url, "getOwnIDDataByLoginId", body, &signer(SECRET)).await;
    assert_eq!(status, 401, "{reply}");
    assert!(reply.contains("invalid_signature"), "{reply}");
    for secret in [current, still_valid, plain] {
        let (status, reply) =
            post_signed_by(&url, "getOwnIDDataByLoginId", body, &signer(secret)).await;
        assert_eq!(status, 404, "{reply}");
    }
    let logs = stop(child).await;
    let expired: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("expired"))
        .collect();
    // Once at start-up, once for the request it refused.
    assert!(expired.len() >= 2, "{logs}");
    assert!(
        expired
            .iter()
            .all(|line| line.contains("ownid.previous_shared_secrets[0]")),
        "{logs}"
    );
    for secret in [SECRET, current, still_valid, plain] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the log:\n{logs}"
        );
    }
}

async fn post_with(
    url: &str,
    operation: &str,
    body: String,
    timestamp: &str,
    signature: &str,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/ownid/{operation}"))
        .header("content-type", "application/json")
        .header("ownid-timestamp", timestamp)
        .header("ownid-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_full_contract_run_logs_no_login_id_ownid_data_token_or_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bridge.db");
    let path = dir.path().join("contract.yaml");
    std::fs::write(
        &path,
        format!(
            "server:\n  listen: \"127.0.0.1:0\"\n  max_body_bytes: 4096\n\
             ownid:\n  shared_secret: \"{SECRET}\"\n  create_missing_users: true\n  \
             max_ownid_data_chars: 512\n\
             session:\n  secret: \"{JWT_SECRET}\"\n\
             storage:\n  url: \"sqlite://{}\"\n\
             log:\n  format: json\n  level: info\n",
            db.display()
        ),
    )
    .unwrap();
    let alice = "alice.contract@example.com";
    let (code, out, err) = run(&path, &["users", "add", alice]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (child, url) = start(&path).await;

    let unknown = "carol.unknown@example.com";
    let created = "dave.created@example.com";
    let look_alike = "ALICE.Contract@Example.com";
    let malformed = "eve.malformed@example.com";
    let too_long = "frank.toolong@example.com";
    let forged = "mallory.forged@example.com";
    let alice_data = "alice-device-record-7f3c9a";
    let created_data = "dave-device-record-4b8e21";
    let long_data = format!("frank-device-record-{}", "z".repeat(600));
    let mut tokens = Vec::new();
    let json = |value: serde_json::Value| value.to_string();

    let set =
        |login: &str, data: &str| json(serde_json::json!({"loginId": login, "ownIdData": data}));
    let get = |login: &str| json(serde_json::json!({"loginId": login}));
    assert_eq!(
        post(&url, "setOwnIDDataByLoginId", &set(alice, alice_data))
            .await
            .0,
        204
    );
    assert_eq!(
        post(&url, "getOwnIDDataByLoginId", &get(alice)).await.0,
        200
    );
    let (status, body) = post(&url, "getSessionByLoginId", &get(alice)).await;
    assert_eq!(status, 200, "{body}");
    tokens.push(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    // Unknown users; one created by a set (create_missing_users).
    assert_eq!(
        post(&url, "getOwnIDDataByLoginId", &get(unknown)).await.0,
        404
    );
    assert_eq!(
        post(&url, "getSessionByLoginId", &get(unknown)).await.0,
        404
    );
    assert_eq!(
        post(&url, "setOwnIDDataByLoginId", &set(created, created_data))
            .await
            .0,
        204
    );
    let (status, body) = post(&url, "getSessionByLoginId", &get(created)).await;
    assert_eq!(status, 200, "{body}");
    tokens.push(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    // A look-alike of a stored login id.
    let (status, _) = post(&url, "getOwnIDDataByLoginId", &get(look_alike)).await;
    assert!(status == 404 || status == 200, "{status}");
    // A bad signature, missing headers, a replay.
    let timestamp = fresh_timestamp();
    let wrong = sign("something else", &timestamp);
    assert_eq!(
        post_with(&url, "getSessionByLoginId", get(forged), &timestamp, &wrong)
            .await
            .0,
        401
    );
    let response = reqwest::Client::new()
        .post(format!("{url}/ownid/getSessionByLoginId"))
        .body(get(forged))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body = get(alice);
    let signature = sign(&body, &timestamp);
    assert_eq!(
        post_with(
            &url,
            "getOwnIDDataByLoginId",
            body.clone(),
            &timestamp,
            &signature
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post_with(&url, "getSessionByLoginId", body, &timestamp, &signature)
            .await
            .0,
        401
    );
    // 400: malformed JSON and a wrong type, both signed.
    let broken = format!(r#"{{"loginId":"{malformed}","ownIdData":"#);
    assert_eq!(post(&url, "setOwnIDDataByLoginId", &broken).await.0, 400);
    let wrong_type =
        format!(r#"{{"loginId":"{malformed}","ownIdData":{{"devices":["{alice_data}"]}}}}"#);
    assert_eq!(
        post(&url, "setOwnIDDataByLoginId", &wrong_type).await.0,
        400
    );
    // 413: ownIdData over the maximum, and a body over max_body_bytes.
    assert_eq!(
        post(&url, "setOwnIDDataByLoginId", &set(too_long, &long_data))
            .await
            .0,
        413
    );
    let huge = set(too_long, &format!("{long_data}{}", "y".repeat(5000)));
    assert_eq!(post(&url, "setOwnIDDataByLoginId", &huge).await.0, 413);
    // The storage error path: the table disappears under the server.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TABLE users")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    for (operation, body) in [
        ("setOwnIDDataByLoginId", set(alice, alice_data)),
        ("getOwnIDDataByLoginId", get(alice)),
        ("getSessionByLoginId", get(created)),
    ] {
        let (status, body) = post(&url, operation, &body).await;
        assert!(status >= 500, "{operation}: {status} {body}");
    }

    let logs = stop(child).await;
    let lines: Vec<&str> = logs.lines().collect();
    assert!(lines.len() >= 20, "too few log lines:\n{logs}");
    assert!(logs.contains("storage error"), "{logs}");
    let mut secrets: Vec<String> = vec![
        alice.into(),
        unknown.into(),
        created.into(),
        look_alike.into(),
        malformed.into(),
        too_long.into(),
        forged.into(),
        alice_data.into(),
        created_data.into(),
        "frank-device-record".into(),
        SECRET.into(),
        JWT_SECRET.into(),
    ];
    secrets.extend(tokens);
    for line in &lines {
        let lower = line.to_lowercase();
        for secret in &secrets {
            assert!(
                !lower.contains(&secret.to_lowercase()),
                "{secret} in the log line:\n{line}"
            );
        }
    }
}

/// A password in the URL's query, or one with `#`, `/` or `@` pasted in through `${VAR}` (the
/// README's own pattern), is never printed: not by `check`, not by `serve` while it waits for
/// the database.
#[tokio::test]
async fn database_passwords_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://app@127.0.0.1:9/users?sslmode=disable&password=hunter2",
        "postgres://app:${DB_PASSWORD}@127.0.0.1:9/users",
    ] {
        let config = dir.path().join("postgres.yaml");
        std::fs::write(
            &config,
            format!(
                "ownid:\n  shared_secret: \"{SECRET}\"\nsession:\n  secret: \"{JWT_SECRET}\"\n\
                 storage:\n  backend: postgres\n  startup_wait: 1s\n  url: \"{url}\"\n"
            ),
        )
        .unwrap();
        let leaked = |text: &str| {
            ["hunter2", "hun#ter", "ter/2@x", "%23ter"]
                .iter()
                .any(|secret| text.contains(secret))
        };
        let output = command(&config)
            .env("DB_PASSWORD", "hun#ter/2@x")
            .arg("check")
            .output()
            .await
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert_eq!(output.status.code(), Some(1), "{out}{err}");
        assert!(out.contains("FAIL storage: postgres://app"), "{out}");
        assert!(!leaked(&out) && !leaked(&err), "{url}: {out}{err}");
        let mut serve = command(&config);
        serve.env("DB_PASSWORD", "hun#ter/2@x");
        let (code, out, err) = exits(serve).await;
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("postgres://app"), "{err}");
        assert!(!leaked(&out) && !leaked(&err), "{url}: {out}{err}");
    }
    // Red team, round 3 (R5): a libpq key/value string (not a URL: refused, and it was quoted
    // whole in the refusal) and a URL with one slash after its scheme (not masked).
    for url in [
        "host=127.0.0.1 port=9 user=bob password=S3cretPW dbname=db",
        "host=127.0.0.1 port=9 user=bob password='S3cret PW' dbname=db",
        "postgres:/bob:S3cretPW@127.0.0.1:9/db",
        "postgresql:bob:S3cretPW@127.0.0.1:9/db",
        // sqlx warns about a parameter it does not know, with its value.
        "postgres://bob@127.0.0.1:9/db?sslpassword=S3cretPW",
        "mysql://bob@127.0.0.1:9/db?sslpassword=S3cretPW",
    ] {
        let config = dir.path().join("postgres.yaml");
        let backend = if url.starts_with("mysql") {
            "mysql"
        } else {
            "postgres"
        };
        std::fs::write(
            &config,
            format!(
                "server:\n  listen: 127.0.0.1:0\nownid:\n  shared_secret: \"{SECRET}\"\n\
                 session:\n  secret: \"{JWT_SECRET}\"\n\
                 storage:\n  backend: {backend}\n  startup_wait: 1s\n  url: \"{url}\"\n"
            ),
        )
        .unwrap();
        let (code, out, err) = run(&config, &["check"]).await;
        assert_ne!(code, 0, "{url}: {out}{err}");
        assert!(
            !format!("{out}{err}").contains("S3cret"),
            "{url}: {out}{err}"
        );
        let (code, out, err) = run(&config, &["config", "show"]).await;
        assert!(
            !format!("{out}{err}").contains("S3cret"),
            "{url}: exit {code}: {out}{err}"
        );
        let (code, out, err) = exits(command(&config)).await;
        assert_ne!(code, 0, "{url}: {out}{err}");
        assert!(
            !format!("{out}{err}").contains("S3cret"),
            "{url}: {out}{err}"
        );
    }
}

/// A secret file others can read or write is warned about, by `check` and at start-up.
#[cfg(unix)]
#[tokio::test]
async fn secret_files_readable_by_others_are_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let secret = dir.path().join("jwt-secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = run(&config, &["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&config, &["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "warn session.secret_file: {} is readable by its group and others (mode 644)",
            secret.display()
        )),
        "{out}"
    );
    let (child, _) = start(&config).await;
    let logs = stop(child).await;
    assert!(logs.contains("session.secret_file"), "{logs}");
    assert!(logs.contains("readable by its group and others"), "{logs}");

    // Red team, round 3 (R9): a file others can write is worse than one they can read (they
    // replace the secret and mint tokens after the next restart).
    for (mode, whom) in [
        (0o602, "writable by others"),
        (0o620, "writable by its group"),
        (
            0o664,
            "readable by its group and others and writable by its group",
        ),
    ] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, out, err) = run(&config, &["check"]).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains(&format!(
                "warn session.secret_file: {} is {whom}",
                secret.display()
            )),
            "mode {mode:o}: {out}"
        );
    }
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o602)).unwrap();
    let (child, _) = start(&config).await;
    let logs = stop(child).await;
    assert!(logs.contains("writable by others"), "{logs}");

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, _) = run(&config, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("readable by") && !out.contains("writable by"),
        "{out}"
    );
}

/// A base path or JWKS path on a route the server already has would panic at start (exit 101)
/// or silently replace an operation: `check` and `serve` refuse it as a configuration error.
#[tokio::test]
async fn colliding_routes_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let es256 = format!(
        "session:\n  algorithm: ES256\n  private_key_file: \"{}\"\n",
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/es256-test-only.pem")
            .display()
    );
    // The database exists and is ready: only the routes are wrong.
    let (code, out, err) = run(&write_config(dir.path(), ""), &["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    for (yaml, key) in [
        (
            "server:\n  base_path: /healthz\n".to_owned(),
            "server.base_path",
        ),
        (
            "server:\n  base_path: /docs\n".to_owned(),
            "server.base_path",
        ),
        (
            "server:\n  base_path: /openapi.yaml\n".to_owned(),
            "server.base_path",
        ),
        (
            format!("{es256}  jwks_path: /ownid/getSessionByLoginId\n"),
            "session.jwks_path",
        ),
        (
            format!("{es256}  jwks_path: /metrics\n"),
            "session.jwks_path",
        ),
        // Red team, round 3 (R4): routes the fixed list misses, and a path poem normalises.
        (
            "server:\n  base_path: /docs/favicon.svg\n".to_owned(),
            "server.base_path",
        ),
        (
            "server:\n  base_path: //healthz\n".to_owned(),
            "server.base_path",
        ),
        (
            format!("{es256}  jwks_path: /docs/favicon.svg\n"),
            "session.jwks_path",
        ),
    ] {
        let path = dir.path().join("routes.yaml");
        std::fs::write(
            &path,
            format!(
                "ownid:\n  shared_secret: \"{SECRET}\"\nstorage:\n  url: \"sqlite://{}\"\n{yaml}",
                dir.path().join("bridge.db").display()
            ),
        )
        .unwrap();
        for args in [&["check"][..], &["serve"][..]] {
            let mut command = Command::new(bin());
            command
                .arg("--config")
                .arg(&path)
                .args(args)
                .env("OWNID_BRIDGE__SESSION__SECRET", JWT_SECRET)
                .env_remove("OWNID_BRIDGE_CONFIG");
            let (code, out, err) = exits(command).await;
            assert_eq!(code, 2, "{yaml} {args:?}: {out}{err}");
            assert!(err.contains(key), "{yaml} {args:?}: {err}");
        }
    }
}
