//! The client elements over every transport, against peers nobody here wrote.
//!
//! - rtmps: stunnel (self-signed certificate) in front of nginx-rtmp, the usual production
//!   setup. rtmpclientsink publishes through it and ffmpeg reads from nginx; ffmpeg publishes
//!   to nginx and rtmpclientsrc plays through it. Certificate checks: on by default (the
//!   self-signed certificate is refused with an error naming the host), off with
//!   `tls-validation-flags=0`, and trusted with `tls-ca-file`.
//! - rtmpt, rtmpts, rtmpe, rtmpte: the sniffing relay of `common::relay` (the engine's server
//!   session behind one port). rtmpclientsink publishes over the scheme and rtmpdump plays it
//!   back over the same scheme; ffmpeg publishes over plain rtmp and rtmpclientsrc plays over
//!   the scheme.
//! - `playbin uri=rtmpte://…` picks rtmpclientsrc and decodes every video frame.
//!
//! Every cell moves real media and counts its frames with ffprobe (or at flvdemux's pads).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::relay::{Relay, rtmpdump_player, start_relay};
use common::stunnel::Stunnel;
use gst::prelude::*;
use gstrsrtmp::net::transport::tls::TlsServerConfig;
use gstrsrtmp::net::transport::tunnel::TunnelServerConfig;

const BOUND: Duration = Duration::from_secs(60);
/// The client elements' `timeout` where the opening must succeed: RTMPE's Diffie-Hellman, TLS
/// and the tunnel's polling run in this debug build, and a loaded machine must never hit it.
const TIMEOUT: &str = "timeout=30";

/// The relay with TLS (a fresh self-signed certificate) on its port too; returns the relay,
/// the certificate file and the directory holding it.
fn tls_relay(tag: &str) -> (Relay, std::path::PathBuf, common::TempDir) {
    let dir = common::TempDir::new(tag);
    let (cert, key) = common::self_signed_cert(dir.path(), "relay");
    let acceptor = TlsServerConfig {
        certificate_file: cert.clone(),
        key_file: key,
    }
    .acceptor()
    .unwrap();
    (
        start_relay(Some(acceptor), TunnelServerConfig::default()),
        cert,
        dir,
    )
}

fn wait_players(relay: &Relay, count: usize, what: &str) {
    let deadline = Instant::now() + BOUND;
    while relay.hub.lock().players_started < count {
        assert!(Instant::now() < deadline, "{what} never started playing");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// flvdemux ! fakesinks behind `src_desc`, counting (video, audio) buffers.
fn counting_player(src_desc: &str) -> (common::PipelineGuard, Arc<AtomicU64>, Arc<AtomicU64>) {
    let p = common::pipeline(&format!(
        "{src_desc} ! flvdemux name=d \
         d.video ! queue ! fakesink name=v sync=false  d.audio ! queue ! fakesink name=a sync=false"
    ));
    let v = common::count_buffers(&p, "v");
    let a = common::count_buffers(&p, "a");
    (p, v, a)
}

/// The media file demuxed and muxed again into rtmpclientsink configured by `sink_props`.
fn publisher(media: &Path, sink_props: &str) -> common::PipelineGuard {
    common::pipeline(&format!(
        "filesrc location={} ! flvdemux name=d \
         flvmux name=m streamable=true ! rtmpclientsink name=sink {TIMEOUT} {sink_props} \
         d.video ! queue ! m.video  d.audio ! queue ! m.audio",
        media.display()
    ))
}

/// rtmpclientsink publishes over `scheme` to the relay, rtmpdump plays it over the same
/// scheme: every frame arrives, and the relay saw the expected transport and handshake.
fn sink_to_relay_to_rtmpdump(scheme: &str, expect: (&str, u8)) {
    common::init_gst();
    common::require("rtmpdump", "rtmpdump");
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let (relay, cert, dir) = tls_relay(&format!("sink-{scheme}"));
    let url = format!("{scheme}://127.0.0.1:{}/live/s", relay.port);
    let out = dir.path().join("rtmpdump.flv");
    let mut player = rtmpdump_player(&url, &out);
    wait_players(&relay, 1, "rtmpdump");

    let publisher = publisher(
        &media,
        &format!("location={url} tls-ca-file={}", cert.display()),
    );
    common::run(&publisher, BOUND).expect_eos();
    let stats = publisher
        .by_name("sink")
        .unwrap()
        .property::<gst::Structure>("stats");
    let status = player.guard.wait_timeout(BOUND);
    let log = std::fs::read_to_string(&player.log).unwrap_or_default();
    assert!(status.success(), "rtmpdump over {scheme} failed: {log}");
    assert_eq!(
        common::ffprobe_counts(&out),
        expected,
        "{scheme}: frames (video, audio) rtmpdump got vs published; rtmpdump: {log}"
    );
    let (v, a) = expected;
    assert!(common::stat(&stats, "frames") >= v + a, "{stats}");
    assert!(common::stat(&stats, "out-bytes-total") > 100_000, "{stats}");
    assert_eq!(common::stat(&stats, "drops"), 0, "{stats}");
    let handshakes = relay.hub.lock().handshakes.clone();
    assert!(
        handshakes.contains(&expect),
        "{scheme}: the publisher's (transport, C0) {expect:?} not among {handshakes:?}"
    );
}

/// ffmpeg publishes over plain rtmp to the relay, rtmpclientsrc plays over `scheme`.
fn ffmpeg_to_relay_to_src(scheme: &str, expect: (&str, u8)) {
    common::init_gst();
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let (relay, cert, _dir) = tls_relay(&format!("src-{scheme}"));
    let url = format!("{scheme}://127.0.0.1:{}/live/s", relay.port);
    let (player, videos, audios) = counting_player(&format!(
        "rtmpclientsrc name=src location={url} tls-ca-file={} {TIMEOUT}",
        cert.display()
    ));
    player.set_state(gst::State::Playing).unwrap();
    wait_players(&relay, 1, "rtmpclientsrc");

    let mut ffmpeg =
        common::ffmpeg_publisher(&media, &format!("rtmp://127.0.0.1:{}/live/s", relay.port));
    let ffmpeg_log = common::drain_stderr(&mut ffmpeg);
    let status = ffmpeg.wait_timeout(BOUND);
    assert!(
        status.success(),
        "ffmpeg: {}",
        ffmpeg_log.join().unwrap_or_default()
    );
    // The relay ends the stream (StreamEOF) once the publisher leaves.
    common::wait_end(&player, BOUND).expect_eos();
    let stats = player
        .by_name("src")
        .unwrap()
        .property::<gst::Structure>("stats");
    player.set_state(gst::State::Null).unwrap();
    let counted = (videos.load(Ordering::SeqCst), audios.load(Ordering::SeqCst));
    assert_eq!(counted, expected, "{scheme}: frames (video, audio) played");
    let (v, a) = expected;
    assert!(common::stat(&stats, "frames") >= v + a, "{stats}");
    assert!(common::stat(&stats, "in-bytes-total") > 100_000, "{stats}");
    let handshakes = relay.hub.lock().handshakes.clone();
    assert!(
        handshakes.contains(&expect),
        "{scheme}: the player's (transport, C0) {expect:?} not among {handshakes:?}"
    );
}

#[test]
fn sink_publishes_over_rtmpt() {
    sink_to_relay_to_rtmpdump("rtmpt", ("tunnel", 3));
}

#[test]
fn sink_publishes_over_rtmpts() {
    sink_to_relay_to_rtmpdump("rtmpts", ("tunnel", 3));
}

#[test]
fn sink_publishes_over_rtmpe() {
    sink_to_relay_to_rtmpdump("rtmpe", ("tcp", 6));
}

#[test]
fn sink_publishes_over_rtmpte() {
    sink_to_relay_to_rtmpdump("rtmpte", ("tunnel", 6));
}

#[test]
fn src_plays_over_rtmpt() {
    ffmpeg_to_relay_to_src("rtmpt", ("tunnel", 3));
}

#[test]
fn src_plays_over_rtmpts() {
    ffmpeg_to_relay_to_src("rtmpts", ("tunnel", 3));
}

#[test]
fn src_plays_over_rtmpe() {
    ffmpeg_to_relay_to_src("rtmpe", ("tcp", 6));
}

#[test]
fn src_plays_over_rtmpte() {
    ffmpeg_to_relay_to_src("rtmpte", ("tunnel", 6));
}

#[test]
fn sink_publishes_rtmps_through_stunnel_to_nginx_without_verification() {
    common::init_gst();
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let nginx = common::Nginx::start_idle_streams();
    let stunnel = Stunnel::start(nginx.port);
    let dir = common::TempDir::new("sink-rtmps");
    let out = dir.path().join("ffmpeg.flv");
    let plain = format!("rtmp://127.0.0.1:{}/live/tls", nginx.port);

    // The publisher connects (TLS through stunnel) and publishes first, its data held in
    // front of the sink: the ffmpeg reader gives up 2 s after its play without data, so
    // nothing slow may come between its play and the first frame.
    let publisher = publisher(
        &media,
        &format!(
            "location=rtmps://127.0.0.1:{}/live/tls tls-validation-flags=0",
            stunnel.port
        ),
    );
    let sink = publisher.by_name("sink").unwrap();
    let sink_pad = sink.static_pad("sink").unwrap();
    let (eos_arrived, let_eos_go) = common::hold_eos(&sink_pad);
    let held = sink_pad
        .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
            gst::PadProbeReturn::Ok
        })
        .unwrap();
    publisher.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "publish: name='tls'", 1, Duration::from_secs(30));
    let mut ffmpeg = common::ffmpeg_reader(&plain, &out);
    let ffmpeg_log = common::drain_stderr(&mut ffmpeg);
    common::wait_for_nginx(&nginx, "play: name='tls'", 1, Duration::from_secs(30));
    sink_pad.remove_probe(held);
    eos_arrived
        .recv_timeout(BOUND)
        .expect("the publisher reaches the end of the file");
    // ffmpeg drops what it buffered when it sees the unpublish: keep the stream up until
    // it ended on its read timeout.
    ffmpeg.wait_timeout(BOUND);
    let_eos_go.send(()).unwrap();
    common::wait_end(&publisher, BOUND).expect_eos();
    let stats = sink.property::<gst::Structure>("stats");
    publisher.set_state(gst::State::Null).unwrap();
    assert_eq!(
        common::ffprobe_counts(&out),
        expected,
        "read by ffmpeg from nginx; ffmpeg: {}; stunnel: {}",
        ffmpeg_log.join().unwrap_or_default(),
        stunnel.log()
    );
    assert!(common::stat(&stats, "out-bytes-total") > 100_000, "{stats}");
    assert!(
        stunnel.log().contains("accepted connection"),
        "the publish went through stunnel: {}",
        stunnel.log()
    );
}

#[test]
fn src_plays_rtmps_through_stunnel_from_nginx_trusting_a_ca_file() {
    common::init_gst();
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let nginx = common::Nginx::start_idle_streams();
    let stunnel = Stunnel::start(nginx.port);
    // Verification stays on (the default flags); the CA file makes the certificate trusted,
    // and "localhost" must match its name.
    let (player, videos, audios) = counting_player(&format!(
        "rtmpclientsrc name=src location=rtmps://localhost:{}/live/tlsplay tls-ca-file={} {TIMEOUT}",
        stunnel.port,
        stunnel.cert.display()
    ));
    player.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='tlsplay'", 1, Duration::from_secs(30));
    let mut ffmpeg = common::ffmpeg_publisher(
        &media,
        &format!("rtmp://127.0.0.1:{}/live/tlsplay", nginx.port),
    );
    ffmpeg.wait_timeout(BOUND);
    common::wait_end(&player, BOUND).expect_eos();
    let stats = player
        .by_name("src")
        .unwrap()
        .property::<gst::Structure>("stats");
    player.set_state(gst::State::Null).unwrap();
    let counted = (videos.load(Ordering::SeqCst), audios.load(Ordering::SeqCst));
    assert_eq!(counted, expected, "frames (video, audio) played over rtmps");
    assert!(common::stat(&stats, "in-bytes-total") > 100_000, "{stats}");
}

#[test]
fn a_self_signed_certificate_is_refused_by_default_naming_the_host() {
    common::init_gst();
    let nginx = common::Nginx::start_idle_streams();
    let stunnel = Stunnel::start(nginx.port);
    for (element, domain) in [
        ("rtmpclientsrc", gst::ResourceError::OpenRead),
        ("rtmpclientsink", gst::ResourceError::OpenWrite),
    ] {
        let desc = match element {
            "rtmpclientsrc" => format!(
                "rtmpclientsrc location=rtmps://127.0.0.1:{}/live/x reconnect=false ! fakesink",
                stunnel.port
            ),
            _ => format!(
                "videotestsrc num-buffers=30 ! x264enc ! flvmux streamable=true ! \
                 rtmpclientsink location=rtmps://127.0.0.1:{}/live/x",
                stunnel.port
            ),
        };
        let p = common::pipeline(&desc);
        let (error, debug) = common::run(&p, BOUND).expect_error();
        let text = error.message().to_string();
        assert!(error.matches(domain), "{element}: {error} ({debug})");
        assert!(
            text.contains("127.0.0.1") && text.to_lowercase().contains("certificate"),
            "{element}: the error names the host and the certificate problem: {text}"
        );
    }
    // Nothing got through to nginx.
    assert!(!nginx.error_log().contains("connect: app='live'"));
}

#[test]
fn playbin_plays_an_rtmpte_uri_with_our_source() {
    common::init_gst();
    let media = common::test_media(3);
    let (v, _) = common::ffprobe_counts(&media);
    let relay = start_relay(None, TunnelServerConfig::default());
    let uri = format!("rtmpte://127.0.0.1:{}/live/pb", relay.port);
    let fakesink = |name: &str| {
        gst::ElementFactory::make("fakesink")
            .name(name)
            .property("sync", false)
            .build()
            .unwrap()
    };
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", &uri)
        .property("video-sink", fakesink("vsink"))
        .property("audio-sink", fakesink("asink"))
        .build()
        .unwrap();
    let pipeline = common::PipelineGuard(playbin.clone().downcast::<gst::Pipeline>().unwrap());
    let source_factory = Arc::new(Mutex::new(String::new()));
    let sf = source_factory.clone();
    playbin.connect("source-setup", false, move |args| {
        let source = args[1].get::<gst::Element>().unwrap();
        *sf.lock().unwrap() = source.factory().unwrap().name().to_string();
        if source.has_property("timeout") {
            source.set_property_from_str("timeout", "30");
        }
        None
    });
    let frames = Arc::new(AtomicU64::new(0));
    let counter = frames.clone();
    playbin
        .property::<gst::Element>("video-sink")
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_players(&relay, 1, "playbin");
    let mut ffmpeg =
        common::ffmpeg_publisher(&media, &format!("rtmp://127.0.0.1:{}/live/pb", relay.port));
    ffmpeg.wait_timeout(BOUND);
    common::wait_end(&pipeline, BOUND).expect_eos();
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(*source_factory.lock().unwrap(), "rtmpclientsrc");
    assert_eq!(frames.load(Ordering::SeqCst), v, "decoded video frames");
    let handshakes = relay.hub.lock().handshakes.clone();
    assert!(handshakes.contains(&("tunnel", 6)), "{handshakes:?}");
}

#[test]
fn sink_reconnects_over_rtmps_when_stunnel_restarts() {
    common::init_gst();
    let nginx = common::Nginx::start_idle_streams();
    let stunnel = Stunnel::start(nginx.port);
    let tls_port = stunnel.port;
    // Reconnect attempts every second for as long as it takes: the test holds stunnel down
    // until the player is in, however slow the machine, and the publisher comes back then.
    let publisher = common::pipeline(&format!(
        "videotestsrc is-live=true num-buffers=240 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=400 ! h264parse ! \
         flvmux streamable=true ! rtmpclientsink name=sink \
         location=rtmps://127.0.0.1:{tls_port}/live/re tls-validation-flags=0 {TIMEOUT} reconnect-delay=1000 \
         reconnect-max-delay=1000 reconnect-attempts=-1"
    ));
    let sink = publisher.by_name("sink").unwrap();
    publisher.set_state(gst::State::Playing).unwrap();
    let frames = || common::stat(&sink.property::<gst::Structure>("stats"), "frames");
    let deadline = Instant::now() + BOUND;
    while frames() < 60 {
        assert!(Instant::now() < deadline, "2 s of media never went out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let disconnects = nginx.error_log().matches("disconnect").count();
    drop(stunnel);
    // A player on nginx directly sees the resumed publish: it joins once nginx saw the first
    // publish end (else it would get that end), and before the publisher can come back.
    common::wait_for_nginx(&nginx, "disconnect", disconnects + 1, BOUND);
    let dir = common::TempDir::new("rtmps-reconnect");
    let out = dir.path().join("player.flv");
    let player = common::pipeline(&format!(
        "rtmp2src location=rtmp://127.0.0.1:{}/live/re ! filesink location={}",
        nginx.port,
        out.display()
    ));
    player.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='re'", 1, BOUND);
    let _stunnel = Stunnel::start_on(tls_port, nginx.port);
    common::wait_end(&publisher, BOUND).expect_eos();
    let stats = sink.property::<gst::Structure>("stats");
    publisher.set_state(gst::State::Null).unwrap();
    common::wait_end(&player, BOUND).expect_eos();
    player.set_state(gst::State::Null).unwrap();
    assert_eq!(common::stat(&stats, "reconnects"), 1, "{stats}");
    assert_eq!(
        nginx.error_log().matches("publish: name='re'").count(),
        2,
        "nginx saw the publish twice"
    );
    let (video, _) = common::ffprobe_counts(&out);
    assert!(
        video >= 30,
        "the player got {video} video frames after the reconnect"
    );
    assert_eq!(
        common::first_video_packet_flags(&out).chars().next(),
        Some('K'),
        "the resumed stream starts at a key frame"
    );
}
