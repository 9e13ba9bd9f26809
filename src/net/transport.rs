//! Transports: how the bytes of one RTMP connection reach the peer.
//!
//! Every transport ends up as one boxed `AsyncRead + AsyncWrite` stream, so the connection
//! driver never knows which one it runs on. Plain TCP exists today; TLS (rtmps), the HTTP
//! tunnel (rtmpt, rtmpts) slot in as further [`TransportKind`]s that wrap or replace the TCP
//! stream. RTMPE needs nothing here: its RC4 layer is applied inside the engine session, so
//! the transport only carries bytes.
//!
//! Invariant: `connect` never takes longer than its timeout, DNS included.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to the peer, whatever carries it.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
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

/// An open connection to the peer.
pub struct Transport {
    /// The bytes to and from the peer.
    pub stream: Box<dyn Stream>,
    /// The address actually connected to.
    pub peer: SocketAddr,
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
    #[error("transport {kind:?} (for {target}) is not supported yet")]
    Unsupported { kind: TransportKind, target: String },
}

impl TransportError {
    /// True when the peer actively refused the connection (nothing listens there).
    pub fn is_refused(&self) -> bool {
        matches!(self, TransportError::Connect { source, .. }
            if source.kind() == io::ErrorKind::ConnectionRefused)
    }
}

/// Opens a transport of `kind` to `host`:`port`, DNS and TCP connect included, within
/// `timeout`.
pub async fn connect(
    kind: TransportKind,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Transport, TransportError> {
    let target = format!("{host}:{port}");
    match kind {
        TransportKind::Tcp => {}
        other => {
            return Err(TransportError::Unsupported {
                kind: other,
                target,
            });
        }
    }
    let (stream, peer) = tokio::time::timeout(timeout, connect_tcp(host, port, &target))
        .await
        .map_err(|_| TransportError::TimedOut {
            target: target.clone(),
            timeout,
        })??;
    Ok(Transport {
        stream: Box::new(stream),
        peer,
        kind,
    })
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
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(t.peer.port(), port);
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
            let err = connect(
                TransportKind::Tcp,
                "127.0.0.1",
                port,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
            assert!(err.is_refused(), "{err}");
            assert!(
                err.to_string().contains(&format!("127.0.0.1:{port}")),
                "{err}"
            );
        });
    }

    #[test]
    fn unknown_host_is_a_resolve_error_naming_the_host() {
        rt().block_on(async {
            let err = connect(
                TransportKind::Tcp,
                "no-such-host.invalid",
                1935,
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        });
    }

    #[test]
    fn other_transports_say_they_are_not_supported_yet() {
        rt().block_on(async {
            let err = connect(TransportKind::Tls, "127.0.0.1", 443, Duration::from_secs(1))
                .await
                .unwrap_err();
            assert!(matches!(err, TransportError::Unsupported { .. }), "{err}");
            assert!(err.to_string().contains("Tls"), "{err}");
        });
    }
}
