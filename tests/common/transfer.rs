//! `export` and `import` through the binary: tests/cli/transfer.rs and tests/backends/transfer.rs.

use std::collections::BTreeSet;
use std::path::Path;

use super::TestApp;

pub type Rows = BTreeSet<(String, String)>;

/// The `(loginId, ownIdData)` pairs of an export file.
pub fn read_export(path: &Path) -> Rows {
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
pub fn value(i: usize) -> String {
    let piece = format!("{i}: \"quoted\" \\back\\slash\ttab\nnewline ключ 漢字 😀 \u{1}\u{7f} ");
    piece.repeat(5000 / piece.len() + 1)
}

pub fn login(i: usize) -> String {
    match i % 3 {
        0 => format!("user{i}@example.com"),
        1 => format!("ünïcödé{i}@exämple.com"),
        _ => format!("用户{i}😀@example.com"),
    }
}

pub async fn export(app: &TestApp, file: &Path) -> Rows {
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

pub async fn import(app: &TestApp, file: &Path, flags: &[&str]) -> (i32, String) {
    let mut args = vec!["import", "--input", file.to_str().unwrap()];
    args.extend_from_slice(flags);
    let (code, out, err) = app.cli(&args, "", &[]).await;
    (code, format!("{out}{err}"))
}
