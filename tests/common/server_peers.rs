//! Helpers for the server element tests: GStreamer set-up with the plugin linked in, pipelines
//! driven with deadlines, frame counting behind flvdemux, and a scriptable RTMP client (the
//! engine's own client session over a blocking socket) for the requests real peers never make.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstrsrtmp::rtmp::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};

/// GStreamer initialised and this plugin registered, once per test binary.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst::init");
        gstrsrtmp::plugin_register_static().expect("register rsrtmp");
    });
}

/// A pipeline set to NULL when dropped, even when the test panics.
pub struct Pipeline(pub gst::Pipeline);

impl Pipeline {
    pub fn parse(desc: &str) -> Pipeline {
        init();
        let p = gst::parse::launch(desc)
            .unwrap_or_else(|e| panic!("cannot build pipeline {desc:?}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        Pipeline(p)
    }

    pub fn by_name(&self, name: &str) -> gst::Element {
        self.0
            .by_name(name)
            .unwrap_or_else(|| panic!("no element {name}"))
    }

    pub fn play(&self) {
        self.0
            .set_state(gst::State::Playing)
            .expect("pipeline to PLAYING");
    }

    /// The port a server element listens on (after start).
    pub fn port(&self, name: &str) -> u16 {
        let port: u32 = self.by_name(name).property("port");
        assert_ne!(port, 0, "{name} reports no bound port");
        port as u16
    }

    /// Waits for EOS; panics on an error message or when `timeout` passes.
    pub fn wait_eos(&self, timeout: Duration) {
        let bus = self.0.bus().expect("bus");
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .unwrap_or_else(|| panic!("no EOS within {timeout:?}"));
        if let gst::MessageView::Error(e) = msg.view() {
            panic!(
                "pipeline error from {:?}: {} ({:?})",
                e.src().map(|s| s.path_string()),
                e.error(),
                e.debug()
            );
        }
    }

    /// The first error message within `timeout`, if any.
    pub fn error_within(&self, timeout: Duration) -> Option<String> {
        let bus = self.0.bus().expect("bus");
        bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Error],
        )
        .map(|m| match m.view() {
            gst::MessageView::Error(e) => format!("{} ({:?})", e.error(), e.debug()),
            _ => unreachable!(),
        })
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// What one appsink saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub buffers: usize,
    /// Decreasing timestamps (DTS, or PTS where there is no DTS).
    pub backwards: usize,
    pub last: Option<gst::ClockTime>,
    pub first_flags: Option<gst::BufferFlags>,
}

/// Counts buffers arriving at the appsink `name` and checks their timestamps never go back.
pub fn count_appsink(pipeline: &Pipeline, name: &str) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = pipeline
        .by_name(name)
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    let s = seen.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let ts = buffer.dts().or(buffer.pts());
                let mut seen = s.lock().unwrap();
                seen.buffers += 1;
                if seen.first_flags.is_none() {
                    seen.first_flags = Some(buffer.flags());
                }
                if let (Some(last), Some(ts)) = (seen.last, ts)
                    && ts < last
                {
                    seen.backwards += 1;
                }
                if ts.is_some() {
                    seen.last = ts;
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    seen
}

/// Counts `client-connected` (and `client-disconnected`) emissions of a server element.
pub fn count_clients(element: &gst::Element) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let connected = Arc::new(AtomicUsize::new(0));
    let disconnected = Arc::new(AtomicUsize::new(0));
    let c = connected.clone();
    element.connect("client-connected", false, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        None
    });
    let d = disconnected.clone();
    element.connect("client-disconnected", false, move |_| {
        d.fetch_add(1, Ordering::SeqCst);
        None
    });
    (connected, disconnected)
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pushes a whole FLV file into an appsrc in pieces of `piece` bytes, then EOS.
pub fn push_file(appsrc: &gst::Element, data: &[u8], piece: usize) {
    let src = appsrc
        .clone()
        .downcast::<gst_app::AppSrc>()
        .expect("an appsrc");
    for chunk in data.chunks(piece) {
        src.push_buffer(gst::Buffer::from_slice(chunk.to_vec()))
            .expect("appsrc push");
    }
    src.end_of_stream().expect("appsrc eos");
}

/// A scriptable RTMP client over a blocking socket: the engine's client session, driven by
/// hand, for tests that need requests or misbehaviour real peers do not produce.
pub struct RawClient {
    pub sock: TcpStream,
    pub session: ClientSession,
    start: Instant,
    pub events: Vec<ClientEvent>,
}

impl RawClient {
    pub fn connect(port: u16, app: &str, role: ClientRole) -> RawClient {
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        RawClient::over(sock, port, app, role)
    }

    /// A client on an already connected socket.
    pub fn over(sock: TcpStream, port: u16, app: &str, role: ClientRole) -> RawClient {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let config = ClientConfig::new(app, format!("rtmp://127.0.0.1:{port}/{app}"), role);
        let session = ClientSession::new(config, 0, &mut rand::rng());
        RawClient {
            sock,
            session,
            start: Instant::now(),
            events: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Writes what the session has to send.
    pub fn flush(&mut self) {
        while let Some(b) = self.session.poll_transmit() {
            if self.sock.write_all(&b).is_err() {
                return;
            }
        }
    }

    /// Runs the session until an event matches `pred` (returned) or `timeout` passes (None).
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&ClientEvent) -> bool,
    ) -> Option<ClientEvent> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            self.flush();
            while let Some(ev) = self.session.poll_event() {
                self.events.push(ev.clone());
                if pred(&ev) {
                    return Some(ev);
                }
                if matches!(ev, ClientEvent::Closed(_)) {
                    return None;
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            match self.sock.read(&mut buf) {
                Ok(0) => self.session.handle_peer_closed(),
                Ok(n) => {
                    let now = self.now();
                    self.session.handle_input(&buf[..n], now);
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
                Err(_) => self.session.handle_peer_closed(),
            }
        }
    }
}

/// Waits for a child like [`crate::common::ChildGuard::wait_timeout`], but when it does not
/// finish, the panic carries what it wrote to stderr (when piped), to tell why.
pub fn wait_or_explain(
    child: &mut crate::common::ChildGuard,
    timeout: Duration,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.child.kill();
            let _ = child.child.wait();
            let log = child.stderr_text();
            let tail: String = log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            panic!(
                "{} did not finish within {timeout:?}; its last words:\n{tail}",
                child.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The plugin's log lines (categories `rsrtmp-*`, INFO and above), collected in memory from
/// the moment the first caller asks, so a test can check that a refusal said why.
pub fn server_log() -> Arc<Mutex<Vec<String>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<String>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        init();
        let lines = Arc::new(Mutex::new(Vec::new()));
        // By name: applies to categories not created yet too.
        gst::log::set_threshold_for_name("rsrtmp-server", gst::DebugLevel::Info);
        gst::log::set_threshold_for_name("rsrtmp-tunnel", gst::DebugLevel::Info);
        gst::log::set_threshold_for_name("rsrtmp-tls", gst::DebugLevel::Info);
        let sink = lines.clone();
        gst::log::add_log_function(move |cat, level, _file, _func, _line, _obj, msg| {
            if cat.name().starts_with("rsrtmp")
                && level <= gst::DebugLevel::Info
                && let Some(text) = msg.get()
            {
                sink.lock().unwrap().push(text.to_string());
            }
        });
        lines
    })
    .clone()
}

/// Waits until a collected log line contains every one of `needles`; returns it.
pub fn wait_for_log(needles: &[&str], timeout: Duration) -> String {
    let log = server_log();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = log
            .lock()
            .unwrap()
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return line.clone();
        }
        if Instant::now() > deadline {
            let all = log.lock().unwrap().join("\n");
            panic!("no log line with {needles:?} within {timeout:?}; the log:\n{all}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (dts ms, keyframe) of the video and audio tags an appsink gets.
pub type Tags = Arc<Mutex<Vec<(u64, bool)>>>;

/// (dts ms, keyframe) of every video and every audio FLV tag reaching the appsink `name`
/// (one tag per buffer, as rtmpserversrc outputs them; the header buffers are skipped).
/// No demuxer: its dynamic pads would not link again after the pipeline's restart.
pub fn collect_tags(p: &Pipeline, name: &str) -> (Tags, Tags) {
    let video = Arc::new(Mutex::new(Vec::new()));
    let audio = Arc::new(Mutex::new(Vec::new()));
    let (v, a) = (video.clone(), audio.clone());
    p.by_name(name)
        .downcast::<gst_app::AppSink>()
        .unwrap()
        .set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let b = sample.buffer().ok_or(gst::FlowError::Error)?;
                    if b.flags().contains(gst::BufferFlags::HEADER) {
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    let map = b.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let ts = b.dts().or(b.pts()).map_or(0, |t| t.mseconds());
                    // Tag header (11 bytes), then the body: video's first byte has the frame
                    // type, AVC packet type 1 / AAC packet type 1 mark coded frames.
                    match (map.first(), map.get(12)) {
                        (Some(9), Some(1)) => v.lock().unwrap().push((ts, map[11] >> 4 == 1)),
                        (Some(8), Some(1)) => a.lock().unwrap().push((ts, true)),
                        _ => {}
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    (video, audio)
}

/// FFmpeg's framecrc checksum: Adler-32 started from 0 (zlib's starts from 1).
pub fn framecrc_adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (0u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

/// (size, checksum as framecrc writes it) of every buffer, per demuxer pad name.
pub type PadFrames = Arc<Mutex<std::collections::BTreeMap<String, Vec<(u64, String)>>>>;

/// Links every pad the demuxer `name` adds (again after a restart) to a queue and an appsink
/// recording what it gets.
pub fn record_pads(p: &Pipeline, name: &str) -> PadFrames {
    let pads: PadFrames = Arc::default();
    let bin = p.0.clone();
    let got = pads.clone();
    p.by_name(name).connect_pad_added(move |_, pad| {
        let name = pad.name().to_string();
        let queue = gst::ElementFactory::make("queue").build().unwrap();
        let sink = gst_app::AppSink::builder().sync(false).build();
        bin.add_many([&queue, sink.upcast_ref()]).unwrap();
        queue.link(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        queue.sync_state_with_parent().unwrap();
        let got = got.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let map = sample.buffer().unwrap().map_readable().unwrap();
                    got.lock().unwrap().entry(name.clone()).or_default().push((
                        map.len() as u64,
                        format!("0x{:08x}", framecrc_adler32(&map)),
                    ));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pad.link(&queue.static_pad("sink").unwrap()).unwrap();
    });
    pads
}

/// One entry of an element's `stats` `tracks`: (kind, id, codec, frames, keyframes, bytes).
pub type TrackRow = (String, u32, String, u64, u64, u64);

/// The `tracks` of an element's `stats`, sorted by kind and id.
pub fn stats_tracks(element: &gst::Element) -> Vec<TrackRow> {
    let stats = element.property::<gst::Structure>("stats");
    let tracks = stats
        .get::<gst::Array>("tracks")
        .unwrap_or_else(|e| panic!("{}: stats without tracks ({e}): {stats}", element.name()));
    let mut rows: Vec<TrackRow> = tracks
        .iter()
        .map(|v| {
            let t = v.get::<gst::Structure>().unwrap();
            (
                t.get::<String>("kind").unwrap(),
                t.get::<u32>("id").unwrap(),
                t.get::<String>("codec").unwrap(),
                t.get::<u64>("frames").unwrap(),
                t.get::<u64>("keyframes").unwrap(),
                t.get::<u64>("bytes").unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}
