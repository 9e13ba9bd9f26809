//! Enhanced RTMP capabilities in `connect` and its `_result` (E-RTMP v2, "Enhancing
//! NetConnection connect Command"): `fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap`
//! and `capsEx`.
//!
//! Peers disagree on which fields they read (MediaMTX reads only `fourCcList`; FFmpeg writes
//! only that; the v2 spec prefers the maps), so both directions carry all of them, and reading
//! takes any of them. Reading is tolerant (a strict or ECMA array, or an object, for the list;
//! entries that are not strings or numbers skipped) and bounded: a connect with thousands of
//! entries costs at most [`MAX_ENTRIES`] per field.

use crate::amf0::Value;
use crate::flv::FourCc;

/// FourCcInfoMask: the peer can decode the codec.
pub const CAN_DECODE: u32 = 0x01;
/// FourCcInfoMask: the peer can encode it.
pub const CAN_ENCODE: u32 = 0x02;
/// FourCcInfoMask: the peer can forward it (servers, recorders).
pub const CAN_FORWARD: u32 = 0x04;

/// CapsExMask: the peer handles `NetConnection.Connect.ReconnectRequest`.
pub const CAPS_RECONNECT: u32 = 0x01;
/// CapsExMask: multitrack packets.
pub const CAPS_MULTITRACK: u32 = 0x02;
/// CapsExMask: the ModEx packet type.
pub const CAPS_MODEX: u32 = 0x04;
/// CapsExMask: the nanosecond timestamp offset (ModEx TimestampOffsetNano).
pub const CAPS_TIMESTAMP_NANO_OFFSET: u32 = 0x08;

/// Video FourCCs the engine reads and writes (VVC is carried, not parsed).
pub const VIDEO_FOURCCS: &[FourCc] = &[
    FourCc::HVC1,
    FourCc::AV01,
    FourCc::VP09,
    FourCc::VP08,
    FourCc::AVC1,
    FourCc::VVC1,
];

/// Audio FourCCs the engine reads and writes.
pub const AUDIO_FOURCCS: &[FourCc] = &[
    FourCc::OPUS,
    FourCc::FLAC,
    FourCc::AC3,
    FourCc::EAC3,
    FourCc::MP4A,
    FourCc::MP3,
];

/// The most entries read from one list or map.
pub const MAX_ENTRIES: usize = 64;

/// The wildcard key: every FourCC.
const ANY: &str = "*";

/// What one side announces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnhancedCaps {
    /// `fourCcList` (v1): FourCCs, or `*`.
    pub fourcc_list: Vec<String>,
    /// `videoFourCcInfoMap`: FourCC (or `*`) → FourCcInfoMask.
    pub video: Vec<(String, u32)>,
    /// `audioFourCcInfoMap`.
    pub audio: Vec<(String, u32)>,
    /// `capsEx`: CapsExMask.
    pub caps_ex: u32,
}

impl EnhancedCaps {
    /// Announces `video` and `audio` FourCCs with `mask` each, in the list and in the maps,
    /// and `caps_ex`.
    pub fn announcing(video: &[FourCc], audio: &[FourCc], mask: u32, caps_ex: u32) -> Self {
        let key = |f: &FourCc| f.to_string();
        EnhancedCaps {
            fourcc_list: video.iter().chain(audio).map(key).collect(),
            video: video.iter().map(|f| (key(f), mask)).collect(),
            audio: audio.iter().map(|f| (key(f), mask)).collect(),
            caps_ex,
        }
    }

    /// Announces `codecs` (each in the video or audio map by its kind; others ignored) with
    /// `mask`, and `caps_ex`.
    pub fn for_codecs(codecs: &[FourCc], mask: u32, caps_ex: u32) -> Self {
        let of = |known: &[FourCc]| -> Vec<FourCc> {
            codecs
                .iter()
                .copied()
                .filter(|f| known.contains(f))
                .collect()
        };
        Self::announcing(&of(VIDEO_FOURCCS), &of(AUDIO_FOURCCS), mask, caps_ex)
    }

    /// The command object properties that carry these capabilities.
    pub fn to_properties(&self) -> Vec<(String, Value)> {
        let map = |m: &[(String, u32)]| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::Number(f64::from(*v))))
                    .collect(),
            )
        };
        let mut out = Vec::with_capacity(4);
        if !self.fourcc_list.is_empty() {
            out.push((
                "fourCcList".into(),
                Value::StrictArray(
                    self.fourcc_list
                        .iter()
                        .map(|s| Value::String(s.clone()))
                        .collect(),
                ),
            ));
        }
        if !self.video.is_empty() {
            out.push(("videoFourCcInfoMap".into(), map(&self.video)));
        }
        if !self.audio.is_empty() {
            out.push(("audioFourCcInfoMap".into(), map(&self.audio)));
        }
        out.push(("capsEx".into(), Value::Number(f64::from(self.caps_ex))));
        out
    }

    /// Reads the capabilities in a command object's properties; `None` when it has none of
    /// the four fields (a legacy peer).
    pub fn from_properties(props: &[(String, Value)]) -> Option<Self> {
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let list = get("fourCcList");
        let video = get("videoFourCcInfoMap");
        let audio = get("audioFourCcInfoMap");
        let caps_ex = get("capsEx");
        if list.is_none() && video.is_none() && audio.is_none() && caps_ex.is_none() {
            return None;
        }
        Some(EnhancedCaps {
            fourcc_list: list.map(read_list).unwrap_or_default(),
            video: video.map(read_map).unwrap_or_default(),
            audio: audio.map(read_map).unwrap_or_default(),
            caps_ex: caps_ex.and_then(number).map_or(0, mask),
        })
    }

    /// Whether the peer announced `fourcc` (in the list, or in either map with any bit set),
    /// directly or with `*`.
    pub fn supports(&self, fourcc: FourCc) -> bool {
        let name = fourcc.to_string();
        let listed = |k: &str| k == name || k == ANY;
        self.fourcc_list.iter().any(|k| listed(k))
            || self
                .video
                .iter()
                .chain(&self.audio)
                .any(|(k, m)| listed(k) && *m != 0)
    }

    /// Every codec announced, in the list or in a map with a bit set, once each, in the order
    /// first seen (`*` included as it came).
    pub fn codecs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let from_maps = self
            .video
            .iter()
            .chain(&self.audio)
            .filter(|(_, m)| *m != 0)
            .map(|(k, _)| k.as_str());
        for k in self.fourcc_list.iter().map(String::as_str).chain(from_maps) {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    /// Whether every bit of `flag` (a CapsExMask value) is set.
    pub fn has(&self, flag: u32) -> bool {
        self.caps_ex & flag == flag
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// A mask from an AMF number: negative, fractional or huge values keep only what fits.
fn mask(n: f64) -> u32 {
    if n.is_finite() && n >= 0.0 {
        (n as u64 & u64::from(u32::MAX)) as u32
    } else {
        0
    }
}

fn read_list(v: &Value) -> Vec<String> {
    let strings = |it: &mut dyn Iterator<Item = &Value>| {
        it.filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .take(MAX_ENTRIES)
        .collect()
    };
    match v {
        Value::StrictArray(items) => strings(&mut items.iter()),
        Value::EcmaArray(props) | Value::Object(props) => {
            strings(&mut props.iter().map(|(_, v)| v))
        }
        Value::String(s) => s
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .take(MAX_ENTRIES)
            .collect(),
        _ => Vec::new(),
    }
}

fn read_map(v: &Value) -> Vec<(String, u32)> {
    match v {
        Value::Object(props) | Value::EcmaArray(props) => props
            .iter()
            .filter_map(|(k, v)| number(v).map(|n| (k.clone(), mask(n))))
            .take(MAX_ENTRIES)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amf0;
    use bytes::BytesMut;

    fn encode(v: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        amf0::encode(v, &mut out);
        out.to_vec()
    }

    #[test]
    fn the_spec_examples_encode_as_protocol_facts_gives_them() {
        // protocol-facts / enhanced-rtmp.md §1.8 byte examples.
        let caps = EnhancedCaps {
            fourcc_list: vec!["hvc1".into(), "Opus".into()],
            ..EnhancedCaps::default()
        };
        let props = caps.to_properties();
        assert_eq!(
            encode(&props[0].1),
            [
                0x0A, 0, 0, 0, 2, 0x02, 0, 4, b'h', b'v', b'c', b'1', 0x02, 0, 4, b'O', b'p', b'u',
                b's'
            ]
        );
        let caps_ex = EnhancedCaps {
            caps_ex: 15,
            ..EnhancedCaps::default()
        }
        .to_properties();
        assert_eq!(encode(&caps_ex[0].1), [0x00, 0x40, 0x2E, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn round_trip_and_support() {
        let caps = EnhancedCaps::announcing(
            &[FourCc::HVC1, FourCc::AV01],
            &[FourCc::OPUS],
            CAN_DECODE | CAN_FORWARD,
            CAPS_MULTITRACK | CAPS_MODEX,
        );
        let back = EnhancedCaps::from_properties(&caps.to_properties()).unwrap();
        assert_eq!(back, caps);
        assert!(back.supports(FourCc::HVC1) && back.supports(FourCc::OPUS));
        assert!(!back.supports(FourCc::VP09));
        assert!(back.has(CAPS_MULTITRACK) && !back.has(CAPS_RECONNECT));
        assert_eq!(EnhancedCaps::from_properties(&[]), None);
    }

    #[test]
    fn every_shape_peers_send_is_read() {
        // MediaMTX/FFmpeg: only the list. A wildcard map. An ECMA array list.
        let only_list = vec![(
            "fourCcList".to_string(),
            Value::StrictArray(vec![Value::String("av01".into())]),
        )];
        let c = EnhancedCaps::from_properties(&only_list).unwrap();
        assert!(c.supports(FourCc::AV01) && !c.supports(FourCc::HVC1));
        assert_eq!(c.caps_ex, 0);
        let wildcard = vec![(
            "videoFourCcInfoMap".to_string(),
            Value::Object(vec![("*".into(), Value::Number(4.0))]),
        )];
        assert!(
            EnhancedCaps::from_properties(&wildcard)
                .unwrap()
                .supports(FourCc::VP09)
        );
        let ecma = vec![(
            "fourCcList".to_string(),
            Value::EcmaArray(vec![("0".into(), Value::String("hvc1".into()))]),
        )];
        assert!(
            EnhancedCaps::from_properties(&ecma)
                .unwrap()
                .supports(FourCc::HVC1)
        );
    }

    #[test]
    fn hostile_values_are_bounded_and_ignored() {
        let many: Vec<Value> = (0..10_000).map(|i| Value::String(format!("{i}"))).collect();
        let props = vec![
            ("fourCcList".to_string(), Value::StrictArray(many)),
            ("capsEx".to_string(), Value::Number(-1.0)),
            (
                "audioFourCcInfoMap".to_string(),
                Value::Object(vec![
                    ("Opus".into(), Value::String("x".into())),
                    ("fLaC".into(), Value::Number(f64::NAN)),
                    ("mp4a".into(), Value::Number(1e300)),
                ]),
            ),
        ];
        let c = EnhancedCaps::from_properties(&props).unwrap();
        assert_eq!(c.fourcc_list.len(), MAX_ENTRIES);
        assert_eq!(c.caps_ex, 0);
        assert_eq!(
            c.audio,
            vec![("fLaC".to_string(), 0), ("mp4a".to_string(), u32::MAX)]
        );
        assert!(!c.supports(FourCc::FLAC), "a zero mask is no support");
    }
}
