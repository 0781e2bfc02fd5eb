//! `ownid-bridge users show` and `users reset`, the support tools, through the real binary on
//! every backend: what show prints (never the data without --reveal), that reset clears only
//! the named users' ownIdData after confirmation, reports each one, and exits 1 for an unknown
//! user; the exact login-id match and the normalization of the endpoints. On SQLite here; on the
//! server backends: tests/backends/users.rs.

use crate::common::users::*;
use crate::common::*;

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("support.db").display());
    support_tools_work("sqlite", &url).await;
}

/// With `ownid.login_id_normalization: lowercase`, the tools find the user the endpoints find.
#[tokio::test]
async fn the_tools_normalize_login_ids_as_the_endpoints_do() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("support.db").display());
    let app = app_on(
        "sqlite",
        &url,
        "support",
        &[("OWNID_BRIDGE__OWNID__LOGIN_ID_NORMALIZATION", "lowercase")],
    )
    .await;
    app.add_user("alice@example.com").await;
    app.set_data("ALICE@example.com", DATA)
        .await
        .assert_empty(204);
    let (code, out, _) = users(&app, &["show", "Alice@Example.com"], "").await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("alice@example.com: exists; ownIdData present"),
        "{out}"
    );
}
