//! Several OwnID applications in one server (`apps`) on the server backends: the binary serving
//! two applications, one on PostgreSQL, and the commands that take `--app`; two applications
//! over one database of each server backend.

use crate::common::apps::{sign_with, Apps, ADMIN_SECRET};
use crate::common::{fresh_timestamp, JWT_SECRET, SECRET};
use ownid_bridge::config::Config;
use ownid_bridge_store::outage::required_url;
use serde_json::{json, Value};

/// The binary with two applications, the second on a PostgreSQL database of its own: what
/// `serve` prints and logs, requests over TCP, and the commands that take `--app`.
#[tokio::test]
async fn the_binary_serves_two_applications_and_its_commands_take_app() {
    let _group = crate::common::exclusive("backends").await;
    let postgres = required_url("OWNID_TEST_POSTGRES_URL");
    let dir = tempfile::tempdir().unwrap();
    let partners = format!("partners_{}", uuid::Uuid::new_v4().simple());
    let config = dir.path().join("apps.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{ listen: \"127.0.0.1:0\" }}\n\
             storage: {{ url: \"sqlite://{db}\" }}\n\
             apps:\n\
             - name: customer\n  base_path: /customer\n  ownid: {{ shared_secret: \"${{CUSTOMER_SECRET}}\" }}\n  session: {{ secret: \"{JWT_SECRET}\" }}\n\
             - name: partner\n  base_path: /partner\n  ownid: {{ shared_secret: \"${{PARTNER_SECRET}}\" }}\n  session: {{ secret: \"{JWT_SECRET}\" }}\n  storage:\n    backend: postgres\n    url: \"{postgres}\"\n    create_demo_table: true\n    users: {{ table: {partners} }}\n",
            db = dir.path().join("customers.db").display()
        ),
    )
    .unwrap();
    let run = |args: &'static [&'static str]| {
        let config = config.clone();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("CUSTOMER_SECRET", SECRET)
                .env("PARTNER_SECRET", ADMIN_SECRET)
                .env_remove("OWNID_BRIDGE_CONFIG")
                .env_remove("OWNID_BRIDGE_APP")
                .output()
                .await
                .unwrap();
            (
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };

    // schema and check cover every application, each under its heading.
    let (code, out, err) = run(&["schema"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("app customer (/customer):\n"), "{out}");
    assert!(out.contains("app partner (/partner):\n"), "{out}");
    assert!(out.contains(&format!("\"{partners}\"")), "{out}");
    let (code, out, err) = run(&["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.matches("ok   shared secret: valid base64").count(),
        2,
        "{out}"
    );
    let (code, out, _) = run(&["--app", "partner", "check"]).await;
    assert_eq!(code, 0);
    assert!(!out.contains("app customer"), "{out}");

    // A command acting on one application needs --app.
    let (code, _, err) = run(&["users", "add", "alice@example.com"]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "several OwnID applications are configured (customer, partner): choose one with --app"
        ),
        "{err}"
    );
    let (code, out, err) = run(&["--app", "partner", "users", "add", "alice@example.com"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&["--app", "shop", "users", "add", "x"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no such application"), "{err}");

    // serve prints each application's endpoints and storage.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ownid-bridge"))
        .arg("--config")
        .arg(&config)
        .env("CUSTOMER_SECRET", SECRET)
        .env("PARTNER_SECRET", ADMIN_SECRET)
        .env("RUST_LOG", "info")
        .env_remove("OWNID_BRIDGE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (base, printed) = crate::common::read_banner(&mut child).await;
    assert!(
        printed.contains(&format!(
            "  customer:\n    OwnID endpoints: {base}/customer/{{setOwnIDDataByLoginId"
        )),
        "{printed}"
    );
    assert!(
        printed.contains("    storage:         postgres "),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("(table {partners})")),
        "{printed}"
    );

    // Over TCP: the partner's secret works on /partner, not on /customer, and the reverse.
    let http = reqwest::Client::new();
    let send = |path: String, secret: &'static str, body: Value| {
        let http = http.clone();
        async move {
            let body = body.to_string();
            let timestamp = fresh_timestamp();
            let signature = sign_with(secret, &body, &timestamp);
            http.post(path)
                .header("content-type", "application/json")
                .header("ownid-timestamp", &timestamp)
                .header("ownid-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let set = json!({ "loginId": "alice@example.com", "ownIdData": "partner-device" });
    let partner_set = format!("{base}/partner/setOwnIDDataByLoginId");
    let customer_get = format!("{base}/customer/getOwnIDDataByLoginId");
    assert_eq!(
        send(partner_set.clone(), ADMIN_SECRET, set.clone()).await,
        204
    );
    assert_eq!(send(partner_set, SECRET, set).await, 401);
    let alice = json!({ "loginId": "alice@example.com" });
    assert_eq!(
        send(customer_get.clone(), ADMIN_SECRET, alice.clone()).await,
        401
    );
    // alice is a partner, not a customer.
    assert_eq!(send(customer_get, SECRET, alice).await, 404);

    // The data went to the partner's PostgreSQL table.
    let (code, out, err) = run(&["--app", "partner", "users", "show", "alice@example.com"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("alice@example.com: exists; ownIdData present (14 characters"),
        "{out}"
    );

    // Every request log line names its application.
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let requests: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("ByLoginId"))
        .collect();
    assert_eq!(requests.len(), 4, "{log}");
    for (line, app) in requests
        .iter()
        .zip(["partner", "partner", "customer", "customer"])
    {
        assert!(
            line.contains(&format!("app=\"{app}\"")) || line.contains(&format!("app={app}")),
            "{line}"
        );
    }
    assert!(
        !log.contains(SECRET) && !log.contains(ADMIN_SECRET),
        "{log}"
    );
}

/// Two applications over one database of each server backend, each on a table (collection) of
/// its own: a request signed for one is refused by the other, and each write lands in its own
/// table only.
async fn two_apps_over_one_database(backend: &str, url: &str) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (customers, admins) = (format!("customers_{suffix}"), format!("admins_{suffix}"));
    let yaml = format!(
        "storage: {{ backend: {backend}, url: \"{url}\", create_demo_table: true }}\n\
         apps:\n\
         - name: customer\n  base_path: /customer\n  ownid: {{ shared_secret: \"{SECRET}\" }}\n  session: {{ secret: \"{JWT_SECRET}\" }}\n  users: {{ table: {customers} }}\n\
         - name: admin\n  base_path: /admin\n  ownid: {{ shared_secret: \"{ADMIN_SECRET}\" }}\n  session: {{ secret: \"{JWT_SECRET}\" }}\n  users: {{ table: {admins} }}\n"
    );
    let apps = Apps::start(Config::from_yaml(&yaml, &[]).expect("config")).await;
    for store in &apps.stores {
        assert!(store.create_user("alice@example.com").await.unwrap());
    }
    let set = json!({ "loginId": "alice@example.com", "ownIdData": "customer-device" });
    apps.signed("/customer/setOwnIDDataByLoginId", SECRET, &set)
        .await
        .assert_empty(204);
    apps.signed("/admin/setOwnIDDataByLoginId", SECRET, &set)
        .await
        .assert_error(401, "invalid_signature");
    apps.signed("/customer/setOwnIDDataByLoginId", ADMIN_SECRET, &set)
        .await
        .assert_error(401, "invalid_signature");
    let get = json!({ "loginId": "alice@example.com" });
    apps.signed("/admin/getOwnIDDataByLoginId", ADMIN_SECRET, &get)
        .await
        .assert_empty(204);
    let reply = apps
        .signed("/customer/getOwnIDDataByLoginId", SECRET, &get)
        .await;
    assert_eq!(reply.status, 200, "{backend}: {}", reply.body);
    assert_eq!(reply.json()["ownIdData"], "customer-device");
    assert_eq!(
        apps.stores[1]
            .get_ownid_data("alice@example.com")
            .await
            .unwrap()
            .as_deref(),
        None,
        "{backend}: the admin table holds no data"
    );
}

#[tokio::test]
async fn two_apps_over_one_postgres_database() {
    let _group = crate::common::exclusive("backends").await;
    let database = crate::common::fresh_database("postgres", "ownid_bridge_apps_test").await;
    two_apps_over_one_database("postgres", &database.url).await;
}

#[tokio::test]
async fn two_apps_over_one_mysql_database() {
    let _group = crate::common::exclusive("backends").await;
    let url = crate::common::mysql_test_database("ownid_bridge_apps_test").await;
    two_apps_over_one_database("mysql", &url).await;
}

#[tokio::test]
async fn two_apps_over_one_mongodb_database() {
    let _group = crate::common::exclusive("backends").await;
    let url = crate::common::mongodb_test_database("ownid_bridge_apps_test").await;
    two_apps_over_one_database("mongodb", &url).await;
}
