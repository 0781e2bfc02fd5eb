//! Several OwnID applications in one server (`apps`): each with its own base path, shared
//! secret, response mode, users table and session settings. A request signed for one is refused
//! by the other; each writes only its own table; the OpenAPI document, Swagger UI, `/readyz`,
//! metrics and logs name each application. With a server: tests/backends/apps.rs.

use crate::common::apps::{sign_with, Apps, ADMIN_SECRET};
use crate::common::{fresh_timestamp, read, JWT_SECRET, SECRET};
use ownid_bridge::config::Config;
use serde_json::{json, Value};

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
    let config = crate::common::test_config(dir.path(), &[]);
    let apps = Apps::start(config).await;
    let document = apps.get("/openapi.json").await.json();
    let committed: Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
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
