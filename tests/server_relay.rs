//! Relay: ffmpeg publishes into rtmpserversrc, the same pipeline serves it through
//! rtmpserversink on the same port, and an ffmpeg player gets every frame.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::server_peers::*;
use common::{ChildGuard, TempDir, ffprobe_counts, require, test_media};

const DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn ffmpeg_to_serversrc_to_serversink_to_ffmpeg_every_frame() {
    require("ffmpeg", "ffmpeg");
    let media = test_media(4);
    // A placeholder element takes a free port; the relay's two elements then join its
    // listener: three elements, one socket.
    let holder = Pipeline::parse(
        "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder ! fakesink",
    );
    holder.play();
    let port = holder.port("hold");
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"
    ));
    let (connected, _) = count_clients(&p.by_name("sink"));
    p.play();
    assert_eq!(p.port("src"), port);
    assert_eq!(p.port("sink"), port);

    let dir = TempDir::new("relay");
    let out = dir.path().join("relayed.flv");
    let mut player = ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/out"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out)
            .stderr(Stdio::piped()),
    );
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    let mut publisher = ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
            .stderr(Stdio::piped()),
    );
    let status = publisher.wait_timeout(DEADLINE);
    assert!(status.success(), "publisher: {}", publisher.stderr_text());
    p.wait_eos(DEADLINE);
    let status = player.wait_timeout(DEADLINE);
    assert!(status.success(), "player: {}", player.stderr_text());
    assert_eq!(
        ffprobe_counts(&out),
        ffprobe_counts(&media),
        "frames (video, audio)"
    );
}
