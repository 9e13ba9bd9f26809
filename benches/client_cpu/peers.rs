//! The processes around the measured pipeline: nginx-rtmp (one per bench run, shared by every
//! scenario), ffmpeg as the real-time publisher for player runs, the bench media, and the
//! child-process guard. Everything listens on loopback only and is killed on drop.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is killed when dropped, even if the bench panics.
pub struct Guard {
    pub name: String,
    pub child: Child,
}

impl Guard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Guard, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Guard {
            name: name.to_string(),
            child,
        })
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for exit within `timeout`; returns (success, stdout, stderr). Output is read on
    /// threads so a chatty child never blocks on a full pipe.
    pub fn finish(mut self, timeout: Duration) -> Result<(bool, String, String), String> {
        let reader = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_string(&mut s);
                }
                s
            })
        };
        let out = reader(
            self.child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = reader(
            self.child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "{} did not finish within {timeout:?}; stderr: {}",
                        self.name,
                        err.join().unwrap_or_default()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("wait for {}: {e}", self.name)),
            }
        };
        Ok((
            status.success(),
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        ))
    }
}

impl Drop for Guard {
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

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))
}

/// nginx-rtmp in the foreground on a free loopback port, its files in a temp dir.
pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    guard: Guard,
}

impl Nginx {
    pub fn start() -> Result<Nginx, String> {
        require("nginx", "nginx-light libnginx-mod-rtmp")?;
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        if !Path::new(module).exists() {
            return Err(format!(
                "{module} missing: apt-get install libnginx-mod-rtmp"
            ));
        }
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("rsrtmp-client-cpu-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let d = dir.display();
        let conf = format!(
            "load_module {module};\n\
             daemon off; master_process off; worker_processes 1;\n\
             pid {d}/nginx.pid; error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; }} }} }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| format!("nginx.conf: {e}"))?;
        let guard = Guard::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-p")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("nginx does not listen on {port} after 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx { port, dir, guard })
    }

    pub fn alive(&mut self) -> bool {
        self.guard.alive()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.guard.child.kill();
        let _ = self.guard.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The bench media: H.264 (1280x720, 30 fps, 2 s GOP, 4.5 Mbit/s) + AAC (128 kbit/s) in FLV,
/// `seconds` long, made once with ffmpeg under target/bench-media and reused by every run.
pub fn media(seconds: u32) -> Result<PathBuf, String> {
    require("ffmpeg", "ffmpeg")?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-media");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(format!("h264-aac-720p-{seconds}s.flv"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("making {} with ffmpeg (once)...", path.display());
    let tmp = dir.join(format!("h264-aac-720p-{seconds}s.tmp.flv"));
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1280x720:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p", "-b:v",
            "4500k", "-maxrate", "4500k", "-bufsize", "9000k", "-c:a", "aac", "-b:a", "128k", "-f",
            "flv",
        ])
        .arg(&tmp)
        .status()
        .map_err(|e| format!("run ffmpeg: {e}"))?;
    if !status.success() {
        return Err(format!("ffmpeg could not make the media ({status})"));
    }
    std::fs::rename(&tmp, &path).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    Ok(path)
}

/// `media` repeated `times` over in one FLV (ffmpeg `-stream_loop`, stream copy, timestamps
/// continuing), made once next to it: unpaced sink runs need more than one pass of a 40 s
/// file to take longer than their fixed costs (connect, threads) and the scheduler's noise.
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
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-stream_loop"])
        .arg((times - 1).to_string())
        .arg("-i")
        .arg(media)
        .args(["-c", "copy", "-f", "flv"])
        .arg(&tmp)
        .status()
        .map_err(|e| format!("run ffmpeg: {e}"))?;
    if !status.success() {
        return Err(format!("ffmpeg could not loop the media ({status})"));
    }
    std::fs::rename(&tmp, &path).map_err(|e| format!("rename {}: {e}", tmp.display()))?;
    Ok(path)
}

/// ffmpeg publishing `media` to `url` at real time (`-re`), as a live encoder would.
pub fn publish_realtime(media: &Path, url: &str) -> Result<Guard, String> {
    Guard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(media)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
