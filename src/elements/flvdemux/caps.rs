//! FLV codecs → GStreamer caps, for rsflvdemux's pads.
//!
//! Legacy FLV codec ids map as flvdemux maps them; Enhanced RTMP FourCCs map to the caps
//! GStreamer 1.22's parsers and decoders take (see enhanced-rtmp.md §2.3): the configuration
//! record becomes `codec_data` (H.264, H.265, AV1, AAC), caps fields (VP8/VP9 from vpcC),
//! `streamheader` (Opus, FLAC), or nothing (AC-3, E-AC-3, MP3: the frames describe
//! themselves, so their caps come from the first frame's header).

use gst_video::prelude::*;

use crate::rtmp::codecs::{self, ColorInfo, OpusHead, VpcC};
use crate::rtmp::eflv::{Codec, LegacyAudio};
use crate::rtmp::flv::{AudioCodec, FourCc, VideoCodec};

/// What a track needs before its pad can get caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A non-empty configuration record (SequenceStart).
    Record,
    /// A coded frame (its header describes the stream), or nothing at all.
    Frame,
}

/// Why a track cannot be given caps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    /// A codec this element does not know.
    #[error("unsupported {kind} codec {codec}")]
    Unsupported {
        /// "audio" or "video".
        kind: &'static str,
        /// The codec as the stream named it.
        codec: String,
    },
    /// A configuration record that does not parse.
    #[error("bad {codec} configuration record: {reason}")]
    BadRecord {
        /// The codec.
        codec: String,
        /// What was wrong.
        reason: String,
    },
}

/// The codec named as a user reads it: a FourCC, or "legacy video codec id 4 (VP6)".
pub fn codec_name(codec: Codec) -> String {
    match codec {
        Codec::Video(VideoCodec::FourCc(f)) | Codec::Audio(AudioCodec::FourCc(f)) => {
            format!("'{f}'")
        }
        Codec::Video(VideoCodec::Legacy(id)) => format!("legacy video codec id {id}"),
        Codec::Audio(AudioCodec::Legacy(id)) => format!("legacy audio sound format {id}"),
    }
}

/// When the caps of `codec` can be made; `Err` for codecs this element cannot output.
pub fn needs(codec: Codec) -> Result<Needs, CapsError> {
    let unsupported = || CapsError::Unsupported {
        kind: codec.kind().name(),
        codec: codec_name(codec),
    };
    Ok(match codec {
        Codec::Video(VideoCodec::Legacy(7 | 12)) => Needs::Record,
        Codec::Video(VideoCodec::Legacy(2..=6)) => Needs::Frame,
        Codec::Video(VideoCodec::Legacy(_)) => return Err(unsupported()),
        Codec::Video(VideoCodec::FourCc(f)) => match f {
            FourCc::AVC1 | FourCc::HVC1 | FourCc::VVC1 => Needs::Record,
            // In-band sequence headers make AV1 and VP8/9 decodable without a record.
            FourCc::AV01 | FourCc::VP09 | FourCc::VP08 => Needs::Frame,
            _ => return Err(unsupported()),
        },
        Codec::Audio(AudioCodec::Legacy(10)) => Needs::Record,
        Codec::Audio(AudioCodec::Legacy(0..=8 | 11 | 14)) => Needs::Frame,
        Codec::Audio(AudioCodec::Legacy(_)) => return Err(unsupported()),
        Codec::Audio(AudioCodec::FourCc(f)) => match f {
            FourCc::MP4A | FourCc::OPUS | FourCc::FLAC => Needs::Record,
            FourCc::MP3 | FourCc::AC3 | FourCc::EAC3 => Needs::Frame,
            _ => return Err(unsupported()),
        },
    })
}

/// Caps for a track: `record` is the last non-empty SequenceStart body, `frame` the first
/// coded frame (for codecs that describe themselves), `legacy` the legacy audio flags.
pub fn caps_for(
    codec: Codec,
    record: Option<&[u8]>,
    frame: Option<&[u8]>,
    legacy: Option<LegacyAudio>,
    color: Option<&ColorInfo>,
) -> Result<gst::Caps, CapsError> {
    let bad = |reason: String| CapsError::BadRecord {
        codec: codec_name(codec),
        reason,
    };
    let buffer = |b: &[u8]| gst::Buffer::from_slice(b.to_vec());
    let mut caps = match codec {
        Codec::Video(VideoCodec::Legacy(7)) | Codec::Video(VideoCodec::FourCc(FourCc::AVC1)) => {
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .field_if_some("codec_data", record.map(buffer))
                .build()
        }
        Codec::Video(VideoCodec::Legacy(12)) | Codec::Video(VideoCodec::FourCc(FourCc::HVC1)) => {
            gst::Caps::builder("video/x-h265")
                .field("stream-format", "hvc1")
                .field("alignment", "au")
                .field_if_some("codec_data", record.map(buffer))
                .build()
        }
        Codec::Video(VideoCodec::FourCc(FourCc::VVC1)) => gst::Caps::builder("video/x-h266")
            .field("stream-format", "vvc1")
            .field("alignment", "au")
            .field_if_some("codec_data", record.map(buffer))
            .build(),
        Codec::Video(VideoCodec::FourCc(FourCc::AV01)) => {
            let mut b = gst::Caps::builder("video/x-av1")
                .field("stream-format", "obu-stream")
                .field("alignment", "tu");
            if let Some(record) = record {
                let cfg = codecs::Av1Config::parse(record).map_err(|e| bad(e.to_string()))?;
                let chroma = match (cfg.monochrome, cfg.subsampling_x, cfg.subsampling_y) {
                    (true, _, _) => "4:0:0",
                    (false, true, true) => "4:2:0",
                    (false, true, false) => "4:2:2",
                    _ => "4:4:4",
                };
                b = b
                    .field(
                        "profile",
                        match cfg.profile {
                            0 => "main",
                            1 => "high",
                            _ => "professional",
                        },
                    )
                    .field("chroma-format", chroma)
                    .field("bit-depth-luma", u32::from(cfg.bit_depth))
                    .field("bit-depth-chroma", u32::from(cfg.bit_depth));
            }
            b.build()
        }
        Codec::Video(VideoCodec::FourCc(f @ (FourCc::VP09 | FourCc::VP08))) => {
            let name = if f == FourCc::VP09 {
                "video/x-vp9"
            } else {
                "video/x-vp8"
            };
            let mut caps = gst::Caps::new_empty_simple(name);
            if let Some(record) = record {
                let v = VpcC::parse(record).map_err(|e| bad(e.to_string()))?;
                let caps = caps.get_mut().expect("new caps");
                if f == FourCc::VP09 {
                    let chroma = match v.chroma_subsampling {
                        0 | 1 => "4:2:0",
                        2 => "4:2:2",
                        _ => "4:4:4",
                    };
                    caps.set("profile", v.profile.to_string());
                    caps.set("chroma-format", chroma);
                    caps.set("bit-depth-luma", u32::from(v.bit_depth));
                    caps.set("bit-depth-chroma", u32::from(v.bit_depth));
                }
                let colorimetry = colorimetry(
                    v.full_range,
                    Some(v.primaries),
                    Some(v.transfer),
                    Some(v.matrix),
                );
                if let Some(c) = colorimetry {
                    caps.set("colorimetry", c);
                }
            }
            caps
        }
        Codec::Video(VideoCodec::Legacy(2)) => gst::Caps::builder("video/x-flash-video")
            .field("flvversion", 1i32)
            .build(),
        Codec::Video(VideoCodec::Legacy(3)) => gst::Caps::new_empty_simple("video/x-flash-screen"),
        Codec::Video(VideoCodec::Legacy(4)) => gst::Caps::new_empty_simple("video/x-vp6-flash"),
        Codec::Video(VideoCodec::Legacy(5)) => gst::Caps::new_empty_simple("video/x-vp6-alpha"),
        Codec::Video(VideoCodec::Legacy(6)) => gst::Caps::new_empty_simple("video/x-flash-screen2"),
        Codec::Audio(AudioCodec::Legacy(10)) | Codec::Audio(AudioCodec::FourCc(FourCc::MP4A)) => {
            let mut b = gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw")
                .field("framed", true);
            if let Some(record) = record {
                if let Some((rate, channels)) = codecs::aac_config(record) {
                    b = b.field("rate", rate as i32);
                    if channels > 0 {
                        b = b.field("channels", channels as i32);
                    }
                }
                b = b.field("codec_data", buffer(record));
            }
            b.build()
        }
        Codec::Audio(AudioCodec::Legacy(2 | 14))
        | Codec::Audio(AudioCodec::FourCc(FourCc::MP3)) => {
            let mut b = gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 1i32)
                .field("layer", 3i32)
                .field("parsed", true);
            match frame.and_then(codecs::mpeg_audio_header) {
                Some((_, _, rate, channels)) => {
                    b = b
                        .field("rate", rate as i32)
                        .field("channels", channels as i32);
                }
                None => {
                    if let Some(l) = legacy {
                        b = b
                            .field("rate", legacy_rate(codec, l))
                            .field("channels", if l.stereo { 2i32 } else { 1 });
                    }
                }
            }
            b.build()
        }
        Codec::Audio(AudioCodec::FourCc(FourCc::OPUS)) => {
            // An empty record means mono/stereo defaults; take stereo.
            let head = match record {
                Some(r) => OpusHead::parse(r).map_err(|e| bad(e.to_string()))?,
                None => OpusHead::simple(2, 48000),
            };
            let mut b = gst::Caps::builder("audio/x-opus")
                .field("rate", 48000i32)
                .field("channels", i32::from(head.channels))
                .field("channel-mapping-family", i32::from(head.family))
                .field("stream-count", i32::from(head.streams))
                .field("coupled-count", i32::from(head.coupled));
            if head.family != 0 {
                b = b.field(
                    "channel-mapping",
                    gst::Array::new(head.mapping.iter().map(|&m| i32::from(m))),
                );
            }
            b.field(
                "streamheader",
                gst::Array::new([
                    buffer(&head.to_bytes()).to_send_value(),
                    buffer(&codecs::opus_tags("rsflvdemux")).to_send_value(),
                ]),
            )
            .build()
        }
        Codec::Audio(AudioCodec::FourCc(FourCc::FLAC)) => {
            let record = record.unwrap_or_default();
            let info = codecs::flac_streaminfo(record)
                .ok_or_else(|| bad(format!("{} bytes, no 34-byte STREAMINFO", record.len())))?;
            let (rate, channels, _) =
                codecs::flac_params(info).ok_or_else(|| bad("STREAMINFO does not parse".into()))?;
            gst::Caps::builder("audio/x-flac")
                .field("framed", true)
                .field("rate", rate as i32)
                .field("channels", channels as i32)
                .field(
                    "streamheader",
                    gst::Array::new([buffer(&codecs::flac_streamheader(info)).to_send_value()]),
                )
                .build()
        }
        Codec::Audio(AudioCodec::FourCc(f @ (FourCc::AC3 | FourCc::EAC3))) => {
            let name = if f == FourCc::AC3 {
                "audio/x-ac3"
            } else {
                "audio/x-eac3"
            };
            let mut b = gst::Caps::builder(name)
                .field("framed", true)
                .field("alignment", "frame");
            if let Some((rate, channels, _)) = frame.and_then(codecs::ac3_header) {
                b = b
                    .field("rate", rate as i32)
                    .field("channels", channels as i32);
            }
            b.build()
        }
        Codec::Audio(AudioCodec::Legacy(id @ (0 | 3))) => {
            let l = legacy.unwrap_or_default();
            let format = match (l.sixteen_bit, id) {
                (false, _) => "U8",
                // Format 0 is platform-endian; every file in practice is little-endian.
                (true, _) => "S16LE",
            };
            gst::Caps::builder("audio/x-raw")
                .field("format", format)
                .field("layout", "interleaved")
                .field("rate", legacy_rate(codec, l))
                .field("channels", if l.stereo { 2i32 } else { 1 })
                .build()
        }
        Codec::Audio(AudioCodec::Legacy(1)) => {
            let l = legacy.unwrap_or_default();
            let bits = frame
                .and_then(|f| f.first())
                .map_or(2, |b| i32::from(b >> 6) + 2);
            gst::Caps::builder("audio/x-adpcm")
                .field("layout", "swf")
                .field("bitrate", bits)
                .field("rate", legacy_rate(codec, l))
                .field("channels", if l.stereo { 2i32 } else { 1 })
                .build()
        }
        Codec::Audio(AudioCodec::Legacy(4..=6)) => {
            let l = legacy.unwrap_or_default();
            gst::Caps::builder("audio/x-nellymoser")
                .field("rate", legacy_rate(codec, l))
                .field("channels", if l.stereo { 2i32 } else { 1 })
                .build()
        }
        Codec::Audio(AudioCodec::Legacy(id @ (7 | 8))) => {
            let l = legacy.unwrap_or_default();
            let name = if id == 7 {
                "audio/x-alaw"
            } else {
                "audio/x-mulaw"
            };
            gst::Caps::builder(name)
                .field("rate", legacy_rate(codec, l))
                .field("channels", if l.stereo { 2i32 } else { 1 })
                .build()
        }
        Codec::Audio(AudioCodec::Legacy(11)) => gst::Caps::builder("audio/x-speex")
            .field("rate", 16000i32)
            .field("channels", 1i32)
            .build(),
        _ => {
            return Err(CapsError::Unsupported {
                kind: codec.kind().name(),
                codec: codec_name(codec),
            });
        }
    };
    if let (Codec::Video(_), Some(color)) = (codec, color) {
        add_color_info(caps.make_mut(), color);
    }
    Ok(caps)
}

/// The sample rate of a legacy audio tag; some formats fix it whatever the flags say.
fn legacy_rate(codec: Codec, l: LegacyAudio) -> i32 {
    match codec {
        Codec::Audio(AudioCodec::Legacy(14)) => 8000,
        Codec::Audio(AudioCodec::Legacy(5)) => 8000,
        Codec::Audio(AudioCodec::Legacy(4)) => 16000,
        Codec::Audio(AudioCodec::Legacy(7 | 8)) => 8000,
        _ => [5512, 11025, 22050, 44100][usize::from(l.rate & 3)],
    }
}

/// `colorimetry` from H.273 codes, when at least one of them is specified.
fn colorimetry(
    full_range: bool,
    primaries: Option<u8>,
    transfer: Option<u8>,
    matrix: Option<u8>,
) -> Option<String> {
    let unspecified = |v: Option<u8>| v.is_none_or(|v| v == 2);
    if unspecified(primaries) && unspecified(transfer) && unspecified(matrix) {
        return None;
    }
    let c = gst_video::VideoColorimetry::new(
        if full_range {
            gst_video::VideoColorRange::Range0_255
        } else {
            gst_video::VideoColorRange::Range16_235
        },
        gst_video::VideoColorMatrix::from_iso(u32::from(matrix.unwrap_or(2))),
        gst_video::VideoTransferFunction::from_iso(u32::from(transfer.unwrap_or(2))),
        gst_video::VideoColorPrimaries::from_iso(u32::from(primaries.unwrap_or(2))),
    );
    Some(c.to_string())
}

/// HDR fields from a `colorInfo` metadata frame: colorimetry, mastering display, light level.
pub fn add_color_info(caps: &mut gst::CapsRef, info: &ColorInfo) {
    if let Some(c) = colorimetry(false, info.primaries, info.transfer, info.matrix) {
        caps.set("colorimetry", c);
    }
    if let Some(m) = info.mdcv {
        let coord = |(x, y): (f64, f64)| {
            gst_video::VideoMasteringDisplayInfoCoordinate::new(x as f32, y as f32)
        };
        let mdi = gst_video::VideoMasteringDisplayInfo::new(
            [
                coord(m.primaries[0]),
                coord(m.primaries[1]),
                coord(m.primaries[2]),
            ],
            coord(m.white_point),
            (m.max_luminance * 10000.0).clamp(0.0, u32::MAX as f64) as u32,
            (m.min_luminance * 10000.0).clamp(0.0, u32::MAX as f64) as u32,
        );
        mdi.add_to_caps(caps);
    }
    if let Some((cll, fall)) = info.cll {
        gst_video::VideoContentLightLevel::new(cll, fall).add_to_caps(caps);
    }
}

/// Every caps structure the pads may carry, for the pad templates.
pub fn template_caps(video: bool) -> gst::Caps {
    let names: &[&str] = if video {
        &[
            "video/x-h264",
            "video/x-h265",
            "video/x-h266",
            "video/x-av1",
            "video/x-vp9",
            "video/x-vp8",
            "video/x-flash-video",
            "video/x-flash-screen",
            "video/x-flash-screen2",
            "video/x-vp6-flash",
            "video/x-vp6-alpha",
        ]
    } else {
        &[
            "audio/mpeg",
            "audio/x-opus",
            "audio/x-flac",
            "audio/x-ac3",
            "audio/x-eac3",
            "audio/x-raw",
            "audio/x-adpcm",
            "audio/x-nellymoser",
            "audio/x-alaw",
            "audio/x-mulaw",
            "audio/x-speex",
        ]
    };
    let mut caps = gst::Caps::new_empty();
    {
        let caps = caps.get_mut().expect("new caps");
        for name in names {
            caps.append_structure(gst::Structure::new_empty(*name));
        }
    }
    caps
}
