//! The RTMP connection driver for the server side: runs a sans-IO server session over a byte
//! stream, routes publish/play requests through the listener, feeds publishers' media to
//! ingest endpoints and plays hubs out to players.

use std::net::SocketAddr;

use crate::net::server::{ByteStream, CAT, ConnSlot};

/// Serves one accepted connection until it ends.
pub(crate) async fn serve(slot: ConnSlot, stream: Box<dyn ByteStream>, peer: SocketAddr) {
    let _ = (slot, stream);
    gst::info!(CAT, "{peer}: no RTMP session engine yet, closing");
}
