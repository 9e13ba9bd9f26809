//! rsflvmux: an Aggregator that interleaves its sink pads by DTS (running time) and writes one
//! FLV tag per buffer (or, with `many-tracks`, one ManyTracks tag for the tracks of one kind
//! that share a timestamp).
//!
//! Invariants: the FLV header, onMetaData and every ready track's SequenceStart (and colorInfo)
//! go out before any frame, flagged HEADER and copied into the caps' `streamheader`, as
//! streamable flvmux output does; a track's frames never precede its SequenceStart; when a
//! track's record changes (new caps, another AV1 sequence header) its SequenceStart goes out
//! again before its next frame and the caps carry the new header set. Tag timestamps are the
//! DTS running time minus the first buffer's, in ms, never decreasing across tracks (early
//! DTS before the segment start count as the start), and wrap at 32 bits.

use std::str::FromStr;
use std::sync::{LazyLock, Mutex, MutexGuard};

use bytes::BytesMut;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::config::{Sequence, TrackConfig};
use super::pad::PadState;
use crate::rtmp::amf0::{self, Value};
use crate::rtmp::codecs;
use crate::rtmp::eflv::{self, Codec, MediaKind, Packet, PacketKind, WriteError};
use crate::rtmp::flv::{self, FlvHeader, FourCc, Tag, VideoCodec};

const DEFAULT_STREAMABLE: bool = true;
const DEFAULT_MANY_TRACKS: bool = false;
const DEFAULT_TIMESTAMP_OFFSET_NANO: bool = false;
const DEFAULT_METADATACREATOR: &str = "rsrtmp rsflvmux";
const DEFAULT_ENCODER: &str = "rsrtmp rsflvmux";

/// The most a composition time offset (SI24) can say, in ms.
const MAX_CTS: u64 = 0x7F_FFFF;

#[derive(Debug, Clone)]
struct Settings {
    streamable: bool,
    many_tracks: bool,
    timestamp_offset_nano: bool,
    metadatacreator: String,
    encoder: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            streamable: DEFAULT_STREAMABLE,
            many_tracks: DEFAULT_MANY_TRACKS,
            timestamp_offset_nano: DEFAULT_TIMESTAMP_OFFSET_NANO,
            metadatacreator: DEFAULT_METADATACREATOR.to_string(),
            encoder: DEFAULT_ENCODER.to_string(),
        }
    }
}

/// The output so far.
#[derive(Debug, Default)]
enum State {
    /// Nothing written since start or flush: the headers go out with the first buffer.
    #[default]
    Stopped,
    /// Headers written.
    Started(Started),
}

#[derive(Debug)]
struct Started {
    /// Running time that tag timestamp 0 stands for.
    first: gst::ClockTime,
    /// The last tag timestamp, ms (not wrapped).
    last_ms: u64,
    /// SequenceEnd tags written (at EOS).
    ended: bool,
}

/// The element.
#[derive(Default)]
pub struct FlvMux {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

mod frames;
mod headers;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsflvmux",
        gst::DebugColorFlags::empty(),
        Some("Enhanced FLV muxer"),
    )
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running time of `t` in `segment`; a time before the segment start (a DTS ahead of
/// its PTS, as encoders with B-frames give) counts as the start.
fn running_time(segment: &gst::Segment, t: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    let seg = segment.downcast_ref::<gst::ClockTime>()?;
    let t = t?;
    let t = seg.start().map_or(t, |s| t.max(s));
    seg.to_running_time(t)
}

/// A buffer's running time for interleaving: its DTS, or its PTS where it has no DTS.
fn buffer_time(pad: &gst_base::AggregatorPad, buf: &gst::BufferRef) -> Option<gst::ClockTime> {
    running_time(&pad.segment(), buf.dts_or_pts())
}

/// Where a buffer's tag goes in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    /// Tag timestamp, ms since `first` (not wrapped).
    ms: u64,
    /// Sub-millisecond remainder (ModEx TimestampOffsetNano), 0 unless asked for.
    nanos: u32,
    /// PTS in ms since `first`.
    pts_ms: u64,
    /// The buffer's DTS running time, what the output buffer's PTS carries.
    running_time: Option<gst::ClockTime>,
}

fn timing(
    pad: &gst_base::AggregatorPad,
    buf: &gst::BufferRef,
    started: &Started,
    nanos: bool,
) -> Timing {
    let segment = pad.segment();
    let dts = running_time(&segment, buf.dts_or_pts());
    let pts = running_time(&segment, buf.pts()).or(dts);
    let Some(dts) = dts else {
        // Untimed: right after the last tag.
        return Timing {
            ms: started.last_ms,
            nanos: 0,
            pts_ms: started.last_ms,
            running_time: None,
        };
    };
    let rel = dts.saturating_sub(started.first).nseconds();
    let pts_ms = pts.map_or(rel / 1_000_000, |p| {
        p.saturating_sub(started.first).nseconds() / 1_000_000
    });
    Timing {
        ms: rel / 1_000_000,
        nanos: if nanos { (rel % 1_000_000) as u32 } else { 0 },
        pts_ms,
        running_time: Some(dts),
    }
}

/// A buffer's payload: the mapped buffer, or a rewritten copy (AV1 without its temporal
/// delimiters).
enum Payload {
    Mapped(gst::MappedBuffer<gst::buffer::Readable>),
    Owned(Vec<u8>),
}

impl Payload {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Mapped(m) => m.as_slice(),
            Payload::Owned(v) => v,
        }
    }
}

/// One input buffer, ready to be written as (part of) a tag.
struct Frame {
    pad: super::FlvMuxPad,
    track: u8,
    config: TrackConfig,
    keyframe: bool,
    timing: Timing,
    duration: Option<gst::ClockTime>,
    data: Payload,
}

impl Frame {
    fn packet(&self) -> Packet<'_> {
        let video = self.config.codec.kind() == MediaKind::Video;
        let composition_time = if self.config.codec.has_composition_time() {
            self.timing
                .pts_ms
                .saturating_sub(self.timing.ms)
                .min(MAX_CTS) as i32
        } else {
            0
        };
        Packet {
            track: self.track,
            codec: self.config.codec,
            kind: PacketKind::CodedFrames,
            frame_type: if video && !self.keyframe { 2 } else { 1 },
            composition_time,
            nanos: self.timing.nanos,
            legacy_audio: self.config.legacy_audio,
            multitrack: false,
            data: self.data.as_slice(),
        }
    }
}

/// A packet of `config`'s track that is not a coded frame (SequenceStart, Metadata,
/// SequenceEnd).
fn control_packet<'a>(
    track: u8,
    config: &TrackConfig,
    kind: PacketKind,
    data: &'a [u8],
) -> Packet<'a> {
    Packet {
        track,
        codec: config.codec,
        kind,
        frame_type: 1,
        composition_time: 0,
        nanos: 0,
        legacy_audio: config.legacy_audio,
        multitrack: false,
        data,
    }
}

impl FlvMux {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    fn pads(&self) -> Vec<super::FlvMuxPad> {
        self.obj()
            .sink_pads()
            .into_iter()
            .filter_map(|p| p.downcast::<super::FlvMuxPad>().ok())
            .collect()
    }

    /// The pad whose next buffer has the earliest running time (an untimed one at once);
    /// `None` while a pad that is not EOS has nothing queued, unless `timeout` (a live
    /// deadline passed: write what is there).
    fn best_pad(
        &self,
        pads: &[super::FlvMuxPad],
        timeout: bool,
    ) -> Option<(super::FlvMuxPad, Option<gst::ClockTime>)> {
        let mut best: Option<(super::FlvMuxPad, gst::ClockTime)> = None;
        for pad in pads {
            let Some(buf) = pad.peek_buffer() else {
                if !timeout && !pad.is_eos() {
                    return None;
                }
                continue;
            };
            let Some(t) = buffer_time(pad.upcast_ref(), &buf) else {
                gst::warning!(CAT, obj = pad, "buffer without a timestamp: {buf:?}");
                return Some((pad.clone(), None));
            };
            if best.as_ref().is_none_or(|(_, b)| t < *b) {
                best = Some((pad.clone(), t));
            }
        }
        best.map(|(p, t)| (p, Some(t)))
    }

    fn error(&self, pad: &super::FlvMuxPad, what: impl std::fmt::Display) -> gst::FlowError {
        gst::element_imp_error!(self, gst::StreamError::Mux, ("{}: {what}", pad.name()));
        gst::FlowError::Error
    }

    /// One tag as a buffer.
    fn tag_buffer(
        &self,
        pad: &super::FlvMuxPad,
        kind: MediaKind,
        ts: u64,
        write: impl FnOnce(&mut BytesMut) -> Result<(), WriteError>,
    ) -> Result<gst::Buffer, gst::FlowError> {
        let mut body = BytesMut::new();
        write(&mut body).map_err(|e| self.error(pad, e))?;
        let tag = Tag {
            tag_type: kind.tag_type(),
            // FLV timestamps are 32 bits; readers extend them across the wrap.
            timestamp: ts as u32,
            stream_id: 0,
            data: body.freeze(),
        };
        let mut out = BytesMut::with_capacity(tag.encoded_len());
        flv::write_tag(&tag, &mut out).map_err(|e| self.error(pad, e))?;
        Ok(gst::Buffer::from_slice(out.freeze()))
    }

    fn push(&self, out: Vec<gst::Buffer>) -> Result<gst::FlowSuccess, gst::FlowError> {
        if out.is_empty() {
            return Ok(gst::FlowSuccess::Ok);
        }
        let mut list = gst::BufferList::new_sized(out.len());
        {
            let list = list.get_mut().expect("new list");
            for b in out {
                list.add(b);
            }
        }
        self.obj().finish_buffer_list(list)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FlvMux {
    const NAME: &'static str = "GstRsFlvMux";
    type Type = super::FlvMux;
    type ParentType = gst_base::Aggregator;
}

impl ObjectImpl for FlvMux {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("streamable")
                    .nick("Streamable")
                    .blurb(
                        "Output is always streamable (no seek index, no duration rewrite); \
                         the property is here so pipelines written for flvmux work unchanged",
                    )
                    .default_value(DEFAULT_STREAMABLE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("many-tracks")
                    .nick("Many tracks per message")
                    .blurb(
                        "Pack the frames of tracks of one kind that share a timestamp into one \
                         ManyTracks (or ManyTracksManyCodecs) message. Off by default: most \
                         receivers (MediaMTX, FFmpeg before 8, GStreamer) refuse it",
                    )
                    .default_value(DEFAULT_MANY_TRACKS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("timestamp-offset-nano")
                    .nick("Nanosecond timestamp offsets")
                    .blurb(
                        "Send the sub-millisecond part of each DTS as a ModEx \
                         TimestampOffsetNano prefix. Off by default: MediaMTX drops such \
                         messages and FFmpeg rounds them away",
                    )
                    .default_value(DEFAULT_TIMESTAMP_OFFSET_NANO)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("metadatacreator")
                    .nick("metadatacreator")
                    .blurb("The value of metadatacreator in onMetaData")
                    .default_value(Some(DEFAULT_METADATACREATOR))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("encoder")
                    .nick("encoder")
                    .blurb("The value of encoder in onMetaData")
                    .default_value(Some(DEFAULT_ENCODER))
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "streamable" => s.streamable = value.get().expect("type checked upstream"),
            "many-tracks" => s.many_tracks = value.get().expect("type checked upstream"),
            "timestamp-offset-nano" => {
                s.timestamp_offset_nano = value.get().expect("type checked upstream")
            }
            "metadatacreator" => {
                s.metadatacreator = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_METADATACREATOR.to_string())
            }
            "encoder" => {
                s.encoder = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_ENCODER.to_string())
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        match pspec.name() {
            "streamable" => s.streamable.to_value(),
            "many-tracks" => s.many_tracks.to_value(),
            "timestamp-offset-nano" => s.timestamp_offset_nano.to_value(),
            "metadatacreator" => s.metadatacreator.to_value(),
            "encoder" => s.encoder.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for FlvMux {}

impl ElementImpl for FlvMux {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Enhanced FLV muxer",
                "Codec/Muxer",
                "Muxes H.264, H.265, AV1, VP9, VP8, AAC, MP3, Opus, FLAC, AC-3 and E-AC-3 \
                 tracks into FLV: legacy tags for H.264/AAC/MP3 on track 0, Enhanced RTMP \
                 for the rest and for every track above 0",
                "rsrtmp developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let video = gst::Caps::from_str(
                "video/x-h264, stream-format=(string)avc, alignment=(string)au; \
                 video/x-h265, stream-format=(string){ hvc1, hev1 }, alignment=(string)au; \
                 video/x-av1, stream-format=(string)obu-stream, alignment=(string)tu; \
                 video/x-vp9; video/x-vp8",
            )
            .expect("video caps");
            let audio = gst::Caps::from_str(
                "audio/mpeg, mpegversion=(int){ 4, 2 }, stream-format=(string)raw; \
                 audio/mpeg, mpegversion=(int)1, layer=(int)3, parsed=(boolean)true; \
                 audio/x-opus; audio/x-flac, framed=(boolean)true; \
                 audio/x-ac3, framed=(boolean)true, alignment=(string)frame; \
                 audio/x-eac3, framed=(boolean)true, alignment=(string)frame",
            )
            .expect("audio caps");
            let flv = gst::Caps::builder("video/x-flv").build();
            let sink = |name: &str, caps: &gst::Caps| {
                gst::PadTemplate::with_gtype(
                    name,
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    caps,
                    super::FlvMuxPad::static_type(),
                )
                .expect("sink template")
            };
            vec![
                gst::PadTemplate::with_gtype(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &flv,
                    gst_base::AggregatorPad::static_type(),
                )
                .expect("src template"),
                sink("video", &video),
                sink("video_%u", &video),
                sink("audio", &audio),
                sink("audio_%u", &audio),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl AggregatorImpl for FlvMux {
    fn create_new_pad(
        &self,
        templ: &gst::PadTemplate,
        req_name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst_base::AggregatorPad> {
        let template = templ.name_template();
        let kind = if template.starts_with("video") {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let base = kind.name();
        let taken: Vec<(MediaKind, u8)> = self
            .pads()
            .iter()
            .map(|p| {
                let st = p.imp().state();
                (st.kind, st.track)
            })
            .collect();
        let track = if !template.contains('%') {
            0
        } else {
            match req_name.filter(|n| !n.contains('%')) {
                Some(name) => {
                    let index = name
                        .strip_prefix(base)
                        .and_then(|r| r.strip_prefix('_'))
                        .and_then(|n| n.parse::<u8>().ok())
                        .filter(|n| *n >= 1);
                    let Some(index) = index else {
                        gst::element_imp_warning!(
                            self,
                            gst::CoreError::Pad,
                            ("cannot make pad {name}: a track pad is named {base}_N with N \
                                 from 1 to 255 (track 0 is the pad {base})")
                        );
                        return None;
                    };
                    index
                }
                None => match (1..=u8::MAX).find(|t| !taken.contains(&(kind, *t))) {
                    Some(t) => t,
                    None => {
                        gst::element_imp_warning!(
                            self,
                            gst::CoreError::Pad,
                            ("cannot make another {base} pad: all 255 track ids are taken")
                        );
                        return None;
                    }
                },
            }
        };
        let name = if track == 0 {
            base.to_string()
        } else {
            format!("{base}_{track}")
        };
        if taken.contains(&(kind, track)) {
            gst::element_imp_warning!(
                self,
                gst::CoreError::Pad,
                ("cannot make pad {name}: {base} track {track} already has a pad")
            );
            return None;
        }
        let pad = glib::Object::builder::<super::FlvMuxPad>()
            .property("name", &name)
            .property("direction", gst::PadDirection::Sink)
            .property("template", templ)
            .build();
        pad.imp().set_track(kind, track);
        gst::debug!(CAT, imp = self, "new pad {name}: {base} track {track}");
        Some(pad.upcast())
    }

    fn sink_event(&self, aggregator_pad: &gst_base::AggregatorPad, event: gst::Event) -> bool {
        if let gst::EventView::Caps(c) = event.view()
            && let Some(pad) = aggregator_pad.downcast_ref::<super::FlvMuxPad>()
        {
            let caps = c.caps();
            gst::debug!(CAT, obj = pad, "caps {caps}");
            if let Err(e) = pad.imp().set_caps(caps) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("{}: {e}", pad.name()),
                    ["caps {caps}"]
                );
                return false;
            }
        }
        self.parent_sink_event(aggregator_pad, event)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::Stopped;
        for pad in self.pads() {
            pad.imp().state().in_metadata = false;
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::Stopped;
        Ok(())
    }

    fn flush(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        // After a flushing seek the stream starts over: headers first again.
        *lock(&self.state) = State::Stopped;
        for pad in self.pads() {
            let mut st = pad.imp().state();
            st.in_metadata = false;
            st.needs_header = st.config.is_some();
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn negotiate(&self) -> bool {
        // The src caps carry the header set; they are set when it is written.
        true
    }

    fn next_time(&self) -> Option<gst::ClockTime> {
        let pads = self.pads();
        if matches!(*lock(&self.state), State::Stopped)
            && pads
                .iter()
                .any(|p| !p.is_eos() && p.imp().state().config.is_none())
        {
            // The first header set describes every track: wait for every track's caps.
            return None;
        }
        self.best_pad(&pads, true).and_then(|(_, t)| t)
    }

    fn aggregate(&self, timeout: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings();
        let pads = self.pads();
        if pads.is_empty() {
            gst::element_imp_error!(
                self,
                gst::StreamError::Mux,
                ("no input: request a video, video_N, audio or audio_N pad")
            );
            return Err(gst::FlowError::Error);
        }
        let mut state = lock(&self.state);
        let mut out = Vec::new();
        let Some((best, first_time)) = self.best_pad(&pads, timeout) else {
            if pads.iter().all(|p| p.is_eos()) {
                if let State::Started(started) = &mut *state
                    && !started.ended
                {
                    started.ended = true;
                    self.end_tags(&pads, started, &mut out)?;
                    drop(state);
                    self.push(out)?;
                }
                return Err(gst::FlowError::Eos);
            }
            return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
        };
        if matches!(*state, State::Stopped) {
            self.av1_records_from_queue(&pads)?;
            let set = self.header_set(&pads, &settings, 0, true)?;
            self.set_header_caps(&set);
            out.extend(set);
            let first = first_time.unwrap_or(gst::ClockTime::ZERO);
            gst::debug!(CAT, imp = self, "stream starts at running time {first}");
            *state = State::Started(Started {
                first,
                last_ms: 0,
                ended: false,
            });
        }
        let State::Started(started) = &mut *state else {
            unreachable!("started above");
        };
        let Some(buffer) = best.pop_buffer() else {
            // Flushed since it was peeked.
            drop(state);
            self.push(out)?;
            return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
        };
        if buffer.flags().contains(gst::BufferFlags::HEADER) && best.imp().headers_in_caps() {
            // flacenc/opusenc push their header packets too; the SequenceStart has them.
            gst::log!(CAT, obj = best, "dropping a header buffer: {buffer:?}");
            drop(state);
            return self.push(out);
        }
        let mut frames = vec![self.frame(&best, buffer, started, &settings)?];
        if settings.many_tracks {
            self.gather(&pads, &mut frames, started, &settings)?;
        }
        self.write_frames(&frames, &pads, &settings, &mut out)?;
        started.last_ms = frames[0].timing.ms;
        drop(frames);
        drop(state);
        self.push(out)
    }
}
