//! What the bench tools that measure a pipeline in a child process share: the child's clocks,
//! and finding its one-line `TAG key=value ...` report in its output.

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used are constants the kernel knows.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of this process, all threads, in ns.
pub fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// System-wide monotonic time in ns: comparable between processes on one machine.
#[allow(dead_code)]
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// One field of a report: its key and value, the value read as a count when asked.
pub struct Field<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

impl Field<'_> {
    pub fn num(&self) -> Result<u64, String> {
        self.value
            .parse::<u64>()
            .map_err(|e| format!("report field {}={:?}: {e}", self.key, self.value))
    }
}

/// The fields of the last line of `stdout` that starts with `tag`.
pub fn report_fields<'a>(stdout: &'a str, tag: &str) -> Result<Vec<Field<'a>>, String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(tag))
        .ok_or_else(|| format!("no {tag} line in the child's output {stdout:?}"))?;
    line.split_whitespace()
        .skip(1)
        .map(|field| {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("report field {field:?} has no '='"))?;
            Ok(Field { key, value })
        })
        .collect()
}
