//! Enhanced RTMP on every transport, both directions: HEVC + two Opus tracks (a multitrack
//! stream) over rtmp, rtmps, rtmpt, rtmpts, rtmpe and rtmpte, on one port of ours.
//! - FFmpeg 9 publishes over each scheme into `rtmpserversrc ! rtmpserversink`, and an FFmpeg 9
//!   player over the same scheme, there before the publisher, gets every packet of every track
//!   byte-exact (framecrc against FFmpeg's own reading of the file). Not over rtmpts: FFmpeg 9's
//!   tunnel over HTTPS fails against any server after its first request ("Cannot reuse HTTP
//!   connection for different protocol https vs http"); Debian's FFmpeg 5.1 does rtmpts
//!   (tests/server_transports.rs) and our own clients do it here. Over rtmpe and rtmpte too:
//!   the server holds its Set Chunk Size back from RTMPE connections until a play, since
//!   FFmpeg's publisher garbles its echo of it (see ServerSession::accept_connect).
//! - Our `rtmpclientsink` publishes the file over each scheme; our `rtmpclientsrc` plays it
//!   back over the same scheme into `rsflvdemux`, and every pad gets its track's packets
//!   byte-exact (size and Adler-32) against the same framecrc.

mod common;

use common::server_peers::*;
use common::{FrameCrc, ffmpeg9_framecrc};

const SCHEMES: [&str; 6] = ["rtmp", "rtmps", "rtmpt", "rtmpts", "rtmpe", "rtmpte"];

#[test]
fn ffmpeg_publishes_and_plays_e_rtmp_over_every_scheme() {
    let media = common::emedia::hevc_two_opus();
    let want = ffmpeg9_framecrc(&media);
    assert_eq!(want.packets.len(), 3, "{:?}", want.counts());
    let port = AllTransports::new();
    for s in ["rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte"] {
        let (got, _) = port.ffmpeg_relay(s, &media, false);
        assert_eq!(
            got,
            want,
            "over {s}: {:?} vs {:?}",
            got.counts(),
            want.counts()
        );
    }
}

#[test]
fn our_clients_publish_and_play_e_rtmp_over_every_scheme() {
    let media = common::emedia::hevc_two_opus();
    let want = ffmpeg9_framecrc(&media);
    let port = AllTransports::new();
    for s in SCHEMES {
        let relay = port.our_relay(s, &media);
        let pads = relay.pads.lock().unwrap();
        for (pad, index) in [("video", 0), ("audio", 1), ("audio_1", 2)] {
            assert_eq!(
                pads.get(pad).cloned().unwrap_or_default(),
                want.sized(index),
                "over {s}: pad {pad}"
            );
        }
        // Every element of the chain counted each track's frames and bytes as FFmpeg reads
        // them from the file.
        let tracks = expected_tracks(&want);
        for (name, got) in &relay.tracks {
            assert_eq!(got, &tracks, "over {s}: stats tracks of {name}");
        }
    }
}

/// `stats` `tracks` of HEVC + two Opus tracks, from FFmpeg's packets.
fn expected_tracks(crc: &FrameCrc) -> Vec<TrackRow> {
    let row = |kind: &str, id, codec: &str, index| {
        let p = &crc.packets[&index];
        let keys = p.iter().filter(|(_, _, key)| *key).count() as u64;
        let bytes = p.iter().map(|(size, _, _)| size).sum();
        let keyframes = if kind == "video" {
            keys
        } else {
            p.len() as u64
        };
        (
            kind.to_string(),
            id,
            codec.to_string(),
            p.len() as u64,
            keyframes,
            bytes,
        )
    };
    vec![
        row("audio", 0, "Opus", 1),
        row("audio", 1, "Opus", 2),
        row("video", 0, "hvc1", 0),
    ]
}
