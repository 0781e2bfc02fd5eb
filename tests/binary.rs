//! The real binary: a config file, port 0, a signed round trip over TCP, the CLI around it, and a
//! graceful stop on SIGTERM.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{fresh_timestamp, sign, JWT_SECRET, SECRET};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_ownid-bridge");

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
    let mut command = Command::new(BIN);
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
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
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
        tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await
    {
        rest.push_str(&line);
        rest.push('\n');
    }
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
    let response = reqwest::Client::new()
        .post(format!("{url}/ownid/{operation}"))
        .header("content-type", "application/json")
        .header("ownid-timestamp", &timestamp)
        .header("ownid-signature", sign(body, &timestamp))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_signed_round_trip_over_tcp_and_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let (code, out, err) = run(&config, &["users", "add", "alice@example.com"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "added alice@example.com");

    let (mut child, url) = start(&config).await;
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

    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
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
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0")
        .env_remove("OWNID_BRIDGE_CONFIG")
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
