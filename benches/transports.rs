//! Throughput and CPU of a ~3 Mbit/s H.264+AAC stream through each of rsrtmp's six transports
//! (rtmp, rtmps, rtmpt, rtmpts, rtmpe, rtmpte), relative to plain rtmp, in one run.
//!
//! Run: `cargo bench --bench transports -- [--repeats 3] [--loops 40] [--paced]
//! [--paced-repeats 1]`; smoke run: `cargo bench --bench transports -- --quick`.
//! Under `cargo test` (no `--bench` argument) it does nothing.
//!
//! Each run is two child processes, both this binary with `--run` (`transports/child.rs`):
//! a server, `rtmpserversrc port=0 stream=s eos-on-unpublish=true tls-… ! fakesink`, and a
//! publisher, `filesrc ! rtmpclientsink location=SCHEME://127.0.0.1:P/live/s
//! tls-validation-flags=0 sync=false` sending the raw FLV file. Every scheme talks to the same
//! kind of server (TLS files set, all transports on its one port), and each run gets fresh
//! processes, so each side's CPU (`CLOCK_PROCESS_CPUTIME_ID` over its pipeline's run) belongs
//! to that run alone.
//!
//! Unpaced runs (the default, everything `sync=false`) send the file `--loops` times over in
//! one stream and measure throughput = file bits / (server EOS − publisher start), both
//! CLOCK_MONOTONIC instants, so connect and handshake count; and CPU ms per Mbit of the file
//! for each side. With `--paced`, a second phase sends one pass at real time (the publisher
//! demuxes and remuxes the file through `clocksync`, since raw FLV buffers carry no
//! timestamps) and reports each side's CPU as % of one core.
//!
//! Every scheme is run `--repeats` times, round-robin with each round starting one scheme
//! later, so load from other work on the machine falls on all schemes alike; the tables show
//! medians and each scheme's ratio to rtmp. The 1-minute load average is printed per phase.

#[path = "transports/child.rs"]
mod child;
#[path = "common/child.rs"]
mod child_common;
#[path = "transports/procs.rs"]
mod procs;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use child::Report;
use procs::{Cert, Child2};

/// Length of one pass of the bench media.
const MEDIA_SECONDS: u32 = 25;
const SCHEMES: [&str; 6] = ["rtmp", "rtmps", "rtmpt", "rtmpts", "rtmpe", "rtmpte"];

struct Options {
    repeats: usize,
    loops: u32,
    paced: bool,
    paced_repeats: usize,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench transports -- [--repeats 3] [--loops 40] [--paced] \
     [--paced-repeats 1] [--quick]"
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        repeats: 3,
        loops: 40,
        paced: false,
        paced_repeats: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut count = |max: usize| -> Result<usize, String> {
            let v = it
                .next()
                .ok_or_else(|| format!("{a} needs a value; {}", usage()))?;
            v.parse()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{a} {v:?}: expected 1..={max}"))
        };
        match a.as_str() {
            "--bench" => {}
            "--quick" => {
                o.repeats = 1;
                o.loops = 4;
            }
            "--paced" => o.paced = true,
            "--repeats" => o.repeats = count(50)?,
            "--paced-repeats" => o.paced_repeats = count(50)?,
            "--loops" => o.loops = count(200)? as u32,
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    Ok(o)
}

/// One run's numbers: both sides' reports and what they add up to.
struct Run {
    server: Report,
    publisher: Report,
    /// File bits / (server EOS - publisher start).
    mbit_per_s: f64,
    /// Megabits of the file sent.
    mbit: f64,
}

impl Run {
    fn pub_ms_per_mbit(&self) -> f64 {
        self.publisher.cpu_ns as f64 / 1e6 / self.mbit
    }
    fn srv_ms_per_mbit(&self) -> f64 {
        self.server.cpu_ns as f64 / 1e6 / self.mbit
    }
    fn transfer_s(&self) -> f64 {
        self.server
            .end_mono
            .saturating_sub(self.publisher.start_mono) as f64
            / 1e9
    }
    fn pub_pct(&self) -> f64 {
        self.publisher.cpu_ns as f64 / 1e7 / self.publisher.wall_s()
    }
    /// The server's CPU over the time a publisher was there (its own window also holds the
    /// idle wait before the publisher started, which costs no CPU but would dilute the %).
    fn srv_pct(&self) -> f64 {
        self.server.cpu_ns as f64 / 1e7 / self.transfer_s()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spawn_child(name: &str, pipeline: &str, max: Duration, serve: bool) -> Result<Child2, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--run")
        .arg(if serve { "serve" } else { "publish" })
        .arg(pipeline)
        .arg("--seconds")
        .arg(max.as_secs_f64().to_string());
    Child2::spawn(name, &mut cmd)
}

/// One publish of `file` over `scheme`, server and publisher each in a fresh process.
fn one_run(cert: &Cert, file: &Path, scheme: &str, paced: bool) -> Result<Run, String> {
    let max = Duration::from_secs(if paced { 120 } else { 300 });
    let server_pipeline = format!(
        "rtmpserversrc name=rtmp port=0 stream=s eos-on-unpublish=true \
         tls-certificate-file={} tls-key-file={} ! fakesink name=out sync=false",
        cert.cert.display(),
        cert.key.display()
    );
    let mut server = spawn_child("server child", &server_pipeline, max, true)?;
    let port = server.wait_line(child::READY, Duration::from_secs(20))?;
    let url = format!("{scheme}://127.0.0.1:{port}/live/s");
    let f = file.display();
    let sink = format!("rtmpclientsink name=rtmp location={url} tls-validation-flags=0 sync=false");
    let publisher_pipeline = if paced {
        format!(
            "filesrc location={f} ! flvdemux name=d  d.video ! queue ! m.video  \
             d.audio ! queue ! m.audio  flvmux streamable=true name=m ! clocksync ! {sink}"
        )
    } else {
        format!("filesrc location={f} ! {sink}")
    };
    let publisher = spawn_child("publisher child", &publisher_pipeline, max, false)?;
    let publisher = Report::parse(&publisher.finish(max + Duration::from_secs(20))?)
        .map_err(|e| format!("{scheme} publisher: {e}"))?;
    let server = Report::parse(&server.finish(Duration::from_secs(30))?)
        .map_err(|e| format!("{scheme} server: {e}"))?;
    for (side, r) in [("publisher", &publisher), ("server", &server)] {
        if r.end != "eos" {
            return Err(format!("{scheme}: {side} ended by {}, not EOS", r.end));
        }
    }
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    // The server re-frames the tags (its own FLV header and stream headers), so its byte count
    // differs from the file's by a little; a big shortfall means data was lost.
    if (server.out_bytes as f64) < size as f64 * 0.99 {
        return Err(format!(
            "{scheme}: the server passed on {} bytes of a {size}-byte file",
            server.out_bytes
        ));
    }
    let mbit = size as f64 * 8.0 / 1e6;
    let mut run = Run {
        server,
        publisher,
        mbit_per_s: 0.0,
        mbit,
    };
    run.mbit_per_s = mbit / run.transfer_s();
    Ok(run)
}

/// Runs every scheme `repeats` times, round-robin, each round starting one scheme later.
fn interleaved(
    cert: &Cert,
    file: &Path,
    repeats: usize,
    paced: bool,
) -> Result<Vec<Vec<Run>>, String> {
    let mut runs: Vec<Vec<Run>> = SCHEMES.iter().map(|_| Vec::new()).collect();
    for round in 0..repeats {
        for k in 0..SCHEMES.len() {
            let i = (round + k) % SCHEMES.len();
            let load = procs::loadavg();
            let run = one_run(cert, file, SCHEMES[i], paced)?;
            eprintln!(
                "  round {} {:<7} {:>8.1} Mbit/s  {:>6.2} s  publisher {:>7.1} ms ({:.3} ms/Mbit, {:.1} %)  \
                 server {:>7.1} ms ({:.3} ms/Mbit, {:.1} %)  server got {:.1} MB  load {load:.2}",
                round + 1,
                SCHEMES[i],
                run.mbit_per_s,
                run.transfer_s(),
                run.publisher.cpu_ns as f64 / 1e6,
                run.pub_ms_per_mbit(),
                run.pub_pct(),
                run.server.cpu_ns as f64 / 1e6,
                run.srv_ms_per_mbit(),
                run.srv_pct(),
                run.server.out_bytes as f64 / 1e6,
            );
            runs[i].push(run);
        }
    }
    Ok(runs)
}

fn range(v: &[f64], digits: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 {
        return String::new();
    }
    format!(" ({lo:.digits$}–{hi:.digits$})")
}

/// Median and range of one measure over a scheme's runs, and its median.
fn stat(runs: &[Run], f: impl Fn(&Run) -> f64, digits: usize) -> (f64, String) {
    let v: Vec<f64> = runs.iter().map(f).collect();
    let m = median(v.clone());
    (m, format!("{m:.digits$}{}", range(&v, digits)))
}

fn print_unpaced(runs: &[Vec<Run>]) {
    println!(
        "| scheme | Mbit/s (median, range) | vs rtmp | publisher CPU ms/Mbit | vs rtmp | server CPU ms/Mbit | vs rtmp | both ms/Mbit | vs rtmp |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let cols = |r: &[Run]| {
        [
            stat(r, |x| x.mbit_per_s, 0),
            stat(r, Run::pub_ms_per_mbit, 3),
            stat(r, Run::srv_ms_per_mbit, 3),
            stat(r, |x| x.pub_ms_per_mbit() + x.srv_ms_per_mbit(), 3),
        ]
    };
    let base = cols(&runs[0]);
    for (i, scheme) in SCHEMES.iter().enumerate() {
        let c = cols(&runs[i]);
        let mut line = format!("| {scheme} |");
        for (k, (m, shown)) in c.iter().enumerate() {
            line += &format!(" {shown} | {:.2}× |", m / base[k].0);
        }
        println!("{line}");
    }
}

fn print_paced(runs: &[Vec<Run>]) {
    println!(
        "| scheme | Mbit/s achieved | publisher CPU % of a core | vs rtmp | server CPU % of a core | vs rtmp |"
    );
    println!("|---|---|---|---|---|---|");
    let cols = |r: &[Run]| {
        [
            stat(r, |x| x.mbit_per_s, 2),
            stat(r, Run::pub_pct, 2),
            stat(r, Run::srv_pct, 2),
        ]
    };
    let base = cols(&runs[0]);
    for (i, scheme) in SCHEMES.iter().enumerate() {
        let c = cols(&runs[i]);
        println!(
            "| {scheme} | {} | {} | {:.2}× | {} | {:.2}× |",
            c[0].1,
            c[1].1,
            c[1].0 / base[1].0,
            c[2].1,
            c[2].0 / base[2].0
        );
    }
}

fn bench(opts: &Options) -> Result<(), String> {
    let media = procs::media(MEDIA_SECONDS)?;
    let cert = Cert::make()?;
    let size = std::fs::metadata(&media).map(|m| m.len()).unwrap_or(0);
    println!(
        "media: {} ({size} bytes, {MEDIA_SECONDS} s, {:.2} Mbit/s); repeats {}; {} cores",
        media.display(),
        size as f64 * 8.0 / 1e6 / MEDIA_SECONDS as f64,
        opts.repeats,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let file = procs::looped(&media, opts.loops)?;
    let file_size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!(
        "unpaced runs send {} ({file_size} bytes, {:.0} Mbit, {} passes)",
        file.display(),
        file_size as f64 * 8.0 / 1e6,
        opts.loops
    );
    let l0 = procs::loadavg();
    let runs = interleaved(&cert, &file, opts.repeats, false)?;
    let l1 = procs::loadavg();
    println!("\nunpaced (load average 1 min: {l0:.2} before, {l1:.2} after)\n");
    print_unpaced(&runs);
    if opts.paced {
        let l0 = procs::loadavg();
        let runs = interleaved(&cert, &media, opts.paced_repeats, true)?;
        let l1 = procs::loadavg();
        println!(
            "\npaced at real time, one {MEDIA_SECONDS} s pass (load average 1 min: {l0:.2} \
             before, {l1:.2} after)\n"
        );
        print_paced(&runs);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--run") {
        let role = args.get(i + 1).map(String::as_str);
        let pipeline = args.get(i + 2);
        let seconds = args
            .iter()
            .position(|a| a == "--seconds")
            .and_then(|j| args.get(j + 1))
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0);
        let serve = match role {
            Some("serve") => true,
            Some("publish") => false,
            _ => {
                eprintln!("--run needs serve|publish, got {args:?}");
                std::process::exit(2);
            }
        };
        let (Some(pipeline), Some(seconds)) = (pipeline, seconds) else {
            eprintln!("--run needs a role, a pipeline and --seconds N, got {args:?}");
            std::process::exit(2);
        };
        if let Err(e) = child::run(pipeline, Duration::from_secs_f64(seconds), serve) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "transports: throughput/CPU bench; run it with `cargo bench --bench transports` \
             (nothing to do here)"
        );
        return;
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("transports: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = procs::require("ffmpeg", "ffmpeg").and_then(|()| bench(&opts)) {
        eprintln!("transports: {e}");
        std::process::exit(1);
    }
}
