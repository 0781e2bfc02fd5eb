//! `allowed_networks` and `trusted_proxies` need a real socket peer: served over TCP in process.

mod common;

use common::*;
use ownid_bridge::app::{serve, App};
use ownid_bridge::storage;
use poem::listener::Acceptor;

async fn serve_with(overrides: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = overrides.to_vec();
    overrides.push(("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"));
    let config = test_config(dir.path(), &overrides);
    let store = storage::open(&config.storage, true).await.unwrap();
    store.apply_schema(true).await.unwrap();
    let (addr, _) = serve_tcp(config, store).await;
    (format!("http://{addr}"), dir)
}

async fn get_data(url: &str, forwarded_for: Option<&str>) -> (u16, String) {
    get_data_forwarded(&reqwest::Client::new(), url, forwarded_for).await
}

async fn get_data_with(client: &reqwest::Client, url: &str) -> (u16, String) {
    get_data_forwarded(client, url, None).await
}

async fn get_data_forwarded(
    client: &reqwest::Client,
    url: &str,
    forwarded_for: Option<&str>,
) -> (u16, String) {
    let body = r#"{"loginId":"nobody@example.com"}"#;
    let timestamp = fresh_timestamp();
    let mut request = client
        .post(format!("{url}/ownid/getOwnIDDataByLoginId"))
        .header("content-type", "application/json")
        .header("ownid-timestamp", &timestamp)
        .header("ownid-signature", sign(body, &timestamp))
        .body(body);
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn callers_inside_the_allowed_networks_pass() {
    let (url, _dir) = serve_with(&[("OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS", "127.0.0.0/8")]).await;
    assert_eq!(get_data(&url, None).await.0, 404);
}

#[tokio::test]
async fn callers_outside_are_403_and_cannot_spoof_forwarded_for() {
    let (url, _dir) =
        serve_with(&[("OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS", "203.0.113.0/24")]).await;
    let (status, body) = get_data(&url, None).await;
    assert_eq!(status, 403);
    assert!(body.contains("\"forbidden\""), "{body}");
    // The peer (127.0.0.1) is not a trusted proxy, so its X-Forwarded-For is ignored.
    assert_eq!(get_data(&url, Some("203.0.113.7")).await.0, 403);
}

#[tokio::test]
async fn forwarded_for_counts_behind_a_trusted_proxy() {
    let (url, _dir) = serve_with(&[
        ("OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS", "203.0.113.0/24"),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    assert_eq!(get_data(&url, Some("203.0.113.7")).await.0, 404);
    assert_eq!(get_data(&url, Some("198.51.100.1")).await.0, 403);
    assert_eq!(
        get_data(&url, Some("203.0.113.7, 198.51.100.1")).await.0,
        403
    );
}

#[tokio::test]
async fn with_a_certificate_and_key_it_serves_https() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (fixture("tls-test-only.crt"), fixture("tls-test-only.key"));
    let config = test_config(
        dir.path(),
        &[
            ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("OWNID_BRIDGE__SERVER__TLS__CERTIFICATE_FILE", &cert),
            ("OWNID_BRIDGE__SERVER__TLS__KEY_FILE", &key),
        ],
    );
    let store = storage::open(&config.storage, true).await.unwrap();
    store.apply_schema(true).await.unwrap();
    let (app, _) = App::new(config, store).unwrap();
    let acceptor =
        ownid_bridge::app::bind_server(&app.config.server.listen, app.config.server.tls.as_ref())
            .await
            .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(serve(
        acceptor,
        app.endpoint(),
        std::time::Duration::from_secs(1),
    ));

    let ca_file = fixture("tls-ca-test-only.crt");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}");
    let (status, _) = get_data_with(&client, &url).await;
    assert_eq!(status, 404);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // An unconfigured certificate authority is refused by the client: the server is really TLS.
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err());
}

#[tokio::test]
async fn an_unreadable_certificate_stops_start_up_with_its_key_named() {
    let tls = ownid_bridge::config::TlsConfig {
        certificate_file: "/nonexistent/cert.pem".into(),
        key_file: "/nonexistent/key.pem".into(),
    };
    let err = ownid_bridge::app::bind_server("127.0.0.1:0", Some(&tls))
        .await
        .err()
        .unwrap();
    assert!(
        err.starts_with("server.tls.certificate_file: cannot read"),
        "{err}"
    );
}
