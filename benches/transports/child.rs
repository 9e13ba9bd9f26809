//! The child side of the transports bench: one gst-launch pipeline in this process (the bench
//! binary run with `--run`), reporting the CPU the process used while the pipeline played.
//!
//! rsrtmp is registered from the rlib and the rest (filesrc, fakesink, flvdemux, flvmux,
//! clocksync) comes from the system plugins. The CPU window opens just before PLAYING and
//! closes after the pipeline is back in NULL, so GStreamer's init and plugin loading are
//! outside it while the last flush of a sink is inside. Process CPU is
//! `CLOCK_PROCESS_CPUTIME_ID` (utime+stime of all threads, exited ones included, in ns).
//!
//! A server child (`serve`) also prints `READY port=P` once its listener is bound, reading the
//! port back from the element named `rtmp` (it was started with port=0), so the parent knows
//! where to send the publisher. Both children report CLOCK_MONOTONIC instants, which the
//! parent can compare across processes: the publisher's start against the server's EOS gives
//! the wall time of the whole transfer, connect and handshake included.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// What the child prints on its last stdout line, parsed back by [`Report::parse`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// CPU nanoseconds of the whole process inside the window.
    pub cpu_ns: u64,
    /// CLOCK_MONOTONIC ns when the window opened (just before PLAYING).
    pub start_mono: u64,
    /// CLOCK_MONOTONIC ns when the bus said EOS (or the run gave up).
    pub end_mono: u64,
    /// CLOCK_MONOTONIC ns of the last buffer that reached `out` (0 if none).
    pub last_buffer_mono: u64,
    /// Bytes of buffers that reached the element named `out` (0 if none).
    pub out_bytes: u64,
    /// "eos" or "timeout".
    pub end: String,
}

const TAG: &str = "TRANSPORTS_REPORT";
/// Prefix of the line a server child prints once it listens.
pub const READY: &str = "READY port=";

impl Report {
    fn line(&self) -> String {
        format!(
            "{TAG} cpu_ns={} start_mono={} end_mono={} last_buffer_mono={} out_bytes={} end={}",
            self.cpu_ns,
            self.start_mono,
            self.end_mono,
            self.last_buffer_mono,
            self.out_bytes,
            self.end
        )
    }

    /// Finds the report line in a child's stdout.
    pub fn parse(stdout: &str) -> Result<Report, String> {
        let mut r = Report::default();
        for f in crate::child_common::report_fields(stdout, TAG)? {
            match f.key {
                "cpu_ns" => r.cpu_ns = f.num()?,
                "start_mono" => r.start_mono = f.num()?,
                "end_mono" => r.end_mono = f.num()?,
                "last_buffer_mono" => r.last_buffer_mono = f.num()?,
                "out_bytes" => r.out_bytes = f.num()?,
                "end" => r.end = f.value.to_string(),
                k => return Err(format!("unknown report field {k:?}")),
            }
        }
        Ok(r)
    }

    /// Wall time of this child's own window, in s.
    pub fn wall_s(&self) -> f64 {
        self.end_mono.saturating_sub(self.start_mono) as f64 / 1e9
    }
}

pub use crate::child_common::{mono_ns, process_cpu_ns};

/// Runs `description` until EOS, an error, or `max` of wall time, and prints the report.
/// With `serve`, prints the READY line with the bound port once PLAYING.
pub fn run(description: &str, max: Duration, serve: bool) -> Result<(), String> {
    gst::init().map_err(|e| format!("gst::init: {e}"))?;
    gstrsrtmp::plugin_register_static().map_err(|e| format!("register rsrtmp: {e}"))?;
    let pipeline = gst::parse::launch(description)
        .map_err(|e| format!("cannot build {description:?}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;

    let out_bytes = Arc::new(AtomicU64::new(0));
    let last_buffer = Arc::new(AtomicU64::new(0));
    if let Some(pad) = pipeline.by_name("out").and_then(|o| o.static_pad("sink")) {
        let (bytes, last) = (out_bytes.clone(), last_buffer.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                bytes.fetch_add(buf.size() as u64, Relaxed);
                last.store(mono_ns(), Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }

    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    let cpu0 = process_cpu_ns();
    let start_mono = mono_ns();
    let t0 = Instant::now();
    // A failing state change posts its error on the bus, where the loop below finds it.
    let _ = pipeline.set_state(gst::State::Playing);
    if serve {
        // The listener is bound by the time the source has started (READY -> PAUSED).
        let (res, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
        res.map_err(|e| format!("server pipeline did not start: {e:?}"))?;
        let el = pipeline
            .by_name("rtmp")
            .ok_or("server pipeline has no element named rtmp")?;
        let port = el.property::<u32>("port");
        if port == 0 {
            return Err("server element reports port 0 after starting".into());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}{port}").map_err(|e| format!("stdout: {e}"))?;
        out.flush().map_err(|e| format!("stdout: {e}"))?;
    }
    let end = loop {
        let left = max.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break Ok("timeout");
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok("eos"),
            gst::MessageView::Error(e) => {
                break Err(format!(
                    "error from {}: {} ({})",
                    msg.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ));
            }
            _ => {}
        }
    };
    let end_mono = mono_ns();
    let _ = pipeline.set_state(gst::State::Null);
    let cpu1 = process_cpu_ns();
    let end = end?;
    let report = Report {
        cpu_ns: cpu1 - cpu0,
        start_mono,
        end_mono,
        last_buffer_mono: last_buffer.load(Relaxed),
        out_bytes: out_bytes.load(Relaxed),
        end: end.to_string(),
    };
    println!("{}", report.line());
    Ok(())
}
