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
    test_media_with_gop(seconds, 30)
}

/// [`test_media`] with a keyframe every `gop` frames.
pub fn test_media_with_gop(seconds: u32, gop: u32) -> PathBuf {
    require("ffmpeg", "ffmpeg");
    // Tests of one binary run on parallel threads: one makes the file, the others wait.
    static MAKING: Mutex<()> = Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let name = match gop {
        30 => format!("h264-aac-{seconds}s.flv"),
        _ => format!("h264-aac-{seconds}s-g{gop}.flv"),
    };
    let path = media_dir().join(name);
    if path.exists() {
        return path;
    }
    let tmp = media_dir().join(format!(
        "h264-aac-{seconds}s-g{gop}.{}.tmp.flv",
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
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            &gop.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "500k",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-f",
            "flv",
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
        start_watchdog();
    });
}

/// Ends this test binary when it is still running after `RSRTMP_TEST_WATCHDOG` seconds
/// (default 1200; the slowest binary takes a few minutes on two loaded cores): a hung test
/// then fails the run at once, named in cargo's "has been running for over 60 seconds"
/// lines, instead of holding CI until its own limit.
fn start_watchdog() {
    let secs = std::env::var("RSRTMP_TEST_WATCHDOG")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1200);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        // `io::stderr()`, not `eprintln!`: the harness captures the macros' output of threads
        // a test started, and would lose it with the abort.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "rsrtmp test watchdog: this test binary is still running after {secs} s; a test hangs: aborting"
        );
        std::process::abort();
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
    ffmpeg_reader_waiting(url, out, Duration::from_secs(2))
}

/// [`ffmpeg_reader`] that waits up to `wait` without data (before the first and between
/// any two).
pub fn ffmpeg_reader_waiting(url: &str, out: &Path, wait: Duration) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg reader",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "warning", "-y"])
            .arg("-rw_timeout")
            .arg(wait.as_micros().to_string())
            .args(["-i", url])
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// ffmpeg publishing `media` to `url` in real time.
pub fn ffmpeg_publisher(media: &Path, url: &str) -> ChildGuard {
    ffmpeg_publisher_paced(&["-re"], media, url)
}

/// ffmpeg publishing `media` to `url` with `input_args` (its pace: `-re`, `-readrate 0.5`,
/// or none for as fast as it can) before the `-i`.
pub fn ffmpeg_publisher_paced(input_args: &[&str], media: &Path, url: &str) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "warning"])
            .args(input_args)
            .arg("-i")
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

pub mod scripted;
#[allow(unused_imports)]
pub use scripted::*;

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

pub mod ffmpeg9;
#[allow(unused_imports)]
pub use ffmpeg9::*;

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
