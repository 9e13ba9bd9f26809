//! The rsrtmp side of the comparison: `rtmpserversrc ! rtmpserversink` on one port, run in a
//! child process (this bench binary with `--serve-relay PORT`) so that its CPU time and memory
//! are its own. The publisher publishes `live/in`, players play `live/out`. With
//! `--merge-window MS` / `--queue-time MS` (MS > 0) the sink gets `merge-window=MS` /
//! `queue-time=MS`; without them the properties are left alone, so the relay also runs on a
//! build whose sink does not have them.

use gst::prelude::*;

/// Runs the relay until the pipeline fails or ends; the parent kills the process when done.
pub fn serve(port: u16, sink_props: &[(&str, u32)]) -> Result<(), String> {
    // For profilers that write their report at exit (heaptrack, see RSRTMP_RELAY_WRAPPER):
    // RSRTMP_RELAY_EXIT_AFTER=SECONDS ends the process normally that long after the start.
    if let Some(secs) = std::env::var("RSRTMP_RELAY_EXIT_AFTER")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            std::process::exit(0);
        });
    }
    gst::init().map_err(|e| format!("gst::init: {e}"))?;
    gstrsrtmp::plugin_register_static().map_err(|e| format!("register rsrtmp: {e}"))?;
    // max-clients=0: the default (1000) would refuse the 1000th player plus the publisher.
    let props: String = sink_props
        .iter()
        .filter(|(_, ms)| *ms > 0)
        .map(|(name, ms)| format!(" {name}={ms}"))
        .collect();
    let description = format!(
        "rtmpserversrc address=127.0.0.1 port={port} application=live stream=in max-clients=0 \
         ! rtmpserversink address=127.0.0.1 port={port} application=live stream=out \
         max-clients=0{props}"
    );
    let pipeline = gst::parse::launch(&description).map_err(|e| {
        format!(
            "pipeline {description:?}: {e} (are the server elements in this build? \
             merge-window and queue-time need an rtmpserversink that has them)"
        )
    })?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("relay pipeline to PLAYING: {e}"))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| "relay pipeline has no bus".to_string())?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => {
                break Err(format!(
                    "relay pipeline error from {:?}: {} ({:?})",
                    e.src().map(|s| s.path_string()),
                    e.error(),
                    e.debug()
                ));
            }
            gst::MessageView::Eos(_) => break Ok(()),
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The common start of the benches built on this load generator (`fanout`, `soak`): runs the
/// relay child when asked (`--serve-relay PORT [--merge-window MS] [--queue-time MS]`, how
/// [`crate::server`] starts it) or the floor (`--serve-floor PORT`), does nothing without
/// `--bench` (under `cargo test`), and otherwise parses the options and builds the players'
/// runtime with `threads(&options)` workers. `None`: return from `main`. Exits the process on
/// bad arguments.
pub fn bench_entry<O>(
    name: &str,
    args: &[String],
    parse: impl FnOnce(&[String]) -> Result<O, String>,
    threads: impl FnOnce(&O) -> usize,
) -> Option<(O, tokio::runtime::Runtime)> {
    // The port after `flag`; exits when it is not one.
    let port_after =
        |flag: &str, i: usize| match args.get(i + 1).and_then(|p| p.parse::<u16>().ok()) {
            Some(port) => port,
            None => {
                eprintln!("{flag} needs a port, got {:?}", args.get(i + 1));
                std::process::exit(2);
            }
        };
    if let Some(i) = args.iter().position(|a| a == "--serve-floor") {
        let port = port_after("--serve-floor", i);
        if let Err(e) = crate::server::floor::serve(port) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return None;
    }
    if let Some(i) = args.iter().position(|a| a == "--serve-relay") {
        let port = port_after("--serve-relay", i);
        let ms = |flag: &str| match args.iter().position(|a| a == flag) {
            None => 0,
            Some(j) => match args.get(j + 1).and_then(|m| m.parse::<u32>().ok()) {
                Some(ms) => ms,
                None => {
                    eprintln!("{flag} needs milliseconds, got {:?}", args.get(j + 1));
                    std::process::exit(2);
                }
            },
        };
        let props = [
            ("merge-window", ms("--merge-window")),
            ("queue-time", ms("--queue-time")),
        ];
        if let Err(e) = serve(port, &props) {
            eprintln!("relay: {e}");
            std::process::exit(1);
        }
        return None;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("{name}: run it with `cargo bench --bench {name}` (nothing to do here)");
        return None;
    }
    let opts = parse(args).unwrap_or_else(|e| {
        eprintln!("{name}: {e}");
        std::process::exit(2);
    });
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads(&opts))
        .enable_all()
        .build()
    {
        Ok(rt) => Some((opts, rt)),
        Err(e) => {
            eprintln!("{name}: player runtime: {e}");
            std::process::exit(1);
        }
    }
}
