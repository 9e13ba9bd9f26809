//! The one tokio runtime shared by every rsrtmp element in the process.
//!
//! It is created on first use and lives until the process exits. Connection tasks run here;
//! element streaming threads only talk to them through channels. Nothing may call
//! `block_on` from inside this runtime: element threads are GStreamer's, never the runtime's.

use std::sync::LazyLock;

/// Environment variable that overrides the number of worker threads (a positive integer).
pub const WORKERS_ENV: &str = "RSRTMP_WORKERS";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    let workers = worker_count(std::env::var(WORKERS_ENV).ok().as_deref());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("rsrtmp-rt")
        .enable_all()
        .build()
        // Without a runtime no element can work at all, and there is no caller to report to:
        // the only failure here is the OS refusing threads.
        .unwrap_or_else(|e| panic!("cannot start the rsrtmp runtime with {workers} workers: {e}"))
});

/// How many workers to start: the override when it is a positive integer, else one per core.
fn worker_count(override_value: Option<&str>) -> usize {
    override_value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A handle to the shared runtime, starting it on the first call.
pub fn handle() -> tokio::runtime::Handle {
    RUNTIME.handle().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_count_honours_a_positive_override_only() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_count(Some("3")), 3);
        assert_eq!(worker_count(Some("0")), cores);
        assert_eq!(worker_count(Some("many")), cores);
        assert_eq!(worker_count(None), cores);
    }

    #[test]
    fn runtime_runs_tasks() {
        let (tx, rx) = std::sync::mpsc::channel();
        handle().spawn(async move { tx.send(40 + 2).unwrap() });
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(),
            42
        );
    }
}
