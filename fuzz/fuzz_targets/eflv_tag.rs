//! Enhanced FLV tag bodies on arbitrary bytes: every track of an audio or video body
//! ([`eflv::parse_tag`]) and the codec record parsers on each packet's payload. Each packet
//! written back alone ([`eflv::write_packet`]) must read back as the same packet, and the
//! records that can be written (OpusHead, vpcC) must survive their own round trip. What a
//! legacy reader is given of the body ([`legacy::legacy_body`]) must be legacy FLV.
//!
//! Input: `[tag type selector] bytes...` (even: video, odd: audio).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::codecs::{self, ColorInfo, OpusHead, VpcC};
use rsrtmp_engine::eflv::{self, PacketKind};
use rsrtmp_engine::legacy::{self, LegacyBody};
use rsrtmp_engine::{amf0, flv};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let tag_type = if sel & 1 == 0 {
        flv::TAG_TYPE_VIDEO
    } else {
        flv::TAG_TYPE_AUDIO
    };
    let mut dropped = Vec::new();
    if let LegacyBody::Rewritten(b) = legacy::legacy_body(tag_type, body, &mut dropped) {
        // Legacy signalling: no Enhanced RTMP header, and it parses as one track-0 packet.
        let first = b[0];
        assert!(if tag_type == flv::TAG_TYPE_VIDEO { first & 0x80 == 0 } else { first >> 4 != 9 });
        let again = eflv::parse_tag(tag_type, &b).expect("a rewritten body parses");
        assert_eq!(again.packets.len(), 1);
        assert_eq!(again.packets[0].track, 0);
        assert!(again.packets[0].codec.fourcc().is_none());
    }
    let parsed = match eflv::parse_tag(tag_type, body) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(parsed.packets.len() <= eflv::MAX_TRACKS_PER_MESSAGE);
    for p in &parsed.packets {
        // Payloads are slices of the body.
        let start = p.data.as_ptr() as usize - body.as_ptr() as usize;
        assert!(start + p.data.len() <= body.len());
        assert_eq!(p.media().tag_type(), tag_type);
        assert!(p.nanos <= 999_999);

        let mut out = BytesMut::new();
        if eflv::write_packet(p, &mut out).is_ok() {
            let again = eflv::parse_tag(tag_type, &out).expect("a written packet parses");
            assert_eq!(again.packets.len(), 1, "{p:?}");
            let q = again.packets[0];
            assert_eq!(
                (q.track, q.codec, q.kind, q.composition_time, q.nanos, q.data),
                (p.track, p.codec, p.kind, p.composition_time, p.nanos, p.data)
            );
            assert_eq!(q.legacy_audio, p.legacy_audio);
            if p.kind != PacketKind::Metadata && p.media() == eflv::MediaKind::Video {
                assert_eq!(q.frame_type & 7, p.frame_type & 7);
            }
        }

        let d = p.data;
        let _ = codecs::aac_config(d);
        let _ = codecs::mpeg_audio_header(d);
        let _ = codecs::ac3_header(d);
        if let Some(info) = codecs::flac_streaminfo(d) {
            assert_eq!(info.len(), codecs::FLAC_STREAMINFO_LEN);
            let _ = codecs::flac_params(info);
            let wrapped = codecs::flac_streamheader(info);
            assert_eq!(codecs::flac_streaminfo(&wrapped), Some(info));
        }
        if let Ok(head) = OpusHead::parse(d) {
            assert_eq!(OpusHead::parse(&head.to_bytes()), Ok(head));
        }
        if let Ok(v) = VpcC::parse(d) {
            let again = VpcC::parse(&v.to_bytes()).expect("written vpcC parses");
            assert_eq!(again.profile, v.profile);
            assert_eq!(again.level, v.level);
            assert_eq!(again.bit_depth, v.bit_depth & 0x0f);
        }
        let _ = codecs::Av1Config::parse(d);
        if let Ok(rec) = codecs::av1c_from_temporal_unit(d) {
            codecs::Av1Config::parse(&rec).expect("a built av1C parses");
        }
        if let Some(stripped) = codecs::av1_strip_temporal_delimiters(d) {
            assert!(stripped.len() < d.len());
        }
        if p.kind == PacketKind::Metadata
            && let Ok(values) = amf0::decode_all(d)
        {
            let _ = ColorInfo::from_amf(&values);
        }
    }
});
