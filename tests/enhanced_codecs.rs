//! Every Enhanced RTMP codec, both directions, against FFmpeg 9: AV1 + Opus, VP9 + FLAC,
//! HEVC + AC-3 (an audio track with no decoder configuration) and H.264 + two AAC tracks (the
//! second in multitrack packets), each a 4 s file FFmpeg 9 made.
//! - FFmpeg 9 publishes each file into `rtmpserversrc ! rtmpserversink` over rtmp: an FFmpeg 9
//!   player there before the publisher gets every packet of every track byte-exact (framecrc
//!   against FFmpeg's own reading of the file), and one joining mid-stream gets every track's
//!   decoder configuration and then every packet from its GOP's keyframe on. AV1 + Opus does
//!   the same over rtmps, rtmpt, rtmpe and rtmpte too, on the same port (not over rtmpts:
//!   FFmpeg 9's tunnel over HTTPS is broken against any server, see enhanced_transports.rs).
//! - Our `rtmpclientsink` publishes each file's bytes to FFmpeg 9 as a one-client server
//!   (`-listen 1`), whose framecrc equals the file's; and into our relay, where our
//!   `rtmpclientsrc ! rsflvdemux` gets on every pad its track's packets byte-exact (size and
//!   Adler-32 against the same framecrc).

mod common;

use std::path::Path;
use std::time::Duration;

use common::server_peers::*;
use common::{FrameCrc, TempDir, ffmpeg9_framecrc, ffmpeg9_listen, free_port};

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(150);

/// Our `rtmpclientsink` publishes `media` to `ffmpeg -listen 1`, which gets the file.
fn our_sink_reaches_ffmpeg_listen(media: &Path, want: &FrameCrc) {
    let port = free_port();
    let dir = TempDir::new("enhanced-codecs-listen");
    let out = dir.path().join("received.crc");
    let mut ffmpeg = ffmpeg9_listen(port, &out, true);
    let publisher = Pipeline::parse(&format!(
        "filesrc location={} ! rtmpclientsink location=rtmp://127.0.0.1:{port}/live/s",
        media.display()
    ));
    publisher.play();
    publisher.wait_eos(DEADLINE);
    let status = ffmpeg.wait_timeout(DEADLINE);
    assert!(status.success(), "FFmpeg 9: {}", ffmpeg.stderr_text());
    FrameCrc::parse(&std::fs::read_to_string(&out).unwrap()).assert_same(
        want,
        &format!("{}: what FFmpeg -listen got vs the file", media.display()),
    );
}

/// Our clients through our relay: rsflvdemux's video pad gets stream 0 of the file, its
/// audio pads (`audio`, `audio_1`, ...) the streams after it.
fn ours_relay_exactly(port: &AllTransports, scheme: &str, media: &Path, want: &FrameCrc) {
    let relay = port.our_relay(scheme, media);
    relay.assert_tracks_agree(scheme);
    let pads = relay.pads.lock().unwrap();
    let names: Vec<String> = (0..want.packets.len())
        .map(|i| match i {
            0 => "video".to_string(),
            1 => "audio".to_string(),
            n => format!("audio_{}", n - 1),
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        pads.keys().cloned().collect::<Vec<_>>(),
        sorted,
        "{}: our player's pads",
        media.display()
    );
    for (index, pad) in names.iter().enumerate() {
        assert_eq!(
            pads[pad],
            want.sized(index as u32),
            "{} over {scheme}: pad {pad}",
            media.display()
        );
    }
}

/// Every way for one file over rtmp: FFmpeg 9 to FFmpeg 9 players through our relay, our
/// sink to FFmpeg 9's server, our sink to our player through our relay.
fn every_way(media: &Path) {
    let want = ffmpeg9_framecrc(media);
    assert!(
        want.packets.len() >= 2,
        "{}: {:?}",
        media.display(),
        want.counts()
    );
    let port = AllTransports::new();
    port.assert_ffmpeg_relays("rtmp", media, &want);
    our_sink_reaches_ffmpeg_listen(media, &want);
    ours_relay_exactly(&port, "rtmp", media, &want);
}

#[test]
fn av1_and_opus_every_way() {
    every_way(&common::emedia::av1_opus());
}

#[test]
fn vp9_and_flac_every_way() {
    every_way(&common::emedia::vp9_flac());
}

#[test]
fn hevc_and_ac3_every_way() {
    every_way(&common::emedia::hevc_ac3());
}

#[test]
fn h264_and_two_aac_tracks_every_way() {
    every_way(&common::emedia::h264_two_aac());
}

#[test]
fn av1_and_opus_relay_exactly_over_every_scheme() {
    let media = common::emedia::av1_opus();
    let want = ffmpeg9_framecrc(&media);
    let port = AllTransports::new();
    for scheme in ["rtmps", "rtmpt", "rtmpe", "rtmpte"] {
        port.assert_ffmpeg_relays(scheme, &media, &want);
    }
}
