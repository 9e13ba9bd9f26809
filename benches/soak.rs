//! Soak test: one real-time publisher and many players against the rsrtmp relay for minutes,
//! watching the server's memory and every player's losses.
//!
//! Run: `cargo bench --bench soak -- [--minutes 10] [--players 100] [--kbps 3000]
//! [--interval 10] [--warmup 60] [--threads 2]`; smoke run: `--minutes 1 --players 10
//! --warmup 20 --interval 5`. Under `cargo test` (no `--bench` argument) it does nothing.
//!
//! It reuses the fan-out load generator (`fanout/*.rs`): the server is the same relay process
//! (`rtmpserversrc ! rtmpserversink`, this binary started again with `--serve-relay PORT`),
//! the publisher sends stamped synthetic H.264/AAC on its own thread, and players are engine
//! client sessions that check every message's per-kind sequence number. The measurement window
//! opens once every player has started (so join-time GOP bursts are not counted) and every
//! message the publisher sends inside it must reach every player exactly in order.
//!
//! Every `--interval` seconds it samples the server's RSS and CPU time and the players' live
//! counters (messages delivered, sequence gaps, players that ended with an error). At the end
//! it compares the RSS after the warm-up (the first sample at or after `--warmup` seconds)
//! with the RSS at the end, and counts errors: player connection errors, sequence gaps and
//! messages sent in the window that some player never got. The verdict is PASS when RSS grew
//! by less than 5 % and there were no errors; the exit code is 1 otherwise.

// The fan-out modules carry pieces only the fan-out bench uses (nginx, the histogram's
// quantiles); they are shared as they are rather than trimmed per binary.
#[path = "common/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "fanout/histogram.rs"]
mod histogram;
#[allow(dead_code)]
#[path = "fanout/media.rs"]
mod media;
#[allow(dead_code)]
#[path = "fanout/player.rs"]
mod player;
#[allow(dead_code)]
#[path = "fanout/publisher.rs"]
mod publisher;
#[allow(dead_code)]
#[path = "fanout/relay.rs"]
mod relay;
#[allow(dead_code)]
#[path = "fanout/server.rs"]
mod server;

use args::parse_arg;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use media::Sizes;
use server::{Kind, Server};

/// Time after the last join before the window opens.
const SETTLE: Duration = Duration::from_secs(2);
/// Time after the window closes for messages sent inside it to arrive.
const GRACE: Duration = Duration::from_secs(2);
/// The verdict's memory bound: RSS growth from warm-up to the end, percent.
const MAX_GROWTH_PCT: f64 = 5.0;

struct Options {
    minutes: f64,
    players: usize,
    kbps: u32,
    interval: u64,
    warmup: u64,
    threads: usize,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench soak -- [--minutes 10] [--players 100] [--kbps 3000] \
     [--interval 10] [--warmup 60] [--threads 2]"
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        minutes: 10.0,
        players: 100,
        kbps: 3000,
        interval: 10,
        warmup: 60,
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
            "--minutes" => {
                o.minutes = parse_arg(
                    "--minutes",
                    &value()?,
                    |m: &f64| *m > 0.0 && *m <= 24.0 * 60.0,
                    "a number in (0, 1440]",
                )?;
            }
            "--players" => {
                o.players = parse_arg("--players", &value()?, |p| *p > 0, "a positive count")?;
            }
            "--kbps" => {
                o.kbps = parse_arg(
                    "--kbps",
                    &value()?,
                    |k| (200..=100_000).contains(k),
                    "200..=100000",
                )?;
            }
            "--interval" => {
                o.interval = parse_arg("--interval", &value()?, |s| *s > 0, "positive seconds")?;
            }
            "--warmup" => {
                let v = value()?;
                o.warmup = v
                    .parse()
                    .map_err(|_| format!("--warmup {v:?}: expected seconds"))?;
            }
            "--threads" => {
                o.threads = parse_arg("--threads", &value()?, |t| (1..=64).contains(t), "1..=64")?;
            }
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    if o.warmup as f64 >= o.minutes * 60.0 {
        return Err(format!(
            "--warmup {} s leaves nothing of a {} min run to compare",
            o.warmup, o.minutes
        ));
    }
    Ok(o)
}

/// One periodic sample.
struct Sample {
    /// Seconds since the window opened.
    t: f64,
    rss_kib: u64,
    /// Server CPU % over the interval before this sample.
    cpu_pct: f64,
    delivered: u64,
    gaps: u64,
    player_errors: usize,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn run(rt: &tokio::runtime::Runtime, opts: &Options) -> Result<bool, String> {
    let mut srv = Server::start(Kind::Rsrtmp)?;
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
    let rss_publisher_only = srv.rss_kib()?;

    let n = opts.players;
    let (shared, handles) = player::join(rt, &mut srv, names.app, names.play, n, &stop_rx);
    std::thread::sleep(SETTLE);
    let joined = shared.started.load(Relaxed);
    println!(
        "soak: {joined} of {n} players started (failed {}); RSS with the publisher only {:.1} MiB",
        shared.failed.load(Relaxed),
        mib(rss_publisher_only)
    );

    let (v0, a0) = (
        progress.next_video.load(Relaxed),
        progress.next_audio.load(Relaxed),
    );
    shared.window.open(v0, a0);
    let t0 = Instant::now();
    let total = Duration::from_secs_f64(opts.minutes * 60.0);
    let interval = Duration::from_secs(opts.interval);
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_cpu = (srv.cpu_seconds()?, Instant::now());
    let mut rss_max = srv.rss_kib()?;
    println!("| t s | RSS MiB | server CPU % | delivered msgs | gaps | player errors |");
    println!("|---|---|---|---|---|---|");
    let mut next = interval;
    while t0.elapsed() < total {
        // Sleep in short steps so the RSS maximum sees short peaks between samples too.
        std::thread::sleep(Duration::from_millis(500));
        if !srv.alive() {
            break;
        }
        if let Ok(r) = srv.rss_kib() {
            rss_max = rss_max.max(r);
        }
        let elapsed = t0.elapsed();
        if elapsed < next && elapsed < total {
            continue;
        }
        next += interval;
        let rss_kib = srv.rss_kib()?;
        let cpu = (srv.cpu_seconds()?, Instant::now());
        let s = Sample {
            t: elapsed.as_secs_f64(),
            rss_kib,
            cpu_pct: (cpu.0 - last_cpu.0) * 100.0 / (cpu.1 - last_cpu.1).as_secs_f64(),
            delivered: shared.delivered.load(Relaxed),
            gaps: shared.gaps.load(Relaxed),
            player_errors: shared.errors.load(Relaxed),
        };
        last_cpu = cpu;
        println!(
            "| {:.0} | {:.1} | {:.1} | {} | {} | {} |",
            s.t,
            mib(s.rss_kib),
            s.cpu_pct,
            s.delivered,
            s.gaps,
            s.player_errors
        );
        samples.push(s);
    }
    let (v1, a1) = (
        progress.next_video.load(Relaxed),
        progress.next_audio.load(Relaxed),
    );
    shared.window.close(v1, a1);
    let window_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(GRACE);
    let server_alive = srv.alive();
    let _ = stop_tx.send(true);

    let mut first_errors = Vec::new();
    let (mut delivered, mut gaps) = (0u64, 0u64);
    for h in handles {
        let r = rt
            .block_on(h)
            .map_err(|e| format!("player task panicked: {e}"))?;
        delivered += r.delivered[0] + r.delivered[1];
        gaps += r.gaps;
        if let Some(e) = r.error
            && first_errors.len() < 5
        {
            first_errors.push(e);
        }
    }
    let player_errors = shared.errors.load(Relaxed);
    let publisher_error = publisher
        .join()
        .map_err(|_| "publisher thread panicked".to_string())?
        .err();

    let expected_per_player = (v1 - v0) + (a1 - a0);
    let expected = expected_per_player * n as u64;
    let lost = expected.saturating_sub(delivered);
    let warm = samples
        .iter()
        .find(|s| s.t >= opts.warmup as f64)
        .ok_or_else(|| format!("no sample after the {} s warm-up", opts.warmup))?;
    let end = samples.last().ok_or("no samples")?;
    let growth_pct = (end.rss_kib as f64 - warm.rss_kib as f64) * 100.0 / warm.rss_kib as f64;
    let errors = player_errors as u64
        + gaps
        + lost
        + u64::from(publisher_error.is_some())
        + u64::from(!server_alive);

    println!();
    println!(
        "soak: {:.1} min window, {joined}/{n} players, {:.2} Mbit/s, publisher max lag {:.1} ms",
        window_s / 60.0,
        sizes.mbps(),
        progress.max_lag_us.load(Relaxed) as f64 / 1000.0
    );
    println!(
        "RSS: publisher only {:.1} MiB, after warm-up ({:.0} s) {:.1} MiB, end ({:.0} s) {:.1} MiB, \
         max {:.1} MiB, growth {growth_pct:+.2} %",
        mib(rss_publisher_only),
        warm.t,
        mib(warm.rss_kib),
        end.t,
        mib(end.rss_kib),
        mib(rss_max)
    );
    println!(
        "messages: expected {expected} ({expected_per_player} per player), delivered {delivered}, \
         lost {lost}; sequence gaps {gaps}; player connection errors {player_errors}; \
         publisher error {}; server alive at the end: {server_alive}",
        publisher_error.as_deref().unwrap_or("none")
    );
    for e in &first_errors {
        println!("  player error: {e}");
    }
    if !server_alive {
        println!("  server log:\n{}", srv.log());
    }
    let pass = growth_pct < MAX_GROWTH_PCT && errors == 0;
    println!(
        "verdict: {} (RSS growth {growth_pct:+.2} % against < {MAX_GROWTH_PCT} %, {errors} errors against 0)",
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(pass)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((opts, rt)) = relay::bench_entry("soak", &args, parse_args, |o| o.threads) else {
        return;
    };
    let _ = *media::EPOCH;
    println!(
        "soak: {} min, {} players, {} kbit/s, sample every {} s, warm-up {} s, {} player thread(s), {} CPU(s)",
        opts.minutes,
        opts.players,
        opts.kbps,
        opts.interval,
        opts.warmup,
        opts.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    match run(&rt, &opts) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: FAILED: {e}");
            std::process::exit(1);
        }
    }
}
