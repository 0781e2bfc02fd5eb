//! Test support: a TCP proxy in front of a real database that can be taken down and brought back,
//! so that every networked backend proves the same outage behaviour without killing the server
//! the rest of the suite shares.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{SchemaOptions, StoreError, UserStore};

/// While down, nothing listens on the proxy's port (connections are refused, as with a stopped
/// server) and every open connection is cut.
///
/// The port stays the proxy's while it is down: a socket bound to it and never listening holds
/// it (`SO_REUSEPORT`, which the listener shares), so no other `bind` to port 0 in the machine
/// is given it meanwhile. Without it, another test's proxy could be given the free port, come up
/// on it, and connect this proxy's clients to a database this proxy has down.
pub struct OutageProxy {
    addr: SocketAddr,
    target: SocketAddr,
    /// Bound to `addr` for the proxy's whole life; never listens.
    _reserved: TcpSocket,
    accept: Mutex<Option<JoinHandle<()>>>,
    cut: watch::Sender<u64>,
}

impl OutageProxy {
    pub async fn start(target: SocketAddr) -> std::io::Result<Arc<OutageProxy>> {
        let reserved = reusable_socket()?;
        reserved.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = reserved.local_addr()?;
        let listener = listen_on(addr)?;
        let (cut, _) = watch::channel(0);
        let proxy = Arc::new(OutageProxy {
            addr,
            target,
            _reserved: reserved,
            accept: Mutex::new(None),
            cut,
        });
        proxy.serve(listener);
        Ok(proxy)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let cut = self.cut.subscribe();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        *self.accept.lock().expect("proxy lock") = Some(task);
    }

    /// Stops listening and cuts every open connection.
    pub async fn down(&self) {
        let task = self.accept.lock().expect("proxy lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Listens again on the same port.
    pub async fn up(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match listen_on(self.addr) {
                Ok(listener) => {
                    self.serve(listener);
                    return Ok(());
                }
                Err(err) if Instant::now() > deadline => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// A TCP socket that may share its port with the proxy's other sockets. Not `SO_REUSEADDR`:
/// with it, the reservation would let any socket with `SO_REUSEADDR` (std's and tokio's
/// `TcpListener::bind`) bind the port while nothing listens.
fn reusable_socket() -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    Ok(socket)
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = reusable_socket()?;
    // The listener before left its connections in TIME_WAIT on the port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The URL of a database under test, from the environment. A missing variable fails the test: a
/// backend the suite should test is never skipped.
pub fn required_url(variable: &str) -> String {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{variable} is not set: run scripts/test.sh (it starts throwaway servers) or point \
             {variable} at a server the tests may create databases on"
        ),
    }
}

/// Splits `scheme://[user[:password]@]host:port[/path][?query]` into the part before the host,
/// the `host:port`, and the rest.
fn split_authority(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map(|i| i + 3).unwrap_or(0);
    let after_scheme = &url[start..];
    let end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
    let authority = &after_scheme[..end];
    let host_start = authority.rfind('@').map(|i| i + 1).unwrap_or(0);
    (
        &url[..start + host_start],
        &authority[host_start..],
        &after_scheme[end..],
    )
}

/// The server address of a database URL.
pub async fn server_addr(url: &str) -> SocketAddr {
    let (_, host_port, _) = split_authority(url);
    tokio::net::lookup_host(host_port)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve the host of {host_port}"))
}

/// The same URL pointing at another `host:port` (the proxy).
pub fn with_server(url: &str, addr: SocketAddr) -> String {
    let (before, _, rest) = split_authority(url);
    format!("{before}{addr}{rest}")
}

/// How long a store in an outage story waits to connect, or for a connection.
pub const OUTAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// An outage proxy in front of the server of `url`, the same URL through the proxy, and the pool
/// settings of an outage story (connect and acquire timeouts of [`OUTAGE_TIMEOUT`]): what a
/// networked backend's test needs to open its store for [`outage_story`].
pub async fn behind_proxy(url: &str) -> (Arc<OutageProxy>, String, crate::PoolSettings) {
    let proxy = OutageProxy::start(server_addr(url).await)
        .await
        .expect("start the outage proxy");
    let through_proxy = with_server(url, proxy.addr());
    let pool = crate::PoolSettings {
        acquire_timeout: OUTAGE_TIMEOUT,
        connect_timeout: OUTAGE_TIMEOUT,
        ..crate::PoolSettings::default()
    };
    (proxy, through_proxy, pool)
}

/// The outage story every networked backend runs: a store connected through `proxy`, with
/// `acquire_timeout` as configured, answers `Unavailable` (never hangs, never `Other`) while the
/// database is unreachable, and works again once it is back, without being reopened.
pub async fn outage_story(
    store: Arc<dyn UserStore>,
    proxy: &OutageProxy,
    acquire_timeout: Duration,
) {
    store
        .apply_schema(&SchemaOptions::CREATE_TABLE)
        .await
        .expect("schema before the outage");
    store.create_user("outage@example.com").await.unwrap();
    store
        .set_ownid_data("outage@example.com", "before", false)
        .await
        .expect("a set before the outage");

    proxy.down().await;
    // Generous bound: the acquire timeout plus a driver's own connect attempt.
    let bound = acquire_timeout + Duration::from_secs(5);
    for attempt in 0..2 {
        let started = Instant::now();
        let result = tokio::time::timeout(bound * 2, store.get_ownid_data("outage@example.com"))
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt}: a read hung during the outage"));
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: a read during the outage gave {result:?}"
        );
        assert!(
            started.elapsed() <= bound,
            "attempt {attempt}: took {:?}, more than {bound:?}",
            started.elapsed()
        );
        let result = tokio::time::timeout(
            bound * 2,
            store.set_ownid_data("outage@example.com", "during", false),
        )
        .await
        .unwrap_or_else(|_| panic!("attempt {attempt}: a write hung during the outage"));
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: a write during the outage gave {result:?}"
        );
        let ping = store.ping().await;
        assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    }

    proxy.up().await.expect("proxy back up");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store
            .set_ownid_data("outage@example.com", "after", false)
            .await
        {
            Ok(_) => break,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(err) => panic!("the store did not recover after the outage: {err:?}"),
        }
    }
    assert_eq!(
        store
            .get_ownid_data("outage@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("after")
    );
    store.ping().await.expect("ping after recovery");
}

#[cfg(test)]
mod tests {
    use super::OutageProxy;

    /// A stand-in database: accepts, answers each connection with one byte.
    async fn answering_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt as _;
                let _ = client.write_all(b"!").await;
            }
        });
        addr
    }

    async fn first_byte(addr: std::net::SocketAddr) -> std::io::Result<u8> {
        use tokio::io::AsyncReadExt as _;
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.read_u8().await
    }

    #[tokio::test]
    async fn a_proxy_that_is_down_refuses_and_keeps_its_port() {
        let proxy = OutageProxy::start(answering_server().await).await.unwrap();
        assert_eq!(first_byte(proxy.addr()).await.unwrap(), b'!');
        proxy.down().await;
        let refused = first_byte(proxy.addr()).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // Nobody else can listen on the port meanwhile (another proxy given it by the kernel
        // would connect this proxy's clients to its own database).
        let taken = std::net::TcpListener::bind(proxy.addr()).unwrap_err();
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
        proxy.up().await.unwrap();
        assert_eq!(first_byte(proxy.addr()).await.unwrap(), b'!');
    }

    #[test]
    fn urls_are_split_around_the_server() {
        let addr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            super::with_server("postgres://u:p@db.example:5432/x?sslmode=disable", addr),
            "postgres://u:p@127.0.0.1:9/x?sslmode=disable"
        );
        assert_eq!(
            super::with_server("mongodb://127.0.0.1:27017", addr),
            "mongodb://127.0.0.1:9"
        );
        assert_eq!(
            super::with_server("mysql://root@h:3306/", addr),
            "mysql://root@127.0.0.1:9/"
        );
    }
}
