//! The `tracks` field of every RTMP element's `stats`: one structure per track of the stream
//! the element carries (Enhanced RTMP streams can have several of each kind), with the codec
//! and what went through.
//!
//! ```text
//! tracks = < track, kind=video, id=0, codec=hvc1, enhanced=true, frames=240, keyframes=4,
//!            bytes=812345;
//!            track, kind=audio, id=1, codec=Opus, … >
//! ```

use std::sync::Mutex;

use gst::prelude::*;
use rsrtmp_engine::tracks::TrackStats;

/// The counters, shared between the streaming thread that feeds them and whoever reads
/// `stats`.
#[derive(Default)]
pub struct Tracks(Mutex<TrackStats>);

impl Tracks {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackStats> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one audio (8) or video (9) message body; other types are ignored.
    pub fn observe(&self, tag_type: u8, body: &[u8]) {
        self.lock().observe(tag_type, body);
    }

    /// A new stream: forgets the tracks of the last one.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The `tracks` array.
    pub fn array(&self) -> gst::Array {
        let stats = self.lock();
        gst::Array::new(stats.tracks().iter().map(|t| {
            gst::Structure::builder("track")
                .field("kind", t.kind.name())
                .field("id", u32::from(t.track))
                .field("codec", t.codec_text())
                .field("enhanced", t.enhanced())
                .field("frames", t.frames)
                .field("keyframes", t.keyframes)
                .field("bytes", t.bytes)
                .build()
                .to_send_value()
        }))
    }

    /// Adds `tracks` to an element's stats structure.
    pub fn add_to(&self, mut stats: gst::Structure) -> gst::Structure {
        stats.set("tracks", self.array());
        stats
    }
}
