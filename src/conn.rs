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
//! - hyper's own `431` is sent with the JSON error body instead.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_io_timeout::TimeoutStream;

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
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An acceptor whose connections carry the guards.
pub struct Guarded<A> {
    pub inner: A,
    pub idle_timeout: Duration,
}

impl<A: Acceptor> Acceptor for Guarded<A> {
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let mut io = TimeoutStream::new(io);
        io.set_read_timeout(Some(self.idle_timeout));
        Ok((
            GuardedIo {
                inner: Box::pin(io),
                read_since_write: false,
                closing: None,
            },
            local,
            remote,
            scheme,
        ))
    }
}

pub struct GuardedIo<T> {
    inner: Pin<Box<TimeoutStream<T>>>,
    /// Bytes of a request arrived since the last response bytes went out.
    read_since_write: bool,
    /// A final response being written before the connection ends: (bytes, written so far).
    closing: Option<(Vec<u8>, usize)>,
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
        let before = buf.filled().len();
        match ready!(this.inner.as_mut().poll_read(cx, buf)) {
            Ok(()) => {
                this.read_since_write |= buf.filled().len() > before;
                Poll::Ready(Ok(()))
            }
            Err(err) if err.kind() == io::ErrorKind::TimedOut && this.read_since_write => {
                this.closing = Some((request_timeout(), 0));
                // Best effort: a client that does not read gets the close without the 408.
                let _ = ready!(this.flush_closing(cx));
                Poll::Ready(Err(err))
            }
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
        if this.closing.is_none() && buf.starts_with(b"HTTP/1.1 431 ") {
            // hyper's own answer to oversized headers; it closes the connection after it.
            this.closing = Some((headers_too_large(), 0));
        }
        if this.closing.is_some() {
            ready!(this.flush_closing(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let written = ready!(this.inner.as_mut().poll_write(cx, buf))?;
        if written > 0 {
            this.read_since_write = false;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.flush_closing(cx))?;
        this.inner.as_mut().poll_shutdown(cx)
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
