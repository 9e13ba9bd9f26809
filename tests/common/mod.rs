//! Shared helpers for the interop tests: real peers (nginx-rtmp, ffmpeg, rtmpdump) started on
//! loopback with free ports, killed on drop; test media made once per machine and shared by
//! every test binary; frame counting with ffprobe.
//!
//! A missing peer is a failure that names the Debian package to install, never a skip.

#![allow(dead_code)]

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

fn media_dir() -> PathBuf {
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
               application live {{ live on; record off; idle_streams off; }} }} }}\n"
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
        wait_for_port(port, Duration::from_secs(10));
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

pub mod server_peers;
