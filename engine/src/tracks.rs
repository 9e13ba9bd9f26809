//! Per-track counters of a media stream: for every (kind, track id) seen, the codec in the
//! signalling it arrived in, and how many coded frames, keyframes and payload bytes it carried.
//! The elements' `stats` show these, so an application sees each track of a multitrack stream
//! (Enhanced RTMP) and which codec each uses.
//!
//! Fed with audio/video message bodies (FLV tag bodies), legacy or Enhanced RTMP; a body that
//! does not parse is counted once in [`TrackStats::unparsed`] and changes no track.

use crate::eflv::{Codec, MediaKind, PacketKind, parse_tag};
use crate::flv::{AudioCodec, FourCc, VideoCodec};

/// Legacy SoundFormat of MP3.
const LEGACY_MP3: u8 = 2;
/// Legacy SoundFormat of MP3 at 8 kHz.
const LEGACY_MP3_8K: u8 = 14;

/// One track's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackCounters {
    /// Audio or video.
    pub kind: MediaKind,
    /// The track id (0 unless the packets came in multitrack wrappers).
    pub track: u8,
    /// The codec of the track's latest packet.
    pub codec: Codec,
    /// Coded-frame packets.
    pub frames: u64,
    /// Video keyframes among them (every audio frame counts as one).
    pub keyframes: u64,
    /// Codec payload bytes of those frames (what a demuxer's packets hold: no FLV or Enhanced
    /// RTMP header, no composition time, no configuration record).
    pub bytes: u64,
}

impl TrackCounters {
    /// The codec's FourCC: the signalled one, or the equal code of a legacy codec that has one
    /// (H.264 `avc1`, HEVC id 12 `hvc1`, AAC `mp4a`, MP3 `.mp3`).
    pub fn fourcc(&self) -> Option<FourCc> {
        match self.codec {
            Codec::Video(VideoCodec::FourCc(f)) | Codec::Audio(AudioCodec::FourCc(f)) => Some(f),
            Codec::Video(VideoCodec::Legacy(VideoCodec::LEGACY_AVC)) => Some(FourCc::AVC1),
            Codec::Video(VideoCodec::Legacy(VideoCodec::LEGACY_HEVC)) => Some(FourCc::HVC1),
            Codec::Audio(AudioCodec::Legacy(AudioCodec::LEGACY_AAC)) => Some(FourCc::MP4A),
            Codec::Audio(AudioCodec::Legacy(LEGACY_MP3 | LEGACY_MP3_8K)) => Some(FourCc::MP3),
            Codec::Video(VideoCodec::Legacy(_)) | Codec::Audio(AudioCodec::Legacy(_)) => None,
        }
    }

    /// The codec as text for stats: the FourCC where there is one, else the legacy id
    /// (`video-codec-id-2` for Sorenson H.263, `sound-format-11` for Speex).
    pub fn codec_text(&self) -> String {
        if let Some(f) = self.fourcc() {
            return f.to_string();
        }
        match self.codec {
            Codec::Video(VideoCodec::Legacy(id)) => format!("video-codec-id-{id}"),
            Codec::Audio(AudioCodec::Legacy(id)) => format!("sound-format-{id}"),
            _ => unreachable!("FourCC codecs returned above"),
        }
    }

    /// Whether the codec was signalled the Enhanced RTMP way (with a FourCC).
    pub fn enhanced(&self) -> bool {
        self.codec.fourcc().is_some()
    }
}

/// The counters of every track of a stream, in the order the tracks first appeared.
#[derive(Debug, Clone, Default)]
pub struct TrackStats {
    tracks: Vec<TrackCounters>,
    unparsed: u64,
}

impl TrackStats {
    /// No track yet.
    pub fn new() -> TrackStats {
        TrackStats::default()
    }

    /// Counts one message: `tag_type` 8 (audio) or 9 (video) and its body; anything else is
    /// ignored.
    pub fn observe(&mut self, tag_type: u8, body: &[u8]) {
        if !matches!(
            tag_type,
            crate::flv::TAG_TYPE_AUDIO | crate::flv::TAG_TYPE_VIDEO
        ) {
            return;
        }
        let parsed = match parse_tag(tag_type, body) {
            Ok(p) => p,
            Err(_) => {
                self.unparsed += 1;
                return;
            }
        };
        for p in &parsed.packets {
            let t = self.entry(p.media(), p.track, p.codec);
            t.codec = p.codec;
            if p.kind == PacketKind::CodedFrames {
                t.frames += 1;
                t.bytes += p.data.len() as u64;
                if p.is_keyframe() {
                    t.keyframes += 1;
                }
            }
        }
    }

    fn entry(&mut self, kind: MediaKind, track: u8, codec: Codec) -> &mut TrackCounters {
        // At most 2 × 256 entries (a track id is one byte): a linear search stays short, and
        // the common case (one or two tracks) is the first comparison or two.
        let i = match self
            .tracks
            .iter()
            .position(|t| t.kind == kind && t.track == track)
        {
            Some(i) => i,
            None => {
                self.tracks.push(TrackCounters {
                    kind,
                    track,
                    codec,
                    frames: 0,
                    keyframes: 0,
                    bytes: 0,
                });
                self.tracks.len() - 1
            }
        };
        &mut self.tracks[i]
    }

    /// Every track seen, in order of first appearance.
    pub fn tracks(&self) -> &[TrackCounters] {
        &self.tracks
    }

    /// Audio/video bodies that did not parse.
    pub fn unparsed(&self) -> u64 {
        self.unparsed
    }

    /// Forgets everything (a new stream).
    pub fn clear(&mut self) {
        self.tracks.clear();
        self.unparsed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eflv::{Packet, write_tracks};
    use bytes::BytesMut;

    fn packet(track: u8, codec: Codec, kind: PacketKind, key: bool, data: &[u8]) -> Packet<'_> {
        Packet {
            track,
            codec,
            kind,
            frame_type: if key { 1 } else { 2 },
            composition_time: 0,
            nanos: 0,
            legacy_audio: None,
            multitrack: true,
            data,
        }
    }

    #[test]
    fn legacy_tracks_get_their_fourcc_and_counts() {
        let mut s = TrackStats::new();
        // AVC sequence header, keyframe, inter frame; AAC header and a frame; MP3; Speex.
        s.observe(9, &[0x17, 0, 0, 0, 0, 1, 2, 3]);
        s.observe(9, &[0x17, 1, 0, 0, 0, 9, 9]);
        s.observe(9, &[0x27, 1, 0, 0, 0, 9]);
        s.observe(8, &[0xAF, 0, 0x12, 0x10]);
        s.observe(8, &[0xAF, 1, 5, 5, 5]);
        s.observe(18, b"ignored");
        let t = s.tracks();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].kind, t[0].track, t[0].codec_text().as_str()),
            (MediaKind::Video, 0, "avc1")
        );
        assert_eq!((t[0].frames, t[0].keyframes, t[0].bytes), (2, 1, 3));
        assert!(!t[0].enhanced());
        assert_eq!(t[1].codec_text(), "mp4a");
        assert_eq!((t[1].frames, t[1].bytes), (1, 3));

        let mut s = TrackStats::new();
        s.observe(8, &[0x2F, 1, 2]);
        s.observe(8, &[0xBF, 1, 2]);
        assert_eq!(s.tracks()[0].codec_text(), "sound-format-11");
        assert_eq!(s.tracks()[0].frames, 2);
        s.observe(9, &[0x22, 1]);
        assert_eq!(s.tracks()[1].codec_text(), "video-codec-id-2");
    }

    #[test]
    fn multitrack_messages_count_per_track_and_bad_bodies_apart() {
        let hevc = Codec::Video(VideoCodec::FourCc(FourCc::HVC1));
        let av1 = Codec::Video(VideoCodec::FourCc(FourCc::AV01));
        let mut body = BytesMut::new();
        write_tracks(
            &[
                packet(0, hevc, PacketKind::CodedFrames, true, &[1; 10]),
                packet(1, av1, PacketKind::CodedFrames, true, &[2; 7]),
            ],
            &mut body,
        )
        .unwrap();
        let mut s = TrackStats::new();
        s.observe(9, &body);
        s.observe(9, &body);
        s.observe(9, &[0x90]);
        let t = s.tracks();
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!((t[0].codec_text().as_str(), t[0].track), ("hvc1", 0));
        assert_eq!((t[0].frames, t[0].keyframes, t[0].bytes), (2, 2, 20));
        assert_eq!((t[1].codec_text().as_str(), t[1].track), ("av01", 1));
        // The frame type belongs to the whole message: both tracks' frames are keyframes.
        assert_eq!((t[1].frames, t[1].keyframes, t[1].bytes), (2, 2, 14));
        assert!(t[1].enhanced());
        assert_eq!(s.unparsed(), 1);
        s.clear();
        assert!(s.tracks().is_empty());
    }
}
