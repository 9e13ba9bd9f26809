//! TLS the way users set it up (issue 16), with real peers: rtmpserversink serves RTMPS with
//! certificates made by the `openssl` CLI (or rcgen where OpenSSL 3.0 cannot), and FFmpeg 9
//! (`-tls_verify 1 -ca_file …`: its verification on, as the refusals below prove) and our own
//! rtmpclientsrc (`tls-ca-file=…`) play from it.
//!
//! - (a) the self-signed certificate of the README's openssl one-liner (CA:TRUE),
//! - (b) a private root CA, an intermediate and a leaf with an SEC1 EC key,
//! - (c) an expired leaf,
//! - (d) a certificate for another host name,
//!
//! each either plays every packet of every stream (FFmpeg's framecrc against the file) or
//! fails with the message it should, on the client and in the server's log. Then a port that
//! does not speak TLS, and a renewal of the certificate files while players are connected:
//! they keep playing every packet, and new players get the new certificate.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::certs::{
    KeyFormat, first_der, openssl_intermediate_ca, openssl_leaf, openssl_root_ca,
    openssl_self_signed, rcgen_expired_leaf, replace_file, served_certificate,
};
use common::server_peers::*;
use common::{ChildGuard, FrameCrc, TempDir, ffmpeg9, ffmpeg9_framecrc, ffmpeg9_media};
use gst::prelude::*;

/// Bounds hung tests only; both ends do their TLS handshakes in this debug build.
const DEADLINE: Duration = Duration::from_secs(60);

/// H.264 + AAC, 4 s (shared with the relay tests).
fn media() -> PathBuf {
    ffmpeg9_media(
        "e-h264-aac-4s.flv",
        4,
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-c:a", "aac",
        ],
    )
}

/// rtmpserversink on a free port serving RTMPS with `cert` and `key`, fed by an appsrc.
struct Server {
    p: Pipeline,
    port: u16,
    connected: Arc<AtomicUsize>,
}

fn tls_server(cert: &Path, key: &Path) -> Server {
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=s handshake-timeout=30 \
         tls-certificate-file={} tls-key-file={}",
        cert.display(),
        key.display()
    ));
    let (connected, _) = count_clients(&p.by_name("sink"));
    p.play();
    let port = p.port("sink");
    Server { p, port, connected }
}

impl Server {
    fn appsrc(&self) -> gst_app::AppSrc {
        self.p.by_name("src").downcast::<gst_app::AppSrc>().unwrap()
    }

    fn push(&self, data: &[u8]) {
        for piece in data.chunks(64 * 1024) {
            self.appsrc()
                .push_buffer(gst::Buffer::from_slice(piece.to_vec()))
                .expect("appsrc push");
        }
    }

    fn wait_players(&self, n: usize) {
        wait_until(&format!("{n} players on the sink"), DEADLINE, || {
            self.connected.load(Ordering::SeqCst) == n
        });
    }

    /// Pushes the rest of the file, ends the stream and waits until the sink has sent it all.
    fn finish(&self, rest: &[u8]) {
        self.push(rest);
        self.appsrc().end_of_stream().expect("appsrc eos");
        self.p.wait_eos(DEADLINE);
    }
}

/// A player of `rtmps://{host}:{port}/live/s` that writes what it got into a file.
enum Player {
    /// FFmpeg 9 writing framecrc.
    Ffmpeg(ChildGuard, PathBuf),
    /// rtmpclientsrc writing FLV.
    Ours(common::PipelineGuard, PathBuf),
}

/// FFmpeg 9 with its certificate verification explicitly on, trusting `ca_file` if given.
fn ffmpeg9_tls(host: &str, port: u16, ca_file: Option<&Path>, out: &Path) -> ChildGuard {
    let mut cmd = Command::new(ffmpeg9());
    cmd.args(["-nostdin", "-loglevel", "error", "-y", "-tls_verify", "1"]);
    if let Some(ca) = ca_file {
        cmd.arg("-ca_file").arg(ca);
    }
    cmd.arg("-i")
        .arg(format!("rtmps://{host}:{port}/live/s"))
        .args(["-map", "0", "-c", "copy", "-f", "framecrc"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&format!("FFmpeg 9 on {host}:{port}"), &mut cmd)
}

fn ffmpeg_player(host: &str, port: u16, ca_file: &Path, out: PathBuf) -> Player {
    Player::Ffmpeg(ffmpeg9_tls(host, port, Some(ca_file), &out), out)
}

/// The rtmpclientsrc description for `host`:`port` with `extra` properties.
fn our_source(host: &str, port: u16, extra: &str) -> String {
    format!(
        "rtmpclientsrc location=rtmps://{host}:{port}/live/s reconnect=false timeout=30 {extra}"
    )
}

fn our_player(host: &str, port: u16, ca_file: &Path, out: PathBuf) -> Player {
    common::init_gst();
    let p = common::pipeline(&format!(
        "{} ! filesink location={}",
        our_source(host, port, &format!("tls-ca-file={}", ca_file.display())),
        out.display()
    ));
    p.set_state(gst::State::Playing).expect("player to PLAYING");
    Player::Ours(p, out)
}

impl Player {
    /// Waits for the end of the stream and returns every packet the player got.
    fn finish(self) -> FrameCrc {
        match self {
            Player::Ffmpeg(mut child, out) => {
                let status = wait_or_explain(&mut child, DEADLINE);
                let log = child.stderr_text();
                assert!(status.success(), "{} failed ({status}): {log}", child.name);
                FrameCrc::parse(&std::fs::read_to_string(&out).unwrap())
            }
            Player::Ours(p, out) => {
                common::wait_end(&p, DEADLINE).expect_eos();
                p.set_state(gst::State::Null).unwrap();
                ffmpeg9_framecrc(&out)
            }
        }
    }
}

/// Our client's error for `extra` properties against `host`:`port`: an OpenRead error, its
/// text returned.
fn our_error(host: &str, port: u16, extra: &str) -> String {
    common::init_gst();
    let p = common::pipeline(&format!("{} ! fakesink", our_source(host, port, extra)));
    let (error, debug) = common::run(&p, DEADLINE).expect_error();
    assert!(
        error.matches(gst::ResourceError::OpenRead),
        "{error} ({debug})"
    );
    error.message().to_string()
}

/// FFmpeg 9 refuses the server: it exits with an error after its TLS verification failed.
fn ffmpeg_refuses(host: &str, port: u16, ca_file: Option<&Path>, dir: &Path) {
    let mut child = ffmpeg9_tls(host, port, ca_file, &dir.join("refused.crc"));
    let status = wait_or_explain(&mut child, DEADLINE);
    let log = child.stderr_text();
    assert!(!status.success(), "FFmpeg 9 played: {log}");
    assert!(
        log.contains("certificate verify failed"),
        "FFmpeg 9 failed for another reason than its verification: {log}"
    );
}

/// Serves the whole file to `players` (all connected first) and checks each got every packet.
fn serve_every_packet(server: &Server, players: Vec<(&str, Player)>) {
    let want = ffmpeg9_framecrc(&media());
    server.wait_players(players.len());
    server.finish(&std::fs::read(media()).unwrap());
    for (name, player) in players {
        let got = player.finish();
        assert_eq!(got.counts(), want.counts(), "{name}: packets per stream");
        assert_eq!(got, want, "{name}: packets and decoder configuration");
    }
}

#[test]
fn a_the_openssl_self_signed_certificate_plays_when_trusted_and_is_named_when_not() {
    server_log();
    let dir = TempDir::new("tls-setup-a");
    let (cert, key) =
        openssl_self_signed(dir.path(), "srv", "localhost", "DNS:localhost,IP:127.0.0.1");
    let server = tls_server(&cert, &key);
    let port = server.port;

    // Not trusted: FFmpeg 9 refuses (its verification is on), the server says why, and our
    // client says what to do.
    ffmpeg_refuses("localhost", port, None, dir.path());
    wait_for_log(
        &[&format!(
            "closing: TLS handshake failed: the client does not trust the issuer of our \
             certificate (CN=localhost from tls-certificate-file {}, for localhost, 127.0.0.1; \
             alert unknown_ca): give the client the certificate of the CA that issued it, or \
             for a self-signed certificate the certificate itself (rtmpclientsrc and \
             rtmpclientsink: tls-ca-file; FFmpeg: -ca_file); it asked for \"localhost\"",
            cert.display()
        )],
        DEADLINE,
    );
    assert_eq!(
        our_error("127.0.0.1", port, ""),
        format!(
            "TLS handshake with 127.0.0.1:{port} failed: the server's certificate \
             (CN=localhost) is self-signed, and this client does not trust it: set tls-ca-file \
             to a copy of that certificate (PEM) to trust exactly it (tls-ca-file is not set), \
             or set tls-validation-flags=0 to accept any certificate"
        )
    );

    // Trusted through the certificate itself: by name and by IP address.
    serve_every_packet(
        &server,
        vec![
            (
                "FFmpeg 9 -ca_file",
                ffmpeg_player("localhost", port, &cert, dir.path().join("ff.crc")),
            ),
            (
                "rtmpclientsrc tls-ca-file",
                our_player("127.0.0.1", port, &cert, dir.path().join("ours.flv")),
            ),
        ],
    );
}

#[test]
fn b_a_private_ca_with_an_intermediate_plays_when_its_root_is_trusted() {
    let dir = TempDir::new("tls-setup-b");
    let root = openssl_root_ca(dir.path(), "root", "Setup Root CA");
    let mid = openssl_intermediate_ca(dir.path(), "mid", "Setup Intermediate CA", &root);
    let (chain, key) = openssl_leaf(
        dir.path(),
        "leaf",
        &mid,
        &[&mid],
        "DNS:localhost,IP:127.0.0.1",
        KeyFormat::Sec1Ec,
    );
    let server = tls_server(&chain, &key);
    let port = server.port;
    assert_eq!(
        our_error("localhost", port, ""),
        format!(
            "TLS handshake with localhost:{port} failed: the server's certificate \
             (CN=localhost) is issued by CN=Setup Intermediate CA, which no trusted CA vouches \
             for: set tls-ca-file to a PEM file with the certificate of the CA that issued it \
             (tls-ca-file is not set)"
        )
    );
    serve_every_packet(
        &server,
        vec![
            (
                "FFmpeg 9 -ca_file root",
                ffmpeg_player("localhost", port, &root.cert, dir.path().join("ff.crc")),
            ),
            (
                "rtmpclientsrc tls-ca-file=root",
                our_player("127.0.0.1", port, &root.cert, dir.path().join("ours.flv")),
            ),
        ],
    );
}

#[test]
fn c_an_expired_leaf_is_refused_with_its_date() {
    server_log();
    let dir = TempDir::new("tls-setup-c");
    let (ca, cert, key) = rcgen_expired_leaf(dir.path(), "expired");
    let server = tls_server(&cert, &key);
    let port = server.port;
    wait_for_log(
        &[&format!(
            "the certificate in tls-certificate-file {} (CN=localhost) expired on 2021-01-01 \
             00:00:00 UTC: clients that verify certificates refuse it; renew it (the server \
             picks up the new files by itself)",
            cert.display()
        )],
        DEADLINE,
    );
    let err = our_error("localhost", port, &format!("tls-ca-file={}", ca.display()));
    let head = format!(
        "TLS handshake with localhost:{port} failed: the server's certificate (CN=localhost) \
         expired on 2021-01-01 00:00:00 UTC (it is now "
    );
    assert!(
        err.starts_with(&head)
            && err.ends_with("): the server must renew it (or this machine's clock is wrong)"),
        "{err}"
    );
    ffmpeg_refuses("localhost", port, Some(&ca), dir.path());
    wait_for_log(
        &[&format!(
            "closing: TLS handshake failed: the client says our certificate has expired \
             (CN=localhost from tls-certificate-file {}, for localhost, 127.0.0.1, valid from \
             2020-01-01 00:00:00 UTC until 2021-01-01 00:00:00 UTC; alert certificate_expired): \
             renew it (new handshakes pick up the new files by themselves), or check the \
             client's clock",
            cert.display()
        )],
        DEADLINE,
    );
    assert_eq!(server.connected.load(Ordering::SeqCst), 0);
}

#[test]
fn d_a_certificate_for_another_name_is_refused_naming_both() {
    server_log();
    let dir = TempDir::new("tls-setup-d");
    let (cert, key) =
        openssl_self_signed(dir.path(), "other", "other.example", "DNS:other.example");
    let server = tls_server(&cert, &key);
    let port = server.port;
    let trust = format!("tls-ca-file={}", cert.display());
    assert_eq!(
        our_error("localhost", port, &trust),
        format!(
            "TLS handshake with localhost:{port} failed: the server's certificate \
             (CN=other.example) is for other.example, not for localhost: use one of its names \
             in the location, or give the server a certificate whose subjectAltName has \
             DNS:localhost"
        )
    );
    // By IP address: the name to add is an IP entry, and the server sees no SNI.
    assert_eq!(
        our_error("127.0.0.1", port, &trust),
        format!(
            "TLS handshake with 127.0.0.1:{port} failed: the server's certificate \
             (CN=other.example) is for other.example, not for 127.0.0.1: use one of its names \
             in the location, or give the server a certificate whose subjectAltName has \
             IP:127.0.0.1"
        )
    );
    let ours = format!(
        "(CN=other.example from tls-certificate-file {}, for other.example; alert \
         bad_certificate): it does not trust it, or it connected by a name the certificate \
         does not have",
        cert.display()
    );
    wait_for_log(
        &[&format!(
            "closing: TLS handshake failed: the client refused our certificate {ours}; it sent \
             no server name (SNI): it connected by IP address, or it never sends one"
        )],
        DEADLINE,
    );
    ffmpeg_refuses("localhost", port, Some(&cert), dir.path());
    wait_for_log(
        &[&format!(
            "closing: TLS handshake failed: the client refused our certificate {ours}; it asked \
             for \"localhost\", which our certificate does not name"
        )],
        DEADLINE,
    );
    assert_eq!(server.connected.load(Ordering::SeqCst), 0);
}

#[test]
fn e_a_port_that_does_not_speak_tls_is_named() {
    // A plain RTMP server: it hangs up on a ClientHello.
    let plain = Pipeline::parse("rtmpserversrc name=src address=127.0.0.1 port=0 ! fakesink");
    plain.play();
    let port = plain.port("src");
    assert_eq!(
        our_error("localhost", port, ""),
        format!(
            "TLS handshake with localhost:{port} failed: the server at localhost:{port} closed \
             the connection during the TLS handshake: it does not speak TLS on this port \
             (rtmps:// needs the server's TLS port, often 443; plain RTMP is rtmp://, usually \
             port 1935), or it refused this client (its log says why)"
        )
    );
    // A server that takes the connection and never answers the ClientHello (as an RTMP
    // server waiting for the rest of its C1 does).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || silent.accept().map(|(sock, _)| sock));
    let p = common::pipeline(&format!(
        "rtmpclientsrc location=rtmps://localhost:{port}/live/s reconnect=false timeout=10 ! \
         fakesink"
    ));
    let (error, _) = common::run(&p, DEADLINE).expect_error();
    assert_eq!(
        error.message(),
        format!(
            "connecting to localhost:{port} timed out after 10000 ms in the TLS handshake: the \
             TCP connection was made, but the server did not answer the TLS handshake; it may \
             not speak TLS on this port (rtmps:// needs the server's TLS port, often 443; plain \
             RTMP is rtmp://, usually port 1935)"
        )
    );
    drop(held.join());
}

/// The late players' packets: every stream's decoder configuration, then the file's packets
/// from a keyframe on.
fn check_tail(name: &str, got: &FrameCrc, want: &FrameCrc) {
    assert_eq!(
        got.extradata, want.extradata,
        "{name}: decoder configuration"
    );
    assert_eq!(
        got.packets.keys().collect::<Vec<_>>(),
        want.packets.keys().collect::<Vec<_>>(),
        "{name}: streams"
    );
    for (stream, packets) in &got.packets {
        let all = &want.packets[stream];
        assert!(
            !packets.is_empty() && packets.len() <= all.len(),
            "{name}: {} of {} packets of stream {stream}",
            packets.len(),
            all.len()
        );
        assert_eq!(
            packets[..],
            all[all.len() - packets.len()..],
            "{name}: stream {stream} is not the file's tail"
        );
    }
    assert!(
        got.packets[&0][0].2,
        "{name}: video starts without a keyframe"
    );
}

#[test]
fn f_a_renewal_keeps_players_playing_and_new_players_get_the_new_certificate() {
    server_log();
    let dir = TempDir::new("tls-setup-renew");
    let ca_a = openssl_root_ca(dir.path(), "ca-a", "Renewal CA A");
    let ca_b = openssl_root_ca(dir.path(), "ca-b", "Renewal CA B");
    let san = "DNS:localhost,IP:127.0.0.1";
    let (a_chain, a_key) = openssl_leaf(dir.path(), "a", &ca_a, &[], san, KeyFormat::Pkcs8);
    let (b_chain, b_key) = openssl_leaf(dir.path(), "b", &ca_b, &[], san, KeyFormat::Pkcs1Rsa);
    // The files the server is told about, as certbot's live/ names.
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    replace_file(&a_chain, &cert);
    replace_file(&a_key, &key);
    let server = tls_server(&cert, &key);
    let port = server.port;
    assert_eq!(served_certificate(port), Some(first_der(&a_chain)));

    let data = std::fs::read(media()).unwrap();
    let want = ffmpeg9_framecrc(&media());
    let early = vec![
        (
            "early FFmpeg 9 (CA A)",
            ffmpeg_player("localhost", port, &ca_a.cert, dir.path().join("early.crc")),
        ),
        (
            "early rtmpclientsrc (CA A)",
            our_player("127.0.0.1", port, &ca_a.cert, dir.path().join("early.flv")),
        ),
    ];
    server.wait_players(2);
    let cut = data.len() * 4 / 10;
    server.push(&data[..cut]);

    replace_file(&b_chain, &cert);
    replace_file(&b_key, &key);
    let renewed = first_der(&b_chain);
    wait_until(
        "the renewed certificate on new handshakes",
        DEADLINE,
        || served_certificate(port).as_ref() == Some(&renewed),
    );
    wait_for_log(
        &[&format!(
            "tls-certificate-file {} or tls-key-file {} changed: new TLS handshakes use \
             CN=localhost (localhost, 127.0.0.1), valid from ",
            cert.display(),
            key.display()
        )],
        DEADLINE,
    );
    // A player that trusts only the old CA is refused now, with the new issuer named.
    assert_eq!(
        our_error(
            "localhost",
            port,
            &format!("tls-ca-file={}", ca_a.cert.display())
        ),
        format!(
            "TLS handshake with localhost:{port} failed: the server's certificate \
             (CN=localhost) is issued by CN=Renewal CA B, which no trusted CA vouches for: set \
             tls-ca-file to a PEM file with the certificate of the CA that issued it \
             (tls-ca-file {} does not hold it); if CN=Renewal CA B is an intermediate CA, the \
             server must send its certificate too (the server's certificate file holds its own \
             certificate, then the intermediates)",
            ca_a.cert.display()
        )
    );
    let late = vec![
        (
            "late FFmpeg 9 (CA B)",
            ffmpeg_player("localhost", port, &ca_b.cert, dir.path().join("late.crc")),
        ),
        (
            "late rtmpclientsrc (CA B)",
            our_player("127.0.0.1", port, &ca_b.cert, dir.path().join("late.flv")),
        ),
    ];
    server.wait_players(4);
    server.finish(&data[cut..]);
    for (name, player) in early {
        let got = player.finish();
        assert_eq!(got.counts(), want.counts(), "{name}: packets per stream");
        assert_eq!(got, want, "{name}: packets and decoder configuration");
    }
    for (name, player) in late {
        check_tail(name, &player.finish(), &want);
    }
}
