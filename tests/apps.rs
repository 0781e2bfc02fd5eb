//! Several OwnID applications in one server (`apps`): each with its own base path, shared
//! secret, response mode, users table and session settings. A request signed for one is refused
//! by the other; each writes only its own table; the OpenAPI document, Swagger UI, `/readyz`,
//! metrics and logs name each application; the command line picks one with `--app`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fresh_timestamp, read, Reply, JWT_SECRET, SECRET};
use ownid_bridge::app::App;
use ownid_bridge::config::Config;
use ownid_bridge::signature::SignatureVerifier;
use ownid_bridge::storage;
use ownid_bridge_store::outage::required_url;
use ownid_bridge_store::UserStore;
use poem::test::TestClient;
use poem::EndpointExt as _;
use serde_json::{json, Value};

/// The admin application's shared secret (the customer application uses the test vector's).
const ADMIN_SECRET: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn sign_with(secret: &str, body: &str, timestamp: &str) -> String {
    SignatureVerifier::new(
        &ownid_bridge::secret::Secret::new(secret),
        Duration::from_secs(60),
    )
    .unwrap()
    .sign(body.as_bytes(), timestamp)
}

/// Two applications over one SQLite database: `customer` on the demo `users` table, `admin` on
/// `admins` keyed by `email`, with legacy responses and 5-minute sessions.
fn two_apps(db: &std::path::Path) -> Config {
    let yaml = format!(
        "storage: {{ url: \"sqlite://{}\" }}\n\
         metrics: {{ enabled: true, allowed_networks: [] }}\n\
         apps:\n\
         - name: customer\n  base_path: /ownid/customer\n  ownid: {{ shared_secret: \"{SECRET}\" }}\n  session: {{ secret: \"{JWT_SECRET}\" }}\n\
         - name: admin\n  base_path: /ownid/admin\n  ownid: {{ shared_secret: \"{ADMIN_SECRET}\", responses: legacy }}\n  session: {{ secret: \"{JWT_SECRET}-admin\", ttl: 5m }}\n  users: {{ table: admins, login_id: email }}\n",
        db.display()
    );
    Config::from_yaml(&yaml, &[]).expect("two applications")
}

struct Apps {
    client: TestClient<poem::endpoint::BoxEndpoint<'static>>,
    stores: Vec<Arc<dyn UserStore>>,
}

impl Apps {
    async fn start(mut config: Config) -> Apps {
        // The in-process client has no address, which the default for /docs (loopback) refuses;
        // who gets the page: tests/network.rs.
        config.docs.allowed_networks.clear();
        let mut stores = Vec::new();
        for app in config.apps() {
            let store = storage::open(&app.config.storage, true).await.unwrap();
            store.apply_schema(true).await.unwrap();
            stores.push(store);
        }
        let app = App::with_stores(config, stores.clone()).expect("the applications");
        Apps {
            client: TestClient::new(app.endpoint().boxed()),
            stores,
        }
    }

    /// POST `body` to `path`, signed now with `secret`.
    async fn signed(&self, path: &str, secret: &str, body: &Value) -> Reply {
        let body = body.to_string();
        let timestamp = fresh_timestamp();
        let signature = sign_with(secret, &body, &timestamp);
        let request = self
            .client
            .post(path)
            .header("content-type", "application/json")
            .header("ownid-timestamp", &timestamp)
            .header("ownid-signature", signature)
            .body(body);
        read(request.send().await).await
    }

    async fn get(&self, path: &str) -> Reply {
        read(self.client.get(path).send().await).await
    }
}

#[tokio::test]
async fn two_applications_keep_their_secrets_tables_and_answers_apart() {
    let dir = tempfile::tempdir().unwrap();
    let apps = Apps::start(two_apps(&dir.path().join("shared.db"))).await;
    let (customers, admins) = (&apps.stores[0], &apps.stores[1]);
    assert!(customers.create_user("alice@example.com").await.unwrap());
    assert!(admins.create_user("alice@example.com").await.unwrap());

    let set = |data: &str| json!({ "loginId": "alice@example.com", "ownIdData": data });
    let get = json!({ "loginId": "alice@example.com" });
    let customer = |operation: &str| format!("/ownid/customer/{operation}");
    let admin = |operation: &str| format!("/ownid/admin/{operation}");

    // Each application accepts its own secret.
    apps.signed(
        &customer("setOwnIDDataByLoginId"),
        SECRET,
        &set("customer-device"),
    )
    .await
    .assert_empty(204);
    apps.signed(
        &admin("setOwnIDDataByLoginId"),
        ADMIN_SECRET,
        &set("admin-device"),
    )
    .await
    .assert_empty(204);

    // A request signed for one application is refused by the other, before its store is
    // touched: the data each wrote stays in its own table.
    apps.signed(&admin("setOwnIDDataByLoginId"), SECRET, &set("forged"))
        .await
        .assert_error(401, "invalid_signature");
    apps.signed(&customer("getOwnIDDataByLoginId"), ADMIN_SECRET, &get)
        .await
        .assert_error(401, "invalid_signature");
    apps.signed(&admin("getSessionByLoginId"), SECRET, &get)
        .await
        .assert_error(401, "invalid_signature");
    assert_eq!(
        customers
            .get_ownid_data("alice@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("customer-device")
    );
    assert_eq!(
        admins
            .get_ownid_data("alice@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("admin-device")
    );
    let reply = apps
        .signed(&customer("getOwnIDDataByLoginId"), SECRET, &get)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["ownIdData"], "customer-device");
    let reply = apps
        .signed(&admin("getOwnIDDataByLoginId"), ADMIN_SECRET, &get)
        .await;
    assert_eq!(reply.json()["ownIdData"], "admin-device");

    // Each its own response mode: an unknown user is 404 for customer, the legacy 200 for admin.
    let nobody = json!({ "loginId": "nobody@example.com" });
    apps.signed(&customer("getOwnIDDataByLoginId"), SECRET, &nobody)
        .await
        .assert_empty(404);
    let reply = apps
        .signed(&admin("getOwnIDDataByLoginId"), ADMIN_SECRET, &nobody)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["errorCode"], 404);

    // Each its own session settings: a token signed with its secret, living its ttl.
    for (path, secret, jwt_secret, ttl) in [
        (
            customer("getSessionByLoginId"),
            SECRET,
            JWT_SECRET.to_owned(),
            3600,
        ),
        (
            admin("getSessionByLoginId"),
            ADMIN_SECRET,
            format!("{JWT_SECRET}-admin"),
            300,
        ),
    ] {
        let reply = apps.signed(&path, secret, &get).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let token = reply.json()["token"].as_str().unwrap().to_owned();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(jwt_secret.as_bytes()),
            &validation,
        )
        .unwrap_or_else(|err| panic!("{path}: {err}"))
        .claims;
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, ttl, "{path}");
    }

    // Replays are per application too: the same signed request twice.
    let body = set("again").to_string();
    let timestamp = fresh_timestamp();
    let signature = sign_with(SECRET, &body, &timestamp);
    for expected in [204, 401] {
        let reply = read(
            apps.client
                .post(customer("setOwnIDDataByLoginId"))
                .header("content-type", "application/json")
                .header("ownid-timestamp", &timestamp)
                .header("ownid-signature", &signature)
                .body(body.clone())
                .send()
                .await,
        )
        .await;
        assert_eq!(reply.status, expected, "{}", reply.body);
    }

    // The old single base path serves nothing.
    apps.signed("/ownid/getOwnIDDataByLoginId", SECRET, &get)
        .await
        .assert_error(404, "not_found");

    // Readiness names every application's store.
    let ready = apps.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json(),
        json!({ "status": "ready", "apps": { "customer": "sqlite", "admin": "sqlite" } })
    );

    // Metrics carry the application: the requests each answered, the refusals each made.
    let metrics = apps.get("/metrics").await.body;
    for line in [
        r#"ownid_bridge_requests_total{app="customer",operation="setOwnIDDataByLoginId",status="204"}"#,
        r#"ownid_bridge_requests_total{app="admin",operation="setOwnIDDataByLoginId",status="204"}"#,
        r#"ownid_bridge_requests_total{app="admin",operation="setOwnIDDataByLoginId",status="401"}"#,
        r#"ownid_bridge_signature_failures_total{app="admin",reason="invalid_signature"}"#,
        r#"ownid_bridge_signature_failures_total{app="customer",reason="replayed_request"}"#,
        r#"ownid_bridge_storage_pool_connections{app="admin",state="max"}"#,
        r#"ownid_bridge_requests_total{app="",operation="readyz",status="200"}"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn the_document_and_swagger_ui_show_each_application_under_its_base_path() {
    let dir = tempfile::tempdir().unwrap();
    let apps = Apps::start(two_apps(&dir.path().join("shared.db"))).await;
    let document = apps.get("/openapi.json").await.json();
    assert!(document.get("servers").is_none(), "{document}");
    let tags: Vec<&str> = document["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag["name"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["customer", "admin"]);
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let operation = &item["post"];
        operations.push((
            path.as_str(),
            operation["operationId"].as_str().unwrap(),
            operation["tags"][0].as_str().unwrap(),
        ));
        // Every status and the signature requirement are kept.
        assert!(operation["responses"]["401"].is_object(), "{path}");
        assert_eq!(
            operation["security"],
            json!([{ "ownidSignature": [], "ownidTimestamp": [] }])
        );
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            (
                "/ownid/admin/getOwnIDDataByLoginId",
                "admin_getOwnIDDataByLoginId",
                "admin"
            ),
            (
                "/ownid/admin/getSessionByLoginId",
                "admin_getSessionByLoginId",
                "admin"
            ),
            (
                "/ownid/admin/setOwnIDDataByLoginId",
                "admin_setOwnIDDataByLoginId",
                "admin"
            ),
            (
                "/ownid/customer/getOwnIDDataByLoginId",
                "customer_getOwnIDDataByLoginId",
                "customer"
            ),
            (
                "/ownid/customer/getSessionByLoginId",
                "customer_getSessionByLoginId",
                "customer"
            ),
            (
                "/ownid/customer/setOwnIDDataByLoginId",
                "customer_setOwnIDDataByLoginId",
                "customer"
            ),
        ]
    );
    // The YAML rendering is the same document.
    let yaml: Value = serde_yaml::from_str(&apps.get("/openapi.yaml").await.body).unwrap();
    assert_eq!(yaml, document);

    // Swagger UI embeds this document and offers a secret per application.
    let docs = apps.get("/docs").await.body;
    assert!(docs.contains("/ownid/customer/getSessionByLoginId"));
    assert!(
        docs.contains(
            r#"const OWNID_APPS = [{"name":"customer","basePath":"/ownid/customer"},{"name":"admin","basePath":"/ownid/admin"}];"#
        ),
        "the page's application list"
    );
}

#[tokio::test]
async fn a_single_application_configuration_is_served_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path(), &[]);
    let apps = Apps::start(config).await;
    let document = apps.get("/openapi.json").await.json();
    let committed: Value = serde_json::from_str(include_str!("../openapi/openapi.json")).unwrap();
    assert_eq!(document, committed);
    assert_eq!(
        apps.get("/readyz").await.json(),
        json!({ "status": "ready", "storage": "sqlite" })
    );
    assert!(apps
        .get("/docs")
        .await
        .body
        .contains(r#"const OWNID_APPS = [{"name":"default","basePath":"/ownid"}];"#));
}

/// The binary with two applications, the second on a PostgreSQL database of its own: what
/// `serve` prints and logs, requests over TCP, and the commands that take `--app`.
#[tokio::test]
async fn the_binary_serves_two_applications_and_its_commands_take_app() {
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
    let (base, printed) = common::read_banner(&mut child).await;
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
    two_apps_over_one_database("postgres", &required_url("OWNID_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
async fn two_apps_over_one_mysql_database() {
    let url = common::mysql_test_database("ownid_bridge_apps_test").await;
    two_apps_over_one_database("mysql", &url).await;
}

#[tokio::test]
async fn two_apps_over_one_mongodb_database() {
    let url = common::mongodb_test_database("ownid_bridge_apps_test");
    two_apps_over_one_database("mongodb", &url).await;
}
