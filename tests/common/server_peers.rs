//! Helpers for the server element tests: GStreamer set-up with the plugin linked in, pipelines
//! driven with deadlines, frame counting behind flvdemux, and a scriptable RTMP client (the
//! engine's own client session over a blocking socket) for the requests real peers never make.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstrsrtmp::rtmp::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};

use crate::common::{ChildGuard, FrameCrc, ffmpeg9};

/// GStreamer initialised and this plugin registered, once per test binary.
pub fn init() {
    crate::common::init_gst();
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
        // Not async: an async sink added to a PLAYING pipeline can race GstBin's state
        // bookkeeping so that it never posts EOS (GStreamer 1.22; see tests/flv_roundtrip.rs).
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .build();
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

// ---- FFmpeg 9 and our clients through `rtmpserversrc ! rtmpserversink` ---------------------

/// One port of ours taking every transport (TLS with a fresh certificate), held by a
/// placeholder element; relays join it with [`AllTransports::relay`].
pub struct AllTransports {
    _holder: Pipeline,
    pub port: u16,
    /// The TLS properties of every server element on the port.
    pub tls: String,
    pub cert: std::path::PathBuf,
    /// Extra properties of the relays' `rtmpserversink`.
    sink_props: String,
    _dir: crate::common::TempDir,
}

impl AllTransports {
    pub fn new() -> AllTransports {
        let dir = crate::common::TempDir::new("all-transports");
        let (cert, key) = crate::common::self_signed_cert(dir.path(), "e");
        let tls = format!(
            "tls-certificate-file={} tls-key-file={}",
            cert.display(),
            key.display()
        );
        let holder = Pipeline::parse(&format!(
            "rtmpserversrc name=hold address=127.0.0.1 port=0 application=placeholder {tls} ! \
             fakesink"
        ));
        holder.play();
        let port = holder.port("hold");
        AllTransports {
            _holder: holder,
            port,
            tls,
            cert,
            sink_props: String::new(),
            _dir: dir,
        }
    }

    /// The same, with these properties on every relay's `rtmpserversink`.
    pub fn with_sink_props(mut self, props: &str) -> AllTransports {
        self.sink_props = props.to_string();
        self
    }

    /// `SCHEME://127.0.0.1:PORT/live/STREAM`.
    pub fn url(&self, scheme: &str, stream: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/live/{stream}", self.port)
    }

    /// `rtmpserversrc stream=in ! rtmpserversink name=out stream=out` on the port, playing,
    /// with the count of players that joined `out`.
    pub fn relay(&self) -> (Pipeline, Arc<AtomicUsize>) {
        let (port, tls, extra) = (self.port, &self.tls, &self.sink_props);
        let relay = Pipeline::parse(&format!(
            "rtmpserversrc name=in address=127.0.0.1 port={port} stream=in eos-on-unpublish=true \
             {tls} ! rtmpserversink name=out address=127.0.0.1 port={port} stream=out {tls} \
             {extra}"
        ));
        let (connected, _) = count_clients(&relay.by_name("out"));
        relay.play();
        (relay, connected)
    }

    /// FFmpeg's options to trust our certificate, over rtmps.
    pub fn ffmpeg_tls(&self, scheme: &str) -> Vec<String> {
        if scheme == "rtmps" {
            vec![
                "-tls_verify".into(),
                "1".into(),
                "-ca_file".into(),
                self.cert.display().to_string(),
            ]
        } else {
            Vec::new()
        }
    }

    /// An FFmpeg 9 player of `out` over `scheme`, writing framecrc to `out_file`.
    fn ffmpeg_player(&self, scheme: &str, out_file: &std::path::Path, name: &str) -> ChildGuard {
        ChildGuard::spawn(
            &format!("{name} FFmpeg 9 player over {scheme}"),
            Command::new(ffmpeg9())
                .args(["-nostdin", "-loglevel", "error", "-y"])
                .args(self.ffmpeg_tls(scheme))
                .arg("-i")
                .arg(self.url(scheme, "out"))
                .args(["-map", "0", "-c", "copy", "-f", "framecrc"])
                .arg(out_file)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
    }

    /// FFmpeg 9 publishes `media` over `scheme` into a relay on the port; an FFmpeg 9 player
    /// over the same scheme is there before it, and with `late` a second one joins once half
    /// the stream reached the first. Returns what each player wrote (early, late).
    pub fn ffmpeg_relay(
        &self,
        scheme: &str,
        media: &std::path::Path,
        late: bool,
    ) -> (FrameCrc, Option<FrameCrc>) {
        let (relay, connected) = self.relay();
        let sink = relay.by_name("out");
        let dir = crate::common::TempDir::new("ffmpeg-relay");
        let early_out = dir.path().join("early.crc");
        let late_out = dir.path().join("late.crc");
        let mut players = vec![self.ffmpeg_player(scheme, &early_out, "early")];
        wait_until(
            &format!("the early {scheme} player"),
            RELAY_DEADLINE,
            || connected.load(Ordering::SeqCst) == 1,
        );
        // FFmpeg 9 publishes the file at real-time pace from its standard input, which the
        // test feeds: the rest of the file waits until the late player is in, however slowly
        // it starts.
        let mut publisher = ChildGuard::spawn(
            &format!("FFmpeg 9 publisher over {scheme}"),
            Command::new(ffmpeg9())
                .args(["-nostdin", "-loglevel", "error", "-re", "-f", "flv"])
                .args(["-i", "pipe:0", "-map", "0", "-c", "copy"])
                .args(self.ffmpeg_tls(scheme))
                // FFmpeg's tunnel holds packets until its next poll and drops what it holds
                // at close: flush at every packet.
                .args(if scheme.starts_with("rtmpt") {
                    &["-rtmp_flush_interval", "1"][..]
                } else {
                    &[]
                })
                .args(["-f", "flv"])
                .arg(self.url(scheme, "in"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let data = std::fs::read(media).unwrap();
        let mut feed = publisher.child.stdin.take().unwrap();
        let cut = if late {
            data.len() * 7 / 10
        } else {
            data.len()
        };
        feed.write_all(&data[..cut]).expect("feed the publisher");
        if late {
            wait_until(
                "half the stream to reach the early player",
                RELAY_DEADLINE,
                || sink_bytes(&sink) > data.len() as u64 / 2,
            );
            players.push(self.ffmpeg_player(scheme, &late_out, "late"));
            wait_until(&format!("the late {scheme} player"), RELAY_DEADLINE, || {
                connected.load(Ordering::SeqCst) == 2
            });
            feed.write_all(&data[cut..]).expect("feed the publisher");
        }
        drop(feed);
        let status = publisher.wait_timeout(RELAY_DEADLINE);
        assert!(
            status.success(),
            "publisher over {scheme}: {}",
            publisher.stderr_text()
        );
        relay.wait_eos(RELAY_DEADLINE);
        for player in &mut players {
            let status = player.wait_timeout(RELAY_DEADLINE);
            assert!(
                status.success(),
                "{}: {}",
                player.name.clone(),
                player.stderr_text()
            );
        }
        let read =
            |path: &std::path::Path| FrameCrc::parse(&std::fs::read_to_string(path).unwrap());
        (read(&early_out), late.then(|| read(&late_out)))
    }

    /// [`AllTransports::ffmpeg_relay`] with a late player: the early player gets exactly
    /// `want` (the framecrc of `media`), the late one what [`assert_late_join`] says.
    pub fn assert_ffmpeg_relays(&self, scheme: &str, media: &std::path::Path, want: &FrameCrc) {
        let (early, late) = self.ffmpeg_relay(scheme, media, true);
        let name = format!("{} over {scheme}", media.display());
        early.assert_same(want, &format!("{name}: the early player vs the file"));
        assert_late_join(&name, &late.unwrap(), want);
    }

    /// Our `rtmpclientsink` publishes `media` (the FLV file's bytes) over `scheme` into a
    /// relay on the port; our `rtmpclientsrc ! rsflvdemux`, there before it over the same
    /// scheme, records what every pad got.
    pub fn our_relay(&self, scheme: &str, media: &std::path::Path) -> OurRelay {
        let (relay, connected) = self.relay();
        let player = Pipeline::parse(&format!(
            "rtmpclientsrc name=src location={} tls-ca-file={} ! rsflvdemux name=d",
            self.url(scheme, "out"),
            self.cert.display()
        ));
        let pads = record_pads(&player, "d");
        player.play();
        wait_until(&format!("our {scheme} player"), RELAY_DEADLINE, || {
            connected.load(Ordering::SeqCst) == 1
        });
        let publisher = Pipeline::parse(&format!(
            "filesrc location={} ! rtmpclientsink name=pub location={} tls-ca-file={}",
            media.display(),
            self.url(scheme, "in"),
            self.cert.display()
        ));
        publisher.play();
        publisher.wait_eos(RELAY_DEADLINE);
        relay.wait_eos(RELAY_DEADLINE);
        player.wait_eos(RELAY_DEADLINE);
        let tracks = [
            publisher.by_name("pub"),
            relay.by_name("in"),
            relay.by_name("out"),
            player.by_name("src"),
        ]
        .iter()
        .map(|e| (e.name().to_string(), stats_tracks(e)))
        .collect();
        OurRelay { pads, tracks }
    }
}

/// What went through our clients and our relay ([`AllTransports::our_relay`]).
pub struct OurRelay {
    /// What each of rsflvdemux's pads got behind the player.
    pub pads: PadFrames,
    /// `stats` `tracks` of the publisher, the relay's source and sink, and the player.
    pub tracks: Vec<(String, Vec<TrackRow>)>,
}

impl OurRelay {
    /// Every element of the chain counted the same tracks, frames and bytes.
    pub fn assert_tracks_agree(&self, scheme: &str) {
        let (first, want) = &self.tracks[0];
        assert!(!want.is_empty(), "over {scheme}: {first} counted no track");
        for (name, got) in &self.tracks[1..] {
            assert_eq!(got, want, "over {scheme}: tracks of {name} and of {first}");
        }
    }
}

/// Ends a hung relay; never a measure of speed.
const RELAY_DEADLINE: Duration = Duration::from_secs(150);

/// Bytes written to the busiest player of a `rtmpserversink` so far.
pub fn sink_bytes(sink: &gst::Element) -> u64 {
    let stats = sink.property::<gst::Structure>("stats");
    let list = stats.get::<gst::Array>("client-stats").unwrap();
    list.iter()
        .filter_map(|v| v.get::<gst::Structure>().ok())
        .filter_map(|s| s.get::<u64>("bytes").ok())
        .max()
        .unwrap_or(0)
}

/// What a player that joined mid-stream must have got of a file whose framecrc is `want`:
/// every stream's decoder configuration, and of every stream a tail of the file's packets
/// (not all of them), the video's starting with a keyframe.
pub fn assert_late_join(name: &str, late: &FrameCrc, want: &FrameCrc) {
    assert_eq!(
        late.extradata, want.extradata,
        "{name}: the late player's decoder configuration of every stream"
    );
    assert_eq!(
        late.packets.keys().collect::<Vec<_>>(),
        want.packets.keys().collect::<Vec<_>>(),
        "{name}: the late player's streams"
    );
    for (stream, got) in &late.packets {
        let all = &want.packets[stream];
        assert!(
            !got.is_empty() && got.len() < all.len(),
            "{name}: the late player got {} of {} packets of stream {stream}",
            got.len(),
            all.len()
        );
        assert_eq!(
            got[..],
            all[all.len() - got.len()..],
            "{name}: stream {stream} of the late player is not the file's tail"
        );
    }
    assert!(
        late.packets[&0][0].2,
        "{name}: the late player's video starts without a keyframe"
    );
}

/// A finished run of [`ffmpeg_through_relay`]: the relay (at EOS, its stats still readable)
/// and what the FFmpeg player recorded.
pub struct RelayRun {
    pub pipeline: Pipeline,
    pub recording: std::path::PathBuf,
    pub _dir: crate::common::TempDir,
}

/// FFmpeg publishes `media` (with `publish_args` before its `-i`) into `rtmpserversrc !
/// rtmpserversink {sink_props}` on one port while an FFmpeg player, joined before, records
/// the relay's output; returns once the stream ended and the player finished. `setup` sees
/// the pipeline before it plays.
pub fn ffmpeg_through_relay(
    tag: &str,
    sink_props: &str,
    publish_args: &[&str],
    media: &std::path::Path,
    setup: impl FnOnce(&Pipeline),
) -> RelayRun {
    const DEADLINE: Duration = Duration::from_secs(90);
    let port = crate::common::free_port();
    let p = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out {sink_props}"
    ));
    setup(&p);
    p.play();
    crate::common::wait_for_port(port, DEADLINE);
    let dir = crate::common::TempDir::new(tag);
    let recording = dir.path().join("player.flv");
    // The player waits for the stream and ends with it.
    let mut player = crate::common::ffmpeg_reader_waiting(
        &format!("rtmp://127.0.0.1:{port}/live/out"),
        &recording,
        Duration::from_secs(20),
    );
    let sink = p.by_name("sink");
    wait_until("the player to join", DEADLINE, || {
        let stats: gst::Structure = sink.property("stats");
        stats.get::<u32>("clients").unwrap_or(0) == 1
    });
    let mut publisher = crate::common::ffmpeg_publisher_paced(
        publish_args,
        media,
        &format!("rtmp://127.0.0.1:{port}/live/in"),
    );
    let published = publisher.wait_timeout(DEADLINE);
    assert!(
        published.success(),
        "the publisher failed: {}",
        publisher.stderr_text()
    );
    p.wait_eos(DEADLINE);
    let played = player.wait_timeout(DEADLINE);
    assert!(
        played.success(),
        "the player failed: {}",
        player.stderr_text()
    );
    RelayRun {
        pipeline: p,
        recording,
        _dir: dir,
    }
}
