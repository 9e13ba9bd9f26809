//! I/O drivers: the tasks that move bytes between sockets and the engine's sans-IO sessions,
//! in three rooms and a runtime. Element streaming threads never run protocol code; they talk
//! to these drivers over channels (or, for the client source, poll one in place).
//!
//! - [`client`]: the client elements' drivers — connect with auth rounds, publisher (with
//!   the hold book it re-sends after a reconnect), task player, direct-socket player, and
//!   the FLV/RTMP frames the client elements exchange with them.
//! - [`server`]: the server elements' — shared listening ports and their routes, one task
//!   per connection, ingest for rtmpserversrc, encode-once fan-out for rtmpserversink.
//! - [`transport`]: what both sides carry bytes over — TLS, the RTMPT tunnel, TCP sockets
//!   written with `MSG_NOSIGNAL`, and the client's one `connect` for every scheme.
//! - [`runtime`]: the one tokio runtime of the process.
//!
//! The engine (`crate::rtmp`) decides what bytes to send and what received bytes mean; this
//! layer moves those bytes and keeps time. Dependencies point one way: `client` and `server`
//! use `transport`, `runtime` and the engine, never each other.

pub mod client;
pub mod runtime;
pub mod server;
pub mod transport;
