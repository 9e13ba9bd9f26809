//! rsflvdemux's element: FLV bytes in, one pad per track out.
//!
//! The sink pad feeds the engine's streaming [`FlvParser`]; each audio/video tag is split
//! into its tracks by [`eflv::parse_tag`]. A track gets its pad when its caps can be made
//! (after its configuration record, or at its first frame for self-describing codecs).
//! Work happens under the state lock and produces a list of [`Action`]s that are carried
//! out after the lock is released, so downstream never runs with the lock held.
//!
//! Timestamps: DTS is the tag timestamp extended to 64 bits, PTS = DTS + composition time,
//! plus the ModEx nanosecond offset where one is given. A new FLV header inside the stream
//! (a second file, a looped file) continues the timeline 1 ms after the last output.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{LazyLock, Mutex, MutexGuard};

use bytes::Bytes;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::caps::{self, Needs};
use crate::rtmp::amf0;
use crate::rtmp::codecs::ColorInfo;
use crate::rtmp::eflv::{self, Codec, MediaKind, PacketKind};
use crate::rtmp::flv::{self, FlvItem, FlvParser, TimestampExtender};

mod actions;
mod seek;
mod sink_events;

use actions::Action;
use seek::PendingSeek;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsflvdemux",
        gst::DebugColorFlags::empty(),
        Some("rsrtmp legacy and Enhanced FLV demuxer"),
    )
});

/// Stream time after which the pads found so far are taken to be all of them, when the
/// stream never said which tracks to expect (as flvdemux does).
const NO_MORE_PADS_AFTER_MS: u64 = 6000;

/// Buffers held after a seek while looking for the target (a GOP at most, in real files);
/// beyond this the oldest go, so a stream without keyframes cannot grow it.
const MAX_HELD: usize = 4096;

type TrackKey = (MediaKind, u8);

struct Track {
    pad: Option<gst::Pad>,
    codec: Codec,
    /// The last non-empty configuration record of each codec the track had (a stray
    /// packet of another codec must not cost the real one its record).
    records: Vec<(Codec, Bytes)>,
    legacy: Option<eflv::LegacyAudio>,
    color: Option<ColorInfo>,
    caps: Option<gst::Caps>,
    /// Caps must be (re)made before the next frame.
    caps_dirty: bool,
    discont: bool,
    /// The next buffer needs the current segment first (new pad, or after a seek).
    need_segment: bool,
    /// Unsupported codec: the track is dropped (warned once).
    dropped: bool,
    /// Frames dropped while waiting for a configuration record (warned once).
    waiting_warned: bool,
}

impl Track {
    fn record(&self) -> Option<&Bytes> {
        self.records
            .iter()
            .find(|(c, _)| *c == self.codec)
            .map(|(_, r)| r)
    }

    fn new(codec: Codec) -> Track {
        Track {
            pad: None,
            codec,
            records: Vec::new(),
            legacy: None,
            color: None,
            caps: None,
            caps_dirty: true,
            discont: true,
            need_segment: true,
            dropped: false,
            waiting_warned: false,
        }
    }
}

struct State {
    parser: FlvParser,
    tracks: BTreeMap<TrackKey, Track>,
    /// Tracks the FLV header and onMetaData announced that have no pad yet.
    expected: BTreeSet<TrackKey>,
    extender: TimestampExtender,
    /// Added to extended tag timestamps (continuity across restarts).
    offset: i64,
    /// A new FLV header was seen after tags: continue the timeline at the next tag.
    restart: bool,
    first_out: Option<u64>,
    last_out: Option<u64>,
    no_more_pads: bool,
    /// The FLV header or onMetaData said which tracks there are.
    announced: bool,
    group_id: gst::GroupId,
    upstream_stream_id: Option<String>,
    streamheader: Vec<gst::Buffer>,
    got_data: bool,
    duration: Option<gst::ClockTime>,
    bad_tags: u64,
    /// Bytes pushed into the parser since the start of the input (or the last byte seek's
    /// offset): where each tag starts in the file.
    pushed: u64,
    /// Sync points (track-0 video keyframes; any packet without video) as (ms, byte offset
    /// of the tag), in time order: where a seek starts reading.
    index: Vec<(u64, u64)>,
    /// The segment every pad gets, and the seqnum of the seek that made it.
    segment: gst::FormattedSegment<gst::ClockTime>,
    seqnum: Option<gst::Seqnum>,
    /// A seek sent upstream as a byte seek, applied at its FLUSH_STOP.
    pending_seek: Option<PendingSeek>,
    last_seek: Option<gst::Seqnum>,
    /// After a seek: hold buffers from the latest sync point until a packet reaches this
    /// time (ms), so output starts at the last keyframe before the target.
    skip_until: Option<u64>,
    held: Vec<(TrackKey, gst::Pad, gst::Buffer)>,
    /// Whether upstream can seek in bytes (asked at the first buffer).
    seekable: Option<bool>,
}

impl Default for State {
    fn default() -> Self {
        State {
            parser: FlvParser::new(),
            tracks: BTreeMap::new(),
            expected: BTreeSet::new(),
            extender: TimestampExtender::new(),
            offset: 0,
            restart: false,
            first_out: None,
            last_out: None,
            no_more_pads: false,
            announced: false,
            group_id: gst::GroupId::next(),
            upstream_stream_id: None,
            streamheader: Vec::new(),
            got_data: false,
            duration: None,
            bad_tags: 0,
            pushed: 0,
            index: Vec::new(),
            segment: gst::FormattedSegment::new(),
            seqnum: None,
            pending_seek: None,
            last_seek: None,
            skip_until: None,
            held: Vec::new(),
            seekable: None,
        }
    }
}

pub struct RsFlvDemux {
    sinkpad: gst::Pad,
    state: Mutex<State>,
    flow: Mutex<gst_base::UniqueFlowCombiner>,
}

impl RsFlvDemux {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.state().seekable.is_none() {
            let mut q = gst::query::Seeking::new(gst::Format::Bytes);
            let seekable = self.sinkpad.peer_query(&mut q) && q.result().0;
            self.state().seekable = Some(seekable);
        }
        let mut actions = Vec::new();
        let result = {
            let mut st = self.state();
            if buffer.flags().contains(gst::BufferFlags::DISCONT) && st.got_data {
                for t in st.tracks.values_mut() {
                    t.discont = true;
                }
            }
            let map = buffer
                .into_mapped_buffer_readable()
                .map_err(|_| gst::FlowError::Error)?;
            let data = Bytes::from_owner(map);
            if !st.got_data {
                st.got_data = true;
                // Joined after the header (a network source giving the header in the caps
                // only): start from the caps' streamheader.
                if !data.starts_with(b"FLV") && !st.streamheader.is_empty() {
                    let headers = std::mem::take(&mut st.streamheader);
                    for h in headers {
                        if let Ok(m) = h.into_mapped_buffer_readable() {
                            st.parser.push_bytes(Bytes::from_owner(m));
                        }
                    }
                }
            }
            st.pushed += data.len() as u64;
            st.parser.push_bytes(data);
            self.drain(&mut st, &mut actions)
        };
        let flow = self.run(actions);
        result?;
        match flow {
            // A pad nobody linked before the others exist: not the end of the stream yet.
            Err(gst::FlowError::NotLinked) if !self.state().no_more_pads => {
                Ok(gst::FlowSuccess::Ok)
            }
            flow => flow,
        }
    }

    /// Parses every complete item buffered so far.
    fn drain(&self, st: &mut State, actions: &mut Vec<Action>) -> Result<(), gst::FlowError> {
        loop {
            match st.parser.next_item() {
                Ok(None) => return Ok(()),
                Ok(Some(FlvItem::Header(h))) => {
                    if st.parser.tags_parsed() > 0 {
                        st.restart = true;
                    }
                    st.announced |= h.has_video || h.has_audio;
                    if h.has_video {
                        self.expect(st, (MediaKind::Video, 0));
                    }
                    if h.has_audio {
                        self.expect(st, (MediaKind::Audio, 0));
                    }
                }
                Ok(Some(FlvItem::Tag(tag))) => {
                    let end = st.pushed - st.parser.buffered_len() as u64;
                    let start = end.saturating_sub((flv::TAG_HEADER_LEN + tag.data.len()) as u64);
                    self.on_tag(st, tag, start, actions)
                }
                Err(err) => {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Demux,
                        ("The FLV stream cannot be parsed any further: {}", err)
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }

    fn expect(&self, st: &mut State, key: TrackKey) {
        let has_pad = st
            .tracks
            .get(&key)
            .is_some_and(|t| t.pad.is_some() || t.dropped);
        if !has_pad && !st.no_more_pads {
            st.expected.insert(key);
        }
    }

    fn out_ts(st: &mut State, ts: u32) -> u64 {
        if std::mem::take(&mut st.restart) {
            st.extender.reset();
            let ext = st.extender.extend(ts);
            let next = st.last_out.map_or(0, |l| l + 1);
            st.offset = next as i64 - ext as i64;
            return next;
        }
        let ext = st.extender.extend(ts);
        let out = (ext as i64).saturating_add(st.offset).max(0) as u64;
        st.first_out.get_or_insert(out);
        st.last_out = Some(st.last_out.map_or(out, |l| l.max(out)));
        out
    }

    fn on_tag(&self, st: &mut State, tag: flv::Tag, start: u64, actions: &mut Vec<Action>) {
        match tag.tag_type {
            flv::TAG_TYPE_SCRIPT => {
                self.on_script(st, &tag.data);
                return;
            }
            flv::TAG_TYPE_AUDIO | flv::TAG_TYPE_VIDEO => {}
            _ => return,
        }
        if tag.data.is_empty() {
            // A zero-length audio tag: the legacy "silence" marker; nothing to decode.
            return;
        }
        let dts_ms = Self::out_ts(st, tag.timestamp);
        let parsed = match eflv::parse_tag(tag.tag_type, &tag.data) {
            Ok(p) => p,
            Err(err) => {
                st.bad_tags += 1;
                gst::warning!(CAT, imp = self, "dropping a tag at {} ms: {}", dts_ms, err);
                if st.bad_tags == 1 {
                    actions.push(Action::Warning(format!(
                        "Dropping an FLV {} tag at {} ms that does not parse: {}",
                        if tag.tag_type == flv::TAG_TYPE_VIDEO {
                            "video"
                        } else {
                            "audio"
                        },
                        dts_ms,
                        err
                    )));
                }
                return;
            }
        };
        for p in &parsed.packets {
            let offset = p.data.as_ptr() as usize - tag.data.as_ptr() as usize;
            let data = tag.data.slice(offset..offset + p.data.len());
            self.on_packet(st, p, data, dts_ms, start, actions);
        }
        self.check_no_more_pads(st, actions);
    }

    fn on_script(&self, st: &mut State, data: &[u8]) {
        let Ok(values) = amf0::decode_all(data) else {
            gst::debug!(CAT, imp = self, "script tag does not decode as AMF0");
            return;
        };
        if values.first().and_then(amf0::Value::as_str) != Some("onMetaData") {
            return;
        }
        let Some(meta) = values.get(1) else { return };
        if let Some(d) = meta.get("duration").and_then(amf0::Value::as_f64)
            && d.is_finite()
            && d > 0.0
        {
            st.duration = Some(gst::ClockTime::from_nseconds((d * 1e9) as u64));
        }
        for (key, kind) in [
            ("videoTrackIdInfoMap", MediaKind::Video),
            ("audioTrackIdInfoMap", MediaKind::Audio),
        ] {
            let Some(props) = meta.get(key).and_then(amf0::Value::properties) else {
                continue;
            };
            for (id, _) in props {
                if let Ok(track) = id.parse::<u8>() {
                    st.announced = true;
                    self.expect(st, (kind, track));
                }
            }
        }
    }

    fn on_packet(
        &self,
        st: &mut State,
        p: &eflv::Packet<'_>,
        data: Bytes,
        dts_ms: u64,
        tag_start: u64,
        actions: &mut Vec<Action>,
    ) {
        let key = (p.media(), p.track);
        let track = st.tracks.entry(key).or_insert_with(|| Track::new(p.codec));
        if track.codec != p.codec {
            gst::info!(
                CAT,
                imp = self,
                "{} track {} changes codec from {} to {}",
                key.0.name(),
                key.1,
                caps::codec_name(track.codec),
                caps::codec_name(p.codec)
            );
            track.codec = p.codec;
            track.caps_dirty = true;
            track.dropped = false;
        }
        if track.dropped {
            return;
        }
        let needs = match caps::needs(p.codec) {
            Ok(n) => n,
            Err(err) => {
                track.dropped = true;
                st.expected.remove(&key);
                actions.push(Action::Warning(format!(
                    "Dropping {} track {}: {}; the other tracks go on",
                    key.0.name(),
                    key.1,
                    err
                )));
                return;
            }
        };
        if p.legacy_audio.is_some() && track.legacy != p.legacy_audio {
            track.legacy = p.legacy_audio;
            // Legacy caps come from the flags; a change (rare) is a caps change.
            track.caps_dirty |= needs == Needs::Frame;
        }
        match p.kind {
            PacketKind::SequenceStart => {
                // Empty records (FFmpeg's first AV1 SequenceStart, ac-3/ec-3/.mp3) are
                // placeholders: keep waiting for a real one or for the frames.
                if !data.is_empty() && track.record() != Some(&data) {
                    track.records.retain(|(c, _)| *c != p.codec);
                    track.records.push((p.codec, data));
                    track.caps_dirty = true;
                }
                return;
            }
            PacketKind::Metadata => {
                let values = amf0::decode_all(&data).unwrap_or_default();
                if let Some(info) = ColorInfo::from_amf(&values) {
                    let info = (info != ColorInfo::default()).then_some(info);
                    if track.color != info {
                        track.color = info;
                        track.caps_dirty = true;
                    }
                }
                return;
            }
            PacketKind::CodedFrames => {}
            PacketKind::SequenceEnd
            | PacketKind::Mpeg2TsSequenceStart
            | PacketKind::MultichannelConfig => return,
        }
        if data.is_empty() {
            return;
        }
        if track.caps_dirty || track.caps.is_none() {
            if needs == Needs::Record && track.record().is_none() {
                if !track.waiting_warned {
                    track.waiting_warned = true;
                    gst::warning!(
                        CAT,
                        imp = self,
                        "{} track {} ({}): dropping frames until its sequence header",
                        key.0.name(),
                        key.1,
                        caps::codec_name(p.codec)
                    );
                }
                return;
            }
            let new_caps = match caps::caps_for(
                p.codec,
                track.record().map(|r| &r[..]),
                Some(&data),
                track.legacy,
                track.color.as_ref(),
            ) {
                Ok(c) => c,
                Err(err) => {
                    track.dropped = true;
                    st.expected.remove(&key);
                    actions.push(Action::Warning(format!(
                        "Dropping {} track {}: {}; the other tracks go on",
                        key.0.name(),
                        key.1,
                        err
                    )));
                    return;
                }
            };
            track.caps_dirty = false;
            if track.caps.as_ref() != Some(&new_caps) {
                track.caps = Some(new_caps.clone());
                match &track.pad {
                    Some(pad) => {
                        actions.push(Action::Event(pad.clone(), gst::event::Caps::new(&new_caps)))
                    }
                    None => {
                        let pad = self.new_pad(key);
                        let track = st.tracks.get_mut(&key).expect("inserted above");
                        track.pad = Some(pad.clone());
                        let stream_id = pad
                            .create_stream_id(&*self.obj(), Some(&pad.name()))
                            .to_string();
                        actions.push(Action::Event(
                            pad.clone(),
                            gst::event::StreamStart::builder(&stream_id)
                                .group_id(st.group_id)
                                .build(),
                        ));
                        actions.push(Action::Event(pad.clone(), gst::event::Caps::new(&new_caps)));
                        actions.push(Action::AddPad(pad));
                        st.expected.remove(&key);
                    }
                }
            }
        }
        let track = st.tracks.get_mut(&key).expect("inserted above");
        let Some(pad) = track.pad.clone() else { return };
        let mut buffer = gst::Buffer::from_slice(data);
        {
            let b = buffer.get_mut().expect("new buffer");
            let dts = gst::ClockTime::from_mseconds(dts_ms)
                + gst::ClockTime::from_nseconds(p.nanos.into());
            let pts_ms = dts_ms.saturating_add_signed(i64::from(p.composition_time));
            let pts = gst::ClockTime::from_mseconds(pts_ms)
                + gst::ClockTime::from_nseconds(p.nanos.into());
            b.set_dts(dts);
            b.set_pts(pts);
            let mut flags = gst::BufferFlags::empty();
            if key.0 == MediaKind::Video && !p.is_keyframe() {
                flags |= gst::BufferFlags::DELTA_UNIT;
            }
            b.set_flags(flags);
        }
        let has_video = st.tracks.contains_key(&(MediaKind::Video, 0));
        let sync = if has_video {
            key == (MediaKind::Video, 0) && p.is_keyframe()
        } else {
            true
        };
        // Only a seekable input (a file) is worth indexing; a live one would grow it for ever.
        if sync && st.seekable == Some(true) && st.index.last().is_none_or(|&(t, _)| dts_ms > t) {
            st.index.push((dts_ms, tag_start));
        }
        match st.skip_until {
            Some(target) => {
                if sync {
                    st.held.clear();
                }
                if st.held.len() == MAX_HELD {
                    st.held.remove(0);
                }
                st.held.push((key, pad, buffer));
                if dts_ms >= target {
                    st.skip_until = None;
                    for (key, pad, buffer) in std::mem::take(&mut st.held) {
                        Self::out(st, key, pad, buffer, actions);
                    }
                }
            }
            None => Self::out(st, key, pad, buffer, actions),
        }
    }

    fn check_no_more_pads(&self, st: &mut State, actions: &mut Vec<Action>) {
        if st.no_more_pads || st.tracks.values().all(|t| t.pad.is_none()) {
            return;
        }
        let long_enough = match (st.first_out, st.last_out) {
            (Some(f), Some(l)) => l.saturating_sub(f) >= NO_MORE_PADS_AFTER_MS,
            _ => false,
        };
        if (st.announced && st.expected.is_empty()) || long_enough {
            st.no_more_pads = true;
            actions.push(Action::NoMorePads);
        }
    }

    fn new_pad(&self, key: TrackKey) -> gst::Pad {
        let (templ_name, name) = match key {
            (kind, 0) => (kind.name().to_string(), kind.name().to_string()),
            (kind, n) => (
                format!("{}_%u", kind.name()),
                format!("{}_{}", kind.name(), n),
            ),
        };
        let templ = self
            .obj()
            .element_class()
            .pad_template(&templ_name)
            .expect("pad template exists");
        let pad = gst::Pad::builder_from_template(&templ)
            .name(name.as_str())
            .query_function(|pad, parent, query| {
                RsFlvDemux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(pad, query),
                )
            })
            .event_function(|pad, parent, event| {
                RsFlvDemux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_event(pad, event),
                )
            })
            .build();
        pad.use_fixed_caps();
        pad
    }

    fn src_pads(&self) -> Vec<gst::Pad> {
        self.state()
            .tracks
            .values()
            .filter_map(|t| t.pad.clone())
            .collect()
    }

    fn reset(&self) {
        let pads = {
            let mut st = self.state();
            let pads: Vec<_> = st.tracks.values().filter_map(|t| t.pad.clone()).collect();
            *st = State::default();
            pads
        };
        let mut flow = self.flow.lock().unwrap_or_else(|e| e.into_inner());
        for p in pads {
            flow.remove_pad(&p);
            let _ = self.obj().remove_pad(&p);
        }
        flow.reset();
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RsFlvDemux {
    const NAME: &'static str = "GstRsFlvDemux";
    type Type = super::RsFlvDemux;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buffer| {
                RsFlvDemux::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                RsFlvDemux::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .build();
        RsFlvDemux {
            sinkpad,
            state: Mutex::new(State::default()),
            flow: Mutex::new(gst_base::UniqueFlowCombiner::new()),
        }
    }
}

impl ObjectImpl for RsFlvDemux {
    fn constructed(&self) {
        self.parent_constructed();
        self.obj()
            .add_pad(&self.sinkpad)
            .expect("adding the sink pad");
    }
}

impl GstObjectImpl for RsFlvDemux {}

impl ElementImpl for RsFlvDemux {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "FLV demuxer (legacy and Enhanced RTMP)",
                "Codec/Demuxer",
                "Demuxes legacy and Enhanced FLV: H.264, H.265, AV1, VP9, VP8, AAC, MP3, Opus, \
                 FLAC, AC-3, E-AC-3 and the legacy FLV codecs, every track",
                "rsrtmp developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &gst::Caps::new_empty_simple("video/x-flv"),
            )
            .expect("sink template");
            let mut t = vec![sink];
            for (name, video) in [
                ("video", true),
                ("video_%u", true),
                ("audio", false),
                ("audio_%u", false),
            ] {
                t.push(
                    gst::PadTemplate::new(
                        name,
                        gst::PadDirection::Src,
                        gst::PadPresence::Sometimes,
                        &caps::template_caps(video),
                    )
                    .expect("src template"),
                );
            }
            t
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            self.reset();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            self.reset();
        }
        Ok(ret)
    }
}
