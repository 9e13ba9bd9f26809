//! RTMP → WebRTC: what a viewer waits for and what a viewer costs the server.
//!
//! Run: `cargo bench --bench whep -- [--viewers 0,10,20] [--seconds 10] [--joins 9]
//! [--no-chromium]`; smoke run: `cargo bench --bench whep -- --smoke`. Under `cargo test` (no
//! `--bench` argument) it does nothing.
//!
//! The demo's release binary (`cargo build --release --example demo`, built by the bench) is
//! the server: `rtmpserversrc` ingest, the shared H.264 and Opus branches, one webrtcbin per
//! viewer (see `examples/browser/`). ffmpeg publishes to it, 640×360 at 30 fps, a keyframe
//! every second, with AAC:
//! - *pass-through*: `-bf 0`, the publisher's H.264 goes to every viewer as it is;
//! - *re-encode*: `-bf 2`, B-frames, so the demo decodes and re-encodes once (x264,
//!   constrained baseline) for all viewers.
//!
//! For each case it measures, in a network namespace with loopback only (the bench re-runs
//! itself under `unshare -n`):
//! 1. join time — from the WHEP POST to the first decoded video frame at a webrtcbin viewer
//!    (`rtph264depay ! avdec_h264`), `--joins` times one after another, each POST at a random
//!    point of the GOP;
//! 2. server CPU — the demo process's utime+stime from `/proc` over `--seconds`, with 0 and
//!    then N webrtcbin viewers watching (viewers decode nothing: depayload only, so the load
//!    on the machine stays the server's); the increment per viewer is the viewer cost;
//! 3. in headless Chromium (Debian's), the page's own figures: POST → first frame shown
//!    (`requestVideoFrameCallback`) and the jitter-buffer delay of video and audio
//!    (`getStats()` inbound-rtp `jitterBufferDelay / jitterBufferEmittedCount`).
//!
//! Figures are for loopback: no network delay, no loss. The viewers run in this process on
//! the same two cores as the server, so the CPU figures include the server's share of
//! contention; run on a quiet machine.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

#[path = "../examples/browser/mod.rs"]
#[allow(unused_imports)]
mod browser;

#[path = "../tests/webrtc/mod.rs"]
mod webrtc;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use browser::http::parse_report;
use common::{ChildGuard, TempDir, free_port, wait_for_port};
use webrtc::{Chromium, Player, http};

struct Options {
    viewers: Vec<usize>,
    seconds: u64,
    joins: usize,
    chromium: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        viewers: vec![0, 10, 20],
        seconds: 10,
        joins: 9,
        chromium: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--bench" => {}
            "--viewers" => {
                o.viewers = value()?
                    .split(',')
                    .map(|v| {
                        v.parse()
                            .map_err(|_| format!("--viewers: {v:?} is not a count"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                o.seconds = value()?
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or("--seconds: a positive integer")?;
            }
            "--joins" => {
                o.joins = value()?
                    .parse()
                    .ok()
                    .filter(|j| *j > 0)
                    .ok_or("--joins: a positive integer")?;
            }
            "--no-chromium" => o.chromium = false,
            "--smoke" => {
                o.viewers = vec![0, 2];
                o.seconds = 2;
                o.joins = 1;
                o.chromium = false;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !o.viewers.contains(&0) {
        o.viewers.insert(0, 0);
    }
    Ok(o)
}

/// The demo process and its ports.
struct Demo {
    child: ChildGuard,
    rtmp_port: u16,
    http_port: u16,
    _dir: TempDir,
}

/// `--copy`: the demo's RTMP and HLS outputs pass the publisher's H.264 through, so its CPU is
/// the ingest, the WebRTC branches and the viewers (its x264 for HLS would dwarf them).
fn start_demo(bin: &std::path::Path) -> Demo {
    let dir = TempDir::new("whep-bench");
    let (rtmp_port, http_port) = (free_port(), free_port());
    let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["--external-publisher", "--port", &rtmp_port.to_string()])
        .args(["--http-port", &http_port.to_string()])
        .arg("--hls-dir")
        .arg(dir.path().join("hls"))
        .arg("--copy");
    let child = ChildGuard::spawn(
        "demo",
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    );
    wait_for_port(http_port, Duration::from_secs(60));
    Demo {
        child,
        rtmp_port,
        http_port,
        _dir: dir,
    }
}

fn ffmpeg_publisher(url: &str, bframes: u32) -> ChildGuard {
    common::require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "30"])
            .args(["-bf", &bframes.to_string(), "-b:v", "800k"])
            .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; here 11 and 12 (state is field 3).
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Waits until the publisher is on and, for a B-frame stream, the demo re-encodes it.
fn wait_live(demo: &Demo, reencode: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = http(demo.http_port, "GET", "/stats", &[], "").body;
        if stats.contains("publisher: connected") && (!reencode || stats.contains("re-encoded")) {
            // Settle: a few keyframes through every branch.
            std::thread::sleep(Duration::from_secs(3));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not get the stream in 60 s: {stats}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Joins one decoding viewer and returns the time from the POST to its first decoded frame.
/// The POST comes at a random point of a 1 s GOP: joins one after the other would otherwise
/// fall at the same phase of it (each one just after the keyframe the last one waited for).
fn join_time(demo: &Demo) -> Duration {
    let mut p = Player::with(true);
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 1000));
    let start = Instant::now();
    let reply = p.join(demo.http_port, "/live/ingest/whep");
    assert_eq!(reply.status, 201, "WHEP POST: {}", reply.body);
    let deadline = start + Duration::from_secs(30);
    while p.frames().0 == 0 {
        assert!(Instant::now() < deadline, "no frame 30 s after the POST");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// The demo's CPU (% of one core) over `window` with `n` depayload-only viewers watching.
fn cpu_with(demo: &Demo, n: usize, window: Duration) -> (f64, u64) {
    let mut viewers: Vec<Player> = (0..n).map(|_| Player::with(false)).collect();
    for v in &mut viewers {
        let reply = v.join(demo.http_port, "/live/ingest/whep");
        assert_eq!(reply.status, 201, "WHEP POST: {}", reply.body);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while viewers.iter().any(|v| v.frames().0 == 0) {
        assert!(Instant::now() < deadline, "a viewer got no frame in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let pid = demo.child.child.id();
    let before: u64 = viewers.iter().map(|v| v.frames().0).sum();
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(window);
    let (c1, t1) = (cpu_seconds(pid), Instant::now());
    let after: u64 = viewers.iter().map(|v| v.frames().0).sum();
    let pct = 100.0 * (c1 - c0) / (t1 - t0).as_secs_f64();
    // Frames the viewers got in the window: the check that they were really watching.
    (pct, after - before)
}

/// The page in Chromium: (first frame ms, video jitter buffer ms, audio jitter buffer ms).
fn chromium_figures(demo: &Demo) -> Option<(f64, f64, f64)> {
    let dir = TempDir::new("whep-bench-chromium");
    let _chromium = Chromium::open(&format!("http://127.0.0.1:{}/", demo.http_port), dir.path());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = parse_report(&http(demo.http_port, "GET", "/report", &[], "").body);
        let get = |k: &str| r.get(k).copied().unwrap_or(0.0);
        // ~10 s of playing: the jitter buffer's figure is an average since the start.
        if get("webrtc.framesDecoded") >= 300.0 && get("webrtc.firstFrameMs") > 0.0 {
            return Some((
                get("webrtc.firstFrameMs"),
                get("webrtc.jitterBufferMs"),
                get("webrtc.audioJitterBufferMs"),
            ));
        }
        if Instant::now() > deadline {
            eprintln!("whep: Chromium did not play 300 frames in 90 s: {r:?}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct CaseResult {
    label: &'static str,
    joins: Vec<f64>,
    cpu: Vec<(usize, f64, u64)>,
    chromium: Option<(f64, f64, f64)>,
}

fn run_case(
    opts: &Options,
    bin: &std::path::Path,
    label: &'static str,
    bframes: u32,
) -> CaseResult {
    let demo = start_demo(bin);
    let url = format!("rtmp://127.0.0.1:{}/live/ingest", demo.rtmp_port);
    let _publisher = ffmpeg_publisher(&url, bframes);
    wait_live(&demo, bframes > 0);
    let stats = http(demo.http_port, "GET", "/stats", &[], "").body;
    eprintln!("whep: {label}: {}", stats.trim());
    let joins: Vec<f64> = (0..opts.joins)
        .map(|_| join_time(&demo).as_secs_f64() * 1e3)
        .collect();
    eprintln!("whep: {label}: join times {joins:.0?} ms");
    let window = Duration::from_secs(opts.seconds);
    let cpu: Vec<(usize, f64, u64)> = opts
        .viewers
        .iter()
        .map(|&n| {
            let (pct, frames) = cpu_with(&demo, n, window);
            eprintln!("whep: {label}: {n} viewers: demo CPU {pct:.1} %, {frames} frames to them");
            (n, pct, frames)
        })
        .collect();
    let chromium = if opts.chromium {
        chromium_figures(&demo)
    } else {
        None
    };
    CaseResult {
        label,
        joins,
        cpu,
        chromium,
    }
}

fn print(results: &[CaseResult], seconds: u64) {
    println!(
        "\n| case | POST → first decoded frame, webrtcbin (median / max ms) | viewers | demo CPU % of a core | + per viewer (ms CPU / viewer-s) | frames to viewers in {seconds} s |"
    );
    println!("|---|---|---|---|---|---|");
    for r in results {
        let base = r.cpu.first().map(|c| c.1).unwrap_or(0.0);
        let max = r.joins.iter().copied().fold(0.0, f64::max);
        for (i, (n, pct, frames)) in r.cpu.iter().enumerate() {
            let per = if *n == 0 {
                "—".to_string()
            } else {
                format!("{:.2}", (pct - base) * 10.0 / *n as f64)
            };
            let join = if i == 0 {
                format!("{:.0} / {max:.0}", median(r.joins.clone()))
            } else {
                String::new()
            };
            println!(
                "| {} | {join} | {n} | {pct:.1} | {per} | {frames} |",
                r.label
            );
        }
    }
    if results.iter().any(|r| r.chromium.is_some()) {
        println!(
            "\n| case (Chromium, headless) | POST → first frame shown ms | video jitter buffer ms | audio jitter buffer ms |"
        );
        println!("|---|---|---|---|");
        for r in results {
            if let Some((first, vj, aj)) = r.chromium {
                println!("| {} | {first:.0} | {vj:.0} | {aj:.0} |", r.label);
            }
        }
    }
}

/// Runs this bench again in a network namespace where only loopback is up (Chromium's and
/// libnice's candidates stay on 127.0.0.1). Returns false in the parent, after the child ran.
fn in_netns(args: &[String]) -> bool {
    if std::env::var_os("RSRTMP_IN_NETNS").is_some() {
        return true;
    }
    common::require("unshare", "util-linux");
    common::require("ip", "iproute2");
    let root = unsafe { libc::geteuid() } == 0;
    let status = Command::new("unshare")
        .arg(if root { "-n" } else { "-rn" })
        .args(["--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().expect("current_exe"))
        .args(args)
        .env("RSRTMP_IN_NETNS", "1")
        .status()
        .expect("run unshare");
    if !status.success() {
        eprintln!("whep: the bench failed in its network namespace: {status}");
        std::process::exit(1);
    }
    false
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("whep: {e}");
            std::process::exit(2);
        }
    };
    // Built outside the namespace (cargo may want the registry index; it never does when
    // the lock file is up to date, but a build there would have no network).
    let bin = common::example_binary("demo");
    if !in_netns(&args) {
        return;
    }
    common::init_gst();
    println!(
        "whep: demo {}; ffmpeg 640x360 30 fps, keyframe every 30 frames, 800 kbit/s + AAC; {} s windows; {} joins",
        bin.display(),
        opts.seconds,
        opts.joins
    );
    let results = vec![
        run_case(&opts, &bin, "pass-through (no B-frames)", 0),
        run_case(&opts, &bin, "re-encode (B-frames)", 2),
    ];
    print(&results, opts.seconds);
}
