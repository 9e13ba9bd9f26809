//! What a publisher keeps so that a reconnect resumes cleanly: the latest headers, the group of
//! pictures since the last video key frame, and the media that arrives while no connection is
//! up.
//!
//! After a reconnect the new connection gets the headers, then the kept group of pictures
//! (frames the old connection may or may not have delivered: "resent"), then the held frames,
//! so a player of the new stream starts at a key frame. Holding is bounded by stream time:
//! past the bound the oldest media goes first, a whole group of pictures at a time so what is
//! left still starts at a key frame, and every dropped frame is counted. Nothing is dropped
//! silently.

use std::collections::VecDeque;

use super::media::{HeaderSet, MediaFrame, MediaKind};

/// Counters the book reports into the element's stats.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HoldCounters {
    pub held: u64,
    pub resent: u64,
    pub dropped: u64,
}

/// The publisher's memory for reconnects. See the module docs.
#[derive(Debug)]
pub struct HoldBook {
    max_hold_ms: u64,
    /// Metadata and every track's decoder configuration.
    headers: HeaderSet,
    /// Frames handed to a connection since the last video key frame, starting with it. Empty
    /// while no key frame has been seen or the group outgrew the bound.
    gop: Vec<MediaFrame>,
    /// Frames that arrived while disconnected.
    held: VecDeque<MediaFrame>,
    has_video: bool,
    /// After a resume that found no key frame: video frames are dropped until one comes.
    need_keyframe: bool,
    /// Frames dropped since the connection was lost (one warning per outage, not per drop).
    outage_dropped: u64,
    pub counters: HoldCounters,
}

impl HoldBook {
    /// `max_hold_ms`: the longest span of stream time kept for a reconnect.
    pub fn new(max_hold_ms: u64) -> Self {
        HoldBook {
            max_hold_ms,
            headers: HeaderSet::default(),
            gop: Vec::new(),
            held: VecDeque::new(),
            has_video: false,
            need_keyframe: false,
            outage_dropped: 0,
            counters: HoldCounters::default(),
        }
    }

    /// Frames waiting for a connection.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    fn remember_header(&mut self, frame: &MediaFrame) {
        self.headers.remember(frame);
    }

    /// Called for each frame while connected. Returns whether to send it: video after a
    /// resume without key frame is dropped (and counted) until the next key frame.
    pub fn on_live(&mut self, frame: &MediaFrame) -> bool {
        if frame.kind == MediaKind::Video {
            self.has_video = true;
        }
        if frame.header {
            self.remember_header(frame);
            return true;
        }
        if frame.kind == MediaKind::Video {
            if frame.keyframe {
                self.need_keyframe = false;
                self.gop.clear();
                self.gop.push(frame.clone());
                return true;
            }
            if self.need_keyframe {
                self.counters.dropped += 1;
                self.outage_dropped += 1;
                return false;
            }
        }
        if !self.gop.is_empty() {
            self.gop.push(frame.clone());
            if span(self.gop.first(), Some(frame)) > self.max_hold_ms {
                // A group this long cannot be resent within the bound; wait for the next one.
                self.gop.clear();
            }
        }
        true
    }

    /// Called for each frame while disconnected. Returns a warning the first time in an
    /// outage that frames had to be dropped to stay within the bound (the resume reports the
    /// total).
    pub fn hold(&mut self, frame: MediaFrame) -> Option<String> {
        if frame.kind == MediaKind::Video {
            self.has_video = true;
        }
        if frame.header {
            // The resume sends the latest headers anyway; holding them too would send twice.
            self.remember_header(&frame);
            return None;
        }
        self.counters.held += 1;
        self.held.push_back(frame);
        self.enforce_bound()
    }

    fn enforce_bound(&mut self) -> Option<String> {
        let newest = self.held.back().cloned();
        let oldest = |book: &HoldBook| book.gop.first().or(book.held.front()).cloned();
        if span(oldest(self).as_ref(), newest.as_ref()) <= self.max_hold_ms {
            return None;
        }
        // Already-sent frames go first: they were delivered once, so this loses nothing new.
        self.gop.clear();
        let mut dropped = 0u64;
        while span(self.held.front(), newest.as_ref()) > self.max_hold_ms {
            // Drop one whole group so the rest starts at a key frame again.
            self.held.pop_front();
            dropped += 1;
            while let Some(f) = self.held.front() {
                if !self.has_video || (f.kind == MediaKind::Video && f.keyframe) {
                    break;
                }
                self.held.pop_front();
                dropped += 1;
            }
        }
        if dropped == 0 {
            return None;
        }
        self.counters.dropped += dropped;
        let first = self.outage_dropped == 0;
        self.outage_dropped += dropped;
        first.then(|| {
            format!(
                "reconnect hold buffer exceeded max-hold-time ({} ms of media): dropping the \
                 oldest media ({dropped} frames so far)",
                self.max_hold_ms
            )
        })
    }

    /// Frames dropped during the outage that just ended; resets the count.
    pub fn take_outage_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.outage_dropped)
    }

    /// The latest headers, stamped `ts`: what a connection that takes over at a key frame
    /// sends first (see the publisher's ReconnectRequest handling). Counted as resent.
    pub fn headers_at(&mut self, ts: u64) -> Vec<MediaFrame> {
        let out: Vec<MediaFrame> = self
            .headers
            .iter()
            .map(|h| MediaFrame {
                timestamp: h.timestamp.max(ts),
                ..h.clone()
            })
            .collect();
        self.counters.resent += out.len() as u64;
        out
    }

    /// Whether the stream has video (a switch waits for a key frame then).
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// What a new connection gets first: headers, the kept group of pictures, the held frames.
    /// Video frames before the first key frame are dropped and counted. Afterwards the book
    /// is in its connected state again.
    pub fn resume(&mut self) -> Vec<MediaFrame> {
        let gop = std::mem::take(&mut self.gop);
        let held: Vec<MediaFrame> = self.held.drain(..).collect();
        let first_ts = gop.first().or(held.first()).map(|f| f.timestamp);
        let mut out = Vec::new();
        for header in self.headers.iter() {
            let mut h = header.clone();
            // Keep timestamps moving forward on the new connection.
            if let Some(ts) = first_ts {
                h.timestamp = h.timestamp.max(ts);
            }
            out.push(h);
        }
        self.counters.resent += out.len() as u64 + gop.len() as u64;
        self.need_keyframe = self.has_video && gop.is_empty();
        for frame in gop.into_iter().chain(held) {
            if self.on_live(&frame) {
                out.push(frame);
            }
        }
        out
    }
}

/// Milliseconds from `a` to `b`; 0 when either is missing or time went backwards.
fn span(a: Option<&MediaFrame>, b: Option<&MediaFrame>) -> u64 {
    match (a, b) {
        (Some(a), Some(b)) => b.timestamp.saturating_sub(a.timestamp),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn video(ts: u64, key: bool) -> MediaFrame {
        MediaFrame::new(
            MediaKind::Video,
            ts,
            Bytes::copy_from_slice(if key {
                &[0x17, 0x01, 0, 0, 0, 0xaa]
            } else {
                &[0x27, 0x01, 0, 0, 0, 0xbb]
            }),
        )
    }

    fn audio(ts: u64) -> MediaFrame {
        MediaFrame::new(
            MediaKind::Audio,
            ts,
            Bytes::from_static(&[0xaf, 0x01, 0x21]),
        )
    }

    fn vheader() -> MediaFrame {
        MediaFrame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01]),
        )
    }

    fn ts(frames: &[MediaFrame]) -> Vec<(u64, bool)> {
        frames.iter().map(|f| (f.timestamp, f.keyframe)).collect()
    }

    #[test]
    fn every_tracks_header_is_resent() {
        // AAC on track 0 (legacy), Opus on track 1 (a OneTrack multitrack packet), the video
        // header; a new track-0 AAC header replaces the first one, track 1's stays.
        let aac = |cfg: u8| MediaFrame::new(MediaKind::Audio, 0, Bytes::from(vec![0xaf, 0, cfg]));
        let opus1 = MediaFrame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(b"\x95\x00Opus\x01OpusHead"),
        );
        let mut book = HoldBook::new(10_000);
        for f in [
            vheader(),
            aac(0x11),
            opus1.clone(),
            aac(0x12),
            video(0, true),
        ] {
            assert!(book.on_live(&f));
        }
        let out = book.resume();
        let headers: Vec<&[u8]> = out
            .iter()
            .filter(|f| f.header)
            .map(|f| &f.payload[..])
            .collect();
        assert_eq!(
            headers,
            vec![
                &vheader().payload[..],
                &[0xaf, 0, 0x12][..],
                &opus1.payload[..]
            ]
        );
    }

    #[test]
    fn resume_sends_headers_then_the_gop_then_held_frames() {
        let mut book = HoldBook::new(10_000);
        assert!(book.on_live(&vheader()));
        for f in [
            video(0, true),
            video(33, false),
            video(1000, true),
            audio(1010),
            video(1033, false),
        ] {
            assert!(book.on_live(&f));
        }
        assert_eq!(book.hold(video(1066, false)), None);
        assert_eq!(book.hold(video(2000, true)), None);
        let out = book.resume();
        assert!(out[0].header, "the video header comes first");
        assert_eq!(
            out[0].timestamp, 1000,
            "header stamped at the first resumed frame"
        );
        assert_eq!(
            ts(&out[1..]),
            vec![
                (1000, true),
                (1010, true),
                (1033, false),
                (1066, false),
                (2000, true)
            ]
        );
        assert_eq!(
            book.counters,
            HoldCounters {
                held: 2,
                resent: 4,
                dropped: 0
            }
        );
    }

    #[test]
    fn without_a_keyframe_video_waits_for_the_next_one() {
        let mut book = HoldBook::new(10_000);
        book.on_live(&video(0, false)); // joined mid-group: nothing to resend
        book.hold(video(33, false));
        book.hold(audio(40));
        book.hold(video(66, true));
        let out = book.resume();
        assert_eq!(ts(&out), vec![(40, true), (66, true)]);
        assert_eq!(book.counters.dropped, 1);
        // Once a key frame went out, inter frames flow again.
        assert!(book.on_live(&video(99, false)));
    }

    #[test]
    fn the_bound_drops_whole_groups_and_counts_them() {
        let mut book = HoldBook::new(1000);
        book.on_live(&video(0, true));
        let mut warnings = Vec::new();
        for i in 1..=60u64 {
            // A key frame every 500 ms at 30 ms spacing.
            let f = video(i * 30, i % 17 == 0);
            if let Some(w) = book.hold(f) {
                warnings.push(w);
            }
        }
        assert_eq!(warnings.len(), 1, "one warning per outage: {warnings:?}");
        assert!(warnings[0].contains("1000 ms"), "{}", warnings[0]);
        let out = book.resume();
        assert!(out[0].keyframe, "what is left starts at a key frame");
        let span = out.last().unwrap().timestamp - out[0].timestamp;
        assert!(span <= 1000, "span {span}");
        let c = book.counters;
        assert_eq!(c.held, 60);
        assert_eq!(
            c.dropped + out.len() as u64,
            60,
            "every held frame sent or counted"
        );
    }

    #[test]
    fn zero_bound_drops_everything_held() {
        let mut book = HoldBook::new(0);
        book.on_live(&video(0, true));
        book.hold(video(10, false));
        book.hold(video(20, false));
        let out = book.resume();
        assert!(out.is_empty(), "{:?}", ts(&out));
        assert_eq!(book.counters.dropped, 2);
    }

    #[test]
    fn audio_only_streams_resume_with_every_held_frame() {
        let mut book = HoldBook::new(5000);
        book.on_live(&audio(0));
        for i in 1..=10 {
            book.hold(audio(i * 21));
        }
        let out = book.resume();
        assert_eq!(out.len(), 10);
        assert_eq!(book.counters.dropped, 0);
    }
}
