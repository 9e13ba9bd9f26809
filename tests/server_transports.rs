//! The server elements on every transport, one port: real publishers (ffmpeg, librtmp's
//! rtmpsink) into rtmpserversrc and real players (ffmpeg, rtmpdump) out of rtmpserversink over
//! RTMPS, RTMPT, RTMPTS, RTMPE and RTMPTE, every frame counted against ffprobe of the input.
//! Then bad input per transport (an unfinished or garbage TLS handshake, RTMPE inside TLS,
//! unknown tunnel sessions, an absurd Content-Length, an RTMPE C1 with a bad digest) next to a
//! well-behaved player, TLS settings that disagree on a shared port, and `transports`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::server_peers::*;
use common::{ChildGuard, TempDir, ffprobe_counts, require, self_signed_cert, test_media};
use gst::prelude::*;
use gstrsrtmp::rtmp::session::{ClientEvent, ClientRole};

const DEADLINE: Duration = Duration::from_secs(90);
/// How soon bad input must be closed where only the time tells a close for what it sent from
/// a close by the handshake-timeout (no log line does): well under the element's 30 s.
const PROMPTLY: Duration = Duration::from_secs(20);

/// `tls-certificate-file=... tls-key-file=...` for a fresh self-signed pair in `dir`.
fn tls_props(dir: &Path, tag: &str) -> (String, PathBuf) {
    let (cert, key) = self_signed_cert(dir, tag);
    (
        format!(
            "tls-certificate-file={} tls-key-file={}",
            cert.display(),
            key.display()
        ),
        cert,
    )
}

// ---- rtmpserversrc <- publishers ------------------------------------------------------------

struct Ingest {
    p: Pipeline,
    port: u16,
    v: Arc<Mutex<Seen>>,
    a: Arc<Mutex<Seen>>,
    _dir: TempDir,
}

fn ingest() -> Ingest {
    let dir = TempDir::new("srv-transports-ingest");
    let (tls, _) = tls_props(dir.path(), "ingest");
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key eos-on-unpublish=true {tls} ! \
         flvdemux name=d d.video ! queue ! appsink name=v sync=false \
         d.audio ! queue ! appsink name=a sync=false"
    ));
    let v = count_appsink(&p, "v");
    let a = count_appsink(&p, "a");
    p.play();
    let port = p.port("src");
    Ingest {
        p,
        port,
        v,
        a,
        _dir: dir,
    }
}

fn check_ingest(ing: &Ingest, media: &Path, who: &str) {
    ing.p.wait_eos(DEADLINE);
    let (nv, na) = ffprobe_counts(media);
    assert!(nv > 0 && na > 0, "test media ({nv}, {na})");
    let (v, a) = (ing.v.lock().unwrap(), ing.a.lock().unwrap());
    assert_eq!(
        (v.buffers as u64, a.buffers as u64),
        (nv, na),
        "{who}: frames (video, audio) out of flvdemux vs the input"
    );
    assert_eq!(
        (v.backwards, a.backwards),
        (0, 0),
        "{who}: timestamps went back"
    );
}

fn ffmpeg_publish(scheme: &str) {
    require("ffmpeg", "ffmpeg");
    let media = test_media(3);
    let ing = ingest();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(&media);
    if scheme.starts_with("rtmpt") {
        // FFmpeg's tunnel holds packets until its next read and drops what it holds at close.
        cmd.args(["-rtmp_flush_interval", "1"]);
    }
    cmd.args(["-c", "copy", "-f", "flv"])
        .arg(format!("{scheme}://127.0.0.1:{}/live/key", ing.port))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut ff = ChildGuard::spawn(&format!("ffmpeg over {scheme}"), &mut cmd);
    let status = wait_or_explain(&mut ff, DEADLINE);
    assert!(
        status.success(),
        "ffmpeg over {scheme}: {}",
        ff.stderr_text()
    );
    check_ingest(&ing, &media, &format!("ffmpeg over {scheme}"));
}

/// `filesrc ! flvdemux ! flvmux ! rtmpsink`: librtmp publishing what a live encoder would.
fn librtmp_publish(scheme: &str) {
    require("gst-launch-1.0", "gstreamer1.0-tools");
    let media = test_media(3);
    let ing = ingest();
    let mut child = ChildGuard::spawn(
        &format!("rtmpsink over {scheme}"),
        Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", media.display()))
            .args("! flvdemux name=d d.video ! queue ! m.video d.audio ! queue ! m.audio flvmux streamable=true name=m ! rtmpsink".split(' '))
            // librtmp takes its options after the URL, separated by spaces: one argument.
            .arg(format!(
                "location={scheme}://127.0.0.1:{}/live/key live=1",
                ing.port
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = wait_or_explain(&mut child, DEADLINE);
    assert!(
        status.success(),
        "rtmpsink over {scheme}: {}",
        child.stderr_text()
    );
    check_ingest(&ing, &media, &format!("rtmpsink over {scheme}"));
}

#[test]
fn ffmpeg_publishes_over_rtmps() {
    ffmpeg_publish("rtmps");
}

#[test]
fn ffmpeg_publishes_over_rtmpt() {
    ffmpeg_publish("rtmpt");
}

#[test]
fn ffmpeg_publishes_over_rtmpts() {
    ffmpeg_publish("rtmpts");
}

#[test]
fn librtmp_publishes_over_rtmps() {
    librtmp_publish("rtmps");
}

#[test]
fn librtmp_publishes_over_rtmpt() {
    librtmp_publish("rtmpt");
}

#[test]
fn librtmp_publishes_over_rtmpts() {
    librtmp_publish("rtmpts");
}

#[test]
fn librtmp_publishes_over_rtmpe() {
    librtmp_publish("rtmpe");
}

#[test]
fn librtmp_publishes_over_rtmpte() {
    librtmp_publish("rtmpte");
}

// ---- rtmpserversink -> players ----------------------------------------------------------------

fn ffmpeg_player(url: &str, out: &Path) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        &format!("ffmpeg player {url}"),
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i", url])
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// rtmpdump, quiet: a chatty child would block on its full stderr pipe.
fn rtmpdump_player(url: &str, out: &Path) -> ChildGuard {
    require("rtmpdump", "rtmpdump");
    ChildGuard::spawn(
        &format!("rtmpdump {url}"),
        Command::new("rtmpdump")
            .args(["-q", "-v", "-m", "30", "-r", url, "-o"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

type StartPlayer = fn(&str, &Path) -> ChildGuard;

/// Per player of the sink's stats: (transport, shared-bytes).
fn player_labels(sink: &gst::Element) -> Vec<(String, bool)> {
    let stats: gst::Structure = sink.property("stats");
    let clients: gst::Array = stats.get("client-stats").unwrap();
    let mut labels: Vec<(String, bool)> = clients
        .iter()
        .map(|c| {
            let s = c.get::<gst::Structure>().unwrap();
            (
                s.get::<String>("transport").unwrap(),
                s.get::<bool>("shared-bytes").unwrap(),
            )
        })
        .collect();
    labels.sort();
    labels
}

/// Starts every player on the sink, waits until all are in, serves the whole file, and checks
/// every player got every frame. Returns the players' (transport, shared-bytes), sorted.
fn serve_players(players: &[(&str, &str, StartPlayer)], extra: &str) -> Vec<(String, bool)> {
    let media = test_media(3);
    let data = std::fs::read(&media).unwrap();
    let want = ffprobe_counts(&media);
    let dir = TempDir::new("srv-transports-play");
    let (tls, _) = tls_props(dir.path(), "sink");
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=s {tls} {extra}"
    ));
    p.play();
    let sink = p.by_name("sink");
    let (connected, _) = count_clients(&sink);
    let port = p.port("sink");
    let mut running: Vec<(String, PathBuf, ChildGuard)> = players
        .iter()
        .enumerate()
        .map(|(i, (name, scheme, start))| {
            let out = dir.path().join(format!("{name}-{scheme}-{i}.flv"));
            let child = start(&format!("{scheme}://127.0.0.1:{port}/live/s"), &out);
            (format!("{name} over {scheme}"), out, child)
        })
        .collect();
    wait_until("every player to connect", DEADLINE, || {
        connected.load(Ordering::SeqCst) == players.len()
    });
    let labels = player_labels(&sink);
    push_file(&p.by_name("src"), &data, 64 * 1024);
    p.wait_eos(DEADLINE);
    for (name, out, child) in &mut running {
        let status = wait_or_explain(child, DEADLINE);
        // rtmpdump exits with 2 when the last timestamp falls short of the metadata's
        // duration, as a live stream's always does; the frame count says the rest.
        let ok = status.success() || (name.starts_with("rtmpdump") && status.code() == Some(2));
        let log = child.stderr_text();
        assert!(ok, "{name} failed ({status}): {log}");
        assert_eq!(
            ffprobe_counts(out),
            want,
            "{name}: frames (video, audio); its log: {log}"
        );
    }
    labels
}

fn labels(items: &[(&str, bool)]) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = items.iter().map(|(t, s)| (t.to_string(), *s)).collect();
    v.sort();
    v
}

#[test]
fn ffmpeg_and_rtmpdump_play_over_rtmps_and_rtmpts_with_shared_bytes() {
    let got = serve_players(
        &[
            ("ffmpeg", "rtmps", ffmpeg_player),
            ("ffmpeg", "rtmpts", ffmpeg_player),
            ("rtmpdump", "rtmps", rtmpdump_player),
            ("rtmpdump", "rtmpts", rtmpdump_player),
        ],
        "",
    );
    // TLS and tunnels carry the same bytes as plain RTMP: every player shares them.
    assert_eq!(
        got,
        labels(&[
            ("rtmps", true),
            ("rtmps", true),
            ("rtmpts", true),
            ("rtmpts", true)
        ])
    );
}

#[test]
fn ffmpeg_and_rtmpdump_play_over_rtmpt_rtmpe_and_rtmpte() {
    let got = serve_players(
        &[
            ("ffmpeg", "rtmpt", ffmpeg_player),
            ("rtmpdump", "rtmpt", rtmpdump_player),
            ("rtmpdump", "rtmpe", rtmpdump_player),
            ("rtmpdump", "rtmpte", rtmpdump_player),
        ],
        "",
    );
    // RTMPE players have a cipher of their own: they take their own encoding.
    assert_eq!(
        got,
        labels(&[
            ("rtmpe", false),
            ("rtmpt", true),
            ("rtmpt", true),
            ("rtmpte", false)
        ])
    );
}

// ---- bad input --------------------------------------------------------------------------------

/// Reads until the server closes the connection; panics when it stays open past `timeout`.
fn expect_closed(sock: &mut TcpStream, what: &str, timeout: Duration) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return got,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the server kept the connection open for {timeout:?}"
        );
    }
}

/// One HTTP request on a fresh connection; returns the status line and whether the server
/// closed the connection after answering.
fn http_request(port: u16, head: &str, body: &[u8]) -> (String, TcpStream) {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(head.as_bytes()).unwrap();
    sock.write_all(body).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    (text.lines().next().unwrap_or("").to_string(), sock)
}

fn local_port(sock: &TcpStream) -> String {
    format!(":{}", sock.local_addr().unwrap().port())
}

#[test]
fn bad_input_on_every_transport_is_closed_and_a_player_still_gets_every_frame() {
    server_log();
    let media = test_media(3);
    let data = std::fs::read(&media).unwrap();
    let want = ffprobe_counts(&media);
    let dir = TempDir::new("srv-transports-bad");
    let (tls, _) = tls_props(dir.path(), "bad");
    // A generous handshake-timeout: the good player gets through TLS and its play before it,
    // and the bad input is closed for what it sends, not by it. The unfinished handshake that
    // is closed by the timeout goes to an element of its own, below.
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=s handshake-timeout=30 {tls}"
    ));
    p.play();
    let port = p.port("sink");
    let (connected, _) = count_clients(&p.by_name("sink"));
    let out = dir.path().join("good.flv");
    let mut good = rtmpdump_player(&format!("rtmps://127.0.0.1:{port}/live/s"), &out);
    wait_until("the good player to connect", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });

    // A TLS ClientHello that never ends: closed at the handshake timeout, 1 s on this element.
    let (stalled_tls, _) = tls_props(dir.path(), "stalled");
    let stalled_server = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 handshake-timeout=1 {stalled_tls} ! fakesink"
    ));
    stalled_server.play();
    let mut stalled = TcpStream::connect(("127.0.0.1", stalled_server.port("src"))).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .unwrap();
    // TLS garbage: a record header and then nonsense.
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage.write_all(&[0x16, 0x03, 0x01, 0x00, 0x10]).unwrap();
    garbage.write_all(&[0xEE; 16]).unwrap();
    // An RTMPE C0+C1 whose digest is wrong (all zero bytes hold no valid digest).
    let mut rtmpe = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut c1 = vec![0x06u8];
    c1.extend_from_slice(&[0u8; 1536]);
    rtmpe.write_all(&c1).unwrap();

    expect_closed(&mut garbage, "TLS garbage", PROMPTLY);
    wait_for_log(&[&local_port(&garbage), "closing", "TLS"], DEADLINE);
    expect_closed(&mut rtmpe, "RTMPE C1 with a bad digest", PROMPTLY);
    // The bound tells the 1 s setting from the 10 s default, no more: 9 s of slack.
    expect_closed(
        &mut stalled,
        "unfinished TLS handshake",
        Duration::from_secs(9),
    );
    wait_for_log(
        &[&local_port(&stalled), "closing", "TLS handshake unfinished"],
        DEADLINE,
    );

    // HTTP: unknown sessions are answered 404 and logged.
    let (status, _c) = http_request(
        port,
        "POST /send/nosuchsession/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-fcs\r\nContent-Length: 3\r\n\r\n",
        b"abc",
    );
    assert!(status.contains("404"), "unknown session: {status}");
    wait_for_log(&["nosuchsession", "unknown"], DEADLINE);
    let (status, _c) = http_request(
        port,
        "POST /idle/alsonothing/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"",
    );
    assert!(status.contains("404"), "unknown idle session: {status}");
    // An absurd Content-Length: 413, and the connection is closed.
    let (status, mut huge) = http_request(
        port,
        "POST /open/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\n",
        b"",
    );
    assert!(status.contains("413"), "absurd Content-Length: {status}");
    expect_closed(&mut huge, "absurd Content-Length", PROMPTLY);
    wait_for_log(&["Content-Length 99999999999999", "closing"], DEADLINE);

    // Nothing of that touched the player.
    push_file(&p.by_name("src"), &data, 64 * 1024);
    p.wait_eos(DEADLINE);
    let status = wait_or_explain(&mut good, DEADLINE);
    assert!(
        status.success() || status.code() == Some(2),
        "the good player failed ({status}): {}",
        good.stderr_text()
    );
    assert_eq!(ffprobe_counts(&out), want, "the good player's frames");
}

/// A TLS client through rustls that sends `first` inside TLS and reports whether the server
/// hung up without answering.
fn tls_client_sending(port: u16, first: &[u8]) -> bool {
    let connector = gstrsrtmp::net::transport::tls::TlsClientConfig {
        verify: false,
        ca_file: None,
    }
    .connector()
    .unwrap();
    let rt = gstrsrtmp::net::runtime::runtime();
    let first = first.to_vec();
    rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut tls = connector.connect("127.0.0.1", sock).await.unwrap();
        tls.write_all(&first).await.unwrap();
        let mut buf = [0u8; 64];
        // Bounded for a hung test only: the log line checked next tells why it closed.
        matches!(
            tokio::time::timeout(DEADLINE, tls.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    })
}

#[test]
fn rtmpe_inside_tls_is_refused_with_a_reason() {
    server_log();
    let dir = TempDir::new("srv-transports-rtmpe-tls");
    let (tls, _) = tls_props(dir.path(), "e");
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 {tls} ! fakesink"
    ));
    p.play();
    let port = p.port("src");
    let mut c1 = vec![0x06u8];
    c1.extend_from_slice(&[7u8; 1536]);
    assert!(tls_client_sending(port, &c1), "RTMPE in TLS was not closed");
    wait_for_log(&["RTMPE (C0 0x06) inside TLS"], DEADLINE);
}

#[test]
fn tls_without_a_certificate_is_closed_with_a_reason() {
    server_log();
    let p = Pipeline::parse("rtmpserversrc name=src address=127.0.0.1 port=0 ! fakesink");
    p.play();
    let port = p.port("src");
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    // Bounded for a hung test only: the log line checked next tells why it closed.
    expect_closed(&mut sock, "TLS without a certificate", DEADLINE);
    wait_for_log(
        &[
            &local_port(&sock),
            "no element on this port sets tls-certificate-file",
        ],
        DEADLINE,
    );
}

// ---- settings -------------------------------------------------------------------------------

fn start_error(desc: &str) -> String {
    let p = Pipeline::parse(desc);
    let _ = p.0.set_state(gst::State::Playing);
    p.error_within(DEADLINE)
        .unwrap_or_else(|| panic!("{desc:?} started without an error"))
}

#[test]
fn elements_sharing_a_port_must_agree_on_tls() {
    let dir = TempDir::new("srv-transports-tlsmix");
    let (tls_a, cert_a) = tls_props(dir.path(), "a");
    let (tls_b, cert_b) = tls_props(dir.path(), "b");
    let first = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 {tls_a} ! fakesink"
    ));
    first.play();
    let port = first.port("src");

    let err = start_error(&format!(
        "fakesrc ! rtmpserversink address=127.0.0.1 port={port} application=other {tls_b}"
    ));
    let (a, b) = (cert_a.display().to_string(), cert_b.display().to_string());
    assert!(err.contains(&a) && err.contains(&b), "{err}");

    let err = start_error(&format!(
        "fakesrc ! rtmpserversink address=127.0.0.1 port={port} application=other"
    ));
    assert!(err.contains(&a) && err.contains("no TLS"), "{err}");

    // The same files are fine.
    let same = Pipeline::parse(&format!(
        "fakesrc ! rtmpserversink name=sink address=127.0.0.1 port={port} application=other {tls_a}"
    ));
    same.play();
    assert_eq!(same.port("sink"), port);
    assert!(same.error_within(Duration::from_millis(300)).is_none());
}

#[test]
fn half_a_tls_pair_or_no_usable_transport_fails_at_start() {
    let err = start_error(
        "rtmpserversrc address=127.0.0.1 port=0 tls-certificate-file=/nonexistent/c.pem ! fakesink",
    );
    assert!(
        err.contains("/nonexistent/c.pem") && err.contains("tls-key-file"),
        "{err}"
    );
    let err = start_error(
        "rtmpserversrc address=127.0.0.1 port=0 tls-certificate-file=/nonexistent/c.pem tls-key-file=/nonexistent/k.pem ! fakesink",
    );
    assert!(err.contains("/nonexistent/c.pem"), "{err}");
    let err =
        start_error("rtmpserversrc address=127.0.0.1 port=0 transports=rtmps+rtmpts ! fakesink");
    assert!(
        err.contains("rtmps+rtmpts") && err.contains("tls-certificate-file"),
        "{err}"
    );
}

#[test]
fn transports_restrict_what_a_server_accepts() {
    server_log();
    // The port serves rtmpt (the source) and rtmpe (the sink), nothing else.
    let src = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key transports=rtmpt ! fakesink",
    );
    src.play();
    let port = src.port("src");
    let sink = Pipeline::parse(&format!(
        "fakesrc ! rtmpserversink name=sink address=127.0.0.1 port={port} stream=s transports=rtmpe"
    ));
    sink.play();

    // Plain RTMP: no element on the port takes it; closed at the first byte.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(&[0x03; 1537]).unwrap();
    // Bounded for a hung test only: the log line checked next tells why it closed.
    expect_closed(&mut plain, "plain RTMP", DEADLINE);
    wait_for_log(
        &[&local_port(&plain), "no element on this port accepts rtmp "],
        DEADLINE,
    );
    // rtmpt gets through to the source: ffmpeg publishes every frame.
    require("ffmpeg", "ffmpeg");
    drop(src);
    drop(sink);
    let media = test_media(2);
    let dir = TempDir::new("srv-transports-restrict");
    let p = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key eos-on-unpublish=true transports=rtmpt ! \
         flvdemux name=d d.video ! queue ! appsink name=v sync=false \
         d.audio ! queue ! appsink name=a sync=false",
    );
    let v = count_appsink(&p, "v");
    let a = count_appsink(&p, "a");
    p.play();
    let port = p.port("src");
    let _ = dir;
    let mut ff = ChildGuard::spawn(
        "ffmpeg over rtmpt",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(&media)
            .args(["-rtmp_flush_interval", "1", "-c", "copy", "-f", "flv"])
            .arg(format!("rtmpt://127.0.0.1:{port}/live/key"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = wait_or_explain(&mut ff, DEADLINE);
    assert!(status.success(), "ffmpeg over rtmpt: {}", ff.stderr_text());
    p.wait_eos(DEADLINE);
    let (nv, na) = ffprobe_counts(&media);
    assert_eq!(
        (
            v.lock().unwrap().buffers as u64,
            a.lock().unwrap().buffers as u64
        ),
        (nv, na)
    );
}

/// A route refuses a transport the port serves for another element: the play is refused
/// with the reason, and the connection closed.
#[test]
fn a_route_refuses_a_transport_another_element_takes() {
    server_log();
    let sink = Pipeline::parse(
        "fakesrc ! rtmpserversink name=sink address=127.0.0.1 port=0 stream=s transports=rtmpe",
    );
    sink.play();
    let port = sink.port("sink");
    // The source on the same port takes plain RTMP, so a plain connection gets as far as play.
    let src = Pipeline::parse(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} stream=key transports=rtmp ! fakesink"
    ));
    src.play();
    let mut c = RawClient::connect(port, "live", ClientRole::Play);
    c.session.play("s", -2.0).unwrap();
    let ev = c.run_until(DEADLINE, |e| {
        matches!(
            e,
            ClientEvent::StreamRejected(_) | ClientEvent::PlayStarted { .. }
        )
    });
    match ev {
        Some(ClientEvent::StreamRejected(s)) => {
            assert!(s.description.contains("does not accept rtmp"), "{s:?}")
        }
        other => panic!("expected the play to be refused, got {other:?}"),
    }
    let port_text = local_port(&c.sock);
    wait_for_log(
        &[
            &port_text,
            "refusing play",
            "does not accept rtmp (transports=rtmpe)",
        ],
        DEADLINE,
    );
}
