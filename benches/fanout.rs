//! Fan-out load test: one publisher, many players, against nginx-rtmp, our own relay,
//! node-media-server and xiu.
//!
//! Run: `cargo bench --bench fanout -- [--server nginx|rsrtmp|nms|xiu|floor|both|all|LIST]
//! [--players 100,500,1000] [--seconds 15] [--kbps 3000] [--threads 2] [--no-pin]
//! [--merge-window MS] [--queue-time MS] [--server-cpu-quota PCT] [--capacity
//! [--capacity-seconds 8] [--capacity-max 3000] [--capacity-p99 500]]`; smoke run: `--players 10 --seconds 3` (nginx-rtmp and rsrtmp, the
//! default `both`). `all` is the four servers; a comma list picks some (`--server nginx,xiu`). node-media-server (npm) and xiu
//! (crates.io) are installed on first use into a cache (`fanout/peers.rs`), never under CI.
//! `floor` is not a server but the measuring stick, named only on its own (not in `all`): one
//! send per message per player and nothing else (`fanout/floor.rs`).
//! Under `cargo test` (no `--bench` argument) it does nothing.
//!
//! The server under test runs pinned to CPU 0 and the load tool (this process: publisher and
//! players) to CPU 1, the same for every server (`fanout/pin.rs`); `--no-pin` lets both float.
//! `--merge-window MS` (MS > 0) sets rtmpserversink's `merge-window` property on our relay;
//! it does not apply to the other servers (nginx-rtmp has no merged writes; SRS's are its
//! `mw_latency`). Without it the property is not touched. `--queue-time MS` sets the sink's
//! `queue-time` the same way. `--server-cpu-quota PCT` limits the server under test to PCT %
//! of its core (a cgroup CPU quota, `fanout/quota.rs`): the overloaded case, with the load
//! tool's core left free.
//!
//! Each scenario starts a fresh server process, connects the publisher (its own thread,
//! real-time paced synthetic H.264/AAC, see `fanout/media.rs`), measures the server at rest,
//! joins N players (engine client sessions on a small tokio runtime, see `fanout/player.rs`),
//! lets the join burst settle, then measures a steady-state window:
//!
//! - server CPU (utime + stime from /proc) per player-second of the window;
//! - server RSS growth from "publisher only" to the largest value seen in the window, per
//!   player;
//! - latency from the publisher stamping a frame to a player's read returning it, p50/p99/max
//!   over every frame every player got in the window;
//! - messages delivered against messages sent in the window (loss), sequence gaps, and the
//!   aggregate rate the players read.
//!
//! One table shows every server and player count of the run, followed by each other server's
//! ratios against nginx-rtmp (CPU, p99, memory; `fanout/report.rs`). `--capacity` instead
//! searches, per server, the largest N that one core holds without loss, gaps or a p99 over
//! 500 ms (`fanout/capacity.rs`).
//!
//! The load tool's own CPU is printed too: when it nears its core (pinned) or `threads` ×
//! 100 % the players, not the server, are the bottleneck, and the numbers say so instead of
//! pretending. So are the machine's softirq time (loopback TCP work that no process is charged
//! for) and the CPU every other process used during the window (from /proc/stat): on a shared
//! machine, latency tails measure the scheduler as much as the server.

#[path = "common/args.rs"]
mod args;
#[path = "fanout/capacity.rs"]
mod capacity;
#[path = "fanout/histogram.rs"]
mod histogram;
#[path = "fanout/media.rs"]
mod media;
#[path = "fanout/player.rs"]
mod player;
#[path = "fanout/publisher.rs"]
mod publisher;
#[path = "fanout/relay.rs"]
mod relay;
#[path = "fanout/report.rs"]
mod report;
#[path = "fanout/server.rs"]
mod server;

use args::parse_arg;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use histogram::Histogram;
use media::Sizes;
use report::{GRACE, Outcome};
use server::{Kind, Launch, Server, pin};

/// Time after the last join before the window opens (join bursts, GOP sends).
const SETTLE: Duration = Duration::from_secs(2);

struct Options {
    servers: Vec<Kind>,
    players: Vec<usize>,
    seconds: u64,
    kbps: u32,
    threads: usize,
    /// Server on CPU 0, load tool on CPU 1.
    pin: bool,
    /// rtmpserversink `merge-window` (ms) for our relay; 0: not set.
    merge_window_ms: u32,
    /// rtmpserversink `queue-time` (ms) for our relay; 0: not set.
    queue_time_ms: u32,
    /// The share (%) of its core the server under test may use.
    cpu_quota_pct: Option<u32>,
    /// Search each server's capacity instead of measuring `players`.
    capacity: bool,
    capacity_seconds: u64,
    capacity_max: usize,
    /// p99 latency bound of a player count that holds, ms.
    capacity_p99_ms: u32,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench fanout -- [--server nginx|rsrtmp|nms|xiu|floor|both|all|LIST] \
     [--players 100,500,1000] [--seconds 15] [--kbps 3000] [--threads 2] [--no-pin] \
     [--merge-window MS] [--queue-time MS] [--server-cpu-quota PCT] [--capacity \
     [--capacity-seconds 8] [--capacity-max 3000] [--capacity-p99 500]]"
}

/// `--server` values: names, `both` (nginx-rtmp and rsrtmp), `all`, or a comma list of them.
fn parse_servers(v: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for word in v.split(',').map(str::trim) {
        let more = match word {
            "both" => vec![Kind::Nginx, Kind::Rsrtmp],
            "all" => Kind::ALL.to_vec(),
            w => vec![Kind::parse(w).ok_or_else(|| {
                format!(
                    "--server {v:?}: {w:?} is none of nginx, rsrtmp, nms, xiu, floor, both, all"
                )
            })?],
        };
        for k in more {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    Ok(kinds)
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        servers: vec![Kind::Nginx, Kind::Rsrtmp],
        players: vec![100, 500, 1000],
        seconds: 15,
        kbps: 3000,
        threads: 2,
        pin: true,
        merge_window_ms: 0,
        queue_time_ms: 0,
        cpu_quota_pct: None,
        capacity: false,
        capacity_seconds: 8,
        capacity_max: 3000,
        capacity_p99_ms: 500,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value; {}", usage()))
        };
        match a.as_str() {
            "--bench" => {}
            "--server" => o.servers = parse_servers(&value()?)?,
            "--players" => {
                let v = value()?;
                o.players = v
                    .split(',')
                    .map(|p| match p.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("--players {v:?}: {p:?} is not a positive count")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                o.seconds = parse_arg("--seconds", &value()?, |s| *s > 0, "a positive integer")?;
            }
            "--kbps" => {
                o.kbps = parse_arg(
                    "--kbps",
                    &value()?,
                    |k| (200..=100_000).contains(k),
                    "200..=100000",
                )?;
            }
            "--threads" => {
                o.threads = parse_arg("--threads", &value()?, |t| (1..=64).contains(t), "1..=64")?;
            }
            "--no-pin" => o.pin = false,
            "--merge-window" => {
                o.merge_window_ms =
                    parse_arg("--merge-window", &value()?, |_: &u32| true, "milliseconds")?;
            }
            "--queue-time" => {
                o.queue_time_ms =
                    parse_arg("--queue-time", &value()?, |_: &u32| true, "milliseconds")?;
            }
            "--server-cpu-quota" => {
                o.cpu_quota_pct = Some(parse_arg(
                    "--server-cpu-quota",
                    &value()?,
                    |p| (1..=100).contains(p),
                    "1..=100 (% of one core)",
                )?);
            }
            "--capacity" => o.capacity = true,
            "--capacity-seconds" => {
                o.capacity_seconds = parse_arg(
                    "--capacity-seconds",
                    &value()?,
                    |s| *s > 0,
                    "a positive integer",
                )?;
            }
            "--capacity-max" => {
                o.capacity_max = parse_arg(
                    "--capacity-max",
                    &value()?,
                    |n| (1..=100_000).contains(n),
                    "1..=100000",
                )?;
            }
            "--capacity-p99" => {
                o.capacity_p99_ms =
                    parse_arg("--capacity-p99", &value()?, |m| *m > 0, "milliseconds > 0")?;
            }
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    Ok(o)
}

fn run_scenario(
    rt: &tokio::runtime::Runtime,
    kind: Kind,
    n: usize,
    window: Duration,
    opts: &Options,
) -> Result<Outcome, String> {
    let launch = Launch {
        cpu: opts.pin.then_some(pin::SERVER_CPU),
        merge_window_ms: if kind == Kind::Rsrtmp {
            opts.merge_window_ms
        } else {
            0
        },
        queue_time_ms: if kind == Kind::Rsrtmp {
            opts.queue_time_ms
        } else {
            0
        },
        cpu_quota_pct: opts.cpu_quota_pct,
    };
    let mut srv = Server::start_with(kind, launch)?;
    let names = srv.names();
    let sizes = Sizes::for_kbps(opts.kbps);
    let publisher::Started {
        progress,
        stop_tx,
        stop_rx,
        thread: publisher,
    } = publisher::start(rt, srv.port, names.app, names.publish, sizes)
        .map_err(|e| format!("{e}; server log:\n{}", srv.log()))?;
    // A whole GOP and a bit: the baseline includes what a server caches per stream (a GOP
    // for rsrtmp), which players must not be charged for.
    std::thread::sleep(media::GOP_DURATION + Duration::from_millis(500));
    let rss_base = srv.rss_kib()?;

    // Players.
    let (shared, handles) = player::join(rt, &mut srv, names.app, names.play, n, &stop_rx);
    std::thread::sleep(SETTLE);

    // Steady-state window.
    let server_cpus = pin::allowed(srv.pid());
    let cpu0 = srv.cpu_seconds()?;
    let throttled0 = srv.throttled_seconds();
    let tool0 = server::cpu_seconds(std::process::id())?;
    let (machine0, softirq0) = server::machine_seconds()?;
    let (v0, a0) = (
        progress.next_video.load(Relaxed),
        progress.next_audio.load(Relaxed),
    );
    shared.window.open(v0, a0);
    let bytes0 = shared.bytes.load(Relaxed);
    let pub0 = progress.bytes.load(Relaxed);
    let t0 = Instant::now();
    let mut rss_peak = srv.rss_kib()?;
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_millis(250).min(window.saturating_sub(t0.elapsed())));
        if let Ok(r) = srv.rss_kib() {
            rss_peak = rss_peak.max(r);
        }
    }
    let (v1, a1) = (
        progress.next_video.load(Relaxed),
        progress.next_audio.load(Relaxed),
    );
    shared.window.close(v1, a1);
    let window_s = t0.elapsed().as_secs_f64();
    let cpu1 = srv.cpu_seconds()?;
    let throttled = srv
        .throttled_seconds()
        .zip(throttled0)
        .map(|(t1, t0)| t1 - t0);
    let tool1 = server::cpu_seconds(std::process::id())?;
    let (machine1, softirq1) = server::machine_seconds()?;
    let bytes1 = shared.bytes.load(Relaxed);
    let pub1 = progress.bytes.load(Relaxed);
    let joined = shared.started.load(Relaxed);

    std::thread::sleep(GRACE);
    let _ = stop_tx.send(true);
    let mut latency = Histogram::default();
    let (mut delivered, mut gaps) = (0u64, 0u64);
    let mut errors = Vec::new();
    for h in handles {
        let r = rt
            .block_on(h)
            .map_err(|e| format!("player task panicked: {e}"))?;
        if r.started {
            latency.merge(&r.latency);
            delivered += r.delivered[0] + r.delivered[1];
            gaps += r.gaps;
        }
        if let Some(e) = r.error
            && errors.len() < 5
        {
            errors.push(e);
        }
    }
    let publisher_result = publisher
        .join()
        .map_err(|_| "publisher thread panicked".to_string())?;
    if let Err(e) = publisher_result {
        errors.push(format!("publisher: {e}"));
    }
    if !srv.alive() {
        errors.push(format!("server exited; log:\n{}", srv.log()));
    }

    Ok(Outcome {
        server: kind,
        players: n,
        joined,
        failed: shared.failed.load(Relaxed),
        window_s,
        server_cpu_s: cpu1 - cpu0,
        server_rss_base_kib: rss_base,
        server_rss_peak_kib: rss_peak,
        server_cpus,
        tool_cpu_s: tool1 - tool0,
        softirq_s: softirq1 - softirq0,
        others_cpu_s: ((machine1 - machine0)
            - (softirq1 - softirq0)
            - (cpu1 - cpu0)
            - (tool1 - tool0))
            .max(0.0),
        expected_per_player: (v1 - v0) + (a1 - a0),
        delivered,
        gaps,
        read_mbps: (bytes1 - bytes0) as f64 * 8.0 / window_s / 1e6,
        offered_mbps: (pub1 - pub0) as f64 * 8.0 / window_s / 1e6 * joined as f64,
        latency,
        publisher_max_lag_ms: progress.max_lag_us.load(Relaxed) as f64 / 1000.0,
        throttled_s: throttled,
        errors,
    })
}

/// Whether this invocation is a bench run that pins itself (not `cargo test`, not the relay
/// child, not `--no-pin`). Decided from the raw arguments because it must happen before
/// `bench_entry` builds the player runtime: threads started later inherit the mask.
fn pins_itself(args: &[String]) -> bool {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--serve-relay") && !has("--serve-floor") && !has("--no-pin")
}

fn print_header(opts: &Options) {
    let sizes = Sizes::for_kbps(opts.kbps);
    println!(
        "fanout: {:.2} Mbit/s per stream (keyframe {} B every {} frames, inter {} B, {} fps, \
         audio {} B × {:.1}/s); {} s window; {} player thread(s); {} CPU(s)",
        sizes.mbps(),
        sizes.key,
        media::GOP_FRAMES,
        sizes.inter,
        media::FPS,
        media::AUDIO_FRAME_BYTES,
        1e9 / media::AUDIO_FRAME_NS as f64,
        if opts.capacity {
            opts.capacity_seconds
        } else {
            opts.seconds
        },
        opts.threads,
        // The machine's count: available_parallelism would say 1 once pinned.
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) },
    );
    if opts.pin {
        println!(
            "pinning: server under test on CPU {} (sched_setaffinity before exec, all its \
             threads), load tool (publisher + {} player thread(s)) on CPU {} (this process: {})",
            pin::SERVER_CPU,
            opts.threads,
            pin::TOOL_CPU,
            pin::allowed(std::process::id()),
        );
    } else {
        println!("pinning: off (--no-pin); server and load tool share every CPU");
    }
    for kind in &opts.servers {
        println!("server: {}", kind.describe());
    }
    if opts.merge_window_ms > 0 {
        for kind in &opts.servers {
            match kind {
                Kind::Rsrtmp => println!(
                    "merge-window: rsrtmp's rtmpserversink merge-window={} ms",
                    opts.merge_window_ms
                ),
                Kind::Nginx => {
                    println!("merge-window: does not apply to nginx-rtmp (it has no merged writes)")
                }
                other => println!(
                    "merge-window: does not apply to {} (SRS's merged writes are its mw_latency)",
                    other.name()
                ),
            }
        }
    }
}

fn print_limits(opts: &Options) {
    if opts.queue_time_ms > 0 {
        println!(
            "queue-time: rsrtmp's rtmpserversink queue-time={} ms (the other servers have no \
             such bound)",
            opts.queue_time_ms
        );
    }
    if let Some(pct) = opts.cpu_quota_pct {
        println!(
            "cpu quota: the server under test may use {pct} % of its core (cgroup CFS quota, \
             10 ms period, longer below 10 %)"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if pins_itself(&args)
        && let Err(e) = pin::pin_self()
    {
        eprintln!("fanout: {e}");
        std::process::exit(2);
    }
    let Some((opts, rt)) = relay::bench_entry("fanout", &args, parse_args, |o| o.threads) else {
        return;
    };
    let _ = *media::EPOCH;
    print_header(&opts);
    print_limits(&opts);
    // Installs happen before the first scenario, not in the middle of the run.
    for kind in &opts.servers {
        if let Err(e) = kind.prepare() {
            eprintln!("fanout: {}: {e}", kind.name());
            std::process::exit(1);
        }
    }
    if opts.capacity {
        if !capacity::run(&rt, &opts) {
            std::process::exit(1);
        }
        return;
    }
    let mut outcomes = Vec::new();
    let mut failed = false;
    let window = Duration::from_secs(opts.seconds);
    for &n in &opts.players {
        for &kind in &opts.servers {
            match run_scenario(&rt, kind, n, window, &opts) {
                Ok(o) => {
                    o.print_line();
                    outcomes.push(o);
                }
                Err(e) => {
                    println!("{} × {n}: FAILED: {e}", kind.name());
                    failed = true;
                }
            }
        }
    }
    println!();
    report::print_table(&outcomes);
    report::print_ratios(&outcomes);
    if failed {
        std::process::exit(1);
    }
}
