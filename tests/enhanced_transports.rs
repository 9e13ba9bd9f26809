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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use gst::prelude::*;

use common::server_peers::*;
use common::{ChildGuard, FrameCrc, TempDir, ffmpeg9, ffmpeg9_framecrc, self_signed_cert};

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(150);

const SCHEMES: [&str; 6] = ["rtmp", "rtmps", "rtmpt", "rtmpts", "rtmpe", "rtmpte"];

/// A port taking every transport (TLS with a fresh certificate), held by a placeholder.
struct Port {
    _holder: Pipeline,
    port: u16,
    tls: String,
    cert: PathBuf,
    _dir: TempDir,
}

fn relays() -> Port {
    let dir = TempDir::new("enhanced-transports");
    let (cert, key) = self_signed_cert(dir.path(), "e");
    let tls = format!(
        "tls-certificate-file={} tls-key-file={}",
        cert.display(),
        key.display()
    );
    let holder = Pipeline::parse(&format!(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder {tls} ! fakesink"
    ));
    holder.play();
    let port = holder.port("hold");
    Port {
        _holder: holder,
        port,
        tls,
        cert,
        _dir: dir,
    }
}

/// FFmpeg's options to trust our certificate, over rtmps.
fn ffmpeg_tls(scheme: &str, cert: &Path) -> Vec<String> {
    if scheme == "rtmps" {
        vec![
            "-tls_verify".into(),
            "1".into(),
            "-ca_file".into(),
            cert.display().to_string(),
        ]
    } else {
        Vec::new()
    }
}

fn url(scheme: &str, port: u16, stream: &str) -> String {
    format!("{scheme}://127.0.0.1:{port}/live/{stream}")
}

#[test]
fn ffmpeg_publishes_and_plays_e_rtmp_over_every_scheme() {
    let media = common::emedia::hevc_two_opus();
    let want = ffmpeg9_framecrc(&media);
    assert_eq!(want.packets.len(), 3, "{:?}", want.counts());
    let r = relays();
    let dir = TempDir::new("enhanced-transports-crc");
    for s in ["rtmp", "rtmps", "rtmpt", "rtmpe", "rtmpte"] {
        let relay = Pipeline::parse(&format!(
            "rtmpserversrc address=127.0.0.1 port={} stream=in eos-on-unpublish=true {} ! \
             rtmpserversink name=out address=127.0.0.1 port={} stream=out {}",
            r.port, r.tls, r.port, r.tls
        ));
        let (connected, _) = count_clients(&relay.by_name("out"));
        relay.play();
        let out = dir.path().join(format!("{s}.crc"));
        let mut player = ChildGuard::spawn(
            &format!("FFmpeg 9 player over {s}"),
            Command::new(ffmpeg9())
                .args(["-nostdin", "-loglevel", "error", "-y"])
                .args(ffmpeg_tls(s, &r.cert))
                .arg("-i")
                .arg(url(s, r.port, "out"))
                .args(["-map", "0", "-c", "copy", "-f", "framecrc"])
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        wait_until(&format!("the {s} player"), DEADLINE, || {
            connected.load(Ordering::SeqCst) == 1
        });
        let mut publisher = ChildGuard::spawn(
            &format!("FFmpeg 9 publisher over {s}"),
            Command::new(ffmpeg9())
                .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
                .arg(&media)
                .args(["-map", "0", "-c", "copy"])
                .args(ffmpeg_tls(s, &r.cert))
                // FFmpeg's tunnel holds packets until its next poll and drops what it holds
                // at close: flush at every packet.
                .args(if s.starts_with("rtmpt") {
                    &["-rtmp_flush_interval", "1"][..]
                } else {
                    &[]
                })
                .args(["-f", "flv"])
                .arg(url(s, r.port, "in"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let status = publisher.wait_timeout(DEADLINE);
        assert!(
            status.success(),
            "publisher over {s}: {}",
            publisher.stderr_text()
        );
        relay.wait_eos(DEADLINE);
        let status = player.wait_timeout(DEADLINE);
        assert!(status.success(), "{s} player: {}", player.stderr_text());
        let got = FrameCrc::parse(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(
            got,
            want,
            "over {s}: {:?} vs {:?}",
            got.counts(),
            want.counts()
        );
    }
}

type Pads = PadFrames;

/// `rtmpclientsrc location=URL ! rsflvdemux`, recording (size, checksum) per pad.
fn our_player(location: &str, cert: &Path) -> (Pipeline, Pads) {
    let p = Pipeline::parse(&format!(
        "rtmpclientsrc name=src location={location} tls-ca-file={} ! rsflvdemux name=d",
        cert.display()
    ));
    let pads = record_pads(&p, "d");
    (p, pads)
}

fn packets(crc: &FrameCrc, index: u32) -> Vec<(u64, String)> {
    crc.packets[&index]
        .iter()
        .map(|(s, c, _)| (*s, c.clone()))
        .collect()
}

#[test]
fn our_clients_publish_and_play_e_rtmp_over_every_scheme() {
    let media = common::emedia::hevc_two_opus();
    let want = ffmpeg9_framecrc(&media);
    let dir = TempDir::new("enhanced-transports-ours");
    let (cert, key) = self_signed_cert(dir.path(), "ours");
    let tls = format!(
        "tls-certificate-file={} tls-key-file={}",
        cert.display(),
        key.display()
    );
    let holder = Pipeline::parse(&format!(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder {tls} ! fakesink"
    ));
    holder.play();
    let port = holder.port("hold");
    for s in SCHEMES {
        let relay = Pipeline::parse(&format!(
            "rtmpserversrc name=in address=127.0.0.1 port={port} stream=in eos-on-unpublish=true \
             {tls} ! rtmpserversink name=out address=127.0.0.1 port={port} stream=out {tls}"
        ));
        let (connected, _) = count_clients(&relay.by_name("out"));
        relay.play();
        let (player, pads) = our_player(&url(s, port, "out"), &cert);
        player.play();
        wait_until(&format!("our {s} player"), DEADLINE, || {
            connected.load(Ordering::SeqCst) == 1
        });
        let publisher = Pipeline::parse(&format!(
            "filesrc location={} ! rtmpclientsink name=pub location={} tls-ca-file={}",
            media.display(),
            url(s, port, "in"),
            cert.display()
        ));
        publisher.play();
        publisher.wait_eos(DEADLINE);
        relay.wait_eos(DEADLINE);
        player.wait_eos(DEADLINE);
        let pads = pads.lock().unwrap();
        for (pad, index) in [("video", 0), ("audio", 1), ("audio_1", 2)] {
            assert_eq!(
                pads.get(pad).cloned().unwrap_or_default(),
                packets(&want, index),
                "over {s}: pad {pad}"
            );
        }
        // Every element of the chain counted each track's frames and bytes as FFmpeg reads
        // them from the file.
        let tracks = expected_tracks(&want);
        for e in [
            publisher.by_name("pub"),
            relay.by_name("in"),
            relay.by_name("out"),
            player.by_name("src"),
        ] {
            assert_eq!(stats_tracks(&e), tracks, "over {s}: {}", e.name());
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
