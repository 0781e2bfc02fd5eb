//! `allowed_networks` and `trusted_proxies` need a real socket peer: served over TCP in process.

use crate::common::*;
use ownid_bridge::storage;

async fn serve_with(overrides: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    serve_on("127.0.0.1:0", overrides).await
}

async fn serve_on(listen: &str, overrides: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = overrides.to_vec();
    overrides.push(("OWNID_BRIDGE__SERVER__LISTEN", listen));
    let config = test_config(dir.path(), &overrides);
    let store = storage::open(&config.storage, true).await.unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
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

/// POST getOwnIDDataByLoginId with one `X-Forwarded-For` line per item, in order.
async fn get_data_lines(url: &str, lines: &[&[u8]]) -> u16 {
    let body = r#"{"loginId":"nobody@example.com"}"#;
    let timestamp = fresh_timestamp();
    let mut request = reqwest::Client::new()
        .post(format!("{url}/ownid/getOwnIDDataByLoginId"))
        .header("content-type", "application/json")
        .header("ownid-timestamp", &timestamp)
        .header("ownid-signature", sign(body, &timestamp))
        .body(body);
    for line in lines {
        let value = reqwest::header::HeaderValue::from_bytes(line).unwrap();
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_forwarded_for_line_is_read_as_one_list() {
    let (url, _dir) = serve_with(&[
        ("OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS", "203.0.113.0/24"),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    // The client sends its own line; the proxy (HAProxy's `option forwardfor`) adds a second one
    // with the address it saw. The second line is the truth.
    assert_eq!(
        get_data_lines(&url, &[b"203.0.113.7", b"198.51.100.1"]).await,
        403
    );
    assert_eq!(
        get_data_lines(&url, &[b"203.0.113.7, 203.0.113.8", b"198.51.100.1"]).await,
        403
    );
    assert_eq!(
        get_data_lines(&url, &[b"198.51.100.1", b"203.0.113.7"]).await,
        404
    );
    // Entries from several lines form one list: the right-most untrusted one is the client.
    assert_eq!(
        get_data_lines(&url, &[b"198.51.100.1", b"203.0.113.7, 127.0.0.1"]).await,
        404
    );
    // A port after the address is read (some proxies add it).
    assert_eq!(get_data_lines(&url, &[b"203.0.113.7:5678"]).await, 404);
    assert_eq!(get_data_lines(&url, &[b"198.51.100.1:5678"]).await, 403);
}

#[tokio::test]
async fn an_unreadable_forwarded_for_is_refused_not_replaced_by_the_proxy_address() {
    // The proxy itself is in the allowed networks: falling back to its address would let anyone
    // through who can make the header unreadable.
    let (url, _dir) = serve_with(&[
        (
            "OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS",
            "127.0.0.1, 203.0.113.0/24",
        ),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    assert_eq!(get_data_lines(&url, &[b"203.0.113.7"]).await, 404);
    assert_eq!(get_data_lines(&url, &[]).await, 404);
    let unreadable: [&[&[u8]]; 9] = [
        &[b"garbage"],
        &[b"203.0.113.7, garbage"],
        &[b"garbage, 203.0.113.7"],
        &[b"203.0.113.7,"],
        &[b"203.0.113.7,,203.0.113.8"],
        &[b""],
        &[b"203.0.113.7", b"\xff\xfe"],
        &[b"unknown"],
        &[b"203.0.113.7:notaport"],
    ];
    for lines in unreadable {
        let shown: Vec<_> = lines.iter().map(|l| String::from_utf8_lossy(l)).collect();
        assert_eq!(get_data_lines(&url, lines).await, 403, "{shown:?}");
    }
}

/// POST getOwnIDDataByLoginId with the given header lines, in order.
async fn get_data_headers(url: &str, lines: &[(&str, &str)]) -> u16 {
    let body = r#"{"loginId":"nobody@example.com"}"#;
    let timestamp = fresh_timestamp();
    let mut request = reqwest::Client::new()
        .post(format!("{url}/ownid/getOwnIDDataByLoginId"))
        .header("content-type", "application/json")
        .header("ownid-timestamp", &timestamp)
        .header("ownid-signature", sign(body, &timestamp))
        .body(body);
    for (name, value) in lines {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_forwarded_header_is_read_with_the_same_rules() {
    let (url, _dir) = serve_with(&[
        (
            "OWNID_BRIDGE__OWNID__ALLOWED_NETWORKS",
            "203.0.113.0/24, 2001:db8::/32",
        ),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let passes: [&[(&str, &str)]; 4] = [
        &[("forwarded", "for=203.0.113.7")],
        &[(
            "forwarded",
            "For=198.51.100.1;proto=http, for=203.0.113.7;by=127.0.0.1",
        )],
        &[("forwarded", "for=\"[2001:db8::1]:4711\"")],
        &[("forwarded", "for=\"203.0.113.7:80\";proto=https")],
    ];
    for lines in passes {
        assert_eq!(get_data_headers(&url, lines).await, 404, "{lines:?}");
    }
    let refused: [&[(&str, &str)]; 8] = [
        // The client's own line first, the proxy's second: the proxy's counts.
        &[
            ("forwarded", "for=203.0.113.7"),
            ("forwarded", "for=198.51.100.1"),
        ],
        &[("forwarded", "for=unknown")],
        &[("forwarded", "for=_hidden")],
        &[("forwarded", "proto=https")],
        &[("forwarded", "for=203.0.113.7, garbage")],
        &[("forwarded", "for=[2001:db8::1")],
        // Both kinds at once: one of them was written by the client.
        &[
            ("forwarded", "for=203.0.113.7"),
            ("x-forwarded-for", "203.0.113.8"),
        ],
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=198.51.100.1"),
        ],
    ];
    for lines in refused {
        assert_eq!(get_data_headers(&url, lines).await, 403, "{lines:?}");
    }
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
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let (addr, _server) = serve_tcp(config, store).await;
    let port = addr.port();

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
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("server.tls.certificate_file: cannot read"),
        "{err}"
    );
}

/// A certificate or key that cannot be used stops start-up with its key named (poem's own rustls
/// listener took them, listened, then failed every handshake: a server that looks up and serves
/// nothing).
#[tokio::test]
async fn an_unusable_certificate_or_key_stops_start_up_with_its_key_named() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").unwrap();
    let cases = [
        // Not a certificate at all.
        (
            garbage.clone(),
            fixture("tls-test-only.key").into(),
            "server.tls.certificate_file: ",
        ),
        // A key file with no private key in it (the certificate again).
        (
            fixture("tls-test-only.crt").into(),
            fixture("tls-test-only.crt").into(),
            "server.tls.key_file: ",
        ),
        // A private key that is not the certificate's (the certificate authority's certificate
        // with the server's key).
        (
            fixture("tls-ca-test-only.crt").into(),
            fixture("tls-test-only.key").into(),
            "server.tls.key_file: ",
        ),
    ];
    for (certificate_file, key_file, named) in cases {
        let tls = ownid_bridge::config::TlsConfig {
            certificate_file,
            key_file,
        };
        let err = ownid_bridge::app::bind_server("127.0.0.1:0", Some(&tls))
            .await
            .err()
            .unwrap_or_else(|| panic!("{tls:?} was accepted"))
            .to_string();
        assert!(err.starts_with(named), "{err}");
        assert!(err.contains("cannot be used"), "{err}");
        // Nothing of the key file's content is echoed.
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}

/// A TLS client that connects and never completes its handshake is cut off like a silent plain
/// one: the handshake runs inside the connection's deadline, not before it.
#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (fixture("tls-test-only.crt"), fixture("tls-test-only.key"));
    let config = test_config(
        dir.path(),
        &[
            ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "1s"),
            ("OWNID_BRIDGE__SERVER__TLS__CERTIFICATE_FILE", &cert),
            ("OWNID_BRIDGE__SERVER__TLS__KEY_FILE", &key),
        ],
    );
    let store = storage::open(&config.storage, true).await.unwrap();
    let (addr, _server) = serve_tcp(config, store).await;
    // The first bytes of a TLS record header (a handshake record), then nothing.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut out),
    )
    .await;
    assert!(closed.is_ok(), "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "held for {:?}",
        started.elapsed()
    );
    // Meanwhile the server still answers others.
    let plain = std::net::TcpStream::connect(addr);
    assert!(plain.is_ok());
}

/// `GET /metrics` with the given headers: the status.
async fn metrics_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = reqwest::Client::new().get(format!("{url}/metrics"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn metrics_are_for_loopback_callers_by_default() {
    let (url, _dir) = serve_with(&[]).await;
    assert_eq!(metrics_status(&url, &[]).await, 200);
    // A reverse proxy on the same host connects from loopback too: a forwarded request is not a
    // local scrape unless the proxy is trusted and names a caller inside the allow-list.
    assert_eq!(
        metrics_status(&url, &[("x-forwarded-for", "198.51.100.1")]).await,
        403
    );
    assert_eq!(
        metrics_status(&url, &[("forwarded", "for=198.51.100.1")]).await,
        403
    );

    // The default, seen from an address that is not loopback: bind to this host's own outward
    // address when it has one (the peer is then that address, not 127.0.0.1).
    let outward = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("203.0.113.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    match outward {
        Some(ip) => {
            let listen = std::net::SocketAddr::new(ip, 0).to_string();
            let (url, _dir) = serve_on(&listen, &[]).await;
            assert_eq!(metrics_status(&url, &[]).await, 403, "from {ip}");
            let reply = reqwest::get(format!("{url}/metrics")).await.unwrap();
            let body = reply.text().await.unwrap();
            assert!(body.contains("\"forbidden\""), "{body}");
            assert!(!body.contains("ownid_bridge_"), "{body}");
        }
        None => eprintln!("no non-loopback local address: the remote-peer case is not exercised"),
    }
}

#[tokio::test]
async fn metrics_allowed_networks_decide_who_reads_metrics() {
    let (url, _dir) =
        serve_with(&[("OWNID_BRIDGE__METRICS__ALLOWED_NETWORKS", "203.0.113.0/24")]).await;
    assert_eq!(metrics_status(&url, &[]).await, 403);
    // Through a trusted proxy, the forwarded caller counts, and an unreadable header is refused.
    let (url, _dir) = serve_with(&[
        ("OWNID_BRIDGE__METRICS__ALLOWED_NETWORKS", "203.0.113.0/24"),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    assert_eq!(
        metrics_status(&url, &[("x-forwarded-for", "203.0.113.7")]).await,
        200
    );
    assert_eq!(
        metrics_status(&url, &[("x-forwarded-for", "198.51.100.1")]).await,
        403
    );
    assert_eq!(
        metrics_status(&url, &[("x-forwarded-for", "garbage")]).await,
        403
    );
    // An empty list lets anyone read them (for a network that is closed by other means).
    let (url, _dir) = serve_with(&[("OWNID_BRIDGE__METRICS__ALLOWED_NETWORKS", "")]).await;
    assert_eq!(
        metrics_status(&url, &[("x-forwarded-for", "198.51.100.1")]).await,
        200
    );
}

/// `GET path` with the given headers: the status.
async fn status_of(url: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = reqwest::Client::new().get(format!("{url}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Swagger UI asks for the shared secret, the production one on a production server: by default
/// only a caller on this host gets the page (through an SSH tunnel, say), as for /metrics.
#[tokio::test]
async fn the_docs_page_is_for_loopback_callers_by_default() {
    let (url, _dir) = serve_with(&[]).await;
    for path in ["/docs", "/docs/favicon.svg"] {
        assert_eq!(status_of(&url, path, &[]).await, 200, "{path}");
        // A reverse proxy on this host connects from loopback: a forwarded request is not local.
        assert_eq!(
            status_of(&url, path, &[("x-forwarded-for", "198.51.100.1")]).await,
            403,
            "{path}"
        );
    }
    // The document itself holds no secret: served to anyone.
    assert_eq!(
        status_of(
            &url,
            "/openapi.json",
            &[("x-forwarded-for", "198.51.100.1")]
        )
        .await,
        200
    );
    let outward = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("203.0.113.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    match outward {
        Some(ip) => {
            let listen = std::net::SocketAddr::new(ip, 0).to_string();
            let (url, _dir) = serve_on(&listen, &[]).await;
            assert_eq!(status_of(&url, "/docs", &[]).await, 403, "from {ip}");
            assert_eq!(
                status_of(&url, "/openapi.json", &[]).await,
                200,
                "from {ip}"
            );
        }
        None => eprintln!("no non-loopback local address: the remote-peer case is not exercised"),
    }
}

#[tokio::test]
async fn docs_settings_decide_who_gets_the_page() {
    let (url, _dir) =
        serve_with(&[("OWNID_BRIDGE__DOCS__ALLOWED_NETWORKS", "203.0.113.0/24")]).await;
    assert_eq!(status_of(&url, "/docs", &[]).await, 403);
    let (url, _dir) = serve_with(&[
        ("OWNID_BRIDGE__DOCS__ALLOWED_NETWORKS", "203.0.113.0/24"),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    assert_eq!(
        status_of(&url, "/docs", &[("x-forwarded-for", "203.0.113.7")]).await,
        200
    );
    assert_eq!(
        status_of(&url, "/docs", &[("x-forwarded-for", "198.51.100.1")]).await,
        403
    );
    let (url, _dir) = serve_with(&[("OWNID_BRIDGE__DOCS__ENABLED", "false")]).await;
    assert_eq!(status_of(&url, "/docs", &[]).await, 404);
    assert_eq!(status_of(&url, "/docs/favicon.svg", &[]).await, 404);
    assert_eq!(status_of(&url, "/openapi.json", &[]).await, 200);
}
