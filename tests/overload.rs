//! A relay whose input falls behind real time degrades to keyframes with `queue-time`.
//!
//! When a server cannot keep up as a whole (its core is full, or an element before the sink is
//! slower than real time), the stream reaches `rtmpserversink` later and later behind its own
//! timestamps while every player's queue stays short. FFmpeg publishing at half speed
//! (`-readrate 0.5`) gives the sink exactly that input, on any machine and under any load. With
//! `queue-time` the sink drops the late media for every player up to the next keyframe
//! (counted as `late-drops`); without it every frame goes out, later and later. An FFmpeg
//! player records what it got; ffprobe reads the recording back packet by packet.

mod common;

use std::path::Path;
use std::process::Command;

use common::server_peers::{RelayRun, ffmpeg_through_relay};
use common::{require, test_media_with_gop};
use gst::prelude::*;

/// The media: 6 s at 30 fps, a keyframe every 10 frames.
const SECONDS: u32 = 6;
const GOP: u32 = 10;
const FPS: f64 = 30.0;

/// One packet of a recording, as ffprobe reads it.
#[derive(Debug, Clone, Copy)]
struct Packet {
    video: bool,
    dts: f64,
    key: bool,
}

fn packets(path: &Path) -> Vec<Packet> {
    require("ffprobe", "ffmpeg");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,dts_time,flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {path:?} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.split(',');
            let kind = f.next()?;
            let dts = f.next()?.parse().ok()?;
            let flags = f.next().unwrap_or("");
            Some(Packet {
                video: kind == "video",
                dts,
                key: flags.starts_with('K'),
            })
        })
        .collect()
}

/// ffmpeg decodes all of `path` without an error: what a viewer would see plays.
fn decodes_cleanly(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let errors = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() && errors.trim().is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

struct Outcome {
    sent: Vec<Packet>,
    got: Vec<Packet>,
    late_drops: u64,
    run: RelayRun,
}

/// FFmpeg publishes the media at half speed into `rtmpserversrc ! rtmpserversink {sink}`
/// while an FFmpeg player records the relay's output; returns both sides.
fn relay_at_half_speed(tag: &str, sink: &str) -> Outcome {
    require("ffmpeg", "ffmpeg");
    let media = test_media_with_gop(SECONDS, GOP);
    let run = ffmpeg_through_relay(tag, sink, &["-readrate", "0.5"], &media, |_| {});
    let stats: gst::Structure = run.pipeline.by_name("sink").property("stats");
    let late_drops = stats.get::<u64>("late-drops").expect("late-drops in stats");
    Outcome {
        sent: packets(&media),
        got: packets(&run.recording),
        late_drops,
        run,
    }
}

fn count(packets: &[Packet], video: bool) -> usize {
    packets.iter().filter(|p| p.video == video).count()
}

#[test]
fn without_queue_time_every_frame_goes_out_however_late() {
    let o = relay_at_half_speed("overload-off", "");
    assert_eq!(o.late_drops, 0);
    assert_eq!(count(&o.got, true), count(&o.sent, true), "video frames");
    assert_eq!(count(&o.got, false), count(&o.sent, false), "audio frames");
    decodes_cleanly(&o.run.recording).unwrap_or_else(|e| panic!("the recording: {e}"));
}

#[test]
fn with_queue_time_late_input_is_dropped_to_keyframes_for_every_player() {
    let o = relay_at_half_speed("overload-on", "queue-time=400");
    let (sent, got) = (count(&o.sent, true), count(&o.got, true));
    println!(
        "late input: {got} of {sent} video frames and {} of {} audio frames delivered, \
         {} messages dropped as late",
        count(&o.got, false),
        count(&o.sent, false),
        o.late_drops
    );
    assert!(o.late_drops > 0, "nothing was dropped as late");
    // Half speed: after the first ~0.8 s of stream every frame is later than 400 ms, so the
    // player gets keyframes from there on.
    let keyframes = o.sent.iter().filter(|p| p.video && p.key).count();
    assert!(
        got < sent && got >= keyframes,
        "{got} video frames delivered of {sent} ({keyframes} keyframes)"
    );
    let video: Vec<Packet> = o.got.iter().copied().filter(|p| p.video).collect();
    assert!(
        video.first().is_some_and(|p| p.key),
        "the player starts at a keyframe"
    );
    let mut gaps = 0;
    for w in video.windows(2) {
        if w[1].dts - w[0].dts > 1.5 / FPS {
            gaps += 1;
            assert!(
                w[1].key,
                "after a gap ({:.3} s -> {:.3} s) the player must get a keyframe",
                w[0].dts, w[1].dts
            );
        }
    }
    assert!(gaps > 0, "the recording has no gap");
    // Every keyframe of the stream reached the player: the skips end at each one.
    let got_keys = video.iter().filter(|p| p.key).count();
    assert_eq!(got_keys, keyframes, "keyframes delivered");
    decodes_cleanly(&o.run.recording).unwrap_or_else(|e| panic!("the recording: {e}"));
}
