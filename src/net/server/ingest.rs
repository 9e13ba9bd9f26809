//! The ingest endpoint: how a publisher's connection hands its media to an rtmpserversrc.
//!
//! One [`Ingest`] per serversrc route. A connection that wants to publish first claims it
//! (a second publisher on a busy route is refused, never mixed in), then sends its messages
//! down a bounded channel; the channel's bound is the backpressure that stops reading the
//! publisher's socket while the element does not take buffers. The element owns the receiver.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use rsrtmp_engine::flv::{
    self, FlvHeader, HeaderKey, MediaClass, Tag, TimestampExtender, classify,
};
use rsrtmp_engine::message::{Message, msg_type};
use rsrtmp_engine::session::EnhancedCaps;
use tokio::sync::mpsc;

/// Messages in flight between a publisher's connection and the element.
pub const CHANNEL_CAPACITY: usize = 256;

/// What a publisher's connection tells the element.
#[derive(Debug)]
pub enum IngestEvent {
    /// A publisher was accepted on the route.
    Started { peer: SocketAddr, name: String },
    /// One media or data message (audio 8, video 9, data 18/15), aggregates already split.
    Message(Message),
    /// The publisher went away (unpublished, disconnected, or failed).
    Stopped { peer: SocketAddr, reason: String },
}

/// The route's publisher slot.
pub struct Ingest {
    tx: mpsc::Sender<IngestEvent>,
    busy: Mutex<Option<SocketAddr>>,
    /// Why the element stopped taking the stream, for the publisher.
    failure: Mutex<Option<String>>,
    /// What the current publisher's connect announced (Enhanced RTMP).
    announced: Mutex<Option<Arc<EnhancedCaps>>>,
    /// A ReconnectRequest for the publisher's connection to send: (tcUrl, description).
    reconnect: Mutex<Option<(Option<String>, String)>>,
    /// Wakes the publisher's connection for `reconnect`.
    pub(crate) reconnect_wake: tokio::sync::Notify,
    /// Where a publisher goes when the element stops (see [`Drain`]).
    drain: Mutex<Option<Drain>>,
}

/// A drain: when the element stops, a publisher that announced capsEx Reconnect is asked to
/// move to `tc_url`, and its connection stays (answering, discarding media) until it leaves,
/// `timeout` at most, instead of being told the stream failed.
#[derive(Debug, Clone)]
pub struct Drain {
    pub tc_url: String,
    pub timeout: std::time::Duration,
}

impl Ingest {
    /// A slot and the receiver its element reads from.
    pub fn new() -> (Arc<Ingest>, mpsc::Receiver<IngestEvent>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (
            Arc::new(Ingest {
                tx,
                busy: Mutex::new(None),
                failure: Mutex::new(None),
                announced: Mutex::new(None),
                reconnect: Mutex::new(None),
                reconnect_wake: tokio::sync::Notify::new(),
                drain: Mutex::new(None),
            }),
            rx,
        )
    }

    /// Asks the current publisher to reconnect (Enhanced RTMP ReconnectRequest), to `tc_url`
    /// or, when `None`, to the same place. False when there is no publisher or it did not
    /// announce capsEx Reconnect (a request it would not understand is not sent).
    pub fn request_reconnect(&self, tc_url: Option<String>, description: String) -> bool {
        use rsrtmp_engine::session::caps::CAPS_RECONNECT;
        if self.publisher().is_none() || !self.announced().is_some_and(|c| c.has(CAPS_RECONNECT)) {
            return false;
        }
        *self.reconnect.lock().unwrap_or_else(|e| e.into_inner()) = Some((tc_url, description));
        self.reconnect_wake.notify_one();
        true
    }

    /// Sets where publishers go when the element stops (`None`: they are told the stream
    /// failed).
    pub fn set_drain(&self, drain: Option<Drain>) {
        *self.drain.lock().unwrap_or_else(|e| e.into_inner()) = drain;
    }

    /// The drain in effect.
    pub fn drain(&self) -> Option<Drain> {
        self.drain.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pending ReconnectRequest, for the publisher's connection.
    pub(crate) fn take_reconnect(&self) -> Option<(Option<String>, String)> {
        self.reconnect
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The Enhanced RTMP capabilities the current publisher announced.
    pub fn announced(&self) -> Option<Arc<EnhancedCaps>> {
        self.announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current publisher, if any.
    pub fn publisher(&self) -> Option<SocketAddr> {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records why the element stops taking the stream: the publisher is told this when its
    /// connection is let go (see the connection's `fail_publisher`).
    pub fn set_failure(&self, why: String) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// The reason given by [`Ingest::set_failure`], if any.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes the slot for `peer`; `None` when another publisher holds it.
    pub(crate) fn claim(self: &Arc<Self>, peer: SocketAddr) -> Option<IngestClaim> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.is_some() {
            return None;
        }
        *busy = Some(peer);
        Some(IngestClaim {
            ingest: self.clone(),
            peer,
            started: false,
        })
    }
}

/// A publisher's hold on the slot. Released on drop.
pub(crate) struct IngestClaim {
    ingest: Arc<Ingest>,
    peer: SocketAddr,
    started: bool,
}

impl IngestClaim {
    /// Records what the publisher's connect announced, for the element's stats.
    pub(crate) fn set_announced(&self, caps: Option<EnhancedCaps>) {
        *self
            .ingest
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = caps.map(Arc::new);
    }

    /// Sends an event; false when the element is gone.
    pub(crate) async fn send(&mut self, ev: IngestEvent) -> bool {
        if matches!(ev, IngestEvent::Started { .. }) {
            self.started = true;
        }
        self.ingest.tx.send(ev).await.is_ok()
    }

    /// Tells the element the publisher is gone (when it was told it came) and frees the slot.
    pub(crate) async fn finish(mut self, reason: String) {
        if self.started {
            self.started = false;
            let _ = self
                .ingest
                .tx
                .send(IngestEvent::Stopped {
                    peer: self.peer,
                    reason,
                })
                .await;
        }
    }
}

impl Drop for IngestClaim {
    fn drop(&mut self) {
        if self.started {
            // The connection task was cut short: the element must still learn of it, and
            // must not wait for it.
            let _ = self.ingest.tx.try_send(IngestEvent::Stopped {
                peer: self.peer,
                reason: "connection task ended".into(),
            });
        }
        *self.ingest.busy.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self
            .ingest
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// One buffer of rtmpserversrc output.
#[derive(Debug, Clone)]
pub struct OutBuffer {
    pub data: Bytes,
    /// Milliseconds.
    pub dts: Option<u64>,
    /// Milliseconds.
    pub pts: Option<u64>,
    /// FLV file header, metadata or sequence header (also in the caps' `streamheader`).
    pub header: bool,
    /// Not a sync point (a video inter frame).
    pub delta: bool,
    /// First buffer after a publisher change.
    pub discont: bool,
}

#[derive(Default, Clone)]
struct Headers {
    metadata: Option<Bytes>,
    /// Every track's decoder configuration, in the order the slots first appeared.
    av: Vec<(HeaderKey, Bytes)>,
}

impl Headers {
    fn set(&mut self, key: HeaderKey, data: Bytes) {
        match self.av.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = data,
            None => self.av.push((key, data)),
        }
    }
}

/// Turns a publisher's messages into rtmpserversrc's FLV output.
///
/// Contract (the same as a client source): the FLV file header, metadata and sequence headers
/// come first, and the caps' `streamheader` holds them; DTS is the RTMP timestamp extended to
/// 64 bits; PTS = DTS + composition time. A later publisher on the same route continues the
/// same FLV stream: its timestamps are moved to start just after the last one output (also in
/// the tags), its headers are re-sent, and its first buffer is marked DISCONT. Headers are held
/// back until the first frame, so the `streamheader` is complete before any frame goes out.
#[derive(Default)]
pub struct FlvOutput {
    pending: VecDeque<OutBuffer>,
    new_streamheader: Option<Vec<Bytes>>,
    headers: Headers,
    /// Between a publisher's start and its first frame.
    collecting: bool,
    sent_file_header: bool,
    has_video: bool,
    has_audio: bool,
    extender: TimestampExtender,
    /// Extended timestamp of the current publisher that maps to `offset`.
    base: Option<u64>,
    offset: u64,
    last_out: Option<u64>,
    discont: bool,
    publishers: u64,
}

impl FlvOutput {
    pub fn new() -> FlvOutput {
        FlvOutput::default()
    }

    /// Next buffer to push, in order.
    pub fn pop(&mut self) -> Option<OutBuffer> {
        self.pending.pop_front()
    }

    /// No buffer is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next buffer, unless it is a header (whose caps go first) or there is none.
    pub fn pop_media(&mut self) -> Option<OutBuffer> {
        if self.pending.front().is_some_and(|b| !b.header) && self.new_streamheader.is_none() {
            self.pending.pop_front()
        } else {
            None
        }
    }

    /// Set when the caps must change: the new `streamheader` buffers.
    pub fn take_new_streamheader(&mut self) -> Option<Vec<Bytes>> {
        self.new_streamheader.take()
    }

    pub fn handle(&mut self, ev: IngestEvent) {
        match ev {
            IngestEvent::Started { .. } => {
                self.publishers += 1;
                self.extender.reset();
                self.headers = Headers::default();
                self.has_video = false;
                self.has_audio = false;
                self.collecting = true;
                if let Some(last) = self.last_out {
                    self.base = None;
                    self.offset = last + 1;
                    self.discont = true;
                } else {
                    // The first publisher's timestamps go out as they are.
                    self.base = Some(0);
                    self.offset = 0;
                }
            }
            IngestEvent::Message(msg) => self.on_message(msg),
            IngestEvent::Stopped { .. } => {
                if self.collecting {
                    // Headers without frames: still worth passing on.
                    self.finish_headers();
                }
            }
        }
    }

    fn out_ts(&mut self, ts: u32) -> u64 {
        let ext = self.extender.extend(ts);
        let base = *self.base.get_or_insert(ext);
        let out = self.offset + ext.saturating_sub(base);
        self.last_out = Some(self.last_out.map_or(out, |l| l.max(out)));
        out
    }

    fn tag_bytes(type_id: u8, ts: u64, payload: Bytes) -> Option<Bytes> {
        let tag_type = if type_id == msg_type::DATA_AMF3 {
            flv::TAG_TYPE_SCRIPT
        } else {
            type_id
        };
        // AMF3 data messages start with a format byte that FLV's AMF0 script tags do not have.
        let payload = if type_id == msg_type::DATA_AMF3 && payload.first() == Some(&0) {
            payload.slice(1..)
        } else {
            payload
        };
        let tag = Tag {
            tag_type,
            timestamp: ts as u32,
            stream_id: 0,
            data: payload,
        };
        let mut out = BytesMut::with_capacity(tag.encoded_len());
        flv::write_tag(&tag, &mut out).ok()?;
        Some(out.freeze())
    }

    fn on_message(&mut self, msg: Message) {
        if !matches!(
            msg.type_id,
            msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0 | msg_type::DATA_AMF3
        ) {
            return;
        }
        let class = classify(msg.type_id, &msg.payload);
        let ts = self.out_ts(msg.timestamp);
        let Some(data) = Self::tag_bytes(msg.type_id, ts, msg.payload) else {
            return;
        };
        let is_header = match class {
            MediaClass::Metadata => {
                self.headers.metadata = Some(data.clone());
                true
            }
            MediaClass::VideoHeader(key) => {
                self.has_video = true;
                self.headers.set(key, data.clone());
                true
            }
            MediaClass::AudioHeader(key) => {
                self.has_audio = true;
                self.headers.set(key, data.clone());
                true
            }
            _ => false,
        };
        if is_header {
            if !self.collecting {
                // A header change mid-stream: pass it on and update the caps.
                self.new_streamheader = Some(self.streamheader());
                self.push(OutBuffer {
                    data,
                    dts: Some(ts),
                    pts: Some(ts),
                    header: true,
                    delta: false,
                    discont: false,
                });
            }
            return;
        }
        match class {
            MediaClass::Video { .. } => self.has_video = true,
            MediaClass::Audio => self.has_audio = true,
            _ => {}
        }
        if self.collecting {
            self.finish_headers();
        }
        let (pts, delta) = match class {
            MediaClass::Video {
                keyframe,
                composition_time,
            } => (
                ts.saturating_add_signed(i64::from(composition_time)),
                !keyframe,
            ),
            _ => (ts, false),
        };
        self.push(OutBuffer {
            data,
            dts: Some(ts),
            pts: Some(pts),
            header: false,
            delta,
            discont: false,
        });
    }

    fn file_header(&self) -> Bytes {
        let (audio, video) = if self.has_audio || self.has_video {
            (self.has_audio, self.has_video)
        } else {
            (true, true)
        };
        let mut out = BytesMut::new();
        flv::write_header(&FlvHeader::new(audio, video), &mut out);
        out.freeze()
    }

    fn streamheader(&self) -> Vec<Bytes> {
        let h = &self.headers;
        std::iter::once(self.file_header())
            .chain(h.metadata.iter().cloned())
            .chain(h.av.iter().map(|(_, b)| b.clone()))
            .collect()
    }

    fn finish_headers(&mut self) {
        self.collecting = false;
        let streamheader = self.streamheader();
        // The file header goes out once per output stream; later publishers continue it.
        let skip = usize::from(self.sent_file_header);
        self.sent_file_header = true;
        for data in streamheader.iter().skip(skip).cloned() {
            self.push(OutBuffer {
                data,
                dts: None,
                pts: None,
                header: true,
                delta: false,
                discont: false,
            });
        }
        self.new_streamheader = Some(streamheader);
    }

    fn push(&mut self, mut b: OutBuffer) {
        if std::mem::take(&mut self.discont) {
            b.discont = true;
        }
        self.pending.push_back(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn msg(type_id: u8, ts: u32, payload: &[u8]) -> IngestEvent {
        IngestEvent::Message(Message {
            type_id,
            timestamp: ts,
            stream_id: 1,
            payload: Bytes::copy_from_slice(payload),
        })
    }

    const AVC_SEQ: &[u8] = &[0x17, 0, 0, 0, 0, 1, 2, 3];
    const AVC_KEY: &[u8] = &[0x17, 1, 0, 0, 0x28, 9, 9];
    const AVC_INTER: &[u8] = &[0x27, 1, 0, 0, 0, 9];
    const AAC_SEQ: &[u8] = &[0xAF, 0, 0x12, 0x10];
    const AAC_RAW: &[u8] = &[0xAF, 1, 5, 5];

    fn drain(o: &mut FlvOutput) -> Vec<OutBuffer> {
        std::iter::from_fn(|| o.pop()).collect()
    }

    fn started() -> IngestEvent {
        IngestEvent::Started {
            peer: peer(),
            name: "s".into(),
        }
    }

    #[test]
    fn headers_first_then_frames_with_pts_from_composition_time() {
        let mut o = FlvOutput::new();
        o.handle(started());
        o.handle(msg(18, 0, b"\x02\x00\x0aonMetaData\x05"));
        o.handle(msg(9, 0, AVC_SEQ));
        o.handle(msg(8, 0, AAC_SEQ));
        assert!(drain(&mut o).is_empty(), "headers wait for the first frame");
        o.handle(msg(9, 100, AVC_KEY));
        o.handle(msg(8, 110, AAC_RAW));
        o.handle(msg(9, 133, AVC_INTER));
        let sh = o.take_new_streamheader().expect("streamheader");
        assert_eq!(sh.len(), 4);
        assert_eq!(&sh[0][..3], b"FLV");
        assert_eq!(sh[0][4], 0x05, "audio and video flags");
        let out = drain(&mut o);
        assert_eq!(out.len(), 7);
        assert!(out[..4].iter().all(|b| b.header));
        assert_eq!(out[0].data, sh[0]);
        assert_eq!(out[4].dts, Some(100));
        assert_eq!(out[4].pts, Some(140));
        assert!(!out[4].delta);
        assert!(out[6].delta);
        // The tag carries the timestamp and the message body.
        let tag = &out[5].data;
        assert_eq!(tag[0], 8);
        assert_eq!(&tag[4..7], &[0, 0, 110]);
        assert_eq!(&tag[11..15], AAC_RAW);
    }

    #[test]
    fn every_tracks_header_is_in_the_streamheader() {
        // Opus SequenceStart on track 0 (Enhanced RTMP v1), then on track 1 (a OneTrack
        // multitrack packet), as FFmpeg 8+ sends two Opus tracks; then a new track-0 header.
        const OPUS0: &[u8] = b"\x90Opus\x01";
        const OPUS1: &[u8] = b"\x95\x00Opus\x01\x02";
        const OPUS0_NEW: &[u8] = b"\x90Opus\x03";
        let mut out = FlvOutput::new();
        out.handle(started());
        out.handle(msg(8, 0, OPUS0));
        out.handle(msg(8, 0, OPUS1));
        out.handle(msg(8, 0, OPUS0_NEW));
        out.handle(msg(8, 20, b"\x91Opus\x10\x11"));
        let sh = out.take_new_streamheader().unwrap();
        let bodies: Vec<&[u8]> = sh[1..].iter().map(|b| &b[11..b.len() - 4]).collect();
        assert_eq!(bodies, vec![OPUS0_NEW, OPUS1]);
    }

    #[test]
    fn second_publisher_continues_the_timeline_with_a_discont() {
        let mut o = FlvOutput::new();
        o.handle(started());
        o.handle(msg(9, 0, AVC_SEQ));
        o.handle(msg(9, 5000, AVC_KEY));
        o.handle(msg(9, 6000, AVC_INTER));
        o.handle(IngestEvent::Stopped {
            peer: peer(),
            reason: "gone".into(),
        });
        drain(&mut o);
        o.handle(started());
        o.handle(msg(9, 0, AVC_SEQ));
        o.handle(msg(9, 0, AVC_KEY));
        o.handle(msg(9, 40, AVC_INTER));
        let out = drain(&mut o);
        assert_eq!(out.len(), 3, "no second file header: {out:?}");
        assert!(out[0].discont && out[0].header);
        assert_eq!(out[1].dts, Some(6001));
        assert_eq!(out[2].dts, Some(6041));
        assert!(!out[1].discont);
    }

    #[test]
    fn timestamps_extend_past_32_bits() {
        let mut o = FlvOutput::new();
        o.handle(started());
        o.handle(msg(8, u32::MAX - 10, AAC_RAW));
        o.handle(msg(8, 20, AAC_RAW));
        let out = drain(&mut o);
        assert_eq!(out.last().unwrap().dts, Some(u64::from(u32::MAX) + 21));
    }
}
