//! A publisher's backlog crosses the relay in lists.
//!
//! FFmpeg publishes a file as fast as it can (no `-re`) into `rtmpserversrc !
//! rtmpserversink`: messages arrive back to back, and `rtmpserversrc` hands what is already
//! there downstream as one buffer list, which `rtmpserversink` writes to each player in one
//! send (the hub's unit tests check the sends). An FFmpeg player records the relay's output:
//! every frame arrives, in order.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::server_peers::{Pipeline, ffmpeg_through_relay};
use common::{ffprobe_counts, require, test_media};
use gst::prelude::*;

#[test]
fn a_burst_from_the_publisher_goes_down_in_lists_and_every_frame_arrives() {
    require("ffmpeg", "ffmpeg");
    let media = test_media(6);
    // Counts what leaves the source: buffers alone and lists (with their length).
    let (singles, lists, listed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (s, l, n) = (singles.clone(), lists.clone(), listed.clone());
    let count_lists = move |p: &Pipeline| {
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
    };
    // No -readrate: as fast as FFmpeg can send.
    let run = ffmpeg_through_relay("relay-batches", "", &[], &media, count_lists);
    let recording = run.recording.clone();
    drop(run.pipeline);

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
