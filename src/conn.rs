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
//!   own `header_read_timeout` never runs); then the same `408` ends the connection;
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
//!   descriptor each. The number open is the gauge `ownid_bridge_connections_open`.
//!
//! The head is followed on the bytes as they pass: it starts with the first byte read after a
//! response went out and ends at the first empty line. HTTP/2 connections (the client preface
//! `PRI * HTTP/2.0`, after ALPN `h2` on TLS) carry binary frames and get none of this; hyper's
//! HTTP/2 code has its own limits.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use std::future::Future;
use std::sync::Arc;

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
        // Not accepting while every permit is taken leaves further clients in the backlog.
        let permit = self
            .connections
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (io, local, remote, scheme) = self.inner.accept().await?;
        metrics::gauge!(OPEN_CONNECTIONS).increment(1.0);
        let mut io = TimeoutStream::new(io);
        io.set_read_timeout(Some(self.idle_timeout));
        Ok((
            GuardedIo {
                inner: Box::pin(io),
                read_since_write: false,
                closing: None,
                header_timeout: self.header_timeout,
                head: Head::Waiting,
                first_read: true,
                http2: false,
                linger: None,
                _permit: permit,
            },
            local,
            remote,
            scheme,
        ))
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

pub struct GuardedIo<T> {
    inner: Pin<Box<TimeoutStream<T>>>,
    /// Bytes of a request arrived since the last response bytes went out.
    read_since_write: bool,
    /// A final response being written before the connection ends: (bytes, written so far).
    closing: Option<(Vec<u8>, usize)>,
    header_timeout: Duration,
    head: Head,
    /// No byte has been read yet (the HTTP/2 preface is recognised on the first read).
    first_read: bool,
    http2: bool,
    /// Once the write side is shut down: the end of the lingering close and the bytes discarded.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
    /// Returned to `Guarded` when the connection is dropped.
    _permit: OwnedSemaphorePermit,
}

const OPEN_CONNECTIONS: &str = "ownid_bridge_connections_open";

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

    /// Follows the request head through bytes just read.
    fn observe(&mut self, bytes: &[u8]) {
        if std::mem::take(&mut self.first_read) && bytes.starts_with(b"PRI ") {
            self.http2 = true;
        }
        if self.http2 {
            return;
        }
        if let Head::Waiting = self.head {
            self.head = Head::Reading {
                deadline: Box::pin(tokio::time::sleep(self.header_timeout)),
                line: 0,
                started: false,
            };
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
        if self.read_since_write && !self.http2 {
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
        if this.closing.is_none() && !this.http2 && buf.starts_with(b"HTTP/1.1 431 ") {
            // hyper's own answer to oversized headers; it closes the connection after it.
            this.closing = Some((headers_too_large(), 0));
        }
        if this.closing.is_some() {
            ready!(this.flush_closing(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let written = ready!(this.inner.as_mut().poll_write(cx, buf))?;
        // `100 Continue` is not the answer: the body and the real response are still to come.
        if written > 0 && !buf.starts_with(b"HTTP/1.1 100 ") {
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
