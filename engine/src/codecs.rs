//! Codec configuration records and frame headers, to and from the numbers a muxer or demuxer
//! needs: what Enhanced FLV carries in a SequenceStart, and the few frame-header fields that
//! give a codec's sample rate and channels where no record exists.
//!
//! Every parser returns `None` (or a [`RecordError`] where the reason matters) on input that
//! is too short or malformed; nothing here panics on hostile bytes.

use crate::amf0::Value;

/// Why a record could not be read or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record is shorter than its fixed part.
    #[error("{what} of {len} bytes is too short (needs {need})")]
    TooShort {
        /// Which record.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length needed.
        need: usize,
    },
    /// A magic value or version that is not the one the format defines.
    #[error("{what} has {field} {value:#x}, expected {expected:#x}")]
    BadValue {
        /// Which record.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u32,
        /// The value required.
        expected: u32,
    },
    /// An AV1 temporal unit without a sequence header OBU.
    #[error("the AV1 temporal unit of {len} bytes has no sequence header OBU")]
    NoSequenceHeader {
        /// Length of the temporal unit.
        len: usize,
    },
}

/// Reads bits MSB first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v << 1 | self.bit()?;
        }
        Some(v)
    }

    fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros >= 32 {
                return None;
            }
        }
        Some(self.bits(zeros)?.wrapping_add((1u32 << zeros) - 1))
    }
}

// ---------------------------------------------------------------------------------------
// AAC

/// Sample rate and channel count of an AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
pub fn aac_config(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut b = Bits { data: asc, pos: 0 };
    let object = b.bits(5)?;
    if object == 31 {
        b.bits(6)?;
    }
    let index = b.bits(4)?;
    let rate = if index == 15 {
        b.bits(24)?
    } else {
        *RATES.get(index as usize)?
    };
    let channels = b.bits(4)?;
    let channels = match channels {
        1..=6 => channels,
        7 => 8,
        _ => return Some((rate, 0)),
    };
    Some((rate, channels))
}

// ---------------------------------------------------------------------------------------
// MP3

/// MPEG audio version (1, 2 or 25 for 2.5), layer, sample rate and channels of the frame
/// header at the start of `frame`.
pub fn mpeg_audio_header(frame: &[u8]) -> Option<(u32, u32, u32, u32)> {
    if frame.len() < 4 || frame[0] != 0xff || frame[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = match (frame[1] >> 3) & 3 {
        0 => 25,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    let layer = match (frame[1] >> 1) & 3 {
        1 => 3,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    let base = match (frame[2] >> 2) & 3 {
        0 => 44100,
        1 => 48000,
        2 => 32000,
        _ => return None,
    };
    let rate = match version {
        1 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let channels = if frame[3] >> 6 == 3 { 1 } else { 2 };
    Some((version, layer, rate, channels))
}

// ---------------------------------------------------------------------------------------
// AC-3 / E-AC-3

/// Sample rate and channel count (LFE included) from an AC-3 or E-AC-3 syncframe header,
/// and whether it is E-AC-3 (bsid > 10).
pub fn ac3_header(frame: &[u8]) -> Option<(u32, u32, bool)> {
    const CHANNELS: [u32; 8] = [2, 1, 2, 3, 3, 4, 4, 5];
    if frame.len() < 8 || frame[0] != 0x0b || frame[1] != 0x77 {
        return None;
    }
    let bsid = frame[5] >> 3;
    if bsid <= 10 {
        let rate = match frame[4] >> 6 {
            0 => 48000,
            1 => 44100,
            2 => 32000,
            _ => return None,
        };
        let mut b = Bits {
            data: &frame[6..],
            pos: 0,
        };
        let acmod = b.bits(3)?;
        if acmod & 1 != 0 && acmod != 1 {
            b.bits(2)?;
        }
        if acmod & 4 != 0 {
            b.bits(2)?;
        }
        if acmod == 2 {
            b.bits(2)?;
        }
        let lfe = b.bit()?;
        Some((rate, CHANNELS[acmod as usize] + lfe, false))
    } else {
        let mut b = Bits {
            data: &frame[4..],
            pos: 0,
        };
        let fscod = b.bits(2)?;
        let rate = match fscod {
            0 => 48000,
            1 => 44100,
            2 => 32000,
            _ => match b.bits(2)? {
                0 => 24000,
                1 => 22050,
                2 => 16000,
                _ => return None,
            },
        };
        if fscod != 3 {
            b.bits(2)?; // numblkscod
        }
        let acmod = b.bits(3)?;
        let lfe = b.bit()?;
        Some((rate, CHANNELS[acmod as usize] + lfe, true))
    }
}

// ---------------------------------------------------------------------------------------
// Opus

/// The Opus identification header (RFC 7845 §5.1), "OpusHead".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channel count.
    pub channels: u8,
    /// Samples (at 48 kHz) to drop at the start.
    pub pre_skip: u16,
    /// The input sample rate, informational.
    pub input_rate: u32,
    /// Output gain, Q7.8 dB.
    pub gain: i16,
    /// Channel mapping family (0 mono/stereo, 1 Vorbis order, 255 undefined).
    pub family: u8,
    /// Streams in each packet (family ≠ 0).
    pub streams: u8,
    /// Coupled (stereo) streams.
    pub coupled: u8,
    /// Channel → stream index, one per channel (family ≠ 0).
    pub mapping: Vec<u8>,
}

impl OpusHead {
    const MAGIC: &'static [u8; 8] = b"OpusHead";

    /// The header of a family-0 stream of `channels` (1 or 2) channels.
    pub fn simple(channels: u8, input_rate: u32) -> OpusHead {
        OpusHead {
            channels,
            pre_skip: 312,
            input_rate,
            gain: 0,
            family: 0,
            streams: 1,
            coupled: u8::from(channels == 2),
            mapping: Vec::new(),
        }
    }

    /// Parses the header.
    pub fn parse(data: &[u8]) -> Result<OpusHead, RecordError> {
        let short = |need| RecordError::TooShort {
            what: "OpusHead",
            len: data.len(),
            need,
        };
        if data.len() < 19 {
            return Err(short(19));
        }
        if &data[..8] != Self::MAGIC {
            return Err(RecordError::BadValue {
                what: "OpusHead",
                field: "magic",
                value: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                expected: u32::from_be_bytes(*b"Opus"),
            });
        }
        if data[8] >> 4 != 0 {
            return Err(RecordError::BadValue {
                what: "OpusHead",
                field: "version",
                value: u32::from(data[8]),
                expected: 1,
            });
        }
        let channels = data[9];
        let family = data[18];
        let mut head = OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([data[10], data[11]]),
            input_rate: u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
            gain: i16::from_le_bytes([data[16], data[17]]),
            family,
            streams: 1,
            coupled: u8::from(channels == 2),
            mapping: Vec::new(),
        };
        if family != 0 {
            let need = 21 + usize::from(channels);
            if data.len() < need {
                return Err(short(need));
            }
            head.streams = data[19];
            head.coupled = data[20];
            head.mapping = data[21..need].to_vec();
        }
        Ok(head)
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + self.mapping.len());
        out.extend_from_slice(Self::MAGIC);
        out.push(1);
        out.push(self.channels);
        out.extend_from_slice(&self.pre_skip.to_le_bytes());
        out.extend_from_slice(&self.input_rate.to_le_bytes());
        out.extend_from_slice(&self.gain.to_le_bytes());
        out.push(self.family);
        if self.family != 0 {
            out.push(self.streams);
            out.push(self.coupled);
            out.extend_from_slice(&self.mapping);
        }
        out
    }
}

/// A minimal "OpusTags" comment header (RFC 7845 §5.2) with `vendor` and no comments.
pub fn opus_tags(vendor: &str) -> Vec<u8> {
    let mut out = b"OpusTags".to_vec();
    out.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    out.extend_from_slice(vendor.as_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

// ---------------------------------------------------------------------------------------
// FLAC

/// The length of a FLAC STREAMINFO block body.
pub const FLAC_STREAMINFO_LEN: usize = 34;

/// The STREAMINFO block body inside what an FLV SequenceStart (or a GStreamer streamheader
/// buffer) carries: the 34 bytes alone (FFmpeg), `fLaC` + block header + STREAMINFO (the
/// E-RTMP text), or the Ogg-FLAC mapping's 9-byte prefix before those (flacenc's caps).
pub fn flac_streaminfo(data: &[u8]) -> Option<&[u8]> {
    let data = match data {
        [0x7f, b'F', b'L', b'A', b'C', rest @ ..] if rest.len() >= 4 => &rest[4..],
        _ => data,
    };
    let data = match data {
        [b'f', b'L', b'a', b'C', rest @ ..] => rest.get(4..)?,
        _ => data,
    };
    data.get(..FLAC_STREAMINFO_LEN)
}

/// Sample rate, channels and bits per sample of a STREAMINFO body.
pub fn flac_params(streaminfo: &[u8]) -> Option<(u32, u32, u32)> {
    if streaminfo.len() < FLAC_STREAMINFO_LEN {
        return None;
    }
    let mut b = Bits {
        data: &streaminfo[10..],
        pos: 0,
    };
    let rate = b.bits(20)?;
    let channels = b.bits(3)? + 1;
    let bits = b.bits(5)? + 1;
    Some((rate, channels, bits))
}

/// The first buffer of GStreamer's FLAC `streamheader`: the Ogg-FLAC mapping prefix
/// (0x7F "FLAC", version 1.0, no further header packets), `fLaC`, and STREAMINFO as the last
/// metadata block.
pub fn flac_streamheader(streaminfo: &[u8]) -> Vec<u8> {
    let mut out = vec![0x7f, b'F', b'L', b'A', b'C', 1, 0, 0, 0];
    out.extend_from_slice(b"fLaC");
    out.push(0x80); // last metadata block, type 0 (STREAMINFO)
    out.extend_from_slice(&(FLAC_STREAMINFO_LEN as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&streaminfo[..FLAC_STREAMINFO_LEN.min(streaminfo.len())]);
    out
}

// ---------------------------------------------------------------------------------------
// VP8 / VP9

/// The VPCodecConfigurationRecord (`vpcC`) body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpcC {
    /// Profile 0–3.
    pub profile: u8,
    /// Level × 10 (10 = level 1), 0 if unknown.
    pub level: u8,
    /// Bit depth (8, 10, 12).
    pub bit_depth: u8,
    /// 0 4:2:0 vertical, 1 4:2:0 colocated, 2 4:2:2, 3 4:4:4.
    pub chroma_subsampling: u8,
    /// Full-range video.
    pub full_range: bool,
    /// ISO/IEC 23091-4 (H.273) colour primaries.
    pub primaries: u8,
    /// Transfer characteristics.
    pub transfer: u8,
    /// Matrix coefficients.
    pub matrix: u8,
}

impl VpcC {
    /// Parses the record with or without the MP4 FullBox prefix (`01 00 00 00`, FFmpeg and
    /// gortmplib write it).
    pub fn parse(data: &[u8]) -> Result<VpcC, RecordError> {
        let body = if data.len() >= 12 && data[0] == 1 && data[1..4] == [0, 0, 0] {
            &data[4..]
        } else {
            data
        };
        if body.len() < 8 {
            return Err(RecordError::TooShort {
                what: "vpcC record",
                len: data.len(),
                need: 8,
            });
        }
        Ok(VpcC {
            profile: body[0],
            level: body[1],
            bit_depth: body[2] >> 4,
            chroma_subsampling: (body[2] >> 1) & 7,
            full_range: body[2] & 1 != 0,
            primaries: body[3],
            transfer: body[4],
            matrix: body[5],
        })
    }

    /// The record as written on the wire: FullBox prefix, the 8 bytes, no init data.
    pub fn to_bytes(&self) -> [u8; 12] {
        [
            1,
            0,
            0,
            0,
            self.profile,
            self.level,
            (self.bit_depth & 0x0f) << 4
                | (self.chroma_subsampling & 7) << 1
                | u8::from(self.full_range),
            self.primaries,
            self.transfer,
            self.matrix,
            0,
            0,
        ]
    }

    /// The VP9 level (× 10) for a picture size and frame rate, from the luma sample rate and
    /// picture size limits of the VP9 level table.
    pub fn vp9_level(width: u32, height: u32, fps: f64) -> u8 {
        const LEVELS: [(u8, u64, u64); 14] = [
            (10, 829_440, 36_864),
            (11, 2_764_800, 73_728),
            (20, 4_608_000, 122_880),
            (21, 9_216_000, 245_760),
            (30, 20_736_000, 552_960),
            (31, 36_864_000, 983_040),
            (40, 83_558_400, 2_228_224),
            (41, 160_432_128, 2_228_224),
            (50, 311_951_360, 8_912_896),
            (51, 588_251_136, 8_912_896),
            (52, 1_176_502_272, 8_912_896),
            (60, 1_176_502_272, 35_651_584),
            (61, 2_353_004_544, 35_651_584),
            (62, 4_706_009_088, 35_651_584),
        ];
        let size = u64::from(width) * u64::from(height);
        let rate = (size as f64 * fps.max(0.0)) as u64;
        LEVELS
            .iter()
            .find(|(_, max_rate, max_size)| rate <= *max_rate && size <= *max_size)
            .map_or(62, |l| l.0)
    }
}

// ---------------------------------------------------------------------------------------
// AV1

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// One OBU of a low-overhead bitstream: its type and its whole bytes (header included).
fn next_obu(data: &[u8]) -> Option<(u8, usize, usize)> {
    // Returns (type, header length, total length).
    let h = *data.first()?;
    let obu_type = (h >> 3) & 0x0f;
    let mut pos = 1 + usize::from(h & 0x04 != 0);
    if h & 0x02 == 0 {
        // No size field: the OBU runs to the end.
        return (data.len() >= pos).then_some((obu_type, pos, data.len()));
    }
    let mut size: u64 = 0;
    for i in 0..8 {
        let b = *data.get(pos)?;
        pos += 1;
        size |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    let total = pos.checked_add(usize::try_from(size).ok()?)?;
    (total <= data.len()).then_some((obu_type, pos, total))
}

/// The OBUs of a temporal unit without its temporal delimiters (as OBS sends AV1); `None`
/// when it has none, so the caller can send the buffer as it is.
pub fn av1_strip_temporal_delimiters(tu: &[u8]) -> Option<Vec<u8>> {
    let mut rest = tu;
    let mut out: Option<Vec<u8>> = None;
    let mut kept_from = 0;
    let mut offset = 0;
    while !rest.is_empty() {
        let (obu_type, _, total) = next_obu(rest)?;
        if obu_type == OBU_TEMPORAL_DELIMITER {
            let v = out.get_or_insert_with(|| Vec::with_capacity(tu.len()));
            v.extend_from_slice(&tu[kept_from..offset]);
            kept_from = offset + total;
        }
        offset += total;
        rest = &rest[total..];
    }
    let mut v = out?;
    v.extend_from_slice(&tu[kept_from..]);
    Some(v)
}

/// Builds the AV1CodecConfigurationRecord (`av1C`) from the sequence header OBU found in a
/// temporal unit (a keyframe's, normally). The record's configOBUs hold that OBU.
pub fn av1c_from_temporal_unit(tu: &[u8]) -> Result<Vec<u8>, RecordError> {
    let no_header = RecordError::NoSequenceHeader { len: tu.len() };
    let mut rest = tu;
    while !rest.is_empty() {
        let (obu_type, header_len, total) = next_obu(rest).ok_or(no_header.clone())?;
        if obu_type == OBU_SEQUENCE_HEADER {
            let fields = av1_sequence_fields(&rest[header_len..total]).ok_or(no_header)?;
            let mut out = fields.to_vec();
            let obu = &rest[..total];
            if obu[0] & 0x02 != 0 {
                out.extend_from_slice(obu);
            } else {
                // configOBUs must carry size fields: rewrite the header with one.
                out.push(obu[0] | 0x02);
                out.extend_from_slice(&obu[1..header_len]);
                let mut n = total - header_len;
                loop {
                    let b = (n & 0x7f) as u8;
                    n >>= 7;
                    if n == 0 {
                        out.push(b);
                        break;
                    }
                    out.push(b | 0x80);
                }
                out.extend_from_slice(&obu[header_len..]);
            }
            return Ok(out);
        }
        rest = &rest[total..];
    }
    Err(no_header)
}

/// The four fixed av1C bytes from a sequence header OBU payload (AV1 spec §5.5).
fn av1_sequence_fields(payload: &[u8]) -> Option<[u8; 4]> {
    let mut b = Bits {
        data: payload,
        pos: 0,
    };
    let profile = b.bits(3)?;
    b.bit()?; // still_picture
    let reduced = b.bit()? == 1;
    let (level, tier);
    if reduced {
        level = b.bits(5)?;
        tier = 0;
    } else {
        let mut decoder_model_info = false;
        let mut buffer_delay_len = 0;
        if b.bit()? == 1 {
            // timing_info
            b.bits(32)?;
            b.bits(32)?;
            if b.bit()? == 1 {
                b.uvlc()?;
            }
            decoder_model_info = b.bit()? == 1;
            if decoder_model_info {
                buffer_delay_len = b.bits(5)? + 1;
                b.bits(32)?;
                b.bits(5)?;
                b.bits(5)?;
            }
        }
        let initial_display_delay = b.bit()? == 1;
        let count = b.bits(5)? + 1;
        let mut first = None;
        for _ in 0..count {
            b.bits(12)?; // operating_point_idc
            let l = b.bits(5)?;
            let t = if l > 7 { b.bit()? } else { 0 };
            if decoder_model_info && b.bit()? == 1 {
                b.bits(buffer_delay_len)?;
                b.bits(buffer_delay_len)?;
                b.bit()?;
            }
            if initial_display_delay && b.bit()? == 1 {
                b.bits(4)?;
            }
            first.get_or_insert((l, t));
        }
        (level, tier) = first?;
    }
    let width_bits = b.bits(4)? + 1;
    let height_bits = b.bits(4)? + 1;
    b.bits(width_bits)?;
    b.bits(height_bits)?;
    if !reduced && b.bit()? == 1 {
        // frame_id_numbers_present
        b.bits(4)?;
        b.bits(3)?;
    }
    b.bits(3)?; // 128x128 superblock, filter intra, intra edge filter
    if !reduced {
        b.bits(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = b.bit()? == 1;
        if order_hint {
            b.bits(2)?; // jnt_comp, ref_frame_mvs
        }
        let force_screen_content = if b.bit()? == 1 { 2 } else { b.bit()? };
        if force_screen_content > 0 && b.bit()? == 0 {
            b.bit()?; // seq_force_integer_mv
        }
        if order_hint {
            b.bits(3)?;
        }
    }
    b.bits(3)?; // superres, cdef, restoration
    // color_config
    let high_bitdepth = b.bit()?;
    let twelve_bit = if profile == 2 && high_bitdepth == 1 {
        b.bit()?
    } else {
        0
    };
    let mono = if profile == 1 { 0 } else { b.bit()? };
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if b.bit()? == 1 {
        primaries = b.bits(8)?;
        transfer = b.bits(8)?;
        matrix = b.bits(8)?;
    }
    let (ss_x, ss_y, mut csp);
    csp = 0;
    if mono == 1 {
        b.bit()?;
        (ss_x, ss_y) = (1, 1);
    } else if primaries == 1 && transfer == 13 && matrix == 0 {
        (ss_x, ss_y) = (0, 0);
    } else {
        b.bit()?; // color_range
        (ss_x, ss_y) = match profile {
            0 => (1, 1),
            1 => (0, 0),
            _ if twelve_bit == 1 => {
                let x = b.bit()?;
                let y = if x == 1 { b.bit()? } else { 0 };
                (x, y)
            }
            _ => (1, 0),
        };
        if ss_x == 1 && ss_y == 1 {
            csp = b.bits(2)?;
        }
    }
    Some([
        0x81,
        (profile as u8) << 5 | level as u8,
        (tier as u8) << 7
            | (high_bitdepth as u8) << 6
            | (twelve_bit as u8) << 5
            | (mono as u8) << 4
            | (ss_x as u8) << 3
            | (ss_y as u8) << 2
            | csp as u8,
        0,
    ])
}

/// The fixed fields of an av1C record: profile, level index, tier, bit depth, monochrome,
/// subsampling x/y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Config {
    /// seq_profile.
    pub profile: u8,
    /// seq_level_idx of operating point 0.
    pub level: u8,
    /// seq_tier of operating point 0.
    pub tier: u8,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// Monochrome.
    pub monochrome: bool,
    /// Horizontal chroma subsampling.
    pub subsampling_x: bool,
    /// Vertical chroma subsampling.
    pub subsampling_y: bool,
}

impl Av1Config {
    /// Parses the first four bytes of an av1C record.
    pub fn parse(data: &[u8]) -> Result<Av1Config, RecordError> {
        if data.len() < 4 {
            return Err(RecordError::TooShort {
                what: "av1C record",
                len: data.len(),
                need: 4,
            });
        }
        if data[0] != 0x81 {
            return Err(RecordError::BadValue {
                what: "av1C record",
                field: "marker and version",
                value: u32::from(data[0]),
                expected: 0x81,
            });
        }
        let high = data[2] & 0x40 != 0;
        let twelve = data[2] & 0x20 != 0;
        Ok(Av1Config {
            profile: data[1] >> 5,
            level: data[1] & 0x1f,
            tier: data[2] >> 7,
            bit_depth: match (high, twelve) {
                (false, _) => 8,
                (true, false) => 10,
                (true, true) => 12,
            },
            monochrome: data[2] & 0x10 != 0,
            subsampling_x: data[2] & 0x08 != 0,
            subsampling_y: data[2] & 0x04 != 0,
        })
    }
}

// ---------------------------------------------------------------------------------------
// HDR colour metadata (the Enhanced RTMP `colorInfo` Metadata frame)

/// Mastering display colour volume: CIE 1931 xy chromaticities and luminance in cd/m².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mdcv {
    /// Red, green, blue primaries and the white point, (x, y) each.
    pub primaries: [(f64, f64); 3],
    /// White point (x, y).
    pub white_point: (f64, f64),
    /// Maximum luminance, cd/m².
    pub max_luminance: f64,
    /// Minimum luminance, cd/m².
    pub min_luminance: f64,
}

/// What a `colorInfo` metadata frame says.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorInfo {
    /// Bit depth, if given.
    pub bit_depth: Option<u8>,
    /// H.273 colour primaries.
    pub primaries: Option<u8>,
    /// H.273 transfer characteristics.
    pub transfer: Option<u8>,
    /// H.273 matrix coefficients.
    pub matrix: Option<u8>,
    /// Content light level: (maxCLL, maxFALL), cd/m².
    pub cll: Option<(u16, u16)>,
    /// Mastering display.
    pub mdcv: Option<Mdcv>,
}

impl ColorInfo {
    /// Reads the AMF values of a Metadata packet (`"colorInfo", {…}`). `None` if the packet
    /// is not colorInfo; an empty or Undefined object resets (all fields `None`).
    pub fn from_amf(values: &[Value]) -> Option<ColorInfo> {
        if values.first()?.as_str()? != "colorInfo" {
            return None;
        }
        let mut info = ColorInfo::default();
        let Some(obj) = values.get(1) else {
            return Some(info);
        };
        let num = |o: &Value, k: &str| o.get(k).and_then(Value::as_f64);
        let code = |o: &Value, k: &str| {
            num(o, k)
                .filter(|v| (0.0..=255.0).contains(v))
                .map(|v| v as u8)
        };
        if let Some(c) = obj.get("colorConfig") {
            info.bit_depth = code(c, "bitDepth");
            info.primaries = code(c, "colorPrimaries");
            info.transfer = code(c, "transferCharacteristics");
            info.matrix = code(c, "matrixCoefficients");
        }
        if let Some(c) = obj.get("hdrCll") {
            let clamp = |v: f64| v.clamp(0.0, 65535.0) as u16;
            if let (Some(cll), Some(fall)) = (num(c, "maxCLL"), num(c, "maxFall")) {
                info.cll = Some((clamp(cll), clamp(fall)));
            }
        }
        if let Some(m) = obj.get("hdrMdcv") {
            let f = |k| num(m, k);
            if let (
                Some(rx),
                Some(ry),
                Some(gx),
                Some(gy),
                Some(bx),
                Some(by),
                Some(wx),
                Some(wy),
                Some(max),
                Some(min),
            ) = (
                f("redX"),
                f("redY"),
                f("greenX"),
                f("greenY"),
                f("blueX"),
                f("blueY"),
                f("whitePointX"),
                f("whitePointY"),
                f("maxLuminance"),
                f("minLuminance"),
            ) {
                info.mdcv = Some(Mdcv {
                    primaries: [(rx, ry), (gx, gy), (bx, by)],
                    white_point: (wx, wy),
                    max_luminance: max,
                    min_luminance: min,
                });
            }
        }
        Some(info)
    }

    /// The AMF values of a Metadata packet carrying this.
    pub fn to_amf(&self) -> Vec<Value> {
        let mut obj = Vec::new();
        let mut config = Vec::new();
        for (k, v) in [
            ("bitDepth", self.bit_depth),
            ("colorPrimaries", self.primaries),
            ("transferCharacteristics", self.transfer),
            ("matrixCoefficients", self.matrix),
        ] {
            if let Some(v) = v {
                config.push((k, Value::Number(f64::from(v))));
            }
        }
        if !config.is_empty() {
            obj.push(("colorConfig", Value::object(config)));
        }
        if let Some((cll, fall)) = self.cll {
            obj.push((
                "hdrCll",
                Value::object([
                    ("maxFall", Value::Number(f64::from(fall))),
                    ("maxCLL", Value::Number(f64::from(cll))),
                ]),
            ));
        }
        if let Some(m) = self.mdcv {
            let [(rx, ry), (gx, gy), (bx, by)] = m.primaries;
            obj.push((
                "hdrMdcv",
                Value::object([
                    ("redX", Value::Number(rx)),
                    ("redY", Value::Number(ry)),
                    ("greenX", Value::Number(gx)),
                    ("greenY", Value::Number(gy)),
                    ("blueX", Value::Number(bx)),
                    ("blueY", Value::Number(by)),
                    ("whitePointX", Value::Number(m.white_point.0)),
                    ("whitePointY", Value::Number(m.white_point.1)),
                    ("maxLuminance", Value::Number(m.max_luminance)),
                    ("minLuminance", Value::Number(m.min_luminance)),
                ]),
            ));
        }
        vec![Value::from("colorInfo"), Value::object(obj)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn aac_lc_44100_stereo() {
        assert_eq!(aac_config(&[0x12, 0x10]), Some((44100, 2)));
        assert_eq!(aac_config(&[0x11, 0x88]), Some((48000, 1)));
        assert_eq!(aac_config(&[0x12]), None);
    }

    #[test]
    fn mp3_and_ac3_headers() {
        assert_eq!(
            mpeg_audio_header(&hex("ff fb 90 64")),
            Some((1, 3, 44100, 2))
        );
        assert_eq!(
            mpeg_audio_header(&hex("ff f3 94 c4")),
            Some((2, 3, 24000, 1))
        );
        assert_eq!(mpeg_audio_header(&hex("00 fb 90 64")), None);
        // AC-3 as FFmpeg wrote it in a test file: 44.1 kHz (fscod 1), mono.
        assert_eq!(
            ac3_header(&hex("0b 77 2f 71 4c 40 2f 84")),
            Some((44100, 1, false))
        );
        assert_eq!(ac3_header(&hex("0b 77")), None);
    }

    #[test]
    fn opus_head_round_trip() {
        let bytes = hex("4f707573486561640101380180bb0000000000");
        let head = OpusHead::parse(&bytes).unwrap();
        assert_eq!(head.channels, 1);
        assert_eq!(head.pre_skip, 312);
        assert_eq!(head.input_rate, 48000);
        assert_eq!(head.to_bytes(), bytes);
        let mut six = OpusHead::simple(6, 48000);
        six.family = 1;
        six.streams = 4;
        six.coupled = 2;
        six.mapping = vec![0, 4, 1, 2, 3, 5];
        assert_eq!(OpusHead::parse(&six.to_bytes()).unwrap(), six);
        assert!(OpusHead::parse(&bytes[..10]).is_err());
        let err = OpusHead::parse(b"OpusTags00000000000").unwrap_err();
        assert!(err.to_string().contains("OpusHead has magic"), "{err}");
    }

    #[test]
    fn flac_streaminfo_in_every_wrapping() {
        // flacenc's STREAMINFO (audiotestsrc negotiated S8): blocks of 4608, 44.1 kHz, mono.
        let raw = hex("1200 1200 000000 000000 0ac4407000000000 00000000000000000000000000000000");
        assert_eq!(raw.len(), 34);
        assert_eq!(flac_params(&raw), Some((44100, 1, 8)));
        assert_eq!(flac_streaminfo(&raw), Some(&raw[..]));
        let gst = flac_streamheader(&raw);
        assert_eq!(flac_streaminfo(&gst), Some(&raw[..]));
        assert_eq!(flac_streaminfo(&gst[9..]), Some(&raw[..]));
        assert_eq!(flac_streaminfo(&raw[..20]), None);
    }

    #[test]
    fn vpcc_with_and_without_prefix() {
        // FFmpeg's VP9 SequenceStart body.
        let wire = hex("01000000 00 14 82 02 02 02 0000");
        let v = VpcC::parse(&wire).unwrap();
        assert_eq!(
            (v.profile, v.level, v.bit_depth, v.chroma_subsampling),
            (0, 20, 8, 1)
        );
        assert_eq!(v.to_bytes().to_vec(), wire);
        assert_eq!(VpcC::parse(&wire[4..]).unwrap(), v);
        assert_eq!(VpcC::vp9_level(320, 240, 25.0), 20);
        assert_eq!(VpcC::vp9_level(1920, 1080, 30.0), 40);
    }

    #[test]
    fn av1c_from_an_ffmpeg_keyframe() {
        // SequenceStart body of an FFmpeg 9 SVT-AV1 FLV and the start of its first key TU.
        let av1c = hex("81000c00 0a0b0200000561e7fde017c002");
        let tu = hex("1200 0a0b0200000561e7fde017c002 3210");
        let built = av1c_from_temporal_unit(&tu[..2 + 13]).unwrap();
        assert_eq!(built, av1c);
        let cfg = Av1Config::parse(&built).unwrap();
        assert_eq!(
            (cfg.profile, cfg.bit_depth, cfg.subsampling_x),
            (0, 8, true)
        );
        assert!(av1c_from_temporal_unit(&hex("1200")).is_err());
    }

    #[test]
    fn temporal_delimiters_stripped() {
        let tu = hex("1200 0a02 aabb 3201 cc");
        assert_eq!(
            av1_strip_temporal_delimiters(&tu).unwrap(),
            hex("0a02 aabb 3201 cc")
        );
        assert_eq!(av1_strip_temporal_delimiters(&hex("3201 cc")), None);
    }

    #[test]
    fn color_info_round_trip() {
        let info = ColorInfo {
            bit_depth: Some(10),
            primaries: Some(9),
            transfer: Some(16),
            matrix: Some(9),
            cll: Some((1000, 400)),
            mdcv: Some(Mdcv {
                primaries: [(0.708, 0.292), (0.17, 0.797), (0.131, 0.046)],
                white_point: (0.3127, 0.329),
                max_luminance: 1000.0,
                min_luminance: 0.0001,
            }),
        };
        assert_eq!(ColorInfo::from_amf(&info.to_amf()), Some(info));
        assert_eq!(ColorInfo::from_amf(&[Value::from("onCuePoint")]), None);
        assert_eq!(
            ColorInfo::from_amf(&[Value::from("colorInfo"), Value::Undefined]),
            Some(ColorInfo::default())
        );
    }
}
