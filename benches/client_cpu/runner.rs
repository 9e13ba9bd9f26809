//! The child side of the bench: runs one gst-launch pipeline in this process and reports the
//! CPU the process used while the pipeline played, so the parent measures the pipeline alone.
//!
//! The process is the bench binary itself (`--run ...`), with rsrtmp registered from the rlib
//! and rtmp2 / flvmux / fakesink from the system plugins, so both sides load the same way. The
//! CPU window opens just before PLAYING and closes at EOS (sink runs) or after `--seconds`
//! (player runs), before the pipeline is torn down: GStreamer's init, the registry and the
//! plugin loading are outside it. Process CPU is `CLOCK_PROCESS_CPUTIME_ID`: the same
//! utime+stime over all threads (exited ones included) that /proc/<pid>/stat reports, in ns
//! instead of 10 ms ticks, which matters for runs of a few hundred ms of CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// What the child prints on its last stdout line, parsed back by [`Report::parse`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// CPU nanoseconds of the whole process inside the window.
    pub cpu_ns: u64,
    /// Wall-clock nanoseconds of the window.
    pub wall_ns: u64,
    /// `in-bytes-total` + `out-bytes-total` of the element named `rtmp` (0 if none).
    pub element_bytes: u64,
    /// Bytes of buffers that reached the element named `out` (0 if none).
    pub out_bytes: u64,
    /// Buffers that reached `out`.
    pub out_buffers: u64,
    /// "eos" or "timeout".
    pub end: String,
}

const TAG: &str = "CLIENT_CPU_REPORT";

impl Report {
    fn line(&self) -> String {
        format!(
            "{TAG} cpu_ns={} wall_ns={} element_bytes={} out_bytes={} out_buffers={} end={}",
            self.cpu_ns,
            self.wall_ns,
            self.element_bytes,
            self.out_bytes,
            self.out_buffers,
            self.end
        )
    }

    /// Finds the report line in a child's stdout.
    pub fn parse(stdout: &str) -> Result<Report, String> {
        let mut r = Report::default();
        for f in crate::child_common::report_fields(stdout, TAG)? {
            match f.key {
                "cpu_ns" => r.cpu_ns = f.num()?,
                "wall_ns" => r.wall_ns = f.num()?,
                "element_bytes" => r.element_bytes = f.num()?,
                "out_bytes" => r.out_bytes = f.num()?,
                "out_buffers" => r.out_buffers = f.num()?,
                "end" => r.end = f.value.to_string(),
                k => return Err(format!("unknown report field {k:?}")),
            }
        }
        Ok(r)
    }
}

pub use crate::child_common::process_cpu_ns;

fn element_bytes(pipeline: &gst::Pipeline) -> u64 {
    let Some(el) = pipeline.by_name("rtmp") else {
        return 0;
    };
    let stats = el.property::<gst::Structure>("stats");
    let field = |name: &str| stats.get::<u64>(name).unwrap_or(0);
    field("in-bytes-total") + field("out-bytes-total")
}

/// Runs `description` until EOS, an error, or `max` of wall time, and prints the report.
/// Exits with status 1 on a pipeline error (the parent then shows stderr).
pub fn run(description: &str, max: Duration) -> Result<(), String> {
    gst::init().map_err(|e| format!("gst::init: {e}"))?;
    gstrsrtmp::plugin_register_static().map_err(|e| format!("register rsrtmp: {e}"))?;
    let pipeline = gst::parse::launch(description)
        .map_err(|e| format!("cannot build {description:?}: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;

    let out_bytes = Arc::new(AtomicU64::new(0));
    let out_buffers = Arc::new(AtomicU64::new(0));
    if let Some(pad) = pipeline.by_name("out").and_then(|o| o.static_pad("sink")) {
        let (bytes, buffers) = (out_bytes.clone(), out_buffers.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                bytes.fetch_add(buf.size() as u64, Relaxed);
                buffers.fetch_add(1, Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }

    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    let cpu0 = process_cpu_ns();
    let t0 = Instant::now();
    // A failing state change posts its error on the bus, where the loop below finds it.
    let _ = pipeline.set_state(gst::State::Playing);
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
    let wall = t0.elapsed();
    let bytes_at_end = element_bytes(&pipeline);
    // The window closes after NULL: a sink that posts EOS with data still queued in its own
    // thread (rtmp2sink writes from a GLib main loop) does that work inside the window too.
    let _ = pipeline.set_state(gst::State::Null);
    let cpu1 = process_cpu_ns();
    let bytes = bytes_at_end.max(element_bytes(&pipeline));
    let end = end?;
    let report = Report {
        cpu_ns: cpu1 - cpu0,
        wall_ns: wall.as_nanos() as u64,
        element_bytes: bytes,
        out_bytes: out_bytes.load(Relaxed),
        out_buffers: out_buffers.load(Relaxed),
        end: end.to_string(),
    };
    println!("{}", report.line());
    Ok(())
}
