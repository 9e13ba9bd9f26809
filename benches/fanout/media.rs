//! Synthetic live media: H.264-like video and AAC-like audio in FLV/RTMP payload form.
//!
//! Sizes follow a camera publish at a chosen bitrate (default ~3 Mbit/s): 30 fps, a keyframe
//! every 2 s about seven times an inter frame, and 1024-sample AAC frames at 48 kHz (46.9/s).
//! Payloads are never decoded by a server, so only the headers are real; what matters is that
//! every media payload carries, at a fixed offset, the send time on the process-wide monotonic
//! clock and a per-kind sequence number. Players read those two fields back to measure
//! latency and detect loss.
//!
//! Layout: video `[frame type|codec 7][AVC packet type 1][cts 0 0 0][send ns u64 BE][seq u64 BE]
//! [filler]`, audio `[0xAF][AAC packet type 1][send ns u64 BE][seq u64 BE][filler]`. Sequence
//! headers (packet type 0) carry no stamp.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

/// The shared clock: publisher and players live in one process, so one epoch serves both.
pub static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since [`EPOCH`].
pub fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

pub const FPS: u32 = 30;
pub const GOP_FRAMES: u32 = 60;
/// Time from one keyframe to the next.
pub const GOP_DURATION: Duration = Duration::from_millis(GOP_FRAMES as u64 * 1000 / FPS as u64);
/// AAC: 1024 samples per frame at 48 kHz.
pub const AUDIO_FRAME_NS: u64 = 1024 * 1_000_000_000 / 48_000;
pub const AUDIO_FRAME_BYTES: usize = 370;
const VIDEO_STAMP_AT: usize = 5;
const AUDIO_STAMP_AT: usize = 2;
const STAMP_LEN: usize = 16;

/// Frame sizes for a target bitrate.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub key: usize,
    pub inter: usize,
}

impl Sizes {
    /// Keyframe = 7 × inter frame; audio at ~139 kbit/s is part of the total.
    pub fn for_kbps(kbps: u32) -> Self {
        let audio_bps = AUDIO_FRAME_BYTES as f64 * 8.0 * 1e9 / AUDIO_FRAME_NS as f64;
        let video_bps = (f64::from(kbps) * 1000.0 - audio_bps).max(8000.0);
        // Bytes per GOP (2 s) shared by one keyframe (weight 7) and 59 inter frames.
        let gop_bytes = video_bps / 8.0 * f64::from(GOP_FRAMES) / f64::from(FPS);
        let inter = (gop_bytes / f64::from(7 + GOP_FRAMES - 1)).max(64.0) as usize;
        Self {
            key: inter * 7,
            inter,
        }
    }

    /// The bitrate these sizes give, audio included, in Mbit/s.
    pub fn mbps(&self) -> f64 {
        let gop = (self.key + self.inter * (GOP_FRAMES as usize - 1)) as f64;
        let video = gop * 8.0 * f64::from(FPS) / f64::from(GOP_FRAMES);
        let audio = AUDIO_FRAME_BYTES as f64 * 8.0 * 1e9 / AUDIO_FRAME_NS as f64;
        (video + audio) / 1e6
    }
}

/// AVC sequence header: a plausible AVCDecoderConfigurationRecord for 640x360 High profile.
pub fn video_sequence_header() -> Bytes {
    let sps = [
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11,
    ];
    let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
    let mut b = BytesMut::new();
    b.put_slice(&[0x17, 0x00, 0, 0, 0]);
    b.put_slice(&[0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1]);
    b.put_u16(sps.len() as u16);
    b.put_slice(&sps);
    b.put_u8(1);
    b.put_u16(pps.len() as u16);
    b.put_slice(&pps);
    b.freeze()
}

/// AAC sequence header: AudioSpecificConfig for AAC-LC, 48 kHz, stereo.
pub fn audio_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90])
}

/// A stamped video frame of `len` bytes (at least header + stamp).
pub fn video_frame(key: bool, len: usize, seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(len.max(VIDEO_STAMP_AT + STAMP_LEN));
    b.put_slice(&[if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
    b.put_u64(now_ns());
    b.put_u64(seq);
    fill(&mut b, len, seq);
    b.freeze()
}

/// A stamped audio frame.
pub fn audio_frame(seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(AUDIO_FRAME_BYTES);
    b.put_slice(&[0xaf, 0x01]);
    b.put_u64(now_ns());
    b.put_u64(seq);
    fill(&mut b, AUDIO_FRAME_BYTES, seq);
    b.freeze()
}

/// Non-constant filler, so nothing on the path can get away with compressing zeros.
fn fill(b: &mut BytesMut, len: usize, seq: u64) {
    let mut x = seq as u8;
    while b.len() < len {
        x = x.wrapping_mul(29).wrapping_add(11);
        b.put_u8(x);
    }
}

/// Which stream a stamped payload belongs to; the discriminant indexes `[video, audio]` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video = 0,
    Audio = 1,
}

/// Reads `(send ns, seq)` back from a received payload; `None` for sequence headers and
/// anything that is not ours.
pub fn read_stamp(kind: Kind, payload: &[u8]) -> Option<(u64, u64)> {
    let at = match kind {
        Kind::Video => VIDEO_STAMP_AT,
        Kind::Audio => AUDIO_STAMP_AT,
    };
    if payload.get(1) != Some(&1) {
        return None;
    }
    let s = payload.get(at..at + STAMP_LEN)?;
    let ns = u64::from_be_bytes(s[..8].try_into().ok()?);
    let seq = u64::from_be_bytes(s[8..].try_into().ok()?);
    Some((ns, seq))
}
