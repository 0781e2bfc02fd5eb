//! A SQLite write waiting on another writer is answered 503 once the statement timeout runs
//! out (the server backends' lock timeouts: tests/backends/serving.rs).

use crate::common::*;

#[tokio::test]
async fn sqlite_writes_waiting_on_another_writer_time_out() {
    use sqlx::{Connection as _, Executor as _};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("locked.db");
    let url = format!("sqlite://{}", file.display());
    let mut other = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    let app = app_on("sqlite", &url, "users", &STATEMENT_TIMEOUT).await;
    app.add_user("alice@example.com").await;
    other.execute("BEGIN EXCLUSIVE").await.unwrap();
    held_up_by_a_lock_is_503(&app, async |app| {
        app.set_data("alice@example.com", "x").await
    })
    .await;
    other.execute("ROLLBACK").await.unwrap();
    app.set_data("alice@example.com", "after the lock")
        .await
        .assert_empty(204);
}
