//! Merged writes (`rtmpserversink merge-window`): with a 100 ms window, FFmpeg 9 players get
//! every packet of every track byte-exact, the one there from the start and the one joining
//! mid-stream alike, over a direct TCP player (rtmp), a task-written one (rtmps) and one with
//! its own encoding (rtmpe).

mod common;

use common::server_peers::*;
use common::{emedia, ffmpeg9_framecrc};
use gst::prelude::*;

#[test]
fn merged_writes_lose_and_reorder_nothing() {
    let media = emedia::hevc_two_opus();
    let want = ffmpeg9_framecrc(&media);
    let port = AllTransports::new().with_sink_props("merge-window=100");
    for scheme in ["rtmp", "rtmps", "rtmpe"] {
        let (early, late) = port.ffmpeg_relay(scheme, &media, true);
        early.assert_same(&want, &format!("early {scheme} player"));
        assert_late_join(
            &format!("late {scheme} player"),
            &late.expect("a late player"),
            &want,
        );
    }
}

/// Ends a hung test; never a measure of speed.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// The last (sends, messages) seen for the one player of a relay whose sink has `props`,
/// while FFmpeg 9 publishes a 4 s H.264 + AAC file at real-time pace.
fn sends_and_messages(props: &str) -> (u64, u64) {
    use std::process::{Command, Stdio};
    use std::sync::atomic::Ordering;
    let relay = Pipeline::parse(&format!(
        "rtmpserversrc name=in address=127.0.0.1 port=0 stream=in eos-on-unpublish=true ! \
         rtmpserversink name=out address=127.0.0.1 port=0 stream=out {props}"
    ));
    let sink = relay.by_name("out");
    let (connected, _) = count_clients(&sink);
    relay.play();
    let (port_in, port_out) = (relay.port("in"), relay.port("out"));
    let mut player = common::ChildGuard::spawn(
        "FFmpeg 9 player",
        Command::new(common::ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port_out}/live/out"))
            .args(["-c", "copy", "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    let mut publisher = common::ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(common::ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(emedia::h264_aac())
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port_in}/live/in"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut last = (0, 0);
    let started = std::time::Instant::now();
    while !publisher.exited() {
        assert!(started.elapsed() < DEADLINE, "the publisher never ended");
        let stats = sink.property::<gst::Structure>("stats");
        let sends = stats
            .get::<gst::Array>("client-stats")
            .ok()
            .and_then(|l| l.first().and_then(|v| v.get::<gst::Structure>().ok()))
            .and_then(|c| c.get::<u64>("sends").ok());
        let messages: u64 = stats_tracks(&sink).iter().map(|t| t.3).sum();
        if let Some(sends) = sends {
            last = (sends, messages);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        player.wait_timeout(DEADLINE).success(),
        "{}",
        player.stderr_text()
    );
    last
}

#[test]
fn merged_writes_make_fewer_sends_than_messages() {
    let (sends, messages) = sends_and_messages("merge-window=100");
    println!("merge-window=100: {sends} sends for {messages} messages");
    assert!(messages > 200, "{messages} messages seen");
    // Without merging it is one send per message; a 100 ms window holds several.
    assert!(
        sends * 2 < messages,
        "{sends} sends for {messages} messages"
    );
}
