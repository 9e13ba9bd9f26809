//! Fan-out load test: one publisher, many players, against nginx-rtmp and our own relay.
//!
//! Run: `cargo bench --bench fanout -- [--server nginx|rsrtmp|both] [--players 100,500,1000]
//! [--seconds 15] [--kbps 3000] [--threads 2]`; smoke run: `--players 10 --seconds 3`.
//! Under `cargo test` (no `--bench` argument) it does nothing.
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
//! The load tool's own CPU is printed too: when it nears `threads` × 100 % the players, not
//! the server, are the bottleneck, and the numbers say so instead of pretending. So are the
//! machine's softirq time (loopback TCP work that no process is charged for) and the CPU every
//! other process used during the window (from /proc/stat): on a shared machine, latency tails
//! measure the scheduler as much as the server.

#[path = "common/args.rs"]
mod args;
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
#[path = "fanout/server.rs"]
mod server;

use args::parse_arg;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use histogram::Histogram;
use media::Sizes;
use server::{Kind, Server};

/// Time after the last join before the window opens (join bursts, GOP sends).
const SETTLE: Duration = Duration::from_secs(2);
/// Time after the window closes for messages sent inside it to arrive.
const GRACE: Duration = Duration::from_secs(2);

struct Options {
    servers: Vec<Kind>,
    players: Vec<usize>,
    seconds: u64,
    kbps: u32,
    threads: usize,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench fanout -- [--server nginx|rsrtmp|both] [--players 100,500,1000] \
     [--seconds 15] [--kbps 3000] [--threads 2]"
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        servers: vec![Kind::Nginx, Kind::Rsrtmp],
        players: vec![100, 500, 1000],
        seconds: 15,
        kbps: 3000,
        threads: 2,
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
            "--server" => {
                o.servers = match value()?.as_str() {
                    "nginx" => vec![Kind::Nginx],
                    "rsrtmp" => vec![Kind::Rsrtmp],
                    "both" => vec![Kind::Nginx, Kind::Rsrtmp],
                    v => return Err(format!("--server {v:?}: expected nginx, rsrtmp or both")),
                }
            }
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
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    Ok(o)
}

/// One scenario's numbers.
struct Outcome {
    server: Kind,
    players: usize,
    joined: usize,
    failed: usize,
    window_s: f64,
    server_cpu_s: f64,
    server_rss_base_kib: u64,
    server_rss_peak_kib: u64,
    tool_cpu_s: f64,
    /// Softirq CPU seconds on the machine during the window (loopback TCP work, mostly).
    softirq_s: f64,
    /// Busy CPU seconds of everything else on the machine during the window.
    others_cpu_s: f64,
    expected_per_player: u64,
    delivered: u64,
    gaps: u64,
    read_mbps: f64,
    offered_mbps: f64,
    latency: Histogram,
    publisher_max_lag_ms: f64,
    errors: Vec<String>,
}

impl Outcome {
    fn cpu_us_per_player_s(&self) -> f64 {
        self.server_cpu_s * 1e6 / (self.joined.max(1) as f64 * self.window_s)
    }

    fn rss_kib_per_player(&self) -> f64 {
        self.server_rss_peak_kib
            .saturating_sub(self.server_rss_base_kib) as f64
            / self.joined.max(1) as f64
    }

    fn delivered_pct(&self) -> f64 {
        let expected = self.expected_per_player * self.joined as u64;
        if expected == 0 {
            0.0
        } else {
            self.delivered as f64 * 100.0 / expected as f64
        }
    }
}

fn run_scenario(
    rt: &tokio::runtime::Runtime,
    kind: Kind,
    n: usize,
    opts: &Options,
) -> Result<Outcome, String> {
    let mut srv = Server::start(kind)?;
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
    let cpu0 = srv.cpu_seconds()?;
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
    let window = Duration::from_secs(opts.seconds);
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
        errors,
    })
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "| server | players (joined) | server CPU % | CPU µs / player-s | RSS base MiB | RSS / player KiB \
         | delivered % | gaps | read Mbit/s (offered) | latency p50 / p99 / max ms | load tool CPU % | softirq % | other CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        println!(
            "| {} | {} ({}) | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {} | {:.0} ({:.0}) | {} / {} / {} | {:.0} | {:.0} | {:.0} |",
            o.server.name(),
            o.players,
            o.joined,
            o.server_cpu_s * 100.0 / o.window_s,
            o.cpu_us_per_player_s(),
            o.server_rss_base_kib as f64 / 1024.0,
            o.rss_kib_per_player(),
            o.delivered_pct(),
            o.gaps,
            o.read_mbps,
            o.offered_mbps,
            ms(o.latency.quantile(0.5)),
            ms(o.latency.quantile(0.99)),
            ms(o.latency.max()),
            o.tool_cpu_s * 100.0 / o.window_s,
            o.softirq_s * 100.0 / o.window_s,
            o.others_cpu_s * 100.0 / o.window_s,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((opts, rt)) = relay::bench_entry("fanout", &args, parse_args, |o| o.threads) else {
        return;
    };
    let _ = *media::EPOCH;
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
        opts.seconds,
        opts.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut outcomes = Vec::new();
    let mut failed = false;
    for &n in &opts.players {
        for &kind in &opts.servers {
            match run_scenario(&rt, kind, n, &opts) {
                Ok(o) => {
                    println!(
                        "{} × {}: joined {} (failed {}), window {:.1} s, server CPU {:.2} s, RSS {} → {} KiB, \
                         expected {} msgs/player, delivered {:.2} %, gaps {}, latency samples {}, \
                         publisher max lag {:.1} ms",
                        o.server.name(),
                        o.players,
                        o.joined,
                        o.failed,
                        o.window_s,
                        o.server_cpu_s,
                        o.server_rss_base_kib,
                        o.server_rss_peak_kib,
                        o.expected_per_player,
                        o.delivered_pct(),
                        o.gaps,
                        o.latency.count(),
                        o.publisher_max_lag_ms,
                    );
                    for e in &o.errors {
                        println!("  error: {e}");
                    }
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
    print_table(&outcomes);
    if failed {
        std::process::exit(1);
    }
}
