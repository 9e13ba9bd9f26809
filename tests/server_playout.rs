//! rtmpserversink against real players (ffmpeg, rtmpdump, GStreamer's rtmp2src): each gets every
//! frame and finishes on its own at EOS; 50 and 160 concurrent players each get every frame; a player
//! joining mid-stream starts with the sequence headers and a keyframe; a player that stops
//! reading costs the others nothing.

mod common;

use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::server_peers::*;
use common::{ChildGuard, TempDir, ffprobe_counts, require, test_media};
use gst::prelude::*;
use gstrsrtmp::rtmp::session::{ClientEvent, ClientRole};

const DEADLINE: Duration = Duration::from_secs(90);

fn playout_pipeline(extra: &str) -> Pipeline {
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=s {extra}"
    ));
    p.play();
    p
}

fn url(port: u16) -> String {
    format!("rtmp://127.0.0.1:{port}/live/s")
}

fn ffmpeg_player(port: u16, out: &Path) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i", &url(port)])
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// rtmpdump, quiet: its stderr is a pipe read only at the end, and a chatty child would block
/// on a full pipe. `-m`: how long it waits for data; the first of 160 players waits until the
/// last has started, which takes a while on a loaded machine (the test's deadline comes first).
fn rtmpdump_player(port: u16, out: &Path) -> ChildGuard {
    require("rtmpdump", "rtmpdump");
    ChildGuard::spawn(
        "rtmpdump",
        Command::new("rtmpdump")
            .args(["-q", "-v", "-m", "120", "-r", &url(port), "-o"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// rtmpdump over RTMPE: the per-connection cipher rules out the shared bytes, so this player
/// takes the session's own writer.
fn rtmpdump_rtmpe_player(port: u16, out: &Path) -> ChildGuard {
    require("rtmpdump", "rtmpdump");
    ChildGuard::spawn(
        "rtmpdump",
        Command::new("rtmpdump")
            .args(["-q", "-v", "-m", "120", "-r"])
            .arg(format!("rtmpe://127.0.0.1:{port}/live/s"))
            .arg("-o")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

fn rtmp2src_player(port: u16, out: &Path) -> ChildGuard {
    require("gst-launch-1.0", "gstreamer1.0-tools");
    ChildGuard::spawn(
        "rtmp2src",
        Command::new("gst-launch-1.0")
            .args(["-q", "-e", "rtmp2src"])
            .arg(format!("location={}", url(port)))
            .args(["!", "filesink"])
            .arg(format!("location={}", out.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// Starts the players, waits until all of them are in, serves the whole file, and checks that
/// every player finished on its own with every frame.
/// Starts a player program on a port, writing what it receives to a file.
type StartPlayer = fn(u16, &Path) -> ChildGuard;

fn serve_to(players: &[(&str, StartPlayer)], extra: &str) {
    let media = test_media(4);
    let data = std::fs::read(&media).unwrap();
    let want = ffprobe_counts(&media);
    let p = playout_pipeline(extra);
    let (connected, _) = count_clients(&p.by_name("sink"));
    let port = p.port("sink");
    let dir = TempDir::new("playout");
    let mut running: Vec<(String, PathBuf, ChildGuard)> = players
        .iter()
        .enumerate()
        .map(|(i, (name, start))| {
            let out = dir.path().join(format!("{name}-{i}.flv"));
            let child = start(port, &out);
            (format!("{name} #{i}"), out, child)
        })
        .collect();
    wait_until("every player to connect", DEADLINE, || {
        connected.load(Ordering::SeqCst) == players.len()
    });
    push_file(&p.by_name("src"), &data, 64 * 1024);
    p.wait_eos(DEADLINE);
    for (name, out, child) in &mut running {
        let status = wait_or_explain(child, DEADLINE);
        // rtmpdump exits with 2 ("download may be incomplete") when the last timestamp falls
        // short of the metadata's duration, which a live stream's last frame always does; the
        // frame count below is what says whether it got everything.
        let ok = status.success() || (name.starts_with("rtmpdump") && status.code() == Some(2));
        let log = child.stderr_text();
        assert!(ok, "{name} failed ({status}): {log}");
        assert_eq!(
            ffprobe_counts(out),
            want,
            "{name}: frames (video, audio); its log: {log}"
        );
    }
}

#[test]
fn ffmpeg_rtmpdump_rtmp2src_and_an_rtmpe_player_get_every_frame() {
    serve_to(
        &[
            ("ffmpeg", ffmpeg_player),
            ("rtmpdump", rtmpdump_player),
            ("rtmp2src", rtmp2src_player),
            ("rtmpdump-rtmpe", rtmpdump_rtmpe_player),
        ],
        "",
    );
}

#[test]
fn fifty_concurrent_players_each_get_every_frame() {
    let players = vec![("rtmpdump", rtmpdump_player as StartPlayer); 50];
    serve_to(&players, "");
}

/// Past 128 players the hub delivers each message from two threads (each with its half of the
/// players): every one of them still gets every frame, in order.
#[test]
fn a_hundred_and_sixty_players_each_get_every_frame() {
    let players = vec![("rtmpdump", rtmpdump_player as StartPlayer); 160];
    serve_to(&players, "");
}

fn first_video_packet_is_key(path: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=flags",
        ])
        .args(["-of", "csv=p=0", "-read_intervals", "%+#1"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim_start()
        .starts_with('K')
}

fn video_width(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=width",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stats_bytes(sink: &gst::Element) -> Vec<(String, u64, u64)> {
    let stats: gst::Structure = sink.property("stats");
    let list = stats.get::<gst::Array>("client-stats").unwrap();
    list.iter()
        .map(|v| {
            let s = v.get::<gst::Structure>().unwrap();
            (
                s.get::<String>("address").unwrap(),
                s.get::<u64>("bytes").unwrap(),
                s.get::<u64>("drops").unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_player_joining_mid_stream_starts_with_headers_and_a_keyframe() {
    let media = test_media(4);
    let data = std::fs::read(&media).unwrap();
    let want = ffprobe_counts(&media);
    let p = playout_pipeline("");
    let sink = p.by_name("sink");
    let (connected, _) = count_clients(&sink);
    let port = p.port("sink");
    let dir = TempDir::new("midstream");
    let early_out = dir.path().join("early.flv");
    let late_out = dir.path().join("late.flv");
    let mut early = ffmpeg_player(port, &early_out);
    wait_until("the first player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });

    let src = p.by_name("src").downcast::<gst_app::AppSrc>().unwrap();
    let half = data.len() / 2 + 777; // not at a tag boundary
    for chunk in data[..half].chunks(64 * 1024) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec()))
            .unwrap();
    }
    wait_until("the first half to reach the first player", DEADLINE, || {
        stats_bytes(&sink)
            .first()
            .is_some_and(|s| s.1 as usize > half * 9 / 10)
    });
    let mut late = ffmpeg_player(port, &late_out);
    wait_until("the second player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 2
    });
    for chunk in data[half..].chunks(64 * 1024) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec()))
            .unwrap();
    }
    src.end_of_stream().unwrap();
    p.wait_eos(DEADLINE);
    for (name, child) in [("early", &mut early), ("late", &mut late)] {
        let status = wait_or_explain(child, DEADLINE);
        assert!(status.success(), "{name} player: {}", child.stderr_text());
    }
    assert_eq!(ffprobe_counts(&early_out), want);
    let (late_v, late_a) = ffprobe_counts(&late_out);
    assert!(
        late_v > 0 && late_v < want.0,
        "late player got {late_v} of {} video frames",
        want.0
    );
    assert!(late_a > 0, "late player got no audio");
    assert!(
        first_video_packet_is_key(&late_out),
        "late player did not start with a keyframe"
    );
    assert_eq!(
        video_width(&late_out),
        "320",
        "late player has no usable sequence header"
    );
}

/// A TCP socket with a tiny receive buffer, so that a player that stops reading stalls fast.
fn small_window_socket(port: u16) -> std::net::TcpStream {
    // SAFETY: plain socket calls on a descriptor this function owns until it is handed to
    // TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket() failed");
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect() failed");
        std::net::TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn a_player_that_stops_reading_does_not_delay_the_others() {
    // Long enough to overflow what the kernel buffers for the stalled player plus its queue.
    let media = test_media(8);
    let data = std::fs::read(&media).unwrap();
    let want = ffprobe_counts(&media);
    let p = playout_pipeline("queue-size=131072");
    let sink = p.by_name("sink");
    let (connected, _) = count_clients(&sink);
    let port = p.port("sink");

    // The stalled player: plays, then never reads again.
    let mut stalled = RawClient::over(small_window_socket(port), port, "live", ClientRole::Play);
    stalled.session.play("s", -2000.0).unwrap();
    let ev = stalled.run_until(DEADLINE, |e| {
        matches!(
            e,
            ClientEvent::PlayStarted { .. } | ClientEvent::StreamRejected(_)
        )
    });
    assert!(
        matches!(ev, Some(ClientEvent::PlayStarted { .. })),
        "{ev:?}"
    );

    let dir = TempDir::new("slow");
    let out = dir.path().join("ffmpeg.flv");
    let mut good = ffmpeg_player(port, &out);
    wait_until("both players", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 2
    });
    let stalled_addr = stalled.sock.local_addr().unwrap().to_string();
    // Feed the stream no faster than the reading player takes it, so that only the stalled
    // player's queue can overflow (a burst larger than the queue would make anyone skip).
    let src = p.by_name("src").downcast::<gst_app::AppSrc>().unwrap();
    let mut pushed = 0usize;
    for chunk in data.chunks(8 * 1024) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec()))
            .unwrap();
        pushed += chunk.len();
        wait_until("the reading player to keep up", DEADLINE, || {
            stats_bytes(&sink)
                .iter()
                .any(|s| s.0 != stalled_addr && s.1 as usize + 96 * 1024 >= pushed)
        });
    }
    // Players leave the stats at EOS: read them before.
    let stats = stats_bytes(&sink);
    src.end_of_stream().unwrap();
    p.wait_eos(DEADLINE);
    let status = wait_or_explain(&mut good, DEADLINE);
    assert!(status.success(), "ffmpeg player: {}", good.stderr_text());
    assert_eq!(
        ffprobe_counts(&out),
        want,
        "the reading player got every frame"
    );
    let (_, _, drops) = stats
        .iter()
        .find(|s| s.0 == stalled_addr)
        .unwrap_or_else(|| panic!("no stats for the stalled player {stalled_addr}: {stats:?}"));
    assert!(
        *drops > 0,
        "the stalled player should have skipped frames: {stats:?}"
    );
}

/// `data` (an FLV file) with a copy of its first script tag (`onMetaData`) inserted before the
/// first tag stamped `at_ms` or later, stamped with that tag's time: what flvmux sends when the
/// tags change mid-stream.
fn with_metadata_update(data: &[u8], at_ms: u32) -> Vec<u8> {
    let tag_at = |pos: usize| {
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        (data[pos], ts, 11 + size + 4)
    };
    let mut script = None;
    let mut pos = 13;
    while pos + 11 <= data.len() {
        let (kind, ts, len) = tag_at(pos);
        if kind == 18 && script.is_none() {
            script = Some(data[pos..pos + len].to_vec());
        }
        if ts >= at_ms {
            let mut update = script.expect("the file has an onMetaData tag first");
            update[4..7].copy_from_slice(&ts.to_be_bytes()[1..]);
            update[7] = (ts >> 24) as u8;
            let mut out = data[..pos].to_vec();
            out.extend_from_slice(&update);
            out.extend_from_slice(&data[pos..]);
            return out;
        }
        pos += len;
    }
    panic!("no tag at {at_ms} ms or later");
}

/// A player joining after the metadata changed mid-stream gets `onMetaData` at timestamp 0,
/// ahead of the headers and the GOP: FFmpeg then sees exactly the video and the audio stream
/// (metadata stamped with the stream time made it open a third, "data" stream).
#[test]
fn a_late_player_sees_only_video_and_audio_after_a_metadata_update() {
    require("ffprobe", "ffmpeg");
    let media = test_media(4);
    let data = with_metadata_update(&std::fs::read(&media).unwrap(), 2000);
    let p = playout_pipeline("");
    let sink = p.by_name("sink");
    let (connected, _) = count_clients(&sink);
    let port = p.port("sink");
    let src = p.by_name("src").downcast::<gst_app::AppSrc>().unwrap();
    // Everything up to well past the update (3 of 4 seconds), then a player joins.
    let cut = data.len() * 3 / 4;
    for chunk in data[..cut].chunks(64 * 1024) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec()))
            .unwrap();
    }
    let mut probe = ChildGuard::spawn(
        "ffprobe player",
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_type"])
            .args(["-of", "csv=p=0", &url(port)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    wait_until("the ffprobe player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    for chunk in data[cut..].chunks(64 * 1024) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec()))
            .unwrap();
    }
    src.end_of_stream().unwrap();
    p.wait_eos(DEADLINE);
    let status = wait_or_explain(&mut probe, DEADLINE);
    let mut types = String::new();
    std::io::Read::read_to_string(probe.child.stdout.as_mut().unwrap(), &mut types).unwrap();
    assert!(status.success(), "ffprobe: {}", probe.stderr_text());
    let mut types: Vec<&str> = types.split_whitespace().collect();
    types.sort();
    assert_eq!(
        types,
        ["audio", "video"],
        "the streams ffprobe found in the late join"
    );
}
