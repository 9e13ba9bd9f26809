//! Transports: how the bytes of one RTMP connection reach the peer.
//!
//! Every transport ends up as one boxed `AsyncRead + AsyncWrite` stream, so the connection
//! driver never knows which one it runs on: plain TCP (rtmp, rtmpe), TLS over TCP (rtmps), the
//! RTMPT HTTP tunnel (rtmpt, rtmpte) and the tunnel over TLS (rtmpts). RTMPE needs nothing
//! here: its RC4 layer is applied inside the engine session, so the transport only carries
//! bytes (in the tunnel, only the payloads are encrypted, never the HTTP framing).
//!
//! Invariant: `connect` never takes longer than its timeout, DNS and the TLS handshake and the
//! tunnel's `open` request included.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tls::{TlsClientConfig, TlsConnector, TlsError};
use super::tunnel::{self, TunnelClientOptions, TunnelError};

/// A byte stream to the peer, whatever carries it. `Any`, so a driver that can do better with
/// a plain socket can take the `TcpStream` back out.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + std::any::Any {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// What carries the RTMP bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Plain TCP (rtmp, rtmpe).
    Tcp,
    /// TLS over TCP (rtmps).
    Tls,
    /// RTMP inside HTTP POSTs (rtmpt, rtmpte).
    HttpTunnel,
    /// The HTTP tunnel over TLS (rtmpts).
    HttpTunnelTls,
}

impl TransportKind {
    /// Whether this transport runs inside TLS (and so needs a [`TlsConnector`]).
    pub fn is_tls(self) -> bool {
        matches!(self, TransportKind::Tls | TransportKind::HttpTunnelTls)
    }
}

/// An open connection to the peer.
pub struct Transport {
    /// The bytes to and from the peer.
    pub stream: Box<dyn Stream>,
    /// The address actually connected to; `None` for the tunnel, whose HTTP connections are
    /// made (and remade) by the tunnel itself.
    pub peer: Option<SocketAddr>,
    pub kind: TransportKind,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.peer)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a transport could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot resolve host {host:?}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("host {host:?} resolved to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: io::Error },
    #[error("connecting to {target} timed out after {} ms", timeout.as_millis())]
    TimedOut { target: String, timeout: Duration },
    /// TCP connected, and the server never finished the TLS handshake.
    #[error(
        "connecting to {target} timed out after {} ms in the TLS handshake: the TCP connection \
         was made, but the server did not answer the TLS handshake; it may not speak TLS on this \
         port (rtmps:// needs the server's TLS port, often 443; plain RTMP is rtmp://, usually \
         port 1935)",
        timeout.as_millis()
    )]
    TlsTimedOut { target: String, timeout: Duration },
    /// The TLS setup or handshake failed; the message names the host (or CA file) and why,
    /// e.g. an untrusted certificate.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The RTMPT tunnel could not be opened.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
}

impl TransportError {
    /// True when the peer actively refused the connection (nothing listens there).
    pub fn is_refused(&self) -> bool {
        match self {
            TransportError::Connect { source, .. }
            | TransportError::Tunnel(TunnelError::Connect { source, .. }) => {
                source.kind() == io::ErrorKind::ConnectionRefused
            }
            _ => false,
        }
    }
}

/// Opens a transport of `kind` to `host`:`port` within `timeout`: DNS, TCP connect, the TLS
/// handshake (`tls`, or default settings when `None`: verification on against the system
/// roots) and, for the tunnel, its `open` request. `host` is also the TLS server name.
pub async fn connect(
    kind: TransportKind,
    host: &str,
    port: u16,
    timeout: Duration,
    tls: Option<&TlsConnector>,
) -> Result<Transport, TransportError> {
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    // Set once TCP is up and the TLS handshake has begun: a timeout then says so.
    let in_tls = std::sync::atomic::AtomicBool::new(false);
    let open = async {
        let connector = match (kind.is_tls(), tls) {
            (false, _) => None,
            (true, Some(c)) => Some(c.clone()),
            (true, None) => Some(TlsClientConfig::default().connector()?),
        };
        match kind {
            TransportKind::Tcp | TransportKind::Tls => {
                let (tcp, peer) = connect_tcp(host, port, &target).await?;
                let stream: Box<dyn Stream> = match &connector {
                    // rustls hands its records to vectored writes, which are `writev` on a
                    // tokio socket: SIGPIPE when the server reset the connection, fatal in
                    // gst-launch-1.0. `Tcp` writes with MSG_NOSIGNAL.
                    Some(c) => {
                        in_tls.store(true, std::sync::atomic::Ordering::Relaxed);
                        Box::new(
                            c.connect_to(host, port, crate::net::transport::tcp::Tcp::new(tcp))
                                .await?,
                        )
                    }
                    // Plain writes are `send(MSG_NOSIGNAL)` already, and the source takes this
                    // socket back as a std one (see `client`).
                    None => Box::new(tcp),
                };
                Ok(Transport {
                    stream,
                    peer: Some(peer),
                    kind,
                })
            }
            TransportKind::HttpTunnel | TransportKind::HttpTunnelTls => {
                let options = TunnelClientOptions {
                    // Each later request is bounded by the same timeout: a server that stops
                    // answering is a lost connection, not a stall.
                    request_timeout: timeout,
                    ..TunnelClientOptions::default()
                };
                let stream =
                    tunnel::client::connect(host, port, connector.as_ref(), &options).await?;
                Ok(Transport {
                    stream: Box::new(stream),
                    peer: None,
                    kind,
                })
            }
        }
    };
    tokio::time::timeout(timeout, open).await.map_err(|_| {
        if in_tls.load(std::sync::atomic::Ordering::Relaxed) {
            TransportError::TlsTimedOut {
                target: target.clone(),
                timeout,
            }
        } else {
            TransportError::TimedOut {
                target: target.clone(),
                timeout,
            }
        }
    })?
}

/// Tries every address the name resolves to, in order; the last error is the one reported.
async fn connect_tcp(
    host: &str,
    port: u16,
    target: &str,
) -> Result<(TcpStream, SocketAddr), TransportError> {
    // Brackets come from URLs with IPv6 literals; the resolver wants the bare address.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|source| TransportError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // RTMP is many small writes (control messages, audio frames): latency matters
                // more than packet count.
                let _ = stream.set_nodelay(true);
                return Ok((stream, *addr));
            }
            Err(source) => last = Some(source),
        }
    }
    match last {
        Some(source) => Err(TransportError::Connect {
            target: target.to_string(),
            source,
        }),
        None => Err(TransportError::NoAddress {
            host: host.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn tcp_carries_bytes_both_ways() {
        rt().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            });
            let mut t = connect(
                TransportKind::Tcp,
                "127.0.0.1",
                port,
                Duration::from_secs(30),
                None,
            )
            .await
            .unwrap();
            assert_eq!(t.peer.map(|p| p.port()), Some(port));
            t.stream.write_all(b"hello").await.unwrap();
            let mut back = [0u8; 5];
            t.stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"hello");
            server.await.unwrap();
        });
    }

    #[test]
    fn refused_port_is_reported_as_refused_with_the_target() {
        rt().block_on(async {
            // Bind then drop: the port is free and nothing listens.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            for kind in [TransportKind::Tcp, TransportKind::HttpTunnelTls] {
                let err = connect(kind, "127.0.0.1", port, Duration::from_secs(30), None)
                    .await
                    .unwrap_err();
                assert!(err.is_refused(), "{kind:?}: {err}");
                assert!(
                    err.to_string().contains(&format!("127.0.0.1:{port}")),
                    "{kind:?}: {err}"
                );
            }
        });
    }

    #[test]
    fn unknown_host_is_a_resolve_error_naming_the_host() {
        rt().block_on(async {
            let err = connect(
                TransportKind::Tcp,
                "no-such-host.invalid",
                1935,
                Duration::from_secs(30),
                None,
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        });
    }

    /// A TLS echo server with a fresh self-signed certificate for `localhost` and 127.0.0.1;
    /// returns its port and the certificate file (to trust it as a CA).
    async fn tls_echo_server(dir: &std::path::Path) -> (u16, std::path::PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let acceptor = crate::net::transport::tls::TlsServerConfig {
            certificate_file: cert.clone(),
            key_file: key,
        }
        .acceptor()
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((sock, peer)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(sock, peer).await else {
                        return;
                    };
                    let mut buf = [0u8; 5];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                        let _ = s.flush().await;
                    }
                });
            }
        });
        (port, cert)
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("rsrtmp-transport-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn tls_refuses_a_self_signed_certificate_naming_the_host() {
        rt().block_on(async {
            let dir = temp_dir("tls-refuse");
            let (port, _) = tls_echo_server(&dir).await;
            let err = connect(
                TransportKind::Tls,
                "127.0.0.1",
                port,
                Duration::from_secs(30),
                None,
            )
            .await
            .unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, TransportError::Tls(_)), "{text}");
            assert!(text.contains("127.0.0.1"), "{text}");
            assert!(text.to_lowercase().contains("certificate"), "{text}");
        });
    }

    #[test]
    fn tls_works_without_verification_and_with_the_certificate_as_ca() {
        rt().block_on(async {
            let dir = temp_dir("tls-ok");
            let (port, cert) = tls_echo_server(&dir).await;
            let configs = [
                TlsClientConfig {
                    verify: false,
                    ca_file: None,
                },
                TlsClientConfig {
                    verify: true,
                    ca_file: Some(cert),
                },
            ];
            for config in configs {
                let connector = config.connector().unwrap();
                for host in ["127.0.0.1", "localhost"] {
                    let mut t = connect(
                        TransportKind::Tls,
                        host,
                        port,
                        Duration::from_secs(30),
                        Some(&connector),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{config:?} {host}: {e}"));
                    assert_eq!(t.kind, TransportKind::Tls);
                    t.stream.write_all(b"hello").await.unwrap();
                    let mut back = [0u8; 5];
                    t.stream.read_exact(&mut back).await.unwrap();
                    assert_eq!(&back, b"hello");
                }
            }
        });
    }

    #[test]
    fn tunnel_carries_bytes_both_ways() {
        rt().block_on(async {
            let (server, mut accepted) =
                crate::net::transport::tunnel::TunnelServer::new(Default::default());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((sock, peer)) = listener.accept().await {
                    let server = server.clone();
                    tokio::spawn(async move { server.serve_connection(sock, peer).await });
                }
            });
            let (read_tx, read_rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let mut t = accepted.recv().await.unwrap();
                let mut buf = [0u8; 5];
                t.stream.read_exact(&mut buf).await.unwrap();
                t.stream.write_all(&buf).await.unwrap();
                t.stream.flush().await.unwrap();
                // Keep the session until the client has read the answer, however long that
                // takes on a loaded machine.
                let _ = read_rx.await;
            });
            let mut t = connect(
                TransportKind::HttpTunnel,
                "127.0.0.1",
                port,
                Duration::from_secs(30),
                None,
            )
            .await
            .unwrap();
            assert_eq!(t.peer, None);
            t.stream.write_all(b"hello").await.unwrap();
            t.stream.flush().await.unwrap();
            let mut back = [0u8; 5];
            t.stream.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"hello");
            let _ = read_tx.send(());
        });
    }
}
