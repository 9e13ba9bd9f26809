//! rtmpserversrc against real publishers (ffmpeg, GStreamer's rtmp2sink, librtmp's rtmpsink):
//! every frame arrives behind flvdemux with monotonic timestamps. Also the refusals: a second
//! publisher on a busy route, an unknown stream key, an unknown application, `authorize`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::server_peers::*;
use common::{ChildGuard, ffprobe_counts, require, test_media};
use gst::prelude::*;
use gstrsrtmp::rtmp::session::{ClientEvent, ClientRole, MediaKind};

const DEADLINE: Duration = Duration::from_secs(60);

/// rtmpserversrc ! flvdemux with counting appsinks on both streams.
fn ingest_pipeline(
    extra: &str,
) -> (
    Pipeline,
    Arc<std::sync::Mutex<Seen>>,
    Arc<std::sync::Mutex<Seen>>,
) {
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key {extra} ! flvdemux name=d \
         d.video ! queue ! appsink name=v sync=false \
         d.audio ! queue ! appsink name=a sync=false"
    ));
    let v = count_appsink(&p, "v");
    let a = count_appsink(&p, "a");
    p.play();
    (p, v, a)
}

fn check_all_frames(v: &Seen, a: &Seen, media: &std::path::Path, who: &str) {
    let (nv, na) = ffprobe_counts(media);
    assert_eq!(v.buffers as u64, nv, "{who}: video frames");
    assert_eq!(a.buffers as u64, na, "{who}: audio frames");
    assert_eq!(v.backwards, 0, "{who}: video timestamps went back");
    assert_eq!(a.backwards, 0, "{who}: audio timestamps went back");
}

#[test]
fn ffmpeg_publishes_every_frame() {
    require("ffmpeg", "ffmpeg");
    let media = test_media(4);
    let (p, v, a) = ingest_pipeline("eos-on-unpublish=true");
    let port = p.port("src");
    let mut ff = ChildGuard::spawn(
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/key"))
            .stderr(Stdio::piped()),
    );
    let status = ff.wait_timeout(DEADLINE);
    assert!(status.success(), "ffmpeg failed: {}", ff.stderr_text());
    p.wait_eos(DEADLINE);
    check_all_frames(&v.lock().unwrap(), &a.lock().unwrap(), &media, "ffmpeg");
}

/// `filesrc ! REMUX <sink>`: demux and mux again, as a live encoder pipeline would feed a sink.
const REMUX: [&str; 17] = [
    "!",
    "flvdemux",
    "name=d",
    "d.video",
    "!",
    "queue",
    "!",
    "m.video",
    "d.audio",
    "!",
    "queue",
    "!",
    "m.audio",
    "flvmux",
    "streamable=true",
    "name=m",
    "!",
];

fn gst_publisher(media: &std::path::Path, sink: &str) -> ChildGuard {
    require("gst-launch-1.0", "gstreamer1.0-tools");
    ChildGuard::spawn(
        "gst-launch-1.0",
        Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", media.display()))
            .args(REMUX)
            .args(sink.split(' '))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

#[test]
fn rtmp2sink_publishes_every_frame() {
    let media = test_media(4);
    let (p, v, a) = ingest_pipeline("eos-on-unpublish=true");
    let port = p.port("src");
    let mut pub_ = gst_publisher(
        &media,
        &format!("rtmp2sink location=rtmp://127.0.0.1:{port}/live/key"),
    );
    let status = pub_.wait_timeout(DEADLINE);
    assert!(status.success(), "rtmp2sink failed: {}", pub_.stderr_text());
    p.wait_eos(DEADLINE);
    check_all_frames(&v.lock().unwrap(), &a.lock().unwrap(), &media, "rtmp2sink");
}

fn librtmp_publishes_every_frame(scheme: &str) {
    let media = test_media(4);
    let (p, v, a) = ingest_pipeline("eos-on-unpublish=true");
    let port = p.port("src");
    // librtmp takes its options after the URL, separated by spaces: one argument.
    let mut child = ChildGuard::spawn(
        "gst-launch-1.0",
        Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("filesrc")
            .arg(format!("location={}", media.display()))
            .args(REMUX)
            .arg("rtmpsink")
            .arg(format!(
                "location={scheme}://127.0.0.1:{port}/live/key live=1"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = child.wait_timeout(DEADLINE);
    assert!(
        status.success(),
        "rtmpsink ({scheme}) failed: {}",
        child.stderr_text()
    );
    p.wait_eos(DEADLINE);
    check_all_frames(&v.lock().unwrap(), &a.lock().unwrap(), &media, scheme);
}

#[test]
fn librtmp_rtmpsink_publishes_every_frame() {
    librtmp_publishes_every_frame("rtmp");
}

/// RTMPE (the encrypted handshake and RC4) on the same port: the first byte tells.
#[test]
fn librtmp_rtmpsink_publishes_every_frame_over_rtmpe() {
    librtmp_publishes_every_frame("rtmpe");
}

#[test]
fn port_zero_is_read_back_and_released_on_stop() {
    let p = Pipeline::parse("rtmpserversrc name=src address=127.0.0.1 port=0 ! fakesink");
    p.play();
    let port = p.port("src");
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the listener accepts");
    // Readable while the source waits for a publisher.
    let stats: gst::Structure = p.by_name("src").property("stats");
    assert_eq!(stats.get::<u32>("clients").unwrap(), 0);
    drop(p);
    // Stopped: the socket is closed (the port can be bound again).
    // The listening socket closes on a runtime thread a moment after the element stopped.
    wait_until("the port to be free", DEADLINE, || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    });
}

/// A publisher that connects, publishes `name` and reports what happened.
fn try_publish(port: u16, app: &str, name: &str) -> (RawClient, Option<ClientEvent>) {
    let mut c = RawClient::connect(port, app, ClientRole::Publish);
    c.session.publish(name).unwrap();
    let ev = c.run_until(DEADLINE, |e| {
        matches!(
            e,
            ClientEvent::PublishStarted { .. }
                | ClientEvent::StreamRejected(_)
                | ClientEvent::ConnectRejected { .. }
        )
    });
    (c, ev)
}

fn rejected_code(ev: &Option<ClientEvent>) -> String {
    match ev {
        Some(ClientEvent::StreamRejected(s)) => s.code.clone(),
        Some(ClientEvent::ConnectRejected { code, .. }) => code.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refusals_name_the_reason() {
    let p =
        Pipeline::parse("rtmpserversrc name=src address=127.0.0.1 port=0 stream=key ! fakesink");
    let (connected, _) = count_clients(&p.by_name("src"));
    p.play();
    let port = p.port("src");

    let (_first, ev) = try_publish(port, "live", "key");
    assert!(
        matches!(ev, Some(ClientEvent::PublishStarted { .. })),
        "first publisher: {ev:?}"
    );
    wait_until("client-connected", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });

    let (_second, ev) = try_publish(port, "live", "key");
    assert_eq!(
        rejected_code(&ev),
        "NetStream.Publish.BadName",
        "busy route"
    );

    let (_wrong, ev) = try_publish(port, "live", "kez");
    assert_eq!(rejected_code(&ev), "NetStream.Publish.BadName", "wrong key");

    let (_app, ev) = try_publish(port, "nope", "key");
    assert_eq!(
        rejected_code(&ev),
        "NetConnection.Connect.Rejected",
        "unknown app"
    );

    let mut player = RawClient::connect(port, "live", ClientRole::Play);
    player.session.play("key", -2000.0).unwrap();
    let ev = player.run_until(DEADLINE, |e| {
        matches!(
            e,
            ClientEvent::PlayStarted { .. } | ClientEvent::StreamRejected(_)
        )
    });
    assert_eq!(
        rejected_code(&ev),
        "NetStream.Play.StreamNotFound",
        "play on an ingest route"
    );
    assert_eq!(connected.load(Ordering::SeqCst), 1);
}

#[test]
fn authorize_signal_decides_with_the_query() {
    let p = Pipeline::parse("rtmpserversrc name=src address=127.0.0.1 port=0 ! fakesink");
    let asked = Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    p.by_name("src").connect("authorize", false, move |args| {
        a.fetch_add(1, Ordering::SeqCst);
        let app: String = args[2].get().unwrap();
        let stream: String = args[3].get().unwrap();
        let query: String = args[4].get().unwrap();
        let publish: bool = args[5].get().unwrap();
        Some((app == "live" && stream == "any" && query == "token=good" && publish).to_value())
    });
    p.play();
    let port = p.port("src");
    let (_bad, ev) = try_publish(port, "live", "any?token=bad");
    assert_eq!(rejected_code(&ev), "NetStream.Publish.BadName");
    let (_good, ev) = try_publish(port, "live", "any?token=good");
    assert!(
        matches!(ev, Some(ClientEvent::PublishStarted { .. })),
        "{ev:?}"
    );
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

#[test]
fn waits_for_the_next_publisher_and_marks_a_discontinuity() {
    require("ffmpeg", "ffmpeg");
    let media = test_media(4);
    let (p, v, a) = ingest_pipeline("");
    let port = p.port("src");
    for round in 1..=2 {
        let mut ff = ChildGuard::spawn(
            "ffmpeg",
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-i"])
                .arg(&media)
                .args(["-c", "copy", "-f", "flv"])
                .arg(format!("rtmp://127.0.0.1:{port}/live/key"))
                .stderr(Stdio::piped()),
        );
        let status = ff.wait_timeout(DEADLINE);
        assert!(
            status.success(),
            "ffmpeg round {round}: {}",
            ff.stderr_text()
        );
        let (nv, na) = ffprobe_counts(&media);
        let want = (nv * round, na * round);
        wait_until("every frame of both publishers", DEADLINE, || {
            let got = (
                v.lock().unwrap().buffers as u64,
                a.lock().unwrap().buffers as u64,
            );
            assert!(
                got.0 <= want.0 && got.1 <= want.1,
                "too many frames: {got:?} > {want:?}"
            );
            got == want
        });
    }
    // The two publishers form one continuous timeline.
    assert_eq!(v.lock().unwrap().backwards, 0);
    assert_eq!(a.lock().unwrap().backwards, 0);
    assert!(p.error_within(Duration::ZERO).is_none());
}

#[test]
fn pausing_keeps_the_publisher_and_loses_no_frame() {
    let p = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=key ! flvdemux name=d \
         d.video ! queue ! appsink name=v sync=false",
    );
    let v = count_appsink(&p, "v");
    let (_, disconnected) = count_clients(&p.by_name("src"));
    p.play();
    let port = p.port("src");
    let (mut c, ev) = try_publish(port, "live", "key");
    assert!(
        matches!(ev, Some(ClientEvent::PublishStarted { .. })),
        "{ev:?}"
    );
    let send = |c: &mut RawClient, ts: u32, payload: &'static [u8]| {
        c.session
            .send_media(MediaKind::Video, ts, Bytes::from_static(payload))
            .unwrap();
        c.flush();
    };
    send(
        &mut c,
        0,
        &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0],
    );
    let mut ts = 0;
    let mut frames = |c: &mut RawClient, n: u32| {
        for i in 0..n {
            ts += 33;
            let key: &'static [u8] = if i == 0 {
                &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]
            } else {
                &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]
            };
            send(c, ts, key);
        }
    };
    frames(&mut c, 10);
    wait_until("10 frames", DEADLINE, || v.lock().unwrap().buffers == 10);

    // PLAYING -> PAUSED unlocks the source; the publisher must not notice.
    p.0.set_state(gst::State::Paused).unwrap();
    frames(&mut c, 10);
    let ev = c.run_until(Duration::from_millis(500), |e| {
        matches!(e, ClientEvent::Closed(_))
    });
    assert!(ev.is_none(), "the publisher was dropped on pause: {ev:?}");
    p.play();
    frames(&mut c, 10);
    wait_until("30 frames", DEADLINE, || v.lock().unwrap().buffers == 30);
    assert_eq!(disconnected.load(Ordering::SeqCst), 0);
    assert_eq!(v.lock().unwrap().backwards, 0);
}
