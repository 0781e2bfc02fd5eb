//! HTTPS for `server.tls`: rustls on its `ring` provider, through our own acceptor.
//!
//! poem's `rustls` listener hard-codes rustls's `aws-lc-rs` provider, whose C library was the
//! largest unit of a cold build (18.6 % of it, docs/benchmarks.md "Build profiles"); `ring` is
//! already built for the MongoDB driver and `probe`'s client. Unlike poem's listener, a
//! certificate or key that cannot be used stops start-up with the key named, instead of a server
//! that listens and then fails every handshake.
//!
//! The handshake runs lazily inside the connection's stream ([`Handshake`]), not in `accept`:
//! one slow client cannot hold up the accept loop, and the connection guard's deadline for a
//! request head (`conn.rs`) bounds the handshake too.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use super::BindError;

/// The rustls configuration from the PEM files of `server.tls`: the certificate chain and its
/// private key (PKCS#8, PKCS#1 or SEC1), TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(config: &crate::config::TlsConfig) -> Result<ServerConfig, BindError> {
    let read = |path: &Path, key: &'static str| {
        std::fs::read(path).map_err(|source| BindError::ReadTls {
            key,
            path: path.to_owned(),
            source,
        })
    };
    let unusable = |key: &'static str, path: &Path, reason: String| BindError::Tls {
        key,
        path: path.to_owned(),
        reason,
    };
    let cert_path = &config.certificate_file;
    let key_path = &config.key_file;
    let certs = CertificateDer::pem_slice_iter(&read(cert_path, "certificate_file")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| unusable("certificate_file", cert_path, err.to_string()))?;
    if certs.is_empty() {
        return Err(unusable(
            "certificate_file",
            cert_path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    // The parser's error names the PEM section it failed on, never the key's bytes.
    let key = PrivateKeyDer::from_pem_slice(&read(key_path, "key_file")?).map_err(|err| {
        unusable(
            "key_file",
            key_path,
            format!("no usable private key: {err}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| unusable("certificate_file", cert_path, err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| unusable("key_file", key_path, err.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

/// Wraps a plain acceptor: every connection it accepts is served over TLS.
pub struct TlsAcceptor<A> {
    inner: A,
    tls: tokio_rustls::TlsAcceptor,
}

impl<A> TlsAcceptor<A> {
    pub fn new(inner: A, config: ServerConfig) -> Self {
        TlsAcceptor {
            inner,
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl<A: Acceptor> Acceptor for TlsAcceptor<A> {
    type Io = Handshake<tokio_rustls::server::TlsStream<A::Io>>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, _) = self.inner.accept().await?;
        let handshake = Handshake(State::Handshaking(Box::pin(self.tls.accept(stream))));
        Ok((handshake, local, remote, Scheme::HTTPS))
    }
}

type HandshakeFuture<S> = Pin<Box<dyn Future<Output = io::Result<S>> + Send>>;

enum State<S> {
    Handshaking(HandshakeFuture<S>),
    Ready(S),
    Failed,
}

/// A TLS stream whose handshake completes on its first read or write.
pub struct Handshake<S>(State<S>);

impl<S: Unpin> Handshake<S> {
    /// Drives the handshake; then the stream, or the error of a failed handshake (once: later
    /// calls say the connection is not usable).
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Pin<&mut S>>> {
        if let State::Handshaking(handshake) = &mut self.0 {
            match ready!(handshake.as_mut().poll(cx)) {
                Ok(stream) => self.0 = State::Ready(stream),
                Err(err) => {
                    self.0 = State::Failed;
                    return Poll::Ready(Err(err));
                }
            }
        }
        match &mut self.0 {
            State::Ready(stream) => Poll::Ready(Ok(Pin::new(stream))),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Handshake<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Handshake<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_shutdown(cx)
    }
}
