//! What a legacy FLV reader can take out of an Enhanced RTMP stream.
//!
//! GStreamer's `flvdemux` before 1.28 (and every FLV reader of the same age) fails on the first
//! tag with an Enhanced RTMP header: a FourCC instead of a codec id, a multitrack wrapper, a
//! ModEx prefix. A publisher moving to HEVC or to a second audio track must not stop such a
//! pipeline, so the RTMP sources can give it the part it understands: [`legacy_body`] says of
//! one tag body whether it passes as it is, passes rewritten (track 0 of H.264, AAC or MP3
//! sent with FourCC signalling becomes the legacy tag it is equivalent to), or is dropped; a
//! [`LegacyFilter`] applies that to a stream, reports each dropped track once, and tells when
//! nothing legacy is left to forward. [`needs`] and [`Accept`] are the same question for a
//! player that announced some of Enhanced RTMP: what a message needs, what the player takes.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::eflv::{self, Codec, LegacyAudio, MediaKind, Packet, PacketKind};
use crate::flv::{
    AudioCodec, AudioInfo, FourCc, TAG_TYPE_AUDIO, TAG_TYPE_VIDEO, VideoCodec, VideoInfo,
};
use crate::session::caps::{self, EnhancedCaps};

/// Legacy video codec ids a legacy reader knows: H.263 (2) to AVC (7).
const LEGACY_VIDEO_IDS: std::ops::RangeInclusive<u8> = 2..=7;
/// The SoundFormat value that marks an Enhanced RTMP audio header.
const AUDIO_EX_HEADER: u8 = 9;
/// Legacy SoundFormat of MP3.
const LEGACY_MP3: u8 = 2;
/// The packet type of a ModEx prefix (video and audio alike).
const MODEX: u8 = 7;
/// How long a stream may go on with every media tag dropped before it counts as having
/// nothing legacy in it (its first tags may be the dropped kind while the legacy one follows).
pub const NOTHING_LEFT_AFTER_MS: u64 = 2000;

/// A track a legacy reader cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroppedTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// The track id (0 unless the packet came in a multitrack wrapper).
    pub track: u8,
    /// The codec as signalled; `None` when the tag did not parse.
    pub codec: Option<Codec>,
}

/// A codec's common name, for messages: "HEVC" for `hvc1`.
pub fn codec_name(codec: Codec) -> String {
    let fourcc = match codec {
        Codec::Video(VideoCodec::FourCc(f)) | Codec::Audio(AudioCodec::FourCc(f)) => f,
        Codec::Video(VideoCodec::Legacy(id)) => {
            return match id {
                VideoCodec::LEGACY_AVC => "H.264".into(),
                VideoCodec::LEGACY_HEVC => "HEVC (legacy codec id 12)".into(),
                id => format!("video codec id {id}"),
            };
        }
        Codec::Audio(AudioCodec::Legacy(id)) => return format!("sound format {id}"),
    };
    let name = match fourcc {
        FourCc::AVC1 => "H.264",
        FourCc::HVC1 => "HEVC",
        FourCc::VVC1 => "VVC",
        FourCc::AV01 => "AV1",
        FourCc::VP09 => "VP9",
        FourCc::VP08 => "VP8",
        FourCc::MP4A => "AAC",
        FourCc::OPUS => "Opus",
        FourCc::FLAC => "FLAC",
        FourCc::MP3 => "MP3",
        FourCc::AC3 => "AC-3",
        FourCc::EAC3 => "E-AC-3",
        other => return format!("'{other}'"),
    };
    format!("{name} ('{fourcc}')")
}

impl fmt::Display for DroppedTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.name();
        match self.codec {
            Some(codec) => write!(f, "{kind} track {} {}", self.track, codec_name(codec)),
            None => write!(
                f,
                "{kind} track {} (an Enhanced RTMP tag that does not parse)",
                self.track
            ),
        }
    }
}

/// What to do with one tag body for a legacy reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyBody {
    /// Pass it on unchanged: legacy signalling, or not audio/video.
    Keep,
    /// Pass this instead: track 0 rewritten with legacy signalling.
    Rewritten(Bytes),
    /// Nothing a legacy reader can take.
    Drop,
}

/// Decides what a legacy reader gets of one tag body, and appends to `dropped` every track
/// left out. Codec-less tags (video command frames, script data) are kept.
pub fn legacy_body(tag_type: u8, body: &[u8], dropped: &mut Vec<DroppedTrack>) -> LegacyBody {
    let kind = match tag_type {
        TAG_TYPE_VIDEO => MediaKind::Video,
        TAG_TYPE_AUDIO => MediaKind::Audio,
        _ => return LegacyBody::Keep,
    };
    let Some(&first) = body.first() else {
        return LegacyBody::Keep;
    };
    let enhanced = match kind {
        MediaKind::Video => first & 0x80 != 0,
        MediaKind::Audio => first >> 4 == AUDIO_EX_HEADER,
    };
    if !enhanced {
        if kind == MediaKind::Video && !LEGACY_VIDEO_IDS.contains(&(first & 0x0f)) {
            // A command frame (FrameType 5) has no codec; anything else outside the legacy
            // range (FFmpeg's HEVC id 12) is not readable by a legacy reader.
            if first >> 4 != 5 {
                dropped.push(DroppedTrack {
                    kind,
                    track: 0,
                    codec: Some(Codec::Video(VideoCodec::Legacy(first & 0x0f))),
                });
                return LegacyBody::Drop;
            }
        }
        return LegacyBody::Keep;
    }
    let parsed = match eflv::parse_tag(tag_type, body) {
        Ok(p) => p,
        Err(_) => {
            dropped.push(DroppedTrack {
                kind,
                track: 0,
                codec: None,
            });
            return LegacyBody::Drop;
        }
    };
    if parsed.packets.is_empty() {
        // A video command frame in enhanced form: legacy readers take the legacy one only.
        return LegacyBody::Drop;
    }
    let mut kept = None;
    for p in &parsed.packets {
        match as_legacy(p) {
            Some(legacy) if p.track == 0 && kept.is_none() => kept = Some(legacy),
            _ => dropped.push(DroppedTrack {
                kind,
                track: p.track,
                codec: Some(p.codec),
            }),
        }
    }
    let Some(legacy) = kept else {
        return LegacyBody::Drop;
    };
    let mut out = BytesMut::with_capacity(legacy.data.len() + 5);
    match eflv::write_packet(&legacy, &mut out) {
        Ok(()) => LegacyBody::Rewritten(out.freeze()),
        Err(_) => LegacyBody::Drop,
    }
}

/// The legacy form of a packet, for the codecs that have one (H.264, AAC, MP3), when the
/// packet kind exists in legacy signalling.
fn as_legacy<'a>(p: &Packet<'a>) -> Option<Packet<'a>> {
    let (codec, legacy_audio) = match p.codec {
        Codec::Video(VideoCodec::FourCc(FourCc::AVC1)) => (
            Codec::Video(VideoCodec::Legacy(VideoCodec::LEGACY_AVC)),
            None,
        ),
        // The header flags of AAC are fixed (44 kHz, 16-bit, stereo): readers take the rate and
        // channels from the AudioSpecificConfig. MP3 readers parse the frame headers.
        Codec::Audio(AudioCodec::FourCc(FourCc::MP4A)) => (
            Codec::Audio(AudioCodec::Legacy(AudioCodec::LEGACY_AAC)),
            Some(STEREO_44K_16BIT),
        ),
        Codec::Audio(AudioCodec::FourCc(FourCc::MP3)) => (
            Codec::Audio(AudioCodec::Legacy(LEGACY_MP3)),
            Some(STEREO_44K_16BIT),
        ),
        _ => return None,
    };
    let legacy_kinds: &[PacketKind] = match codec {
        Codec::Audio(AudioCodec::Legacy(LEGACY_MP3)) => &[PacketKind::CodedFrames],
        Codec::Audio(_) => &[PacketKind::SequenceStart, PacketKind::CodedFrames],
        Codec::Video(_) => &[
            PacketKind::SequenceStart,
            PacketKind::CodedFrames,
            PacketKind::SequenceEnd,
        ],
    };
    if !legacy_kinds.contains(&p.kind) || !(1..=4).contains(&p.frame_type) {
        return None;
    }
    Some(Packet {
        codec,
        legacy_audio,
        multitrack: false,
        nanos: 0,
        ..*p
    })
}

const STEREO_44K_16BIT: LegacyAudio = LegacyAudio {
    rate: 3,
    sixteen_bit: true,
    stereo: true,
};

/// What [`LegacyFilter::filter`] made of one tag.
#[derive(Debug)]
pub struct Filtered {
    /// What to pass on.
    pub body: LegacyBody,
    /// Tracks dropped for the first time (each is reported once per stream).
    pub newly_dropped: Vec<DroppedTrack>,
    /// Set once: for [`NOTHING_LEFT_AFTER_MS`] of stream time every media tag was dropped.
    pub nothing_left: bool,
}

/// [`legacy_body`] over a stream: remembers the tracks already reported and watches whether
/// anything legacy comes at all.
#[derive(Debug, Default)]
pub struct LegacyFilter {
    reported: Vec<DroppedTrack>,
    /// A media tag went through.
    legacy_media: bool,
    /// Timestamp of the first dropped media tag.
    first_drop: Option<u64>,
    nothing_left_told: bool,
    scratch: Vec<DroppedTrack>,
}

impl LegacyFilter {
    /// A filter for a new stream.
    pub fn new() -> LegacyFilter {
        LegacyFilter::default()
    }

    /// Forgets the stream (a new publisher): tracks are reported again.
    pub fn reset(&mut self) {
        *self = LegacyFilter::default();
    }

    /// Filters one tag (`timestamp` in ms, any base, increasing).
    pub fn filter(&mut self, tag_type: u8, timestamp: u64, body: &[u8]) -> Filtered {
        self.scratch.clear();
        let mut out = Filtered {
            body: legacy_body(tag_type, body, &mut self.scratch),
            newly_dropped: Vec::new(),
            nothing_left: false,
        };
        for d in self.scratch.drain(..) {
            if !self.reported.contains(&d) {
                self.reported.push(d);
                out.newly_dropped.push(d);
            }
        }
        let media = matches!(tag_type, TAG_TYPE_AUDIO | TAG_TYPE_VIDEO);
        let dropped = out.body == LegacyBody::Drop;
        if media && !dropped && !is_command_frame(tag_type, body) {
            self.legacy_media = true;
        }
        if media && dropped {
            let first = *self.first_drop.get_or_insert(timestamp);
            if timestamp.saturating_sub(first) >= NOTHING_LEFT_AFTER_MS {
                out.nothing_left = self.tell_nothing_left();
            }
        }
        out
    }

    /// At the end of a stream: whether it had media, all of it dropped (told once).
    pub fn finish(&mut self) -> bool {
        self.first_drop.is_some() && self.tell_nothing_left()
    }

    /// Every track dropped so far.
    pub fn dropped(&self) -> &[DroppedTrack] {
        &self.reported
    }

    fn tell_nothing_left(&mut self) -> bool {
        if self.legacy_media || self.nothing_left_told {
            return false;
        }
        self.nothing_left_told = true;
        true
    }
}

/// A legacy video command frame: it carries no media, so it does not count as legacy media.
fn is_command_frame(tag_type: u8, body: &[u8]) -> bool {
    tag_type == TAG_TYPE_VIDEO && body.first().is_some_and(|b| b >> 4 == 5)
}

/// What a reader must understand to take one message: its FourCC (none for legacy
/// signalling), a multitrack wrapper, a ModEx prefix. The strict fan-out policy gives a player
/// only the messages its `connect` announced it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// The codec's FourCC, when the message uses FourCC signalling.
    pub fourcc: Option<FourCc>,
    /// A multitrack wrapper (any track other than 0 comes in one).
    pub multitrack: bool,
    /// A ModEx prefix (the nanosecond timestamp offset).
    pub modex: bool,
}

impl Needs {
    /// Nothing beyond legacy FLV.
    pub fn is_legacy(&self) -> bool {
        *self == Needs::default()
    }
}

/// What an audio or video message needs of its reader; others need nothing.
pub fn needs(tag_type: u8, body: &[u8]) -> Needs {
    match tag_type {
        TAG_TYPE_VIDEO => match VideoInfo::parse(body) {
            Ok(v) if v.is_ex_header => Needs {
                fourcc: match v.codec {
                    Some(VideoCodec::FourCc(f)) => Some(f),
                    _ => None,
                },
                multitrack: v.multitrack.is_some(),
                modex: body.first().is_some_and(|b| b & 0x0f == MODEX),
            },
            _ => Needs::default(),
        },
        TAG_TYPE_AUDIO => match AudioInfo::parse(body) {
            Ok(a) if a.sound_format == AUDIO_EX_HEADER => Needs {
                fourcc: match a.codec {
                    AudioCodec::FourCc(f) => Some(f),
                    AudioCodec::Legacy(_) => None,
                },
                multitrack: a.multitrack.is_some(),
                modex: body.first().is_some_and(|b| b & 0x0f == MODEX),
            },
            _ => Needs::default(),
        },
        _ => Needs::default(),
    }
}

/// What one reader takes under the strict policy, from what its `connect` announced:
/// precomputed, so that checking a message is a few comparisons.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accept {
    /// Every FourCC (`*`).
    any_fourcc: bool,
    fourccs: Vec<FourCc>,
    multitrack: bool,
    modex: bool,
}

impl Accept {
    /// From a reader's announcement; `None` (a legacy reader) takes legacy FLV only.
    pub fn from_caps(caps: Option<&EnhancedCaps>) -> Accept {
        let Some(caps) = caps else {
            return Accept::default();
        };
        let codecs = caps.codecs();
        Accept {
            any_fourcc: codecs.contains(&"*"),
            fourccs: caps::VIDEO_FOURCCS
                .iter()
                .chain(caps::AUDIO_FOURCCS)
                .copied()
                .filter(|f| caps.supports(*f))
                .collect(),
            multitrack: caps.has(caps::CAPS_MULTITRACK),
            modex: caps.has(caps::CAPS_MODEX),
        }
    }

    /// Whether the reader takes a message that needs `n`.
    pub fn takes(&self, n: &Needs) -> bool {
        let codec = match n.fourcc {
            None => true,
            Some(f) => self.any_fourcc || self.fourccs.contains(&f),
        };
        codec && (!n.multitrack || self.multitrack) && (!n.modex || self.modex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(kind_byte: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![kind_byte];
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn legacy_tags_pass_unchanged() {
        let mut d = Vec::new();
        for (t, body) in [
            (9u8, &[0x17u8, 0, 0, 0, 0, 1][..]),
            (9, &[0x27, 1, 0, 0, 0x21, 9]),
            (8, &[0xAF, 1, 5]),
            (8, &[0x2F, 0xFF, 0xFB]),
            (18, b"\x02\x00\x0aonMetaData"),
            (9, &[0x52, 0]),
        ] {
            assert_eq!(legacy_body(t, body, &mut d), LegacyBody::Keep, "{body:?}");
        }
        assert!(d.is_empty());
    }

    #[test]
    fn hevc_is_dropped_and_named() {
        let mut d = Vec::new();
        // Keyframe, CodedFramesX, hvc1.
        let body = video(0x93, b"hvc1\x00\x00\x00\x01");
        assert_eq!(legacy_body(9, &body, &mut d), LegacyBody::Drop);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to_string(), "video track 0 HEVC ('hvc1')");
        // FFmpeg's legacy id 12 for HEVC is no better for a legacy reader.
        d.clear();
        assert_eq!(
            legacy_body(9, &[0x1C, 1, 0, 0, 0], &mut d),
            LegacyBody::Drop
        );
        assert_eq!(d[0].to_string(), "video track 0 HEVC (legacy codec id 12)");
    }

    #[test]
    fn enhanced_avc_on_track_0_becomes_the_legacy_tag() {
        let mut d = Vec::new();
        // Keyframe CodedFrames avc1, composition time 0x000021.
        let body = video(0x91, b"avc1\x00\x00\x21\xAA\xBB");
        assert_eq!(
            legacy_body(9, &body, &mut d),
            LegacyBody::Rewritten(Bytes::from_static(&[0x17, 1, 0, 0, 0x21, 0xAA, 0xBB]))
        );
        // SequenceStart.
        let body = video(0x90, b"avc1\x01\x64");
        assert_eq!(
            legacy_body(9, &body, &mut d),
            LegacyBody::Rewritten(Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]))
        );
        // AAC with FourCC signalling: SequenceStart, CodedFrames.
        assert_eq!(
            legacy_body(8, b"\x90mp4a\x12\x10", &mut d),
            LegacyBody::Rewritten(Bytes::from_static(&[0xAF, 0, 0x12, 0x10]))
        );
        assert_eq!(
            legacy_body(8, b"\x91mp4a\x21", &mut d),
            LegacyBody::Rewritten(Bytes::from_static(&[0xAF, 1, 0x21]))
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn a_second_aac_track_is_dropped_track_0_of_a_multitrack_tag_kept() {
        let mut d = Vec::new();
        // OneTrack multitrack (0x95 = ex header, packet type 5 Multitrack; then
        // AvMultitrackType 0 | inner packet type 1), mp4a, track 1.
        let one = b"\x95\x01mp4a\x01\x21\x22";
        assert_eq!(legacy_body(8, one, &mut d), LegacyBody::Drop);
        assert_eq!(d[0].to_string(), "audio track 1 AAC ('mp4a')");
        // ManyTracks: mp4a, track 0 (2 bytes) and track 1 (1 byte).
        d.clear();
        let many = b"\x95\x11mp4a\x00\x00\x00\x02\xA1\xA2\x01\x00\x00\x01\xB1";
        assert_eq!(
            legacy_body(8, many, &mut d),
            LegacyBody::Rewritten(Bytes::from_static(&[0xAF, 1, 0xA1, 0xA2]))
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].track, 1);
    }

    #[test]
    fn garbage_with_an_enhanced_header_is_dropped() {
        let mut d = Vec::new();
        assert_eq!(legacy_body(9, &[0x9F], &mut d), LegacyBody::Drop);
        assert_eq!(d[0].codec, None);
        assert!(d[0].to_string().contains("does not parse"));
    }

    #[test]
    fn the_filter_reports_each_track_once_and_tells_when_nothing_is_left() {
        let mut f = LegacyFilter::new();
        let hevc = Bytes::from(video(0x93, b"hvc1\x00\x00\x00\x01"));
        let first = f.filter(9, 0, &hevc);
        assert_eq!(first.body, LegacyBody::Drop);
        assert_eq!(first.newly_dropped.len(), 1);
        assert!(!first.nothing_left);
        assert!(f.filter(9, 1000, &hevc).newly_dropped.is_empty());
        let meta = Bytes::from_static(b"\x02\x00\x0aonMetaData");
        assert_eq!(f.filter(18, 1500, &meta).body, LegacyBody::Keep);
        assert!(f.filter(9, 2000, &hevc).nothing_left, "told after 2 s");
        assert!(!f.filter(9, 2033, &hevc).nothing_left, "told once");
        assert!(!f.finish());
        f.reset();
        assert_eq!(f.filter(9, 0, &hevc).newly_dropped.len(), 1, "new stream");
        assert!(f.finish(), "a stream that ended with nothing legacy");
    }

    #[test]
    fn legacy_media_beside_the_dropped_track_is_not_nothing_left() {
        let mut f = LegacyFilter::new();
        let hevc = Bytes::from(video(0x93, b"hvc1\x00\x00\x00\x01"));
        let aac = Bytes::from_static(&[0xAF, 1, 5]);
        f.filter(9, 0, &hevc);
        assert_eq!(f.filter(8, 10, &aac).body, LegacyBody::Keep);
        for ts in (0..10_000).step_by(33) {
            assert!(!f.filter(9, ts, &hevc).nothing_left);
        }
        assert!(!f.finish());
        assert_eq!(f.dropped().len(), 1);
    }
    #[test]
    fn needs_name_the_fourcc_the_wrapper_and_modex() {
        assert!(needs(9, &[0x17, 1, 0, 0, 0, 9]).is_legacy());
        assert!(needs(8, &[0xAF, 1, 5]).is_legacy());
        assert!(needs(18, b"\x02\x00\x0aonMetaData").is_legacy());
        let hevc = needs(9, b"\x93hvc1\x00\x00\x00\x01");
        assert_eq!(hevc.fourcc, Some(FourCc::HVC1));
        assert!(!hevc.multitrack && !hevc.modex);
        let second_aac = needs(8, b"\x95\x01mp4a\x01\x21\x22");
        assert_eq!(second_aac.fourcc, Some(FourCc::MP4A));
        assert!(second_aac.multitrack);
        // ModEx: size byte 2 (three bytes follow), the nanoseconds, then ModExType 0 with the
        // next packet type, CodedFramesX.
        let modex = needs(9, b"\x97\x02\x00\x00\x10\x03hvc1\x00\x00\x00\x01");
        assert!(modex.modex, "{modex:?}");
    }

    #[test]
    fn accept_follows_the_announcement() {
        let hevc = Needs {
            fourcc: Some(FourCc::HVC1),
            ..Needs::default()
        };
        let track1 = Needs {
            fourcc: Some(FourCc::MP4A),
            multitrack: true,
            modex: false,
        };
        let legacy = Accept::from_caps(None);
        assert!(legacy.takes(&Needs::default()));
        assert!(!legacy.takes(&hevc) && !legacy.takes(&track1));
        let ffmpeg = EnhancedCaps {
            fourcc_list: vec!["hvc1".into(), "mp4a".into()],
            ..EnhancedCaps::default()
        };
        let a = Accept::from_caps(Some(&ffmpeg));
        assert!(a.takes(&hevc));
        assert!(!a.takes(&track1), "no capsEx Multitrack");
        let ours = EnhancedCaps::for_codecs(
            &[FourCc::HVC1, FourCc::MP4A],
            caps::CAN_DECODE,
            caps::CAPS_MULTITRACK,
        );
        assert!(Accept::from_caps(Some(&ours)).takes(&track1));
        let any = EnhancedCaps {
            video: vec![("*".into(), caps::CAN_FORWARD)],
            ..EnhancedCaps::default()
        };
        assert!(Accept::from_caps(Some(&any)).takes(&hevc));
    }
}
