//! Hostile and broken peers against rtmpserversrc: garbage, a 2^31 chunk size, a 16 MB message
//! header, 10,000 half-open connections, a publisher that vanishes mid-message. After each,
//! a well-behaved publisher (ffmpeg) on the same listener still gets every frame through.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::server_peers::*;
use common::{ChildGuard, ffprobe_counts, plugin_dir, require, test_media};
use gstrsrtmp::rtmp::session::{ClientEvent, ClientRole, MediaKind};

const DEADLINE: Duration = Duration::from_secs(60);

struct Ingest {
    p: Pipeline,
    port: u16,
    v: Arc<Mutex<Seen>>,
    a: Arc<Mutex<Seen>>,
}

fn ingest() -> Ingest {
    // A generous handshake-timeout: the well-behaved publishers must get through before it,
    // and the hostile peers are closed for what they send (or evicted), not by it.
    let p = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key handshake-timeout=30 ! \
         flvdemux name=d d.video ! queue ! appsink name=v sync=false \
         d.audio ! queue ! appsink name=a sync=false",
    );
    let v = count_appsink(&p, "v");
    let a = count_appsink(&p, "a");
    p.play();
    let port = p.port("src");
    Ingest { p, port, v, a }
}

/// ffmpeg publishes the test media; every frame must come out, in order.
fn assert_still_serves(ing: &Ingest) {
    require("ffmpeg", "ffmpeg");
    let media = test_media(4);
    let mut ff = ChildGuard::spawn(
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{}/live/key", ing.port))
            .stderr(Stdio::piped()),
    );
    let status = ff.wait_timeout(DEADLINE);
    assert!(
        status.success(),
        "ffmpeg could not publish: {}",
        ff.stderr_text()
    );
    let (nv, na) = ffprobe_counts(&media);
    wait_until(
        "every frame of the well-behaved publisher",
        DEADLINE,
        || {
            let got = (
                ing.v.lock().unwrap().buffers as u64,
                ing.a.lock().unwrap().buffers as u64,
            );
            assert!(
                got.0 <= nv && got.1 <= na,
                "more frames than published: {got:?}"
            );
            got == (nv, na)
        },
    );
    assert_eq!(ing.v.lock().unwrap().backwards, 0);
    assert_eq!(ing.a.lock().unwrap().backwards, 0);
    assert!(
        ing.p.error_within(Duration::ZERO).is_none(),
        "the pipeline failed"
    );
}

/// Waits until the server closes `sock` (read returns 0 or an error).
fn assert_closed_by_server(sock: &mut TcpStream, what: &str) {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 65536];
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server kept the connection after {what}"
        );
    }
}

/// A client that completed connect (and publish, when `publish`), ready for raw bytes.
fn connected_publisher(port: u16, publish: bool) -> RawClient {
    let mut c = RawClient::connect(port, "live", ClientRole::Publish);
    if publish {
        c.session.publish("key").unwrap();
        let ev = c.run_until(DEADLINE, |e| {
            matches!(e, ClientEvent::PublishStarted { .. })
        });
        assert!(ev.is_some(), "publish failed: {:?}", c.events);
    } else {
        let ev = c.run_until(DEADLINE, |e| matches!(e, ClientEvent::Connected { .. }));
        assert!(ev.is_some(), "connect failed: {:?}", c.events);
    }
    c
}

#[test]
fn garbage_is_dropped_and_serving_goes_on() {
    let ing = ingest();
    let mut junk = vec![0u8; 20_000];
    let mut x = 0x1234_5678u32;
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    // Garbage after a plain-RTMP first byte goes through the handshake and the chunk reader;
    // other first bytes are turned away by the sniffer.
    for first in [0x03u8, 0x06, 0x16, b'G', 0xFF] {
        let mut s = TcpStream::connect(("127.0.0.1", ing.port)).unwrap();
        let _ = s.write_all(&[first]);
        let _ = s.write_all(&junk);
        assert_closed_by_server(&mut s, &format!("garbage after {first:#04x}"));
    }
    // Garbage after a valid handshake and connect.
    let mut c = connected_publisher(ing.port, false);
    let _ = c.sock.write_all(&junk);
    assert_closed_by_server(&mut c.sock, "garbage chunks");
    assert_still_serves(&ing);
}

#[test]
fn a_2_pow_31_chunk_size_and_a_16_mb_message_header_are_refused() {
    let ing = ingest();
    // Set Chunk Size 0x8000_0000 on csid 2: the top bit must be zero.
    let mut c = connected_publisher(ing.port, true);
    let set_chunk = [2u8, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x80, 0, 0, 0];
    c.sock.write_all(&set_chunk).unwrap();
    // If the server clamps instead of closing, a message after it must still be harmless.
    let _ = c.sock.write_all(&[0x03; 64]);
    assert_closed_by_server(&mut c.sock, "a 2^31 chunk size");

    // A video message header that declares 16 MB - 1.
    let mut c = connected_publisher(ing.port, true);
    let mut header = vec![4u8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
    header.extend_from_slice(&[0x17; 4000]);
    c.sock.write_all(&header).unwrap();
    assert_closed_by_server(&mut c.sock, "a 16 MB message header");
    assert_still_serves(&ing);
}

#[test]
fn a_publisher_that_vanishes_mid_message_does_not_wedge_the_route() {
    let ing = ingest();
    let mut c = connected_publisher(ing.port, true);
    // A whole metadata message (no frame for the appsinks), then half a video message.
    let meta = Bytes::from_static(b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09");
    c.session.send_media(MediaKind::Data, 0, meta).unwrap();
    c.flush();
    let half = [
        5u8, 0, 0, 0, 0, 0x01, 0x00, 0x00, 9, 1, 0, 0, 0, 0x17, 1, 0, 0, 0,
    ];
    c.sock.write_all(&half).unwrap();
    c.sock.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    assert_still_serves(&ing);
}

/// Raises this process's open-file limit to its hard limit.
fn raise_fd_limit(want: u64) {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = lim.rlim_max.min(want);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
        assert!(
            lim.rlim_cur >= want,
            "need {want} open files for this test, the hard limit is {}",
            lim.rlim_max
        );
    }
}

#[test]
fn ten_thousand_half_open_connections_do_not_lock_out_a_publisher() {
    const N: usize = 10_000;
    // Our 10,000 sockets plus the server's share (capped at 1024 unrouted) and the rest.
    raise_fd_limit(N as u64 + 2048);
    let ing = ingest();
    let mut half_open = Vec::with_capacity(N);
    for i in 0..N {
        let mut s = TcpStream::connect(("127.0.0.1", ing.port))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // Half of them start a handshake and stop; the others never say anything.
        if i % 2 == 0 {
            let _ = s.write_all(&[3, 0, 0, 0, 0]);
        }
        half_open.push(s);
    }
    assert_still_serves(&ing);
    drop(half_open);
}

#[test]
fn timeouts_close_silent_connections_and_idle_publishers() {
    // Each timeout on an element of its own: the idle publisher has to get through its
    // handshake and publish first, which a 1 s handshake-timeout would race.
    let silent_server = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key handshake-timeout=1 ! fakesink",
    );
    silent_server.play();
    let mut silent = TcpStream::connect(("127.0.0.1", silent_server.port("src"))).unwrap();
    assert_closed_by_server(&mut silent, "a silent connection (handshake-timeout)");

    let p = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key handshake-timeout=30 \
         idle-timeout=1 ! fakesink",
    );
    let (connected, disconnected) = count_clients(&p.by_name("src"));
    p.play();
    let port = p.port("src");
    let mut c = connected_publisher(port, true);
    wait_until("client-connected", DEADLINE, || {
        connected.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    // The publisher now sends nothing at all.
    assert_closed_by_server(&mut c.sock, "an idle publisher (idle-timeout)");
    wait_until("client-disconnected", DEADLINE, || {
        disconnected.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
}

#[test]
fn max_clients_turns_away_connections_past_the_limit() {
    let p = Pipeline::parse(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=s max-clients=2",
    );
    p.play();
    let port = p.port("sink");
    let mut players = Vec::new();
    for _ in 0..2 {
        let mut c = RawClient::connect(port, "live", ClientRole::Play);
        c.session.play("s", -2000.0).unwrap();
        let ev = c.run_until(DEADLINE, |e| matches!(e, ClientEvent::PlayStarted { .. }));
        assert!(ev.is_some(), "player refused: {:?}", c.events);
        players.push(c);
    }
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = third.write_all(&[3]);
    assert_closed_by_server(&mut third, "a connection past max-clients");
    // A slot frees when a player leaves.
    drop(players.pop());
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut c = RawClient::connect(port, "live", ClientRole::Play);
        c.session.play("s", -2000.0).unwrap();
        // None: closed at once while the old player's slot was still taken (or the deadline).
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if c.run_until(left, |e| matches!(e, ClientEvent::PlayStarted { .. }))
            .is_some()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a player left: {:?}",
            c.events
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// gst-launch-1.0 leaves SIGPIPE at its default action (terminate): players that reset their
/// connection while the server writes to them must cost their own connection only.
#[test]
fn players_that_reset_do_not_kill_a_gst_launch_server() {
    require("gst-launch-1.0", "gstreamer1.0-tools");
    let port = common::free_port();
    let mut server = ChildGuard::spawn(
        "gst-launch-1.0",
        Command::new("gst-launch-1.0")
            .args([
                "-q",
                "audiotestsrc",
                "is-live=true",
                "samplesperbuffer=256",
                "!",
            ])
            .args([
                "avenc_aac",
                "!",
                "flvmux",
                "streamable=true",
                "!",
                "rtmpserversink",
            ])
            .args(["address=127.0.0.1", &format!("port={port}"), "stream=s"])
            .env("GST_PLUGIN_PATH", plugin_dir())
            .stderr(Stdio::piped()),
    );
    common::wait_for_port(port, DEADLINE);
    let play = |c: &mut RawClient| {
        c.session.play("s", -2000.0).unwrap();
        let got = c.run_until(
            DEADLINE,
            |e| matches!(e, ClientEvent::Media(m) if m.type_id == 8 && m.payload.len() > 2),
        );
        assert!(got.is_some(), "no audio: {:?}", c.events);
    };
    for i in 0..20 {
        let mut c = RawClient::connect(port, "live", ClientRole::Play);
        play(&mut c);
        if i % 2 == 0 {
            // Reset the connection (linger 0) while the server keeps writing.
            socket2::SockRef::from(&c.sock)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        } else {
            // Read what is there and close: a FIN, and the server's next write draws a reset
            // (EPIPE on the one after, the write that raises SIGPIPE without MSG_NOSIGNAL).
            c.sock.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 65536];
            while matches!(c.sock.read(&mut buf), Ok(n) if n > 0) {}
        }
        drop(c);
        std::thread::sleep(Duration::from_millis(100));
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "gst-launch-1.0 ended after player {i} reset: {status} {}",
                server.stderr_text()
            );
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "gst-launch-1.0 ended: {}",
        server.stderr_text()
    );
    // And it still serves.
    let mut c = RawClient::connect(port, "live", ClientRole::Play);
    play(&mut c);
}
