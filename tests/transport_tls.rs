//! TLS on loopback with a self-signed certificate: the client's verification (on by default,
//! off, or trusting an extra CA file), the errors that name the host or the file, and RTMPT
//! inside TLS (`rtmpts`), also through the listener's "first byte already read" path.
//!
//! Then what users set up (issue 16), below the elements: OpenSSL's CA:TRUE self-signed
//! certificate pinned through the CA file, with its name and dates still checked; every key
//! format and a chain with an intermediate; the mistakes people make with the files; the
//! server's account of a client that refused its certificate (with the name the client asked
//! for, or none); a port that does not speak TLS; and certificate files renewed under a
//! running acceptor, a broken renewal included.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::certs::{
    KeyFormat, first_der, openssl, openssl_intermediate_ca, openssl_leaf, openssl_root_ca,
    openssl_self_signed, replace_file, served_certificate_async,
};
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
    let mut tls = tokio::time::timeout(DEADLINE, connector.connect_to(host, addr.port(), tcp))
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
        err.starts_with(&format!(
            "TLS handshake with localhost:{} failed: ",
            addr.port()
        )) && err.contains("the server's certificate (CN=rcgen self signed cert) is self-signed")
            && err.contains("set tls-ca-file to a copy of that certificate")
            && err.contains("(tls-ca-file is not set)")
            && err.contains("tls-validation-flags=0"),
        "error should name the host, the reason and what to do: {err}"
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
        err.contains(
            "is for localhost, 127.0.0.1, not for wrong.example: use one of its names in the \
             location, or give the server a certificate whose subjectAltName has \
             DNS:wrong.example"
        ),
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
    common::init_gst();
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

// ---- what users set up (issue 16) -------------------------------------------------------------

/// A TLS echo server that also reports every failed handshake's error text.
async fn reporting_echo_server(
    acceptor: TlsAcceptor,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match acceptor.accept(sock, peer).await {
                    Ok(tls) => {
                        let (mut rd, mut wr) = tokio::io::split(tls);
                        let _ = tokio::io::copy(&mut rd, &mut wr).await;
                    }
                    Err(e) => {
                        let _ = tx.send(e.to_string());
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn server(cert: &Path, key: &Path) -> TlsAcceptor {
    TlsServerConfig {
        certificate_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
    }
    .acceptor()
    .unwrap_or_else(|e| panic!("{e}"))
}

fn trusting(ca_file: &Path) -> TlsClientConfig {
    TlsClientConfig {
        verify: true,
        ca_file: Some(ca_file.to_path_buf()),
    }
}

/// The certificate of `openssl req -x509` is CA:TRUE, which WebPKI refuses as a server's own:
/// in the CA file it is pinned, and its name is still checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openssl_self_signed_certificate_in_the_ca_file_is_pinned_and_its_name_checked() {
    let dir = TempDir::new("tls-pin-openssl");
    let (cert, key) =
        openssl_self_signed(dir.path(), "a", "localhost", "DNS:localhost,IP:127.0.0.1");
    assert!(
        String::from_utf8_lossy(
            &std::process::Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(&cert)
                .output()
                .unwrap()
                .stdout
        )
        .contains("CA:TRUE"),
        "OpenSSL 3 marks the self-signed certificate CA:TRUE"
    );
    let addr = tls_echo_server(server(&cert, &key)).await;
    for host in ["localhost", "127.0.0.1"] {
        echo_through(&trusting(&cert), host, addr)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    let err = echo_through(&trusting(&cert), "other.example", addr)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "TLS handshake with other.example:{} failed: the server's certificate (CN=localhost) \
             is for localhost, 127.0.0.1, not for other.example: use one of its names in the \
             location, or give the server a certificate whose subjectAltName has \
             DNS:other.example",
            addr.port()
        )
    );
    // Without the pin it is a self-signed certificate nobody vouches for.
    let (other, _) = openssl_self_signed(dir.path(), "b", "localhost", "DNS:localhost");
    let err = echo_through(&trusting(&other), "localhost", addr)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "TLS handshake with localhost:{} failed: the server's certificate (CN=localhost) is \
             self-signed, and this client does not trust it: set tls-ca-file to a copy of that \
             certificate (PEM) to trust exactly it (tls-ca-file {} does not hold it), or set \
             tls-validation-flags=0 to accept any certificate",
            addr.port(),
            other.display()
        )
    );
}

/// A self-signed CA:TRUE certificate (as OpenSSL makes them) for localhost with the dates
/// given, pinned by the CA file.
fn dated_self_signed(
    dir: &Path,
    tag: &str,
    from: (i32, u8, u8),
    until: (i32, u8, u8),
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{tag}-cert.pem")),
        dir.join(format!("{tag}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_outside_its_dates_is_refused_with_the_dates() {
    let dir = TempDir::new("tls-pin-dates");
    let (old, old_key) = dated_self_signed(dir.path(), "old", (2020, 1, 1), (2021, 1, 1));
    let addr = tls_echo_server(server(&old, &old_key)).await;
    let err = echo_through(&trusting(&old), "localhost", addr)
        .await
        .unwrap_err();
    let port = addr.port();
    assert!(
        err.starts_with(&format!(
            "TLS handshake with localhost:{port} failed: the server's certificate (CN=localhost) \
             expired on 2021-01-01 00:00:00 UTC (it is now "
        )) && err.ends_with(
            "): the server must renew it, and copy the new certificate into tls-ca-file, which \
             pins this one (or this machine's clock is wrong)"
        ),
        "{err}"
    );
    let (future, future_key) = dated_self_signed(dir.path(), "future", (2098, 1, 1), (2099, 1, 1));
    let addr = tls_echo_server(server(&future, &future_key)).await;
    let err = echo_through(&trusting(&future), "localhost", addr)
        .await
        .unwrap_err();
    assert!(
        err.contains(
            "the server's certificate (CN=localhost) is not valid before 2098-01-01 00:00:00 UTC \
             (it is now "
        ) && err.ends_with(
            "): the clock of this machine or of the one that made the certificate is wrong"
        ),
        "{err}"
    );
}

/// PKCS#8, PKCS#1 (RSA) and SEC1 (EC) keys; a chain file with an intermediate, trusted through
/// the root alone; and the same chain without its intermediate, which the message explains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_format_and_a_chain_with_an_intermediate_work() {
    let dir = TempDir::new("tls-keys");
    let root = openssl_root_ca(dir.path(), "root", "Key Test Root CA");
    let mid = openssl_intermediate_ca(dir.path(), "mid", "Key Test Intermediate CA", &root);
    for (tag, format) in [
        ("pkcs8", KeyFormat::Pkcs8),
        ("pkcs1", KeyFormat::Pkcs1Rsa),
        ("sec1", KeyFormat::Sec1Ec),
    ] {
        let (chain, key) = openssl_leaf(
            dir.path(),
            tag,
            &mid,
            &[&mid],
            "DNS:localhost,IP:127.0.0.1",
            format,
        );
        let addr = tls_echo_server(server(&chain, &key)).await;
        echo_through(&trusting(&root.cert), "localhost", addr)
            .await
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
    }
    let (leaf_only, key) = openssl_leaf(
        dir.path(),
        "no-mid",
        &mid,
        &[],
        "DNS:localhost",
        KeyFormat::Pkcs8,
    );
    let addr = tls_echo_server(server(&leaf_only, &key)).await;
    let err = echo_through(&trusting(&root.cert), "localhost", addr)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "TLS handshake with localhost:{} failed: the server's certificate (CN=localhost) is \
             issued by CN=Key Test Intermediate CA, which no trusted CA vouches for: set \
             tls-ca-file to a PEM file with the certificate of the CA that issued it \
             (tls-ca-file {} does not hold it); if CN=Key Test Intermediate CA is an \
             intermediate CA, the server must send its certificate too (the server's \
             certificate file holds its own certificate, then the intermediates)",
            addr.port(),
            root.cert.display()
        )
    );
}

#[test]
fn the_mistakes_people_make_with_the_files_are_explained() {
    let dir = TempDir::new("tls-mistakes");
    let root = openssl_root_ca(dir.path(), "root", "Mistakes Root CA");
    let mid = openssl_intermediate_ca(dir.path(), "mid", "Mistakes Intermediate CA", &root);
    let (chain, key) = openssl_leaf(
        dir.path(),
        "leaf",
        &mid,
        &[&mid],
        "DNS:localhost",
        KeyFormat::Pkcs8,
    );
    let load = |cert: &Path, key: &Path| {
        TlsServerConfig {
            certificate_file: cert.to_path_buf(),
            key_file: key.to_path_buf(),
        }
        .acceptor()
        .unwrap_err()
        .to_string()
    };
    // The intermediate first, then the leaf.
    let text = std::fs::read_to_string(&chain).unwrap();
    let split = text[1..].find("-----BEGIN CERTIFICATE-----").unwrap() + 1;
    let reversed = dir.path().join("reversed.pem");
    std::fs::write(&reversed, format!("{}{}", &text[split..], &text[..split])).unwrap();
    assert_eq!(
        load(&reversed, &key),
        format!(
            "TLS certificate file {} and key file {} do not form a usable pair: the private key \
             belongs to certificate 2 of the chain, not to the first (CN=Mistakes Intermediate \
             CA): the file must start with the server's own certificate, then the intermediates",
            reversed.display(),
            key.display()
        )
    );
    // The two files swapped.
    let err = load(&key, &chain);
    assert!(
        err.starts_with(&format!(
            "cannot read TLS certificate file {}: ",
            key.display()
        )) && err.ends_with(
            "(it holds a private key: are tls-certificate-file and tls-key-file swapped?)"
        ),
        "{err}"
    );
    // A key with a passphrase.
    let locked = dir.path().join("locked-key.pem");
    openssl(
        dir.path(),
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            locked.to_str().unwrap(),
        ],
    );
    assert_eq!(
        load(&chain, &locked),
        format!(
            "cannot read TLS key file {0}: the private key is encrypted with a passphrase, which \
             a server cannot ask for: write it out unencrypted with `openssl pkey -in {0} -out \
             {0}.plain`",
            locked.display()
        )
    );
}

/// The server's side of a refusal: which certificate, what the client said, and the name it
/// asked for (or that it sent none, as a client connecting by IP address does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_says_why_a_client_refused_its_certificate() {
    let dir = TempDir::new("tls-server-side");
    let (cert, key) = openssl_self_signed(dir.path(), "srv", "localhost", "DNS:localhost");
    let (addr, mut errors) = reporting_echo_server(server(&cert, &key)).await;
    let ours = format!(
        "CN=localhost from tls-certificate-file {}, for localhost",
        cert.display()
    );
    // No CA file: the rustls client does not trust a CA:TRUE certificate as a server's.
    let _ = echo_through(&TlsClientConfig::default(), "localhost", addr).await;
    let got = tokio::time::timeout(DEADLINE, errors.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.starts_with("TLS handshake with client 127.0.0.1:")
            && got.contains(&format!(
                " failed: the client refused our certificate ({ours}; alert certificate_unknown): it \
                 does not trust it, or it connected by a name the certificate does not have; it \
                 asked for \"localhost\""
            )),
        "{got}"
    );
    // By IP address: no SNI, and the name does not match.
    let _ = echo_through(&trusting(&cert), "127.0.0.1", addr).await;
    let got = tokio::time::timeout(DEADLINE, errors.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.ends_with(&format!(
            "failed: the client refused our certificate ({ours}; alert bad_certificate): it does \
             not trust it, or it connected by a name the certificate does not have; it sent no \
             server name (SNI): it connected by IP address, or it never sends one"
        )),
        "{got}"
    );
}

/// rtmps:// to a port that speaks something else: one that answers in plain text, one that
/// hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_does_not_speak_tls_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            n += 1;
            if n == 1 {
                let mut buf = [0u8; 512];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = sock.shutdown().await;
            }
            // Later connections: dropped at once.
        }
    });
    let port = addr.port();
    let err = echo_through(&TlsClientConfig::default(), "127.0.0.1", addr)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "TLS handshake with 127.0.0.1:{port} failed: the server at 127.0.0.1:{port} does not \
             speak TLS on this port: what it sent is not a TLS handshake (rtmps:// needs the \
             server's TLS port, often 443; plain RTMP is rtmp://, usually port 1935)"
        )
    );
    let err = echo_through(&TlsClientConfig::default(), "localhost", addr)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "TLS handshake with localhost:{port} failed: the server at localhost:{port} closed \
             the connection during the TLS handshake: it does not speak TLS on this port \
             (rtmps:// needs the server's TLS port, often 443; plain RTMP is rtmp://, usually \
             port 1935), or it refused this client (its log says why)"
        )
    );
}

/// Renewed files reach new handshakes while an open connection keeps its session; a broken
/// renewal is logged naming the file, and the certificate before it stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_files_reach_new_handshakes_and_a_broken_renewal_keeps_the_old_pair() {
    let log = common::server_peers::server_log();
    let dir = TempDir::new("tls-reload");
    let (cert, key) = (
        dir.path().join("live-cert.pem"),
        dir.path().join("live-key.pem"),
    );
    let (a_cert, a_key) = openssl_self_signed(dir.path(), "a", "localhost", "DNS:localhost");
    let (b_cert, b_key) = openssl_self_signed(dir.path(), "b", "localhost", "DNS:localhost");
    replace_file(&a_cert, &cert);
    replace_file(&a_key, &key);
    let addr = tls_echo_server(server(&cert, &key)).await;
    let served = || served_certificate_async(addr.port());
    assert_eq!(served().await, Some(first_der(&a_cert)));

    // A connection open across the renewal.
    let connector = trusting(&a_cert).connector().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut open = connector.connect("localhost", tcp).await.unwrap();

    replace_file(&b_cert, &cert);
    replace_file(&b_key, &key);
    let want = first_der(&b_cert);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while served().await.as_ref() != Some(&want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate never reached a handshake"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    open.write_all(b"still here").await.unwrap();
    let mut back = [0u8; 10];
    tokio::time::timeout(DEADLINE, open.read_exact(&mut back))
        .await
        .expect("the open connection answers")
        .unwrap();
    assert_eq!(&back, b"still here");

    // A broken renewal: the key of A next to the certificate of B. Only lines logged from
    // here on count (the renewal above may have logged a half-done pair).
    let before = log.lock().unwrap().len();
    replace_file(&a_key, &key);
    let needle = "the TLS files changed but cannot be used, so new TLS handshakes keep the \
                  certificate loaded before (CN=localhost (localhost), valid from ";
    let warned = |lines: &[String]| {
        lines.iter().any(|l| {
            l.contains(needle)
                && l.contains(&format!(
                    "TLS certificate file {} and key file {} do not form a usable pair: the \
                     private key does not belong to the certificate (CN=localhost)",
                    cert.display(),
                    key.display()
                ))
        })
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        // Handshakes are what make the acceptor look at its files.
        assert_eq!(served().await, Some(want.clone()), "the old pair stays");
        if warned(&log.lock().unwrap()[before..]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning about the broken renewal; the log:\n{}",
            log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served().await,
        Some(want),
        "the old pair stays after the warning"
    );
}
