//! CPU per Mbit/s of the client elements against GStreamer's rtmp2: rtmpclientsink vs
//! rtmp2sink and rtmpclientsrc vs rtmp2src, on the same media and the same nginx-rtmp, in one
//! run.
//!
//! Run: `cargo bench --bench client_cpu -- [--repeats 3] [--sink-repeats 5] [--loops 10]
//! [--src-seconds 30] [--paced] [--no-src-demux] [--only sink|src]`; smoke run:
//! `cargo bench --bench client_cpu -- --quick`.
//! Under `cargo test` (no `--bench` argument) it does nothing.
//!
//! Every measured pipeline runs in its own child process (this binary with `--run`, see
//! `client_cpu/runner.rs`), which reports its own CPU over the time the pipeline played.
//!
//! Sink scenarios publish the whole bench file (`client_cpu/peers.rs`) through
//! `filesrc ! flvdemux ! queue ×2 ! flvmux streamable=true ! SINK` (pads named: gst-launch
//! cannot link an unnamed `d. ! queue ! m.` pair to flvmux's request pads), identical but for the
//! sink. By default they are unpaced, every sink with `sync=false`: the pipeline goes as fast
//! as nginx takes the data, so the CPU counted is work per byte, not timer wake-ups of a clock
//! wait, and the raw-FLV row (`filesrc ! rtmpclientsink`, whose buffers carry no timestamps:
//! with `sync=false` the sink does not pace it by its tags either) is measured the same way.
//! `--paced` puts `clocksync` before the muxed sinks instead (real time, as a live encoder
//! would). The same pipeline ending in
//! `fakesink` is the baseline; "net" columns subtract it, leaving the sink's own cost. Both
//! sinks use chunk size 4096 (nginx's own); an extra row shows rtmp2sink at its default of 128.
//! Mbit for sink rows is the file's size, the same for every row; the bytes the element
//! reports sending are shown as a check. Unpaced rows send the file `--loops` times over in one
//! stream (one pass takes ~0.2 s, too short to outweigh connecting and the scheduler); sink
//! rows are cheap, so they repeat `--sink-repeats` times.
//!
//! Player scenarios: ffmpeg publishes the file at real time (`-re`) to a fresh stream name,
//! then `SRC ! fakesink` and `SRC ! flvdemux ! fakesink` (not with `--no-src-demux`) play it for
//! `--src-seconds`; Mbit is the element's `in-bytes-total`.
//!
//! Every scenario is repeated `--repeats` times and the median reported; the repeats are
//! interleaved (round-robin, starting at a different scenario each round) so load from other
//! work on the machine falls on all scenarios alike. The 1-minute load average is printed
//! around each phase.

#[path = "common/args.rs"]
mod args;
#[path = "common/child.rs"]
mod child_common;
#[path = "client_cpu/feeder.rs"]
mod feeder;
#[path = "client_cpu/peers.rs"]
mod peers;
#[path = "client_cpu/runner.rs"]
mod runner;

use args::parse_arg;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use peers::{Guard, Nginx};
use runner::Report;

/// Length of the bench media. Player runs must fit in it after the publisher's start-up.
const MEDIA_SECONDS: u32 = 40;
/// Time between starting the ffmpeg publisher and starting the player.
const PUBLISH_LEAD: Duration = Duration::from_millis(1500);

struct Options {
    repeats: usize,
    sink_repeats: usize,
    loops: u32,
    src_seconds: u64,
    paced: bool,
    src_demux: bool,
    sink: bool,
    src: bool,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench client_cpu -- [--repeats 3] [--sink-repeats 5] [--loops 10] \
     [--src-seconds 30] [--paced] [--no-src-demux] [--only sink|src] [--quick]"
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        repeats: 3,
        sink_repeats: 5,
        loops: 10,
        src_seconds: 30,
        paced: false,
        src_demux: true,
        sink: true,
        src: true,
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
            "--quick" => {
                o.repeats = 1;
                o.sink_repeats = 1;
                o.loops = 2;
                o.src_seconds = 5;
                o.src_demux = false;
            }
            "--paced" => o.paced = true,
            "--no-src-demux" => o.src_demux = false,
            "--repeats" => {
                o.repeats = parse_arg("--repeats", &value()?, |r| (1..=50).contains(r), "1..=50")?;
            }
            "--sink-repeats" => {
                o.sink_repeats = parse_arg(
                    "--sink-repeats",
                    &value()?,
                    |r| (1..=50).contains(r),
                    "1..=50",
                )?;
            }
            "--loops" => {
                o.loops = parse_arg("--loops", &value()?, |r| (1..=50).contains(r), "1..=50")?;
            }
            "--src-seconds" => {
                let v = value()?;
                let max = MEDIA_SECONDS as u64 - 4;
                o.src_seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=max).contains(s))
                    .ok_or_else(|| format!("--src-seconds {v:?}: expected 1..={max}"))?;
            }
            "--only" => match value()?.as_str() {
                "sink" => o.src = false,
                "src" => o.sink = false,
                v => return Err(format!("--only {v:?}: expected sink or src")),
            },
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    Ok(o)
}

/// One pipeline to measure, `{URL}` standing for a fresh rtmp:// URL on each run.
struct Scenario {
    label: &'static str,
    /// Which element family the row measures: "rsrtmp", "rtmp2" or "baseline".
    side: &'static str,
    pipeline: String,
    /// Sink rows: the megabits every run moves (the file). Player rows: None (from stats).
    fixed_mbit: Option<f64>,
}

/// One run's numbers.
struct Run {
    report: Report,
    mbit: f64,
    load: f64,
}

impl Run {
    fn cpu_ms_per_mbit(&self) -> f64 {
        self.report.cpu_ns as f64 / 1e6 / self.mbit
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

fn sink_scenarios(media: &Path, paced: bool) -> Vec<Scenario> {
    let size_mbit = std::fs::metadata(media).map(|m| m.len()).unwrap_or(0) as f64 * 8.0 / 1e6;
    let m = media.display();
    let pace = if paced { "clocksync ! " } else { "" };
    let muxed = |sink: &str| {
        format!(
            "filesrc location={m} ! flvdemux name=d  d.video ! queue ! m.video  \
             d.audio ! queue ! m.audio  flvmux streamable=true name=m ! {pace}{sink}"
        )
    };
    let row = |label, side, pipeline| Scenario {
        label,
        side,
        pipeline,
        fixed_mbit: Some(size_mbit),
    };
    vec![
        row(
            "fakesink (baseline)",
            "baseline",
            muxed("fakesink sync=false"),
        ),
        row(
            "rtmpclientsink",
            "rsrtmp",
            muxed("rtmpclientsink name=rtmp sync=false chunk-size=4096 location={URL}"),
        ),
        row(
            "rtmp2sink",
            "rtmp2",
            muxed("rtmp2sink name=rtmp sync=false chunk-size=4096 location={URL}"),
        ),
        row(
            "rtmp2sink, chunk-size 128 (its default)",
            "rtmp2",
            muxed("rtmp2sink name=rtmp sync=false location={URL}"),
        ),
        row(
            "filesrc ! fakesink (raw baseline)",
            "baseline",
            format!("filesrc location={m} ! fakesink sync=false"),
        ),
        row(
            "filesrc ! rtmpclientsink (raw FLV, bonus)",
            "rsrtmp",
            format!(
                "filesrc location={m} ! rtmpclientsink name=rtmp sync=false chunk-size=4096 \
                 location={{URL}}"
            ),
        ),
    ]
}

fn src_scenarios(demux: bool) -> Vec<Scenario> {
    let row = |label, side, pipeline: &str| Scenario {
        label,
        side,
        pipeline: pipeline.to_string(),
        fixed_mbit: None,
    };
    let mut v = vec![
        // The floors: the same FLV tags at the same pace, one write (and, with a block size
        // above the largest tag, one buffer) per tag as RTMP gives one message per tag, with no
        // protocol: from a pipe, and over loopback TCP (the transport kept, RTMP left out).
        row(
            "fdsrc ! fakesink (no-protocol floor)",
            "floor",
            "fdsrc fd=0 blocksize=1048576 ! fakesink name=out sync=false",
        ),
        row(
            "tcpclientsrc ! fakesink (TCP floor)",
            "floor-tcp",
            "tcpclientsrc host=127.0.0.1 port={PORT} blocksize=1048576 ! fakesink name=out sync=false",
        ),
        row(
            "rtmpclientsrc ! fakesink",
            "rsrtmp",
            "rtmpclientsrc name=rtmp location={URL} ! fakesink name=out sync=false",
        ),
        row(
            "rtmp2src ! fakesink",
            "rtmp2",
            "rtmp2src name=rtmp location={URL} ! fakesink name=out sync=false",
        ),
    ];
    if demux {
        v.push(row(
            "rtmpclientsrc ! flvdemux ! fakesink",
            "rsrtmp",
            "rtmpclientsrc name=rtmp location={URL} ! flvdemux ! fakesink name=out sync=false",
        ));
        v.push(row(
            "rtmp2src ! flvdemux ! fakesink",
            "rtmp2",
            "rtmp2src name=rtmp location={URL} ! flvdemux ! fakesink name=out sync=false",
        ));
    }
    v
}

/// Runs one pipeline in a child process; returns its report.
fn run_child(pipeline: &str, max: Duration) -> Result<Report, String> {
    run_child_with_input(pipeline, max, Stdio::null())
}

/// The same, the child's standard input being `stdin` (what `fdsrc fd=0` reads).
fn run_child_with_input(pipeline: &str, max: Duration, stdin: Stdio) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let guard = Guard::spawn(
        "pipeline child",
        Command::new(exe)
            .arg("--run")
            .arg(pipeline)
            .arg("--seconds")
            .arg(max.as_secs_f64().to_string())
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    let (ok, out, err) = guard.finish(max + Duration::from_secs(30))?;
    if !ok {
        return Err(format!(
            "pipeline {pipeline:?} failed: {}{}",
            out.trim(),
            err.trim()
        ));
    }
    Report::parse(&out)
}

struct Bench {
    nginx: Nginx,
    media: PathBuf,
    stream_no: u32,
}

impl Bench {
    fn url(&mut self) -> String {
        self.stream_no += 1;
        format!(
            "rtmp://127.0.0.1:{}/live/s{}",
            self.nginx.port, self.stream_no
        )
    }

    fn sink_run(&mut self, sc: &Scenario) -> Result<Run, String> {
        let url = self.url();
        let load = peers::loadavg();
        let report = run_child(
            &sc.pipeline.replace("{URL}", &url),
            Duration::from_secs(300),
        )?;
        if report.end != "eos" {
            return Err(format!("{}: ended by {}, not EOS", sc.label, report.end));
        }
        Ok(Run {
            mbit: sc.fixed_mbit.unwrap_or(f64::NAN),
            report,
            load,
        })
    }

    fn src_run(&mut self, sc: &Scenario, seconds: u64) -> Result<Run, String> {
        if sc.side.starts_with("floor") {
            return self.floor_run(sc, seconds);
        }
        let url = self.url();
        let mut publisher = peers::publish_realtime(&self.media, &url)?;
        std::thread::sleep(PUBLISH_LEAD);
        if !publisher.alive() {
            return Err(format!(
                "ffmpeg publisher to {url} exited early; nginx log: {}",
                self.nginx.error_log()
            ));
        }
        let load = peers::loadavg();
        let report = run_child(
            &sc.pipeline.replace("{URL}", &url),
            Duration::from_secs(seconds),
        )?;
        drop(publisher);
        if report.element_bytes == 0 {
            return Err(format!("{}: the player received nothing", sc.label));
        }
        Ok(Run {
            mbit: report.element_bytes as f64 * 8.0 / 1e6,
            report,
            load,
        })
    }
}

impl Bench {
    /// A floor row: the bench file's tags at their pace (see `client_cpu/feeder.rs`) through
    /// a pipe into the child's `fdsrc`, or over TCP into its `tcpclientsrc`.
    fn floor_run(&mut self, sc: &Scenario, seconds: u64) -> Result<Run, String> {
        let load = peers::loadavg();
        let (feeder, report) = if sc.side == "floor-tcp" {
            let (feeder, port) = feeder::to_tcp(&self.media)?;
            let pipeline = sc.pipeline.replace("{PORT}", &port.to_string());
            let report = run_child(&pipeline, Duration::from_secs(seconds))?;
            (feeder, report)
        } else {
            let (feeder, pipe) = feeder::to_pipe(&self.media)?;
            let report = run_child_with_input(
                &sc.pipeline,
                Duration::from_secs(seconds),
                Stdio::from(std::os::fd::OwnedFd::from(pipe)),
            )?;
            (feeder, report)
        };
        drop(feeder);
        if report.out_bytes == 0 {
            return Err(format!("{}: nothing came through", sc.label));
        }
        Ok(Run {
            mbit: report.out_bytes as f64 * 8.0 / 1e6,
            report,
            load,
        })
    }
}

/// Runs every scenario `repeats` times, round-robin, each round starting one scenario later.
fn interleaved(
    bench: &mut Bench,
    scenarios: &[Scenario],
    repeats: usize,
    mut one: impl FnMut(&mut Bench, &Scenario) -> Result<Run, String>,
) -> Result<Vec<Vec<Run>>, String> {
    let mut runs: Vec<Vec<Run>> = scenarios.iter().map(|_| Vec::new()).collect();
    for round in 0..repeats {
        for k in 0..scenarios.len() {
            let i = (round + k) % scenarios.len();
            let run = one(bench, &scenarios[i])?;
            eprintln!(
                "  round {} {:<45} cpu {:>7.1} ms  wall {:>6.2} s  {:>6.1} Mbit  {:.3} ms/Mbit  load {:.2}",
                round + 1,
                scenarios[i].label,
                run.report.cpu_ns as f64 / 1e6,
                run.report.wall_ns as f64 / 1e9,
                run.mbit,
                run.cpu_ms_per_mbit(),
                run.load
            );
            runs[i].push(run);
            if !bench.nginx.alive() {
                return Err(format!("nginx exited; log: {}", bench.nginx.error_log()));
            }
        }
    }
    Ok(runs)
}

fn spread(runs: &[Run]) -> String {
    let v: Vec<f64> = runs.iter().map(Run::cpu_ms_per_mbit).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.3}–{hi:.3}")
}

fn print_sink_table(scenarios: &[Scenario], runs: &[Vec<Run>]) {
    let per_mbit: Vec<f64> = runs
        .iter()
        .map(|r| median(r.iter().map(Run::cpu_ms_per_mbit).collect()))
        .collect();
    let find = |label: &str| {
        scenarios
            .iter()
            .position(|s| s.label == label)
            .map(|i| per_mbit[i])
            .unwrap_or(f64::NAN)
    };
    // Each row is netted against the baseline with the same source side: the raw-FLV row
    // against `filesrc ! fakesink`, the others against the demux/mux pipeline.
    let base_muxed = find("fakesink (baseline)");
    let base_raw = find("filesrc ! fakesink (raw baseline)");
    let base_of = |label: &str| {
        if label.starts_with("filesrc !") {
            base_raw
        } else {
            base_muxed
        }
    };
    let rtmp2 = find("rtmp2sink");
    println!(
        "| sink pipeline | CPU ms (median) | wall s | Mbit (file) | element sent MB | CPU ms/Mbit (range) | net of baseline ms/Mbit | vs rtmp2sink raw | vs rtmp2sink net |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, sc) in scenarios.iter().enumerate() {
        let r = &runs[i];
        let cpu = median(r.iter().map(|x| x.report.cpu_ns as f64 / 1e6).collect());
        let wall = median(r.iter().map(|x| x.report.wall_ns as f64 / 1e9).collect());
        let sent = median(
            r.iter()
                .map(|x| x.report.element_bytes as f64 / 1e6)
                .collect(),
        );
        let net = per_mbit[i] - base_of(sc.label);
        let (raw_ratio, net_ratio) = if sc.side == "baseline" {
            ("—".to_string(), "—".to_string())
        } else {
            (
                format!("{:.2}×", per_mbit[i] / rtmp2),
                format!("{:.2}×", net / (rtmp2 - base_muxed)),
            )
        };
        println!(
            "| {} | {cpu:.0} | {wall:.2} | {:.1} | {} | {:.3} ({}) | {} | {raw_ratio} | {net_ratio} |",
            sc.label,
            r[0].mbit,
            if sc.side == "baseline" {
                "—".to_string()
            } else {
                format!("{sent:.2}")
            },
            per_mbit[i],
            spread(r),
            if sc.side == "baseline" {
                "—".to_string()
            } else {
                format!("{net:.3}")
            },
        );
    }
}

fn print_src_table(scenarios: &[Scenario], runs: &[Vec<Run>]) {
    let per_mbit: Vec<f64> = runs
        .iter()
        .map(|r| median(r.iter().map(Run::cpu_ms_per_mbit).collect()))
        .collect();
    println!(
        "| player pipeline | CPU ms (median) | CPU % of a core | Mbit received | Mbit/s | MB to fakesink | buffers | CPU ms/Mbit (range) | vs rtmp2src | vs floor | vs TCP floor |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let floor = scenarios.iter().position(|s| s.side == "floor");
    let tcp_floor = scenarios.iter().position(|s| s.side == "floor-tcp");
    for (i, sc) in scenarios.iter().enumerate() {
        let r = &runs[i];
        let cpu = median(r.iter().map(|x| x.report.cpu_ns as f64 / 1e6).collect());
        let pct = median(
            r.iter()
                .map(|x| x.report.cpu_ns as f64 * 100.0 / x.report.wall_ns as f64)
                .collect(),
        );
        let mbit = median(r.iter().map(|x| x.mbit).collect());
        let rate = median(
            r.iter()
                .map(|x| x.mbit / (x.report.wall_ns as f64 / 1e9))
                .collect(),
        );
        let out = median(r.iter().map(|x| x.report.out_bytes as f64 / 1e6).collect());
        let bufs = median(r.iter().map(|x| x.report.out_buffers as f64).collect());
        // The rtmp2 row with the same downstream (the label after the element name).
        let tail = sc.label.split_once(' ').map(|x| x.1).unwrap_or("");
        let twin = scenarios
            .iter()
            .position(|s| s.side == "rtmp2" && s.label.ends_with(tail));
        let ratio = match twin {
            Some(j) if j != i => format!("{:.2}×", per_mbit[i] / per_mbit[j]),
            _ => "—".to_string(),
        };
        let vs = |floor: Option<usize>| match floor {
            Some(f) if f != i && !sc.side.starts_with("floor") => {
                format!("{:.2}×", per_mbit[i] / per_mbit[f])
            }
            _ => "—".to_string(),
        };
        let (vs_floor, vs_tcp) = (vs(floor), vs(tcp_floor));
        println!(
            "| {} | {cpu:.0} | {pct:.1} | {mbit:.1} | {rate:.2} | {out:.2} | {bufs:.0} | {:.3} ({}) | {ratio} | {vs_floor} | {vs_tcp} |",
            sc.label,
            per_mbit[i],
            spread(r),
        );
    }
}

fn bench(opts: &Options) -> Result<(), String> {
    peers::require("gst-launch-1.0", "gstreamer1.0-tools")?;
    let media = peers::media(MEDIA_SECONDS)?;
    let nginx = Nginx::start()?;
    let mut b = Bench {
        nginx,
        media: media.clone(),
        stream_no: 0,
    };
    let size = std::fs::metadata(&media).map(|m| m.len()).unwrap_or(0);
    println!(
        "media: {} ({size} bytes, {MEDIA_SECONDS} s, {:.2} Mbit/s); nginx-rtmp on port {}; \
         repeats {}; sink runs {}",
        media.display(),
        size as f64 * 8.0 / 1e6 / MEDIA_SECONDS as f64,
        b.nginx.port,
        opts.repeats,
        if opts.paced {
            "paced (clocksync)"
        } else {
            "unpaced (sync=false)"
        }
    );
    if opts.sink {
        // Paced runs take real time, so one pass of the file is long enough.
        let file = if opts.paced {
            media.clone()
        } else {
            peers::looped(&media, opts.loops)?
        };
        let file_size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        println!(
            "sink runs send {} ({file_size} bytes, {:.0} Mbit)",
            file.display(),
            file_size as f64 * 8.0 / 1e6
        );
        let scenarios = sink_scenarios(&file, opts.paced);
        let l0 = peers::loadavg();
        let runs = interleaved(&mut b, &scenarios, opts.sink_repeats, Bench::sink_run)?;
        let l1 = peers::loadavg();
        println!("\nsink runs (load average 1 min: {l0:.2} before, {l1:.2} after; 2 cores)\n");
        print_sink_table(&scenarios, &runs);
    }
    if opts.src {
        let scenarios = src_scenarios(opts.src_demux);
        let seconds = opts.src_seconds;
        let l0 = peers::loadavg();
        let runs = interleaved(&mut b, &scenarios, opts.repeats, |b, sc| {
            b.src_run(sc, seconds)
        })?;
        let l1 = peers::loadavg();
        println!(
            "\nplayer runs, {seconds} s each of a real-time publish (load average 1 min: \
             {l0:.2} before, {l1:.2} after; 2 cores)\n"
        );
        print_src_table(&scenarios, &runs);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--run") {
        let pipeline = args.get(i + 1);
        let seconds = args
            .iter()
            .position(|a| a == "--seconds")
            .and_then(|j| args.get(j + 1))
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0);
        let (Some(pipeline), Some(seconds)) = (pipeline, seconds) else {
            eprintln!("--run needs a pipeline and --seconds N, got {args:?}");
            std::process::exit(2);
        };
        if let Err(e) = runner::run(pipeline, Duration::from_secs_f64(seconds)) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "client_cpu: CPU bench; run it with `cargo bench --bench client_cpu` (nothing to do here)"
        );
        return;
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("client_cpu: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = bench(&opts) {
        eprintln!("client_cpu: {e}");
        std::process::exit(1);
    }
}
