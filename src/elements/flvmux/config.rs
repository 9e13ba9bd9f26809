//! Sink caps → what one track writes: the codec signalling (legacy id on track 0 for H.264,
//! AAC and MP3, FourCC otherwise), the SequenceStart record, the legacy audio flags, the
//! onMetaData fields and the `colorInfo` metadata.
//!
//! Pure functions of the caps and the track id; every refusal says which caps field was
//! wrong and what it held.

use std::fmt;
use std::str::FromStr;

use gst::prelude::*;

use crate::rtmp::amf0::Value;
use crate::rtmp::codecs::{self, ColorInfo, Mdcv, OpusHead, VpcC};
use crate::rtmp::eflv::{Codec, LegacyAudio, MediaKind};
use crate::rtmp::flv::{AudioCodec, FourCc, VideoCodec};

/// Legacy SoundFormat of MP3.
const LEGACY_MP3: u8 = 2;
/// Legacy SoundFormat of MP3 at 8 kHz.
const LEGACY_MP3_8K: u8 = 14;

/// What the track's SequenceStart carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sequence {
    /// No SequenceStart exists for the codec (legacy MP3).
    None,
    /// This record (empty for ac-3, ec-3 and `.mp3`, as FFmpeg 8 writes them).
    Record(Vec<u8>),
    /// AV1 caps without codec_data: the av1C comes from the sequence header OBU of the
    /// stream's keyframes (av1parse on 1.22 gives no codec_data).
    FromStream,
}

/// The onMetaData fields of one track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackMeta {
    /// Picture width.
    pub width: Option<i32>,
    /// Picture height.
    pub height: Option<i32>,
    /// Frames per second.
    pub framerate: Option<f64>,
    /// Audio sample rate.
    pub rate: Option<i32>,
    /// Audio channels.
    pub channels: Option<i32>,
}

/// What a track writes, from its caps.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// The codec as signalled on the wire.
    pub codec: Codec,
    /// The SequenceStart.
    pub sequence: Sequence,
    /// Legacy audio header flags (legacy audio codecs only).
    pub legacy_audio: Option<LegacyAudio>,
    /// The `colorInfo` Metadata frame to send before the first frame (hvc1, av01, vp09).
    pub color: Option<ColorInfo>,
    /// onMetaData fields.
    pub meta: TrackMeta,
}

impl TrackConfig {
    /// The number onMetaData's `videocodecid`/`audiocodecid` carries: the legacy id, or the
    /// FourCC as a 32-bit number.
    pub fn codec_id(&self) -> f64 {
        match self.codec {
            Codec::Video(VideoCodec::Legacy(id)) | Codec::Audio(AudioCodec::Legacy(id)) => {
                f64::from(id)
            }
            Codec::Video(VideoCodec::FourCc(f)) | Codec::Audio(AudioCodec::FourCc(f)) => {
                f64::from(f.as_u32())
            }
        }
    }

    /// The track's onMetaData fields: the top-level ones for track 0, one entry of a track
    /// map otherwise.
    pub fn metadata(&self, track: u8) -> Vec<(&'static str, Value)> {
        let m = &self.meta;
        let num = |v: i32| Value::Number(f64::from(v));
        let mut out = Vec::new();
        match self.codec.kind() {
            MediaKind::Video => {
                out.push(("videocodecid", Value::Number(self.codec_id())));
                if let Some(w) = m.width {
                    out.push(("width", num(w)));
                }
                if let Some(h) = m.height {
                    out.push(("height", num(h)));
                }
                if let Some(f) = m.framerate {
                    out.push(("framerate", Value::Number(f)));
                }
            }
            MediaKind::Audio => {
                out.push(("audiocodecid", Value::Number(self.codec_id())));
                // Track 0 uses the classic names; track maps the E-RTMP v2 ones.
                if let Some(r) = m.rate {
                    out.push((
                        if track == 0 {
                            "audiosamplerate"
                        } else {
                            "samplerate"
                        },
                        num(r),
                    ));
                }
                if let Some(c) = m.channels {
                    if track == 0 {
                        out.push(("audiosamplesize", Value::Number(16.0)));
                        out.push(("stereo", Value::Boolean(c >= 2)));
                    }
                    out.push(("channels", num(c)));
                }
            }
        }
        out
    }
}

/// Why caps cannot be muxed: the field, what it held, and what was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsError {
    /// The caps' media type.
    pub media: String,
    /// The caps field.
    pub field: &'static str,
    /// Its value as the caps printed it, or "missing".
    pub value: String,
    /// What was needed.
    pub need: String,
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} caps field {} is {}: {}",
            self.media, self.field, self.value, self.need
        )
    }
}

impl std::error::Error for CapsError {}

struct Fields<'a> {
    s: &'a gst::StructureRef,
    media: &'a str,
}

impl Fields<'_> {
    fn error(&self, field: &'static str, need: impl Into<String>) -> CapsError {
        let value = match self.s.value(field) {
            Ok(v) => format!(
                "{:?}",
                v.serialize().map(|s| s.to_string()).unwrap_or_default()
            ),
            Err(_) => "missing".to_string(),
        };
        CapsError {
            media: self.media.to_string(),
            field,
            value,
            need: need.into(),
        }
    }

    fn str(&self, field: &str) -> Option<&str> {
        self.s.get::<&str>(field).ok()
    }

    fn int(&self, field: &str) -> Option<i32> {
        self.s.get::<i32>(field).ok()
    }

    /// An int or uint field (vp9parse's `bit-depth-luma` is a uint).
    fn any_int(&self, field: &str) -> Option<i64> {
        self.s
            .get::<i32>(field)
            .map(i64::from)
            .or_else(|_| self.s.get::<u32>(field).map(i64::from))
            .ok()
    }

    /// A string field that must be one of `allowed`.
    fn require_str(&self, field: &'static str, allowed: &[&str]) -> Result<(), CapsError> {
        match self.str(field) {
            Some(v) if allowed.contains(&v) => Ok(()),
            _ => Err(self.error(field, format!("needs {}", allowed.join(" or ")))),
        }
    }

    fn buffer(&self, field: &'static str, need: &str) -> Result<Vec<u8>, CapsError> {
        let buf = self
            .s
            .get::<gst::Buffer>(field)
            .map_err(|_| self.error(field, need.to_string()))?;
        let map = buf
            .map_readable()
            .map_err(|_| self.error(field, "a readable buffer"))?;
        Ok(map.as_slice().to_vec())
    }

    fn streamheader(&self) -> Vec<Vec<u8>> {
        let Ok(array) = self.s.get::<gst::ArrayRef>("streamheader") else {
            return Vec::new();
        };
        array
            .iter()
            .filter_map(|v| v.get::<gst::Buffer>().ok())
            .filter_map(|b| b.map_readable().ok().map(|m| m.as_slice().to_vec()))
            .collect()
    }

    fn framerate(&self) -> Option<f64> {
        let f = self.s.get::<gst::Fraction>("framerate").ok()?;
        (f.numer() > 0 && f.denom() > 0).then(|| f64::from(f.numer()) / f64::from(f.denom()))
    }
}

/// The track config for `caps` on a pad of `kind` carrying `track`.
pub fn track_config(
    kind: MediaKind,
    track: u8,
    caps: &gst::CapsRef,
) -> Result<TrackConfig, CapsError> {
    let s = caps.structure(0).ok_or_else(|| CapsError {
        media: caps.to_string(),
        field: "(structure)",
        value: "missing".into(),
        need: "fixed caps with one structure".into(),
    })?;
    let media = s.name().as_str();
    let f = Fields { s, media };
    let config = match kind {
        MediaKind::Video => video_config(&f, caps, track)?,
        MediaKind::Audio => audio_config(&f, track)?,
    };
    if config.codec.kind() != kind {
        return Err(CapsError {
            media: media.to_string(),
            field: "(media type)",
            value: media.to_string(),
            need: format!("a {} codec on a {} pad", kind.name(), kind.name()),
        });
    }
    Ok(config)
}

fn video_config(f: &Fields<'_>, caps: &gst::CapsRef, track: u8) -> Result<TrackConfig, CapsError> {
    let meta = TrackMeta {
        width: f.int("width"),
        height: f.int("height"),
        framerate: f.framerate(),
        ..TrackMeta::default()
    };
    let (fourcc, sequence) = match f.media {
        "video/x-h264" => {
            f.require_str("stream-format", &["avc"])?;
            let avcc = f.buffer("codec_data", "needs the avcC record (h264parse gives it)")?;
            let codec = if track == 0 {
                // What every legacy player and platform expects.
                VideoCodec::Legacy(VideoCodec::LEGACY_AVC)
            } else {
                VideoCodec::FourCc(FourCc::AVC1)
            };
            return Ok(TrackConfig {
                codec: Codec::Video(codec),
                sequence: Sequence::Record(avcc),
                legacy_audio: None,
                color: None,
                meta,
            });
        }
        "video/x-h265" => {
            f.require_str("stream-format", &["hvc1", "hev1"])?;
            let hvcc = f.buffer("codec_data", "needs the hvcC record (h265parse gives it)")?;
            (FourCc::HVC1, Sequence::Record(hvcc))
        }
        "video/x-av1" => {
            f.require_str("stream-format", &["obu-stream"])?;
            f.require_str("alignment", &["tu"])?;
            match f.s.get::<gst::Buffer>("codec_data") {
                Ok(_) => {
                    let av1c = f.buffer("codec_data", "an av1C record")?;
                    if av1c.len() < 4 || av1c[0] != 0x81 {
                        return Err(f.error(
                            "codec_data",
                            "needs an av1C record (4 bytes or more, starting with 0x81)",
                        ));
                    }
                    (FourCc::AV01, Sequence::Record(av1c))
                }
                Err(_) => (FourCc::AV01, Sequence::FromStream),
            }
        }
        "video/x-vp9" => (FourCc::VP09, Sequence::Record(vpcc(f, &meta, true)?)),
        "video/x-vp8" => (FourCc::VP08, Sequence::Record(vpcc(f, &meta, false)?)),
        other => {
            return Err(CapsError {
                media: other.to_string(),
                field: "(media type)",
                value: other.to_string(),
                need: "H.264, H.265, AV1, VP9 or VP8 on a video pad".into(),
            });
        }
    };
    let color = match fourcc {
        FourCc::HVC1 | FourCc::AV01 | FourCc::VP09 => color_info(f, caps),
        _ => None,
    };
    Ok(TrackConfig {
        codec: Codec::Video(VideoCodec::FourCc(fourcc)),
        sequence,
        legacy_audio: None,
        color,
        meta,
    })
}

/// H.273 code points of the caps' colorimetry, `None` where unknown (2 = unspecified).
fn colorimetry_codes(f: &Fields<'_>) -> (Option<u8>, Option<u8>, Option<u8>, bool) {
    let Some(c) = f
        .str("colorimetry")
        .and_then(|c| gst_video::VideoColorimetry::from_str(c).ok())
    else {
        return (None, None, None, false);
    };
    // 2 is "unspecified"; 0 is reserved for primaries and transfer, but is a real matrix
    // (identity, RGB).
    let code = |v: u32| u8::try_from(v).ok().filter(|v| *v != 2);
    let nonzero = |v: Option<u8>| v.filter(|v| *v != 0);
    (
        nonzero(code(c.primaries().to_iso())),
        nonzero(code(c.transfer().to_iso())),
        code(c.matrix().to_iso()),
        c.range() == gst_video::VideoColorRange::Range0_255,
    )
}

/// The vpcC record (with the FullBox prefix, as FFmpeg writes it) from VP9/VP8 caps.
fn vpcc(f: &Fields<'_>, meta: &TrackMeta, vp9: bool) -> Result<Vec<u8>, CapsError> {
    let profile = match f.s.get::<&str>("profile") {
        Ok(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 3)
            .ok_or_else(|| f.error("profile", "needs 0, 1, 2 or 3"))?,
        Err(_) => 0,
    };
    let bit_depth = match f.any_int("bit-depth-luma") {
        None => 8,
        Some(d @ (8 | 10 | 12)) => d as u8,
        Some(_) => return Err(f.error("bit-depth-luma", "needs 8, 10 or 12")),
    };
    let chroma_subsampling = match f.str("chroma-format") {
        // 4:2:0 with the chroma siting unknown: "collocated with luma", what FFmpeg writes
        // then; MPEG-2 siting (left) is "vertical".
        None | Some("4:2:0") => {
            if f.str("chroma-site") == Some("mpeg2") {
                0
            } else {
                1
            }
        }
        Some("4:2:2") => 2,
        Some("4:4:4") => 3,
        Some(_) => {
            return Err(f.error("chroma-format", "needs 4:2:0, 4:2:2 or 4:4:4"));
        }
    };
    let (primaries, transfer, matrix, full_range) = colorimetry_codes(f);
    let level = match (vp9, meta.width, meta.height) {
        (true, Some(w), Some(h)) if w > 0 && h > 0 => {
            VpcC::vp9_level(w as u32, h as u32, meta.framerate.unwrap_or(30.0))
        }
        // VP8 has no levels; an unknown VP9 level is 0 as well.
        _ => 0,
    };
    Ok(VpcC {
        profile,
        level,
        bit_depth,
        chroma_subsampling,
        full_range,
        primaries: primaries.unwrap_or(2),
        transfer: transfer.unwrap_or(2),
        matrix: matrix.unwrap_or(2),
    }
    .to_bytes()
    .to_vec())
}

/// The colorInfo of video caps: colorimetry, mastering display and content light level;
/// `None` when the caps say nothing about colour.
fn color_info(f: &Fields<'_>, caps: &gst::CapsRef) -> Option<ColorInfo> {
    let (primaries, transfer, matrix, _) = colorimetry_codes(f);
    let mut info = ColorInfo {
        bit_depth: f
            .any_int("bit-depth-luma")
            .and_then(|d| u8::try_from(d).ok()),
        primaries,
        transfer,
        matrix,
        ..ColorInfo::default()
    };
    if let Ok(cll) = gst_video::VideoContentLightLevel::from_caps(caps) {
        info.cll = Some((
            cll.max_content_light_level(),
            cll.max_frame_average_light_level(),
        ));
    }
    if let Ok(m) = gst_video::VideoMasteringDisplayInfo::from_caps(caps) {
        // Chromaticities in 0.00002 units, luminance in 0.0001 cd/m².
        let xy = |c: gst_video::VideoMasteringDisplayInfoCoordinate| {
            (f64::from(c.x) / 50000.0, f64::from(c.y) / 50000.0)
        };
        let p = m.display_primaries();
        info.mdcv = Some(Mdcv {
            primaries: [xy(p[0]), xy(p[1]), xy(p[2])],
            white_point: xy(m.white_point()),
            max_luminance: f64::from(m.max_display_mastering_luminance()) / 10000.0,
            min_luminance: f64::from(m.min_display_mastering_luminance()) / 10000.0,
        });
    }
    let nothing = info.primaries.is_none()
        && info.transfer.is_none()
        && info.matrix.is_none()
        && info.cll.is_none()
        && info.mdcv.is_none();
    (!nothing).then_some(info)
}

/// The legacy SoundRate flag nearest to `rate` (MP3 frames carry their own rate).
fn legacy_rate_flag(rate: i32) -> u8 {
    match rate {
        ..=8000 => 0,
        8001..=16000 => 1,
        16001..=32000 => 2,
        _ => 3,
    }
}

fn audio_config(f: &Fields<'_>, track: u8) -> Result<TrackConfig, CapsError> {
    let mut meta = TrackMeta {
        rate: f.int("rate"),
        channels: f.int("channels"),
        ..TrackMeta::default()
    };
    let fourcc_config = |fourcc: FourCc, record: Vec<u8>, meta: TrackMeta| TrackConfig {
        codec: Codec::Audio(AudioCodec::FourCc(fourcc)),
        sequence: Sequence::Record(record),
        legacy_audio: None,
        color: None,
        meta,
    };
    match f.media {
        "audio/mpeg" => match f.int("mpegversion") {
            Some(2 | 4) => {
                f.require_str("stream-format", &["raw"])?;
                let asc = f.buffer(
                    "codec_data",
                    "needs the AudioSpecificConfig (aacparse gives it)",
                )?;
                if let Some((rate, channels)) = codecs::aac_config(&asc) {
                    meta.rate = Some(rate as i32);
                    if channels > 0 {
                        meta.channels = Some(channels as i32);
                    }
                }
                if track != 0 {
                    return Ok(fourcc_config(FourCc::MP4A, asc, meta));
                }
                Ok(TrackConfig {
                    codec: Codec::Audio(AudioCodec::Legacy(AudioCodec::LEGACY_AAC)),
                    sequence: Sequence::Record(asc),
                    // AAC is always flagged 44 kHz, 16-bit, stereo; the ASC says the truth.
                    legacy_audio: Some(LegacyAudio {
                        rate: 3,
                        sixteen_bit: true,
                        stereo: true,
                    }),
                    color: None,
                    meta,
                })
            }
            Some(1) => {
                if f.int("layer") != Some(3) {
                    return Err(f.error("layer", "needs 3 (MP3)"));
                }
                if track != 0 {
                    // FFmpeg 8 writes an empty SequenceStart for .mp3 on tracks ≥ 1.
                    return Ok(fourcc_config(FourCc::MP3, Vec::new(), meta));
                }
                let rate = meta.rate.unwrap_or(44100);
                let id = if rate == 8000 {
                    LEGACY_MP3_8K
                } else {
                    LEGACY_MP3
                };
                Ok(TrackConfig {
                    codec: Codec::Audio(AudioCodec::Legacy(id)),
                    sequence: Sequence::None,
                    legacy_audio: Some(LegacyAudio {
                        rate: legacy_rate_flag(rate),
                        sixteen_bit: true,
                        stereo: meta.channels.unwrap_or(2) >= 2,
                    }),
                    color: None,
                    meta,
                })
            }
            _ => Err(f.error("mpegversion", "needs 1 (MP3), 2 or 4 (AAC)")),
        },
        "audio/x-opus" => {
            let head = opus_head(f)?;
            meta.channels = Some(i32::from(head.channels));
            meta.rate = Some(48000);
            Ok(fourcc_config(FourCc::OPUS, head.to_bytes(), meta))
        }
        "audio/x-flac" => {
            let headers = f.streamheader();
            let Some(info) = headers
                .first()
                .and_then(|h| codecs::flac_streaminfo(h))
                .map(<[u8]>::to_vec)
            else {
                return Err(f.error(
                    "streamheader",
                    "needs the STREAMINFO header first (flacenc/flacparse give it)",
                ));
            };
            if let Some((rate, channels, _)) = codecs::flac_params(&info) {
                meta.rate = Some(rate as i32);
                meta.channels = Some(channels as i32);
            }
            // The bare 34-byte STREAMINFO, as FFmpeg writes and reads it.
            Ok(fourcc_config(FourCc::FLAC, info, meta))
        }
        "audio/x-ac3" => Ok(fourcc_config(FourCc::AC3, Vec::new(), meta)),
        "audio/x-eac3" => Ok(fourcc_config(FourCc::EAC3, Vec::new(), meta)),
        other => Err(CapsError {
            media: other.to_string(),
            field: "(media type)",
            value: other.to_string(),
            need: "AAC, MP3, Opus, FLAC, AC-3 or E-AC-3 on an audio pad".into(),
        }),
    }
}

/// The OpusHead: the caps' first streamheader buffer (opusenc), else built from the caps'
/// channel fields (opusparse without headers).
fn opus_head(f: &Fields<'_>) -> Result<OpusHead, CapsError> {
    if let Some(head) = f
        .streamheader()
        .first()
        .and_then(|h| OpusHead::parse(h).ok())
    {
        return Ok(head);
    }
    let channels = f
        .int("channels")
        .and_then(|c| u8::try_from(c).ok())
        .filter(|c| *c >= 1)
        .ok_or_else(|| f.error("channels", "needs 1 to 255"))?;
    let family = f.int("channel-mapping-family").unwrap_or(0);
    if family == 0 {
        if channels > 2 {
            return Err(f.error("channels", "needs 1 or 2 for channel-mapping-family 0"));
        }
        let mut head = OpusHead::simple(channels, 48000);
        head.pre_skip = 0;
        return Ok(head);
    }
    let byte = |field: &'static str| {
        f.int(field)
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| f.error(field, "needs 0 to 255"))
    };
    let mapping: Vec<u8> =
        f.s.get::<gst::ArrayRef>("channel-mapping")
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.get::<i32>().ok())
                    .filter_map(|v| u8::try_from(v).ok())
                    .collect()
            })
            .unwrap_or_default();
    if mapping.len() != usize::from(channels) {
        return Err(f.error(
            "channel-mapping",
            format!("needs {channels} entries, one per channel"),
        ));
    }
    Ok(OpusHead {
        channels,
        pre_skip: 0,
        input_rate: 48000,
        gain: 0,
        family: u8::try_from(family).map_err(|_| f.error("channel-mapping-family", "0 to 255"))?,
        streams: byte("stream-count")?,
        coupled: byte("coupled-count")?,
        mapping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> gst::Caps {
        gst::init().unwrap();
        gst::Caps::from_str(s).unwrap()
    }

    #[test]
    fn h264_is_legacy_on_track_0_and_avc1_elsewhere() {
        let c = caps(
            "video/x-h264,stream-format=avc,alignment=au,codec_data=(buffer)0164001fffe1,width=320,height=240,framerate=30/1",
        );
        let t0 = track_config(MediaKind::Video, 0, &c).unwrap();
        assert_eq!(t0.codec, Codec::Video(VideoCodec::Legacy(7)));
        assert_eq!(t0.codec_id(), 7.0);
        assert_eq!(t0.meta.framerate, Some(30.0));
        let t1 = track_config(MediaKind::Video, 1, &c).unwrap();
        assert_eq!(t1.codec, Codec::Video(VideoCodec::FourCc(FourCc::AVC1)));
        assert_eq!(t1.codec_id(), f64::from(FourCc::AVC1.as_u32()));
    }

    #[test]
    fn missing_codec_data_names_the_field() {
        let c = caps("video/x-h264,stream-format=avc,alignment=au");
        let e = track_config(MediaKind::Video, 0, &c).unwrap_err();
        assert_eq!(e.field, "codec_data");
        assert_eq!(e.value, "missing");
        assert!(e.to_string().contains("avcC"), "{e}");
        let c = caps("video/x-h264,stream-format=byte-stream,codec_data=(buffer)01");
        let e = track_config(MediaKind::Video, 0, &c).unwrap_err();
        assert_eq!(e.field, "stream-format");
        assert!(e.to_string().contains("byte-stream"), "{e}");
    }

    #[test]
    fn vp9_record_from_caps() {
        let c = caps(
            "video/x-vp9,profile=(string)0,chroma-format=(string)4:2:0,bit-depth-luma=(uint)8,colorimetry=(string)bt709,width=320,height=240,framerate=30/1",
        );
        let t = track_config(MediaKind::Video, 0, &c).unwrap();
        let Sequence::Record(r) = &t.sequence else {
            panic!("{t:?}")
        };
        let v = VpcC::parse(r).unwrap();
        assert_eq!(
            (v.profile, v.bit_depth, v.primaries, v.transfer, v.matrix),
            (0, 8, 1, 1, 1)
        );
        assert_eq!(v.level, VpcC::vp9_level(320, 240, 30.0));
        assert_eq!(&r[..4], &[1, 0, 0, 0]);
        let c = caps(
            "video/x-vp9,profile=(string)2,chroma-format=(string)4:2:0,bit-depth-luma=(uint)10,bit-depth-chroma=(uint)10,colorimetry=(string)bt2100-pq,width=320,height=240",
        );
        let t = track_config(MediaKind::Video, 0, &c).unwrap();
        let Sequence::Record(r) = &t.sequence else {
            panic!("{t:?}")
        };
        let v = VpcC::parse(r).unwrap();
        assert_eq!((v.profile, v.bit_depth, v.transfer), (2, 10, 16));
        assert_eq!(t.color.unwrap().bit_depth, Some(10));
        let color = t.color.unwrap();
        assert_eq!(color.primaries, Some(9));
    }

    #[test]
    fn audio_codecs() {
        let aac = caps(
            "audio/mpeg,mpegversion=4,stream-format=raw,codec_data=(buffer)1190,rate=48000,channels=2",
        );
        let t = track_config(MediaKind::Audio, 0, &aac).unwrap();
        assert_eq!(t.codec, Codec::Audio(AudioCodec::Legacy(10)));
        assert_eq!(t.meta.rate, Some(48000));
        let t = track_config(MediaKind::Audio, 2, &aac).unwrap();
        assert_eq!(t.codec, Codec::Audio(AudioCodec::FourCc(FourCc::MP4A)));
        let mp3 = caps("audio/mpeg,mpegversion=1,layer=3,rate=44100,channels=1,parsed=true");
        let t = track_config(MediaKind::Audio, 0, &mp3).unwrap();
        assert_eq!(t.sequence, Sequence::None);
        assert_eq!(t.legacy_audio.unwrap().rate, 3);
        assert!(!t.legacy_audio.unwrap().stereo);
        let t = track_config(MediaKind::Audio, 1, &mp3).unwrap();
        assert_eq!(t.sequence, Sequence::Record(Vec::new()));
        let opus = caps("audio/x-opus,channel-mapping-family=0,channels=2,rate=48000");
        let t = track_config(MediaKind::Audio, 0, &opus).unwrap();
        let Sequence::Record(head) = &t.sequence else {
            panic!()
        };
        assert_eq!(OpusHead::parse(head).unwrap().channels, 2);
        let ac3 = caps("audio/x-eac3,framed=true,alignment=frame,rate=48000,channels=2");
        let t = track_config(MediaKind::Audio, 0, &ac3).unwrap();
        assert_eq!(t.codec, Codec::Audio(AudioCodec::FourCc(FourCc::EAC3)));
        let flac = caps("audio/x-flac,framed=true");
        let e = track_config(MediaKind::Audio, 0, &flac).unwrap_err();
        assert_eq!(e.field, "streamheader");
        let e = track_config(MediaKind::Video, 0, &flac).unwrap_err();
        assert_eq!(e.field, "(media type)");
    }

    #[test]
    fn hdr_caps_give_color_info() {
        let c = caps(
            "video/x-h265,stream-format=hvc1,alignment=au,codec_data=(buffer)01,\
             colorimetry=(string)bt2100-pq,\
             mastering-display-info=(string)35400:14600:8500:39850:6550:2300:15635:16450:10000000:50,\
             content-light-level=(string)1000:400",
        );
        let t = track_config(MediaKind::Video, 1, &c).unwrap();
        let info = t.color.unwrap();
        assert_eq!(
            (info.primaries, info.transfer, info.matrix),
            (Some(9), Some(16), Some(9))
        );
        assert_eq!(info.cll, Some((1000, 400)));
        let m = info.mdcv.unwrap();
        assert!((m.max_luminance - 1000.0).abs() < 1e-9, "{m:?}");
        assert!((m.white_point.0 - 0.3127).abs() < 1e-4, "{m:?}");
    }
}
