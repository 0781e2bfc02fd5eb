//! `ownid-bridge export` and `import` through the real binary:
//! - a round trip SQLite → PostgreSQL → MySQL/MariaDB → MongoDB → SQLite with unicode login ids
//!   and 5 KB values holding every kind of character JSON escapes: every step exports exactly
//!   what the first did, and importing again changes nothing;
//! - an import killed with SIGKILL halfway, run again, ends identical to its input;
//! - what a line can be refused for, each reported with its line number, and --dry-run.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use ownid_bridge_store::outage::required_url;

type Rows = BTreeSet<(String, String)>;

/// The `(loginId, ownIdData)` pairs of an export file.
fn read_export(path: &Path) -> Rows {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                value["loginId"].as_str().unwrap().to_owned(),
                value["ownIdData"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A value of about 5 KB with what JSON must escape, multi-byte UTF-8 and an emoji.
fn value(i: usize) -> String {
    let piece = format!("{i}: \"quoted\" \\back\\slash\ttab\nnewline ключ 漢字 😀 \u{1}\u{7f} ");
    piece.repeat(5000 / piece.len() + 1)
}

fn login(i: usize) -> String {
    match i % 3 {
        0 => format!("user{i}@example.com"),
        1 => format!("ünïcödé{i}@exämple.com"),
        _ => format!("用户{i}😀@example.com"),
    }
}

async fn export(app: &TestApp, file: &Path) -> Rows {
    let (code, out, err) = app
        .cli(&["export", "--output", file.to_str().unwrap()], "", &[])
        .await;
    assert_eq!(code, 0, "{out}{err}");
    let rows = read_export(file);
    assert!(
        err.contains(&format!("exported {} users with ownIdData", rows.len())),
        "{err}"
    );
    rows
}

async fn import(app: &TestApp, file: &Path, flags: &[&str]) -> (i32, String) {
    let mut args = vec!["import", "--input", file.to_str().unwrap()];
    args.extend_from_slice(flags);
    let (code, out, err) = app.cli(&args, "", &[]).await;
    (code, format!("{out}{err}"))
}

#[tokio::test]
async fn a_round_trip_through_every_backend_keeps_every_byte() {
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
    let mongodb = mongodb_test_database("ownid_bridge_transfer_test");
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

#[tokio::test]
async fn refused_lines_are_reported_by_number_and_a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(
        "sqlite",
        &format!("sqlite://{}", dir.path().join("refusals.db").display()),
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
            r#"{"loginId": "alice@example.com", "ownIdData": "alice's devices"}"#,
            r#"{"loginId": "carol@example.com", "ownIdData": "unknown user"}"#,
            r#"{"loginId": "bob@example.com", "ownIdData": "one", "ownIdData": "two"}"#,
            r#"{"loginId": "bad\u0001id", "ownIdData": "x"}"#,
            r#"{"loginId": "bob@example.com", "ownIdData": ""}"#,
            r#"{"loginId": "bob@example.com", "ownIdData": "far longer than ten characters"}"#,
            "not json",
            "",
            r#"{"loginId": "bob@example.com"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let limit = [("OWNID_BRIDGE__OWNID__MAX_OWNID_DATA_CHARS", "16")];
    let args = ["import", "--input", input.to_str().unwrap()];
    let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
    let (code, out, err) = app.cli(&dry, "", &limit).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.ends_with(
            "1 would be written (0 of them new users), 0 unchanged, 1 unknown users, 7 refused \
             (dry run: nothing changed)\n"
        ),
        "{out}"
    );
    assert_eq!(
        app.store.get_ownid_data("alice@example.com").await.unwrap(),
        None
    );

    let (code, out, err) = app.cli(&args, "", &limit).await;
    assert_eq!(code, 1, "{out}{err}");
    for expected in [
        "line 2: unknown user (not written)",
        "line 3: refused: ",
        "line 4: refused: ",
        "line 5: refused: bob@example.com: ownIdData is empty",
        "line 6: refused: bob@example.com: ownIdData is longer than ownid.max_ownid_data_chars (16)",
        "line 7: refused: not an export line",
        "line 8: refused: an empty line",
        "line 9: refused: not an export line",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    assert!(out.contains("control"), "{out}");
    assert!(
        out.ends_with("1 written (0 of them new users), 0 unchanged, 1 unknown users, 7 refused\n"),
        "{out}"
    );
    assert_eq!(
        app.store.get_ownid_data("alice@example.com").await.unwrap(),
        Some("alice's devices".into())
    );
    assert_eq!(
        app.store.get_ownid_data("bob@example.com").await.unwrap(),
        None
    );
}

/// An export holds every login id and ownIdData: only its owner may read it.
#[cfg(unix)]
#[tokio::test]
async fn an_export_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(
        "sqlite",
        &format!("sqlite://{}", dir.path().join("private.db").display()),
        "transfer",
        &[],
    )
    .await;
    app.add_user("alice@example.com").await;
    app.set_data("alice@example.com", "devices")
        .await
        .assert_empty(204);
    let file = dir.path().join("export.jsonl");
    export(&app, &file).await;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export written with mode {mode:o}");
    // Also when the file was there before, readable by everyone.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    export(&app, &file).await;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export rewritten with mode {mode:o}");
}

/// Red team, round 3 (R10): `export --output` onto a symbolic link (in a shared directory such as
/// /tmp, planted by another user) must not write through it, nor `chmod 0600` its target.
#[cfg(unix)]
#[tokio::test]
async fn an_export_does_not_follow_a_symbolic_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(
        "sqlite",
        &format!("sqlite://{}", dir.path().join("private.db").display()),
        "transfer",
        &[],
    )
    .await;
    app.add_user("alice@example.com").await;
    app.set_data("alice@example.com", "devices")
        .await
        .assert_empty(204);
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "the victim's text\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let (code, out, err) = app
        .cli(&["export", "--output", link.to_str().unwrap()], "", &[])
        .await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the victim's text\n"
    );
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the link's target was chmod-ed to {mode:o}");
}

/// A line no database can store (U+0000, refused by PostgreSQL) is a refused line like any
/// other: the lines after it are written, and a second run does not stop there either.
#[tokio::test]
async fn an_import_line_with_nul_is_refused_and_the_rest_written() {
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

/// A line that is not UTF-8, or longer than any export line can be, is named with its number
/// and cause and refused; the other lines are written and counted. A long line is not held in
/// memory whole.
#[tokio::test]
async fn unreadable_and_overlong_lines_are_named_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(
        "sqlite",
        &format!("sqlite://{}", dir.path().join("lines.db").display()),
        "transfer",
        &[],
    )
    .await;
    for user in ["a@example.com", "b@example.com", "c@example.com"] {
        app.add_user(user).await;
    }
    let mut input = Vec::new();
    input.extend_from_slice(br#"{"loginId": "a@example.com", "ownIdData": "a"}"#);
    input.extend_from_slice(b"\n{\"loginId\": \"b@example.com\", \"ownIdData\": \"\xff\xfe\"}\n");
    input.extend_from_slice(br#"{"loginId": "b@example.com", "ownIdData": ""#);
    input.extend(std::iter::repeat_n(b'x', 8 * 1024 * 1024));
    input.extend_from_slice(b"\"}\n");
    input.extend_from_slice(br#"{"loginId": "c@example.com", "ownIdData": "c"}"#);
    let file = dir.path().join("input.jsonl");
    std::fs::write(&file, input).unwrap();
    let (code, out) = import(&app, &file, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 2: refused: "), "{out}");
    assert!(out.contains("UTF-8"), "{out}");
    assert!(out.contains("line 3: refused: "), "{out}");
    assert!(out.contains("longer than"), "{out}");
    assert!(
        out.ends_with("2 written (0 of them new users), 0 unchanged, 0 unknown users, 2 refused\n"),
        "{out}"
    );
    assert_eq!(
        app.store.get_ownid_data("c@example.com").await.unwrap(),
        Some("c".into())
    );
}
