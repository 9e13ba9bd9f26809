//! rsflvmux: audio and video elementary streams in, Enhanced FLV (`video/x-flv`) out.
//!
//! Request pads `video`/`audio` carry track 0, `video_%u`/`audio_%u` track `%u` (1–255), as
//! GStreamer 1.28's eflvmux and flvdemux name them. H.264, AAC and MP3 on track 0 stay legacy
//! FLV tags; everything else is Enhanced RTMP (v1 video FourCCs, v2 audio FourCCs and
//! OneTrack multitrack messages for tracks ≥ 1).

use gst::glib;
use gst::prelude::*;

mod config;
mod imp;
mod pad;

glib::wrapper! {
    /// The muxer element.
    pub struct FlvMux(ObjectSubclass<imp::FlvMux>)
        @extends gst_base::Aggregator, gst::Element, gst::Object;
}

glib::wrapper! {
    /// One sink pad: one track of one kind.
    pub struct FlvMuxPad(ObjectSubclass<pad::FlvMuxPad>)
        @extends gst_base::AggregatorPad, gst::Pad, gst::Object;
}

/// Registers `rsflvmux` with rank NONE: pipelines ask for it by name, autoplugging keeps
/// picking flvmux.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsflvmux",
        gst::Rank::NONE,
        FlvMux::static_type(),
    )
}
