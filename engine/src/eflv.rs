//! Enhanced FLV at the packet level: every track of an audio or video tag body, both ways.
//!
//! [`crate::flv::VideoInfo`] and [`crate::flv::AudioInfo`] look at the first bytes of a tag
//! (what a relay needs: is it a header, a keyframe, which track). A demuxer needs all of it:
//! a multitrack message may carry several tracks, each with its own codec and payload, and
//! must be read to the end. [`parse_tag`] does that; [`write_packet`] and [`write_tracks`]
//! build tag bodies from packets, legacy or Enhanced RTMP as the codec says.
//!
//! Wire format: legacy FLV 10.1 video/audio tag headers, Enhanced RTMP v1 (video FourCC,
//! Metadata) and v2 (audio FourCC, multitrack in all three layouts, ModEx with
//! TimestampOffsetNano, MultichannelConfig).

use bytes::{BufMut, BytesMut};

use crate::flv::{AudioCodec, CodecError, Cursor as Reader, FourCc, MultitrackType, VideoCodec};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// FLV tag type 8.
    Audio,
    /// FLV tag type 9.
    Video,
}

impl MediaKind {
    /// The FLV tag type / RTMP message type.
    pub fn tag_type(self) -> u8 {
        match self {
            MediaKind::Audio => crate::flv::TAG_TYPE_AUDIO,
            MediaKind::Video => crate::flv::TAG_TYPE_VIDEO,
        }
    }

    /// "audio" or "video", for messages and pad names.
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// The codec of one packet, in the signalling it used (legacy id or FourCC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// A video codec.
    Video(VideoCodec),
    /// An audio codec.
    Audio(AudioCodec),
}

impl Codec {
    /// Audio or video.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Video(_) => MediaKind::Video,
            Codec::Audio(_) => MediaKind::Audio,
        }
    }

    /// The FourCC, if the codec was signalled with one.
    pub fn fourcc(self) -> Option<FourCc> {
        match self {
            Codec::Video(VideoCodec::FourCc(f)) | Codec::Audio(AudioCodec::FourCc(f)) => Some(f),
            _ => None,
        }
    }

    /// Whether coded frames carry an SI24 composition time: legacy AVC and HEVC (id 12), and
    /// the FourCCs avc1, hvc1, vvc1.
    pub fn has_composition_time(self) -> bool {
        match self {
            Codec::Video(VideoCodec::Legacy(id)) => {
                id == VideoCodec::LEGACY_AVC || id == VideoCodec::LEGACY_HEVC
            }
            Codec::Video(VideoCodec::FourCc(f)) => f.has_composition_time(),
            Codec::Audio(_) => false,
        }
    }

    /// Whether the legacy header has a packet-type byte (AVC/HEVC video, AAC audio).
    fn legacy_has_packet_type(self) -> bool {
        match self {
            Codec::Video(VideoCodec::Legacy(id)) => {
                id == VideoCodec::LEGACY_AVC || id == VideoCodec::LEGACY_HEVC
            }
            Codec::Audio(AudioCodec::Legacy(id)) => id == AudioCodec::LEGACY_AAC,
            _ => false,
        }
    }
}

/// What one packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Decoder configuration record (legacy AVC/AAC packet type 0, SequenceStart).
    SequenceStart,
    /// Coded frames (CodedFrames and CodedFramesX; every frame of legacy codecs without a
    /// packet type).
    CodedFrames,
    /// End of the track's sequence.
    SequenceEnd,
    /// Video metadata (AMF `colorInfo`).
    Metadata,
    /// AV1 MPEG-2 TS descriptor, in place of a SequenceStart.
    Mpeg2TsSequenceStart,
    /// Audio channel layout.
    MultichannelConfig,
}

/// Legacy audio header flags (SoundRate, SoundSize, SoundType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LegacyAudio {
    /// SoundRate: 0 5.5 kHz, 1 11 kHz, 2 22 kHz, 3 44 kHz.
    pub rate: u8,
    /// SoundSize: true for 16-bit samples.
    pub sixteen_bit: bool,
    /// SoundType: true for stereo.
    pub stereo: bool,
}

/// One track's packet of an audio or video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The track (0 unless the packet came in a multitrack wrapper).
    pub track: u8,
    /// The codec.
    pub codec: Codec,
    /// What the packet is.
    pub kind: PacketKind,
    /// Video FrameType (1 key, 2 inter, 3 disposable, 4 generated key); 1 for audio.
    pub frame_type: u8,
    /// Composition time offset in ms (PTS − DTS); 0 where the codec has none.
    pub composition_time: i32,
    /// ModEx TimestampOffsetNano (0..999 999 ns), added to the tag timestamp.
    pub nanos: u32,
    /// Legacy audio flags, for legacy audio codecs.
    pub legacy_audio: Option<LegacyAudio>,
    /// Whether the packet came in a multitrack wrapper (write it back the same way).
    pub multitrack: bool,
    /// The codec payload: configuration record, coded data, AMF metadata, channel config.
    pub data: &'a [u8],
}

impl Packet<'_> {
    /// A video keyframe (FrameType 1 or 4), or any audio packet.
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame_type, 1 | 4)
    }

    /// Audio or video.
    pub fn media(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// What a tag body turned into: its packets, or a video command frame (seek markers), which
/// carries no media.
#[derive(Debug, Default)]
pub struct ParsedTag<'a> {
    /// The packets, one per track, in message order.
    pub packets: Vec<Packet<'a>>,
    /// The command byte of a video command frame (0 start of seek, 1 end of seek).
    pub command: Option<u8>,
}

/// The most tracks one multitrack message may carry before it is refused (a track id is one
/// byte, so a message with more entries than that repeats ids).
pub const MAX_TRACKS_PER_MESSAGE: usize = 256;

const VIDEO_MULTITRACK: u8 = 6;
const AUDIO_MULTITRACK: u8 = 5;
const MODEX: u8 = 7;
const AUDIO_EX_HEADER: u8 = 9;

fn video_packet_kind(value: u8) -> Result<(PacketKind, bool), CodecError> {
    // The bool: whether this is CodedFrames with an explicit composition time field.
    Ok(match value {
        0 => (PacketKind::SequenceStart, false),
        1 => (PacketKind::CodedFrames, true),
        2 => (PacketKind::SequenceEnd, false),
        3 => (PacketKind::CodedFrames, false),
        4 => (PacketKind::Metadata, false),
        5 => (PacketKind::Mpeg2TsSequenceStart, false),
        value => {
            return Err(CodecError::ReservedPacketType {
                kind: "video",
                value,
            });
        }
    })
}

fn audio_packet_kind(value: u8) -> Result<PacketKind, CodecError> {
    Ok(match value {
        0 => PacketKind::SequenceStart,
        1 => PacketKind::CodedFrames,
        2 => PacketKind::SequenceEnd,
        4 => PacketKind::MultichannelConfig,
        value => {
            return Err(CodecError::ReservedPacketType {
                kind: "audio",
                value,
            });
        }
    })
}

/// Parses a whole audio (8) or video (9) tag body into its packets. Other tag types give
/// nothing. Errors name the field that did not fit or the reserved value.
pub fn parse_tag(tag_type: u8, body: &[u8]) -> Result<ParsedTag<'_>, CodecError> {
    let mut out = ParsedTag::default();
    match tag_type {
        crate::flv::TAG_TYPE_VIDEO => parse_video(body, &mut out)?,
        crate::flv::TAG_TYPE_AUDIO => parse_audio(body, &mut out)?,
        _ => {}
    }
    Ok(out)
}

fn parse_video<'a>(body: &'a [u8], out: &mut ParsedTag<'a>) -> Result<(), CodecError> {
    let mut r = Reader {
        data: body,
        pos: 0,
        kind: "video",
    };
    let first = r.u8("the video header byte")?;
    if first & 0x80 == 0 {
        let frame_type = first >> 4;
        let codec = Codec::Video(VideoCodec::Legacy(first & 0x0f));
        if frame_type == 5 {
            out.command = body.get(1).copied();
            return Ok(());
        }
        let mut kind = PacketKind::CodedFrames;
        let mut composition_time = 0;
        if codec.legacy_has_packet_type() {
            kind = match r.u8("the AVC packet type")? {
                0 => PacketKind::SequenceStart,
                1 => PacketKind::CodedFrames,
                2 => PacketKind::SequenceEnd,
                value => {
                    return Err(CodecError::ReservedPacketType {
                        kind: "AVC video",
                        value,
                    });
                }
            };
            let cts = r.si24("the composition time")?;
            if kind == PacketKind::CodedFrames {
                composition_time = cts;
            }
        }
        out.packets.push(Packet {
            track: 0,
            codec,
            kind,
            frame_type,
            composition_time,
            nanos: 0,
            legacy_audio: None,
            multitrack: false,
            data: r.rest(),
        });
        return Ok(());
    }

    let frame_type = (first >> 4) & 0x07;
    let (packet_type, nanos) = r.skip_modex(first & 0x0f, MODEX)?;
    if frame_type == 5 && packet_type != 4 {
        out.command = Some(r.u8("the video command")?);
        return Ok(());
    }
    let mk = |track, codec: FourCc, packet_type: u8, multitrack, r: &mut Reader<'a>| {
        let (kind, explicit_cts) = video_packet_kind(packet_type)?;
        let codec = Codec::Video(VideoCodec::FourCc(codec));
        let composition_time = if explicit_cts && codec.has_composition_time() {
            r.si24("the composition time")?
        } else {
            0
        };
        Ok::<_, CodecError>(Packet {
            track,
            codec,
            kind,
            frame_type,
            composition_time,
            nanos,
            legacy_audio: None,
            multitrack,
            data: r.rest(),
        })
    };
    if packet_type != VIDEO_MULTITRACK {
        let codec = r.fourcc()?;
        let p = mk(0, codec, packet_type, false, &mut r)?;
        out.packets.push(p);
        return Ok(());
    }
    parse_multitrack(
        &mut r,
        "video",
        VIDEO_MULTITRACK,
        out,
        |track, codec, pt, r| mk(track, codec, pt, true, r),
    )
}

fn parse_audio<'a>(body: &'a [u8], out: &mut ParsedTag<'a>) -> Result<(), CodecError> {
    let mut r = Reader {
        data: body,
        pos: 0,
        kind: "audio",
    };
    let first = r.u8("the audio header byte")?;
    let sound_format = first >> 4;
    if sound_format != AUDIO_EX_HEADER {
        let codec = Codec::Audio(AudioCodec::Legacy(sound_format));
        let mut kind = PacketKind::CodedFrames;
        if codec.legacy_has_packet_type() {
            kind = match r.u8("the AAC packet type")? {
                0 => PacketKind::SequenceStart,
                1 => PacketKind::CodedFrames,
                value => {
                    return Err(CodecError::ReservedPacketType {
                        kind: "AAC audio",
                        value,
                    });
                }
            };
        }
        out.packets.push(Packet {
            track: 0,
            codec,
            kind,
            frame_type: 1,
            composition_time: 0,
            nanos: 0,
            legacy_audio: Some(LegacyAudio {
                rate: (first >> 2) & 0x03,
                sixteen_bit: first & 0x02 != 0,
                stereo: first & 0x01 != 0,
            }),
            multitrack: false,
            data: r.rest(),
        });
        return Ok(());
    }
    let (packet_type, nanos) = r.skip_modex(first & 0x0f, MODEX)?;
    let mk = |track, codec: FourCc, packet_type: u8, multitrack, r: &mut Reader<'a>| {
        Ok::<_, CodecError>(Packet {
            track,
            codec: Codec::Audio(AudioCodec::FourCc(codec)),
            kind: audio_packet_kind(packet_type)?,
            frame_type: 1,
            composition_time: 0,
            nanos,
            legacy_audio: None,
            multitrack,
            data: r.rest(),
        })
    };
    if packet_type != AUDIO_MULTITRACK {
        let codec = r.fourcc()?;
        let p = mk(0, codec, packet_type, false, &mut r)?;
        out.packets.push(p);
        return Ok(());
    }
    parse_multitrack(
        &mut r,
        "audio",
        AUDIO_MULTITRACK,
        out,
        |track, codec, pt, r| mk(track, codec, pt, true, r),
    )
}

/// The multitrack body shared by audio and video: `[layout:4][packet type:4]`, the shared
/// FourCC (unless every track has its own), then per track `[FourCC] id [u24 size] payload`.
fn parse_multitrack<'a, F>(
    r: &mut Reader<'a>,
    kind: &'static str,
    multitrack: u8,
    out: &mut ParsedTag<'a>,
    mut packet: F,
) -> Result<(), CodecError>
where
    F: FnMut(u8, FourCc, u8, &mut Reader<'a>) -> Result<Packet<'a>, CodecError>,
{
    let b = r.u8("the multitrack type")?;
    let layout = match b >> 4 {
        0 => MultitrackType::OneTrack,
        1 => MultitrackType::ManyTracks,
        2 => MultitrackType::ManyTracksManyCodecs,
        value => return Err(CodecError::BadMultitrackType { kind, value }),
    };
    let packet_type = b & 0x0f;
    if packet_type == multitrack || packet_type == MODEX {
        return Err(CodecError::NestedPacketType {
            kind,
            value: packet_type,
        });
    }
    let shared = if layout == MultitrackType::ManyTracksManyCodecs {
        None
    } else {
        Some(r.fourcc()?)
    };
    loop {
        let codec = match shared {
            Some(c) => c,
            None => r.fourcc()?,
        };
        let track = r.u8("the track id")?;
        let p = if layout == MultitrackType::OneTrack {
            packet(track, codec, packet_type, r)?
        } else {
            let size = r.u24("the track size")?;
            let data = r.take(size, "a track's payload")?;
            let mut sub = Reader {
                data,
                pos: 0,
                kind: r.kind,
            };
            packet(track, codec, packet_type, &mut sub)?
        };
        if out.packets.len() == MAX_TRACKS_PER_MESSAGE {
            return Err(CodecError::TooManyTracks {
                kind,
                max: MAX_TRACKS_PER_MESSAGE,
            });
        }
        out.packets.push(p);
        if layout == MultitrackType::OneTrack || r.pos >= r.data.len() {
            return Ok(());
        }
    }
}

/// Errors from writing a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A legacy codec id cannot be sent on a track other than 0.
    #[error("{kind} track {track} uses legacy codec id {id}, which has no multitrack form")]
    LegacyOnTrack {
        /// "audio" or "video".
        kind: &'static str,
        /// The track.
        track: u8,
        /// The legacy id.
        id: u8,
    },
    /// The packet kind does not exist in this signalling.
    #[error("{kind} packet {packet:?} cannot be written with codec {codec:?}")]
    Unsupported {
        /// "audio" or "video".
        kind: &'static str,
        /// The packet kind.
        packet: PacketKind,
        /// The codec.
        codec: Codec,
    },
    /// A track payload longer than the 24-bit size field of a many-tracks message.
    #[error("{kind} track {track} payload of {len} bytes does not fit a multitrack size field")]
    TooLong {
        /// "audio" or "video".
        kind: &'static str,
        /// The track.
        track: u8,
        /// Payload length.
        len: usize,
    },
    /// [`write_tracks`] without packets, or with packets of different kinds.
    #[error(
        "a many-tracks message needs at least one packet, all audio or all video, of one packet kind"
    )]
    BadGroup,
}

fn video_packet_type(p: &Packet<'_>) -> Result<u8, WriteError> {
    Ok(match p.kind {
        PacketKind::SequenceStart => 0,
        PacketKind::CodedFrames if p.codec.has_composition_time() && p.composition_time == 0 => 3,
        PacketKind::CodedFrames => 1,
        PacketKind::SequenceEnd => 2,
        PacketKind::Metadata => 4,
        PacketKind::Mpeg2TsSequenceStart => 5,
        PacketKind::MultichannelConfig => {
            return Err(WriteError::Unsupported {
                kind: "video",
                packet: p.kind,
                codec: p.codec,
            });
        }
    })
}

fn audio_packet_type(p: &Packet<'_>) -> Result<u8, WriteError> {
    Ok(match p.kind {
        PacketKind::SequenceStart => 0,
        PacketKind::CodedFrames => 1,
        PacketKind::SequenceEnd => 2,
        PacketKind::MultichannelConfig => 4,
        PacketKind::Metadata | PacketKind::Mpeg2TsSequenceStart => {
            return Err(WriteError::Unsupported {
                kind: "audio",
                packet: p.kind,
                codec: p.codec,
            });
        }
    })
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

fn put_modex_nanos(out: &mut BytesMut, nanos: u32) {
    // Size byte (size − 1 = 2), three data bytes, then [ModExType 0][next packet type] by
    // the caller.
    out.put_u8(2);
    put_u24(out, nanos.min(999_999));
}

/// The video header byte's top half in enhanced mode: IsExHeader and a 3-bit FrameType.
fn ex_video_first(frame_type: u8) -> u8 {
    0x80 | (frame_type & 0x07) << 4
}

/// Writes one packet as a tag body: legacy header for legacy codecs (track 0 only), Enhanced
/// RTMP otherwise, in a OneTrack wrapper when the track is not 0 (or `p.multitrack` asks for
/// one). CodedFramesX when the composition time is 0. A non-zero `p.nanos` adds a ModEx
/// TimestampOffsetNano prefix.
pub fn write_packet(p: &Packet<'_>, out: &mut BytesMut) -> Result<(), WriteError> {
    let kind = p.media().name();
    match p.codec {
        Codec::Video(VideoCodec::Legacy(id)) | Codec::Audio(AudioCodec::Legacy(id)) => {
            if p.track != 0 {
                return Err(WriteError::LegacyOnTrack {
                    kind,
                    track: p.track,
                    id,
                });
            }
            write_legacy(p, id, out)
        }
        Codec::Video(VideoCodec::FourCc(fourcc)) => {
            let pt = video_packet_type(p)?;
            let wrapped = p.track != 0 || p.multitrack;
            // Metadata: FrameType 5 as FFmpeg writes it, except inside a multitrack wrapper,
            // where FrameType 5 would make the message a command frame (spec parse order).
            let frame_type = match p.kind {
                PacketKind::Metadata if wrapped => 0,
                PacketKind::Metadata => 5,
                _ => p.frame_type,
            };
            let inner = if wrapped { VIDEO_MULTITRACK } else { pt };
            if p.nanos != 0 {
                out.put_u8(ex_video_first(frame_type) | MODEX);
                put_modex_nanos(out, p.nanos);
                out.put_u8(inner);
            } else {
                out.put_u8(ex_video_first(frame_type) | inner);
            }
            if wrapped {
                out.put_u8(pt);
                out.put_slice(&fourcc.0);
                out.put_u8(p.track);
            } else {
                out.put_slice(&fourcc.0);
            }
            if pt == 1 && p.codec.has_composition_time() {
                put_u24(out, p.composition_time as u32 & 0xff_ffff);
            }
            out.put_slice(p.data);
            Ok(())
        }
        Codec::Audio(AudioCodec::FourCc(fourcc)) => {
            let pt = audio_packet_type(p)?;
            let wrapped = p.track != 0 || p.multitrack;
            let inner = if wrapped { AUDIO_MULTITRACK } else { pt };
            if p.nanos != 0 {
                out.put_u8(AUDIO_EX_HEADER << 4 | MODEX);
                put_modex_nanos(out, p.nanos);
                out.put_u8(inner);
            } else {
                out.put_u8(AUDIO_EX_HEADER << 4 | inner);
            }
            if wrapped {
                out.put_u8(pt);
                out.put_slice(&fourcc.0);
                out.put_u8(p.track);
            } else {
                out.put_slice(&fourcc.0);
            }
            out.put_slice(p.data);
            Ok(())
        }
    }
}

fn write_legacy(p: &Packet<'_>, id: u8, out: &mut BytesMut) -> Result<(), WriteError> {
    let unsupported = || WriteError::Unsupported {
        kind: p.media().name(),
        packet: p.kind,
        codec: p.codec,
    };
    match p.codec {
        Codec::Video(_) => {
            out.put_u8((p.frame_type & 0x0f) << 4 | id);
            if p.codec.legacy_has_packet_type() {
                let pt = match p.kind {
                    PacketKind::SequenceStart => 0,
                    PacketKind::CodedFrames => 1,
                    PacketKind::SequenceEnd => 2,
                    _ => return Err(unsupported()),
                };
                out.put_u8(pt);
                put_u24(out, p.composition_time as u32 & 0xff_ffff);
            } else if p.kind != PacketKind::CodedFrames {
                return Err(unsupported());
            }
        }
        Codec::Audio(_) => {
            let flags = p.legacy_audio.unwrap_or_default();
            out.put_u8(
                id << 4
                    | (flags.rate & 0x03) << 2
                    | u8::from(flags.sixteen_bit) << 1
                    | u8::from(flags.stereo),
            );
            if p.codec.legacy_has_packet_type() {
                out.put_u8(match p.kind {
                    PacketKind::SequenceStart => 0,
                    PacketKind::CodedFrames => 1,
                    _ => return Err(unsupported()),
                });
            } else if p.kind != PacketKind::CodedFrames {
                return Err(unsupported());
            }
        }
    }
    out.put_slice(p.data);
    Ok(())
}

/// Writes several tracks of one kind and one packet kind, with the same timestamp, as one
/// ManyTracks message (one shared FourCC) or ManyTracksManyCodecs (codecs differ). All must
/// use FourCC signalling; a ModEx nanosecond offset is taken from the first packet.
pub fn write_tracks(packets: &[Packet<'_>], out: &mut BytesMut) -> Result<(), WriteError> {
    let first = packets.first().ok_or(WriteError::BadGroup)?;
    let media = first.media();
    if packets
        .iter()
        .any(|p| p.media() != media || p.kind != first.kind || p.codec.fourcc().is_none())
    {
        return Err(WriteError::BadGroup);
    }
    let same_codec = packets.iter().all(|p| p.codec == first.codec);
    let (pt, multitrack, first_byte) = match media {
        MediaKind::Video => {
            // FrameType 5 with a multitrack packet type would read as a command frame.
            let frame_type = if first.kind == PacketKind::Metadata {
                0
            } else {
                first.frame_type
            };
            // Explicit composition time in every track (type 1) unless all are zero.
            let mut pt = video_packet_type(first)?;
            if pt == 3 && packets.iter().any(|p| p.composition_time != 0) {
                pt = 1;
            }
            (pt, VIDEO_MULTITRACK, ex_video_first(frame_type))
        }
        MediaKind::Audio => (
            audio_packet_type(first)?,
            AUDIO_MULTITRACK,
            AUDIO_EX_HEADER << 4,
        ),
    };
    let layout: u8 = if same_codec { 1 } else { 2 };
    if first.nanos != 0 {
        out.put_u8(first_byte | MODEX);
        put_modex_nanos(out, first.nanos);
        out.put_u8(multitrack);
    } else {
        out.put_u8(first_byte | multitrack);
    }
    out.put_u8(layout << 4 | pt);
    if same_codec {
        out.put_slice(&first.codec.fourcc().expect("checked").0);
    }
    for p in packets {
        if !same_codec {
            out.put_slice(&p.codec.fourcc().expect("checked").0);
        }
        out.put_u8(p.track);
        let cts = media == MediaKind::Video && pt == 1 && p.codec.has_composition_time();
        let len = p.data.len() + if cts { 3 } else { 0 };
        if len > 0xff_ffff {
            return Err(WriteError::TooLong {
                kind: media.name(),
                track: p.track,
                len,
            });
        }
        put_u24(out, len as u32);
        if cts {
            put_u24(out, p.composition_time as u32 & 0xff_ffff);
        }
        out.put_slice(p.data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(tag_type: u8, body: &str) -> Packet<'static> {
        // Test bodies live for the whole run.
        let body: &'static [u8] = Box::leak(hex(body).into_boxed_slice());
        let t = parse_tag(tag_type, body).unwrap();
        assert_eq!(t.packets.len(), 1, "{t:?}");
        t.packets[0]
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn legacy_avc_and_aac() {
        let p = one(9, "17 01 00 00 21 aa bb");
        assert_eq!(p.codec, Codec::Video(VideoCodec::Legacy(7)));
        assert_eq!(p.kind, PacketKind::CodedFrames);
        assert_eq!(p.composition_time, 33);
        assert!(p.is_keyframe());
        assert_eq!(p.data, &[0xaa, 0xbb]);
        let p = one(8, "af 00 12 10");
        assert_eq!(p.kind, PacketKind::SequenceStart);
        assert_eq!(
            p.legacy_audio,
            Some(LegacyAudio {
                rate: 3,
                sixteen_bit: true,
                stereo: true
            })
        );
        assert_eq!(p.data, &[0x12, 0x10]);
    }

    #[test]
    fn enhanced_single_track_as_ffmpeg_writes() {
        // HEVC key CodedFrames with cts 0x000050 (80 ms).
        let p = one(9, "91 68766331 000050 01 02");
        assert_eq!(p.codec.fourcc(), Some(FourCc::HVC1));
        assert_eq!(p.composition_time, 80);
        assert_eq!(p.data, &[1, 2]);
        // CodedFramesX: no cts field.
        let p = one(9, "a3 68766331 05 06");
        assert_eq!(p.frame_type, 2);
        assert_eq!(p.kind, PacketKind::CodedFrames);
        assert_eq!(p.data, &[5, 6]);
        // AV1 CodedFrames carry no cts.
        let p = one(9, "91 61763031 12 00");
        assert_eq!(p.data, &[0x12, 0]);
        // Metadata with FrameType 5 (FFmpeg) and 0 (OBS).
        assert_eq!(one(9, "d4 68766331 02").kind, PacketKind::Metadata);
        assert_eq!(one(9, "84 68766331 02").kind, PacketKind::Metadata);
        // Opus MultichannelConfig, FLAC on track 1 as FFmpeg 8 writes it.
        let p = one(8, "94 4f707573 01 01 00000004");
        assert_eq!(p.kind, PacketKind::MultichannelConfig);
        let p = one(8, "95 01 61632d33 01 0b 77");
        assert_eq!(p.track, 1);
        assert!(p.multitrack);
        assert_eq!(p.codec.fourcc(), Some(FourCc::AC3));
        assert_eq!(p.data, &[0x0b, 0x77]);
    }

    #[test]
    fn command_frames_carry_no_media() {
        let body = hex("d0 00");
        let t = parse_tag(9, &body).unwrap();
        assert!(t.packets.is_empty());
        assert_eq!(t.command, Some(0));
        let body = hex("57 01");
        let t = parse_tag(9, &body).unwrap();
        assert_eq!(t.command, Some(1));
    }

    #[test]
    fn modex_nano_offset() {
        // Doc example: HEVC key CodedFrames with +0.5 ms.
        let p = one(9, "97 02 07 a1 20 01 68766331 000000 aa");
        assert_eq!(p.nanos, 500_000);
        assert_eq!(p.kind, PacketKind::CodedFrames);
        assert_eq!(p.data, &[0xaa]);
        let p = one(8, "97 02 07 a1 20 01 4f707573 bb");
        assert_eq!(p.nanos, 500_000);
        assert_eq!(p.data, &[0xbb]);
    }

    #[test]
    fn many_tracks_both_layouts() {
        let body = hex("96 11 68766331 00 000005 000001 aa bb 01 000004 000002 cc");
        let t = parse_tag(9, &body).unwrap();
        assert_eq!(t.packets.len(), 2);
        assert_eq!((t.packets[0].track, t.packets[0].composition_time), (0, 1));
        assert_eq!(t.packets[0].data, &[0xaa, 0xbb]);
        assert_eq!((t.packets[1].track, t.packets[1].composition_time), (1, 2));
        assert_eq!(t.packets[1].data, &[0xcc]);
        let body = hex("96 21 61763031 00 000001 dd 68766331 01 000004 000003 ee");
        let t = parse_tag(9, &body).unwrap();
        assert_eq!(t.packets[0].codec.fourcc(), Some(FourCc::AV01));
        assert_eq!(t.packets[1].codec.fourcc(), Some(FourCc::HVC1));
        assert_eq!(t.packets[1].composition_time, 3);
    }

    #[test]
    fn hostile_bodies_give_errors() {
        for body in [
            "96",
            "96 11 68766331 00 ffffff",
            "96 36 68766331",
            "96 31 68766331",
            "97",
            "97 ff",
            "95 05 4f707573",
            "9f 68766331",
            "af 07",
        ] {
            let tag_type = if body.starts_with("95") || body.starts_with("af") {
                8
            } else {
                9
            };
            let err = parse_tag(tag_type, &hex(body)).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let cases = [
            (9, "17 00 000000 01 64"),
            (9, "27 01 00fffe 00 00 00 01"),
            (8, "af 01 21 00"),
            (8, "2f ff fb"),
            (9, "90 68766331 01 02"),
            (9, "91 68766331 000021 aa"),
            (9, "a3 68766331 bb"),
            (9, "d4 68766331 02 00"),
            (9, "91 61763031 12 00"),
            (8, "90 4f707573 4f"),
            (8, "94 4f707573 01 01 00000004"),
            (9, "96 01 68766331 02 000021 aa"),
            (9, "96 03 61766331 01 cc"),
            (8, "95 00 6d703461 02 12 10"),
            (9, "97 02 07 a1 20 01 68766331 000001 aa"),
            (8, "97 02 07 a1 20 01 4f707573 bb"),
            (
                9,
                "96 11 68766331 00 000005 000001 aa bb 01 000004 000002 cc",
            ),
            (
                9,
                "96 21 61763031 00 000001 dd 68766331 01 000004 000003 ee",
            ),
            (8, "95 11 4f707573 00 000001 dd 01 000002 ee ff"),
        ];
        for (tag_type, case) in cases {
            let body = hex(case);
            let t = parse_tag(tag_type, &body).unwrap();
            let mut out = BytesMut::new();
            if t.packets.len() > 1 {
                write_tracks(&t.packets, &mut out).unwrap();
            } else {
                write_packet(&t.packets[0], &mut out).unwrap();
            }
            assert_eq!(out.as_ref(), &body[..], "{case}");
        }
    }

    #[test]
    fn legacy_codec_on_a_track_is_refused() {
        let p = Packet {
            track: 1,
            codec: Codec::Audio(AudioCodec::Legacy(10)),
            kind: PacketKind::CodedFrames,
            frame_type: 1,
            composition_time: 0,
            nanos: 0,
            legacy_audio: None,
            multitrack: false,
            data: &[],
        };
        let err = write_packet(&p, &mut BytesMut::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "audio track 1 uses legacy codec id 10, which has no multitrack form"
        );
    }
}
