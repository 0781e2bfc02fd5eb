//! Hostile input: each is a 4xx with the error body, never a 500, never a hang.

use std::time::Duration;

use crate::common::*;
use ownid_bridge::storage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GET: &str = "getOwnIDDataByLoginId";
const SET: &str = "setOwnIDDataByLoginId";

/// Signs raw bytes (which need not be UTF-8).
async fn signed_bytes(app: &TestApp, operation: &str, body: Vec<u8>) -> Reply {
    let timestamp = fresh_timestamp();
    let signature = verifier().sign(&body, &timestamp);
    let response = app
        .client
        .post(app.path(operation))
        .header("content-type", "application/json")
        .header("ownid-timestamp", &timestamp)
        .header("ownid-signature", &signature)
        .body(body)
        .send()
        .await;
    read(response).await
}

#[tokio::test]
async fn deeply_nested_json_is_400() {
    let app = spawn(&[]).await;
    let depth = 10_000;
    let body = format!(
        "{{\"loginId\":\"a@b.c\",\"x\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let reply = app.signed(GET, &body).await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let app = spawn(&[]).await;
    let mut body = br#"{"loginId":"a"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#"@b.c"}"#);
    signed_bytes(&app, GET, body)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn duplicate_keys_are_400_and_nothing_is_written() {
    let app = spawn(&[]).await;
    app.add_user("victim@example.com").await;
    let body =
        r#"{"loginId":"attacker@example.com","ownIdData":"x","loginId":"victim@example.com"}"#;
    app.signed(SET, body)
        .await
        .assert_error(400, "invalid_request");
    app.get_data("victim@example.com").await.assert_empty(204);
}

#[tokio::test]
async fn nul_and_control_characters_in_login_id_are_400() {
    let app = spawn(&[]).await;
    for body in [
        r#"{"loginId":"a\u0000@b.c"}"#,
        r#"{"loginId":"a\u007f@b.c"}"#,
        r#"{"loginId":"a\r\n@b.c"}"#,
        r#"{"loginId":"\u0085"}"#,
    ] {
        app.signed(GET, body)
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_body_one_byte_off_the_signed_one_is_401() {
    let app = spawn(&[]).await;
    let signed = br#"{"loginId":"a@b.c"}"#.to_vec();
    let timestamp = fresh_timestamp();
    let signature = verifier().sign(&signed, &timestamp);
    for i in 0..signed.len() {
        let mut sent = signed.clone();
        sent[i] ^= 0x01;
        let response = app
            .client
            .post(app.path(GET))
            .header("content-type", "application/json")
            .header("ownid-timestamp", &timestamp)
            .header("ownid-signature", &signature)
            .body(sent)
            .send()
            .await;
        read(response).await.assert_error(401, "invalid_signature");
    }
}

/// The server over TCP with short timeouts.
async fn tcp_server() -> (std::net::SocketAddr, tempfile::TempDir) {
    tcp_server_with(&[]).await
}

/// The server over TCP with short timeouts, then `overrides`.
async fn tcp_server_with(overrides: &[(&str, &str)]) -> (std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = vec![
        ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
        ("OWNID_BRIDGE__SERVER__BODY_TIMEOUT", "1s"),
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "1s"),
    ];
    settings.extend_from_slice(overrides);
    let config = test_config(dir.path(), &settings);
    let store = storage::open(&config.storage, true).await.unwrap();
    store
        .apply_schema(&ownid_bridge_store::SchemaOptions::CREATE_TABLE)
        .await
        .unwrap();
    let (addr, _) = serve_tcp(config, store).await;
    (addr, dir)
}

async fn read_all(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_slow_body_is_408_after_the_body_timeout() {
    let (addr, _dir) = tcp_server().await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let timestamp = fresh_timestamp();
    let signature = sign(body, &timestamp);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /ownid/{GET} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         ownid-timestamp: {timestamp}\r\nownid-signature: {signature}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..5]).await.unwrap();
    // Trickle one byte well inside the idle timeout, so only the body timeout can end it.
    for byte in &body.as_bytes()[5..8] {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stream.write_all(&[*byte]).await;
    }
    let reply = read_all(&mut stream, Duration::from_secs(10)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"error\":\"request_timeout\""), "{reply}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let (addr, _dir) = tcp_server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /ownid/getOwnIDDataByLoginId HTTP/1.1\r\nhost:")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let reply = read_all(&mut stream, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        started.elapsed()
    );
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"error\":\"request_timeout\""), "{reply}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_without_an_unsolicited_answer() {
    let (addr, _dir) = tcp_server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let reply = read_all(&mut stream, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        started.elapsed()
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(!reply.contains("408"), "{reply}");
}

#[tokio::test]
async fn oversized_headers_are_refused_with_a_4xx() {
    let (addr, _dir) = tcp_server().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(1024 * 1024);
    let request = format!(
        "POST /ownid/{GET} HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\ncontent-length: 2\r\n\r\n{{}}"
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let reply = read_all(&mut stream, Duration::from_secs(10)).await;
    // hyper answers before the application sees the request; conn.rs gives it the error body.
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.200}");
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    assert_eq!(body["error"], "invalid_request", "{reply:.300}");
}

/// Writes `bytes` one at a time, `every` apart, until a write fails (the server closed).
fn trickle(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for byte in bytes {
            tokio::time::sleep(every).await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
    })
}

#[tokio::test]
async fn a_request_head_trickled_inside_the_idle_timeout_is_cut_off_at_the_header_timeout() {
    let (addr, _dir) = tcp_server_with(&[("OWNID_BRIDGE__SERVER__HEADER_TIMEOUT", "1s")]).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(format!("POST /ownid/{GET} HTTP/1.1\r\nhost: x\r\n").as_bytes())
        .await
        .unwrap();
    // A byte every 300 ms keeps the 1 s idle timer from ever firing; the head never ends (60
    // bytes take 18 s). Only a deadline for the whole head can end it while the client trickles.
    let writer = trickle(
        writer,
        b"x-slow: ".repeat(8)[..60].to_vec(),
        Duration::from_millis(300),
    );
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut out)).await;
    let reply = String::from_utf8_lossy(&out);
    assert!(
        !writer.is_finished(),
        "the client had to stop trickling before the server answered: {reply}"
    );
    writer.abort();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"error\":\"request_timeout\""), "{reply}");
}

#[tokio::test]
async fn the_header_timeout_does_not_cover_the_body_or_the_next_request() {
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__HEADER_TIMEOUT", "1s"),
        ("OWNID_BRIDGE__SERVER__BODY_TIMEOUT", "5s"),
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "5s"),
    ])
    .await;
    let body = r#"{"loginId":"a@b.c"}"#;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for round in 0..2 {
        let head = signed_head(GET, body, body.len());
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body takes longer than the header timeout, well inside the body timeout.
        for chunk in body.as_bytes().chunks(7) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stream.write_all(chunk).await.unwrap();
        }
        let mut reply = vec![0; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut reply))
            .await
            .unwrap()
            .unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]);
        assert!(reply.starts_with("HTTP/1.1 404"), "round {round}: {reply}");
        // The next request on the keep-alive connection starts a head of its own later.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

/// A raw HTTP/1.1 request head for `operation`, signed now over `signed_body`, declaring
/// `content_length` bytes of body.
fn signed_head(operation: &str, signed_body: &str, content_length: usize) -> String {
    let timestamp = fresh_timestamp();
    format!(
        "POST /ownid/{operation} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         ownid-timestamp: {timestamp}\r\nownid-signature: {}\r\n\
         content-length: {content_length}\r\n\r\n",
        sign(signed_body, &timestamp),
    )
}

/// Sends `GET /healthz` on a keep-alive connection and reads the answer's first bytes, or `None`
/// when nothing arrives within `wait`.
async fn healthz_on(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = vec![0; 4096];
    match tokio::time::timeout(wait, stream.read(&mut reply)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&reply[..n]).into_owned()),
        Ok(Err(err)) => Some(format!("error: {err}")),
        Err(_) => None,
    }
}

#[tokio::test]
async fn connections_over_max_connections_wait_until_one_closes() {
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS", "2"),
        // All three from one address, which may take every place here.
        ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS_PER_ADDRESS", "3"),
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "30s"),
    ])
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    for stream in [&mut first, &mut second] {
        let reply = healthz_on(stream, Duration::from_secs(10)).await;
        assert!(reply.unwrap().starts_with("HTTP/1.1 200"));
    }
    // Both stay open (keep-alive, idle). A third connection is not served meanwhile...
    let mut third = TcpStream::connect(addr).await.unwrap();
    let early = healthz_on(&mut third, Duration::from_secs(1)).await;
    assert_eq!(early, None, "served over the connection limit");
    // ...and is, as soon as one of the two closes.
    drop(first);
    let mut reply = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut reply))
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(healthz_on(&mut second, Duration::from_secs(10))
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_body_over_the_limit_sent_whole_still_gets_the_413() {
    // A client that writes its whole body before reading (Python's http.client, curl without
    // `Expect: 100-continue`): the server answers 413 before reading the body, and must not
    // close the socket on unread bytes (the kernel would reset the connection, and the client
    // would see a broken pipe or a reset instead of the answer).
    let (addr, _dir) = tcp_server_with(&[("OWNID_BRIDGE__SERVER__MAX_BODY_BYTES", "65536")]).await;
    // More than the kernel buffers of both ends hold on loopback, so that the client is still
    // writing when the server has answered.
    let body = vec![b'x'; 16 * 1024 * 1024];
    for attempt in 0..5 {
        // Signed over an empty body: the limit is checked before the signature.
        let head = signed_head(SET, "", body.len());
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        let sent = tokio::time::timeout(Duration::from_secs(10), stream.write_all(&request)).await;
        let mut out = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
        let reply = String::from_utf8_lossy(&out);
        assert!(
            matches!(sent, Ok(Ok(()))),
            "attempt {attempt}: sending: {sent:?}, reading: {read:?}, got {reply:?}"
        );
        assert!(
            reply.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: sending: {sent:?}, reading: {read:?}, got {reply:?}"
        );
        assert!(reply.contains("\"payload_too_large\""), "{reply}");
    }
}

// Issue 20: the second round of attacks.

#[tokio::test]
async fn format_characters_in_login_ids_are_400() {
    // Invisible (zero-width space, word joiner, byte-order mark, soft hyphen), bidirectional
    // (right-to-left override, isolates) and tag characters: two ids that differ only by them
    // look identical in logs and support tools (SPEC §1: category Cf is refused).
    let app = spawn(&[]).await;
    for login_id in [
        "ali\u{200B}ce@example.com",
        "\u{202E}moc.elpmaxe@ecila",
        "alice@example.com\u{2060}",
        "\u{FEFF}alice@example.com",
        "al\u{00AD}ice@example.com",
        "alice\u{2066}@example.com",
        "alice@example.com\u{E0041}",
        // Red team, round 3 (R7): invisible characters that are not category Cf
        // (Default_Ignorable_Code_Point: a variation selector, the combining grapheme joiner, the
        // Hangul filler), line and paragraph separators, and spaces other than U+0020.
        "alice@example.com\u{FE0F}",
        "alice@exa\u{034F}mple.com",
        "alice@example.com\u{3164}",
        "alice@example.com\u{00A0}",
        "alice@example.com\u{2028}",
        "alice\u{2029}@example.com",
        "alice@example.com\u{3000}",
    ] {
        let body = serde_json::json!({ "loginId": login_id }).to_string();
        for operation in [GET, "getSessionByLoginId"] {
            app.signed(operation, &body)
                .await
                .assert_error(400, "invalid_request");
        }
        app.set_data(login_id, "x")
            .await
            .assert_error(400, "invalid_request");
    }
    // Letters of other scripts, combining marks and emoji are not format characters.
    app.add_user("zoë😀@exämple.com").await;
    app.get_data("zoë😀@exämple.com").await.assert_empty(204);
}

#[tokio::test]
async fn signature_headers_sent_twice_are_refused() {
    // Red team, round 3 (R10): with two `ownid-signature` (or `ownid-timestamp`) lines the first
    // counted; a proxy that reads the last one sees another request than the server. Either
    // order, and a second line equal to the first, is `401 invalid_signature`.
    let app = spawn(&[]).await;
    app.add_user("alice@example.com").await;
    let body = serde_json::json!({ "loginId": "alice@example.com" }).to_string();
    let timestamp = fresh_timestamp();
    let good = sign(&body, &timestamp);
    let bad = sign("{}", &timestamp);
    let json = ("content-type", "application/json");
    for headers in [
        vec![
            json,
            ("ownid-timestamp", timestamp.as_str()),
            ("ownid-signature", good.as_str()),
            ("ownid-signature", bad.as_str()),
        ],
        vec![
            json,
            ("ownid-timestamp", timestamp.as_str()),
            ("ownid-signature", good.as_str()),
            ("ownid-signature", good.as_str()),
        ],
        vec![
            json,
            ("ownid-timestamp", timestamp.as_str()),
            ("ownid-timestamp", timestamp.as_str()),
            ("ownid-signature", good.as_str()),
        ],
    ] {
        app.post(GET, &body, &headers)
            .await
            .assert_error(401, "invalid_signature");
    }
    // The same request with each header once is answered.
    app.post(
        GET,
        &body,
        &[
            json,
            ("ownid-timestamp", &timestamp),
            ("ownid-signature", &good),
        ],
    )
    .await
    .assert_empty(204);
}

#[tokio::test]
async fn lowercase_normalization_never_folds_unicode_onto_ascii() {
    // U+212A KELVIN SIGN lower-cases to an ASCII `k` under Unicode rules: "Karl" spelt with it
    // would be Karl once folded, and overwrite his data and get his session.
    let app = spawn(&[("OWNID_BRIDGE__OWNID__LOGIN_ID_NORMALIZATION", "lowercase")]).await;
    app.add_user("karl@example.com").await;
    app.set_data("karl@example.com", "karl's devices")
        .await
        .assert_empty(204);
    let kelvin = "\u{212A}arl@example.com";
    app.set_data(kelvin, "the attacker's device")
        .await
        .assert_empty(404);
    app.session(kelvin).await.assert_empty(404);
    app.get_data(kelvin).await.assert_empty(404);
    let reply = app.get_data("KARL@example.com").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ownIdData"], "karl's devices");
    // ASCII letters still fold.
    assert_eq!(app.session("Karl@Example.COM").await.status, 200);
}

#[tokio::test]
async fn nul_in_ownid_data_is_400() {
    // Not every database can store U+0000 (PostgreSQL refuses it): refused on every backend,
    // before any database sees it (SPEC §1).
    let app = spawn(&[]).await;
    app.add_user("alice@example.com").await;
    app.set_data("alice@example.com", "before\u{0}after")
        .await
        .assert_error(400, "invalid_request");
    app.get_data("alice@example.com").await.assert_empty(204);
}

/// A connection from `source` (another loopback address) to `addr`.
async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn silent_connections_from_one_address_do_not_lock_out_another() {
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS", "8"),
        ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS_PER_ADDRESS", "4"),
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "30s"),
        ("OWNID_BRIDGE__SERVER__HEADER_TIMEOUT", "30s"),
    ])
    .await;
    // As many sockets as the server takes, all from 127.0.0.1, none sending a byte.
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(connect_from("127.0.0.1", addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut other = connect_from("127.0.0.2", addr).await;
    let reply = healthz_on(&mut other, Duration::from_secs(3)).await;
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        "another address was locked out: {reply:?}"
    );
    // The ones over the address's four were closed when accepted.
    let mut closed = 0;
    for stream in &mut silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await;
        if let Ok(Ok(0)) = read {
            closed += 1;
        }
    }
    assert_eq!(closed, 4, "connections over the per-address limit");
    // A proxy the server trusts carries many clients: not limited.
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS_PER_ADDRESS", "2"),
        ("OWNID_BRIDGE__SERVER__TRUSTED_PROXIES", "127.0.0.3"),
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "30s"),
    ])
    .await;
    let mut proxied = Vec::new();
    for _ in 0..4 {
        proxied.push(connect_from("127.0.0.3", addr).await);
    }
    for stream in &mut proxied {
        let reply = healthz_on(stream, Duration::from_secs(3)).await;
        assert!(reply.unwrap().starts_with("HTTP/1.1 200"));
    }
}

#[tokio::test]
async fn two_addresses_do_not_lock_out_a_third() {
    // Red team, round 3 (R1): the per-address default is half of max_connections, so two hosts
    // holding keep-alive connections (an unauthenticated GET /healthz now and then) take every
    // place, for as long as they like.
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__MAX_CONNECTIONS", "8"),
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "30s"),
        ("OWNID_BRIDGE__SERVER__HEADER_TIMEOUT", "30s"),
    ])
    .await;
    // Each address tries to hold half the places; what it is given (its share) is held, the
    // connections over its share are closed on accept (no answer).
    let mut held = Vec::new();
    for source in ["127.0.0.1", "127.0.0.2"] {
        let mut answered = 0;
        for _ in 0..4 {
            let mut stream = connect_from(source, addr).await;
            let reply = healthz_on(&mut stream, Duration::from_secs(3)).await;
            if reply.is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
                answered += 1;
                held.push(stream);
            }
        }
        assert!(answered >= 1, "{source} was not served at all");
    }
    let mut other = connect_from("127.0.0.3", addr).await;
    let reply = healthz_on(&mut other, Duration::from_secs(3)).await;
    assert!(
        reply
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        "two addresses locked a third out: {reply:?}"
    );
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed_at_the_header_timeout() {
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "30s"),
        ("OWNID_BRIDGE__SERVER__HEADER_TIMEOUT", "1s"),
    ])
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let reply = read_all(&mut stream, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a silent connection held its slot for {:?}",
        started.elapsed()
    );
    // Nothing had arrived: closed without an answer.
    assert_eq!(reply, "");
}

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_HEADERS: u8 = 0x1;
const H2_SETTINGS: u8 = 0x4;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_STREAM: u8 = 0x1;
const H2_END_HEADERS: u8 = 0x4;

/// `GET /healthz` as an HPACK block: `:method GET`, `:scheme http` (static table entries 2 and
/// 6), `:path /healthz` (a literal with the name of entry 4).
fn h2_healthz_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, 8];
    block.extend_from_slice(b"/healthz");
    block
}

/// Reads frames until the server sends a HEADERS frame on stream 1 (`true`: the request was
/// served) or closes the connection (`false`).
async fn h2_served(stream: &mut TcpStream, limit: Duration) -> bool {
    let read = async {
        loop {
            let mut head = [0u8; 9];
            if stream.read_exact(&mut head).await.is_err() {
                return false;
            }
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0; len];
            if stream.read_exact(&mut payload).await.is_err() {
                return false;
            }
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if head[3] == H2_HEADERS && id == 1 {
                return true;
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the server neither answered nor closed")
}

#[tokio::test]
async fn an_http2_header_block_must_arrive_within_the_header_timeout() {
    let (addr, _dir) = tcp_server_with(&[
        ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "30s"),
        ("OWNID_BRIDGE__SERVER__HEADER_TIMEOUT", "1s"),
    ])
    .await;
    let block = h2_healthz_block();
    // A header block sent at once is served.
    let mut quick = TcpStream::connect(addr).await.unwrap();
    let mut request = H2_PREFACE.to_vec();
    request.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    request.extend(h2_frame(
        H2_HEADERS,
        H2_END_STREAM | H2_END_HEADERS,
        1,
        &block,
    ));
    quick.write_all(&request).await.unwrap();
    assert!(h2_served(&mut quick, Duration::from_secs(5)).await);

    // One held back past the header timeout (its CONTINUATION frame comes 2.5 s later) is not.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let mut start = H2_PREFACE.to_vec();
    start.extend(h2_frame(H2_SETTINGS, 0, 0, &[]));
    start.extend(h2_frame(H2_HEADERS, H2_END_STREAM, 1, &block[..2]));
    slow.write_all(&start).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = slow
        .write_all(&h2_frame(H2_CONTINUATION, H2_END_HEADERS, 1, &block[2..]))
        .await;
    assert!(
        !h2_served(&mut slow, Duration::from_secs(10)).await,
        "a header block that took 2.5 s was served with a 1 s header timeout"
    );
}
