//! Hostile input: each is a 4xx with the error body, never a 500, never a hang.

mod common;

use std::time::Duration;

use common::*;
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
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path(),
        &[
            ("OWNID_BRIDGE__SERVER__LISTEN", "127.0.0.1:0"),
            ("OWNID_BRIDGE__SERVER__BODY_TIMEOUT", "1s"),
            ("OWNID_BRIDGE__SERVER__IDLE_TIMEOUT", "1s"),
        ],
    );
    let store = storage::open(&config.storage, true).await.unwrap();
    store.apply_schema(true).await.unwrap();
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
