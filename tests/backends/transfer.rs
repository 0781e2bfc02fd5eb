//! `ownid-bridge export` and `import` through the real binary on the server backends:
//! - a round trip SQLite → PostgreSQL → MySQL/MariaDB → MongoDB → SQLite with unicode login ids
//!   and 5 KB values holding every kind of character JSON escapes: every step exports exactly
//!   what the first did, and importing again changes nothing;
//! - an import killed with SIGKILL halfway, run again, ends identical to its input;
//! - a line PostgreSQL cannot store (U+0000) is refused and the rest written.

use std::time::Duration;

use crate::common::transfer::*;
use crate::common::*;
use ownid_bridge_store::outage::required_url;

#[tokio::test]
async fn a_round_trip_through_every_backend_keeps_every_byte() {
    let _group = crate::common::exclusive("backends").await;
    let dir = tempfile::tempdir().unwrap();
    let source = app_on(
        "sqlite",
        &format!("sqlite://{}", dir.path().join("source.db").display()),
        "transfer",
        &[],
    )
    .await;
    let users = 120;
    for i in 0..users {
        source
            .store
            .set_ownid_data(&login(i), &value(i), true)
            .await
            .unwrap();
    }
    // Users without data are not exported.
    source.add_user("no-data@example.com").await;
    source
        .store
        .set_ownid_data("empty@example.com", "", true)
        .await
        .unwrap();
    let first = export(&source, &dir.path().join("0.jsonl")).await;
    assert_eq!(first.len(), users);
    let expected: Rows = (0..users).map(|i| (login(i), value(i))).collect();
    assert_eq!(first, expected);

    let mysql = mysql_test_database("ownid_bridge_transfer_test").await;
    let mongodb = mongodb_test_database("ownid_bridge_transfer_test").await;
    let last_sqlite = format!("sqlite://{}", dir.path().join("last.db").display());
    let steps = [
        ("postgres", required_url("OWNID_TEST_POSTGRES_URL")),
        ("mariadb", mysql),
        ("mongodb", mongodb),
        ("sqlite", last_sqlite),
    ];
    let mut previous = dir.path().join("0.jsonl");
    for (n, (backend, url)) in steps.iter().enumerate() {
        let target = app_on(backend, url, "transfer", &[]).await;
        let (code, out) = import(&target, &previous, &["--create-missing-users"]).await;
        assert_eq!(code, 0, "{backend}: {out}");
        assert!(
            out.contains(&format!(
                "{users} written ({users} of them new users), 0 unchanged, 0 unknown users, 0 refused"
            )),
            "{backend}: {out}"
        );
        let file = dir.path().join(format!("{}.jsonl", n + 1));
        assert_eq!(export(&target, &file).await, expected, "{backend}");
        // Importing the same file again changes nothing.
        let (code, out) = import(&target, &file, &[]).await;
        assert_eq!(code, 0, "{backend}: {out}");
        assert!(
            out.contains(&format!(
                "0 written (0 of them new users), {users} unchanged, 0 unknown users, 0 refused"
            )),
            "{backend}: {out}"
        );
        previous = file;
    }
}

#[tokio::test]
async fn an_import_killed_halfway_and_run_again_ends_identical() {
    let _group = crate::common::exclusive("backends").await;
    let target = app_on(
        "postgres",
        &required_url("OWNID_TEST_POSTGRES_URL"),
        "transfer",
        &[],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    let lines = 30_000;
    let rows: Rows = (0..lines)
        .map(|i| {
            (
                format!("killed{i}@example.com"),
                format!("device record {i} ✓"),
            )
        })
        .collect();
    let text: String = rows
        .iter()
        .map(|(login_id, data)| {
            serde_json::json!({ "loginId": login_id, "ownIdData": data }).to_string() + "\n"
        })
        .collect();
    std::fs::write(&input, text).unwrap();

    let storage = &target.config.storage;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
        .args(["import", "--create-missing-users", "--input"])
        .arg(&input)
        .env_remove("OWNID_BRIDGE_CONFIG")
        .env("OWNID_BRIDGE__STORAGE__BACKEND", "postgres")
        .env("OWNID_BRIDGE__STORAGE__URL", storage.url.expose())
        .env(
            "OWNID_BRIDGE__STORAGE__USERS__TABLE",
            storage.users.table.to_string(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pool = sqlx::PgPool::connect(&required_url("OWNID_TEST_POSTGRES_URL"))
        .await
        .unwrap();
    let count = format!("SELECT count(*) FROM {}", storage.users.table);
    let written_at_kill = loop {
        let written: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.clone()))
            .fetch_one(&pool)
            .await
            .unwrap();
        if written >= 3_000 {
            child.start_kill().unwrap();
            break written;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be killed ({written} written)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.wait().await.unwrap();
    assert!(
        (written_at_kill as usize) < lines,
        "the import finished before the kill"
    );

    let (code, out) = import(&target, &input, &["--create-missing-users"]).await;
    assert_eq!(code, 0, "{out}");
    println!("killed after {written_at_kill} of {lines} lines; the second run: {out}");
    assert!(out.contains(", 0 unknown users, 0 refused"), "{out}");
    assert!(
        !out.contains(" 0 unchanged"),
        "nothing was kept from the first run: {out}"
    );
    assert_eq!(export(&target, &dir.path().join("after.jsonl")).await, rows);
}

/// A line no database can store (U+0000, refused by PostgreSQL) is a refused line like any
/// other: the lines after it are written, and a second run does not stop there either.
#[tokio::test]
async fn an_import_line_with_nul_is_refused_and_the_rest_written() {
    let _group = crate::common::exclusive("backends").await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(
        "postgres",
        &required_url("OWNID_TEST_POSTGRES_URL"),
        "transfer",
        &[],
    )
    .await;
    app.add_user("alice@example.com").await;
    app.add_user("bob@example.com").await;
    let input = dir.path().join("input.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"loginId": "alice@example.com", "ownIdData": "nul\u0000inside"}"#,
            r#"{"loginId": "bob@example.com", "ownIdData": "bob's devices"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    for run in 0..2 {
        let (code, out) = import(&app, &input, &[]).await;
        assert_eq!(code, 1, "run {run}: {out}");
        assert!(out.contains("line 1: refused: "), "run {run}: {out}");
        assert!(out.contains("U+0000"), "run {run}: {out}");
        assert!(out.contains("1 refused"), "run {run}: {out}");
    }
    assert_eq!(
        app.store.get_ownid_data("bob@example.com").await.unwrap(),
        Some("bob's devices".into())
    );
    assert_eq!(
        app.store.get_ownid_data("alice@example.com").await.unwrap(),
        None
    );
}
