//! The GStreamer elements: thin adapters between pads and the I/O drivers in [`crate::net`].

pub mod serverprops;
pub mod serversink;
pub mod serversrc;
