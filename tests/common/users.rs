//! The support tools through the binary on a backend: tests/cli/users.rs and
//! tests/backends/users.rs.

use super::*;

pub const DATA: &str = "dévice-ключ 😀";

/// Runs `ownid-bridge users ARGS` on the app's storage, with `stdin` as its standard input.
pub async fn users(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut all = vec!["users"];
    all.extend_from_slice(args);
    app.cli(&all, stdin, &[]).await
}

pub async fn support_tools_work(backend: &str, url: &str) {
    let app = app_on(backend, url, "support", &[]).await;
    app.add_user("alice@example.com").await;
    app.add_user("bob@example.com").await;
    app.set_data("alice@example.com", DATA)
        .await
        .assert_empty(204);

    let (code, out, err) = users(&app, &["show", "alice@example.com"], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "alice@example.com: exists; ownIdData present (13 characters, 21 bytes)\n"
    );
    let (code, out, _) = users(&app, &["show", "--reveal", "alice@example.com"], "").await;
    assert_eq!(code, 0);
    assert!(out.ends_with(&format!("\n{DATA}\n")), "{out}");
    let (code, out, _) = users(&app, &["show", "bob@example.com"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "bob@example.com: exists; no ownIdData (the next OwnID login enrols)\n"
        )
    );
    // Exact match, as the endpoints: another case is another (here: no) user.
    let (code, out, _) = users(&app, &["show", "Alice@example.com"], "").await;
    assert_eq!(
        (code, out.as_str()),
        (1, "Alice@example.com: no such user\n")
    );
    // A login id the endpoints would refuse is an error (exit 2), not a lookup.
    let (code, _, err) = users(&app, &["show", "bad\u{1}id"], "").await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("control"), "{err}");

    // Without --yes it asks; anything but y changes nothing.
    let targets = [
        "reset",
        "alice@example.com",
        "bob@example.com",
        "nobody@example.com",
    ];
    for answer in ["n\n", ""] {
        let (code, out, err) = users(&app, &targets, answer).await;
        assert_eq!((code, out.as_str()), (1, "nothing changed\n"), "{err}");
        assert!(
            err.contains("Clear the ownIdData of alice@example.com"),
            "{err}"
        );
    }
    assert_eq!(app.get_data("alice@example.com").await.status, 200);

    let (code, out, _) = users(&app, &targets, "y\n").await;
    assert_eq!(code, 1, "an unknown user makes reset exit 1: {out}");
    assert_eq!(
        out,
        "alice@example.com: ownIdData cleared (was 13 characters, 21 bytes)\n\
         bob@example.com: had no ownIdData; unchanged\n\
         nobody@example.com: no such user\n"
    );
    // The next OwnID login finds no data and enrols afresh.
    app.get_data("alice@example.com").await.assert_empty(204);
    app.set_data("alice@example.com", "new device")
        .await
        .assert_empty(204);
    let (code, out, _) = users(&app, &["reset", "--yes", "alice@example.com"], "").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("alice@example.com: ownIdData cleared"),
        "{out}"
    );
}
