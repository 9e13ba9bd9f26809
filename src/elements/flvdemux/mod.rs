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

/// Ranked above flvdemux (primary): it reads every legacy file as flvdemux does (the tests
/// compare them buffer by buffer) and also Enhanced FLV, so that decodebin and playbin pick
/// it, and `playbin uri=rtmp://…` plays HEVC, AV1, VP9, Opus… on GStreamer 1.22.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsflvdemux",
        gst::Rank::PRIMARY + 1,
        RsFlvDemux::static_type(),
    )
}
