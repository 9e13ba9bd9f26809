//! rtmpclientsrc against real peers: ffmpeg publishes through nginx-rtmp and the source feeds
//! flvdemux (every frame counted, stream header in caps checked) and playbin (uri=rtmp://…
//! picks our source and plays it); and `ffmpeg -listen 1` serving the stream directly.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

const BOUND: Duration = Duration::from_secs(60);

/// What the source pad carried at the start: caps streamheader size and the first buffers.
#[derive(Default, Debug)]
struct Start {
    streamheader: usize,
    first: Vec<(Vec<u8>, gst::BufferFlags)>,
}

fn watch_start(pad: &gst::Pad) -> Arc<Mutex<Start>> {
    let start = Arc::new(Mutex::new(Start::default()));
    let s = start.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut s = s.lock().unwrap();
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) if s.first.len() < 6 => {
                    let map = b.map_readable().unwrap();
                    s.first.push((map[..map.len().min(16)].to_vec(), b.flags()));
                }
                Some(gst::PadProbeData::Event(e)) => {
                    if let gst::EventView::Caps(c) = e.view()
                        && let Ok(h) = c
                            .caps()
                            .structure(0)
                            .unwrap()
                            .get::<gst::ArrayRef>("streamheader")
                    {
                        s.streamheader = h.len();
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    start
}

#[test]
fn ffmpeg_publish_through_nginx_to_flvdemux_counts_every_frame() {
    common::init_gst();
    let media = common::test_media(3);
    let (v, a) = common::ffprobe_counts(&media);
    let nginx = common::Nginx::start_idle_streams();
    let url = format!("rtmp://127.0.0.1:{}/live/play", nginx.port);
    let player = common::pipeline(&format!(
        "rtmpclientsrc name=src location={url} ! flvdemux name=d \
         d.video ! queue ! fakesink name=v sync=false  d.audio ! queue ! fakesink name=a sync=false"
    ));
    let videos = common::count_buffers(&player, "v");
    let audios = common::count_buffers(&player, "a");
    let src = player.by_name("src").unwrap();
    let start = watch_start(&src.static_pad("src").unwrap());
    player.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='play'", 1, Duration::from_secs(30));

    let mut ffmpeg = common::ffmpeg_publisher(&media, &url);
    ffmpeg.wait_timeout(BOUND);
    // nginx ends the stream for its players when the publisher leaves: StreamEOF, then EOS.
    common::wait_end(&player, BOUND).expect_eos();
    let stats = src.property::<gst::Structure>("stats");
    player.set_state(gst::State::Null).unwrap();

    println!("stats: {stats}");
    let counted = (
        videos.load(std::sync::atomic::Ordering::SeqCst),
        audios.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert_eq!(counted, (v, a));
    let start = start.lock().unwrap();
    println!("{start:?}");
    // FLV header, metadata, AVC and AAC sequence headers: in caps and as the first buffers.
    assert_eq!(start.streamheader, 4);
    assert_eq!(&start.first[0].0[..3], b"FLV");
    assert_eq!(start.first[0].0[4], 0x05, "audio and video announced");
    for (bytes, flags) in &start.first[..4] {
        assert!(flags.contains(gst::BufferFlags::HEADER), "{bytes:?}");
    }
    assert_eq!(start.first[1].0[0], 18, "metadata tag second");
    assert!(!start.first[4].1.contains(gst::BufferFlags::HEADER));
    assert!(common::stat(&stats, "frames") >= v + a);
    assert!(common::stat(&stats, "in-bytes-total") > 100_000);
}

#[test]
fn playbin_plays_an_rtmp_uri_with_our_source() {
    common::init_gst();
    let media = common::test_media(3);
    let (v, _) = common::ffprobe_counts(&media);
    let nginx = common::Nginx::start_idle_streams();
    let url = format!("rtmp://127.0.0.1:{}/live/pb", nginx.port);
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", &url)
        .property(
            "video-sink",
            gst::ElementFactory::make("fakesink")
                .name("vsink")
                .build()
                .unwrap(),
        )
        .property(
            "audio-sink",
            gst::ElementFactory::make("fakesink")
                .name("asink")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let pipeline = common::PipelineGuard(playbin.clone().downcast::<gst::Pipeline>().unwrap());
    let source_factory = Arc::new(Mutex::new(String::new()));
    let sf = source_factory.clone();
    playbin.connect("source-setup", false, move |args| {
        let source = args[1].get::<gst::Element>().unwrap();
        *sf.lock().unwrap() = source.factory().unwrap().name().to_string();
        None
    });
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let audio = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for (sink, counter) in [
        ("video-sink", frames.clone()),
        ("audio-sink", audio.clone()),
    ] {
        let sink = playbin.property::<gst::Element>(sink);
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='pb'", 1, Duration::from_secs(30));
    let mut ffmpeg = common::ffmpeg_publisher(&media, &url);
    ffmpeg.wait_timeout(BOUND);
    common::wait_end(&pipeline, BOUND).expect_eos();
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(*source_factory.lock().unwrap(), "rtmpclientsrc");
    assert_eq!(
        frames.load(std::sync::atomic::Ordering::SeqCst),
        v,
        "decoded video frames"
    );
    assert!(
        audio.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "decoded audio"
    );
}

#[test]
fn ffmpeg_listen_serves_the_source_directly() {
    common::init_gst();
    let media = common::test_media(3);
    let (v, a) = common::ffprobe_counts(&media);
    let port = common::free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/direct");
    let mut ffmpeg = common::ChildGuard::spawn(
        "ffmpeg -listen 1 (serving)",
        std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "warning", "-re", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv", "-listen", "1", &url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let ffmpeg_log = common::drain_stderr(&mut ffmpeg);
    common::wait_for_listen(port, Duration::from_secs(30));
    // ffmpeg closes the connection at the end without StreamEOF: with no reconnect (and
    // no-eof-is-error off) that is the end of the stream.
    let player = common::pipeline(&format!(
        "rtmpclientsrc location={url} reconnect=false ! flvdemux name=d \
         d.video ! queue ! fakesink name=v sync=false  d.audio ! queue ! fakesink name=a sync=false"
    ));
    let videos = common::count_buffers(&player, "v");
    let audios = common::count_buffers(&player, "a");
    common::run(&player, BOUND).expect_eos();
    ffmpeg.wait_timeout(BOUND);
    println!("ffmpeg: {}", ffmpeg_log.join().unwrap());
    let counted = (
        videos.load(std::sync::atomic::Ordering::SeqCst),
        audios.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert_eq!(counted, (v, a));
}
