//! The server room: everything the server elements (`rtmpserversrc`, `rtmpserversink`) run on.
//!
//! - `port`: one listening port's shared state — the routes elements added (application,
//!   stream key, ingest or playout), the connection slots and their caps.
//! - `listener`: the sockets. One listening socket per address:port in the process, shared by
//!   every element naming it; first-byte sniffing (0x03 plain, 0x06/0x08/0x09 RTMPE, 0x16 TLS,
//!   a letter the HTTP tunnel); TLS and tunnel sessions turned into connections.
//! - `conn`: one task per connection driving the engine's `ServerSession`: connect, publish
//!   and play go through the port's routes and `authorize`.
//! - `ingest`: a publisher's messages to rtmpserversrc's FLV output (headers first and in
//!   caps, 64-bit DTS, a continuous timeline across publishers).
//! - `playout`: rtmpserversink's FLV input, chunk-encoded once per message.
//! - `hub` and `queue`: the fan-out of one stream to its players — GOP and per-track header
//!   cache, bounded player queues, direct writes to plain-TCP players.
//!
//! Dependencies point one way: `listener → conn → {port, hub, ingest, playout}`, `hub →
//! queue`; the elements see `add_route`, `RouteGuard`, `RouteConfig` and the hub and ingest
//! endpoints. Invariant: no lock is held across a wait, and nothing an element's streaming
//! thread calls waits on a connection.

use std::sync::LazyLock;

pub mod conn;
pub mod hub;
pub mod ingest;
pub mod listener;
pub mod playout;
pub mod port;
pub mod queue;

pub use listener::{Listener, RouteGuard, Sniffed, add_route, sniff};
pub use port::{
    AuthRequest, ByteStream, Endpoint, MAX_HTTP_CONNECTIONS, MAX_UNROUTED, Refusal, RouteConfig,
    RouteHooks, SEND_BUFFER, ServerError, Transport, Transports, key_matches, normalize_app,
    split_query,
};

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsrtmp-server",
        gst::DebugColorFlags::empty(),
        Some("rsrtmp server listener and connections"),
    )
});
