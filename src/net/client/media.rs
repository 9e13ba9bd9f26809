//! Media frames and their two encodings: FLV tags (what the elements' pads carry) and RTMP
//! messages (what the session carries).
//!
//! A [`MediaFrame`] is one audio, video or data tag/message with its timestamp extended to 64
//! bits and classified once (keyframe, decoder configuration or metadata), so the drivers
//! never parse codec headers twice. The sink side turns FLV bytes, split anywhere, into frames
//! ([`FlvDemuxer`]); the source side turns received messages into frames
//! ([`frame_from_message`]) and frames into FLV bytes ([`flv_tag`], [`flv_header`]).

use bytes::{Bytes, BytesMut};

use crate::rtmp::amf0;
use crate::rtmp::flv::{
    self, AudioCodec, AudioInfo, FlvError, FlvHeader, FlvItem, FlvParser, HeaderKey, MediaClass,
    Tag, TimelineJoiner, TimestampExtender, VideoCodec, VideoInfo,
};
use crate::rtmp::message::{Message, msg_type};
pub use crate::rtmp::session::MediaKind;

/// One audio, video or data frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    pub kind: MediaKind,
    /// Milliseconds, extended across the 32-bit wrap.
    pub timestamp: u64,
    /// The tag body / message payload, unchanged (data without `@setDataFrame`).
    pub payload: Bytes,
    /// A point a player can start from: video key frames; every audio and data frame.
    pub keyframe: bool,
    /// Decoder configuration (AVC/AAC sequence header, E-RTMP SequenceStart) or `onMetaData`:
    /// what a new connection must get before any frame.
    pub header: bool,
    /// Video composition time (PTS − DTS) in ms; 0 elsewhere.
    pub composition_time: i32,
    /// The codec needs a decoder configuration (sequence header) before its frames: AVC,
    /// HEVC, AAC, and every Enhanced RTMP codec.
    pub needs_config: bool,
    /// For a decoder configuration: its slot (kind, track, packet type), one per track.
    pub header_key: Option<HeaderKey>,
}

impl MediaFrame {
    /// Classifies `payload`. Bodies too short or malformed to classify are passed through as
    /// plain (non-key, non-header) frames: the peer decides what to do with them.
    pub fn new(kind: MediaKind, timestamp: u64, payload: Bytes) -> MediaFrame {
        let type_id = match kind {
            MediaKind::Video => flv::TAG_TYPE_VIDEO,
            MediaKind::Audio => flv::TAG_TYPE_AUDIO,
            MediaKind::Data => flv::TAG_TYPE_SCRIPT,
        };
        // The classifier the server side uses too. Only a sequence start fills the client's
        // header slots (one per kind); other configuration packets travel as frames.
        let mut header_key = None;
        let (keyframe, header, composition_time) = match flv::classify(type_id, &payload) {
            MediaClass::Metadata => (true, true, 0),
            MediaClass::Data | MediaClass::Audio => (true, false, 0),
            MediaClass::Video {
                keyframe,
                composition_time,
            } => (keyframe, false, composition_time),
            MediaClass::VideoHeader(k) => {
                header_key = k.is_sequence_start().then_some(k);
                (false, k.is_sequence_start(), 0)
            }
            MediaClass::AudioHeader(k) => {
                header_key = k.is_sequence_start().then_some(k);
                (!k.is_sequence_start(), k.is_sequence_start(), 0)
            }
        };
        let needs_config = match kind {
            MediaKind::Video => VideoInfo::parse(&payload).is_ok_and(|info| {
                info.codec.is_some_and(|c| {
                    c.is_avc() || c.is_hevc() || matches!(c, VideoCodec::FourCc(_))
                })
            }),
            MediaKind::Audio => AudioInfo::parse(&payload).is_ok_and(|info| {
                info.codec.is_aac() || matches!(info.codec, AudioCodec::FourCc(_))
            }),
            MediaKind::Data => false,
        };
        MediaFrame {
            kind,
            timestamp,
            payload,
            keyframe,
            header,
            composition_time,
            needs_config,
            header_key,
        }
    }

    /// The 32-bit timestamp FLV and RTMP carry.
    pub fn wire_timestamp(&self) -> u32 {
        self.timestamp as u32
    }

    /// Which header slot this frame fills, if it is a header.
    pub fn header_slot(&self) -> Option<HeaderSlot> {
        if !self.header {
            return None;
        }
        match self.kind {
            MediaKind::Data => Some(HeaderSlot::Metadata),
            _ => self.header_key.map(HeaderSlot::Config),
        }
    }

    /// The FLV tag type (8, 9 or 18).
    pub fn tag_type(&self) -> u8 {
        match self.kind {
            MediaKind::Audio => flv::TAG_TYPE_AUDIO,
            MediaKind::Video => flv::TAG_TYPE_VIDEO,
            MediaKind::Data => flv::TAG_TYPE_SCRIPT,
        }
    }
}

/// The headers a stream can have: metadata, and each track's decoder configuration. The
/// latest of each is re-sent after a reconnect and put into a source's `streamheader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSlot {
    Metadata,
    /// A sequence start of one track (audio or video, track id, packet type).
    Config(HeaderKey),
}

/// The latest header of each slot, in the order the slots first appeared.
#[derive(Debug, Clone, Default)]
pub struct HeaderSet {
    metadata: Option<MediaFrame>,
    configs: Vec<(HeaderKey, MediaFrame)>,
}

impl HeaderSet {
    /// Keeps `frame` when it is a header (replacing the one of its slot); false otherwise.
    pub fn remember(&mut self, frame: &MediaFrame) -> bool {
        match frame.header_slot() {
            Some(HeaderSlot::Metadata) => self.metadata = Some(frame.clone()),
            Some(HeaderSlot::Config(key)) => {
                match self.configs.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = frame.clone(),
                    None => self.configs.push((key, frame.clone())),
                }
            }
            None => return false,
        }
        true
    }

    /// Whether a configuration of `kind` is here.
    pub fn has(&self, kind: MediaKind) -> bool {
        self.configs.iter().any(|(_, f)| f.kind == kind)
    }

    /// Metadata first, then every track's configuration.
    pub fn iter(&self) -> impl Iterator<Item = &MediaFrame> {
        self.metadata
            .iter()
            .chain(self.configs.iter().map(|(_, f)| f))
    }

    /// Takes them all, in [`HeaderSet::iter`]'s order.
    pub fn take(&mut self) -> Vec<MediaFrame> {
        let out = self.iter().cloned().collect();
        *self = HeaderSet::default();
        out
    }
}

pub use crate::rtmp::flv::{is_metadata, strip_set_data_frame};

/// What stream metadata announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    /// From `hasAudio`, else the presence of `audiocodecid`.
    pub has_audio: bool,
    /// From `hasVideo`, else the presence of `videocodecid`.
    pub has_video: bool,
    /// The audio codec has a sequence header (AAC, or an Enhanced RTMP FourCC).
    pub audio_config: bool,
    /// The video codec has a sequence header (AVC, HEVC, or an Enhanced RTMP FourCC).
    pub video_config: bool,
}

/// Reads `onMetaData` (with or without `@setDataFrame`); `None` when the payload is not
/// readable metadata.
pub fn metadata_info(payload: &[u8]) -> Option<StreamInfo> {
    let rest = payload.strip_prefix(flv::SET_DATA_FRAME).unwrap_or(payload);
    let mut decoder = amf0::Decoder::new(rest);
    if decoder.decode().ok()?.as_str()? != "onMetaData" {
        return None;
    }
    let props = decoder.decode().ok()?;
    let props = props.properties()?;
    let find = |key: &str| props.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let has = |flag: &str, codec: &str| match find(flag).and_then(|v| v.as_bool()) {
        Some(b) => b,
        None => find(codec).is_some(),
    };
    // Codec ids are legacy numbers or, for Enhanced RTMP, FourCC values (all above 255).
    let codec = |key: &str| find(key).and_then(|v| v.as_f64());
    let audio_codec = codec("audiocodecid");
    let video_codec = codec("videocodecid");
    let has_audio = has("hasAudio", "audiocodecid");
    let has_video = has("hasVideo", "videocodecid");
    Some(StreamInfo {
        has_audio,
        has_video,
        audio_config: has_audio
            && audio_codec.is_some_and(|c| c == f64::from(AudioCodec::LEGACY_AAC) || c > 255.0),
        video_config: has_video
            && video_codec.is_some_and(|c| {
                c == f64::from(VideoCodec::LEGACY_AVC)
                    || c == f64::from(VideoCodec::LEGACY_HEVC)
                    || c > 255.0
            }),
    })
}

/// FLV bytes (from `flvmux`, or a file read by `filesrc`) to frames. Input may be split at any
/// byte; the FLV file header is optional and may come again at a tag boundary.
pub struct FlvDemuxer {
    parser: FlvParser,
    timeline: TimelineJoiner,
    /// Tags that carry no audio, video or AMF0 data (AMF3 script data), skipped.
    pub skipped_tags: u64,
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvDemuxer {
    pub fn new() -> Self {
        FlvDemuxer {
            parser: FlvParser::new().require_header(false),
            timeline: TimelineJoiner::new(),
            skipped_tags: 0,
        }
    }

    /// Parses what `data` completes; returns the frames in order, their timestamps as the
    /// tags carry them (extended to 64 bits). An error is fatal for the stream (the FLV
    /// framing is lost).
    pub fn push(&mut self, data: Bytes) -> Result<Vec<MediaFrame>, FlvError> {
        self.push_with(data, false)
    }

    /// Like [`FlvDemuxer::push`] for bytes read from files, whose timestamps start again with
    /// each file (a loop, the next file): the frames continue one timeline
    /// ([`TimelineJoiner`]).
    pub fn push_files(&mut self, data: Bytes) -> Result<Vec<MediaFrame>, FlvError> {
        self.push_with(data, true)
    }

    /// Restarts joined so far (see [`FlvDemuxer::push_files`]).
    pub fn restarts(&self) -> u64 {
        self.timeline.restarts()
    }

    fn push_with(&mut self, data: Bytes, join: bool) -> Result<Vec<MediaFrame>, FlvError> {
        self.parser.push_bytes(data);
        let mut frames = Vec::new();
        while let Some(item) = self.parser.next_item()? {
            let tag = match item {
                FlvItem::Header(_) => {
                    self.timeline.header();
                    continue;
                }
                FlvItem::Tag(tag) => tag,
            };
            let kind = match tag.tag_type {
                flv::TAG_TYPE_AUDIO => MediaKind::Audio,
                flv::TAG_TYPE_VIDEO => MediaKind::Video,
                flv::TAG_TYPE_SCRIPT => MediaKind::Data,
                _ => {
                    self.skipped_tags += 1;
                    continue;
                }
            };
            let timestamp = if join {
                self.timeline.join(tag.tag_type, tag.timestamp)
            } else {
                self.timeline.follow(tag.tag_type, tag.timestamp)
            };
            frames.push(MediaFrame::new(kind, timestamp, tag.data));
        }
        Ok(frames)
    }
}

/// A received message as a frame; `None` for message types that are not media. Data messages
/// lose a leading `@setDataFrame`.
pub fn frame_from_message(msg: &Message, timestamps: &mut TimestampExtender) -> Option<MediaFrame> {
    let kind = match msg.type_id {
        msg_type::AUDIO => MediaKind::Audio,
        msg_type::VIDEO => MediaKind::Video,
        msg_type::DATA_AMF0 => MediaKind::Data,
        _ => return None,
    };
    let payload = match kind {
        MediaKind::Data => strip_set_data_frame(&msg.payload),
        _ => msg.payload.clone(),
    };
    Some(MediaFrame::new(
        kind,
        timestamps.extend(msg.timestamp),
        payload,
    ))
}

/// The FLV file header with PreviousTagSize0.
pub fn flv_header(has_audio: bool, has_video: bool) -> Bytes {
    let mut out = BytesMut::new();
    flv::write_header(&FlvHeader::new(has_audio, has_video), &mut out);
    out.freeze()
}

/// One FLV tag with its PreviousTagSize. Errors only for bodies over 16 MiB − 1, which no
/// RTMP message can carry.
pub fn flv_tag(frame: &MediaFrame) -> Result<Bytes, FlvError> {
    let tag = Tag {
        tag_type: frame.tag_type(),
        timestamp: frame.wire_timestamp(),
        stream_id: 0,
        data: frame.payload.clone(),
    };
    let mut out = BytesMut::new();
    flv::write_tag(&tag, &mut out)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVC_SEQ: &[u8] = &[0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f];
    const AVC_KEY: &[u8] = &[0x17, 0x01, 0, 0, 0x21, 0xaa, 0xbb];
    const AVC_INTER: &[u8] = &[0x27, 0x01, 0, 0, 0x42, 0xcc];
    const AAC_SEQ: &[u8] = &[0xaf, 0x00, 0x11, 0x90];
    const AAC_RAW: &[u8] = &[0xaf, 0x01, 0x21, 0x10];

    fn metadata(with_set_data_frame: bool) -> Bytes {
        let mut values = Vec::new();
        if with_set_data_frame {
            values.push(amf0::Value::from("@setDataFrame"));
        }
        values.push(amf0::Value::from("onMetaData"));
        values.push(amf0::Value::ecma_array([
            ("duration", amf0::Value::Number(0.0)),
            ("videocodecid", amf0::Value::Number(7.0)),
        ]));
        amf0::encode_all(&values)
    }

    fn frame(kind: MediaKind, ts: u64, body: &[u8]) -> MediaFrame {
        MediaFrame::new(kind, ts, Bytes::copy_from_slice(body))
    }

    #[test]
    fn frames_are_classified() {
        let seq = frame(MediaKind::Video, 0, AVC_SEQ);
        assert!(seq.header && !seq.keyframe);
        assert!(
            matches!(seq.header_slot(), Some(HeaderSlot::Config(k)) if k.type_id == 9 && k.track == 0)
        );
        let key = frame(MediaKind::Video, 0, AVC_KEY);
        assert!(key.keyframe && !key.header);
        assert_eq!(key.composition_time, 0x21);
        let inter = frame(MediaKind::Video, 0, AVC_INTER);
        assert!(!inter.keyframe && !inter.header);
        assert!(inter.needs_config);
        // Sorenson H.263 (codec 2) and MP3 (format 2) have no sequence header.
        assert!(!frame(MediaKind::Video, 0, &[0x22, 0x00]).needs_config);
        assert!(!frame(MediaKind::Audio, 0, &[0x2f, 0xff]).needs_config);
        assert_eq!(inter.composition_time, 0x42);
        let aseq = frame(MediaKind::Audio, 0, AAC_SEQ);
        assert!(aseq.header && aseq.needs_config);
        assert!(matches!(aseq.header_slot(), Some(HeaderSlot::Config(k)) if k.type_id == 8));
        assert!(frame(MediaKind::Audio, 0, AAC_RAW).keyframe);
        let meta = MediaFrame::new(MediaKind::Data, 0, metadata(false));
        assert_eq!(meta.header_slot(), Some(HeaderSlot::Metadata));
        assert!(MediaFrame::new(MediaKind::Data, 0, metadata(true)).header);
        // Unclassifiable bodies pass as plain frames.
        let empty = frame(MediaKind::Video, 0, &[]);
        assert!(!empty.keyframe && !empty.header);
    }

    #[test]
    fn metadata_info_reads_codec_ids_and_flags() {
        let video_only = StreamInfo {
            has_audio: false,
            has_video: true,
            audio_config: false,
            video_config: true,
        };
        assert_eq!(metadata_info(&metadata(false)), Some(video_only));
        assert_eq!(metadata_info(&metadata(true)), Some(video_only));
        let flags = amf0::encode_all(&[
            amf0::Value::from("onMetaData"),
            amf0::Value::object([
                ("hasAudio", amf0::Value::Boolean(true)),
                ("hasVideo", amf0::Value::Boolean(false)),
                ("videocodecid", amf0::Value::Number(7.0)),
                ("audiocodecid", amf0::Value::Number(2.0)),
            ]),
        ]);
        assert_eq!(
            metadata_info(&flags),
            Some(StreamInfo {
                has_audio: true,
                has_video: false,
                audio_config: false,
                video_config: false,
            })
        );
        let fourcc = amf0::encode_all(&[
            amf0::Value::from("onMetaData"),
            amf0::Value::ecma_array([
                ("audiocodecid", amf0::Value::Number(1_332_770_163.0)),
                ("videocodecid", amf0::Value::Number(1_635_135_537.0)),
            ]),
        ]);
        let info = metadata_info(&fourcc).unwrap();
        assert!(info.audio_config && info.video_config);
        assert_eq!(metadata_info(b"\x02\x00\x03foo"), None);
        assert_eq!(metadata_info(b""), None);
    }

    #[test]
    fn set_data_frame_is_stripped_only_when_present() {
        let with = metadata(true);
        let without = metadata(false);
        assert_eq!(strip_set_data_frame(&with), without);
        assert_eq!(strip_set_data_frame(&without), without);
    }

    fn flv_stream(frames: &[MediaFrame]) -> Vec<u8> {
        let mut out = flv_header(true, true).to_vec();
        for f in frames {
            out.extend_from_slice(&flv_tag(f).unwrap());
        }
        out
    }

    #[test]
    fn flv_bytes_split_anywhere_give_the_same_frames() {
        let frames = vec![
            MediaFrame::new(MediaKind::Data, 0, metadata(false)),
            frame(MediaKind::Video, 0, AVC_SEQ),
            frame(MediaKind::Audio, 0, AAC_SEQ),
            frame(MediaKind::Video, 0, AVC_KEY),
            frame(MediaKind::Audio, 21, AAC_RAW),
            frame(MediaKind::Video, 33, AVC_INTER),
        ];
        let bytes = flv_stream(&frames);
        for split in [1usize, 2, 3, 7, 13, 50, bytes.len()] {
            let mut demux = FlvDemuxer::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(split) {
                got.extend(demux.push(Bytes::copy_from_slice(piece)).unwrap());
            }
            assert_eq!(got, frames, "split every {split} bytes");
        }
    }

    #[test]
    fn tags_without_a_file_header_are_accepted() {
        let f = frame(MediaKind::Video, 5, AVC_KEY);
        let mut demux = FlvDemuxer::new();
        let got = demux.push(flv_tag(&f).unwrap()).unwrap();
        assert_eq!(got, vec![f]);
    }

    #[test]
    fn timestamps_extend_across_the_32_bit_wrap() {
        let mut demux = FlvDemuxer::new();
        let near = frame(MediaKind::Audio, u64::from(u32::MAX) - 10, AAC_RAW);
        let mut after = frame(MediaKind::Audio, 20, AAC_RAW);
        let mut bytes = flv_tag(&near).unwrap().to_vec();
        bytes.extend_from_slice(&flv_tag(&after).unwrap());
        let got = demux.push(Bytes::from(bytes)).unwrap();
        after.timestamp = (1u64 << 32) + 20;
        assert_eq!(got, vec![near, after]);
    }

    #[test]
    fn files_read_one_after_another_continue_one_timeline() {
        let frames = vec![
            MediaFrame::new(MediaKind::Data, 0, metadata(false)),
            frame(MediaKind::Video, 0, AVC_SEQ),
            frame(MediaKind::Video, 0, AVC_KEY),
            frame(MediaKind::Video, 33, AVC_INTER),
        ];
        let mut twice = flv_stream(&frames);
        twice.extend_from_slice(&flv_stream(&frames));
        let times =
            |frames: Vec<MediaFrame>| -> Vec<u64> { frames.iter().map(|f| f.timestamp).collect() };
        // From files: the second one starts one frame interval after the first ended.
        let mut demux = FlvDemuxer::new();
        let got = demux.push_files(Bytes::from(twice.clone())).unwrap();
        assert_eq!(times(got), [0, 0, 0, 33, 66, 66, 66, 99]);
        assert_eq!(demux.restarts(), 1);
        // From a muxer: its timestamps as they are.
        let mut demux = FlvDemuxer::new();
        let got = demux.push(Bytes::from(twice)).unwrap();
        assert_eq!(times(got), [0, 0, 0, 33, 0, 0, 0, 33]);
        assert_eq!(demux.restarts(), 0);
    }

    #[test]
    fn messages_become_frames_with_extended_timestamps() {
        let mut ext = TimestampExtender::new();
        let msg = |type_id, timestamp, payload: Bytes| Message {
            type_id,
            timestamp,
            stream_id: 1,
            payload,
        };
        let f = frame_from_message(&msg(msg_type::DATA_AMF0, 0, metadata(true)), &mut ext).unwrap();
        assert_eq!(f.payload, metadata(false));
        let f = frame_from_message(
            &msg(msg_type::VIDEO, u32::MAX, Bytes::from_static(AVC_KEY)),
            &mut ext,
        )
        .unwrap();
        assert_eq!(f.timestamp, u64::from(u32::MAX));
        let f = frame_from_message(
            &msg(msg_type::AUDIO, 5, Bytes::from_static(AAC_RAW)),
            &mut ext,
        )
        .unwrap();
        assert_eq!(f.timestamp, (1u64 << 32) + 5);
        assert!(
            frame_from_message(&msg(msg_type::COMMAND_AMF0, 0, Bytes::new()), &mut ext).is_none()
        );
    }

    #[test]
    fn header_and_tag_bytes_match_the_flv_layout() {
        let h = flv_header(true, false);
        assert_eq!(&h[..], b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00");
        let t = flv_tag(&frame(MediaKind::Audio, 0x0102_0304, AAC_RAW)).unwrap();
        assert_eq!(
            &t[..11],
            &[0x08, 0, 0, 4, 0x02, 0x03, 0x04, 0x01, 0, 0, 0],
            "type, size, timestamp low 24 bits, extension byte, stream id"
        );
        assert_eq!(&t[11..15], AAC_RAW);
        assert_eq!(&t[15..], &[0, 0, 0, 15]);
    }
}
