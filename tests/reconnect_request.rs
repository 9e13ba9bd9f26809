//! Enhanced RTMP ReconnectRequest, both sides ours: `rtmpserversrc`'s `request-reconnect`
//! action sends one to its publisher, and `rtmpclientsink` follows it make-before-break: it
//! connects to the new tcUrl (absolute, or path-only on the same server) while still publishing
//! on the old connection, switches at a keyframe with the headers re-sent, and leaves. The two
//! servers together get every video and audio frame exactly once; the second starts with a
//! keyframe; the sink counts it in `stats` (`reconnect-requests`). A publisher that did not
//! announce capsEx Reconnect (FFmpeg) is never sent one. A server with `drain-tc-url` that
//! goes to NULL mid-stream moves its publisher to the other server first: the publisher sees
//! no error, and the other server gets the rest of the stream from a keyframe to the end.
//! Players too: `rtmpserversink`'s `request-reconnect` asks every player that announced it
//! (our `rtmpclientsrc`) to move; the source plays the new place before it leaves the old one
//! and passes every frame on exactly once, over a direct TCP player and over the tunnel.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::server_peers::*;
use common::{ChildGuard, ffmpeg9, test_media};
use gst::prelude::*;

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(90);

/// The published file: 8 s of H.264 (30 fps, a keyframe a second) + AAC, made by ffmpeg.
const SECONDS: u32 = 8;
const VIDEO_FRAMES: usize = 240;

/// The AAC frames of the published file, as FFmpeg reads them.
fn audio_frames() -> usize {
    common::ffmpeg9_framecrc(&test_media(SECONDS)).packets[&1].len()
}

fn server(app: &str) -> Pipeline {
    Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 application={app} stream=s \
         eos-on-unpublish=true ! appsink name=out sync=false"
    ))
}

/// The file at real-time pace (the sink paces raw FLV by its tags): every frame has its own
/// timestamp whatever the machine's load, which a live encoder would not promise.
fn publisher(port: u16, app: &str) -> Pipeline {
    Pipeline::parse(&format!(
        "filesrc location={} ! rtmpclientsink name=sink sync=true \
         location=rtmp://127.0.0.1:{port}/{app}/s",
        test_media(SECONDS).display()
    ))
}

/// A client's stats after one followed ReconnectRequest and no reconnect.
fn moved_once(stats: &gst::Structure) {
    assert_eq!(common::stat(stats, "reconnect-requests"), 1, "{stats}");
    assert_eq!(common::stat(stats, "reconnects"), 0, "{stats}");
}

/// Every value once, in order, across the two lists.
fn exactly_once(a: &[(u64, bool)], b: &[(u64, bool)]) -> Vec<u64> {
    let mut all: Vec<u64> = a.iter().chain(b).map(|(t, _)| *t).collect();
    all.sort_unstable();
    let twice: Vec<u64> = all
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(
        twice.is_empty(),
        "frames arrived twice, at {twice:?} ms; first list {:?}..{:?} ({}), second {:?}..{:?} ({})",
        a.first(),
        a.last(),
        a.len(),
        b.first(),
        b.last(),
        b.len()
    );
    all
}

fn move_publisher(path_only: bool) {
    let a = server("live");
    let (va, aa) = collect_tags(&a, "out");
    a.play();
    let port_a = a.port("src");
    // The second server: another port, or the same one under another application.
    let b = if path_only {
        Pipeline::parse(&format!(
            "rtmpserversrc name=src address=127.0.0.1 port={port_a} application=moved stream=s \
             eos-on-unpublish=true ! appsink name=out sync=false"
        ))
    } else {
        server("live")
    };
    let (vb, ab) = collect_tags(&b, "out");
    b.play();
    let port_b = b.port("src");
    let tc_url = if path_only {
        "/moved".to_string()
    } else {
        format!("rtmp://127.0.0.1:{port_b}/live")
    };

    let p = publisher(port_a, "live");
    let sink = p.by_name("sink");
    p.play();
    wait_until("a second of video at the first server", DEADLINE, || {
        va.lock().unwrap().len() > 30
    });
    let asked: bool = a
        .by_name("src")
        .emit_by_name("request-reconnect", &[&tc_url, &"moving the stream"]);
    assert!(asked, "our sink announces capsEx Reconnect");
    a.wait_eos(DEADLINE);
    p.wait_eos(DEADLINE);
    b.wait_eos(DEADLINE);

    let stats: gst::Structure = sink.property("stats");
    moved_once(&stats);
    assert_eq!(common::stat(&stats, "drops"), 0, "{stats}");
    let (va, vb) = (va.lock().unwrap().clone(), vb.lock().unwrap().clone());
    let (aa, ab) = (aa.lock().unwrap().clone(), ab.lock().unwrap().clone());
    println!(
        "first server {} video {} audio, second {} video {} audio",
        va.len(),
        aa.len(),
        vb.len(),
        ab.len()
    );
    assert!(
        !vb.is_empty() && vb[0].1,
        "the second server starts at a keyframe"
    );
    assert!(
        va.last().unwrap().0 < vb[0].0,
        "the first server's video ends before the second's begins"
    );
    assert_eq!(
        exactly_once(&va, &vb).len(),
        VIDEO_FRAMES,
        "every video frame"
    );
    assert!(!ab.is_empty());
    assert_eq!(
        exactly_once(&aa, &ab).len(),
        audio_frames(),
        "every audio frame"
    );
}

#[test]
fn the_sink_follows_a_reconnect_request_to_another_server_losing_nothing() {
    move_publisher(false);
}

#[test]
fn the_sink_follows_a_path_only_tc_url_on_the_same_server() {
    move_publisher(true);
}

#[test]
fn a_draining_server_moves_its_publisher_before_it_stops() {
    let b = server("live");
    let (vb, ab) = collect_tags(&b, "out");
    b.play();
    let port_b = b.port("src");
    let a = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 application=live stream=s \
         drain-tc-url=rtmp://127.0.0.1:{port_b}/live drain-timeout=60 ! \
         appsink name=out sync=false"
    ));
    let (va, _) = collect_tags(&a, "out");
    a.play();
    let p = publisher(a.port("src"), "live");
    let sink = p.by_name("sink");
    p.play();
    wait_until("a second of video at the first server", DEADLINE, || {
        va.lock().unwrap().len() > 30
    });
    // Taking the first server down returns once its publisher left it for the second.
    a.0.set_state(gst::State::Null).unwrap();
    wait_until("the moved publisher at the second server", DEADLINE, || {
        !vb.lock().unwrap().is_empty() && !ab.lock().unwrap().is_empty()
    });
    p.wait_eos(DEADLINE);
    b.wait_eos(DEADLINE);

    let stats: gst::Structure = sink.property("stats");
    moved_once(&stats);
    assert_eq!(common::stat(&stats, "drops"), 0, "{stats}");
    let (va, vb) = (va.lock().unwrap().clone(), vb.lock().unwrap().clone());
    println!("first server {} video, second {} video", va.len(), vb.len());
    assert!(vb[0].1, "the second server starts at a keyframe");
    exactly_once(&va, &vb);
    // From its first frame to the last of the stream, the second server has every frame.
    let frame_ms = 1000.0 / 30.0;
    let (first, last) = (vb[0].0, vb.last().unwrap().0);
    assert!(
        last as f64 >= (VIDEO_FRAMES - 1) as f64 * frame_ms - 1.0,
        "the stream's last frame (at {last} ms) reached the second server"
    );
    assert_eq!(
        vb.len(),
        ((last - first) as f64 / frame_ms).round() as usize + 1,
        "every frame from {first} ms to {last} ms"
    );
}

#[test]
fn a_publisher_that_did_not_announce_reconnect_is_not_asked() {
    let a = Pipeline::parse(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=s eos-on-unpublish=true ! fakesink",
    );
    a.play();
    let port = a.port("src");
    let mut ffmpeg = ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(test_media(4))
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/s"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let src = a.by_name("src");
    wait_until("the publisher", DEADLINE, || {
        let stats = src.property::<gst::Structure>("stats");
        stats.get::<u32>("clients").unwrap_or(0) == 1
    });
    let asked: bool = src.emit_by_name("request-reconnect", &[&"", &"restart"]);
    assert!(!asked);
    assert!(
        ffmpeg.wait_timeout(DEADLINE).success(),
        "{}",
        ffmpeg.stderr_text()
    );
    a.wait_eos(DEADLINE);
}

/// Our player moves between two playing points of the same stream (a relay serving it under
/// two applications of one port, as a cluster would on two servers).
fn move_player(scheme: &str) {
    let holder = Pipeline::parse(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder ! fakesink",
    );
    holder.play();
    let port = holder.port("hold");
    let relay = Pipeline::parse(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} application=in stream=s \
         eos-on-unpublish=true ! tee name=t \
         t. ! queue ! rtmpserversink name=a address=127.0.0.1 port={port} application=live stream=s \
         t. ! queue ! rtmpserversink name=b address=127.0.0.1 port={port} application=backup stream=s"
    ));
    let (on_a, _) = count_clients(&relay.by_name("a"));
    let (on_b, _) = count_clients(&relay.by_name("b"));
    relay.play();
    let player = Pipeline::parse(&format!(
        "rtmpclientsrc name=src location={scheme}://127.0.0.1:{port}/live/s ! \
         appsink name=out sync=false"
    ));
    let (video, audio) = collect_tags(&player, "out");
    player.play();
    wait_until("the player at the first playing point", DEADLINE, || {
        on_a.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    let p = publisher(port, "in");
    p.play();
    wait_until("two seconds of video at the player", DEADLINE, || {
        video.lock().unwrap().len() > 60
    });
    let asked: u32 = relay
        .by_name("a")
        .emit_by_name("request-reconnect", &[&"/backup", &"moving the players"]);
    assert_eq!(asked, 1, "our source announces capsEx Reconnect");
    p.wait_eos(DEADLINE);
    player.wait_eos(DEADLINE);
    assert_eq!(
        on_b.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "moved to b"
    );

    let stats: gst::Structure = player.by_name("src").property("stats");
    moved_once(&stats);
    let (video, audio) = (video.lock().unwrap().clone(), audio.lock().unwrap().clone());
    assert_eq!(
        exactly_once(&video, &[]).len(),
        VIDEO_FRAMES,
        "every video frame, once"
    );
    assert_eq!(
        exactly_once(&audio, &[]).len(),
        audio_frames(),
        "every audio frame, once"
    );
}

#[test]
fn the_source_follows_a_reconnect_request_over_tcp_losing_nothing() {
    move_player("rtmp");
}

#[test]
fn the_source_follows_a_reconnect_request_over_the_tunnel_losing_nothing() {
    move_player("rtmpt");
}
