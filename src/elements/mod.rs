//! The GStreamer elements: thin adapters between pads and the drivers in `crate::net`.

pub mod clientcommon;
pub mod clientsink;
pub mod clientsrc;
pub mod enhanced;
pub mod flvdemux;
pub mod flvmux;
pub mod pacing;
pub mod serverprops;
pub mod serversink;
pub mod serversrc;
pub mod tracks;

/// The one always pad every element here has: `video/x-flv`, named `name`.
pub(crate) fn flv_pad_template(name: &str, direction: gst::PadDirection) -> gst::PadTemplate {
    let caps = gst::Caps::builder("video/x-flv").build();
    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps).expect("valid template")
}
