//! TLS on loopback with a self-signed certificate: the client's verification (on by default,
//! off, or trusting an extra CA file), the errors that name the host or the file, and RTMPT
//! inside TLS (`rtmpts`), also through the listener's "first byte already read" path.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{TempDir, self_signed_cert};
use gstrsrtmp::net::transport::tls::{TlsAcceptor, TlsClientConfig, TlsServerConfig};
use gstrsrtmp::net::transport::tunnel::{
    TunnelClientOptions, TunnelServer, TunnelServerConfig, client,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(30);

fn acceptor(dir: &Path) -> (TlsAcceptor, std::path::PathBuf) {
    let (cert, key) = self_signed_cert(dir, "server");
    let acceptor = TlsServerConfig {
        certificate_file: cert.clone(),
        key_file: key,
    }
    .acceptor()
    .expect("the certificate loads");
    (acceptor, cert)
}

/// A TLS echo server on a free loopback port.
async fn tls_echo_server(acceptor: TlsAcceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(sock, peer).await {
                    let (mut rd, mut wr) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut rd, &mut wr).await;
                }
            });
        }
    });
    addr
}

async fn echo_through(
    config: &TlsClientConfig,
    host: &str,
    addr: SocketAddr,
) -> Result<(), String> {
    let connector = config.connector().map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio::time::timeout(DEADLINE, connector.connect(host, tcp))
        .await
        .expect("handshake in time")
        .map_err(|e| e.to_string())?;
    tls.write_all(b"ping over tls").await.unwrap();
    let mut back = [0u8; 13];
    tokio::time::timeout(DEADLINE, tls.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&back, b"ping over tls");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_rejects_a_self_signed_server_with_a_clear_error() {
    let dir = TempDir::new("tls-verify");
    let (acceptor, _) = acceptor(dir.path());
    let addr = tls_echo_server(acceptor).await;
    let err = echo_through(&TlsClientConfig::default(), "localhost", addr)
        .await
        .unwrap_err();
    assert!(
        err.contains("localhost") && err.contains("certificate") && err.contains("UnknownIssuer"),
        "error should name the host and the reason: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_off_accepts_a_self_signed_server() {
    let dir = TempDir::new("tls-noverify");
    let (acceptor, _) = acceptor(dir.path());
    let addr = tls_echo_server(acceptor).await;
    let config = TlsClientConfig {
        verify: false,
        ca_file: None,
    };
    // Any name passes, even one the certificate does not carry.
    echo_through(&config, "localhost", addr).await.unwrap();
    echo_through(&config, "other.example", addr).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_makes_the_certificate_trusted_for_its_names_only() {
    let dir = TempDir::new("tls-cafile");
    let (acceptor, cert) = acceptor(dir.path());
    let addr = tls_echo_server(acceptor).await;
    let config = TlsClientConfig {
        verify: true,
        ca_file: Some(cert),
    };
    echo_through(&config, "localhost", addr).await.unwrap();
    // IP literals are matched against the certificate's IP addresses.
    echo_through(&config, "127.0.0.1", addr).await.unwrap();
    let err = echo_through(&config, "wrong.example", addr)
        .await
        .unwrap_err();
    assert!(
        err.contains("wrong.example") && err.contains("not valid for name"),
        "error should name the host and the reason: {err}"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_naming_both_files() {
    let dir = TempDir::new("tls-mismatch");
    let (cert_a, _) = self_signed_cert(dir.path(), "a");
    let (_, key_b) = self_signed_cert(dir.path(), "b");
    let err = TlsServerConfig {
        certificate_file: cert_a,
        key_file: key_b,
    }
    .acceptor()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("a-cert.pem") && err.contains("b-key.pem"),
        "{err}"
    );
    // A certificate given as the key file is named too.
    let (cert_c, _) = self_signed_cert(dir.path(), "c");
    let err = TlsServerConfig {
        certificate_file: cert_c.clone(),
        key_file: cert_c,
    }
    .acceptor()
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("c-cert.pem") && err.contains("private key"),
        "{err}"
    );
}

/// rtmpts: the tunnel inside TLS. The listener here reads the first decrypted byte (as a
/// listener must, to tell rtmps from rtmpts) and passes it back in with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmpt_inside_tls_moves_bytes_exactly() {
    let _ = gst::init();
    let dir = TempDir::new("tls-rtmpts");
    let (acceptor, cert) = acceptor(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (server, mut accepted) = TunnelServer::new(TunnelServerConfig::default());
    tokio::spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            let (acceptor, server) = (acceptor.clone(), server.clone());
            tokio::spawn(async move {
                let mut tls = acceptor.accept(sock, peer).await.unwrap();
                let mut first = [0u8; 1];
                tls.read_exact(&mut first).await.unwrap();
                assert!(
                    first[0].is_ascii_alphabetic(),
                    "an HTTP request starts with a letter"
                );
                server
                    .serve_connection_with_prefix(Bytes::copy_from_slice(&first), tls, peer)
                    .await;
            });
        }
    });
    tokio::spawn(async move {
        while let Some(t) = accepted.recv().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tokio::io::split(t.stream);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });

    let connector = TlsClientConfig {
        verify: true,
        ca_file: Some(cert),
    }
    .connector()
    .unwrap();
    let stream = client::connect(
        "localhost",
        port,
        Some(&connector),
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move { wr.write_all(&sent).await.map(|_| wr) });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(DEADLINE, rd.read_exact(&mut back))
        .await
        .expect("echo through rtmpts in time")
        .unwrap();
    assert!(back == data, "bytes differ after the rtmpts round trip");
    writer.await.unwrap().unwrap();
}
