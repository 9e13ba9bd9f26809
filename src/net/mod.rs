//! I/O drivers: the shared tokio runtime and the tasks that move bytes between sockets and the
//! engine's sans-IO sessions. Element streaming threads never run protocol code; they talk to
//! these tasks over channels.

pub mod fanout;
pub mod ingest;
pub mod playout;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod tls;
pub mod tunnel;
