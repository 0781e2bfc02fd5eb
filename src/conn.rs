//! Connection-level guards, below HTTP.
//!
//! hyper (under poem) handles two hostile cases before the application sees a request, and
//! neither answers with the SPEC's error body: a client that stalls in the middle of its request
//! head is waited for forever, and headers over hyper's limit get a bare `431` with an empty body.
//! Every accepted connection is wrapped here so that
//! - a read that waits longer than the idle timeout ends the connection, after a
//!   `408 request_timeout` when part of a request had arrived (an idle keep-alive connection is
//!   just closed: an unsolicited 408 there could be mistaken for the answer to the client's next
//!   request);
//! - a request head (request line and headers) must be complete within the header timeout from
//!   its first byte, however steadily it trickles (poem does not give hyper a timer, so hyper's
//!   own `header_read_timeout` never runs); then the same `408` ends the connection. The first
//!   request's head must be complete within the header timeout from the accept (a TLS handshake
//!   included): a connection that sends nothing is closed then, not after the idle timeout;
//! - hyper's own `431` is sent with the JSON error body instead;
//! - when the server closes a connection, it first sends its FIN and then reads and discards
//!   what the client still sends, for up to [`LINGER_TIME`] and [`LINGER_BYTES`] ("lingering
//!   close", as Apache and nginx do). A response sent before the request body was read (`413`
//!   for a body over `server.max_body_bytes`, `403`, `401`) then reaches a client that writes
//!   its whole body before reading: closing a socket with unread bytes makes the kernel send a
//!   reset, and the client gets a broken pipe or a reset instead of the answer;
//! - at most `server.max_connections` connections are open at once: the acceptor takes a permit
//!   before it accepts, so further clients wait in the kernel's listen backlog (their connect
//!   succeeds, their request is read once a connection closes) instead of costing a file
//!   descriptor each. The number open is the gauge `ownid_bridge_connections_open`;
//! - at most `server.max_connections_per_address` of them come from one client address (an IPv4
//!   address, or an IPv6 /64, which one host usually has whole), so that one host cannot take
//!   every place with sockets that never authenticate. A connection over it is closed as soon as
//!   it is accepted (counted in `ownid_bridge_connections_refused_total`). Connections from
//!   `server.trusted_proxies` are not counted: a proxy carries many clients.
//!
//! The head is followed on the bytes as they pass: it starts with the first byte read after a
//! response went out and ends at the first empty line. On HTTP/2 (the client preface
//! `PRI * HTTP/2.0`, in clear or after ALPN `h2` on TLS) the frames are followed instead: a header
//! block (a HEADERS frame and its CONTINUATION frames) must be complete within the header timeout
//! from its first frame, and the first one within the header timeout from the accept; a late one
//! ends the connection (without the HTTP/1.1 `408`). What an HTTP/2 client sends between requests
//! (PING, SETTINGS, WINDOW_UPDATE) keeps its connection open, like an HTTP/1.1 client's requests:
//! the per-address limit bounds how many such connections one host holds.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_io_timeout::TimeoutStream;

/// How long a closing connection keeps reading (and discarding) what the client still sends.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much a closing connection reads and discards at most.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// The raw response for a request head that stalled.
fn request_timeout() -> Vec<u8> {
    raw_response(
        "408 Request Timeout",
        "request_timeout",
        "the request did not arrive in time",
    )
}

/// The raw response for headers over hyper's limit.
fn headers_too_large() -> Vec<u8> {
    raw_response(
        "431 Request Header Fields Too Large",
        "invalid_request",
        "the request headers are too large",
    )
}

fn raw_response(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = crate::error::error_body(code, message);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An acceptor whose connections carry the guards.
pub struct Guarded<A> {
    inner: A,
    idle_timeout: Duration,
    header_timeout: Duration,
    /// One permit per open connection.
    connections: Arc<Semaphore>,
    per_address: PerAddress,
}

impl<A> Guarded<A> {
    pub fn new(inner: A, server: &crate::config::ServerConfig) -> Self {
        Guarded {
            inner,
            idle_timeout: server.idle_timeout,
            header_timeout: server.header_timeout,
            connections: Arc::new(Semaphore::new(
                server.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            per_address: PerAddress {
                limit: server.connections_per_address(),
                exempt: server.trusted_proxies.clone().into(),
                open: Arc::default(),
            },
        }
    }
}

/// A client as the per-address limit counts it: an IPv4 address, or the /64 of an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Client {
    V4(std::net::Ipv4Addr),
    V6Net(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4),
                None => Client::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The open connections of each client address (`server.max_connections_per_address`).
struct PerAddress {
    limit: usize,
    /// Proxies (`server.trusted_proxies`), whose connections carry many clients: not counted.
    exempt: Arc<[IpNet]>,
    open: Arc<Mutex<HashMap<Client, usize>>>,
}

impl PerAddress {
    /// A place for a connection from `remote`: `Err` when its address has all of its own,
    /// `Ok(None)` when it is not counted (a trusted proxy, or not an IP connection).
    fn take(&self, remote: &RemoteAddr) -> Result<Option<AddressSlot>, ()> {
        let Some(ip) = remote.as_socket_addr().map(|addr| addr.ip()) else {
            return Ok(None);
        };
        let ip = ip.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Ok(None);
        }
        let client = Client::of(ip);
        let mut open = lock(&self.open);
        let count = open.entry(client).or_default();
        if *count >= self.limit {
            return Err(());
        }
        *count += 1;
        Ok(Some(AddressSlot {
            open: Arc::clone(&self.open),
            client,
        }))
    }
}

fn lock(open: &Mutex<HashMap<Client, usize>>) -> std::sync::MutexGuard<'_, HashMap<Client, usize>> {
    open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection's place in [`PerAddress`], given back when the connection is dropped.
struct AddressSlot {
    open: Arc<Mutex<HashMap<Client, usize>>>,
    client: Client,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

impl<A: Acceptor> Acceptor for Guarded<A> {
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        loop {
            // Not accepting while every permit is taken leaves further clients in the backlog.
            let permit = self
                .connections
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let (io, local, remote, scheme) = self.inner.accept().await?;
            let Ok(slot) = self.per_address.take(&remote) else {
                // Closed at once, its permit free again: one host cannot hold every place.
                metrics::counter!(REFUSED_CONNECTIONS, "reason" => "per_address").increment(1);
                tracing::debug!(
                    %remote,
                    "closed a connection: server.max_connections_per_address reached"
                );
                continue;
            };
            metrics::gauge!(OPEN_CONNECTIONS).increment(1.0);
            let mut io = TimeoutStream::new(io);
            io.set_read_timeout(Some(self.idle_timeout));
            return Ok((
                GuardedIo {
                    inner: Box::pin(io),
                    read_since_write: false,
                    closing: None,
                    header_timeout: self.header_timeout,
                    // The first request's head is due within the header timeout from now.
                    head: Head::reading(self.header_timeout),
                    protocol: Protocol::Sniffing(0),
                    linger: None,
                    _slot: slot,
                    _permit: permit,
                },
                local,
                remote,
                scheme,
            ));
        }
    }
}

/// The start of an HTTP/2 connection's preface, which tells it from HTTP/1.1.
const H2_PREFACE_START: &[u8; 4] = b"PRI ";
/// The whole client preface, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const H2_PREFACE_LEN: usize = 24;
const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

/// What the connection speaks, told by its first bytes.
enum Protocol {
    /// This many bytes of [`H2_PREFACE_START`] have arrived, and nothing else yet.
    Sniffing(usize),
    Http1,
    Http2(H2Frames),
}

/// Where an HTTP/2 connection is in the frames it receives.
#[derive(Default)]
struct H2Frames {
    /// Bytes of the preface still to come.
    preface_left: usize,
    /// The current frame's 9-byte header, as far as it has arrived.
    header: [u8; 9],
    header_len: usize,
    /// Bytes of the current frame's payload still to come.
    payload_left: usize,
    /// Inside a header block: a HEADERS frame has arrived and END_HEADERS has not.
    in_block: bool,
    /// Header blocks completed so far.
    blocks: u64,
}

impl H2Frames {
    /// Follows the frames through `bytes`.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.header_len < self.header.len() {
                let n = (self.header.len() - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == self.header.len() {
                    let [a, b, c, kind, ..] = self.header;
                    self.payload_left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                    if kind == H2_HEADERS {
                        self.in_block = true;
                    }
                    if self.payload_left == 0 {
                        self.frame_done();
                    }
                }
                continue;
            }
            let n = self.payload_left.min(bytes.len());
            self.payload_left -= n;
            bytes = &bytes[n..];
            if self.payload_left == 0 {
                self.frame_done();
            }
        }
    }

    fn frame_done(&mut self) {
        let [.., kind, flags, _, _, _, _] = self.header;
        self.header_len = 0;
        if matches!(kind, H2_HEADERS | H2_CONTINUATION) && flags & H2_END_HEADERS != 0 {
            self.in_block = false;
            self.blocks += 1;
        }
    }
}

/// Where the connection is in its current request head.
enum Head {
    /// Between requests: no byte of the next one has arrived.
    Waiting,
    /// Some of the head has arrived; it must be complete by the deadline. `line` is how far an
    /// empty line has been seen: 0 inside a line, 1 after a line feed, 2 after a line feed and a
    /// carriage return. `started` is set once a byte that is not a line end has arrived (empty
    /// lines before the request line do not end a head).
    Reading {
        deadline: Pin<Box<Sleep>>,
        line: u8,
        started: bool,
    },
    /// The head is complete; the body (bounded by the body timeout) and the answer follow.
    Done,
}

impl Head {
    /// A head due within `timeout` from now.
    fn reading(timeout: Duration) -> Self {
        Head::Reading {
            deadline: Box::pin(tokio::time::sleep(timeout)),
            line: 0,
            started: false,
        }
    }
}

pub struct GuardedIo<T> {
    inner: Pin<Box<TimeoutStream<T>>>,
    /// Bytes of a request arrived since the last response bytes went out.
    read_since_write: bool,
    /// A final response being written before the connection ends: (bytes, written so far).
    closing: Option<(Vec<u8>, usize)>,
    header_timeout: Duration,
    head: Head,
    protocol: Protocol,
    /// Once the write side is shut down: the end of the lingering close and the bytes discarded.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
    /// Returned to `Guarded` when the connection is dropped, as is the permit.
    _slot: Option<AddressSlot>,
    _permit: OwnedSemaphorePermit,
}

const OPEN_CONNECTIONS: &str = "ownid_bridge_connections_open";
const REFUSED_CONNECTIONS: &str = "ownid_bridge_connections_refused_total";

impl<T> Drop for GuardedIo<T> {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONNECTIONS).decrement(1.0);
    }
}

impl<T: AsyncRead + AsyncWrite> GuardedIo<T> {
    /// Writes what is left of the final response.
    fn flush_closing(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.closing {
            if *written == bytes.len() {
                break;
            }
            let n = ready!(self.inner.as_mut().poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    fn http2(&self) -> bool {
        matches!(self.protocol, Protocol::Http2(_))
    }

    /// Follows the request head (or HTTP/2 header block) through bytes just read.
    fn observe(&mut self, mut bytes: &[u8]) {
        if let Protocol::Sniffing(seen) = self.protocol {
            let matched = bytes
                .iter()
                .zip(&H2_PREFACE_START[seen..])
                .take_while(|(byte, expected)| byte == expected)
                .count();
            let seen = seen + matched;
            if seen == H2_PREFACE_START.len() {
                self.protocol = Protocol::Http2(H2Frames {
                    preface_left: H2_PREFACE_LEN - seen,
                    ..H2Frames::default()
                });
                bytes = &bytes[matched..];
            } else if matched == bytes.len() {
                self.protocol = Protocol::Sniffing(seen);
                return;
            } else {
                // HTTP/1.1: the bytes held back while sniffing are part of its head.
                self.protocol = Protocol::Http1;
                self.observe_http1(&H2_PREFACE_START[..seen - matched]);
            }
        }
        match &mut self.protocol {
            Protocol::Http2(frames) => {
                let blocks = frames.blocks;
                frames.feed(bytes);
                let (in_block, ended) = (frames.in_block, frames.blocks > blocks);
                if in_block && (ended || !matches!(self.head, Head::Reading { .. })) {
                    // A block started: due within the header timeout (the first one keeps the
                    // deadline from the accept).
                    self.head = Head::reading(self.header_timeout);
                } else if !in_block && ended {
                    self.head = Head::Waiting;
                }
            }
            _ => self.observe_http1(bytes),
        }
    }

    /// Follows an HTTP/1.1 request head through bytes just read.
    fn observe_http1(&mut self, bytes: &[u8]) {
        if let Head::Waiting = self.head {
            self.head = Head::reading(self.header_timeout);
        }
        let Head::Reading { line, started, .. } = &mut self.head else {
            return;
        };
        for &byte in bytes {
            match byte {
                b'\n' if *started && *line > 0 => {
                    self.head = Head::Done;
                    return;
                }
                b'\n' => *line = 1,
                b'\r' if *line == 1 => *line = 2,
                b'\r' => *line = 0,
                _ => {
                    *started = true;
                    *line = 0;
                }
            }
        }
    }

    /// Starts the final `408` (when a request had begun) and ends reading.
    fn time_out(&mut self, cx: &mut Context<'_>, err: io::Error) -> Poll<io::Result<()>> {
        if self.read_since_write && !self.http2() {
            self.closing = Some((request_timeout(), 0));
            // Best effort: a client that does not read gets the close without the 408.
            let _ = ready!(self.flush_closing(cx));
        }
        Poll::Ready(Err(err))
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            ready!(this.flush_closing(cx))?;
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        if let Head::Reading { deadline, .. } = &mut this.head {
            if deadline.as_mut().poll(cx).is_ready() {
                let err = io::Error::new(io::ErrorKind::TimedOut, "request head deadline");
                return this.time_out(cx, err);
            }
        }
        let before = buf.filled().len();
        match ready!(this.inner.as_mut().poll_read(cx, buf)) {
            Ok(()) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.read_since_write = true;
                    this.observe(new);
                }
                Poll::Ready(Ok(()))
            }
            Err(err) if err.kind() == io::ErrorKind::TimedOut => this.time_out(cx, err),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl<T: AsyncRead + AsyncWrite> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing.is_none() && !this.http2() && buf.starts_with(b"HTTP/1.1 431 ") {
            // hyper's own answer to oversized headers; it closes the connection after it.
            this.closing = Some((headers_too_large(), 0));
        }
        if this.closing.is_some() {
            ready!(this.flush_closing(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let written = ready!(this.inner.as_mut().poll_write(cx, buf))?;
        // `100 Continue` is not the answer: the body and the real response are still to come.
        // On HTTP/2 the frames say where the requests are, not what the server writes.
        let http1 = matches!(this.protocol, Protocol::Http1);
        if written > 0 && http1 && !buf.starts_with(b"HTTP/1.1 100 ") {
            this.read_since_write = false;
            this.head = Head::Waiting;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_flush(cx)
    }

    /// Sends the FIN, then reads and discards until the client closes too, for at most
    /// `LINGER_TIME` and `LINGER_BYTES` (see the module's documentation).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(this.flush_closing(cx))?;
            ready!(this.inner.as_mut().poll_shutdown(cx))?;
            this.linger = Some((Box::pin(tokio::time::sleep(LINGER_TIME)), 0));
        }
        let Some((deadline, discarded)) = &mut this.linger else {
            unreachable!("set above");
        };
        let mut scratch = [0u8; 8192];
        loop {
            if *discarded >= LINGER_BYTES || deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(this.inner.as_mut().poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => *discarded += buf.filled().len(),
                // The client closed (or the connection failed): nothing is left to lose.
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_responses_carry_the_error_body() {
        let text = String::from_utf8(headers_too_large()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        let text = String::from_utf8(request_timeout()).unwrap();
        assert!(text.starts_with("HTTP/1.1 408 ") && text.contains("\"request_timeout\""));
    }
}
