//! A relay loses nothing, whatever the codec: FFmpeg 9 publishes Enhanced RTMP (HEVC + AAC,
//! HEVC + two Opus tracks) and legacy H.264 + AAC into `rtmpserversrc ! rtmpserversink`; an
//! FFmpeg 9 player there before the publisher gets every packet of every track, byte-exact
//! (framecrc), and one joining mid-stream gets every track's decoder configuration and then
//! every packet from its GOP's keyframe on. Also a stream whose audio starts half a second
//! before its first video frame (an encoder with a video delay): the early player gets that
//! audio too.

mod common;

use std::path::Path;
use std::process::Command;

use common::server_peers::*;
use common::{emedia, ffmpeg9, ffmpeg9_framecrc};

fn relay_file(media: &Path) {
    AllTransports::new().assert_ffmpeg_relays("rtmp", media, &ffmpeg9_framecrc(media));
}

#[test]
fn hevc_and_aac_relay_exactly() {
    relay_file(&emedia::hevc_aac());
}

#[test]
fn hevc_and_two_opus_tracks_relay_exactly() {
    relay_file(&emedia::hevc_two_opus());
}

#[test]
fn h264_and_aac_relay_exactly() {
    relay_file(&emedia::h264_aac());
}

/// `e-h264-aac-4s.flv` with its video moved half a second later: the FLV starts with audio
/// frames ahead of the first keyframe, as from an encoder with a video delay.
fn audio_ahead_media() -> std::path::PathBuf {
    let base = emedia::h264_aac();
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
    relay_file(&audio_ahead_media());
}
