//! A publisher's backlog crosses the relay in lists.
//!
//! FFmpeg publishes a file as fast as it can (no `-re`) into `rtmpserversrc !
//! rtmpserversink`: messages arrive back to back, and `rtmpserversrc` hands what is already
//! there downstream as one buffer list, which `rtmpserversink` writes to each player in one
//! send (the hub's unit tests check the sends). An FFmpeg player records the relay's output:
//! every frame arrives, in order.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::server_peers::{Pipeline, wait_until};
use common::{ChildGuard, TempDir, ffprobe_counts, free_port, require, test_media, wait_for_port};
use gst::prelude::*;

const DEADLINE: Duration = Duration::from_secs(90);

#[test]
fn a_burst_from_the_publisher_goes_down_in_lists_and_every_frame_arrives() {
    require("ffmpeg", "ffmpeg");
    let media = test_media(6);
    let port = free_port();
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"
    ));
    // Counts what leaves the source: buffers alone and lists (with their length).
    let (singles, lists, listed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (s, l, n) = (singles.clone(), lists.clone(), listed.clone());
    p.by_name("src").static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => {
                    s.fetch_add(1, Ordering::Relaxed);
                }
                Some(gst::PadProbeData::BufferList(list)) => {
                    l.fetch_add(1, Ordering::Relaxed);
                    n.fetch_add(list.len(), Ordering::Relaxed);
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    p.play();
    wait_for_port(port, DEADLINE);
    let dir = TempDir::new("relay-batches");
    let recording = dir.path().join("player.flv");
    let mut player = ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-rw_timeout",
                "20000000",
            ])
            .arg("-i")
            .arg(format!("rtmp://127.0.0.1:{port}/live/out"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&recording)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let sink = p.by_name("sink");
    wait_until("the player to join", DEADLINE, || {
        let stats: gst::Structure = sink.property("stats");
        stats.get::<u32>("clients").unwrap_or(0) == 1
    });
    let mut publisher = ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let published = publisher.wait_timeout(DEADLINE);
    assert!(
        published.success(),
        "the publisher failed: {}",
        publisher.stderr_text()
    );
    p.wait_eos(DEADLINE);
    let played = player.wait_timeout(DEADLINE);
    assert!(
        played.success(),
        "the player failed: {}",
        player.stderr_text()
    );
    drop(p);

    let (singles, lists, listed) = (
        singles.load(Ordering::Relaxed),
        lists.load(Ordering::Relaxed),
        listed.load(Ordering::Relaxed),
    );
    println!("the source pushed {singles} buffers alone and {listed} in {lists} lists");
    assert!(
        lists > 0,
        "a burst of {} buffers went down one by one",
        singles
    );
    assert_eq!(
        ffprobe_counts(&recording),
        ffprobe_counts(&media),
        "(video, audio) frames the player got, against the file"
    );
}
