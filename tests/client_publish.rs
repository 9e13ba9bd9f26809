//! rtmpclientsink against real peers: behind `flvmux streamable=true` through nginx-rtmp to
//! ffmpeg and to GStreamer's own rtmp2src, and directly behind `filesrc` (FLV split at odd
//! places) into `ffmpeg -listen 1`. Every video and audio frame of the input must arrive.

mod common;

use std::time::Duration;

use gst::prelude::*;

const BOUND: Duration = Duration::from_secs(60);

#[test]
fn flvmux_stream_through_nginx_reaches_ffmpeg_and_rtmp2src() {
    common::init_gst();
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let nginx = common::Nginx::start_idle_streams();
    let url = format!("rtmp://127.0.0.1:{}/live/pub", nginx.port);
    let dir = common::TempDir::new("publish");
    let by_ffmpeg = dir.path().join("ffmpeg.flv");
    let by_rtmp2 = dir.path().join("rtmp2.flv");

    // The publisher connects and publishes first, its data held in front of the sink: the
    // ffmpeg reader gives up 2 s after its play without data, so nothing slow (starting a
    // pipeline, connecting, the handshake) may come between its play and the first frame.
    let publisher = common::pipeline(&format!(
        "filesrc location={} ! flvdemux name=d \
         flvmux name=m streamable=true ! rtmpclientsink name=sink location={url} \
         d.video ! queue ! m.video  d.audio ! queue ! m.audio",
        media.display()
    ));
    let sink = publisher.by_name("sink").unwrap();
    let sink_pad = sink.static_pad("sink").unwrap();
    let (eos_arrived, let_eos_go) = common::hold_eos(&sink_pad);
    let held = sink_pad
        .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
            gst::PadProbeReturn::Ok
        })
        .unwrap();
    publisher.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "publish: name='pub'", 1, Duration::from_secs(30));

    // Both players are in before the first frame: rtmp2src, then the ffmpeg reader.
    let rtmp2 = common::pipeline(&format!(
        "rtmp2src location={url} ! filesink location={}",
        by_rtmp2.display()
    ));
    rtmp2.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='pub'", 1, Duration::from_secs(30));
    let mut ffmpeg = common::ffmpeg_reader(&url, &by_ffmpeg);
    let ffmpeg_log = common::drain_stderr(&mut ffmpeg);
    common::wait_for_nginx(&nginx, "play: name='pub'", 2, Duration::from_secs(30));
    sink_pad.remove_probe(held);
    eos_arrived
        .recv_timeout(BOUND)
        .expect("the publisher reaches the end of the file");
    // ffmpeg's RTMP reader drops what it has buffered when it sees the stream unpublished,
    // so the stream stays up until ffmpeg finished on its read timeout.
    ffmpeg.wait_timeout(BOUND);
    let_eos_go.send(()).unwrap();
    common::wait_end(&publisher, BOUND).expect_eos();
    let stats = sink.property::<gst::Structure>("stats");
    publisher.set_state(gst::State::Null).unwrap();
    // rtmp2src ends with the StreamEOF nginx sends when we unpublish.
    common::wait_end(&rtmp2, BOUND).expect_eos();
    rtmp2.set_state(gst::State::Null).unwrap();

    println!("stats: {stats}");
    println!("ffmpeg: {}", ffmpeg_log.join().unwrap());
    assert_eq!(
        common::ffprobe_counts(&by_ffmpeg),
        expected,
        "read by ffmpeg"
    );
    assert_eq!(
        common::ffprobe_counts(&by_rtmp2),
        expected,
        "read by rtmp2src"
    );
    let (v, a) = expected;
    // Every tag went out: frames plus metadata and sequence headers (flvmux repeats some).
    assert!(common::stat(&stats, "frames") >= v + a + 3, "{stats}");
    assert_eq!(common::stat(&stats, "drops"), 0);
    assert_eq!(common::stat(&stats, "reconnects"), 0);
    assert_eq!(common::stat(&stats, "out-chunk-size"), 4096);
    assert!(common::stat(&stats, "out-bytes-total") > 100_000);
    // The stop commands reached nginx.
    let log = nginx.error_log();
    assert!(log.contains("deleteStream"), "{log}");
}

#[test]
fn raw_flv_from_filesrc_split_anywhere_reaches_ffmpeg_listen() {
    common::init_gst();
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let port = common::free_port();
    let dir = common::TempDir::new("listen");
    let out = dir.path().join("received.flv");
    let mut ffmpeg = common::ChildGuard::spawn(
        "ffmpeg -listen 1",
        std::process::Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "warning",
                "-y",
                "-listen",
                "1",
                "-i",
            ])
            .arg(format!("rtmp://127.0.0.1:{port}/live/raw"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let ffmpeg_log = common::drain_stderr(&mut ffmpeg);
    common::wait_for_listen(port, Duration::from_secs(30));

    // 1000-byte reads split tags (and the file header) at arbitrary places.
    let publisher = common::pipeline(&format!(
        "filesrc location={} blocksize=1000 ! \
         rtmpclientsink name=sink location=rtmp://127.0.0.1:{port}/live/raw",
        media.display()
    ));
    common::run(&publisher, BOUND).expect_eos();
    ffmpeg.wait_timeout(BOUND);
    println!("ffmpeg: {}", ffmpeg_log.join().unwrap());
    assert_eq!(common::ffprobe_counts(&out), expected);
}
