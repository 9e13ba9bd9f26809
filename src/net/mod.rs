//! I/O drivers: everything that touches sockets, timers and the tokio runtime.
//!
//! The engine (`crate::rtmp`) decides what bytes to send and what received bytes mean; this
//! layer moves those bytes and keeps time. Elements above talk to it only through channels and
//! the small handle types in [`client`].

pub mod client;
pub mod hold;
pub mod media;
pub mod runtime;
pub mod transport;
