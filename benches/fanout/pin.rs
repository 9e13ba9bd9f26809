//! CPU pinning: the server under test on one core ([`SERVER_CPU`]) and the load tool (this
//! process: publisher and players) on the other ([`TOOL_CPU`]), the same for every server, so
//! that "server CPU" is a share of one core of its own and the players never run in the time
//! the server needs.
//!
//! Both sides use `sched_setaffinity(2)` through the libc crate rather than `taskset`: libc is
//! already a dependency while util-linux is not guaranteed, one mechanism covers the bench
//! process and its children, and for a child the mask is set in `pre_exec`, between fork and
//! exec, so the server's first instruction already runs on its core and every thread it ever
//! starts (nginx's one worker, node's libuv pool, xiu's tokio workers, the relay's GStreamer
//! threads) inherits the mask — also through a profiler wrapper (`RSRTMP_RELAY_WRAPPER`).
//! [`allowed`] reads the mask back from every thread, so the report shows what was in force.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The core the server under test runs on.
pub const SERVER_CPU: usize = 0;
/// The core the load tool runs on.
pub const TOOL_CPU: usize = 1;

fn set(tid: libc::pid_t, cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain bits (all-zero is the empty set); CPU_SET writes inside it
    // for cpu < CPU_SETSIZE (checked by the callers: cpu is 0 or 1); sched_setaffinity only
    // reads it.
    let rc = unsafe {
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut mask);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mask)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs this process may run on now.
fn available() -> Vec<usize> {
    // SAFETY: as in `set`; sched_getaffinity fills the mask, CPU_ISSET reads it.
    unsafe {
        let mut mask: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut mask) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &mask))
            .collect()
    }
}

/// Pins every thread of this process to [`TOOL_CPU`]. Called before the player runtime and
/// the publisher thread exist, so those inherit it; threads that already exist are pinned
/// one by one from `/proc/self/task`.
pub fn pin_self() -> Result<(), String> {
    let cpus = available();
    if !cpus.contains(&SERVER_CPU) || !cpus.contains(&TOOL_CPU) {
        return Err(format!(
            "pinning needs CPUs {SERVER_CPU} and {TOOL_CPU}, this process may use {cpus:?}; \
             run with --no-pin"
        ));
    }
    let tasks =
        std::fs::read_dir("/proc/self/task").map_err(|e| format!("read /proc/self/task: {e}"))?;
    for t in tasks.flatten() {
        if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()) {
            set(tid, TOOL_CPU).map_err(|e| format!("sched_setaffinity({tid}, {TOOL_CPU}): {e}"))?;
        }
    }
    Ok(())
}

/// Makes `cmd`'s process start pinned to `cpu`.
pub fn pin_command(cmd: &mut Command, cpu: usize) {
    // SAFETY: the closure runs in the forked child before exec; it makes one system call
    // (async-signal-safe) and touches no lock or allocation.
    unsafe {
        cmd.pre_exec(move || set(0, cpu));
    }
}

/// The distinct `Cpus_allowed_list` values of `pid`'s threads and how many threads there
/// are, e.g. `"0 (all 11 threads)"`, or each list with its thread count when they differ.
pub fn allowed(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "?".into();
    };
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut threads = 0;
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        threads += 1;
        let list = list.trim().to_string();
        match seen.iter_mut().find(|(l, _)| *l == list) {
            Some((_, n)) => *n += 1,
            None => seen.push((list, 1)),
        }
    }
    match seen.as_slice() {
        [(list, _)] => format!("{list} (all {threads} threads)"),
        _ => seen
            .iter()
            .map(|(l, n)| format!("{l} ({n} threads)"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
