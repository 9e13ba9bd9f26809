//! The one process-wide tokio runtime every rsrtmp connection, listener and player task runs
//! on. Created on first use; its worker count is the number of cores unless the environment
//! variable `RSRTMP_THREADS` says otherwise.

use std::sync::LazyLock;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    let workers = std::env::var("RSRTMP_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("rsrtmp-io")
        .enable_all()
        .build()
        .expect("rsrtmp: cannot start the tokio runtime")
});

/// The shared runtime. Spawn tasks on it; never `block_on` it from one of its own threads.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    &RUNTIME
}
