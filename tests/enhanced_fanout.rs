//! `rtmpserversink enhanced-policy=strict`: each player gets what its `connect` announced.
//! FFmpeg 9 publishes HEVC + AAC, and H.264 + two AAC tracks (the second a multitrack
//! packet), into `rtmpserversrc ! rtmpserversink enhanced-policy=strict`; FFmpeg 9 players
//! there before the publisher get, byte-exact against FFmpeg's framecrc of the file:
//! without `-rtmp_enhanced_codecs`, only the legacy tracks; with the FourCCs listed, those
//! too — but FFmpeg announces no capsEx, so never the multitrack packets; our rtmpclientsrc
//! (which announces multitrack) gets every track, read back by rsflvdemux. With the default
//! policy (forward) the legacy FFmpeg player gets everything.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use std::time::Duration;

use gst::prelude::*;

use common::emedia::{h264_two_aac, hevc_aac};
use common::server_peers::*;
use common::{ChildGuard, FrameCrc, TempDir, ffmpeg9, ffmpeg9_framecrc};

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(120);

/// An FFmpeg 9 player writing framecrc to `out`, announcing `codecs` when given.
fn ffmpeg_player(port: u16, out: &Path, codecs: Option<&str>) -> ChildGuard {
    let mut cmd = Command::new(ffmpeg9());
    cmd.args(["-nostdin", "-loglevel", "error", "-y"]);
    if let Some(c) = codecs {
        cmd.args(["-rtmp_enhanced_codecs", c]);
    }
    cmd.arg("-i")
        .arg(format!("rtmp://127.0.0.1:{port}/live/out"))
        .args(["-map", "0", "-c", "copy", "-f", "framecrc"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&format!("FFmpeg 9 player ({codecs:?})"), &mut cmd)
}

type Pads = PadFrames;

/// Our player: `rtmpclientsrc ! rsflvdemux`, (size, checksum) of every buffer per pad.
fn our_player(port: u16) -> (Pipeline, Pads) {
    let p = Pipeline::parse(&format!(
        "rtmpclientsrc location=rtmp://127.0.0.1:{port}/live/out ! rsflvdemux name=d"
    ));
    let pads = record_pads(&p, "d");
    (p, pads)
}

/// The packet lists of every stream that has packets, in stream order.
fn streams_with_packets(crc: &FrameCrc) -> Vec<Vec<(u64, String)>> {
    crc.packets
        .keys()
        .map(|i| crc.sized(*i))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Relays `media` through `rtmpserversink SINK_PROPS` to the FFmpeg players (one per entry of
/// `codecs`) and, with `ours`, our player; returns each FFmpeg player's framecrc and what
/// ours got.
fn relay(
    media: &Path,
    sink_props: &str,
    codecs: &[Option<&str>],
    ours: bool,
) -> (Vec<FrameCrc>, Option<Pads>) {
    let holder = Pipeline::parse(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder ! fakesink",
    );
    holder.play();
    let port = holder.port("hold");
    let p = Pipeline::parse(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out {sink_props}"
    ));
    let (connected, _) = count_clients(&p.by_name("sink"));
    p.play();
    let dir = TempDir::new("enhanced-fanout");
    let mut players = Vec::new();
    for (i, c) in codecs.iter().enumerate() {
        let out = dir.path().join(format!("p{i}.crc"));
        players.push((ffmpeg_player(port, &out, *c), out));
    }
    let mine = ours.then(|| {
        let (pipeline, pads) = our_player(port);
        pipeline.play();
        (pipeline, pads)
    });
    let expected = codecs.len() + usize::from(ours);
    wait_until("every player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == expected
    });
    let mut publisher = ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(media)
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    assert!(
        publisher.wait_timeout(DEADLINE).success(),
        "publisher: {}",
        publisher.stderr_text()
    );
    p.wait_eos(DEADLINE);
    let mut crcs = Vec::new();
    for (mut child, out) in players {
        let status = child.wait_timeout(DEADLINE);
        assert!(
            status.success(),
            "{}: {}",
            child.name.clone(),
            child.stderr_text()
        );
        crcs.push(FrameCrc::parse(&std::fs::read_to_string(out).unwrap()));
    }
    let pads = mine.map(|(pipeline, pads)| {
        pipeline.wait_eos(DEADLINE);
        pads
    });
    (crcs, pads)
}

#[test]
fn strict_gives_hevc_only_to_players_that_list_it() {
    let media = hevc_aac();
    let want = ffmpeg9_framecrc(&media);
    let (got, _) = relay(
        &media,
        "enhanced-policy=strict",
        &[None, Some("hvc1,mp4a")],
        false,
    );
    assert_eq!(
        streams_with_packets(&got[0]),
        vec![want.sized(1)],
        "the legacy player: the AAC only"
    );
    assert_eq!(got[1], want, "the player that listed hvc1: everything");
}

#[test]
fn strict_gives_multitrack_only_to_players_announcing_it() {
    let media = h264_two_aac();
    let want = ffmpeg9_framecrc(&media);
    let (got, pads) = relay(&media, "enhanced-policy=strict", &[Some("avc1,mp4a")], true);
    assert_eq!(
        streams_with_packets(&got[0]),
        vec![want.sized(0), want.sized(1)],
        "FFmpeg (no capsEx): track 0 of each kind"
    );
    let pads = pads.unwrap();
    let pads = pads.lock().unwrap();
    assert_eq!(
        pads.get("video").cloned().unwrap_or_default(),
        want.sized(0)
    );
    assert_eq!(
        pads.get("audio").cloned().unwrap_or_default(),
        want.sized(1)
    );
    assert_eq!(
        pads.get("audio_1").cloned().unwrap_or_default(),
        want.sized(2),
        "ours announces multitrack: the second AAC track too"
    );
}

#[test]
fn forward_gives_everything_to_a_legacy_player() {
    let media = hevc_aac();
    let want = ffmpeg9_framecrc(&media);
    let (got, _) = relay(&media, "", &[None], false);
    assert_eq!(got[0], want);
}

/// The `streamheader` in the caps of `element`'s src pad: how many buffers.
fn streamheader_len(element: &gst::Element) -> usize {
    let caps = element.static_pad("src").unwrap().current_caps().unwrap();
    caps.structure(0)
        .unwrap()
        .get::<gst::Array>("streamheader")
        .map(|a| a.len())
        .unwrap_or(0)
}

#[test]
fn a_late_rtmpclientsrc_carries_every_tracks_header() {
    let media = common::emedia::hevc_two_opus();
    let holder = Pipeline::parse(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder ! fakesink",
    );
    holder.play();
    let port = holder.port("hold");
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"
    ));
    p.play();
    let mut publisher = ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(&media)
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    // Joins once the stream runs: every header it gets comes from the server's cache.
    let src = p.by_name("src");
    wait_until("the publisher's first second", DEADLINE, || {
        src.static_pad("src")
            .and_then(|pad| pad.current_caps())
            .is_some()
    });
    std::thread::sleep(Duration::from_millis(1000));
    let (player, pads) = our_player(port);
    let client = player
        .by_name("d")
        .static_pad("sink")
        .unwrap()
        .peer()
        .unwrap();
    player.play();
    assert!(publisher.wait_timeout(DEADLINE).success());
    player.wait_eos(DEADLINE);
    let client = client.parent_element().unwrap();
    // The FLV header, onMetaData, and the configurations of HEVC and both Opus tracks.
    assert_eq!(streamheader_len(&client), 5);
    let pads = pads.lock().unwrap();
    for pad in ["video", "audio", "audio_1"] {
        assert!(
            pads.get(pad).is_some_and(|f| f.len() > 10),
            "{pad}: {:?}",
            pads.keys().collect::<Vec<_>>()
        );
    }
}
