//! An RTMP ingest that browsers watch over WebRTC (WHEP) and HLS: the pipeline of
//! `examples/browser/`, in the fewest lines.
//!
//!     cargo run --example rtmp_to_browser -- [RTMP_PORT] [HTTP_PORT]
//!
//! Publish H.264 + AAC to `rtmp://127.0.0.1:1935/live/ingest` (OBS, or
//! `ffmpeg -re -i x.flv -c copy -f flv rtmp://127.0.0.1:1935/live/ingest`), then open
//! `http://127.0.0.1:8080/`. Any WHEP player can use `http://127.0.0.1:8080/live/ingest/whep`.
//!
//! The pipeline ingests once; HLS takes the stream as it is, WebRTC through the shared
//! branches of `browser::fanout::shared_branches`, and every viewer gets its own webrtcbin
//! (added and removed at run time by the HTTP handlers).

#[path = "browser/mod.rs"]
mod browser;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let rtmp_port: u16 = args
        .next()
        .map_or(Ok(1935), |a| a.parse())
        .map_err(|e| format!("{e}"))?;
    let http_port: u16 = args
        .next()
        .map_or(Ok(8080), |a| a.parse())
        .map_err(|e| format!("{e}"))?;
    gst::init().map_err(|e| e.to_string())?;
    gstrsrtmp::plugin_register_static().map_err(|e| e.to_string())?;
    let hls_dir = std::env::temp_dir().join(format!("rtmp_to_browser-{}", std::process::id()));
    std::fs::create_dir_all(&hls_dir).map_err(|e| e.to_string())?;

    // Ingest once; one tee per track feeds HLS and the WebRTC branches.
    let desc = format!(
        "rtmpserversrc address=127.0.0.1 port={rtmp_port} application=live stream=ingest ! \
           flvdemux name=d \
         d.video ! queue ! tee name=v  d.audio ! queue ! tee name=a \
         hlssink2 name=hls location={dir}/segment%05d.ts playlist-location={dir}/playlist.m3u8 \
           target-duration=2 max-files=10 \
         v. ! queue ! h264parse ! hls.video  a. ! queue ! aacparse ! hls.audio \
         {webrtc}",
        dir = hls_dir.display(),
        webrtc = browser::fanout::shared_branches("v. ! ", "a. ! "),
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;

    let fanout = browser::fanout::Fanout::attach(&pipeline, vec!["127.0.0.1".into()], 50)?;
    let streams = HashMap::from([("live/ingest".to_string(), fanout.clone())]);
    let site = Arc::new(browser::http::Site::new(streams, Some(hls_dir)));
    let server = browser::http::serve(&format!("127.0.0.1:{http_port}"), site)?;
    println!(
        "publish to rtmp://127.0.0.1:{rtmp_port}/live/ingest, watch http://127.0.0.1:{}/",
        server.port
    );

    let bus = pipeline.bus().expect("a pipeline has a bus");
    loop {
        let msg =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error]);
        if let Some(msg) = msg
            && let gst::MessageView::Error(e) = msg.view()
        {
            fanout.remove_all();
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!(
                "{}: {}",
                e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                e.error()
            ));
        }
        let s = fanout.stats();
        println!(
            "live: {} | WebRTC viewers: {} | re-encoding: {}",
            s.live, s.viewers, s.reencoding
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
