//! CPU per MB of rsflvdemux and rsflvmux against GStreamer's flvdemux and flvmux, on the same
//! H.264 + AAC file, in one run.
//!
//! Run: `cargo bench --bench flv_elements -- [--repeats 7] [--seconds 60]`; smoke run:
//! `cargo bench --bench flv_elements -- --quick`. Under `cargo test` (no `--bench` argument) it
//! does nothing.
//!
//! Scenarios, each a pipeline run to EOS in this process (CPU = user + system time of the
//! process over the run, `getrusage`; nothing else runs meanwhile):
//! - `read`: `filesrc ! fakesink` — the floor every other row stands on.
//! - `DEMUX`: `filesrc ! DEMUX name=d d.video ! fakesink d.audio ! fakesink` — one streaming
//!   thread; net = row − `read`.
//! - `flvdemux ! MUX`: the file demuxed by flvdemux, both streams through queues into MUX,
//!   then fakesink; net = row − the `flvdemux` row with the same queues.
//!
//! Repeats are interleaved (round-robin) so other load falls on every scenario alike; the
//! median is reported. MB is the file's size.

#[path = "client_cpu/peers.rs"]
#[allow(dead_code)]
mod peers;

use std::path::Path;
use std::time::{Duration, Instant};

use gst::prelude::*;

fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the whole struct for RUSAGE_SELF.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs `desc` to EOS; returns (CPU, wall).
fn run(desc: &str) -> Result<(Duration, Duration), String> {
    let p = gst::parse::launch(desc)
        .map_err(|e| format!("{desc}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    p.set_state(gst::State::Playing)
        .map_err(|e| format!("{desc}: {e}"))?;
    let bus = p.bus().expect("bus");
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let (cpu1, wall1) = (cpu_time(), Instant::now());
    let _ = p.set_state(gst::State::Null);
    match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok((cpu1 - cpu0, wall1 - wall0)),
        Some(gst::MessageView::Error(e)) => Err(format!("{desc}: {}", e.error())),
        _ => Err(format!("{desc}: no EOS within 600 s")),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str, default: u32| -> u32 {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{flag} {v:?}: expected a positive number"))
            })
            .unwrap_or(default)
    };
    let repeats = value("--repeats", if quick { 1 } else { 7 }).max(1);
    let seconds = value("--seconds", if quick { 10 } else { 60 }).max(1);

    gst::init().expect("gst::init");
    gstrsrtmp::plugin_register_static().expect("register rsrtmp");
    let media = peers::media(seconds).unwrap_or_else(|e| panic!("bench media: {e}"));
    let mb = std::fs::metadata(&media).unwrap().len() as f64 / 1e6;
    let file = |m: &Path| format!("filesrc location={} blocksize=65536", m.display());

    let sinks = "d.video ! fakesink sync=false d.audio ! fakesink sync=false";
    let queued = "d.video ! queue ! fakesink sync=false d.audio ! queue ! fakesink sync=false";
    let mux = |m: &str| {
        format!(
            "{} ! flvdemux name=d d.video ! queue ! m.video d.audio ! queue ! m.audio \
             {m} name=m ! fakesink sync=false",
            file(&media)
        )
    };
    let mut scenarios: Vec<(String, String)> = vec![
        (
            "read".into(),
            format!("{} ! fakesink sync=false", file(&media)),
        ),
        (
            "flvdemux".into(),
            format!("{} ! flvdemux name=d {sinks}", file(&media)),
        ),
        (
            "rsflvdemux".into(),
            format!("{} ! rsflvdemux name=d {sinks}", file(&media)),
        ),
        (
            "flvdemux (queues)".into(),
            format!("{} ! flvdemux name=d {queued}", file(&media)),
        ),
        ("flvdemux ! flvmux".into(), mux("flvmux")),
    ];
    if gst::ElementFactory::find("rsflvmux").is_some() {
        scenarios.push(("flvdemux ! rsflvmux".into(), mux("rsflvmux")));
    }

    eprintln!(
        "{} MB ({seconds} s of H.264 + AAC, {}), {repeats} repeats, load {:.2}",
        mb,
        media.display(),
        peers::loadavg()
    );
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); scenarios.len()];
    for round in 0..repeats as usize {
        for k in 0..scenarios.len() {
            let i = (round + k) % scenarios.len();
            let (c, w) = run(&scenarios[i].1).unwrap_or_else(|e| panic!("{e}"));
            cpu[i].push(c.as_secs_f64() * 1000.0);
            wall[i].push(w.as_secs_f64() * 1000.0);
        }
    }
    let med: Vec<f64> = cpu.iter().map(|v| median(v.clone())).collect();
    let base = |name: &str| {
        scenarios
            .iter()
            .position(|s| s.0 == name)
            .map(|i| med[i])
            .unwrap_or(0.0)
    };
    println!("| scenario | CPU ms (median) | wall ms | CPU ms per MB | net CPU ms per MB |");
    println!("|---|---:|---:|---:|---:|");
    for (i, (name, _)) in scenarios.iter().enumerate() {
        let floor = match name.as_str() {
            "read" => 0.0,
            "flvdemux" | "rsflvdemux" | "flvdemux (queues)" => base("read"),
            _ => base("flvdemux (queues)"),
        };
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {:.2} |",
            med[i],
            median(wall[i].clone()),
            med[i] / mb,
            (med[i] - floor) / mb
        );
    }
    let ratio = |a: &str, b: &str, floor: &str| {
        let (a, b, f) = (base(a), base(b), base(floor));
        (a - f) / (b - f)
    };
    println!(
        "\nrsflvdemux / flvdemux (net): {:.2}",
        ratio("rsflvdemux", "flvdemux", "read")
    );
    if scenarios.iter().any(|s| s.0 == "flvdemux ! rsflvmux") {
        println!(
            "rsflvmux / flvmux (net): {:.2}",
            ratio(
                "flvdemux ! rsflvmux",
                "flvdemux ! flvmux",
                "flvdemux (queues)"
            )
        );
    }
    eprintln!("load {:.2}", peers::loadavg());
}
