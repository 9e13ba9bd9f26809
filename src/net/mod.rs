//! I/O drivers: the shared tokio runtime and the tasks that move bytes between sockets and the
//! engine's sans-IO sessions. Element streaming threads never run protocol code; they talk to
//! these tasks over channels.
//!
//! The engine (`crate::rtmp`) decides what bytes to send and what received bytes mean; this
//! layer moves those bytes and keeps time. The client elements use [`client`] (one task per
//! element, over a [`transport`]), with [`media`] for FLV/RTMP frame conversion and [`hold`]
//! for what a publisher keeps across a reconnect.

pub mod client;
pub mod fanout;
pub mod hold;
pub mod ingest;
pub mod media;
pub mod playout;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod tcp;
pub mod tls;
pub mod transport;
pub mod tunnel;
