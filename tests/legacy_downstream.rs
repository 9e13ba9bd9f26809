//! A modern publisher never breaks a legacy pipeline: FFmpeg 9 publishes Enhanced RTMP
//! (HEVC + AAC; H.264 + two AAC tracks, the second in a multitrack packet; HEVC alone) into
//! `rtmpserversrc ! flvdemux` (GStreamer 1.22's, which fails on the first Enhanced RTMP tag)
//! and, through our relay, into `rtmpclientsrc ! flvdemux`. With `enhanced=auto` the pipeline
//! runs to EOS and gets every legacy frame byte-exact (size and Adler-32 per packet, against
//! FFmpeg's own framecrc of the file), with one warning per left-out track; `rsflvdemux`
//! gets every track; `enhanced=all` passes the Enhanced RTMP tags on, `enhanced=legacy` never
//! does. When nothing legacy is left, the element error says so, the publisher is told (FFmpeg
//! reports the server's reason instead of a broken pipe) and the same pipeline, restarted,
//! takes the next publisher.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use common::emedia::{h264_aac, h264_two_aac, hevc_aac, hevc_only};
use common::server_peers::*;
use common::{ChildGuard, FrameCrc, ffmpeg9, ffmpeg9_framecrc};

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(120);

/// FFmpeg 9 publishing `media` at its real-time pace.
fn publish(media: &Path, url: &str) -> ChildGuard {
    ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(media)
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

type Pads = PadFrames;

/// What the bus said until EOS or an error.
#[derive(Debug, Default)]
struct BusLog {
    /// Warnings from element `from`: their messages.
    warnings: Vec<String>,
    /// The error, if the pipeline ended with one.
    error: Option<String>,
}

/// Pops bus messages until EOS or an error; collects the warnings of the element `from`.
fn run_until_end(p: &Pipeline, from: &str) -> BusLog {
    let bus = p.0.bus().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut log = BusLog::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no EOS or error within {DEADLINE:?}");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
        match msg.view() {
            gst::MessageView::Eos(_) => return log,
            gst::MessageView::Error(e) => {
                log.error = Some(format!("{src}: {} ({:?})", e.error(), e.debug()));
                return log;
            }
            gst::MessageView::Warning(w) if src == from => {
                log.warnings.push(w.error().to_string());
            }
            _ => {}
        }
    }
}

/// The framecrc packets of stream `index` as (size, checksum).
fn packets(want: &FrameCrc, index: u32) -> Vec<(u64, String)> {
    want.packets[&index]
        .iter()
        .map(|(size, crc, _)| (*size, crc.clone()))
        .collect()
}

fn frames(pads: &Pads, pad: &str) -> Vec<(u64, String)> {
    pads.lock().unwrap().get(pad).cloned().unwrap_or_default()
}

/// `rtmpserversrc ! DEMUXER` with `props` on the source, to EOS after FFmpeg 9 published
/// `media` into it; gives the pads' frames and the source's warnings.
fn serve_into(media: &Path, demuxer: &str, props: &str) -> (Pads, BusLog) {
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=h eos-on-unpublish=true {props} \
         ! {demuxer} name=d"
    ));
    let pads = record_pads(&p, "d");
    p.play();
    let port = p.port("src");
    let mut publisher = publish(media, &format!("rtmp://127.0.0.1:{port}/live/h"));
    let log = run_until_end(&p, "src");
    let status = publisher.wait_timeout(DEADLINE);
    assert!(status.success(), "publisher: {}", publisher.stderr_text());
    (pads, log)
}

#[test]
fn hevc_and_aac_into_flvdemux_give_every_aac_frame_and_one_warning() {
    let media = hevc_aac();
    let want = ffmpeg9_framecrc(&media);
    let (pads, log) = serve_into(&media, "flvdemux", "");
    assert_eq!(log.error, None, "the pipeline ran to EOS");
    assert_eq!(frames(&pads, "audio"), packets(&want, 1), "every AAC frame");
    assert!(!pads.lock().unwrap().contains_key("video"), "no HEVC pad");
    assert_eq!(log.warnings.len(), 1, "{:?}", log.warnings);
    let w = &log.warnings[0];
    assert!(w.contains("video track 0 HEVC ('hvc1')"), "{w}");
    assert!(
        w.contains("rsflvdemux") && w.contains("enhanced=all"),
        "{w}"
    );
}

#[test]
fn h264_and_two_aac_tracks_into_flvdemux_give_track_0_whole() {
    let media = h264_two_aac();
    let want = ffmpeg9_framecrc(&media);
    assert_eq!(want.packets.len(), 3, "{:?}", want.counts());
    // Through a queue: the walk looks past it to the demuxer.
    let (pads, log) = serve_into(&media, "queue ! flvdemux", "");
    assert_eq!(log.error, None, "the pipeline ran to EOS");
    assert_eq!(
        frames(&pads, "video"),
        packets(&want, 0),
        "every H.264 frame"
    );
    assert_eq!(
        frames(&pads, "audio"),
        packets(&want, 1),
        "every AAC frame of track 0"
    );
    assert_eq!(log.warnings.len(), 1, "{:?}", log.warnings);
    assert!(
        log.warnings[0].contains("audio track 1 AAC ('mp4a')"),
        "{}",
        log.warnings[0]
    );
}

#[test]
fn rsflvdemux_downstream_gets_every_track_without_a_warning() {
    let media = h264_two_aac();
    let want = ffmpeg9_framecrc(&media);
    let (pads, log) = serve_into(&media, "rsflvdemux", "");
    assert_eq!(log.error, None);
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    assert_eq!(frames(&pads, "video"), packets(&want, 0));
    assert_eq!(frames(&pads, "audio"), packets(&want, 1));
    assert_eq!(frames(&pads, "audio_1"), packets(&want, 2));
}

/// Whether an FLV tag buffer (rtmpserversrc gives one tag per buffer) has an Enhanced RTMP
/// header.
fn is_enhanced_tag(tag: &[u8]) -> bool {
    match (tag.first(), tag.get(11)) {
        (Some(9), Some(b)) => b & 0x80 != 0,
        (Some(8), Some(b)) => b >> 4 == 9,
        _ => false,
    }
}

/// `rtmpserversrc PROPS ! appsink`: (tags, Enhanced RTMP tags) it output for `media`.
fn raw_output(media: &Path, props: &str) -> (usize, usize) {
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=h eos-on-unpublish=true {props} \
         ! appsink name=out sync=false"
    ));
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let c = counts.clone();
    p.by_name("out")
        .downcast::<gst_app::AppSink>()
        .unwrap()
        .set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let map = sample.buffer().unwrap().map_readable().unwrap();
                    let mut c = c.lock().unwrap();
                    c.0 += 1;
                    c.1 += usize::from(is_enhanced_tag(&map));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    p.play();
    let port = p.port("src");
    let mut publisher = publish(media, &format!("rtmp://127.0.0.1:{port}/live/h"));
    let log = run_until_end(&p, "src");
    assert_eq!(log.error, None);
    assert!(publisher.wait_timeout(DEADLINE).success());
    *counts.lock().unwrap()
}

#[test]
fn enhanced_all_passes_everything_and_legacy_only_legacy() {
    let media = hevc_aac();
    let want = ffmpeg9_framecrc(&media);
    let video = want.packets[&0].len();
    let (tags, enhanced) = raw_output(&media, "enhanced=all");
    // Every HEVC frame, its sequence start (and end), as they came.
    assert!(enhanced > video, "{enhanced} Enhanced RTMP tags of {tags}");
    let (tags, enhanced) = raw_output(&media, "enhanced=legacy");
    assert_eq!(enhanced, 0, "of {tags} tags");
    assert!(
        tags > want.packets[&1].len(),
        "the AAC frames and the headers: {tags}"
    );
}

#[test]
fn nothing_legacy_left_is_an_error_the_publisher_is_told_and_a_restart_works() {
    let p = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=h eos-on-unpublish=true \
         ! flvdemux name=d",
    );
    let pads = record_pads(&p, "d");
    p.play();
    let port = p.port("src");
    let url = format!("rtmp://127.0.0.1:{port}/live/h");
    let mut publisher = publish(&hevc_only(), &url);
    let log = run_until_end(&p, "src");
    let error = log.error.expect("an element error");
    assert!(error.starts_with("src: "), "from the source: {error}");
    assert!(
        error.contains("only Enhanced RTMP tracks (video track 0 HEVC ('hvc1'))"),
        "{error}"
    );
    assert_eq!(log.warnings.len(), 1, "{:?}", log.warnings);
    // As gst-launch does after an error.
    p.0.set_state(gst::State::Null).unwrap();
    let status = publisher.wait_timeout(DEADLINE);
    let said = publisher.stderr_text();
    assert!(!status.success(), "FFmpeg stopped with an error: {said}");
    assert!(
        said.contains("Nothing of the stream can go downstream"),
        "FFmpeg reports the server's reason: {said}"
    );
    assert!(!said.contains("Broken pipe"), "{said}");

    // The same pipeline takes the next publisher.
    pads.lock().unwrap().clear();
    p.play();
    let port = p.port("src");
    let media = h264_aac();
    let want = ffmpeg9_framecrc(&media);
    let mut publisher = publish(&media, &format!("rtmp://127.0.0.1:{port}/live/h"));
    let log = run_until_end(&p, "src");
    assert_eq!(log.error, None);
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    assert!(publisher.wait_timeout(DEADLINE).success());
    assert_eq!(frames(&pads, "video"), packets(&want, 0));
    assert_eq!(frames(&pads, "audio"), packets(&want, 1));
}

#[test]
fn rtmpclientsrc_into_flvdemux_gets_the_aac_of_an_hevc_stream() {
    let media = hevc_aac();
    let want = ffmpeg9_framecrc(&media);
    // Our relay: the source's downstream is a sink, which gets everything.
    let holder = Pipeline::parse(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder ! fakesink",
    );
    holder.play();
    let port = holder.port("hold");
    let relay = Pipeline::parse(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"
    ));
    let (connected, _) = count_clients(&relay.by_name("sink"));
    relay.play();
    let player = Pipeline::parse(&format!(
        "rtmpclientsrc name=src location=rtmp://127.0.0.1:{port}/live/out ! flvdemux name=d"
    ));
    let pads = record_pads(&player, "d");
    player.play();
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    let mut publisher = publish(&media, &format!("rtmp://127.0.0.1:{port}/live/in"));
    let log = run_until_end(&player, "src");
    assert!(publisher.wait_timeout(DEADLINE).success());
    assert_eq!(log.error, None, "the player ran to EOS");
    assert_eq!(frames(&pads, "audio"), packets(&want, 1), "every AAC frame");
    assert_eq!(log.warnings.len(), 1, "{:?}", log.warnings);
    assert!(log.warnings[0].contains("video track 0 HEVC ('hvc1')"));
}
