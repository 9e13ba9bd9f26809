//! Helpers of the browser tests (`whep_viewers.rs`, `browser_players.rs`): a small blocking
//! HTTP client, a WHEP player made of GStreamer's own webrtcbin, and a publisher.
//!
//! The test binaries take `examples/browser/` as the module `browser` (the code under test).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst::prelude::*;

use crate::browser::viewer::{ice_on, local_sdp, promise_step, wait_gathered};
use crate::common::{PipelineGuard, pipeline};

/// One HTTP exchange's outcome.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP server");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the HTTP reply");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        // No reply at all (the server closed the connection): status 0, for the caller to
        // report with what it knows (the server's log).
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpReply {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn post_offer(port: u16, path: &str, offer: &str) -> HttpReply {
    http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/sdp")],
        offer,
    )
}

/// A WHEP player made of webrtcbin: offers H.264 and Opus, receive-only, decodes what
/// arrives and counts it.
pub struct Player {
    pub pipeline: PipelineGuard,
    webrtc: gst::Element,
    pub offer: String,
    pub video_frames: Arc<AtomicU64>,
    pub audio_buffers: Arc<AtomicU64>,
    /// The session URL (`Location`) once joined.
    pub session: Option<String>,
}

fn counting_branch(pipeline: &gst::Pipeline, pad: &gst::Pad, desc: &str, counter: Arc<AtomicU64>) {
    let bin = gst::parse::bin_from_description(desc, true).expect("decode branch");
    pipeline.add(&bin).unwrap();
    let sink = bin.iterate_sinks().next().ok().flatten().expect("a sink");
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    bin.sync_state_with_parent().unwrap();
    pad.link(&bin.static_pad("sink").unwrap())
        .expect("link the decode branch");
}

impl Player {
    /// A player with its offer made (every candidate gathered), not yet joined; it decodes
    /// what it receives.
    pub fn new() -> Player {
        Player::with(true)
    }

    /// A player that decodes (`decode`) or only depayloads what it receives (lighter, for
    /// crowds beside a browser).
    pub fn with(decode: bool) -> Player {
        let p = PipelineGuard(gst::Pipeline::new());
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .expect("webrtcbin (gstreamer1.0-plugins-bad)");
        p.add(&webrtc).unwrap();
        ice_on(&webrtc, &["127.0.0.1".to_string()]);
        let video_frames = Arc::new(AtomicU64::new(0));
        let audio_buffers = Arc::new(AtomicU64::new(0));
        let (v, a) = (video_frames.clone(), audio_buffers.clone());
        webrtc.connect_pad_added(move |w, pad| {
            let Some(pipeline) = w.parent().and_then(|p| p.downcast::<gst::Pipeline>().ok()) else {
                return;
            };
            let caps = pad.current_caps().expect("an RTP pad has caps");
            let media = caps
                .structure(0)
                .and_then(|s| s.get::<String>("media").ok());
            match media.as_deref() {
                Some("video") => counting_branch(
                    &pipeline,
                    pad,
                    if decode {
                        "rtph264depay ! avdec_h264 ! fakesink sync=false"
                    } else {
                        "rtph264depay ! fakesink sync=false"
                    },
                    v.clone(),
                ),
                Some("audio") => counting_branch(
                    &pipeline,
                    pad,
                    if decode {
                        "rtpopusdepay ! opusdec ! fakesink sync=false"
                    } else {
                        "rtpopusdepay ! fakesink sync=false"
                    },
                    a.clone(),
                ),
                _ => {}
            }
        });
        let recvonly = gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly;
        let video = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("payload", 102i32)
            .field("clock-rate", 90000i32)
            .field("packetization-mode", "1")
            .field("profile-level-id", "42e01f")
            .build();
        let audio = gst::Caps::builder("application/x-rtp")
            .field("media", "audio")
            .field("encoding-name", "OPUS")
            .field("payload", 111i32)
            .field("clock-rate", 48000i32)
            .build();
        for caps in [video, audio] {
            let _: gst_webrtc::WebRTCRTPTransceiver =
                webrtc.emit_by_name("add-transceiver", &[&recvonly, &caps]);
        }
        p.set_state(gst::State::Playing).unwrap();
        let reply = promise_step("create-offer", |pr| {
            webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, pr])
        })
        .unwrap()
        .expect("create-offer replies");
        let offer = reply
            .get::<gst_webrtc::WebRTCSessionDescription>("offer")
            .expect("an offer");
        promise_step("set-local-description", |pr| {
            webrtc.emit_by_name::<()>("set-local-description", &[&offer, pr])
        })
        .unwrap();
        wait_gathered(&webrtc).unwrap();
        let offer = local_sdp(&webrtc).unwrap();
        Player {
            pipeline: p,
            webrtc,
            offer,
            video_frames,
            audio_buffers,
            session: None,
        }
    }

    /// POSTs the offer to `path` and applies the answer; returns the reply (201 expected).
    pub fn join(&mut self, port: u16, path: &str) -> HttpReply {
        let reply = post_offer(port, path, &self.offer);
        if reply.status == 201 {
            let sdp = gst_sdp::SDPMessage::parse_buffer(reply.body.as_bytes()).expect("SDP");
            let answer =
                gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
            promise_step("set-remote-description", |pr| {
                self.webrtc
                    .emit_by_name::<()>("set-remote-description", &[&answer, pr])
            })
            .expect("the answer applies");
            self.session = reply.header("Location").map(str::to_string);
        }
        reply
    }

    pub fn frames(&self) -> (u64, u64) {
        (
            self.video_frames.load(Ordering::Relaxed),
            self.audio_buffers.load(Ordering::Relaxed),
        )
    }
}

/// A live test pattern (H.264 without B-frames + AAC) published with rsrtmp's rtmpclientsink.
pub fn publisher(url: &str, width: u32, height: u32) -> PipelineGuard {
    let p = pipeline(&format!(
        "videotestsrc is-live=true pattern=ball ! \
         video/x-raw,width={width},height={height},framerate=30/1 ! videoconvert ! \
         x264enc tune=zerolatency speed-preset=ultrafast bitrate=600 key-int-max=30 ! \
         h264parse ! queue ! flvmux name=m streamable=true ! rtmpclientsink location={url} \
         audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! \
         audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=96000 ! aacparse ! queue ! m."
    ));
    p.set_state(gst::State::Playing)
        .expect("the publisher starts");
    p
}

/// Error messages waiting on a pipeline's bus, as text.
pub fn bus_errors(p: &gst::Pipeline) -> Vec<String> {
    let bus = p.bus().unwrap();
    let mut out = Vec::new();
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = m.view() {
            out.push(format!(
                "{}: {} ({:?})",
                e.src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                e.error(),
                e.debug()
            ));
        }
    }
    out
}

/// Runs the calling test again inside a network namespace of its own where only loopback is
/// up (`unshare -n`, or `unshare -rn` when not root), so that the browser it starts can reach
/// nothing but 127.0.0.1. Returns true in the namespace (run the test's body), false outside
/// (the body ran in the child, whose success this asserts).
pub fn in_netns(test: &str) -> bool {
    if std::env::var_os("RSRTMP_IN_NETNS").is_some() {
        return true;
    }
    crate::common::require("unshare", "util-linux");
    crate::common::require("ip", "iproute2");
    let root = unsafe { libc::geteuid() } == 0;
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new("unshare");
    cmd.arg(if root { "-n" } else { "-rn" })
        .args(["--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("RSRTMP_IN_NETNS", "1");
    let mut child = crate::common::ChildGuard::spawn("the test in its network namespace", &mut cmd);
    let status = child.wait_timeout(Duration::from_secs(300));
    assert!(
        status.success(),
        "{test} failed in its network namespace: {status}"
    );
    false
}

/// Debian's Chromium, headless, on one page; killed with every process it started on drop.
pub struct Chromium {
    child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Chromium {
    pub fn open(url: &str, dir: &std::path::Path) -> Chromium {
        use std::os::unix::process::CommandExt;
        crate::common::require("chromium", "chromium");
        let log = dir.join("chromium.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                // A 127.0.0.1 host candidate, not hidden behind an mDNS name libnice cannot
                // resolve (webrtc.md §5).
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start chromium");
        Chromium { child, log }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
