//! The parent's helpers: child processes that are killed on drop and whose stdout is read
//! line by line (a server child announces its port before it finishes), the bench media made
//! once with ffmpeg, the self-signed certificate for rtmps/rtmpts, and the load average.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A child process, killed when dropped. Its stdout lines arrive on a channel as they are
/// printed; stderr is collected on a thread so a chatty child never blocks on a full pipe.
pub struct Child2 {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Child2 {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Child2, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Child2 {
            name: name.to_string(),
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        })
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix`; returns the rest.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        let rest = rest.to_string();
                        self.stdout.push(line);
                        return Ok(rest);
                    }
                    self.stdout.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} printed no {prefix:?} line within {timeout:?}",
                        self.name
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    let err = self.take_stderr();
                    return Err(format!(
                        "{} exited before printing {prefix:?}; stderr: {err}",
                        self.name
                    ));
                }
            }
        }
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// Waits for exit within `timeout`; returns its whole stdout, or an error with stderr.
    pub fn finish(mut self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let err = self.take_stderr();
                    return Err(format!(
                        "{} did not finish within {timeout:?}; stderr: {err}",
                        self.name
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("wait for {}: {e}", self.name)),
            }
        };
        // The reader thread ends at EOF on the pipe, which follows the exit.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        let err = self.take_stderr();
        if !status.success() {
            return Err(format!(
                "{} failed ({status}): {}{}",
                self.name,
                self.stdout.join("\n"),
                err.trim()
            ));
        }
        Ok(self.stdout.join("\n"))
    }
}

impl Drop for Child2 {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Fails with the Debian package to install when `program` is not on PATH.
pub fn require(program: &str, package: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{program}` is not installed: apt-get install {package}"
        ))
    }
}

fn ffmpeg(args: &[&std::ffi::OsStr], tmp: &Path, path: &Path) -> Result<(), String> {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .arg(tmp)
        .status()
        .map_err(|e| format!("run ffmpeg: {e}"))?;
    if !status.success() {
        return Err(format!(
            "ffmpeg could not make {} ({status})",
            path.display()
        ));
    }
    std::fs::rename(tmp, path).map_err(|e| format!("rename {}: {e}", tmp.display()))
}

/// The bench media: H.264 (1280x720, 30 fps, 2 s GOP, 2.9 Mbit/s CBR-ish) + AAC (128 kbit/s)
/// in FLV, about 3 Mbit/s in all, `seconds` long; made once under target/bench-media.
pub fn media(seconds: u32) -> Result<PathBuf, String> {
    require("ffmpeg", "ffmpeg")?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(format!("h264-aac-3mbps-{seconds}s.flv"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("making {} with ffmpeg (once)...", path.display());
    let tmp = dir.join(format!("h264-aac-3mbps-{seconds}s.tmp.flv"));
    let video = format!("testsrc2=size=1280x720:rate=30:duration={seconds}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let mut args: Vec<&std::ffi::OsStr> = vec![];
    for a in ["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio] {
        args.push(a.as_ref());
    }
    for a in [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "60",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        "2900k",
        "-maxrate",
        "2900k",
        "-bufsize",
        "2900k",
        "-x264-params",
        "nal-hrd=cbr",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-f",
        "flv",
    ] {
        args.push(a.as_ref());
    }
    ffmpeg(&args, &tmp, &path)?;
    Ok(path)
}

/// `media` repeated `times` over in one FLV (ffmpeg `-stream_loop`, stream copy, timestamps
/// continuing), made once next to it: one pass moves too few bytes, unpaced, to outweigh the
/// fixed costs of a run (connect, handshake, threads).
pub fn looped(media: &Path, times: u32) -> Result<PathBuf, String> {
    if times <= 1 {
        return Ok(media.to_path_buf());
    }
    let stem = media
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("odd media name {}", media.display()))?;
    let path = media.with_file_name(format!("{stem}-x{times}.flv"));
    if path.exists() {
        return Ok(path);
    }
    let tmp = media.with_file_name(format!("{stem}-x{times}.tmp.flv"));
    let n = (times - 1).to_string();
    let args: Vec<&std::ffi::OsStr> = vec![
        "-stream_loop".as_ref(),
        n.as_ref(),
        "-i".as_ref(),
        media.as_os_str(),
        "-c".as_ref(),
        "copy".as_ref(),
        "-f".as_ref(),
        "flv".as_ref(),
    ];
    ffmpeg(&args, &tmp, &path)?;
    Ok(path)
}

/// A temporary directory holding a self-signed certificate for 127.0.0.1, removed on drop.
pub struct Cert {
    dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Cert {
    pub fn make() -> Result<Cert, String> {
        let dir = std::env::temp_dir().join(format!("rsrtmp-transports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| format!("rcgen: {e}"))?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, made.cert.pem()).map_err(|e| format!("write cert: {e}"))?;
        std::fs::write(&key, made.signing_key.serialize_pem())
            .map_err(|e| format!("write key: {e}"))?;
        Ok(Cert { dir, cert, key })
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
