//! rsflvmux over RTMP: encoders → rsflvmux → rtmpclientsink, into FFmpeg 9 `-listen 1`
//! (HEVC + Opus) and into our own rtmpserversrc (H.264 + two AAC tracks). FFmpeg 9 must read
//! every frame of every track, with the right codec: the header set in the caps, the legacy
//! tags of track 0 and the OneTrack messages of track 1 all survive the publish path.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst::prelude::*;

use common::server_peers::Pipeline;
use common::{ChildGuard, FrameCrc, TempDir, ffmpeg9};

/// Ends a hung test; never a timing assertion.
const DEADLINE: Duration = Duration::from_secs(60);

const VIDEO: &str = "videotestsrc num-buffers=30 ! \
                     video/x-raw,format=I420,width=320,height=240,framerate=30/1";
const AUDIO: &str = "audiotestsrc num-buffers=40 samplesperbuffer=1024 ! audio/x-raw,rate=48000";

/// Counts the frames a mux pad takes in (not the header packets Opus and FLAC encoders
/// push, which the caps carry).
fn counter(pad: &gst::Pad) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let header_codec = pad.current_caps().is_some_and(|c| {
            c.structure(0)
                .is_some_and(|s| s.name() == "audio/x-flac" || s.name() == "audio/x-opus")
        });
        let header = info
            .buffer()
            .is_some_and(|b| b.flags().contains(gst::BufferFlags::HEADER));
        if !(header_codec && header) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
    n
}

/// Builds `rsflvmux name=mux ! {sink}` fed by `inputs` (pad, chain) and counts each pad.
fn publisher(
    sink: &str,
    inputs: &[(&'static str, String)],
) -> (Pipeline, Vec<(&'static str, Arc<AtomicU64>)>) {
    let mut desc = format!("rsflvmux name=mux ! {sink}");
    for (pad, chain) in inputs {
        desc.push_str(&format!(" {chain} ! mux.{pad}"));
    }
    let p = Pipeline::parse(&desc);
    let mux = p.by_name("mux");
    let counters = inputs
        .iter()
        .map(|(pad, _)| (*pad, counter(&mux.static_pad(pad).expect("mux pad"))))
        .collect();
    (p, counters)
}

/// The codec of every stream in framecrc text (`#codec_id N: name`).
fn codecs(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#codec_id "))
        .filter_map(|r| r.split_once(':'))
        .map(|(i, c)| (i.trim().parse().unwrap(), c.trim().to_string()))
        .collect()
}

/// (codec, packets) per stream of `text` equals (codec, frames) per pad.
fn check(text: &str, want: &[(&str, u64)]) {
    let crc = FrameCrc::parse(text);
    let codecs = codecs(text);
    let mut got: Vec<(String, u64)> = codecs
        .iter()
        .map(|(i, c)| (c.clone(), crc.packets.get(i).map_or(0, Vec::len) as u64))
        .collect();
    let mut want: Vec<(String, u64)> = want.iter().map(|(c, n)| (c.to_string(), *n)).collect();
    got.sort();
    want.sort();
    eprintln!("FFmpeg 9 read (codec, packets): {got:?}");
    assert!(
        want.iter().all(|(_, n)| *n > 0),
        "an encoder gave nothing: {want:?}"
    );
    assert_eq!(
        got, want,
        "(codec, packets) per FFmpeg stream vs (codec, frames) per pad"
    );
}

fn read_crc(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn hevc_and_opus_reach_ffmpeg_listen() {
    let port = common::free_port();
    let dir = TempDir::new("flvmux-listen");
    let out = dir.path().join("received.crc");
    let mut ffmpeg = common::ffmpeg9_listen(port, &out, true);
    let (p, counters) = publisher(
        &format!("rtmpclientsink location=rtmp://127.0.0.1:{port}/live/s"),
        &[
            (
                "video",
                format!("{VIDEO} ! x265enc speed-preset=ultrafast key-int-max=30 ! h265parse"),
            ),
            (
                "audio",
                format!("{AUDIO} ! audioconvert ! opusenc ! opusparse"),
            ),
        ],
    );
    p.play();
    p.wait_eos(DEADLINE);
    let status = ffmpeg.wait_timeout(DEADLINE);
    assert!(status.success(), "FFmpeg 9: {}", ffmpeg.stderr_text());
    let n = |i: usize| counters[i].1.load(Ordering::SeqCst);
    check(&read_crc(&out), &[("hevc", n(0)), ("opus", n(1))]);
}

#[test]
fn h264_and_two_aac_tracks_through_rtmpserversrc() {
    let dir = TempDir::new("flvmux-server");
    let file = dir.path().join("received.flv");
    let server = Pipeline::parse(&format!(
        "rtmpserversrc name=srv address=127.0.0.1 port=0 stream=in eos-on-unpublish=true ! \
         filesink location={}",
        file.display()
    ));
    server.play();
    let port = server.port("srv");
    let aac = || format!("{AUDIO} ! audioconvert ! voaacenc ! aacparse");
    let (p, counters) = publisher(
        &format!("rtmpclientsink location=rtmp://127.0.0.1:{port}/live/in"),
        &[
            (
                "video",
                format!(
                    "{VIDEO} ! x264enc speed-preset=ultrafast bframes=2 key-int-max=30 ! h264parse"
                ),
            ),
            ("audio", aac()),
            ("audio_1", aac()),
        ],
    );
    p.play();
    p.wait_eos(DEADLINE);
    server.wait_eos(DEADLINE);
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(&file)
        .args(["-map", "0", "-c", "copy", "-f", "framecrc", "-"])
        .output()
        .expect("run FFmpeg 9");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = |i: usize| counters[i].1.load(Ordering::SeqCst);
    check(
        &String::from_utf8_lossy(&out.stdout),
        &[("h264", n(0)), ("aac", n(1)), ("aac", n(2))],
    );
}

#[test]
fn a_resolution_change_reaches_ffmpeg_listen() {
    // The new SequenceStart goes out as a header buffer and in new caps; rtmpclientsink sends
    // the new header set and FFmpeg 9 decodes both halves.
    let port = common::free_port();
    let dir = TempDir::new("flvmux-listen-resize");
    let out = dir.path().join("decoded.crc");
    let mut ffmpeg = common::ffmpeg9_listen(port, &out, false);
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=time ! videoconvert ! \
         x264enc speed-preset=ultrafast tune=zerolatency ! h264parse ! mux.video \
         rsflvmux name=mux ! rtmpclientsink location=rtmp://127.0.0.1:{port}/live/s"
    ));
    let src = p.by_name("src").downcast::<gst_app::AppSrc>().unwrap();
    p.play();
    let mut n = 0u64;
    for (w, h) in [(320usize, 240usize), (160, 120)] {
        src.set_caps(Some(
            &format!("video/x-raw,format=I420,width={w},height={h},framerate=30/1")
                .parse::<gst::Caps>()
                .unwrap(),
        ));
        for _ in 0..10 {
            let mut b = gst::Buffer::from_slice(vec![(n * 20) as u8; w * h * 3 / 2]);
            let m = b.get_mut().unwrap();
            m.set_pts(gst::ClockTime::from_nseconds(n * 1_000_000_000 / 30));
            m.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / 30));
            src.push_buffer(b).unwrap();
            n += 1;
        }
    }
    src.end_of_stream().unwrap();
    p.wait_eos(DEADLINE);
    let status = ffmpeg.wait_timeout(DEADLINE);
    assert!(status.success(), "FFmpeg 9: {}", ffmpeg.stderr_text());
    let crc = FrameCrc::parse(&read_crc(&out));
    // (The ffmpeg CLI scales every frame to the first one's size.)
    assert_eq!(crc.counts(), vec![(0, 20)], "decoded frames of both sizes");
}

#[test]
fn vp9_and_two_audio_tracks_through_rtmpserversink() {
    // The sink is ready (PAUSED) before any media: the FFmpeg 9 player that joins then gets
    // the header set and every frame.
    let dir = TempDir::new("flvmux-serversink");
    let out = dir.path().join("played.crc");
    let port = common::free_port();
    let (p, counters) = publisher(
        &format!("rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"),
        &[
            (
                "video",
                format!("{VIDEO} ! vp9enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! vp9parse"),
            ),
            (
                "audio",
                format!("{AUDIO} ! audioconvert ! opusenc ! opusparse"),
            ),
            (
                "audio_1",
                format!("{AUDIO} ! audioconvert ! avenc_eac3 ! ac3parse"),
            ),
        ],
    );
    let (connected, _) = common::server_peers::count_clients(&p.by_name("sink"));
    let _ = p.0.set_state(gst::State::Paused);
    common::wait_for_listen(port, DEADLINE);
    let mut player = ChildGuard::spawn(
        "FFmpeg 9 player",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/out"))
            .args(["-map", "0", "-c", "copy", "-f", "framecrc"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    common::server_peers::wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    p.play();
    p.wait_eos(DEADLINE);
    let status = player.wait_timeout(DEADLINE);
    assert!(status.success(), "FFmpeg 9: {}", player.stderr_text());
    let n = |i: usize| counters[i].1.load(Ordering::SeqCst);
    check(
        &read_crc(&out),
        &[("vp9", n(0)), ("opus", n(1)), ("eac3", n(2))],
    );
}
