//! The last frame reaches every player when a pipeline ends, tunnel players included: a
//! `gst-launch-1.0 filesrc location=FIFO ! rtmpserversink` child, fed through the FIFO at real-time
//! pace by `ffmpeg -re`, stops its pipeline at EOS. Its EOS waits until the players collected
//! the end of the stream (a tunnel player only gets it at its next poll, and the port must
//! still be there), so players over all six schemes each get every frame.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ChildGuard, TempDir, ffmpeg9, ffprobe_counts, free_port, plugin_dir, require, self_signed_cert,
    test_media, wait_for_port,
};

const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn every_scheme_gets_the_last_frame_from_a_gst_launch_server() {
    require("gst-launch-1.0", "gstreamer1.0-tools");
    require("ffmpeg", "ffmpeg");
    let media = test_media(4);
    let want = ffprobe_counts(&media);
    let dir = TempDir::new("linger");
    let (cert, key) = self_signed_cert(dir.path(), "linger");
    let fifo = dir.path().join("feed.fifo");
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
    let port = free_port();

    let mut server = ChildGuard::spawn(
        "gst-launch-1.0 server",
        Command::new("gst-launch-1.0")
            .arg("filesrc")
            .arg(format!("location={}", fifo.display()))
            .args(["!", "rtmpserversink", "address=127.0.0.1"])
            .arg(format!("port={port}"))
            .arg("stream=s")
            .arg(format!("tls-certificate-file={}", cert.display()))
            .arg(format!("tls-key-file={}", key.display()))
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("GST_DEBUG", "rsrtmp-server:4")
            .env("GST_DEBUG_NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    // The server's log, read as it comes: it says when each player is routed.
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let log = log.clone();
        let stderr = server.child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        })
    };
    wait_for_port(port, DEADLINE);

    let url = |scheme: &str| format!("{scheme}://127.0.0.1:{port}/live/s");
    // FFmpeg 5.1 over the four schemes it has, FFmpeg 9 over RTMPE and RTMPTE.
    let plan = [
        ("rtmp", Path::new("ffmpeg").to_path_buf()),
        ("rtmps", Path::new("ffmpeg").to_path_buf()),
        ("rtmpt", Path::new("ffmpeg").to_path_buf()),
        ("rtmpts", Path::new("ffmpeg").to_path_buf()),
        ("rtmpe", ffmpeg9()),
        ("rtmpte", ffmpeg9()),
    ];
    let mut players = Vec::new();
    for (scheme, bin) in &plan {
        let out = dir.path().join(format!("{scheme}.flv"));
        let mut cmd = Command::new(bin);
        cmd.args(["-nostdin", "-loglevel", "error", "-y"]);
        cmd.arg("-i")
            .arg(url(scheme))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        players.push((
            *scheme,
            out,
            ChildGuard::spawn(&format!("{scheme} player"), &mut cmd),
        ));
    }
    let started = Instant::now();
    loop {
        let routed = log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(": playing live/s over"))
            .count();
        if routed == plan.len() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "only {routed} of {} players started; server log: {:?}",
            plan.len(),
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Real-time pace into the FIFO, as `ffmpeg -re ... > FIFO` does.
    let feed = std::fs::File::create(&fifo).expect("open the FIFO for writing");
    let mut feeder = ChildGuard::spawn(
        "ffmpeg -re feeder",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv", "-"])
            .stdout(feed)
            .stderr(Stdio::piped()),
    );
    let status = feeder.wait_timeout(DEADLINE);
    assert!(status.success(), "feeder: {}", feeder.stderr_text());
    let status = server.wait_timeout(DEADLINE);
    let _ = reader.join();
    assert!(
        status.success(),
        "gst-launch-1.0 failed ({status}); its log: {:?}",
        log.lock().unwrap()
    );
    let mut failures = Vec::new();
    for (scheme, out, child) in &mut players {
        let status = child.wait_timeout(DEADLINE);
        let got = ffprobe_counts(out);
        if got != want {
            failures.push(format!(
                "{scheme}: {got:?} of {want:?} (video, audio) frames; exit {status}; {}",
                child.stderr_text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
