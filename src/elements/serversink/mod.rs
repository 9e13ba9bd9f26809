//! rtmpserversink: listens for RTMP players and serves them the FLV stream it receives, each
//! message encoded once and shared by every player.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtmpServerSink(ObjectSubclass<imp::RtmpServerSink>)
        @extends gst_base::BaseSink, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtmpserversink",
        gst::Rank::NONE,
        RtmpServerSink::static_type(),
    )
}
