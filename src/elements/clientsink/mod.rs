//! `rtmpclientsink`: publishes the FLV it receives to an RTMP server.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtmpClientSink(ObjectSubclass<imp::RtmpClientSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

pub use imp::RtmpStopCommands;

/// Registers the element, ranked above rtmp2sink (PRIMARY + 1) so URI lookups pick it.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtmpclientsink",
        gst::Rank::PRIMARY + 2,
        RtmpClientSink::static_type(),
    )
}
