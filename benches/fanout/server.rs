//! The servers under test, each in its own process so its CPU time and memory can be read
//! from `/proc/<pid>/stat` and `/proc/<pid>/status` without counting the load tool.
//!
//! - nginx-rtmp: the testing.md recipe (single process, one worker, `chunk_size 4096`) on a
//!   free loopback port, its files in a temporary directory.
//! - rsrtmp: this bench binary started again with `--serve-relay PORT`, which runs
//!   `rtmpserversrc ! rtmpserversink` from the statically registered plugin (see
//!   [`crate::relay`]).
//! - node-media-server and xiu: installed on demand into a cache and started as
//!   [`peers`] describes.
//! - the floor: this bench binary with `--serve-floor PORT`, one send per message per player
//!   and nothing else (see [`floor`]); not a server users could pick, the measuring stick.
//!
//! [`Launch`] says which core the process is pinned to (see [`pin`]), what share of it the
//! process may use (see [`quota`]) and, for rsrtmp, the sink's merge window and queue time. A
//! [`Server`] kills and reaps its process when dropped, also when the bench panics.

#[path = "floor.rs"]
pub mod floor;
#[path = "peers.rs"]
pub mod peers;
#[path = "pin.rs"]
pub mod pin;
#[path = "quota.rs"]
pub mod quota;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Rsrtmp,
    Nms,
    Xiu,
    /// No server: the fan-out floor ([`floor`]).
    Floor,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Nginx, Kind::Rsrtmp, Kind::Nms, Kind::Xiu];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx-rtmp",
            Kind::Rsrtmp => "rsrtmp",
            Kind::Nms => "node-media-server",
            Kind::Xiu => "xiu",
            Kind::Floor => "floor",
        }
    }

    /// The kind a `--server` word names (its short name or [`Kind::name`]).
    pub fn parse(word: &str) -> Option<Kind> {
        match word {
            "nginx" | "nginx-rtmp" => Some(Kind::Nginx),
            "rsrtmp" => Some(Kind::Rsrtmp),
            "nms" | "node-media-server" => Some(Kind::Nms),
            "xiu" => Some(Kind::Xiu),
            "floor" => Some(Kind::Floor),
            _ => None,
        }
    }

    /// Installs the server when it is one the bench installs and it is missing.
    pub fn prepare(self) -> Result<(), String> {
        match self {
            Kind::Nginx | Kind::Rsrtmp | Kind::Floor => Ok(()),
            Kind::Nms => peers::nms_module().map(drop),
            Kind::Xiu => peers::xiu_binary().map(drop),
        }
    }

    /// The server and version, for the report header.
    pub fn describe(self) -> String {
        match self {
            Kind::Nginx => {
                "nginx-rtmp (Debian libnginx-mod-rtmp; one worker, chunk_size 4096)".into()
            }
            Kind::Rsrtmp => "rsrtmp (rtmpserversrc ! rtmpserversink, this build)".into(),
            Kind::Nms => format!(
                "node-media-server {} (npm, in {}; RTMP only, logger at warn)",
                peers::NMS_VERSION,
                peers::cache_dir().display()
            ),
            Kind::Xiu => format!(
                "xiu {} (crates.io, in {}; `xiu -r PORT -l warn`, RTMP only)",
                peers::XIU_VERSION,
                peers::cache_dir().display()
            ),
            Kind::Floor => "floor (this build, --serve-floor: engine handshake and commands, \
                            then one blocking write per message per player, nothing else)"
                .into(),
        }
    }

    /// The file in the server's folder that says why it failed: nginx writes its own
    /// error.log; the others log to their stdout/stderr, which go to `stdio.log`.
    fn log_file(self) -> &'static str {
        match self {
            Kind::Nginx => "error.log",
            _ => STDIO_LOG,
        }
    }
}

const STDIO_LOG: &str = "stdio.log";

/// How a server process is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Launch {
    /// The one CPU the process and all its threads may run on; `None`: not pinned.
    pub cpu: Option<usize>,
    /// rsrtmp only: rtmpserversink's `merge-window` in ms; 0 leaves the property unset.
    pub merge_window_ms: u32,
    /// rsrtmp only: rtmpserversink's `queue-time` in ms; 0 leaves the property unset.
    pub queue_time_ms: u32,
    /// The share of its core (%) the process may use; `None`: no limit.
    pub cpu_quota_pct: Option<u32>,
}

/// Application and stream names the publisher and players use on each server. Our relay
/// takes the publisher on one stream name and serves players on another.
pub struct Names {
    pub app: &'static str,
    pub publish: &'static str,
    pub play: &'static str,
}

/// A running server process.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    dir: PathBuf,
    /// Dropped after the process is gone (see `Drop`).
    quota: Option<quota::Quota>,
}

impl Server {
    /// Starts `kind` unpinned, with its defaults (the soak bench's way; the fan-out bench
    /// always says how).
    #[allow(dead_code)]
    pub fn start(kind: Kind) -> Result<Self, String> {
        Self::start_with(kind, Launch::default())
    }

    pub fn start_with(kind: Kind, launch: Launch) -> Result<Self, String> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "rsrtmp-fanout-{}-{}-{port}",
            kind.name(),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cmd = match kind {
            Kind::Nginx => nginx_command(&dir, port)?,
            Kind::Rsrtmp => relay_command(port, &launch)?,
            Kind::Nms => peers::nms_command(&dir, port)?,
            Kind::Xiu => peers::xiu_command(port)?,
            Kind::Floor => floor_command(port)?,
        };
        if let Some(cpu) = launch.cpu {
            pin::pin_command(&mut cmd, cpu);
        }
        let quota = launch.cpu_quota_pct.map(quota::Quota::create).transpose()?;
        if let Some(q) = &quota {
            q.apply(&mut cmd);
        }
        let log = dir.join(STDIO_LOG);
        let log =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| format!("log file handle: {e}"))?,
            )
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e} ({cmd:?})", kind.name()))?;
        let mut server = Server {
            kind,
            port,
            child,
            dir,
            quota,
        };
        server.wait_listening()?;
        Ok(server)
    }

    pub fn names(&self) -> Names {
        match self.kind {
            Kind::Nginx => Names {
                app: "live",
                publish: "s",
                play: "s",
            },
            Kind::Rsrtmp => Names {
                app: "live",
                publish: "in",
                play: "out",
            },
            Kind::Nms | Kind::Xiu | Kind::Floor => Names {
                app: "live",
                publish: "s",
                play: "s",
            },
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Seconds the server's CPU quota held it back so far (`None` without a quota).
    pub fn throttled_seconds(&self) -> Option<f64> {
        self.quota.as_ref().and_then(|q| q.throttled_seconds())
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "{} exited with {status} before listening on port {}; its log:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log()
                ));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not listening on port {} after 10 s; its log:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's own log (nginx error.log, or the others' stdout and stderr), for error
    /// messages.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join(self.kind.log_file())) {
            let _ = f.read_to_string(&mut s);
        }
        let tail: Vec<&str> = s.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        cpu_seconds(self.pid())
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        rss_kib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

fn nginx_command(dir: &std::path::Path, port: u16) -> Result<Command, String> {
    let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    if !std::path::Path::new(module).exists() {
        return Err(format!(
            "{module} is missing: apt-get install -y nginx-light libnginx-mod-rtmp"
        ));
    }
    let d = dir.display();
    let conf = format!(
        "load_module {module};\n\
         daemon off; master_process off; worker_processes 1;\n\
         pid {d}/nginx.pid; error_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
         application live {{ live on; record off; }} }} }}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| format!("write {}: {e}", path.display()))?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c").arg(&path).arg("-p").arg(dir);
    Ok(cmd)
}

fn relay_command(port: u16, launch: &Launch) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // RSRTMP_RELAY_WRAPPER runs the relay under a profiler (`heaptrack`, `perf record -g --`).
    let mut cmd = match std::env::var("RSRTMP_RELAY_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => {
            let mut words = w.split_whitespace();
            let mut cmd = Command::new(words.next().expect("not empty"));
            cmd.args(words).arg(exe);
            cmd
        }
        _ => Command::new(exe),
    };
    cmd.args(["--bench", "--serve-relay", &port.to_string()]);
    if launch.merge_window_ms > 0 {
        cmd.args(["--merge-window", &launch.merge_window_ms.to_string()]);
    }
    if launch.queue_time_ms > 0 {
        cmd.args(["--queue-time", &launch.queue_time_ms.to_string()]);
    }
    Ok(cmd)
}

fn floor_command(port: u16) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--bench", "--serve-floor", &port.to_string()]);
    Ok(cmd)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    static TICKS: std::sync::LazyLock<f64> = std::sync::LazyLock::new(clock_ticks);
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    // The command name may contain spaces; fields are counted after its closing paren.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path} has no ')' : {stat:?}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at indices 11 and 12.
    let parse = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| format!("{path}: field {} unreadable in {stat:?}", i + 3))
    };
    Ok((parse(11)? + parse(12)?) / *TICKS)
}

/// VmRSS of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path} has no readable VmRSS line"))
}

/// CPU seconds the whole machine spent `(busy, in softirq)`, all CPUs. Busy is everything but
/// idle and iowait. Softirq is reported apart because loopback TCP does much of its receive
/// work there, charged to no process: neither the server's nor the load tool's CPU includes it.
pub fn machine_seconds() -> Result<(f64, f64), String> {
    static TICKS: std::sync::LazyLock<f64> = std::sync::LazyLock::new(clock_ticks);
    let stat =
        std::fs::read_to_string("/proc/stat").map_err(|e| format!("read /proc/stat: {e}"))?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| "/proc/stat has no 'cpu ' line".to_string())?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    if v.len() < 7 {
        return Err(format!("/proc/stat cpu line too short: {line:?}"));
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // inside user, so only the first eight fields add up.
    let busy: f64 = v.iter().take(8).sum::<f64>() - v[3] - v[4];
    Ok((busy / *TICKS, v[6] / *TICKS))
}
