//! Shared helpers for the interop tests: real peers (nginx-rtmp, ffmpeg, rtmpdump) started on
//! loopback with free ports, killed on drop; test media made once per machine and shared by
//! every test binary; frame counting with ffprobe.
//!
//! A missing peer is a failure that names the Debian package to install, never a skip.

#![allow(dead_code)]

pub mod certs;
pub mod relay;
pub mod stunnel;

use gst::prelude::*;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Panics with an install hint when `program` is not on PATH.
pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is not installed: run scripts/setup.sh (or apt-get install {package})"
    );
}

/// A child process that is killed when the guard drops, even when the test panics.
pub struct ChildGuard {
    pub name: String,
    pub child: Child,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            name: name.to_string(),
            child,
        }
    }

    /// Waits for the process to exit within `timeout`; returns its exit status, or panics
    /// (after killing it) when it does not finish in time.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::process::ExitStatus {
        match self.try_wait_timeout(timeout) {
            Some(status) => status,
            None => {
                let stderr = self.stderr_text();
                panic!(
                    "{} did not finish within {timeout:?}; stderr: {stderr}",
                    self.name
                )
            }
        }
    }

    /// Whether the process has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Like `wait_timeout`, but returns None (after killing the process) on timeout.
    pub fn try_wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Collects stderr (if piped) after the process ended.
    pub fn stderr_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

/// A directory for this test's files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut g = N.lock().unwrap();
            *g += 1;
            *g
        };
        let dir = std::env::temp_dir().join(format!("rsrtmp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn media_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-media");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// H.264 + AAC in FLV, `seconds` long, 30 fps with a 1 s GOP, made once with ffmpeg and shared
/// by every test (written to a temporary name and renamed, so parallel test binaries never
/// see half a file).
pub fn test_media(seconds: u32) -> PathBuf {
    require("ffmpeg", "ffmpeg");
    // Tests of one binary run on parallel threads: one makes the file, the others wait.
    static MAKING: Mutex<()> = Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let path = media_dir().join(format!("h264-aac-{seconds}s.flv"));
    if path.exists() {
        return path;
    }
    let tmp = media_dir().join(format!(
        "h264-aac-{seconds}s.{}.tmp.flv",
        std::process::id()
    ));
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p", "-b:v",
            "500k", "-c:a", "aac", "-b:a", "96k", "-f", "flv",
        ])
        .arg(&tmp)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the test media");
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// Frame counts of a media file as ffprobe reads them: (video frames, audio frames).
pub fn ffprobe_counts(path: &Path) -> (u64, u64) {
    require("ffprobe", "ffmpeg");
    let count = |stream: &str| -> u64 {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_packets", "-select_streams", stream])
            .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("run ffprobe");
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .lines()
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0)
    };
    (count("v"), count("a"))
}

/// nginx with the rtmp module, in the foreground, on a free loopback port.
pub struct Nginx {
    pub port: u16,
    pub dir: TempDir,
    pub guard: ChildGuard,
}

impl Nginx {
    pub fn start() -> Nginx {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Nginx {
        Self::start_conf(port, false)
    }

    /// nginx with `idle_streams on` (its own default): a player may connect before the
    /// publisher and waits for it, instead of getting "No such stream".
    pub fn start_idle_streams() -> Nginx {
        Self::start_conf(free_port(), true)
    }

    /// Like [`Nginx::start_idle_streams`], on a given port (to restart a killed server).
    pub fn start_idle_streams_on(port: u16) -> Nginx {
        Self::start_conf(port, true)
    }

    /// nginx (`idle_streams on`) on `port` whose `live` application also carries
    /// `directives`, e.g. a relay line `pull rtmp://127.0.0.1:PORT/live;` that makes it an
    /// edge of another server.
    pub fn start_live_app(port: u16, directives: &str) -> Nginx {
        Self::start_full(port, true, directives)
    }

    fn start_conf(port: u16, idle_streams: bool) -> Nginx {
        Self::start_full(port, idle_streams, "")
    }

    fn start_full(port: u16, idle_streams: bool, directives: &str) -> Nginx {
        let idle = if idle_streams { "on" } else { "off" };
        require("nginx", "nginx-light libnginx-mod-rtmp");
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        assert!(
            Path::new(module).exists(),
            "{module} missing: apt-get install libnginx-mod-rtmp"
        );
        let dir = TempDir::new("nginx");
        let d = dir.path().display();
        let conf = format!(
            "load_module {module};\n\
             daemon off; master_process off; worker_processes 1;\n\
             pid {d}/nginx.pid; error_log {d}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; idle_streams {idle}; {directives} }} }} }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let guard = ChildGuard::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-p")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_port(port, Duration::from_secs(30));
        Nginx { port, dir, guard }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// Reads lines of a child's stderr on a thread, so a chatty child never blocks on a full pipe.
pub fn drain_stderr(guard: &mut ChildGuard) -> std::thread::JoinHandle<String> {
    let stderr = guard.child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
        }
        all
    })
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (made with rcgen), written as PEM
/// files into `dir`. Returns (certificate file, key file).
pub fn self_signed_cert(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen makes a certificate");
    let cert = dir.join(format!("{tag}-cert.pem"));
    let key = dir.join(format!("{tag}-key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

// ---- GStreamer helpers ----------------------------------------------------------------------

/// Initialises GStreamer and registers the rsrtmp elements from the linked rlib (no
/// GST_PLUGIN_PATH needed).
pub fn init_gst() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().expect("gst::init");
        gstrsrtmp::plugin_register_static().expect("register rsrtmp");
    });
}

/// A pipeline that is set to NULL when dropped, so a failing test reports its own panic
/// rather than GStreamer's complaint about disposing a running pipeline.
pub struct PipelineGuard(pub gst::Pipeline);

impl std::ops::Deref for PipelineGuard {
    type Target = gst::Pipeline;
    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Builds a pipeline from a gst-launch description.
pub fn pipeline(description: &str) -> PipelineGuard {
    PipelineGuard(
        gst::parse::launch(description)
            .unwrap_or_else(|e| panic!("cannot build {description:?}: {e}"))
            .downcast::<gst::Pipeline>()
            .expect("a pipeline"),
    )
}

/// What ended a pipeline run.
#[derive(Debug)]
pub enum RunEnd {
    Eos,
    /// The error message: source element, domain, text and debug details.
    Error {
        src: String,
        error: gst::glib::Error,
        debug: String,
    },
}

impl RunEnd {
    pub fn expect_eos(self) {
        if let RunEnd::Error { src, error, debug } = self {
            panic!("pipeline failed in {src}: {error} ({debug})");
        }
    }

    pub fn expect_error(self) -> (gst::glib::Error, String) {
        match self {
            RunEnd::Eos => panic!("pipeline ended with EOS, an error was expected"),
            RunEnd::Error { error, debug, .. } => (error, debug),
        }
    }
}

/// Plays `pipeline` until EOS or an error, at most `timeout` (then panics), and stops it.
/// Progress and warning messages are printed as they come.
pub fn run(pipeline: &gst::Pipeline, timeout: Duration) -> RunEnd {
    // A failing state change posts its error on the bus, where `wait_end` finds it.
    let _ = pipeline.set_state(gst::State::Playing);
    let end = wait_end(pipeline, timeout);
    pipeline.set_state(gst::State::Null).expect("set NULL");
    end
}

/// Waits for EOS or an error on the bus of a running pipeline.
pub fn wait_end(pipeline: &gst::Pipeline, timeout: Duration) -> RunEnd {
    use gst::prelude::*;
    let bus = pipeline.bus().expect("bus");
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "pipeline did not finish within {timeout:?}"
        );
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return RunEnd::Eos,
            gst::MessageView::Error(e) => {
                return RunEnd::Error {
                    src: msg
                        .src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    error: e.error(),
                    debug: e.debug().map(|d| d.to_string()).unwrap_or_default(),
                };
            }
            gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
            gst::MessageView::Progress(p) => {
                let (kind, code, text) = p.get();
                eprintln!("progress {kind:?} {code}: {text}");
            }
            _ => {}
        }
    }
}

/// Counts the buffers that reach `element`'s sink pad.
pub fn count_buffers(
    pipeline: &gst::Pipeline,
    element: &str,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use gst::prelude::*;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pad = pipeline
        .by_name(element)
        .unwrap_or_else(|| panic!("no element {element}"))
        .static_pad("sink")
        .expect("sink pad");
    let c = counter.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    counter
}

/// Holds EOS back on `pad`: the first receiver gets a message when EOS arrives, and EOS goes
/// on when the returned sender sends (or is dropped), at the latest after 60 s.
pub fn hold_eos(pad: &gst::Pad) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
    use gst::prelude::*;
    let (arrived_tx, arrived_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let arrived_tx = Mutex::new(arrived_tx);
    let go_rx = Mutex::new(go_rx);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data
            && ev.type_() == gst::EventType::Eos
        {
            let _ = arrived_tx.lock().unwrap().send(());
            let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(60));
        }
        gst::PadProbeReturn::Ok
    });
    (arrived_rx, go_tx)
}

/// Reads a `u64` or `u32` field of a stats structure.
pub fn stat(stats: &gst::StructureRef, field: &str) -> u64 {
    stats
        .get::<u64>(field)
        .or_else(|_| stats.get::<u32>(field).map(u64::from))
        .unwrap_or_else(|_| panic!("stats field {field} missing in {stats}"))
}

/// Stops an ffmpeg the way a user does with Ctrl-C, so it writes its output file out. The
/// first SIGINT only ends ffmpeg's loop at its next packet; an idle reader needs a second one
/// to leave its blocking read (more than three would make it exit without finishing).
pub fn interrupt(guard: &mut ChildGuard) {
    for _ in 0..2 {
        if !matches!(guard.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(guard.child.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// ffmpeg reading `url` into `out` (stream copy to FLV), stdin closed, stderr piped. It ends
/// by itself, writing its file out, once no data came for 2 s (`-rw_timeout`): its RTMP
/// reader throws away what it has buffered when it sees the stream unpublished, so tests that
/// want every frame keep the stream up until this reader is done. The same 2 s run from its
/// play to the first data (it gives up with no data at all), so a test starts it only when
/// the publisher is connected and nothing but releasing its data is left to do.
pub fn ffmpeg_reader(url: &str, out: &Path) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg reader",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "warning", "-y"])
            .args(["-rw_timeout", "2000000", "-i", url])
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// ffmpeg publishing `media` to `url` in real time.
pub fn ffmpeg_publisher(media: &Path, url: &str) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "warning", "-re", "-i"])
            .arg(media)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// Waits until `log()` contains `needle`, at most `timeout`.
pub fn wait_for_text(log: impl Fn() -> String, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if log().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{needle:?} did not appear within {timeout:?}");
}

/// The first video packet's flags in a media file as ffprobe reports them ("K__" for a key
/// frame), and the number of video packets.
pub fn first_video_packet_flags(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=flags",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

// ---- a scripted RTMP server built from the engine ------------------------------------------

pub use gstrsrtmp::rtmp::session::{ServerConfig, ServerEvent, ServerSession};

/// What a scripted server decides about a connect: accept, or reject with a description.
pub type ConnectScript = Box<dyn FnMut(&str, Option<&str>) -> Result<(), String> + Send>;

/// What a scripted server recorded.
#[derive(Debug, Default, Clone)]
pub struct ServerLog {
    /// (app, query) of every connect, in order.
    pub connects: Vec<(String, Option<String>)>,
    /// Per connect: whether it carried Enhanced RTMP fields (fourCcList, maps, capsEx).
    pub enhanced: Vec<bool>,
    /// Media messages received from publishers.
    pub media: Vec<gstrsrtmp::rtmp::message::Message>,
    pub unpublished: bool,
}

/// How a scripted server answers play requests.
#[derive(Clone)]
pub enum PlayScript {
    /// `NetStream.Play.StreamNotFound` with this description.
    NotFound(String),
    /// Accept, send these messages, then end as told.
    Serve(Vec<gstrsrtmp::rtmp::message::Message>, ServeEnd),
}

/// How a scripted server ends a played stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// StreamEOF, connection kept until the client closes it.
    StreamEof,
    /// Close the connection without a word.
    Close,
    /// Keep the connection and send nothing more.
    Silent,
}

/// An RTMP server on a free loopback port, one connection at a time, run by the engine's
/// `ServerSession` on a plain thread, answering as its scripts say.
pub struct ScriptedServer {
    pub port: u16,
    pub log: std::sync::Arc<Mutex<ServerLog>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// A server that accepts every publish.
    pub fn start(connect: ConnectScript, play: PlayScript) -> ScriptedServer {
        Self::start_with(connect, play, None)
    }

    /// A server that predates Enhanced RTMP and chokes on its connect fields: a connect that
    /// carries them is rejected (`drop` false) or answered by closing the connection (`drop`
    /// true); other connects are accepted.
    pub fn start_legacy_only(play: PlayScript, drop: bool) -> ScriptedServer {
        Self::start_full(Box::new(|_, _| Ok(())), play, None, Some(drop))
    }

    /// `reject_publish`: answer publish requests with `NetStream.Publish.BadName` and this
    /// description.
    pub fn start_with(
        connect: ConnectScript,
        play: PlayScript,
        reject_publish: Option<String>,
    ) -> ScriptedServer {
        Self::start_full(connect, play, reject_publish, None)
    }

    fn start_full(
        mut connect: ConnectScript,
        play: PlayScript,
        reject_publish: Option<String>,
        refuse_enhanced: Option<bool>,
    ) -> ScriptedServer {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = std::sync::Arc::new(Mutex::new(ServerLog::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        serve_one(
                            stream,
                            &mut connect,
                            &play,
                            reject_publish.as_deref(),
                            refuse_enhanced,
                            &log2,
                            &stop2,
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ScriptedServer {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn log(&self) -> ServerLog {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    mut stream: TcpStream,
    connect: &mut ConnectScript,
    play: &PlayScript,
    reject_publish: Option<&str>,
    refuse_enhanced: Option<bool>,
    log: &Mutex<ServerLog>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::Write;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rand::rng());
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
        let mut closed = false;
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::ConnectRequest { app, query, .. } => {
                    let enhanced = session.client_caps().is_some();
                    {
                        let mut log = log.lock().unwrap();
                        log.connects.push((app.clone(), query.clone()));
                        log.enhanced.push(enhanced);
                    }
                    match refuse_enhanced {
                        Some(true) if enhanced => return,
                        Some(false) if enhanced => {
                            session
                                .reject_connect("unknown connect properties")
                                .unwrap();
                            continue;
                        }
                        _ => {}
                    }
                    match connect(&app, query.as_deref()) {
                        Ok(()) => session.accept_connect().unwrap(),
                        Err(description) => session.reject_connect(&description).unwrap(),
                    }
                }
                ServerEvent::PublishRequest { stream_id, .. } => match reject_publish {
                    Some(description) => session.reject_publish(stream_id, description).unwrap(),
                    None => session.accept_publish(stream_id).unwrap(),
                },
                ServerEvent::PlayRequest { stream_id, .. } => match play {
                    PlayScript::NotFound(description) => {
                        session.reject_play(stream_id, description).unwrap()
                    }
                    PlayScript::Serve(messages, end) => {
                        session.accept_play(stream_id).unwrap();
                        for m in messages {
                            session.send_media(stream_id, m).unwrap();
                        }
                        match end {
                            ServeEnd::StreamEof => session.end_stream(stream_id).unwrap(),
                            ServeEnd::Close => {
                                while let Some(bytes) = session.poll_transmit() {
                                    let _ = stream.write_all(&bytes);
                                }
                                // Read what the client sent, so closing is a FIN, not a reset.
                                let _ = stream.read(&mut buf);
                                return;
                            }
                            ServeEnd::Silent => {}
                        }
                    }
                },
                ServerEvent::Media { message, .. } => log.lock().unwrap().media.push(message),
                ServerEvent::Unpublished { .. } => log.lock().unwrap().unpublished = true,
                ServerEvent::Closed(_) => closed = true,
                _ => {}
            }
        }
        if closed {
            while let Some(bytes) = session.poll_transmit() {
                let _ = stream.write_all(&bytes);
            }
            return;
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) || Instant::now() > deadline {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => session.handle_peer_closed(),
            Ok(n) => session.handle_input(&buf[..n], now()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(now())
            }
            Err(_) => session.handle_peer_closed(),
        }
    }
}

/// Waits until some process listens on 127.0.0.1:`port`, without connecting (a one-client
/// server such as `ffmpeg -listen 1` would take the probe for its client).
pub fn wait_for_listen(port: u16, timeout: Duration) {
    let needle = format!(":{port:04X} ");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            // Local address is the second column; state 0A is LISTEN.
            if text.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && format!("{} ", cols[1]).ends_with(&needle) && cols[3] == "0A"
            }) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// Waits until nginx has logged `count` lines containing `needle` (e.g. "play: name='s'").
pub fn wait_for_nginx(nginx: &Nginx, needle: &str, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if nginx.error_log().matches(needle).count() >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "nginx did not log {needle:?} {count} times within {timeout:?}:\n{}",
        nginx.error_log()
    );
}
pub mod hostile;
pub mod server_peers;

// ---- FFmpeg 9 (Enhanced RTMP) ------------------------------------------------------------------

/// The FFmpeg 9 binary that scripts/setup.sh installs from PyPI (imageio-ffmpeg, pinned) into
/// `.peers/`: the only Enhanced RTMP peer.
pub fn ffmpeg9() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/imageio-ffmpeg-0.8.1/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2");
    assert!(
        bin.exists(),
        "FFmpeg 9 is missing at {}: run ./scripts/setup.sh (it installs imageio-ffmpeg==0.8.1 \
         from PyPI into .peers/)",
        bin.display()
    );
    bin
}

/// A media file made once per machine by FFmpeg 9 with `codec_args` (after two lavfi inputs,
/// a 320x240 30 fps test pattern and a 48 kHz sine, 30-frame GOP), `seconds` long, named
/// `name` in target/test-media.
pub fn ffmpeg9_media(name: &str, seconds: u32, codec_args: &[&str]) -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let path = media_dir().join(name);
    if path.exists() {
        return path;
    }
    let tmp = media_dir().join(format!("{name}.{}.tmp.flv", std::process::id()));
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=r=48000"])
        .args(codec_args)
        .args(["-g", "30", "-t", &seconds.to_string(), "-f", "flv"])
        .arg(&tmp)
        .output()
        .expect("run FFmpeg 9");
    assert!(
        out.status.success(),
        "FFmpeg 9 could not make {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// What FFmpeg's `framecrc` muxer wrote: per stream, the extradata line and every packet as
/// (size, crc, keyframe). Two are equal when those are (timestamps depend on how FFmpeg
/// was told to read them, `-copyts` or not).
#[derive(Debug, Default)]
pub struct FrameCrc {
    pub extradata: std::collections::BTreeMap<u32, String>,
    pub packets: std::collections::BTreeMap<u32, Vec<(u64, String, bool)>>,
    /// Per stream, every packet's (DTS, PTS) in the stream's time base (ms for FLV).
    pub times: std::collections::BTreeMap<u32, Vec<(i64, i64)>>,
}

impl PartialEq for FrameCrc {
    fn eq(&self, other: &Self) -> bool {
        self.extradata == other.extradata && self.packets == other.packets
    }
}

impl Eq for FrameCrc {}

impl FrameCrc {
    pub fn parse(text: &str) -> FrameCrc {
        let mut out = FrameCrc::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("#extradata ") {
                if let Some((idx, val)) = rest.split_once(':') {
                    out.extradata
                        .insert(idx.trim().parse().unwrap(), val.trim().to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() < 6 {
                continue;
            }
            let key = !f.get(6).is_some_and(|flags| flags.starts_with("F=0x0"));
            out.times
                .entry(f[0].parse().unwrap())
                .or_default()
                .push((f[1].parse().unwrap(), f[2].parse().unwrap()));
            out.packets.entry(f[0].parse().unwrap()).or_default().push((
                f[4].parse().unwrap(),
                f[5].to_string(),
                key,
            ));
        }
        out
    }

    /// Packets per stream, for messages.
    pub fn counts(&self) -> Vec<(u32, usize)> {
        self.packets.iter().map(|(k, v)| (*k, v.len())).collect()
    }

    /// Panics unless `self` equals `want`, saying where they part: the decoder
    /// configurations, the packet counts, or a stream's first differing packet.
    pub fn assert_same(&self, want: &FrameCrc, what: &str) {
        assert_eq!(
            self.extradata, want.extradata,
            "{what}: decoder configurations"
        );
        assert_eq!(self.counts(), want.counts(), "{what}: packets per stream");
        for (stream, packets) in &want.packets {
            if let Some(i) = (0..packets.len()).find(|&i| self.packets[stream][i] != packets[i]) {
                panic!(
                    "{what}: stream {stream}, packet {i}: {:?}, not {:?}",
                    self.packets[stream][i], packets[i]
                );
            }
        }
    }

    /// (size, checksum) of every packet of stream `index` (none when it has no packets), as
    /// [`server_peers::record_pads`] records a demuxer pad's buffers.
    pub fn sized(&self, index: u32) -> Vec<(u64, String)> {
        self.packets
            .get(&index)
            .map(|v| v.iter().map(|(s, c, _)| (*s, c.clone())).collect())
            .unwrap_or_default()
    }
}

/// Reads `path` (a file or URL) with FFmpeg 9 into framecrc text (`-map 0 -c copy`), with
/// the timestamps as the input has them (`-copyts`).
pub fn ffmpeg9_framecrc(path: &Path) -> FrameCrc {
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-loglevel", "error", "-copyts", "-i"])
        .arg(path)
        .args(["-map", "0", "-c", "copy", "-f", "framecrc", "-"])
        .output()
        .expect("run FFmpeg 9");
    assert!(
        out.status.success(),
        "FFmpeg 9 could not read {}",
        path.display()
    );
    FrameCrc::parse(&String::from_utf8_lossy(&out.stdout))
}

/// FFmpeg 9 as a one-client RTMP server (`-listen 1`) on `port`, writing the framecrc of
/// what it gets (`-map 0`, stream copy with `copy`, decoded without) to `out`; returns once
/// it listens.
pub fn ffmpeg9_listen(port: u16, out: &Path, copy: bool) -> ChildGuard {
    let guard = ChildGuard::spawn(
        "FFmpeg 9 -listen 1",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-y", "-listen", "1", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/s"))
            .args(["-map", "0"])
            .args(if copy { &["-c", "copy"][..] } else { &[] })
            .args(["-f", "framecrc"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    wait_for_listen(port, Duration::from_secs(120));
    guard
}

/// Builds `what` (cargo target arguments, e.g. `["--lib"]`) as `cargo build` would, into this
/// test binary's target directory and profile (a no-op when it is up to date), and returns
/// that profile's directory: `cargo test` builds only what the tests link, and never copies
/// an example's binary to `target/<profile>/examples/`.
fn cargo_build(what: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let target = dir.parent().unwrap();
    // Test threads of one binary build once.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .arg("build")
        .args(what)
        .arg("--quiet")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", target);
    if dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build");
    assert!(status.success(), "cargo build {what:?} failed: {status}");
    dir
}

/// The plugin's directory, with the plugin (the cdylib) built from this source, for
/// `gst-launch-1.0` children.
pub fn plugin_dir() -> PathBuf {
    let dir = cargo_build(&["--lib"]);
    assert!(
        dir.join("libgstrsrtmp.so").exists(),
        "no libgstrsrtmp.so in {} after cargo build --lib",
        dir.display()
    );
    dir
}

/// The binary of example `name`, built from this source.
pub fn example_binary(name: &str) -> PathBuf {
    let bin = cargo_build(&["--example", name])
        .join("examples")
        .join(name);
    assert!(
        bin.is_file(),
        "no {} after cargo build --example {name}",
        bin.display()
    );
    bin
}

/// The Enhanced RTMP test files FFmpeg 9 makes once per machine (4 s each, see
/// [`ffmpeg9_media`]); one place for their names and arguments, so that every test shares
/// the same file.
pub mod emedia {
    use std::path::PathBuf;

    use super::ffmpeg9_media;

    const X265: &[&str] = &[
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p",
        "-preset",
        "ultrafast",
    ];
    const X264: &[&str] = &[
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
    ];
    /// One video track and two audio tracks of the same sine.
    const TWO_AUDIO: &[&str] = &["-map", "0:v", "-map", "1:a", "-map", "1:a"];

    fn make(name: &str, parts: &[&[&str]]) -> PathBuf {
        let args: Vec<&str> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        ffmpeg9_media(name, 4, &args)
    }

    /// HEVC + AAC (E-RTMP v1 video, legacy audio).
    pub fn hevc_aac() -> PathBuf {
        make("e-hevc-aac-4s.flv", &[X265, &["-c:a", "aac"]])
    }

    /// HEVC + two Opus tracks (the second in multitrack packets).
    pub fn hevc_two_opus() -> PathBuf {
        make(
            "e-hevc-2opus-4s.flv",
            &[TWO_AUDIO, X265, &["-c:a", "libopus"]],
        )
    }

    /// H.264 + AAC, all legacy.
    pub fn h264_aac() -> PathBuf {
        make("e-h264-aac-4s.flv", &[X264, &["-c:a", "aac"]])
    }

    /// H.264 + two AAC tracks (track 0 legacy, track 1 multitrack).
    pub fn h264_two_aac() -> PathBuf {
        make("e-h264-2aac-4s.flv", &[TWO_AUDIO, X264, &["-c:a", "aac"]])
    }

    /// AV1 (SVT-AV1) + Opus.
    pub fn av1_opus() -> PathBuf {
        make(
            "e-av1-opus-4s.flv",
            &[
                &["-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p"],
                &["-c:a", "libopus"],
            ],
        )
    }

    /// VP9 + FLAC. The colours are tagged BT.709: untagged, the vpcC record says
    /// "unspecified" (2) matrix coefficients, but FFmpeg, remuxing the file to publish it,
    /// writes 0 (RGB) there, so what it sends would not be the file.
    pub fn vp9_flac() -> PathBuf {
        make(
            "e-vp9-709-flac-4s.flv",
            &[
                &[
                    "-c:v",
                    "libvpx-vp9",
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                ],
                &["-pix_fmt", "yuv420p", "-colorspace", "bt709"],
                &[
                    "-color_primaries",
                    "bt709",
                    "-color_trc",
                    "bt709",
                    "-c:a",
                    "flac",
                ],
            ],
        )
    }

    /// HEVC + AC-3 (an audio codec without a decoder configuration).
    pub fn hevc_ac3() -> PathBuf {
        make("e-hevc-ac3-4s.flv", &[X265, &["-c:a", "ac3"]])
    }

    /// HEVC alone.
    pub fn hevc_only() -> PathBuf {
        make("e-hevc-only-4s.flv", &[&["-map", "0:v"], X265])
    }
}
