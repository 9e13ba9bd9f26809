//! Origin → edge scaling with nginx-rtmp, both ways round, checked by frame counts.
//!
//! 1. `rtmpserversink` is the origin: two nginx-rtmp edges pull from it (`pull` in their
//!    `live` application) as soon as a player asks them for the stream; players on both edges
//!    get most of what the origin published, and the origin's `stats` list the two edges as its
//!    only players however many players sit behind them.
//! 2. `rtmpclientsrc ! rtmpserversink` is an edge of an nginx-rtmp origin: its players get the
//!    origin's stream, and when the origin is killed and started again on the same port with a
//!    new publication, the same edge pipeline reconnects upstream, keeps its players connected,
//!    and they (and a player joining after the restart) get the new publication's frames.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server_peers::{count_clients, stats_tracks, wait_until};
use common::{ChildGuard, Nginx, PipelineGuard, TempDir, free_port, wait_for_nginx};
use gst::prelude::*;

/// Ends a hung test; never a measure of speed.
const DEADLINE: Duration = Duration::from_secs(60);

/// Fraction of the published frames every player must get.
const MIN_SHARE: f64 = 0.75;

/// ffmpeg playing `url`, writing one framecrc line per packet (flushed per packet) to `out`,
/// so a test can count what it got while it plays. No read timeout: it waits for a stream
/// that has not started yet, and ends when the server says the stream ended.
fn ffmpeg_player(url: &str, out: &Path) -> ChildGuard {
    common::require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i", url])
            .args([
                "-map",
                "0",
                "-c",
                "copy",
                "-flush_packets",
                "1",
                "-f",
                "framecrc",
            ])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// (video, audio) packets in a framecrc file written so far, by the streams' media types.
fn framecrc_counts(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut kinds = std::collections::HashMap::new();
    let (mut video, mut audio) = (0, 0);
    // The last line may still be being written: only whole lines count.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for line in whole.lines() {
        if let Some(rest) = line.strip_prefix("#media_type ") {
            if let Some((idx, kind)) = rest.split_once(':') {
                kinds.insert(idx.trim().to_string(), kind.trim().to_string());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 6 {
            continue;
        }
        match kinds.get(fields[0]).map(String::as_str) {
            Some("video") => video += 1,
            Some("audio") => audio += 1,
            _ => {}
        }
    }
    (video, audio)
}

/// Our own player: rtmpclientsrc (no reconnect) into flvdemux, video and audio buffers counted.
struct OurPlayer {
    pipeline: PipelineGuard,
    video: Arc<AtomicU64>,
    audio: Arc<AtomicU64>,
    /// Video buffers whose DTS was before the previous one's.
    backwards: Arc<AtomicU64>,
    /// The latest video DTS (or PTS).
    last_dts: Arc<Mutex<Option<gst::ClockTime>>>,
}

impl OurPlayer {
    fn start(url: &str) -> OurPlayer {
        let pipeline = common::pipeline(&format!(
            "rtmpclientsrc location={url} reconnect=false ! flvdemux name=d \
             d.video ! queue ! fakesink name=v sync=false \
             d.audio ! queue ! fakesink name=a sync=false"
        ));
        let video = common::count_buffers(&pipeline, "v");
        let audio = common::count_buffers(&pipeline, "a");
        let backwards = Arc::new(AtomicU64::new(0));
        let last_dts = Arc::new(Mutex::new(None::<gst::ClockTime>));
        let (b, last) = (backwards.clone(), last_dts.clone());
        pipeline
            .by_name("v")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buf)) = &info.data
                    && let Some(ts) = buf.dts().or(buf.pts())
                {
                    let mut last = last.lock().unwrap();
                    if last.is_some_and(|l| ts < l) {
                        eprintln!("video DTS back from {:?} to {ts}", *last);
                        b.fetch_add(1, Ordering::SeqCst);
                    }
                    *last = Some(ts);
                }
                gst::PadProbeReturn::Ok
            });
        pipeline
            .set_state(gst::State::Playing)
            .expect("our player to PLAYING");
        OurPlayer {
            pipeline,
            video,
            audio,
            backwards,
            last_dts,
        }
    }

    fn last_dts(&self) -> Option<gst::ClockTime> {
        *self.last_dts.lock().unwrap()
    }

    fn backwards(&self) -> u64 {
        self.backwards.load(Ordering::SeqCst)
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.video.load(Ordering::SeqCst),
            self.audio.load(Ordering::SeqCst),
        )
    }
}

/// Asserts that `got` (video, audio) is at least [`MIN_SHARE`] of `published`, and, with
/// `at_most`, no more.
fn assert_share(who: &str, got: (u64, u64), published: (u64, u64), at_most: bool) {
    let share = |g: u64, p: u64| g as f64 / p as f64;
    println!(
        "{who}: {} of {} video frames ({:.0}%), {} of {} audio frames ({:.0}%)",
        got.0,
        published.0,
        100.0 * share(got.0, published.0),
        got.1,
        published.1,
        100.0 * share(got.1, published.1)
    );
    assert!(
        share(got.0, published.0) >= MIN_SHARE && share(got.1, published.1) >= MIN_SHARE,
        "{who} got {got:?} (video, audio) of {published:?} published"
    );
    assert!(
        !at_most || (got.0 <= published.0 && got.1 <= published.1),
        "{who} got {got:?}, more than the {published:?} published"
    );
}

/// Waits for an ffmpeg player to end by itself and checks it succeeded.
fn finish(player: &mut ChildGuard, who: &str) {
    let status = player.wait_timeout(DEADLINE);
    let log = player.stderr_text();
    assert!(status.success(), "{who} failed ({status}): {log}");
}

/// (video frames, audio frames) an element's `stats` `tracks` counted.
fn tracked_frames(element: &gst::Element) -> (u64, u64) {
    let rows = stats_tracks(element);
    let frames = |kind: &str| {
        rows.iter()
            .filter(|r| r.0 == kind)
            .map(|r| r.3)
            .sum::<u64>()
    };
    (frames("video"), frames("audio"))
}

#[test]
fn serversink_origin_feeds_two_nginx_edges_and_their_players() {
    common::init_gst();
    // 10 s of live H.264 + AAC, made in the pipeline: 300 video frames, 470 × 1024 samples.
    let origin = common::pipeline(
        "videotestsrc is-live=true num-buffers=300 \
           ! video/x-raw,width=320,height=240,framerate=30/1 \
           ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=500 \
           ! h264parse ! queue ! mux. \
         audiotestsrc is-live=true num-buffers=470 samplesperbuffer=1024 \
           ! audio/x-raw,rate=48000,channels=1 ! voaacenc ! aacparse ! queue ! mux. \
         flvmux name=mux streamable=true \
           ! rtmpserversink name=sink address=127.0.0.1 port=0 application=live stream=s",
    );
    let sink = origin.by_name("sink").unwrap();
    // PAUSED binds the port; the live sources produce nothing until PLAYING.
    origin
        .set_state(gst::State::Paused)
        .expect("origin to PAUSED");
    let origin_port = sink.property::<u32>("port");
    assert_ne!(origin_port, 0, "the origin reports no port");
    let pull = format!("pull rtmp://127.0.0.1:{origin_port}/live;");
    let edge_a = Nginx::start_live_app(free_port(), &pull);
    let edge_b = Nginx::start_live_app(free_port(), &pull);

    let dir = TempDir::new("origin-edge");
    let out_a = dir.path().join("edge-a-ffmpeg.txt");
    let out_b = dir.path().join("edge-b-ffmpeg.txt");
    let url = |nginx: &Nginx| format!("rtmp://127.0.0.1:{}/live/s", nginx.port);
    let mut ffmpeg_a = ffmpeg_player(&url(&edge_a), &out_a);
    let mut ffmpeg_b = ffmpeg_player(&url(&edge_b), &out_b);
    let ours_b = OurPlayer::start(&url(&edge_b));
    wait_for_nginx(&edge_a, "play: name='s'", 1, DEADLINE);
    wait_for_nginx(&edge_b, "play: name='s'", 2, DEADLINE);
    // Three players, two edges: the origin has two players, one per edge.
    let clients = || {
        sink.property::<gst::Structure>("stats")
            .get::<u32>("clients")
    };
    wait_until("both edges to pull from the origin", DEADLINE, || {
        clients() == Ok(2)
    });

    origin
        .set_state(gst::State::Playing)
        .expect("origin to PLAYING");
    // Until the origin's EOS: the most bytes each of its players (by address) was sent.
    let sent: Mutex<std::collections::BTreeMap<String, u64>> = Mutex::default();
    let mut most_clients = 0;
    let bus = origin.bus().unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "the origin did not end in time");
        let stats = sink.property::<gst::Structure>("stats");
        most_clients = most_clients.max(stats.get::<u32>("clients").unwrap());
        for client in stats.get::<gst::Array>("client-stats").unwrap().iter() {
            let c = client.get::<gst::Structure>().unwrap();
            let mut sent = sent.lock().unwrap();
            let bytes = sent.entry(c.get::<String>("address").unwrap()).or_default();
            *bytes = (*bytes).max(c.get::<u64>("bytes").unwrap());
        }
        match bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(m) if m.type_() == gst::MessageType::Eos => break,
            Some(m) => panic!("origin failed: {m:?}"),
            None => {}
        }
    }
    let published = tracked_frames(&sink);
    let published_bytes: u64 = stats_tracks(&sink).iter().map(|r| r.5).sum();
    println!("origin published {published:?} (video, audio), {published_bytes} bytes");
    assert_eq!(published.0, 300, "video frames the origin published");
    assert!(
        published.1 >= 400,
        "audio frames the origin published: {published:?}"
    );

    finish(&mut ffmpeg_a, "ffmpeg on edge A");
    finish(&mut ffmpeg_b, "ffmpeg on edge B");
    common::wait_end(&ours_b.pipeline, DEADLINE).expect_eos();
    assert_share("ffmpeg on edge A", framecrc_counts(&out_a), published, true);
    assert_share("ffmpeg on edge B", framecrc_counts(&out_b), published, true);
    assert_share("rtmpclientsrc on edge B", ours_b.counts(), published, true);
    assert_eq!(ours_b.backwards(), 0, "video DTS steps back at our player");

    // The origin served two players, the edges, each about the whole stream.
    let sent = sent.into_inner().unwrap();
    println!("origin's players (address, bytes sent): {sent:?}");
    assert_eq!(most_clients, 2, "players the origin had at once");
    assert_eq!(sent.len(), 2, "the origin's players: {sent:?}");
    for (address, bytes) in &sent {
        assert!(
            address.starts_with("127.0.0.1:"),
            "an edge on loopback: {address}"
        );
        assert!(
            *bytes as f64 >= MIN_SHARE * published_bytes as f64,
            "edge {address} was sent {bytes} of {published_bytes} bytes"
        );
    }
}

/// ffmpeg publishing `media` to `url` in real time, over and over until it is stopped.
fn looping_publisher(media: &Path, url: &str) -> ChildGuard {
    ChildGuard::spawn(
        "looping ffmpeg publisher",
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "quiet",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(media)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// `a - b` per kind.
fn minus(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0 - b.0, a.1 - b.1)
}

#[test]
fn clientsrc_serversink_edge_survives_an_nginx_origin_restart() {
    common::init_gst();
    let media: PathBuf = common::test_media(4);
    let publication = common::ffprobe_counts(&media);
    let port = free_port();
    let origin_url = format!("rtmp://127.0.0.1:{port}/live/s");
    let origin = Nginx::start_idle_streams_on(port);
    let first = looping_publisher(&media, &origin_url);
    wait_for_nginx(&origin, "publish: name='s'", 1, DEADLINE);

    let edge = common::pipeline(&format!(
        "rtmpclientsrc name=src location={origin_url} reconnect-attempts=-1 \
           reconnect-delay=500 reconnect-max-delay=1000 \
         ! rtmpserversink name=sink address=127.0.0.1 port=0 application=live stream=s"
    ));
    let src = edge.by_name("src").unwrap();
    let sink = edge.by_name("sink").unwrap();
    let (connected, disconnected) = count_clients(&sink);
    edge.set_state(gst::State::Playing)
        .expect("edge to PLAYING");
    let edge_url = format!("rtmp://127.0.0.1:{}/live/s", sink.property::<u32>("port"));

    let dir = TempDir::new("rsrtmp-edge");
    let out_a = dir.path().join("ffmpeg-a.txt");
    let out_c = dir.path().join("ffmpeg-c.txt");
    let mut ffmpeg_a = ffmpeg_player(&edge_url, &out_a);
    let ours_b = OurPlayer::start(&edge_url);
    wait_until("two players on the edge", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 2
    });
    let enough = |c: (u64, u64)| c.0 >= 60 && c.1 >= 60;
    wait_until("2 s of media at both players", DEADLINE, || {
        enough(framecrc_counts(&out_a)) && enough(ours_b.counts())
    });
    println!(
        "before the restart: ffmpeg {:?}, rtmpclientsrc {:?} (video, audio)",
        framecrc_counts(&out_a),
        ours_b.counts()
    );

    // The origin goes away (its publisher with it) and comes back on the same port.
    drop(origin);
    drop(first);
    let origin = Nginx::start_idle_streams_on(port);
    // The edge plays from the new origin by itself.
    wait_for_nginx(&origin, "play: name='s'", 1, DEADLINE);
    let before_a = framecrc_counts(&out_a);
    let before_b = ours_b.counts();
    let dts_at_restart = ours_b.last_dts().expect("B got video with timestamps");
    assert_eq!(
        disconnected.load(Ordering::SeqCst),
        0,
        "a player left the edge during the restart"
    );
    // A new player joins the surviving edge before the new publication.
    let mut ffmpeg_c = ffmpeg_player(&edge_url, &out_c);
    wait_until("the new player on the edge", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 3
    });
    let mut second = common::ffmpeg_publisher(&media, &origin_url);
    let status = second.wait_timeout(DEADLINE);
    assert!(status.success(), "publisher: {}", second.stderr_text());

    // The new publication's end ends the edge's stream, and with it its players'.
    common::wait_end(&edge, DEADLINE).expect_eos();
    let reconnects = common::stat(&src.property::<gst::Structure>("stats"), "reconnects");
    finish(&mut ffmpeg_a, "ffmpeg player A");
    finish(&mut ffmpeg_c, "ffmpeg player C");
    common::wait_end(&ours_b.pipeline, DEADLINE).expect_eos();
    println!("publication: {publication:?} (video, audio); edge reconnects: {reconnects}");
    let dts_at_end = ours_b.last_dts().unwrap();
    println!(
        "B's video DTS: {dts_at_restart} at the restart, {dts_at_end} at the end, {} steps back",
        ours_b.backwards()
    );
    assert_eq!(reconnects, 1, "the edge's reconnects upstream");
    assert_share(
        "ffmpeg A after the restart",
        minus(framecrc_counts(&out_a), before_a),
        publication,
        false,
    );
    assert_share(
        "rtmpclientsrc B after the restart",
        minus(ours_b.counts(), before_b),
        publication,
        false,
    );
    // The edge's players see one timeline: the new publication (4 s) follows the old one.
    assert_eq!(ours_b.backwards(), 0, "video DTS steps back at B");
    assert!(
        dts_at_end >= dts_at_restart + gst::ClockTime::from_seconds(3),
        "B's timeline: {dts_at_restart} at the restart, {dts_at_end} at the end"
    );
    // A player that joins while the edge waits for the new publication gets it too; it also
    // gets the edge's cached GOP of the old one first, so it may count more than one
    // publication.
    assert_share(
        "ffmpeg C, joined after the restart",
        framecrc_counts(&out_c),
        publication,
        false,
    );
}
