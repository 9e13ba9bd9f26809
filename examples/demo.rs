//! The rsrtmp demo: an RTMP ingest server that transcodes what it receives to HLS and serves it
//! again to RTMP players, all on one port, and shows it in the browser (WebRTC and HLS, on one
//! HTTP port), with a test-pattern publisher so that it shows something on a machine with
//! nothing else running.
//!
//!     cargo run --release --example demo -- [--port 1935] [--http-port 8080] [--hls-dir DIR]
//!                                           [--seconds N] [--external-publisher] [--copy]
//!
//! - Publish to `rtmp://127.0.0.1:PORT/live/ingest` (the demo's own publisher does, unless
//!   `--external-publisher` says someone else will: OBS, `ffmpeg -re -i x.flv -c copy -f flv URL`).
//! - Play `rtmp://127.0.0.1:PORT/live/play` (ffplay, VLC, `ffmpeg -i URL -f null -`).
//! - HLS lands in `--hls-dir` (default `./hls`): `playlist.m3u8` and its segments.
//! - Watch `http://127.0.0.1:HTTP_PORT/`: a WebRTC player (WHEP at `/live/ingest/whep`, the
//!   publisher's H.264 passed through, see `examples/browser/`) and an HLS player side by side.
//!
//! Video is re-encoded with x264 for both outputs (`--copy` passes the publisher's H.264 and
//! AAC through untouched instead).

#[path = "browser/mod.rs"]
mod browser;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;

struct Options {
    port: u16,
    http_port: u16,
    hls_dir: PathBuf,
    seconds: Option<u64>,
    external: bool,
    copy: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: demo [--port N] [--http-port N] [--hls-dir DIR] [--seconds N] [--external-publisher] [--copy]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        port: 1935,
        http_port: 8080,
        hls_dir: PathBuf::from("hls"),
        seconds: None,
        external: false,
        copy: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--port" => {
                let v = value("--port");
                o.port = v.parse().unwrap_or_else(|_| {
                    eprintln!("--port {v:?} is not a port number");
                    usage()
                })
            }
            "--http-port" => {
                let v = value("--http-port");
                o.http_port = v.parse().unwrap_or_else(|_| {
                    eprintln!("--http-port {v:?} is not a port number");
                    usage()
                })
            }
            "--hls-dir" => o.hls_dir = PathBuf::from(value("--hls-dir")),
            "--seconds" => {
                let v = value("--seconds");
                o.seconds = Some(v.parse().unwrap_or_else(|_| {
                    eprintln!("--seconds {v:?} is not a number");
                    usage()
                }))
            }
            "--external-publisher" => o.external = true,
            "--copy" => o.copy = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown option {other:?}");
                usage()
            }
        }
    }
    o
}

fn server_pipeline(o: &Options) -> Result<gst::Pipeline, String> {
    let video = if o.copy {
        "identity"
    } else {
        "h264parse ! avdec_h264 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast \
         bitrate=800 key-int-max=60"
    };
    let dir = o.hls_dir.display();
    let port = o.port;
    // One parser per branch after the tees: HLS (MPEG-TS) wants byte-stream H.264 and ADTS,
    // FLV wants avc and raw AAC; each parser converts for its own muxer. WebRTC takes the
    // publisher's H.264 (`iv`), before the demo's own transcode: browsers get it as it was
    // sent (examples/browser/fanout.rs).
    let webrtc = browser::fanout::shared_branches("iv. ! ", "at. ! ");
    let desc = format!(
        "rtmpserversrc name=ingest address=127.0.0.1 port={port} application=live stream=ingest ! \
         flvdemux name=d \
         d.video ! queue ! tee name=iv  iv. ! queue ! {video} ! tee name=vt \
         d.audio ! queue ! tee name=at \
         hlssink2 name=hls location={dir}/segment%05d.ts playlist-location={dir}/playlist.m3u8 \
           target-duration=2 max-files=10 \
         vt. ! queue ! h264parse ! hls.video  at. ! queue ! aacparse ! hls.audio \
         flvmux name=m streamable=true ! \
           rtmpserversink name=out address=127.0.0.1 port={port} application=live stream=play \
         vt. ! queue ! h264parse ! m.video  at. ! queue ! aacparse ! m.audio \
         {webrtc}"
    );
    gst::parse::launch(&desc)
        .map_err(|e| format!("cannot build the server pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

fn publisher_pipeline(port: u16) -> Result<gst::Pipeline, String> {
    let url = format!("rtmp://127.0.0.1:{port}/live/ingest");
    // The project's own client sink when it is there; GStreamer's rtmp2sink otherwise.
    let sink = if gst::ElementFactory::find("rtmpclientsink").is_some() {
        format!("rtmpclientsink location={url}")
    } else {
        format!("rtmp2sink location={url}")
    };
    let desc = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! \
         videoconvert ! x264enc tune=zerolatency speed-preset=veryfast bitrate=1000 \
         key-int-max=60 ! h264parse ! queue ! flvmux name=m streamable=true ! {sink} \
         audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! \
         audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=96000 ! aacparse ! queue ! m."
    );
    gst::parse::launch(&desc)
        .map_err(|e| format!("cannot build the publisher pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

/// Sets a pipeline to NULL when dropped, on every way out of `run`.
struct Running(gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn check_errors(name: &str, p: &gst::Pipeline) -> Result<(), String> {
    let bus = p.bus().expect("a pipeline has a bus");
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                return Err(format!(
                    "{name}: error from {}: {} ({})",
                    e.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ));
            }
            gst::MessageView::Eos(_) => return Err(format!("{name}: end of stream")),
            _ => {}
        }
    }
    Ok(())
}

fn client_summary(element: &gst::Element) -> (u32, u64) {
    let stats: gst::Structure = element.property("stats");
    let clients = stats.get::<u32>("clients").unwrap_or(0);
    let bytes = stats
        .get::<gst::Array>("client-stats")
        .map(|a| {
            a.iter()
                .filter_map(|v| v.get::<gst::Structure>().ok())
                .filter_map(|s| s.get::<u64>("bytes").ok())
                .sum()
        })
        .unwrap_or(0);
    (clients, bytes)
}

/// What the last page that reported saw, for the stats line.
fn browser_summary(site: &browser::http::Site) -> String {
    let r = site.report_values();
    let get = |k: &str| r.get(k).copied().unwrap_or(0.0);
    if r.is_empty() {
        return String::new();
    }
    format!(
        " | page: WebRTC {} frames decoded, HLS {} frames",
        get("webrtc.framesDecoded"),
        get("hls.totalVideoFrames") - get("hls.droppedVideoFrames")
    )
}

fn run() -> Result<(), String> {
    let o = options();
    gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
    gstrsrtmp::plugin_register_static().map_err(|e| format!("cannot register rsrtmp: {e}"))?;
    std::fs::create_dir_all(&o.hls_dir)
        .map_err(|e| format!("cannot create {}: {e}", o.hls_dir.display()))?;

    let server = Running(server_pipeline(&o)?);
    let server = &server.0;
    server
        .set_state(gst::State::Playing)
        .map_err(|_| format!("the server did not start: is port {} free?", o.port))?;
    check_errors("server", server)?;
    let ingest = server.by_name("ingest").expect("named in the pipeline");
    let out = server.by_name("out").expect("named in the pipeline");
    let port: u32 = ingest.property("port");
    let fanout = browser::fanout::Fanout::attach(server, vec!["127.0.0.1".into()], 50)?;
    let streams = HashMap::from([("live/ingest".to_string(), fanout.clone())]);
    let site = Arc::new(browser::http::Site::new(streams, Some(o.hls_dir.clone())));
    let http = browser::http::serve(&format!("127.0.0.1:{}", o.http_port), site.clone())?;

    println!("rsrtmp demo, listening on 127.0.0.1:{port}");
    println!("  publish to   rtmp://127.0.0.1:{port}/live/ingest");
    println!("  play from    rtmp://127.0.0.1:{port}/live/play      (e.g. ffplay that URL)");
    println!("  HLS          {}/playlist.m3u8", o.hls_dir.display());
    println!(
        "  browser      http://127.0.0.1:{}/   (WebRTC and HLS players)",
        http.port
    );
    println!(
        "  WHEP         http://127.0.0.1:{}/live/ingest/whep",
        http.port
    );

    let publisher = if o.external {
        println!("waiting for an outside publisher (OBS, ffmpeg, ...)");
        None
    } else {
        let p = Running(publisher_pipeline(port as u16)?);
        p.0.set_state(gst::State::Playing)
            .map_err(|_| "the test-pattern publisher did not start".to_string())?;
        println!("publishing a test pattern (videotestsrc + audiotestsrc, x264 + AAC)");
        Some(p)
    };

    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        check_errors("server", server)?;
        if let Some(p) = &publisher {
            check_errors("publisher", &p.0)?;
        }
        let (publishers, in_bytes) = client_summary(&ingest);
        let (players, out_bytes) = client_summary(&out);
        let segments = std::fs::read_dir(&o.hls_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
                    .count()
            })
            .unwrap_or(0);
        let webrtc = fanout.stats();
        let line = format!(
            "[{:>4}s] publisher: {} ({} kB in) | players: {players} ({} kB out) | HLS segments: {segments} | WebRTC viewers: {}{}{}",
            start.elapsed().as_secs(),
            if publishers > 0 { "connected" } else { "none" },
            in_bytes / 1000,
            out_bytes / 1000,
            webrtc.viewers,
            if webrtc.reencoding {
                " (B-frames: re-encoded)"
            } else {
                ""
            },
            browser_summary(&site),
        );
        println!("{line}");
        *site.status.lock().unwrap() = line;
        if o.seconds
            .is_some_and(|s| start.elapsed() >= Duration::from_secs(s))
        {
            break;
        }
    }
    drop(publisher);
    drop(http);
    fanout.remove_all();
    println!("done");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}
