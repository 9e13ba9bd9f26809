//! The sink pad: its track (kind and id, fixed when the pad is made), the config its current
//! caps give, and what of that config the output has already carried.

use std::sync::{Mutex, MutexGuard};

use gst::glib;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::config::{self, CapsError, Sequence, TrackConfig};
use crate::rtmp::eflv::MediaKind;

/// Per-pad state; one lock, taken after the element's.
#[derive(Debug)]
pub struct PadState {
    /// Audio or video.
    pub kind: MediaKind,
    /// The track id.
    pub track: u8,
    /// From the current caps; `None` before the first caps.
    pub config: Option<TrackConfig>,
    /// The record the current SequenceStart carries (AV1 without codec_data: once a
    /// keyframe gave it).
    pub record: Option<Vec<u8>>,
    /// The SequenceStart (and colorInfo) must go out before the next frame: new caps, or an
    /// AV1 keyframe with another sequence header.
    pub needs_header: bool,
    /// Whether the onMetaData sent so far describes this track.
    pub in_metadata: bool,
}

impl Default for PadState {
    fn default() -> Self {
        PadState {
            kind: MediaKind::Video,
            track: 0,
            config: None,
            record: None,
            needs_header: false,
            in_metadata: false,
        }
    }
}

impl PadState {
    /// Whether the track can write its SequenceStart now (AV1 from the stream waits for its
    /// first keyframe).
    pub fn header_ready(&self) -> bool {
        match &self.config {
            Some(c) => c.sequence == Sequence::None || self.record.is_some(),
            None => false,
        }
    }
}

/// The pad.
#[derive(Default)]
pub struct FlvMuxPad {
    state: Mutex<PadState>,
}

impl FlvMuxPad {
    /// The pad's state.
    pub fn state(&self) -> MutexGuard<'_, PadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the codec's caps carry its header packets (FLAC, Opus), so input buffers
    /// flagged HEADER repeat them and are no frames.
    pub fn headers_in_caps(&self) -> bool {
        use crate::rtmp::eflv::Codec;
        use crate::rtmp::flv::{AudioCodec, FourCc};
        matches!(
            self.state().config.as_ref().map(|c| c.codec),
            Some(Codec::Audio(AudioCodec::FourCc(
                FourCc::FLAC | FourCc::OPUS
            )))
        )
    }

    /// Fixes the pad's track; once, before it is added to the element.
    pub fn set_track(&self, kind: MediaKind, track: u8) {
        let mut st = self.state();
        st.kind = kind;
        st.track = track;
    }

    /// Takes new caps: a changed codec, record or colour info asks for a new SequenceStart.
    pub fn set_caps(&self, caps: &gst::CapsRef) -> Result<(), CapsError> {
        let mut st = self.state();
        let new = config::track_config(st.kind, st.track, caps)?;
        if st.config.as_ref() == Some(&new) {
            return Ok(());
        }
        let record = match &new.sequence {
            Sequence::Record(r) => Some(r.clone()),
            Sequence::None => None,
            // Keep the av1C a keyframe gave while the codec stays AV1.
            Sequence::FromStream => st
                .config
                .as_ref()
                .filter(|old| old.codec == new.codec)
                .and(st.record.clone()),
        };
        let changed = match &st.config {
            None => true,
            Some(old) => old.codec != new.codec || st.record != record || old.color != new.color,
        };
        st.record = record;
        st.config = Some(new);
        st.needs_header |= changed;
        Ok(())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FlvMuxPad {
    const NAME: &'static str = "GstRsFlvMuxPad";
    type Type = super::FlvMuxPad;
    type ParentType = gst_base::AggregatorPad;
}

impl ObjectImpl for FlvMuxPad {}
impl GstObjectImpl for FlvMuxPad {}
impl PadImpl for FlvMuxPad {}
impl AggregatorPadImpl for FlvMuxPad {}
