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

    /// The SequenceStart (if the codec has one) and colorInfo tags of a track.
    fn track_headers(
        &self,
        pad: &super::FlvMuxPad,
        st: &PadState,
        ts: u64,
    ) -> Result<Vec<gst::Buffer>, gst::FlowError> {
        let Some(config) = &st.config else {
            return Ok(Vec::new());
        };
        let kind = config.codec.kind();
        let mut flags = gst::BufferFlags::HEADER;
        if kind == MediaKind::Video {
            // Nobody should start playing at a decoder configuration.
            flags |= gst::BufferFlags::DELTA_UNIT;
        }
        let mut out = Vec::new();
        if config.sequence != Sequence::None {
            let record = st.record.as_deref().unwrap_or(&[]);
            let p = control_packet(st.track, config, PacketKind::SequenceStart, record);
            out.push(self.tag_buffer(pad, kind, ts, |b| eflv::write_packet(&p, b))?);
        }
        if let Some(color) = &config.color {
            let amf = amf0::encode_all(&color.to_amf());
            let p = control_packet(st.track, config, PacketKind::Metadata, &amf);
            out.push(self.tag_buffer(pad, kind, ts, |b| eflv::write_packet(&p, b))?);
        }
        for b in &mut out {
            b.get_mut().expect("new buffer").set_flags(flags);
        }
        Ok(out)
    }

    /// The onMetaData script tag: track 0 in the top-level fields, other tracks in
    /// `videoTrackIdInfoMap`/`audioTrackIdInfoMap` keyed by the track id. Always at
    /// timestamp 0, also when sent again mid-stream: FFmpeg reads a later-stamped
    /// onMetaData as a text stream.
    fn metadata_buffer(&self, pads: &[super::FlvMuxPad], settings: &Settings) -> gst::Buffer {
        let mut props: Vec<(String, Value)> = Vec::new();
        let mut video_map = Vec::new();
        let mut audio_map = Vec::new();
        for pad in pads {
            let st = pad.imp().state();
            let Some(config) = &st.config else { continue };
            let fields = config.metadata(st.track);
            if st.track == 0 {
                props.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
                continue;
            }
            let entry = (st.track.to_string(), Value::object(fields));
            match st.kind {
                MediaKind::Video => video_map.push(entry),
                MediaKind::Audio => audio_map.push(entry),
            }
        }
        for (name, map) in [
            ("videoTrackIdInfoMap", video_map),
            ("audioTrackIdInfoMap", audio_map),
        ] {
            if !map.is_empty() {
                props.push((name.to_string(), Value::object(map)));
            }
        }
        props.push(("encoder".into(), Value::String(settings.encoder.clone())));
        props.push((
            "metadatacreator".into(),
            Value::String(settings.metadatacreator.clone()),
        ));
        let body =
            amf0::encode_all(&[Value::String("onMetaData".into()), Value::ecma_array(props)]);
        let tag = Tag {
            tag_type: flv::TAG_TYPE_SCRIPT,
            timestamp: 0,
            stream_id: 0,
            data: body,
        };
        let mut out = BytesMut::with_capacity(tag.encoded_len());
        // A metadata object never comes near the 16 MiB tag limit.
        flv::write_tag(&tag, &mut out).expect("onMetaData fits a tag");
        let mut buf = gst::Buffer::from_slice(out.freeze());
        buf.get_mut()
            .expect("new buffer")
            .set_flags(gst::BufferFlags::HEADER);
        buf
    }

    /// FLV header, onMetaData and every ready track's headers, at `ts`. With `mark`, the
    /// tracks count as announced (the first header set).
    fn header_set(
        &self,
        pads: &[super::FlvMuxPad],
        settings: &Settings,
        ts: u64,
        mark: bool,
    ) -> Result<Vec<gst::Buffer>, gst::FlowError> {
        let kinds: Vec<MediaKind> = pads.iter().map(|p| p.imp().state().kind).collect();
        let header = FlvHeader::new(
            kinds.contains(&MediaKind::Audio),
            kinds.contains(&MediaKind::Video),
        );
        let mut bytes = BytesMut::new();
        flv::write_header(&header, &mut bytes);
        let mut flv_header = gst::Buffer::from_slice(bytes.freeze());
        flv_header
            .get_mut()
            .expect("new buffer")
            .set_flags(gst::BufferFlags::HEADER);
        let mut set = vec![flv_header, self.metadata_buffer(pads, settings)];
        for pad in pads {
            let mut st = pad.imp().state();
            if st.config.is_none() {
                continue;
            }
            if st.header_ready() {
                set.extend(self.track_headers(pad, &st, ts)?);
                if mark {
                    st.needs_header = false;
                }
            }
            if mark {
                st.in_metadata = true;
            }
        }
        Ok(set)
    }

    /// Puts `set` into the src caps' `streamheader`.
    fn set_header_caps(&self, set: &[gst::Buffer]) {
        let headers = gst::Array::new(set.iter().map(|b| b.copy().to_send_value()));
        let caps = gst::Caps::builder("video/x-flv")
            .field("streamheader", headers)
            .build();
        gst::debug!(
            CAT,
            imp = self,
            "src caps with {} header buffers",
            set.len()
        );
        self.obj().set_src_caps(&caps);
    }

    /// For AV1 without codec_data: the av1C of the first queued temporal unit of each such
    /// pad, so the first header set carries it.
    fn av1_records_from_queue(&self, pads: &[super::FlvMuxPad]) -> Result<(), gst::FlowError> {
        for pad in pads {
            let mut st = pad.imp().state();
            let from_stream = st
                .config
                .as_ref()
                .is_some_and(|c| c.sequence == Sequence::FromStream);
            if !from_stream || st.record.is_some() {
                continue;
            }
            let Some(buf) = pad.peek_buffer() else {
                continue;
            };
            let map = buf
                .map_readable()
                .map_err(|_| self.error(pad, "cannot map a buffer"))?;
            match codecs::av1c_from_temporal_unit(&map) {
                Ok(record) => st.record = Some(record),
                Err(e) => return Err(self.av1_error(pad, &e)),
            }
        }
        Ok(())
    }

    fn av1_error(&self, pad: &super::FlvMuxPad, e: &codecs::RecordError) -> gst::FlowError {
        self.error(
            pad,
            format!(
                "{e}: the caps have no codec_data, so the stream must start with a keyframe \
                 temporal unit holding the sequence header (av1parse puts one there)"
            ),
        )
    }

    /// Takes one buffer of `pad` apart: timing, keyframe, payload; an AV1 keyframe with a
    /// new sequence header asks for a new SequenceStart.
    fn frame(
        &self,
        pad: &super::FlvMuxPad,
        buffer: gst::Buffer,
        started: &Started,
        settings: &Settings,
    ) -> Result<Frame, gst::FlowError> {
        let mut timing = timing(
            pad.upcast_ref(),
            &buffer,
            started,
            settings.timestamp_offset_nano,
        );
        if timing.ms < started.last_ms {
            // Never backwards, across tracks too: RTMP peers expect that.
            gst::debug!(
                CAT,
                obj = pad,
                "timestamp {} ms raised to {} ms",
                timing.ms,
                started.last_ms
            );
            timing.ms = started.last_ms;
            timing.nanos = 0;
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let duration = buffer.duration();
        let map = buffer
            .into_mapped_buffer_readable()
            .map_err(|_| self.error(pad, "cannot map a buffer"))?;
        let mut st = pad.imp().state();
        let Some(config) = st.config.clone() else {
            drop(st);
            return Err(self.error(pad, "a buffer arrived before any caps"));
        };
        let mut data = Payload::Mapped(map);
        if config.codec == Codec::Video(VideoCodec::FourCc(FourCc::AV01)) {
            if config.sequence == Sequence::FromStream && (keyframe || st.record.is_none()) {
                match codecs::av1c_from_temporal_unit(data.as_slice()) {
                    Ok(record) if st.record.as_ref() != Some(&record) => {
                        if st.record.is_some() {
                            gst::info!(CAT, obj = pad, "new AV1 sequence header");
                        }
                        st.record = Some(record);
                        st.needs_header = true;
                    }
                    Ok(_) => {}
                    Err(e) if st.record.is_none() => {
                        drop(st);
                        return Err(self.av1_error(pad, &e));
                    }
                    Err(_) => {}
                }
            }
            // As OBS sends AV1: the tag is the temporal unit.
            if let Some(stripped) = codecs::av1_strip_temporal_delimiters(data.as_slice()) {
                data = Payload::Owned(stripped);
            }
        }
        let track = st.track;
        drop(st);
        Ok(Frame {
            pad: pad.clone(),
            track,
            config,
            keyframe,
            timing,
            duration,
            data,
        })
    }

    /// With `many-tracks`: the queued buffers of other tracks of the same kind with exactly
    /// the lead frame's timestamp, FourCC signalling, frame type and nothing to announce
    /// first, taken to share its message.
    fn gather(
        &self,
        pads: &[super::FlvMuxPad],
        frames: &mut Vec<Frame>,
        started: &Started,
        settings: &Settings,
    ) -> Result<(), gst::FlowError> {
        let lead = &frames[0];
        if lead.config.codec.fourcc().is_none() {
            return Ok(());
        }
        let (kind, lead_timing, lead_key) = (lead.config.codec.kind(), lead.timing, lead.keyframe);
        let lead_pad = lead.pad.clone();
        for pad in pads {
            if *pad == lead_pad {
                continue;
            }
            {
                let st = pad.imp().state();
                let Some(config) = &st.config else { continue };
                if st.kind != kind
                    || st.needs_header
                    || config.codec.fourcc().is_none()
                    || config.sequence == Sequence::FromStream
                {
                    continue;
                }
            }
            let Some(buf) = pad.peek_buffer() else {
                continue;
            };
            let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let t = timing(
                pad.upcast_ref(),
                &buf,
                started,
                settings.timestamp_offset_nano,
            );
            if t.ms != lead_timing.ms
                || t.nanos != lead_timing.nanos
                || (kind == MediaKind::Video && key != lead_key)
            {
                continue;
            }
            let Some(buf) = pad.pop_buffer() else {
                continue;
            };
            frames.push(self.frame(pad, buf, started, settings)?);
        }
        Ok(())
    }

    /// Writes `frames` (one, or several of one kind with one timestamp) after any header
    /// their tracks need first.
    fn write_frames(
        &self,
        frames: &[Frame],
        pads: &[super::FlvMuxPad],
        settings: &Settings,
        out: &mut Vec<gst::Buffer>,
    ) -> Result<(), gst::FlowError> {
        let lead = &frames[0];
        let ts = lead.timing.ms;
        let mut refresh = false;
        for f in frames {
            let mut st = f.pad.imp().state();
            if !(st.needs_header && st.header_ready()) {
                continue;
            }
            let new_track = !st.in_metadata;
            st.needs_header = false;
            st.in_metadata = true;
            let headers = self.track_headers(&f.pad, &st, ts)?;
            drop(st);
            gst::debug!(CAT, obj = f.pad, "new decoder configuration at {ts} ms");
            if new_track {
                out.push(self.metadata_buffer(pads, settings));
            }
            out.extend(headers);
            refresh = true;
        }
        if refresh {
            let set = self.header_set(pads, settings, ts, false)?;
            self.set_header_caps(&set);
        }
        let kind = lead.config.codec.kind();
        let mut buffer = if frames.len() == 1 {
            let p = lead.packet();
            self.tag_buffer(&lead.pad, kind, ts, |b| eflv::write_packet(&p, b))?
        } else {
            let packets: Vec<Packet<'_>> = frames.iter().map(Frame::packet).collect();
            gst::log!(
                CAT,
                imp = self,
                "{} tracks in one message at {ts} ms",
                packets.len()
            );
            self.tag_buffer(&lead.pad, kind, ts, |b| eflv::write_tracks(&packets, b))?
        };
        let b = buffer.get_mut().expect("new buffer");
        b.set_pts(lead.timing.running_time);
        b.set_duration(lead.duration);
        if kind == MediaKind::Video && !lead.keyframe {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        if let Some(pts) = lead.timing.running_time {
            self.obj()
                .set_position(pts + lead.duration.unwrap_or(gst::ClockTime::ZERO));
        }
        out.push(buffer);
        Ok(())
    }

    /// At EOS: a SequenceEnd for every announced video track (what FFmpeg and flvmux write).
    fn end_tags(
        &self,
        pads: &[super::FlvMuxPad],
        started: &Started,
        out: &mut Vec<gst::Buffer>,
    ) -> Result<(), gst::FlowError> {
        for pad in pads {
            let st = pad.imp().state();
            let Some(config) = &st.config else { continue };
            if st.kind != MediaKind::Video || !st.in_metadata || config.sequence == Sequence::None {
                continue;
            }
            let p = control_packet(st.track, config, PacketKind::SequenceEnd, &[]);
            out.push(
                self.tag_buffer(pad, MediaKind::Video, started.last_ms, |b| {
                    eflv::write_packet(&p, b)
                })?,
            );
        }
        Ok(())
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
