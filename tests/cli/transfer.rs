//! `ownid-bridge export` and `import` through the real binary, on SQLite: what a line can be
//! refused for, each reported with its line number, and --dry-run; the export file's mode. On
//! the server backends: tests/backends/transfer.rs.

use crate::common::transfer::*;
use crate::common::*;

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

/// An application on a SQLite file in a fresh directory, with one user who has ownIdData.
#[cfg(unix)]
async fn one_user_to_export() -> (tempfile::TempDir, TestApp) {
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
    (dir, app)
}

/// An export holds every login id and ownIdData: only its owner may read it.
#[cfg(unix)]
#[tokio::test]
async fn an_export_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, app) = one_user_to_export().await;
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
    let (dir, app) = one_user_to_export().await;
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

/// Issue 19, point 5: an error that running the command again cannot fix (a missing table or
/// column, the table refusing a value) is reported as such, before anything is read or written
/// where it can be known beforehand; only an interruption says "run again to resume".
#[tokio::test]
async fn a_table_problem_is_not_called_resumable() {
    use crate::common::existing::{Existing, Shape};
    let table = Existing::new(Shape {
        backend: "sqlite",
        setup: &[
            "CREATE TABLE customers (email TEXT NOT NULL UNIQUE, \
             ownid TEXT CHECK (ownid NOT LIKE '%forbidden%'))",
            "INSERT INTO customers (email) VALUES ('alice@example.com'), ('bob@example.com')",
        ],
        env: &[
            ("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customer"),
            ("OWNID_BRIDGE__STORAGE__USERS__LOGIN_ID", "email"),
            ("OWNID_BRIDGE__STORAGE__USERS__OWNID_DATA", "ownid"),
        ],
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"loginId": "alice@example.com", "ownIdData": "fine"}"#,
            r#"{"loginId": "bob@example.com", "ownIdData": "forbidden by the table"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let import = ["import", "--input", input.to_str().unwrap()];
    // A misspelt table: said before anything is read.
    for args in [&["export"][..], &import[..]] {
        let (code, out, err) = table.cli(args).await;
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("did you mean `customers`?") && err.contains("will not help"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("resume"), "{err}");
    }
    // The right table, whose CHECK constraint refuses the second line: the table's own refusal.
    let table = Existing {
        env: table.env_with(&[("OWNID_BRIDGE__STORAGE__USERS__TABLE", "customers")]),
        ..table
    };
    let (code, out, err) = table.cli(&import).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("line 2:") && err.contains("cannot fix"),
        "{err}"
    );
    assert!(!err.contains("resume"), "{err}");
}
