//! rsflvdemux: legacy and Enhanced FLV (`video/x-flv`) → one sometimes-pad per track.
//!
//! Pads are named as GStreamer 1.28's flvdemux names them: `video` and `audio` for track 0,
//! `video_%u` and `audio_%u` for the Enhanced RTMP tracks 1 and up. Caps per codec are in
//! [`caps`].

use gst::glib;
use gst::prelude::*;

pub mod caps;
mod imp;

glib::wrapper! {
    pub struct RsFlvDemux(ObjectSubclass<imp::RsFlvDemux>)
        @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsflvdemux",
        gst::Rank::NONE,
        RsFlvDemux::static_type(),
    )
}
