//! A relay loses nothing, whatever the codec: FFmpeg 9 publishes Enhanced RTMP (HEVC + AAC,
//! HEVC + two Opus tracks) and legacy H.264 + AAC into `rtmpserversrc ! rtmpserversink`; an
//! FFmpeg 9 player there before the publisher gets every packet of every track, byte-exact
//! (framecrc), and one joining mid-stream gets every track's decoder configuration and then
//! every packet from its GOP's keyframe on. Also a stream whose audio starts half a second
//! before its first video frame (an encoder with a video delay): the early player gets that
//! audio too.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::server_peers::*;
use common::{ChildGuard, FrameCrc, TempDir, ffmpeg9, ffmpeg9_framecrc, ffmpeg9_media};

const DEADLINE: Duration = Duration::from_secs(120);

fn player(port: u16, out: &Path, name: &str) -> ChildGuard {
    ChildGuard::spawn(
        name,
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/out"))
            .args(["-map", "0", "-c", "copy", "-f", "framecrc"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// Bytes written to the first player so far.
fn sink_bytes(sink: &gst::Element) -> u64 {
    use gst::prelude::*;
    let stats = sink.property::<gst::Structure>("stats");
    let list = stats.get::<gst::Array>("client-stats").unwrap();
    list.iter()
        .filter_map(|v| v.get::<gst::Structure>().ok())
        .filter_map(|s| s.get::<u64>("bytes").ok())
        .max()
        .unwrap_or(0)
}

fn relay_every_track(name: &str, codec_args: &[&str]) {
    relay_file(name, &ffmpeg9_media(name, 4, codec_args));
}

fn relay_file(name: &str, media: &Path) {
    let media = media.to_path_buf();
    let want = ffmpeg9_framecrc(&media);
    let media_len = std::fs::metadata(&media).unwrap().len();
    // A placeholder element takes a free port; the relay's two elements then join it.
    let holder = Pipeline::parse(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder ! fakesink",
    );
    holder.play();
    let port = holder.port("hold");
    let p = Pipeline::parse(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"
    ));
    let sink = p.by_name("sink");
    let (connected, _) = count_clients(&sink);
    p.play();

    let dir = TempDir::new("relay-tracks");
    let early_out = dir.path().join("early.crc");
    let late_out = dir.path().join("late.crc");
    let mut early = player(port, &early_out, "early FFmpeg 9 player");
    wait_until("the early player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    // FFmpeg 9 publishes the file at real-time pace from its standard input, which the test
    // feeds: the rest of the file waits until the late player is in, however slowly it starts.
    let mut publisher = ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(ffmpeg9())
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "flv",
                "-i",
                "pipe:0",
            ])
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let data = std::fs::read(&media).unwrap();
    let mut feed = publisher.child.stdin.take().unwrap();
    let cut = data.len() * 7 / 10;
    feed.write_all(&data[..cut]).expect("feed the publisher");
    // The late player joins once a good part of the stream went out.
    wait_until(
        "half the stream to reach the early player",
        DEADLINE,
        || sink_bytes(&sink) > media_len / 2,
    );
    let mut late = player(port, &late_out, "late FFmpeg 9 player");
    wait_until("the late player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 2
    });
    feed.write_all(&data[cut..]).expect("feed the publisher");
    drop(feed);
    let status = publisher.wait_timeout(DEADLINE);
    assert!(status.success(), "publisher: {}", publisher.stderr_text());
    p.wait_eos(DEADLINE);
    for child in [&mut early, &mut late] {
        let status = child.wait_timeout(DEADLINE);
        if !status.success() {
            panic!("{}: {}", child.name.clone(), child.stderr_text());
        }
    }

    let early = FrameCrc::parse(&std::fs::read_to_string(&early_out).unwrap());
    assert_eq!(
        early.counts(),
        want.counts(),
        "{name}: packets per stream, early player vs the file"
    );
    assert_eq!(
        early, want,
        "{name}: the early player's packets and extradata"
    );

    let late = FrameCrc::parse(&std::fs::read_to_string(&late_out).unwrap());
    assert_eq!(
        late.extradata, want.extradata,
        "{name}: the late player's decoder configuration of every stream"
    );
    assert_eq!(
        late.packets.keys().collect::<Vec<_>>(),
        want.packets.keys().collect::<Vec<_>>(),
        "{name}: the late player's streams"
    );
    for (stream, got) in &late.packets {
        let all = &want.packets[stream];
        assert!(
            !got.is_empty() && got.len() < all.len(),
            "{name}: the late player got {} of {} packets of stream {stream}",
            got.len(),
            all.len()
        );
        assert_eq!(
            got[..],
            all[all.len() - got.len()..],
            "{name}: stream {stream} of the late player is not the file's tail"
        );
    }
    let video = &late.packets[&0];
    assert!(
        video[0].2,
        "{name}: the late player's video starts without a keyframe"
    );
}

#[test]
fn hevc_and_aac_relay_exactly() {
    relay_every_track(
        "e-hevc-aac-4s.flv",
        &[
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
        ],
    );
}

#[test]
fn hevc_and_two_opus_tracks_relay_exactly() {
    relay_every_track(
        "e-hevc-2opus-4s.flv",
        &[
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "1:a",
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p",
            "-preset",
            "ultrafast",
            "-c:a",
            "libopus",
        ],
    );
}

#[test]
fn h264_and_aac_relay_exactly() {
    relay_every_track(
        "e-h264-aac-4s.flv",
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-c:a", "aac",
        ],
    );
}

/// `e-h264-aac-4s.flv` with its video moved half a second later: the FLV starts with audio
/// frames ahead of the first keyframe, as from an encoder with a video delay.
fn audio_ahead_media() -> std::path::PathBuf {
    let base = ffmpeg9_media(
        "e-h264-aac-4s.flv",
        4,
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-c:a", "aac",
        ],
    );
    let path = base.with_file_name("e-h264-aac-audio-ahead.flv");
    if !path.exists() {
        let tmp = path.with_extension(format!("{}.tmp.flv", std::process::id()));
        let out = Command::new(ffmpeg9())
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-itsoffset",
                "0.5",
                "-i",
            ])
            .arg(&base)
            .arg("-i")
            .arg(&base)
            .args(["-map", "0:v", "-map", "1:a", "-c", "copy", "-f", "flv"])
            .arg(&tmp)
            .output()
            .expect("run FFmpeg 9");
        assert!(
            out.status.success(),
            "FFmpeg 9 could not shift the video: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

#[test]
fn audio_ahead_of_the_first_keyframe_relays_exactly() {
    let media = audio_ahead_media();
    relay_file("audio ahead of video", &media);
}
