//! `rtmpclientsrc`: plays a stream from an RTMP server and pushes it as FLV.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtmpClientSrc(ObjectSubclass<imp::RtmpClientSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

/// Registers the element, ranked above rtmp2src (PRIMARY + 1) so playbin picks it.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtmpclientsrc",
        gst::Rank::PRIMARY + 2,
        RtmpClientSrc::static_type(),
    )
}
