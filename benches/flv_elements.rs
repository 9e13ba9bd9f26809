//! CPU per MB of FLV of rsflvdemux against GStreamer's flvdemux and of rsflvmux against
//! flvmux, on legacy H.264 + AAC; and rsflvdemux / rsflvmux alone on HEVC + Opus (Enhanced
//! FLV, which GStreamer 1.22's elements do not know).
//!
//! Run: `cargo bench --bench flv_elements -- [--runs 5] [--seconds 40] [--loops 10]
//! [--debug]`; a smoke run: `cargo bench --bench flv_elements -- --quick`. Under `cargo test`
//! (no `--bench` argument) it does nothing.
//!
//! Method. Every measured pipeline is a `gst-launch-1.0` child (an in-process attempt never
//! reached EOS, the same pipelines under gst-launch do), with `GST_PLUGIN_PATH` at the
//! plugin this bench builds first (`cargo build --release --lib`, or the debug build with
//! `--debug`) and a registry file of its own in `target/bench-media`. A child's CPU is its
//! user + system time as `wait4` reports it (its whole life: start-up, registry, pipeline).
//! Before the timed runs every pipeline runs once untimed: that updates the registry, fills
//! the page cache, checks the pipeline reaches EOS, and (muxers) writes the output to a file
//! to learn its size. Timed runs go round-robin, each round starting one scenario later, so
//! load from elsewhere falls on all scenarios alike; the table gives medians.
//!
//! Media (made once, in `target/bench-media`): FFmpeg 9 (the one `scripts/setup.sh`
//! installs) encodes `--seconds` of a 1280x720 30 fps test pattern at 3 Mbit/s (x264
//! veryfast, or x265 ultrafast) with a 48 kHz tone (AAC or Opus, 128 kbit/s), 2 s GOP; then
//! copies it `--loops` times over into one FLV and one Matroska file with continuous
//! timestamps (`-stream_loop`, no re-encoding), ~160 MB each by default: long enough that
//! the pipeline, not gst-launch's start-up, is what is measured.
//!
//! Demuxers: `filesrc ! DEMUX name=d d.video ! fakesink d.audio ! fakesink` (the sinks
//! `sync=false async=false`, so nothing waits on a clock or on preroll and no queue thread
//! is added); net = that minus `filesrc ! fakesink` on the same file. flvdemux runs in pull
//! mode (it pulls each tag from filesrc), rsflvdemux in push mode on filesrc's 4 KiB
//! buffers: the net figure charges each with its own way of reading.
//!
//! Muxers are fed pre-parsed data: matroskademux of the Matroska copy gives H.264 `avc`/`au`
//! and raw AAC with codec_data (or hvc1 HEVC and Opus with its header), what h264parse /
//! aacparse would give, with no parser to pay for. `filesrc ! matroskademux name=d
//! d.video_0 ! queue ! m.video d.audio_0 ! queue ! m.audio MUX name=m ! fakesink` (flvmux
//! with `streamable=true`, as rsflvmux always is); net = that minus the same pipeline with
//! the two queues ending in fakesinks. MB is the muxer's own output, as written in the
//! untimed run.
//!
//! µs/MB is CPU µs per 10^6 bytes of FLV (the demuxer's input, the muxer's output); "net"
//! is the row's median minus the baseline's median, divided by MB; "spread" is the lowest
//! and highest single-run net value.

#[path = "common/args.rs"]
mod args;

use args::parse_arg;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one child may take before it counts as hung.
const CHILD_DEADLINE: Duration = Duration::from_secs(600);

struct Options {
    runs: usize,
    seconds: u32,
    loops: u32,
    debug: bool,
}

fn usage() -> &'static str {
    "usage: cargo bench --bench flv_elements -- [--runs 5] [--seconds 40] [--loops 10] \
     [--debug] [--quick]"
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runs: 5,
        seconds: 40,
        loops: 10,
        debug: false,
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
                o.runs = 1;
                o.seconds = 10;
                o.loops = 2;
            }
            "--debug" => o.debug = true,
            "--runs" => {
                o.runs = parse_arg("--runs", &value()?, |r| (1..=100).contains(r), "1..=100")?;
            }
            "--seconds" => {
                o.seconds =
                    parse_arg("--seconds", &value()?, |s| (2..=600).contains(s), "2..=600")?;
            }
            "--loops" => {
                o.loops = parse_arg("--loops", &value()?, |l| (1..=100).contains(l), "1..=100")?;
            }
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    Ok(o)
}

// ---- the plugin and the media -----------------------------------------------------------------

/// The target directory this bench was built into (target/<profile>/deps/<this binary>).
fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not in target/<profile>/deps", exe.display()))
}

/// Builds the plugin (the cdylib) into this bench's target directory; returns its folder.
fn build_plugin(target: &Path, debug: bool) -> Result<PathBuf, String> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--lib", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target);
    if !debug {
        cargo.arg("--release");
    }
    eprintln!(
        "building the plugin ({}) ...",
        if debug { "debug" } else { "release" }
    );
    let status = cargo
        .status()
        .map_err(|e| format!("cargo build --lib: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --lib failed: {status}"));
    }
    let dir = target.join(if debug { "debug" } else { "release" });
    if !dir.join("libgstrsrtmp.so").exists() {
        return Err(format!("no libgstrsrtmp.so in {}", dir.display()));
    }
    Ok(dir)
}

fn ffmpeg9() -> Result<PathBuf, String> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/imageio-ffmpeg-0.8.1/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "FFmpeg 9 is missing at {}: run ./scripts/setup.sh",
            bin.display()
        ))
    }
}

/// Runs FFmpeg 9 with `args` into `out` (through a temporary name, so a killed run leaves no
/// half file behind), unless `out` exists.
fn ffmpeg_into(out: &Path, args: &[String]) -> Result<(), String> {
    if out.exists() {
        return Ok(());
    }
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = out.with_extension(format!("{}.tmp.{ext}", std::process::id()));
    eprintln!("making {} ...", out.display());
    let result = Command::new(ffmpeg9()?)
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .output()
        .map_err(|e| format!("run FFmpeg 9: {e}"))?;
    if !result.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "FFmpeg 9 could not make {}: {}",
            out.display(),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("rename to {}: {e}", out.display()))
}

/// The bench files of one codec pair: the looped FLV and the looped Matroska copy.
struct Media {
    flv: PathBuf,
    mkv: PathBuf,
}

fn media(dir: &Path, name: &str, codecs: &[&str], o: &Options) -> Result<Media, String> {
    let s = |v: &str| v.to_string();
    let base = dir.join(format!("{name}-{}s.flv", o.seconds));
    let mut encode = vec![
        s("-f"),
        s("lavfi"),
        s("-i"),
        s("testsrc2=size=1280x720:rate=30"),
        s("-f"),
        s("lavfi"),
        s("-i"),
        s("sine=frequency=440:sample_rate=48000"),
        s("-t"),
        o.seconds.to_string(),
        s("-g"),
        s("60"),
        s("-pix_fmt"),
        s("yuv420p"),
        s("-b:v"),
        s("3000k"),
        s("-b:a"),
        s("128k"),
    ];
    encode.extend(codecs.iter().map(|c| c.to_string()));
    encode.extend([s("-f"), s("flv")]);
    ffmpeg_into(&base, &encode)?;
    let looped = |format: &str, ext: &str| -> Result<PathBuf, String> {
        let out = dir.join(format!("{name}-{}s-x{}.{ext}", o.seconds, o.loops));
        let args = vec![
            s("-stream_loop"),
            (o.loops - 1).to_string(),
            s("-i"),
            base.display().to_string(),
            s("-map"),
            s("0"),
            s("-c"),
            s("copy"),
            s("-f"),
            s(format),
        ];
        ffmpeg_into(&out, &args)?;
        Ok(out)
    };
    Ok(Media {
        flv: looped("flv", "flv")?,
        mkv: looped("matroska", "mkv")?,
    })
}

// ---- one child ------------------------------------------------------------------------------

/// Runs `gst-launch-1.0 DESCRIPTION` to its end; returns its user + system CPU time.
fn run_child(plugin: &Path, registry: &Path, description: &str) -> Result<Duration, String> {
    let err_path = registry.with_extension(format!("stderr.{}", std::process::id()));
    let err_file =
        std::fs::File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let child = Command::new("gst-launch-1.0")
        // --no-fault: a crash ends the child instead of leaving it spinning. One argument a
        // word: gst-launch escapes the spaces inside an argument (paths here have none).
        .args(["-q", "--no-fault"])
        .args(description.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin)
        .env("GST_REGISTRY", registry)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .map_err(|e| {
            format!("cannot start gst-launch-1.0 (apt-get install gstreamer1.0-tools): {e}")
        })?;
    let pid = child.id() as libc::pid_t;
    // Reaped here with wait4 for its rusage; `child` is never waited on (dropping a Child
    // neither waits nor kills).
    let deadline = Instant::now() + CHILD_DEADLINE;
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own unreaped child; `status` and `usage` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            return Err(format!("wait4: {}", std::io::Error::last_os_error()));
        }
        if Instant::now() > deadline {
            // SAFETY: as above; the child is still ours (not reaped), so the pid is too.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            return Err(format!(
                "{description:?} did not finish within {CHILD_DEADLINE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child);
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!(
            "{description:?} failed (wait status {status:#x}): {}",
            stderr.trim()
        ));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(tv(usage.ru_utime) + tv(usage.ru_stime))
}

// ---- scenarios ----------------------------------------------------------------------------------

/// One row of a table: a pipeline, with `{SINK}` standing for its sink (fakesink when
/// timed; a filesink in the untimed run of a muxer, to learn its output size).
struct Row {
    label: String,
    pipeline: String,
    /// The FLV the row reads (demuxers); muxers learn their MB from the untimed run.
    input_flv: Option<PathBuf>,
}

/// A baseline and the rows netted against it.
struct Table {
    title: String,
    baseline: Row,
    rows: Vec<Row>,
    /// The row the others are compared with ("vs" column), by index.
    reference: Option<usize>,
}

const SINK: &str = "fakesink sync=false async=false";

fn demux_table(title: &str, flv: &Path, demuxers: &[(&str, &str)]) -> Table {
    let f = flv.display();
    let row = |label: &str, demux: &str| Row {
        label: label.to_string(),
        pipeline: format!(
            "filesrc location={f} ! {demux} name=d d.video ! {SINK} d.audio ! {SINK}"
        ),
        input_flv: Some(flv.to_path_buf()),
    };
    Table {
        title: title.to_string(),
        baseline: Row {
            label: "filesrc ! fakesink (baseline)".into(),
            pipeline: format!("filesrc location={f} ! fakesink sync=false"),
            input_flv: Some(flv.to_path_buf()),
        },
        rows: demuxers.iter().map(|(l, d)| row(l, d)).collect(),
        reference: (demuxers.len() > 1).then_some(0),
    }
}

fn mux_table(title: &str, mkv: &Path, muxers: &[(&str, &str)]) -> Table {
    let m = mkv.display();
    let demux = format!("filesrc location={m} ! matroskademux name=d");
    let row = |label: &str, mux: &str| Row {
        label: label.to_string(),
        pipeline: format!(
            "{demux} d.video_0 ! queue ! m.video d.audio_0 ! queue ! m.audio \
             {mux} name=m ! {{SINK}}"
        ),
        input_flv: None,
    };
    Table {
        title: title.to_string(),
        baseline: Row {
            label: "matroskademux ! queues ! fakesinks (baseline)".into(),
            pipeline: format!("{demux} d.video_0 ! queue ! {SINK} d.audio_0 ! queue ! {SINK}"),
            input_flv: None,
        },
        rows: muxers.iter().map(|(l, x)| row(l, x)).collect(),
        reference: (muxers.len() > 1).then_some(0),
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// What a table's runs gave: per row (baseline first), MB and CPU seconds of every run.
struct Measured {
    mb: Vec<f64>,
    cpu: Vec<Vec<f64>>,
}

fn measure(
    table: &Table,
    plugin: &Path,
    registry: &Path,
    out_dir: &Path,
    runs: usize,
) -> Result<Measured, String> {
    let all: Vec<&Row> = std::iter::once(&table.baseline)
        .chain(&table.rows)
        .collect();
    let timed = |r: &Row| r.pipeline.replace("{SINK}", "fakesink sync=false");
    // Untimed: registry, page cache, EOS check, and each muxer's output size.
    let mut mb = Vec::new();
    for (i, r) in all.iter().enumerate() {
        let bytes = match &r.input_flv {
            Some(flv) => {
                run_child(plugin, registry, &timed(r))?;
                std::fs::metadata(flv).map_err(|e| e.to_string())?.len()
            }
            None if r.pipeline.contains("{SINK}") => {
                let out = out_dir.join(format!("out-{}.flv", std::process::id()));
                let sink = format!("filesink location={}", out.display());
                let result = run_child(plugin, registry, &r.pipeline.replace("{SINK}", &sink));
                let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
                let _ = std::fs::remove_file(&out);
                result?;
                if len == 0 {
                    return Err(format!("{}: wrote nothing", r.label));
                }
                len
            }
            None => {
                run_child(plugin, registry, &timed(r))?;
                0
            }
        };
        mb.push(bytes as f64 / 1e6);
        eprintln!(
            "  checked {:<50} {:>8.1} MB",
            all[i].label,
            bytes as f64 / 1e6
        );
    }
    // The baseline of a mux table has no FLV: its rows' MB are their own.
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
    for round in 0..runs {
        for k in 0..all.len() {
            let i = (round + k) % all.len();
            let t = run_child(plugin, registry, &timed(all[i]))?.as_secs_f64();
            eprintln!(
                "  run {} {:<50} {:>8.1} ms CPU  load {}",
                round + 1,
                all[i].label,
                t * 1e3,
                loadavg()
            );
            cpu[i].push(t);
        }
    }
    Ok(Measured { mb, cpu })
}

fn print_table(table: &Table, m: &Measured, runs: usize) {
    let base = median(m.cpu[0].clone());
    println!();
    println!("{} — median of {runs} run(s)", table.title);
    println!(
        "| {:<46} | {:>8} | {:>9} | {:>10} | {:>9} | {:>15} | {:>6} |",
        "pipeline", "MB", "CPU ms", "µs/MB", "net µs/MB", "net spread", "vs"
    );
    println!(
        "|{:-<48}|{:->10}|{:->11}|{:->12}|{:->11}|{:->17}|{:->8}|",
        "", "", "", "", "", "", ""
    );
    let base_mb = m.mb[0];
    println!(
        "| {:<46} | {:>8} | {:>9.1} | {:>10} | {:>9} | {:>15} | {:>6} |",
        table.baseline.label,
        if base_mb > 0.0 {
            format!("{base_mb:.1}")
        } else {
            "-".into()
        },
        base * 1e3,
        if base_mb > 0.0 {
            format!("{:.0}", base * 1e6 / base_mb)
        } else {
            "-".into()
        },
        "-",
        "-",
        "-"
    );
    let net: Vec<f64> = (1..m.cpu.len())
        .map(|i| (median(m.cpu[i].clone()) - base) * 1e6 / m.mb[i])
        .collect();
    for (j, row) in table.rows.iter().enumerate() {
        let i = j + 1;
        let mb = m.mb[i];
        let cpu = median(m.cpu[i].clone());
        let spread: Vec<f64> = m.cpu[i].iter().map(|c| (c - base) * 1e6 / mb).collect();
        let lo = spread.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = spread.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let vs = match table.reference {
            Some(r) if r != j => format!("{:.2}×", net[j] / net[r]),
            Some(_) => "1×".into(),
            None => "-".into(),
        };
        println!(
            "| {:<46} | {:>8.1} | {:>9.1} | {:>10.0} | {:>9.0} | {:>15} | {:>6} |",
            row.label,
            mb,
            cpu * 1e3,
            cpu * 1e6 / mb,
            net[j],
            format!("{lo:.0}–{hi:.0}"),
            vs
        );
    }
}

fn bench(o: &Options) -> Result<(), String> {
    let target = target_dir()?;
    let plugin = build_plugin(&target, o.debug)?;
    let dir = target.join("bench-media");
    if dir.display().to_string().contains(char::is_whitespace) {
        return Err(format!(
            "{}: the pipelines are passed to gst-launch-1.0 word by word; use a target \
             directory without spaces",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let h264 = media(
        &dir,
        "h264-aac",
        &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"],
        o,
    )?;
    let hevc = media(
        &dir,
        "hevc-opus",
        &["-c:v", "libx265", "-preset", "ultrafast", "-c:a", "libopus"],
        o,
    )?;
    let profile = if o.debug { "debug" } else { "release" };
    let registry = dir.join(format!("registry-{profile}.bin"));
    eprintln!(
        "plugin {} ({profile}); load average {}",
        plugin.display(),
        loadavg()
    );
    let tables = [
        demux_table(
            "Demuxing legacy FLV, H.264 + AAC",
            &h264.flv,
            &[("flvdemux", "flvdemux"), ("rsflvdemux", "rsflvdemux")],
        ),
        mux_table(
            "Muxing H.264 + AAC into legacy FLV",
            &h264.mkv,
            &[
                ("flvmux streamable=true", "flvmux streamable=true"),
                ("rsflvmux", "rsflvmux"),
            ],
        ),
        demux_table(
            "Demuxing Enhanced FLV, HEVC + Opus (flvdemux 1.22 cannot)",
            &hevc.flv,
            &[("rsflvdemux", "rsflvdemux")],
        ),
        mux_table(
            "Muxing HEVC + Opus into Enhanced FLV (flvmux 1.22 cannot)",
            &hevc.mkv,
            &[("rsflvmux", "rsflvmux")],
        ),
    ];
    let mut results = Vec::new();
    for t in &tables {
        eprintln!("{}:", t.title);
        results.push(measure(t, &plugin, &registry, &dir, o.runs)?);
    }
    println!(
        "\nflv_elements: {profile} plugin, {} s of 1280x720 media looped {}×, {} run(s) per row; \
         load average now {}",
        o.seconds,
        o.loops,
        o.runs,
        loadavg()
    );
    for (t, m) in tables.iter().zip(&results) {
        print_table(t, m, o.runs);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "flv_elements: CPU bench; run it with `cargo bench --bench flv_elements` \
             (nothing to do here)"
        );
        return;
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("flv_elements: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = bench(&opts) {
        eprintln!("flv_elements: {e}");
        std::process::exit(1);
    }
}
