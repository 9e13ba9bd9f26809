//! Reconnection against a real server that goes away: nginx-rtmp is killed mid-stream and
//! started again on the same port.
//!
//! Publisher: the sink reconnects by itself, re-sends the headers and resumes at a key frame;
//! a player that joins the new server gets a stream that starts with a key frame and has no
//! gap; the test reports the frames held, resent and dropped (zero drops when the outage fits
//! `max-hold-time`, counted drops and a warning when it does not).
//! Player: the source reconnects, marks a discontinuity and plays the new publication.
//! Pausing a playing source keeps its connection.

mod common;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

const BOUND: Duration = Duration::from_secs(90);

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (dts ms, key) of each packet of one stream of a media file, as ffprobe reads them.
fn packets(path: &std::path::Path, stream: &str) -> Vec<(i64, bool)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=dts,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (dts, flags) = l.split_once(',')?;
            Some((dts.parse().ok()?, flags.starts_with('K')))
        })
        .collect()
}

fn largest_gap(p: &[(i64, bool)]) -> i64 {
    p.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or(0)
}

/// A TCP forwarder from a loopback port to `target`, for the publisher only: dropping it stops
/// accepting (connections already forwarded go on until either end closes), and opening it
/// again on the same port lets the publisher back in when the test says so.
struct Gate {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    /// `port` 0 takes a free one.
    fn open(port: u16, target: u16) -> Gate {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the gate");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => forward(client, target),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Gate {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways between `client` and a new connection to `target`; when either end
/// closes, both are shut down.
fn forward(client: TcpStream, target: u16) {
    client.set_nonblocking(false).unwrap();
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let pairs = [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ];
    for (mut from, mut to) in pairs {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}

/// Publishes 10 s of live H.264 + AAC, kills nginx after 3 s, restarts it, lets a player join
/// the new server, and returns the sink's final stats, the player's file and the warnings.
fn publish_through_restart(
    max_hold_ms: u32,
    dir: &common::TempDir,
) -> (gst::Structure, std::path::PathBuf, Vec<String>) {
    common::init_gst();
    let port = common::free_port();
    let nginx = common::Nginx::start_idle_streams_on(port);
    let url = format!("rtmp://127.0.0.1:{port}/live/re");
    // The publisher reaches nginx through a gate that stays shut from the kill until a player
    // is on the new server, so the player sees the whole resumed stream however slow the
    // machine; meanwhile the sink tries again every second, for as long as it takes.
    let gate = Gate::open(0, port);
    let gate_port = gate.port;
    let publisher = common::pipeline(&format!(
        "videotestsrc is-live=true num-buffers=300 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=400 ! h264parse ! \
         flvmux name=m streamable=true ! \
         rtmpclientsink name=sink location=rtmp://127.0.0.1:{gate_port}/live/re \
         reconnect-delay=1000 reconnect-max-delay=1000 reconnect-attempts=-1 max-hold-time={max_hold_ms} \
         audiotestsrc is-live=true num-buffers=469 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=1 ! \
         voaacenc ! aacparse ! m."
    ));
    let sink = publisher.by_name("sink").unwrap();
    let warnings = Arc::new(Mutex::new(Vec::new()));
    publisher.set_state(gst::State::Playing).unwrap();
    let frames = || common::stat(&sink.property::<gst::Structure>("stats"), "frames");
    wait_until("3 s of media published", BOUND, || frames() > 200);

    drop(gate);
    drop(nginx);
    let nginx = common::Nginx::start_idle_streams_on(port);
    let out = dir.path().join("player.flv");
    let player = common::pipeline(&format!(
        "rtmp2src location={url} ! filesink location={}",
        out.display()
    ));
    player.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='re'", 1, Duration::from_secs(30));
    let _gate = Gate::open(gate_port, port);

    // Collect warnings while the publisher runs to its end.
    let bus = publisher.bus().unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        assert!(Instant::now() < deadline, "the publisher did not finish");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                panic!("publisher failed: {} ({:?})", e.error(), e.debug())
            }
            gst::MessageView::Warning(w) => warnings.lock().unwrap().push(w.error().to_string()),
            gst::MessageView::Progress(p) => {
                let (kind, code, text) = p.get();
                eprintln!("progress {kind:?} {code}: {text}");
            }
            _ => {}
        }
    }
    let stats = sink.property::<gst::Structure>("stats");
    publisher.set_state(gst::State::Null).unwrap();
    common::wait_end(&player, BOUND).expect_eos();
    player.set_state(gst::State::Null).unwrap();
    let warnings = warnings.lock().unwrap().clone();
    (stats, out, warnings)
}

#[test]
fn sink_survives_a_server_restart_without_dropping() {
    let dir = common::TempDir::new("reconnect");
    let (stats, out, warnings) = publish_through_restart(10_000, &dir);
    let held = common::stat(&stats, "held");
    let resent = common::stat(&stats, "resent");
    let dropped = common::stat(&stats, "drops");
    println!("frames held {held}, resent {resent}, dropped {dropped}; stats {stats}");
    println!("warnings: {warnings:#?}");
    assert_eq!(common::stat(&stats, "reconnects"), 1);
    assert!(held > 0, "media arrived during the outage and was held");
    assert!(resent > 0, "headers and the group of pictures were re-sent");
    assert_eq!(dropped, 0, "the outage fits max-hold-time");

    let video = packets(&out, "v");
    let audio = packets(&out, "a");
    println!(
        "player on the new server: {} video, {} audio packets; first video {:?}",
        video.len(),
        audio.len(),
        video.first()
    );
    assert!(video.len() > 150, "the player got the rest of the stream");
    assert!(video[0].1, "the new stream starts with a key frame");
    // No hole anywhere: held frames filled the outage (30 fps, 1024 samples at 48 kHz).
    assert!(
        largest_gap(&video) <= 67,
        "video gap {} ms",
        largest_gap(&video)
    );
    assert!(
        largest_gap(&audio) <= 43,
        "audio gap {} ms",
        largest_gap(&audio)
    );
}

#[test]
fn sink_drops_with_a_warning_when_the_outage_exceeds_the_bound() {
    let dir = common::TempDir::new("reconnect-bound");
    let (stats, out, warnings) = publish_through_restart(300, &dir);
    let held = common::stat(&stats, "held");
    let resent = common::stat(&stats, "resent");
    let dropped = common::stat(&stats, "drops");
    println!("frames held {held}, resent {resent}, dropped {dropped}; warnings {warnings:#?}");
    assert_eq!(common::stat(&stats, "reconnects"), 1);
    assert!(
        dropped > 0,
        "an outage of at least the 1 s reconnect delay does not fit 300 ms"
    );
    assert!(
        warnings.iter().any(|w| w.contains("dropped")),
        "drops come with a warning: {warnings:?}"
    );
    let video = packets(&out, "v");
    assert!(video[0].1, "what is left still starts with a key frame");
}

#[test]
fn source_reconnects_and_marks_a_discontinuity() {
    common::init_gst();
    let media = common::test_media(3);
    let (v, _) = common::ffprobe_counts(&media);
    let port = common::free_port();
    let nginx = common::Nginx::start_idle_streams_on(port);
    let url = format!("rtmp://127.0.0.1:{port}/live/src");
    let player = common::pipeline(&format!(
        "rtmpclientsrc name=src location={url} reconnect-delay=500 ! flvdemux name=d \
         d.video ! queue ! fakesink name=v sync=false  d.audio ! queue ! fakesink name=a sync=false"
    ));
    let videos = common::count_buffers(&player, "v");
    let src = player.by_name("src").unwrap();
    let disconts = Arc::new(AtomicU64::new(0));
    let d = disconts.clone();
    src.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && b.flags().contains(gst::BufferFlags::DISCONT)
            {
                d.fetch_add(1, Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        });
    player.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='src'", 1, Duration::from_secs(30));
    let _first = common::ffmpeg_publisher(&media, &url);
    wait_until("a second of video", BOUND, || {
        videos.load(Ordering::SeqCst) > 30
    });

    drop(nginx);
    let nginx = common::Nginx::start_idle_streams_on(port);
    common::wait_for_nginx(&nginx, "play: name='src'", 1, BOUND);
    let mut second = common::ffmpeg_publisher(&media, &url);
    second.wait_timeout(BOUND);
    common::wait_end(&player, BOUND).expect_eos();
    let stats = src.property::<gst::Structure>("stats");
    player.set_state(gst::State::Null).unwrap();

    let counted = videos.load(Ordering::SeqCst);
    println!("video frames {counted} (one publication has {v}); stats {stats}");
    assert_eq!(common::stat(&stats, "reconnects"), 1);
    assert!(
        disconts.load(Ordering::SeqCst) >= 2,
        "first buffer and first after reconnect"
    );
    // Part of the first publication, then every frame of the second.
    assert!(counted > v, "{counted} <= {v}");
}

#[test]
fn pausing_a_playing_source_keeps_the_connection() {
    common::init_gst();
    let media = common::test_media(3);
    let expected = common::ffprobe_counts(&media);
    let nginx = common::Nginx::start_idle_streams();
    let url = format!("rtmp://127.0.0.1:{}/live/pause", nginx.port);
    let player = common::pipeline(&format!(
        "rtmpclientsrc name=src location={url} ! flvdemux name=d \
         d.video ! queue ! fakesink name=v sync=false  d.audio ! queue ! fakesink name=a sync=false"
    ));
    let videos = common::count_buffers(&player, "v");
    let audios = common::count_buffers(&player, "a");
    player.set_state(gst::State::Playing).unwrap();
    common::wait_for_nginx(&nginx, "play: name='pause'", 1, Duration::from_secs(30));
    let mut ffmpeg = common::ffmpeg_publisher(&media, &url);
    wait_until("some video", BOUND, || videos.load(Ordering::SeqCst) > 20);
    // PLAYING -> PAUSED unlocks the live source; the connection must stay.
    player.set_state(gst::State::Paused).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    player.set_state(gst::State::Playing).unwrap();
    ffmpeg.wait_timeout(BOUND);
    common::wait_end(&player, BOUND).expect_eos();
    let stats = player
        .by_name("src")
        .unwrap()
        .property::<gst::Structure>("stats");
    player.set_state(gst::State::Null).unwrap();

    let counted = (videos.load(Ordering::SeqCst), audios.load(Ordering::SeqCst));
    assert_eq!(counted, expected, "nothing lost across the pause");
    assert_eq!(common::stat(&stats, "reconnects"), 0);
    assert_eq!(
        nginx.error_log().matches("play: name='pause'").count(),
        1,
        "one connection"
    );
}
