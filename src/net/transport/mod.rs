//! The transports both sides use: how the bytes of one RTMP connection travel.
//!
//! - [`tls`]: rustls (ring) — the client's connector and the server's acceptor.
//! - [`tunnel`]: RTMPT over hyper — the client that polls and the server that answers, with
//!   sessions that outlive a TCP connection.
//! - [`tcp`]: accepted and client TCP sockets written with `MSG_NOSIGNAL`, shareable between a
//!   connection's task and a fan-out hub.
//! - `connect` (re-exported here): the client side's one entry, [`connect`], which turns a URL's
//!   scheme into one boxed byte stream (TCP, TLS, tunnel, tunnel over TLS).
//!
//! Nothing here knows RTMP beyond the first bytes the server sniffs; the rooms above
//! (`client`, `server`) drive the engine's sessions over these streams.

mod connect;
pub mod tcp;
pub mod tls;
pub mod tunnel;

pub use connect::*;
