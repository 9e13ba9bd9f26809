//! rsrtmp: RTMP for GStreamer.
//!
//! The plugin `rsrtmp` registers the RTMP elements. The protocol itself lives in the pure
//! engine crate `rsrtmp-engine`, re-exported here as [`rtmp`]; the elements (and the tokio
//! drivers under them, in [`net`]) are thin layers on top of it.

pub use rsrtmp_engine as rtmp;

pub mod elements;
pub mod net;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    elements::clientsrc::register(plugin)?;
    elements::clientsink::register(plugin)?;
    elements::serversrc::register(plugin)?;
    elements::serversink::register(plugin)?;
    elements::flvdemux::register(plugin)?;
    elements::flvmux::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    rsrtmp,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
