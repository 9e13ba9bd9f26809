//! A CPU quota for the server under test (`--server-cpu-quota PCT`): the overloaded case on a
//! machine whose load tool would saturate first.
//!
//! Giving a server fewer players than it could hold at full speed but less CPU than they need
//! overloads it while the load tool's core stays free, so what the run shows is how the server
//! degrades, not how the load tool does. The quota is a CFS bandwidth limit on a cgroup of its
//! own (cgroup v1 `cpu` controller, or v2 where the `cpu` controller is enabled at the root):
//! `PCT` % of one core per 10 ms period (longer below 10 %, the kernel's least quota being
//! 1 ms), so a throttled server waits at most ~10–20 ms at a time.
//! The server enters the cgroup between fork and exec (it writes `0`, itself, into
//! `cgroup.procs`), so every thread it starts is limited too. Needs root (the bench says so
//! otherwise); the cgroup is removed when the server is gone.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// CFS period of the quota, µs (longer for shares under 10 %: the quota is 1 ms at least).
const PERIOD_US: u32 = 10_000;

/// A cgroup limited to a share of one core.
pub struct Quota {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork so the child only has to write to it.
    procs: File,
}

impl Quota {
    /// A new cgroup limited to `percent` % of one core (1..=100).
    pub fn create(percent: u32) -> Result<Quota, String> {
        if !(1..=100).contains(&percent) {
            return Err(format!(
                "--server-cpu-quota {percent}: a share of one core is 1..=100 %"
            ));
        }
        let name = format!("rsrtmp-bench-{}-{percent}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let v2_root = PathBuf::from("/sys/fs/cgroup");
        let (dir, v2) = if v1.join("cpu.cfs_quota_us").exists() {
            (v1.join(&name), false)
        } else if std::fs::read_to_string(v2_root.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "cpu"))
        {
            (v2_root.join(&name), true)
        } else {
            return Err(
                "--server-cpu-quota needs the cgroup cpu controller (v1 at /sys/fs/cgroup/cpu, \
                 or v2 with cpu in /sys/fs/cgroup/cgroup.subtree_control)"
                    .into(),
            );
        };
        if !dir.exists() {
            std::fs::create_dir(&dir)
                .map_err(|e| format!("create cgroup {} (root needed): {e}", dir.display()))?;
        }
        // The kernel takes no quota under 1 ms: small shares get a longer period.
        let period_us = (1000 * 100 / percent).max(PERIOD_US);
        let quota_us = period_us * percent / 100;
        let write = |file: &str, value: String| {
            std::fs::write(dir.join(file), &value)
                .map_err(|e| format!("write {value:?} to {}: {e}", dir.join(file).display()))
        };
        if v2 {
            write("cpu.max", format!("{quota_us} {period_us}"))?;
        } else {
            write("cpu.cfs_period_us", period_us.to_string())?;
            write("cpu.cfs_quota_us", quota_us.to_string())?;
        }
        let path = dir.join("cgroup.procs");
        let procs = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        Ok(Quota { dir, procs })
    }

    /// Makes `cmd`'s process start inside the cgroup.
    pub fn apply(&self, cmd: &mut Command) {
        let fd = self.procs.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec; it makes one write(2)
        // (async-signal-safe) of a static byte to a descriptor the parent opened and keeps
        // open for as long as it spawns, and touches no lock or allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    /// Seconds the cgroup was throttled so far (`cpu.stat` `throttled_time`/`throttled_usec`).
    pub fn throttled_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        stat.lines().find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            match key {
                "throttled_time" => Some(value / 1e9),
                "throttled_usec" => Some(value / 1e6),
                _ => None,
            }
        })
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        // Empty once the server is gone (its owner kills and reaps it first).
        let _ = std::fs::remove_dir(&self.dir);
    }
}
