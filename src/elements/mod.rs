//! The GStreamer elements: thin adapters between pads and the drivers in `crate::net`.

pub mod clientcommon;
pub mod clientsink;
pub mod clientsrc;
pub mod serverprops;
pub mod serversink;
pub mod serversrc;
