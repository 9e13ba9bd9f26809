//! Enhanced RTMP capability negotiation in `connect`: FFmpeg 9's `-rtmp_enhanced_codecs`
//! (publisher and player) is read by our server elements and shown in their `stats`; our
//! client elements announce `enhanced-codecs` (the FourCC list, both FourCcInfoMaps and
//! capsEx) and our server reads it; a legacy connect with `enhanced-codecs=""`; a server that
//! predates Enhanced RTMP and rejects or drops a connect carrying the fields gets a second
//! connect without them, and the stream goes through; a FourCC we do not carry is a settings
//! error naming it.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::server_peers::*;
use common::{ChildGuard, PlayScript, ScriptedServer, ffmpeg9};
use gst::prelude::*;

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(90);

/// (enhanced-codecs, caps-ex) of the first client in a server element's stats, once there is
/// one.
fn announced(element: &gst::Element) -> Option<(String, u32)> {
    let stats = element.property::<gst::Structure>("stats");
    let clients = stats.get::<gst::Array>("client-stats").ok()?;
    let first = clients.iter().next()?.get::<gst::Structure>().ok()?;
    Some((
        first.get::<String>("enhanced-codecs").ok()?,
        first.get::<u32>("caps-ex").ok()?,
    ))
}

fn wait_announced(element: &gst::Element) -> (String, u32) {
    let mut got = None;
    wait_until("a client in the stats", DEADLINE, || {
        got = announced(element);
        got.is_some()
    });
    got.unwrap()
}

/// Everything our clients announce by default: every FourCC we carry, and multitrack, ModEx
/// and the nanosecond offset (0x2 | 0x4 | 0x8).
const ALL: &str = "hvc1,av01,vp09,vp08,avc1,Opus,fLaC,ac-3,ec-3,mp4a,.mp3";

#[test]
fn ffmpeg_publishers_and_players_announce_what_they_listed() {
    let media = common::emedia::hevc_aac();
    let p = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=in ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=out",
    );
    p.play();
    let (src_port, sink_port) = (p.port("src"), p.port("sink"));
    let mut publisher = ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(ffmpeg9())
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(&media)
            .args([
                "-map",
                "0",
                "-c",
                "copy",
                "-rtmp_enhanced_codecs",
                "hvc1,mp4a",
            ])
            .args(["-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{src_port}/live/in"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let (codecs, caps_ex) = wait_announced(&p.by_name("src"));
    assert_eq!(codecs, "hvc1,mp4a", "the publisher's fourCcList");
    assert_eq!(caps_ex, 0, "FFmpeg sends no capsEx");

    let mut player = ChildGuard::spawn(
        "FFmpeg 9 player",
        Command::new(ffmpeg9())
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-rtmp_enhanced_codecs",
                "av01,Opus",
            ])
            .arg("-i")
            .arg(format!("rtmp://127.0.0.1:{sink_port}/live/out"))
            .args(["-c", "copy", "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let (codecs, _) = wait_announced(&p.by_name("sink"));
    assert_eq!(codecs, "av01,Opus", "the player's fourCcList");
    common::interrupt(&mut player);
    common::interrupt(&mut publisher);
}

#[test]
fn our_clients_announce_enhanced_codecs_or_nothing() {
    let p = Pipeline::parse(
        "rtmpserversrc address=127.0.0.1 port=0 stream=in ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=out",
    );
    p.play();
    let port = p.port("sink");
    for (props, want) in [
        // Reconnect, multitrack, ModEx, nanosecond offsets.
        ("", (ALL.to_string(), 0x0f)),
        ("enhanced-codecs=hvc1,Opus", ("hvc1,Opus".to_string(), 0x0f)),
        ("enhanced-codecs=\"\"", (String::new(), 0)),
    ] {
        let player = Pipeline::parse(&format!(
            "rtmpclientsrc location=rtmp://127.0.0.1:{port}/live/out {props} ! fakesink"
        ));
        player.play();
        assert_eq!(wait_announced(&p.by_name("sink")), want, "{props}");
        drop(player);
        wait_until("the player to leave", DEADLINE, || {
            announced(&p.by_name("sink")).is_none()
        });
    }
}

/// Publishes a short test file with rtmpclientsink to `port`, to EOS.
fn publish_to(port: u16) {
    common::init_gst();
    let media = common::test_media(2);
    let p = common::pipeline(&format!(
        "filesrc location={} ! rtmpclientsink location=rtmp://127.0.0.1:{port}/live/key sync=false",
        media.display()
    ));
    common::run(&p, DEADLINE).expect_eos();
}

#[test]
fn a_server_that_rejects_the_fields_gets_a_legacy_connect() {
    let server = ScriptedServer::start_legacy_only(PlayScript::NotFound(String::new()), false);
    publish_to(server.port);
    let log = server.log();
    assert_eq!(log.enhanced, vec![true, false], "once with, once without");
    assert!(
        log.media.len() > 10,
        "the stream went through: {}",
        log.media.len()
    );
}

#[test]
fn a_server_that_drops_the_connection_gets_a_legacy_connect() {
    let server = ScriptedServer::start_legacy_only(PlayScript::NotFound(String::new()), true);
    publish_to(server.port);
    let log = server.log();
    assert_eq!(log.enhanced, vec![true, false], "once with, once without");
    assert!(
        log.media.len() > 10,
        "the stream went through: {}",
        log.media.len()
    );
}

#[test]
fn an_unknown_fourcc_is_a_settings_error_naming_it() {
    common::init_gst();
    let p = common::pipeline(
        "rtmpclientsrc location=rtmp://127.0.0.1:1/live/s enhanced-codecs=hvc1,hev1 ! fakesink",
    );
    let (e, debug) = common::run(&p, DEADLINE).expect_error();
    assert!(e.matches(gst::ResourceError::Settings), "{e}");
    let text = format!("{e} {debug}");
    assert!(text.contains("\"hev1\""), "{text}");
}
