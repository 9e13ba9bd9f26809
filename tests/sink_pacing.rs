//! Raw FLV (`filesrc`, `multifilesrc`: buffers without timestamps) goes out in real time with
//! `sync=true`, as `ffmpeg -re` sends it: `filesrc ! rtmpclientsink` to our relay and to
//! nginx-rtmp, where a player joining halfway gets the second half as it happens; `filesrc !
//! rtmpserversink sync=true`; a file looped by `multifilesrc`, whose timeline goes on across the
//! loop; a pause in the middle; a stop in the middle. With `sync=false` both sinks go as fast as
//! they can.
//!
//! Pacing is only checked from below — a paced 6 s file cannot be done in under 5 s, and its
//! frames cannot reach a player within much less than that (4 s here; a burst takes a fraction
//! of a second), however loaded the machine — and by what arrived (every frame, timestamps
//! continuous). Times from above are only deadlines that end a hung test, or margins no debug
//! build on a busy machine comes near (a 20 s file in under 10 s, a stop in under 10 s).

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server_peers::*;
use common::{free_port, stat};
use gst::prelude::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// What one player (or our ingest) got: video frames with their arrival time and DTS (ms),
/// and the number of audio frames.
#[derive(Default)]
struct Arrivals {
    video: Vec<(Instant, u64)>,
    audio: usize,
}

impl Arrivals {
    /// From the first video frame's arrival to the last one's.
    fn spread(&self) -> Duration {
        match (self.video.first(), self.video.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => Duration::ZERO,
        }
    }

    /// From the first video frame's DTS to the last one's.
    fn span(&self) -> Duration {
        match (self.video.first(), self.video.last()) {
            (Some(a), Some(b)) => Duration::from_millis(b.1 - a.1),
            _ => Duration::ZERO,
        }
    }

    /// The longest time between two video frames arriving.
    fn longest_gap(&self) -> Duration {
        self.video
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .max()
            .unwrap_or_default()
    }

    /// Every video DTS one frame interval (30 fps: 33 or 34 ms) after the one before: nothing
    /// lost, repeated, or sent back in time. Where a loop joined (`joins` times) the step may
    /// be up to 150 ms: the next round starts one frame after the later of the last video and
    /// the last audio frame (the test file's audio ends 87 ms after its video).
    fn assert_continuous(&self, what: &str, joins: usize) {
        let mut joined = 0;
        for w in self.video.windows(2) {
            let step = w[1].1 as i64 - w[0].1 as i64;
            if (33..=34).contains(&step) {
                continue;
            }
            joined += 1;
            assert!(
                (33..=150).contains(&step) && joined <= joins,
                "{what}: video DTS {} after {}",
                w[1].1,
                w[0].1
            );
        }
    }
}

/// Records what reaches the appsinks `v` and `a` of `pipeline`.
fn record(pipeline: &Pipeline) -> Arc<Mutex<Arrivals>> {
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    for name in ["v", "a"] {
        let sink = pipeline
            .by_name(name)
            .downcast::<gst_app::AppSink>()
            .expect("an appsink");
        let arrivals = arrivals.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let at = Instant::now();
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let dts = buffer.dts().or(buffer.pts()).map_or(0, |t| t.mseconds());
                    let mut arrivals = arrivals.lock().unwrap();
                    if name == "v" {
                        arrivals.video.push((at, dts));
                    } else {
                        arrivals.audio += 1;
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    arrivals
}

const DEMUX_TO_APPSINKS: &str = "flvdemux name=d \
     d.video ! queue ! appsink name=v sync=false \
     d.audio ! queue ! appsink name=a sync=false";

/// Our player (rtmpclientsrc behind flvdemux) on `url`, playing.
fn player(url: &str) -> (Pipeline, Arc<Mutex<Arrivals>>) {
    let p = Pipeline::parse(&format!(
        "rtmpclientsrc location={url} reconnect=false timeout=30 ! {DEMUX_TO_APPSINKS}"
    ));
    let arrivals = record(&p);
    p.play();
    (p, arrivals)
}

/// Our ingest (rtmpserversrc behind flvdemux) for stream `s`, playing, and its port.
fn ingest() -> (Pipeline, u16, Arc<Mutex<Arrivals>>) {
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=s eos-on-unpublish=true \
         handshake-timeout=30 idle-timeout=60 ! {DEMUX_TO_APPSINKS}"
    ));
    let arrivals = record(&p);
    p.play();
    let port = p.port("src");
    (p, port, arrivals)
}

/// `source ! rtmpclientsink name=sink location=url extra`, not started.
fn publisher(source: &str, url: &str, extra: &str) -> Pipeline {
    Pipeline::parse(&format!(
        "{source} ! rtmpclientsink name=sink location={url} timeout=30 {extra}"
    ))
}

fn filesrc(media: &std::path::Path) -> String {
    format!("filesrc location={}", media.display())
}

/// Frames the publisher's sink has sent.
fn frames_sent(publisher: &Pipeline) -> u64 {
    stat(
        &publisher
            .by_name("sink")
            .property::<gst::Structure>("stats"),
        "frames",
    )
}

/// Plays `publisher` and returns how long it took to reach EOS.
fn run_to_eos(publisher: &Pipeline) -> Duration {
    let started = Instant::now();
    publisher.play();
    publisher.wait_eos(DEADLINE);
    started.elapsed()
}

/// A 6 s file published with `filesrc ! rtmpclientsink` (sync on by default) to `url`: one
/// player is there from the start, one joins when half the frames went out. Returns what both
/// got, the file's frame counts, and when the publisher started.
fn publish_with_a_late_joiner(
    url_in: &str,
    url_out: &str,
    joined: impl Fn(usize) -> bool,
) -> (Arrivals, Arrivals, (u64, u64), Instant) {
    let media = common::test_media(6);
    let want = common::ffprobe_counts(&media);
    let (early, early_got) = player(url_out);
    wait_until("the first player", DEADLINE, || joined(1));

    let publisher = publisher(&filesrc(&media), url_in, "");
    let started = Instant::now();
    publisher.play();
    let half = (want.0 + want.1) / 2;
    wait_until("half the frames to go out", DEADLINE, || {
        frames_sent(&publisher) >= half
    });
    let at_half = started.elapsed();
    let (late, late_got) = player(url_out);
    wait_until("the late player", DEADLINE, || joined(2));
    publisher.wait_eos(DEADLINE);
    let took = started.elapsed();
    early.wait_eos(DEADLINE);
    late.wait_eos(DEADLINE);
    println!("half the frames out after {at_half:?}, all after {took:?}");
    // A 6 s file (its last frames 5.97 s after its first) in real time: never under 5 s.
    assert!(
        took >= Duration::from_secs(5),
        "a 6 s file went out in {took:?}"
    );
    assert!(
        at_half >= Duration::from_millis(2500),
        "half of it in {at_half:?}"
    );
    drop((early, late));
    let early = std::mem::take(&mut *early_got.lock().unwrap());
    let late = std::mem::take(&mut *late_got.lock().unwrap());
    (early, late, want, started)
}

/// The checks for [`publish_with_a_late_joiner`]'s players.
fn check_players(
    (early, late, want, started): (Arrivals, Arrivals, (u64, u64), Instant),
    server: &str,
) {
    println!(
        "{server}: early player {} video frames over {:?}, late player {} from DTS {:?} over {:?} \
         (span {:?})",
        early.video.len(),
        early.spread(),
        late.video.len(),
        late.video.first().map(|v| v.1),
        late.spread(),
        late.span()
    );
    assert_eq!(
        (early.video.len() as u64, early.audio as u64),
        want,
        "{server}: the first player's frames (video, audio)"
    );
    early.assert_continuous(&format!("{server}, first player"), 0);
    assert!(
        early.spread() >= Duration::from_secs(4),
        "{server}: the first player got 6 s of video within {:?}",
        early.spread()
    );
    // The late player gets the second half and only that: nothing of the first 1.5 s
    // (a GOP cache gives at most the last second before it joined), every frame from where it
    // started to the end, as they happened.
    assert!(
        !late.video.is_empty(),
        "{server}: the late player got nothing"
    );
    assert!(
        late.video[0].1 >= 1500,
        "{server}: the late player started at DTS {} ms",
        late.video[0].1
    );
    late.assert_continuous(&format!("{server}, late player"), 0);
    assert_eq!(
        late.video.last().map(|v| v.1),
        early.video.last().map(|v| v.1),
        "{server}: the late player got to the end"
    );
    // As they happened: its last frame cannot have come sooner than the file's last frame
    // was due (5.97 s after the publisher started), and its frames came over about as long as
    // they span (less the GOP the relay gives at once, at most 1 s, and a slow start).
    let last = late.video.last().unwrap().0 - started;
    assert!(
        last >= Duration::from_millis(5500),
        "{server}: the late player had the end {last:?} after the publisher started"
    );
    assert!(
        late.spread() + Duration::from_millis(2000) >= late.span(),
        "{server}: the late player got {:?} of video within {:?}",
        late.span(),
        late.spread()
    );
}

#[test]
fn raw_flv_to_our_relay_goes_out_in_real_time() {
    let port = free_port();
    let relay = Pipeline::parse(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} stream=in eos-on-unpublish=true \
         handshake-timeout=30 ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out handshake-timeout=30"
    ));
    let (connected, _) = count_clients(&relay.by_name("sink"));
    relay.play();
    common::wait_for_port(port, DEADLINE);
    let got = publish_with_a_late_joiner(
        &format!("rtmp://127.0.0.1:{port}/live/in"),
        &format!("rtmp://127.0.0.1:{port}/live/out"),
        |n| connected.load(Ordering::SeqCst) >= n,
    );
    check_players(got, "our relay");
}

#[test]
fn raw_flv_to_nginx_goes_out_in_real_time() {
    let nginx = common::Nginx::start_idle_streams();
    let url = format!("rtmp://127.0.0.1:{}/live/s", nginx.port);
    let got = publish_with_a_late_joiner(&url, &url, |n| {
        nginx.error_log().matches("play: name='s'").count() >= n
    });
    check_players(got, "nginx-rtmp");
}

#[test]
fn filesrc_into_rtmpserversink_with_sync_is_served_in_real_time() {
    let media = common::test_media(6);
    let want = common::ffprobe_counts(&media);
    let server = Pipeline::parse(&format!(
        "{} ! rtmpserversink name=sink address=127.0.0.1 port=0 stream=s sync=true \
         handshake-timeout=30",
        filesrc(&media)
    ));
    let (connected, _) = count_clients(&server.by_name("sink"));
    // PAUSED: the port is bound, nothing is rendered yet.
    server
        .0
        .set_state(gst::State::Paused)
        .expect("server to PAUSED");
    let mut port = 0u32;
    wait_until("the server port", DEADLINE, || {
        port = server.by_name("sink").property("port");
        port != 0
    });
    let (player, got) = player(&format!("rtmp://127.0.0.1:{port}/live/s"));
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    let took = run_to_eos(&server);
    player.wait_eos(DEADLINE);
    let got = got.lock().unwrap();
    println!(
        "served in {took:?}; the player got {} video frames over {:?}",
        got.video.len(),
        got.spread()
    );
    assert!(
        took >= Duration::from_secs(5),
        "a 6 s file served in {took:?}"
    );
    assert_eq!((got.video.len() as u64, got.audio as u64), want);
    got.assert_continuous("the player", 0);
    assert!(
        got.spread() >= Duration::from_secs(4),
        "6 s of video arrived within {:?}",
        got.spread()
    );
}

#[test]
fn a_looped_file_continues_the_timeline_without_a_burst_or_a_stall() {
    // The 3 s file twice (multifilesrc reads each round as one buffer, header and all).
    let media = common::test_media(3);
    let (v, a) = common::ffprobe_counts(&media);
    let source = format!("multifilesrc location={} stop-index=1", media.display());

    // rtmpclientsink into our ingest.
    let (server, port, got) = ingest();
    let publisher = publisher(&source, &format!("rtmp://127.0.0.1:{port}/live/s"), "");
    let took = run_to_eos(&publisher);
    server.wait_eos(DEADLINE);
    let got = std::mem::take(&mut *got.lock().unwrap());
    println!(
        "rtmpclientsink: two rounds in {took:?}, {} video frames over {:?}",
        got.video.len(),
        got.spread()
    );
    assert_eq!((got.video.len() as u64, got.audio as u64), (2 * v, 2 * a));
    got.assert_continuous("rtmpclientsink, looped", 1);
    assert!(
        took >= Duration::from_secs(5),
        "two rounds of 3 s in {took:?}"
    );
    assert!(
        got.spread() >= Duration::from_millis(4500),
        "6 s of video arrived within {:?}",
        got.spread()
    );

    // rtmpserversink serving the same loop.
    let server = Pipeline::parse(&format!(
        "{source} ! rtmpserversink name=sink address=127.0.0.1 port=0 stream=s sync=true \
         handshake-timeout=30"
    ));
    let (connected, _) = count_clients(&server.by_name("sink"));
    server
        .0
        .set_state(gst::State::Paused)
        .expect("server to PAUSED");
    let mut port = 0u32;
    wait_until("the server port", DEADLINE, || {
        port = server.by_name("sink").property("port");
        port != 0
    });
    let (player, got) = player(&format!("rtmp://127.0.0.1:{port}/live/s"));
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    let took = run_to_eos(&server);
    player.wait_eos(DEADLINE);
    let got = got.lock().unwrap();
    println!(
        "rtmpserversink: two rounds in {took:?}, {} video frames over {:?}",
        got.video.len(),
        got.spread()
    );
    assert_eq!((got.video.len() as u64, got.audio as u64), (2 * v, 2 * a));
    got.assert_continuous("rtmpserversink, looped", 1);
    assert!(
        took >= Duration::from_secs(5),
        "two rounds of 3 s in {took:?}"
    );
    assert!(
        got.spread() >= Duration::from_millis(4500),
        "6 s of video arrived within {:?}",
        got.spread()
    );
}

#[test]
fn a_pause_holds_the_stream_and_playing_goes_on_from_there() {
    let media = common::test_media(6);
    let want = common::ffprobe_counts(&media);
    let (server, port, got) = ingest();
    let publisher = publisher(
        &filesrc(&media),
        &format!("rtmp://127.0.0.1:{port}/live/s"),
        "",
    );
    let started = Instant::now();
    publisher.play();
    wait_until("a third of the frames to go out", DEADLINE, || {
        frames_sent(&publisher) >= (want.0 + want.1) / 3
    });
    publisher
        .0
        .set_state(gst::State::Paused)
        .expect("publisher to PAUSED");
    std::thread::sleep(Duration::from_secs(2));
    publisher.play();
    publisher.wait_eos(DEADLINE);
    let took = started.elapsed();
    server.wait_eos(DEADLINE);
    let got = got.lock().unwrap();
    println!(
        "6 s with a 2 s pause in {took:?}; longest gap at the server {:?}",
        got.longest_gap()
    );
    assert_eq!((got.video.len() as u64, got.audio as u64), want);
    got.assert_continuous("paused and played on", 0);
    // Running time stood still while paused: the rest of the file still took its time.
    assert!(
        took >= Duration::from_secs(7),
        "6 s of media with a 2 s pause went out in {took:?}"
    );
    assert!(
        got.longest_gap() >= Duration::from_millis(1500),
        "nothing stopped during the pause: longest gap {:?}",
        got.longest_gap()
    );
}

#[test]
fn stopping_in_the_middle_ends_the_wait() {
    let media = common::test_media(20);
    let (v, _) = common::ffprobe_counts(&media);

    // rtmpclientsink, one second into a paced 20 s file.
    let (server, port, got) = ingest();
    let publisher = publisher(
        &filesrc(&media),
        &format!("rtmp://127.0.0.1:{port}/live/s"),
        "",
    );
    publisher.play();
    wait_until("the first frames at the server", DEADLINE, || {
        got.lock().unwrap().video.len() >= 30
    });
    let stop = Instant::now();
    publisher
        .0
        .set_state(gst::State::Null)
        .expect("publisher to NULL");
    let stopping = stop.elapsed();
    println!("rtmpclientsink stopped in {stopping:?}");
    assert!(
        stopping < Duration::from_secs(10),
        "stopping took {stopping:?}"
    );
    server.wait_eos(DEADLINE);
    let n = got.lock().unwrap().video.len() as u64;
    assert!((30..v).contains(&n), "{n} of {v} video frames arrived");

    // rtmpserversink with a player.
    let server = Pipeline::parse(&format!(
        "{} ! rtmpserversink name=sink address=127.0.0.1 port=0 stream=s sync=true linger=0 \
         handshake-timeout=30",
        filesrc(&media)
    ));
    let (connected, _) = count_clients(&server.by_name("sink"));
    server.play();
    let mut port = 0u32;
    wait_until("the server port", DEADLINE, || {
        port = server.by_name("sink").property("port");
        port != 0
    });
    let (player, got) = player(&format!("rtmp://127.0.0.1:{port}/live/s"));
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    wait_until("the first frames at the player", DEADLINE, || {
        got.lock().unwrap().video.len() >= 30
    });
    let stop = Instant::now();
    server
        .0
        .set_state(gst::State::Null)
        .expect("server to NULL");
    let stopping = stop.elapsed();
    println!("rtmpserversink stopped in {stopping:?}");
    assert!(
        stopping < Duration::from_secs(10),
        "stopping took {stopping:?}"
    );
    player.wait_eos(DEADLINE);
    let n = got.lock().unwrap().video.len() as u64;
    assert!((30..v).contains(&n), "{n} of {v} video frames arrived");
}

#[test]
fn without_sync_both_sinks_go_as_fast_as_they_can() {
    let media = common::test_media(20);
    let want = common::ffprobe_counts(&media);

    let (server, port, got) = ingest();
    let publisher = publisher(
        &filesrc(&media),
        &format!("rtmp://127.0.0.1:{port}/live/s"),
        "sync=false",
    );
    let took = run_to_eos(&publisher);
    server.wait_eos(DEADLINE);
    println!("rtmpclientsink sync=false: 20 s of media in {took:?}");
    let got = got.lock().unwrap();
    assert_eq!((got.video.len() as u64, got.audio as u64), want);
    got.assert_continuous("rtmpclientsink sync=false", 0);
    assert!(
        took < Duration::from_secs(10),
        "20 s of media took {took:?}"
    );

    // rtmpserversink's default is sync=false: a relay passes on what it gets at once.
    let server = Pipeline::parse(&format!(
        "{} ! rtmpserversink name=sink address=127.0.0.1 port=0 stream=s handshake-timeout=30",
        filesrc(&media)
    ));
    assert!(!server.by_name("sink").property::<bool>("sync"));
    let (connected, _) = count_clients(&server.by_name("sink"));
    server
        .0
        .set_state(gst::State::Paused)
        .expect("server to PAUSED");
    let mut port = 0u32;
    wait_until("the server port", DEADLINE, || {
        port = server.by_name("sink").property("port");
        port != 0
    });
    let (player, got) = player(&format!("rtmp://127.0.0.1:{port}/live/s"));
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    let took = run_to_eos(&server);
    player.wait_eos(DEADLINE);
    println!("rtmpserversink sync=false: 20 s of media in {took:?}");
    let got = got.lock().unwrap();
    assert_eq!((got.video.len() as u64, got.audio as u64), want);
    got.assert_continuous("rtmpserversink sync=false", 0);
    assert!(
        took < Duration::from_secs(10),
        "20 s of media took {took:?}"
    );
}
