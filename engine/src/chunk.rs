//! The chunk stream (protocol-facts §5.1–5.4): splitting messages into chunks with compressed
//! headers, and reassembling them.
//!
//! [`ChunkReader`] turns received bytes into [`Message`]s. It keeps per chunk stream the last
//! header (what fmt 1–3 inherit) and at most one partial message, all bounded by
//! [`ChunkLimits`], so a hostile peer cannot make it hold more than
//! `max_partial_messages × max_message_len` bytes of partial payload, and allocation grows with
//! bytes actually received rather than with declared lengths. A message that arrives in one
//! chunk is handed out as a slice of the input buffer without copying.
//!
//! [`ChunkWriter`] compresses headers against the previous message on the same chunk stream,
//! choosing only forms every peer decodes the same way (see `choose_header`). Both sides write
//! and read the 2012-spec extended timestamp on type-3 chunks, with the reader tolerating peers
//! that omit it (Appendix B item 6).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::message::{Control, Message, MessageError, msg_type};

/// Largest value of a 24-bit header field; in a timestamp field it announces an extended
/// timestamp.
const MAX_24: u32 = 0xFF_FFFF;
/// Largest chunk stream id the 3-byte basic header can carry.
const MAX_CSID: u32 = 65599;
/// Chunk size of both directions until a Set Chunk Size says otherwise.
const DEFAULT_CHUNK_SIZE: u32 = 128;
/// First allocation for a message that spans several chunks; larger messages grow from here
/// as their bytes arrive.
const PARTIAL_INITIAL_CAPACITY: usize = 64 * 1024;
/// Message header length by fmt.
const MESSAGE_HEADER_LEN: [usize; 4] = [11, 7, 3, 0];

/// Limits the reader enforces on what the peer sends.
#[derive(Debug, Clone)]
pub struct ChunkLimits {
    /// Largest Set Chunk Size accepted from the peer (default 0x7FFF_FFFF; >0xFFFFFF acts as
    /// 0xFFFFFF).
    pub max_chunk_size: u32,
    /// Largest message length accepted (default 8 MiB; protocol max 0xFFFFFF).
    pub max_message_len: u32,
    /// Chunk stream ids tracked at once (default 256).
    pub max_chunk_streams: usize,
    /// Messages in progress at once (default 16).
    pub max_partial_messages: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_chunk_size: 0x7FFF_FFFF,
            max_message_len: 8 * 1024 * 1024,
            max_chunk_streams: 256,
            max_partial_messages: 16,
        }
    }
}

/// Errors from [`ChunkReader::read_message`]. All are fatal for the connection: the reader's
/// position in the byte stream is no longer trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size {size} out of range 1..={max}")]
    ChunkSizeOutOfRange { size: u32, max: u32 },
    #[error("chunk size {size:#010x} has bit 31 set")]
    ChunkSizeHighBit { size: u32 },
    #[error("message length {len} on chunk stream {csid} exceeds the limit of {max} bytes")]
    MessageTooLong { csid: u32, len: u32, max: u32 },
    #[error("chunk stream {csid} is new but {max} chunk streams are already tracked (the limit)")]
    TooManyChunkStreams { csid: u32, max: usize },
    #[error(
        "message on chunk stream {csid} is new but {max} partial messages are already in progress (the limit)"
    )]
    TooManyPartialMessages { csid: u32, max: usize },
    #[error("fmt {fmt} chunk on chunk stream {csid}, which has no previous message header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error(
        "message length changed from {old} to {new} on chunk stream {csid} after {received} bytes of the message"
    )]
    LengthChangedMidMessage {
        csid: u32,
        old: u32,
        new: u32,
        received: u32,
    },
    #[error(
        "message type changed from {old} to {new} on chunk stream {csid} in the middle of a message"
    )]
    TypeChangedMidMessage { csid: u32, old: u8, new: u8 },
    #[error(
        "message stream id changed from {old} to {new} on chunk stream {csid} in the middle of a message"
    )]
    StreamIdChangedMidMessage { csid: u32, old: u32, new: u32 },
    #[error("invalid protocol control message: {0}")]
    Control(#[from] MessageError),
}

/// What the reader remembers about one incoming chunk stream.
#[derive(Debug)]
struct InStream {
    /// Timestamp of the latest message started on this csid.
    timestamp: u32,
    /// Delta a new type-3 message adds: the last fmt 1/2 delta, or the fmt 0 absolute time.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp value carried by the latest fmt 0/1/2 header, if it had one.
    ext: Option<u32>,
    /// Bytes so far of the message in progress; never empty when present.
    partial: Option<Vec<u8>>,
}

impl InStream {
    /// A chunk stream seen for the first time: what fmt 1 on a fresh csid builds on.
    fn fresh() -> Self {
        InStream {
            timestamp: 0,
            delta: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
            ext: None,
            partial: None,
        }
    }
}

/// Per chunk stream state of one direction. The ids of the one-byte basic header (2..=63),
/// which carry practically all traffic, index a table directly so that the per-chunk lookup
/// is an array access rather than a hash; the rare larger ids live in a map.
#[derive(Debug)]
struct StreamTable<T> {
    /// The first [`SMALL`] chunk streams, searched in order: a connection uses a handful, and
    /// a few dozen bytes each beat a table sized for every csid on every connection.
    small: Vec<(u32, T)>,
    /// Any beyond those (hostile or unusual peers), hashed.
    high: HashMap<u32, T>,
}

/// Chunk streams kept in [`StreamTable::small`].
const SMALL: usize = 16;

impl<T> StreamTable<T> {
    fn new() -> Self {
        StreamTable {
            small: Vec::new(),
            high: HashMap::new(),
        }
    }

    /// Chunk streams tracked.
    fn len(&self) -> usize {
        self.small.len() + self.high.len()
    }

    fn get(&self, csid: u32) -> Option<&T> {
        match self.small.iter().find(|(c, _)| *c == csid) {
            Some((_, v)) => Some(v),
            None if self.high.is_empty() => None,
            None => self.high.get(&csid),
        }
    }

    fn get_mut(&mut self, csid: u32) -> Option<&mut T> {
        match self.small.iter().position(|(c, _)| *c == csid) {
            Some(i) => Some(&mut self.small[i].1),
            None if self.high.is_empty() => None,
            None => self.high.get_mut(&csid),
        }
    }

    /// The entry of `csid`, created by `new` if absent.
    fn get_or_insert_with(&mut self, csid: u32, new: impl FnOnce() -> T) -> &mut T {
        if let Some(i) = self.small.iter().position(|(c, _)| *c == csid) {
            return &mut self.small[i].1;
        }
        if self.small.len() < SMALL && !self.high.contains_key(&csid) {
            if self.small.capacity() == 0 {
                self.small.reserve_exact(4);
            }
            self.small.push((csid, new()));
            return &mut self.small.last_mut().expect("just pushed").1;
        }
        match self.high.entry(csid) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(new()),
        }
    }

    fn insert(&mut self, csid: u32, value: T) {
        let mut value = Some(value);
        let slot = self.get_or_insert_with(csid, || value.take().expect("taken once"));
        if let Some(v) = value {
            *slot = v;
        }
    }
}

/// Header values for a message that starts in the chunk being read.
struct Start {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Everything decided about one chunk before any state changes, so that running out of input
/// halfway leaves the reader untouched.
struct Plan {
    csid: u32,
    /// Basic + message header + extended timestamp bytes.
    header_len: usize,
    payload_len: usize,
    /// `Some` when the chunk starts a new message.
    start: Option<Start>,
    /// `Some(new value)` when the chunk changes the remembered extended timestamp.
    ext: Option<Option<u32>>,
}

/// Outcome of one chunk. Chunks are consumed through a cursor into the input buffer, which
/// is only advanced when a call to [`ChunkReader::read_message`] ends, so that the many
/// continuation chunks of a large message cost no buffer bookkeeping each.
enum Step {
    NeedMore,
    /// The chunk was added to a partial message; the cursor moves to the given offset.
    Progress(usize),
    /// A message is complete and the input buffer is already advanced past it.
    Complete(Message),
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reassembles messages from the peer's chunk stream.
///
/// A message that arrived in one chunk is a slice of the reader's input buffer: holding it
/// keeps that buffer block alive, which is the price of not copying.
#[derive(Debug)]
pub struct ChunkReader {
    limits: ChunkLimits,
    /// Received bytes not yet consumed.
    buf: BytesMut,
    chunk_size: u32,
    /// Bytes removed from the front of `buf` so far; with `buf.len()` the total received.
    consumed: u64,
    streams: StreamTable<InStream>,
    partials: usize,
}

impl ChunkReader {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkReader {
            limits,
            buf: BytesMut::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            consumed: 0,
            streams: StreamTable::new(),
            partials: 0,
        }
    }

    /// Appends received bytes (already decrypted, for RTMPE) to the internal buffer.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The input buffer, with room reserved for at least `min` more bytes, for the I/O driver
    /// to append received bytes to directly (for example with tokio's `read_buf`), which
    /// saves the copy [`feed`](Self::feed) makes.
    ///
    /// Only append to it: the bytes already there are input not yet parsed, and removing or
    /// changing them desynchronises the chunk stream (which then fails to parse, or yields
    /// garbage messages; it cannot make the reader panic). Appended bytes count in
    /// [`bytes_received`](Self::bytes_received) like fed ones.
    pub fn read_buf(&mut self, min: usize) -> &mut BytesMut {
        self.buf.reserve(min);
        &mut self.buf
    }

    /// Next complete message, Ok(None) when more bytes are needed. Set Chunk Size and Abort
    /// (on stream 0) take effect inside the reader before they are returned.
    ///
    /// Worth calling again after every `Ok(Some(_))` and after every [`feed`](Self::feed).
    /// Set Chunk Size and Abort are applied whatever their message stream id: a peer that
    /// sends them elsewhere has still changed its chunking.
    ///
    /// After a header with an extended timestamp, a continuation chunk whose first payload
    /// bytes so far equal the start of that timestamp is held until four bytes are there to
    /// tell whether the peer repeated the field (protocol-facts §5.3).
    pub fn read_message(&mut self) -> Result<Option<Message>, ChunkError> {
        // Offset in `buf` of the next chunk; everything before it has been applied.
        let mut pos = 0;
        loop {
            match self.next_chunk(pos) {
                Ok(Step::Progress(next)) => pos = next,
                Ok(Step::NeedMore) => {
                    self.consume(pos);
                    return Ok(None);
                }
                Ok(Step::Complete(msg)) => {
                    self.apply_control(&msg)?;
                    return Ok(Some(msg));
                }
                Err(e) => {
                    // The failing chunk changed nothing; keep the buffer in step with the
                    // chunks before it that did.
                    self.consume(pos);
                    return Err(e);
                }
            }
        }
    }

    /// The peer's current chunk size (values above 0xFFFFFF are stored as 0xFFFFFF).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Total bytes received so far, fed or appended through [`read_buf`](Self::read_buf)
    /// (for acknowledgements).
    pub fn bytes_received(&self) -> u64 {
        self.consumed + self.buf.len() as u64
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.consumed += n as u64;
    }

    fn apply_control(&mut self, msg: &Message) -> Result<(), ChunkError> {
        if msg.type_id != msg_type::SET_CHUNK_SIZE && msg.type_id != msg_type::ABORT {
            return Ok(());
        }
        match Control::parse(msg)? {
            Some(Control::SetChunkSize(size)) => {
                if size & 0x8000_0000 != 0 {
                    return Err(ChunkError::ChunkSizeHighBit { size });
                }
                let max = self.limits.max_chunk_size;
                if size == 0 || size > max {
                    return Err(ChunkError::ChunkSizeOutOfRange { size, max });
                }
                self.chunk_size = size.min(MAX_24);
            }
            Some(Control::Abort(csid)) => {
                if let Some(s) = self.streams.get_mut(csid)
                    && s.partial.take().is_some()
                {
                    self.partials -= 1;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads the header of the chunk at the start of `input` and decides what it means,
    /// without changing any state. `Ok(None)` when the header (or the payload) is not all
    /// there yet.
    fn plan_chunk(&self, input: &[u8]) -> Result<Option<Plan>, ChunkError> {
        let Some(&b0) = input.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match input.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match input.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            v => (u32::from(v), 1),
        };
        let Some(h) = input.get(pos..pos + MESSAGE_HEADER_LEN[usize::from(fmt)]) else {
            return Ok(None);
        };
        pos += h.len();

        let state = self.streams.get(csid);
        if state.is_none() {
            // librtmp sends its first control messages on csid 2 with fmt 1 (protocol-facts
            // §5.2), so fmt 1 on a fresh csid is accepted with stream id 0 and time 0 as the
            // base. fmt 2 and 3 would inherit a length nobody sent.
            if fmt >= 2 {
                return Err(ChunkError::NoPreviousHeader { csid, fmt });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams {
                    csid,
                    max: self.limits.max_chunk_streams,
                });
            }
        }
        let received = state
            .and_then(|s| s.partial.as_ref())
            .map_or(0, |p| p.len());

        // The timestamp or delta carried by this chunk, if any, after the extended field.
        let mut time_field = None;
        let mut ext = None;
        if fmt < 3 {
            let mut v = u24(h);
            if v == MAX_24 {
                let Some(b) = input.get(pos..pos + 4) else {
                    return Ok(None);
                };
                v = be32(b);
                pos += 4;
                ext = Some(Some(v));
            } else {
                ext = Some(None);
            }
            time_field = Some(v);
        } else if let Some(remembered) = state.and_then(|s| s.ext) {
            let want = remembered.to_be_bytes();
            if received == 0 {
                // A new message: every writer that sends the field here sends it (FFmpeg,
                // librtmp 2.6, SRS all read it unconditionally).
                let Some(b) = input.get(pos..pos + 4) else {
                    return Ok(None);
                };
                let v = be32(b);
                pos += 4;
                time_field = Some(v);
                ext = Some(Some(v));
            } else {
                // A continuation: the field is there only if the peer follows the 2012 spec.
                // Peek, and take the four bytes only if they repeat the remembered value; a
                // mismatch in the bytes we already have settles it without waiting.
                let avail = &input[pos..input.len().min(pos + 4)];
                if avail == &want[..avail.len()] {
                    if avail.len() < 4 {
                        return Ok(None);
                    }
                    pos += 4;
                }
            }
        }

        let (length, start) = if let Some(s) = state.filter(|_| received > 0) {
            check_same_header(csid, fmt, h, s, received)?;
            (s.length, None)
        } else {
            let length = if fmt < 2 {
                u24(&h[3..])
            } else {
                state.map_or(0, |s| s.length)
            };
            if length > self.limits.max_message_len {
                return Err(ChunkError::MessageTooLong {
                    csid,
                    len: length,
                    max: self.limits.max_message_len,
                });
            }
            let prev_ts = state.map_or(0, |s| s.timestamp);
            let (timestamp, delta) = match (fmt, time_field) {
                (0, Some(abs)) => (abs, abs),
                (_, Some(delta)) => (prev_ts.wrapping_add(delta), delta),
                (_, None) => {
                    let delta = state.map_or(0, |s| s.delta);
                    (prev_ts.wrapping_add(delta), delta)
                }
            };
            let start = Start {
                timestamp,
                delta,
                length,
                type_id: if fmt < 2 {
                    h[6]
                } else {
                    state.map_or(0, |s| s.type_id)
                },
                stream_id: if fmt == 0 {
                    u32::from_le_bytes([h[7], h[8], h[9], h[10]])
                } else {
                    state.map_or(0, |s| s.stream_id)
                },
            };
            (length, Some(start))
        };

        let remaining = (length as usize) - received;
        let payload_len = remaining.min(self.chunk_size as usize);
        if start.is_some()
            && payload_len < remaining
            && self.partials >= self.limits.max_partial_messages
        {
            return Err(ChunkError::TooManyPartialMessages {
                csid,
                max: self.limits.max_partial_messages,
            });
        }
        if input.len() < pos + payload_len {
            return Ok(None);
        }
        Ok(Some(Plan {
            csid,
            header_len: pos,
            payload_len,
            start,
            ext,
        }))
    }

    /// Handles the chunk at offset `pos` of the input buffer.
    fn next_chunk(&mut self, pos: usize) -> Result<Step, ChunkError> {
        if let Some(step) = self.continuation_fast(pos) {
            return Ok(step);
        }
        let Some(plan) = self.plan_chunk(&self.buf[pos..])? else {
            return Ok(Step::NeedMore);
        };
        let s = self.streams.get_or_insert_with(plan.csid, InStream::fresh);
        if let Some(ext) = plan.ext {
            s.ext = ext;
        }
        if let Some(start) = plan.start {
            s.timestamp = start.timestamp;
            s.delta = start.delta;
            s.length = start.length;
            s.type_id = start.type_id;
            s.stream_id = start.stream_id;
        }
        let length = s.length as usize;
        let n = plan.payload_len;
        let body = pos + plan.header_len;
        let end = body + n;
        let data = match s.partial.take() {
            None if n == length => {
                // The whole message is in this chunk: share the input buffer.
                self.buf.advance(body);
                let payload = self.buf.split_to(n).freeze();
                self.consumed += end as u64;
                return Ok(Step::Complete(completed(s, payload)));
            }
            None => {
                self.partials += 1;
                let mut data = Vec::with_capacity(length.min(PARTIAL_INITIAL_CAPACITY));
                data.extend_from_slice(&self.buf[body..end]);
                data
            }
            Some(mut data) => {
                append_bounded(&mut data, &self.buf[body..end], length);
                data
            }
        };
        if data.len() < length {
            s.partial = Some(data);
            return Ok(Step::Progress(end));
        }
        self.partials -= 1;
        // Capacity equals length here, so this conversion does not copy.
        let msg = completed(s, Bytes::from(data));
        self.consume(end);
        Ok(Step::Complete(msg))
    }

    /// The common chunk of a large message, handled without planning: type 3, one-byte
    /// basic header, continuing a message in progress on a chunk stream whose header had no
    /// extended timestamp. Such a chunk carries no header fields to check; it is exactly
    /// what the general path would do for it. `None` for any other chunk.
    #[inline]
    fn continuation_fast(&mut self, pos: usize) -> Option<Step> {
        let input = &self.buf[pos..];
        let &b0 = input.first()?;
        if b0 >> 6 != 3 {
            return None;
        }
        let s = self.streams.get_mut(u32::from(b0 & 0x3f))?;
        if s.ext.is_some() {
            return None;
        }
        let data = s.partial.as_mut()?;
        let length = s.length as usize;
        let n = (length - data.len()).min(self.chunk_size as usize);
        let Some(chunk) = input.get(1..1 + n) else {
            return Some(Step::NeedMore);
        };
        append_bounded(data, chunk, length);
        let end = pos + 1 + n;
        if data.len() < length {
            return Some(Step::Progress(end));
        }
        let data = s.partial.take()?;
        let msg = completed(s, Bytes::from(data));
        self.partials -= 1;
        self.consume(end);
        Some(Step::Complete(msg))
    }
}

fn completed(s: &InStream, payload: Bytes) -> Message {
    Message {
        type_id: s.type_id,
        timestamp: s.timestamp,
        stream_id: s.stream_id,
        payload,
    }
}

/// A header arriving in the middle of a message may repeat the message's fields but not
/// change them: which bytes belong to which message would become a guess.
fn check_same_header(
    csid: u32,
    fmt: u8,
    h: &[u8],
    s: &InStream,
    received: usize,
) -> Result<(), ChunkError> {
    if fmt < 2 {
        let new = u24(&h[3..]);
        if new != s.length {
            return Err(ChunkError::LengthChangedMidMessage {
                csid,
                old: s.length,
                new,
                received: received as u32,
            });
        }
        if h[6] != s.type_id {
            return Err(ChunkError::TypeChangedMidMessage {
                csid,
                old: s.type_id,
                new: h[6],
            });
        }
    }
    if fmt == 0 {
        let new = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        if new != s.stream_id {
            return Err(ChunkError::StreamIdChangedMidMessage {
                csid,
                old: s.stream_id,
                new,
            });
        }
    }
    Ok(())
}

/// Appends a chunk to a partial message, doubling the capacity when it runs out but never
/// beyond the declared length, so a message costs at most one buffer of its own size.
fn append_bounded(data: &mut Vec<u8>, chunk: &[u8], declared: usize) {
    let needed = data.len() + chunk.len();
    if needed > data.capacity() {
        let target = (data.capacity() * 2).max(needed).min(declared);
        data.reserve_exact(target - data.len());
    }
    data.extend_from_slice(chunk);
}

/// What the writer remembers about one outgoing chunk stream.
#[derive(Debug, Clone, Copy)]
struct OutStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// fmt (0, 1 or 2) of the latest header that was not type 3.
    header_fmt: u8,
    ext: Option<u32>,
}

/// Header of the first chunk of a message, ready to encode.
#[derive(Debug, Clone, Copy)]
struct FirstHeader {
    csid: u32,
    fmt: u8,
    /// Absolute timestamp (fmt 0) or delta (fmt 1, 2); unused for fmt 3.
    time: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Extended timestamp written after this header and after every continuation header.
    ext: Option<u32>,
}

/// Chunks outgoing messages, compressing headers per chunk stream.
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: u32,
    streams: StreamTable<OutStream>,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// Outgoing chunk size 128.
    pub fn new() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: StreamTable::new(),
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies to every chunk written after this call; the caller writes the Set Chunk Size
    /// message itself first (with the old size).
    ///
    /// The size is clamped to 1..=0xFFFFFF: larger values mean 0xFFFFFF to the peer anyway.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_24);
    }

    /// Chunks `msg` on chunk stream `csid` (2..=65599), compressing the header against the
    /// previous message on that csid.
    ///
    /// Writes into `out` after reserving the exact size once. A csid outside 2..=65599 or a
    /// payload above 0xFFFFFF bytes is a caller bug (debug assertion); release builds clamp
    /// the csid and send only the first 0xFFFFFF bytes, keeping the stream decodable.
    pub fn write_message(&mut self, csid: u32, msg: &Message, out: &mut BytesMut) {
        self.write_message_inner(csid, msg, out, None);
    }

    /// Records that `msg` went out on `csid` as produced by [`encode_message_full`] (a type-0
    /// header), so that later messages on that csid compress against it.
    pub fn record_full_message(&mut self, csid: u32, msg: &Message) {
        let csid = checked_csid(csid);
        let payload = checked_payload(msg);
        self.streams.insert(
            csid,
            OutStream {
                timestamp: msg.timestamp,
                delta: msg.timestamp,
                length: payload.len() as u32,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
                header_fmt: 0,
                ext: (msg.timestamp >= MAX_24).then_some(msg.timestamp),
            },
        );
    }

    /// Picks the header for `msg` on `csid` and records it as the csid's latest.
    fn plan(&mut self, csid: u32, msg: &Message) -> FirstHeader {
        let csid = checked_csid(csid);
        let length = checked_payload(msg).len() as u32;
        let prev = self.streams.get(csid).copied();
        let header = choose_header(prev.as_ref(), csid, msg, length);
        let (delta, header_fmt) = match (header.fmt, prev) {
            (3, Some(p)) => (p.delta, p.header_fmt),
            (fmt, _) => (header.time, fmt),
        };
        self.streams.insert(
            csid,
            OutStream {
                timestamp: msg.timestamp,
                delta,
                length,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
                header_fmt,
                ext: header.ext,
            },
        );
        header
    }

    /// `boundaries` collects the end offset in `out` of each chunk (tests interleave chunks
    /// of different messages with it).
    fn write_message_inner(
        &mut self,
        csid: u32,
        msg: &Message,
        out: &mut BytesMut,
        boundaries: Option<&mut Vec<usize>>,
    ) {
        let header = self.plan(csid, msg);
        let payload = checked_payload(msg);
        encode_chunks(&header, payload, self.chunk_size, out, boundaries);
    }
}

/// Picks the most compact header that every peer decodes to the same values.
///
/// fmt 3 for a new message is used only after a fmt 1 or 2 header with the same delta: after
/// a fmt 0 header the spec's implied delta is the absolute timestamp but nginx-rtmp uses 0
/// (Appendix B item 7), so that combination is avoided rather than bet on.
fn choose_header(prev: Option<&OutStream>, csid: u32, msg: &Message, length: u32) -> FirstHeader {
    let mut h = FirstHeader {
        csid,
        fmt: 0,
        time: msg.timestamp,
        length,
        type_id: msg.type_id,
        stream_id: msg.stream_id,
        ext: None,
    };
    match prev {
        Some(p) if p.stream_id == msg.stream_id && msg.timestamp >= p.timestamp => {
            let delta = msg.timestamp - p.timestamp;
            h.time = delta;
            h.fmt = if p.length != length || p.type_id != msg.type_id {
                1
            } else if delta == p.delta && p.header_fmt != 0 {
                3
            } else {
                2
            };
            if h.fmt == 3 {
                h.ext = p.ext;
                return h;
            }
        }
        _ => {}
    }
    h.ext = (h.time >= MAX_24).then_some(h.time);
    h
}

fn checked_csid(csid: u32) -> u32 {
    debug_assert!(
        (2..=MAX_CSID).contains(&csid),
        "chunk stream id {csid} outside 2..={MAX_CSID}"
    );
    csid.clamp(2, MAX_CSID)
}

fn checked_payload(msg: &Message) -> &[u8] {
    debug_assert!(
        msg.payload.len() <= MAX_24 as usize,
        "message payload of {} bytes exceeds the 24-bit length field",
        msg.payload.len()
    );
    &msg.payload[..msg.payload.len().min(MAX_24 as usize)]
}

fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let f = fmt << 6;
    match csid {
        0..=63 => out.put_u8(f | csid as u8),
        64..=319 => {
            out.put_u8(f);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let v = csid - 64;
            out.put_u8(f | 1);
            out.put_u8(v as u8);
            out.put_u8((v >> 8) as u8);
        }
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

fn put_first_header(out: &mut BytesMut, h: &FirstHeader) {
    put_basic_header(out, h.fmt, h.csid);
    if h.fmt < 3 {
        put_u24(out, h.time.min(MAX_24));
    }
    if h.fmt < 2 {
        put_u24(out, h.length);
        out.put_u8(h.type_id);
    }
    if h.fmt == 0 {
        out.put_u32_le(h.stream_id);
    }
    if let Some(ext) = h.ext {
        out.put_u32(ext);
    }
}

fn encode_chunks(
    h: &FirstHeader,
    payload: &[u8],
    chunk_size: u32,
    out: &mut BytesMut,
    mut boundaries: Option<&mut Vec<usize>>,
) {
    let chunk_size = chunk_size.clamp(1, MAX_24) as usize;
    let chunks = payload.len().div_ceil(chunk_size).max(1);
    let ext_len = if h.ext.is_some() { 4 } else { 0 };
    let basic = basic_header_len(h.csid);
    out.reserve(
        basic
            + MESSAGE_HEADER_LEN[usize::from(h.fmt)]
            + ext_len
            + (chunks - 1) * (basic + ext_len)
            + payload.len(),
    );

    put_first_header(out, h);
    let mut pieces = payload.chunks(chunk_size);
    out.put_slice(pieces.next().unwrap_or(&[]));
    if let Some(b) = boundaries.as_deref_mut() {
        b.push(out.len());
    }
    // Every continuation header is the same few bytes: build them once, so each chunk is two
    // copies into space already reserved.
    let mut cont = [0u8; 7];
    let cont_len = continuation_header(&mut cont, h.csid, h.ext);
    let cont = &cont[..cont_len];
    match boundaries {
        // A one-byte header (csid 2..=63, no extended timestamp) is the norm; storing it as a
        // byte avoids a copy call per chunk.
        None if cont_len == 1 => {
            for piece in pieces {
                out.put_u8(cont[0]);
                out.put_slice(piece);
            }
        }
        None => {
            for piece in pieces {
                out.put_slice(cont);
                out.put_slice(piece);
            }
        }
        Some(b) => {
            for piece in pieces {
                out.put_slice(cont);
                out.put_slice(piece);
                b.push(out.len());
            }
        }
    }
}

/// Writes the type-3 header of `csid` (with `ext` after it, if any) to the front of `buf`;
/// returns its length.
fn continuation_header(buf: &mut [u8; 7], csid: u32, ext: Option<u32>) -> usize {
    let basic = match csid {
        0..=63 => {
            buf[0] = 0xc0 | csid as u8;
            1
        }
        64..=319 => {
            buf[0] = 0xc0;
            buf[1] = (csid - 64) as u8;
            2
        }
        _ => {
            let v = csid - 64;
            buf[0] = 0xc1;
            buf[1] = v as u8;
            buf[2] = (v >> 8) as u8;
            3
        }
    };
    match ext {
        Some(e) => {
            buf[basic..basic + 4].copy_from_slice(&e.to_be_bytes());
            basic + 4
        }
        None => basic,
    }
}

/// Stateless: type-0 header then type-3 continuations. Used by the server to encode a media
/// message once and share the bytes with every player.
///
/// Follow it with [`ChunkWriter::record_full_message`] on each connection that sends the
/// bytes, if that connection's writer will use the same csid.
pub fn encode_message_full(csid: u32, msg: &Message, chunk_size: u32, out: &mut BytesMut) {
    let payload = checked_payload(msg);
    let header = FirstHeader {
        csid: checked_csid(csid),
        fmt: 0,
        time: msg.timestamp,
        length: payload.len() as u32,
        type_id: msg.type_id,
        stream_id: msg.stream_id,
        ext: (msg.timestamp >= MAX_24).then_some(msg.timestamp),
    };
    encode_chunks(&header, payload, chunk_size, out, None);
}

/// The message in `bytes` as [`encode_message_full`] wrote it with `chunk_size` (one message,
/// type-0 first chunk, type-3 continuations). A message of one chunk is a slice of `bytes`;
/// a longer one is copied out of its chunks. `None` when `bytes` is not one such message.
pub fn decode_message_full(bytes: &Bytes, chunk_size: u32) -> Option<Message> {
    let basic = |b0: u8| match b0 & 0x3f {
        0 => 2,
        1 => 3,
        _ => 1,
    };
    let b0 = *bytes.first()?;
    if b0 >> 6 != 0 {
        return None;
    }
    let head = bytes.get(basic(b0)..basic(b0) + 11)?;
    let mut timestamp = u24(&head[0..3]);
    let length = u24(&head[3..6]) as usize;
    let type_id = head[6];
    let stream_id = u32::from_le_bytes([head[7], head[8], head[9], head[10]]);
    let ext = timestamp == MAX_24;
    let mut pos = basic(b0) + 11;
    if ext {
        timestamp = be32(bytes.get(pos..pos + 4)?);
        pos += 4;
    }
    let chunk = chunk_size.max(1) as usize;
    let payload = if length <= chunk {
        let end = pos + length;
        if end != bytes.len() {
            return None;
        }
        bytes.slice(pos..end)
    } else {
        let mut out = BytesMut::with_capacity(length);
        loop {
            let n = (length - out.len()).min(chunk);
            out.extend_from_slice(bytes.get(pos..pos + n)?);
            pos += n;
            if out.len() == length {
                break;
            }
            let c0 = *bytes.get(pos)?;
            if c0 >> 6 != 3 || c0 & 0x3f != b0 & 0x3f {
                return None;
            }
            pos += basic(c0) + if ext { 4 } else { 0 };
        }
        if pos != bytes.len() {
            return None;
        }
        out.freeze()
    };
    Some(Message {
        type_id,
        timestamp,
        stream_id,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    fn msg(type_id: u8, timestamp: u32, stream_id: u32, payload: &[u8]) -> Message {
        Message {
            type_id,
            timestamp,
            stream_id,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// One hand-built chunk: basic header, raw message header fields, optional extended
    /// timestamp, payload.
    fn chunk(fmt: u8, csid: u32, fields: &str, ext: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_basic_header(&mut out, fmt, csid);
        out.put_slice(&hex(fields));
        if let Some(e) = ext {
            out.put_u32(e);
        }
        out.put_slice(payload);
        out.to_vec()
    }

    fn read_all(r: &mut ChunkReader) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = r.read_message().unwrap() {
            out.push(m);
        }
        out
    }

    fn parse_with(limits: ChunkLimits, bytes: &[u8]) -> Result<Vec<Message>, ChunkError> {
        let mut r = ChunkReader::new(limits);
        r.feed(bytes);
        let mut out = Vec::new();
        while let Some(m) = r.read_message()? {
            out.push(m);
        }
        Ok(out)
    }

    fn parse(bytes: &[u8]) -> Vec<Message> {
        parse_with(ChunkLimits::default(), bytes).unwrap()
    }

    fn parse_bytewise(bytes: &[u8]) -> Vec<Message> {
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut out = Vec::new();
        for b in bytes {
            r.feed(&[*b]);
            out.extend(read_all(&mut r));
        }
        assert_eq!(r.bytes_received(), bytes.len() as u64);
        out
    }

    fn timestamps(msgs: &[Message]) -> Vec<u32> {
        msgs.iter().map(|m| m.timestamp).collect()
    }

    #[test]
    fn golden_set_chunk_size() {
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        w.write_message(2, &Control::SetChunkSize(4096).to_message(), &mut out);
        assert_eq!(&out[..], &hex("02 000000 000004 01 00000000 00001000")[..]);

        // The new size applies to the very next chunk: a 200-byte message in one chunk.
        let mut bytes = out.to_vec();
        bytes.extend(chunk(0, 3, "000000 0000c8 09 01000000", None, &[7; 200]));
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.feed(&bytes);
        let got = read_all(&mut r);
        assert_eq!(
            Control::parse(&got[0]).unwrap(),
            Some(Control::SetChunkSize(4096))
        );
        assert_eq!(r.chunk_size(), 4096);
        assert_eq!(got[1].payload.len(), 200);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn basic_header_forms() {
        let cases = [
            (2, "02"),
            (63, "3f"),
            (64, "0000"),
            (319, "00ff"),
            (320, "010001"),
            (65599, "01ffff"),
        ];
        for (csid, prefix) in cases {
            let m = msg(8, 5, 1, b"ab");
            let mut w = ChunkWriter::new();
            let mut out = BytesMut::new();
            w.write_message(csid, &m, &mut out);
            let prefix = hex(prefix);
            assert_eq!(&out[..prefix.len()], &prefix[..], "csid {csid}");
            assert_eq!(out.len(), prefix.len() + 11 + 2, "csid {csid}");
            let mut r = ChunkReader::new(ChunkLimits::default());
            r.feed(&out);
            assert_eq!(read_all(&mut r), vec![m]);
            assert!(r.streams.get(csid).is_some(), "csid {csid}");
            assert_eq!(r.streams.len(), 1, "csid {csid}");
        }
    }

    #[test]
    fn both_encodings_of_64_to_319_are_one_chunk_stream() {
        let mut bytes = hex("01 00 00  000064 000001 08 01000000 aa");
        bytes.extend(hex("c0 00 bb")); // fmt 3, 2-byte form of csid 64
        bytes.extend(hex("c1 00 00 cc")); // fmt 3, 3-byte form of csid 64
        bytes.extend(hex("41 ff 00  000005 000001 09 dd")); // fmt 1, 3-byte form of csid 319
        bytes.extend(hex("80 ff  000005 ee")); // fmt 2, 2-byte form of csid 319
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.feed(&bytes);
        let got = read_all(&mut r);
        assert_eq!(timestamps(&got), vec![100, 200, 300, 5, 10]);
        let payloads: Vec<u8> = got.iter().map(|m| m.payload[0]).collect();
        assert_eq!(payloads, vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        assert!(r.streams.get(64).is_some() && r.streams.get(319).is_some());
        assert_eq!(r.streams.len(), 2);
    }

    #[test]
    fn each_fmt_hand_built() {
        let mut bytes = hex("03 0003e8 000003 08 01000000 aabbcc");
        bytes.extend(hex("43 000014 000002 09 ddee"));
        bytes.extend(hex("83 00001e 1122"));
        bytes.extend(hex("c3 3344"));
        let expected = vec![
            msg(8, 1000, 1, &[0xaa, 0xbb, 0xcc]),
            msg(9, 1020, 1, &[0xdd, 0xee]),
            msg(9, 1050, 1, &[0x11, 0x22]),
            msg(9, 1080, 1, &[0x33, 0x44]),
        ];
        assert_eq!(parse(&bytes), expected);
        assert_eq!(parse_bytewise(&bytes), expected);
    }

    #[test]
    fn type3_after_type0_reuses_the_absolute_time_as_delta() {
        let mut bytes = hex("04 000064 000001 08 01000000 aa");
        bytes.extend(hex("c4 bb c4 cc"));
        assert_eq!(timestamps(&parse(&bytes)), vec![100, 200, 300]);
    }

    #[test]
    fn fmt1_on_a_fresh_csid_is_tolerated() {
        // librtmp's first control message on csid 2.
        let bytes = hex("42 000000 00000a 04 0003 00000000 0000012c");
        let got = parse(&bytes);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].type_id, got[0].stream_id, got[0].timestamp),
            (4, 0, 0)
        );
    }

    fn ext_payload() -> Vec<u8> {
        (0..200u32).map(|i| i as u8).collect()
    }

    /// A 200-byte message at timestamp 0x01234567, chunk size 128, in 2012-spec form.
    fn extended_2012() -> Vec<u8> {
        let p = ext_payload();
        let mut bytes = hex("04 ffffff 0000c8 09 01000000 01234567");
        bytes.extend(&p[..128]);
        bytes.extend(hex("c4 01234567"));
        bytes.extend(&p[128..]);
        bytes
    }

    #[test]
    fn extended_timestamp_with_field_on_continuation() {
        let bytes = extended_2012();
        let expected = vec![msg(9, 0x0123_4567, 1, &ext_payload())];
        assert_eq!(parse(&bytes), expected);
        assert_eq!(parse_bytewise(&bytes), expected);
        // Our writer produces exactly this form.
        let mut out = BytesMut::new();
        ChunkWriter::new().write_message(4, &expected[0], &mut out);
        assert_eq!(&out[..], &bytes[..]);
        let mut full = BytesMut::new();
        encode_message_full(4, &expected[0], 128, &mut full);
        assert_eq!(&full[..], &bytes[..]);
    }

    #[test]
    fn extended_timestamp_without_field_on_continuation() {
        // librtmp-2012 style. The continuation payload starts with three bytes that match the
        // remembered extended value, so a byte-by-byte reader must wait for the fourth.
        let mut p = ext_payload();
        p[128..131].copy_from_slice(&[0x01, 0x23, 0x45]);
        let mut bytes = hex("04 ffffff 0000c8 09 01000000 01234567");
        bytes.extend(&p[..128]);
        bytes.push(0xc4);
        bytes.extend(&p[128..]);
        let expected = vec![msg(9, 0x0123_4567, 1, &p)];
        assert_eq!(parse(&bytes), expected);
        assert_eq!(parse_bytewise(&bytes), expected);
    }

    #[test]
    fn extended_delta_and_new_type3_message() {
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        let msgs = [
            msg(8, 0, 1, b"abcde"),
            msg(8, 0x0100_0000, 1, b"fghij"),
            msg(8, 0x0200_0000, 1, b"klmno"),
        ];
        let mut starts = Vec::new();
        for m in &msgs {
            starts.push(out.len());
            w.write_message(3, m, &mut out);
        }
        assert_eq!(
            &out[starts[1]..starts[2]],
            &hex("83 ffffff 01000000 666768696a")[..]
        );
        assert_eq!(&out[starts[2]..], &hex("c3 01000000 6b6c6d6e6f")[..]);
        assert_eq!(parse(&out), msgs.to_vec());
    }

    #[test]
    fn timestamp_wraps_across_u32_max() {
        let mut bytes = chunk(0, 3, "ffffff 000001 08 01000000", Some(0xffff_fff0), &[1]);
        bytes.extend(chunk(2, 3, "000020", None, &[2]));
        bytes.extend(chunk(3, 3, "", None, &[3]));
        assert_eq!(timestamps(&parse(&bytes)), vec![0xffff_fff0, 0x10, 0x30]);

        // The writer sends the wrapped time as a fresh absolute timestamp.
        let msgs = [msg(8, 0xffff_fff0, 1, b"a"), msg(8, 0x10, 1, b"b")];
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        for m in &msgs {
            w.write_message(3, m, &mut out);
        }
        assert_eq!(parse(&out), msgs.to_vec());
    }

    #[test]
    fn writer_header_compression() {
        let p10 = [0u8; 10];
        let p11 = [0u8; 11];
        let cases = [
            (msg(8, 1000, 1, &p10), 0),
            // delta equals the previous absolute time, but fmt 3 after fmt 0 is avoided
            (msg(8, 2000, 1, &p10), 2),
            (msg(8, 3000, 1, &p10), 3),
            (msg(8, 4000, 1, &p10), 3),
            (msg(8, 4010, 1, &p10), 2),
            (msg(8, 4020, 1, &p11), 1),
            (msg(9, 4030, 1, &p11), 1),
            (msg(9, 4040, 1, &p11), 3),
            (msg(9, 4000, 1, &p11), 0), // backwards
            (msg(9, 4100, 2, &p11), 0), // other stream id
            (msg(9, 4100, 2, &p11), 2), // delta 0 after fmt 0
        ];
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        for (m, fmt) in &cases {
            let start = out.len();
            w.write_message(5, m, &mut out);
            assert_eq!(out[start] >> 6, *fmt, "{m:?}");
            let header = [12, 8, 4, 1][usize::from(*fmt)];
            assert_eq!(out.len() - start, header + m.payload.len(), "{m:?}");
        }
        let expected: Vec<_> = cases.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(parse(&out), expected);
    }

    #[test]
    fn writer_reserves_exactly_once() {
        let m = msg(9, 0x0200_0000, 1, &vec![1; 100_000]);
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        w.write_message(300, &m, &mut out);
        // One reservation of the exact size: 2+11+4 first header, 2+4 per continuation.
        let chunks = 100_000usize.div_ceil(128);
        assert_eq!(out.len(), 17 + (chunks - 1) * 6 + 100_000);
        assert_eq!(out.capacity(), out.len());
        // Into a buffer that already has room, nothing moves.
        let mut roomy = BytesMut::with_capacity(1 << 20);
        let ptr = roomy.as_ptr();
        w.write_message(300, &m, &mut roomy);
        assert_eq!(roomy.as_ptr(), ptr);
    }

    #[test]
    fn full_encoding_matches_a_fresh_writer_and_can_be_recorded() {
        let m = msg(9, 40, 1, &[3; 1000]);
        let mut a = BytesMut::new();
        encode_message_full(6, &m, 256, &mut a);
        let mut w = ChunkWriter::new();
        w.set_chunk_size(256);
        let mut b = BytesMut::new();
        w.write_message(6, &m, &mut b);
        assert_eq!(a, b);

        let mut w = ChunkWriter::new();
        w.record_full_message(6, &m);
        let mut c = BytesMut::new();
        w.write_message(6, &msg(9, 80, 1, &[3; 1000]), &mut c);
        assert_eq!(c[0] >> 6, 2);
    }

    fn set_chunk_size_bytes(size: u32) -> Vec<u8> {
        let mut out = BytesMut::new();
        ChunkWriter::new().write_message(2, &Control::SetChunkSize(size).to_message(), &mut out);
        out.to_vec()
    }

    #[test]
    fn limit_chunk_size() {
        let err = parse_with(ChunkLimits::default(), &set_chunk_size_bytes(0)).unwrap_err();
        assert_eq!(err.to_string(), "chunk size 0 out of range 1..=2147483647");
        let err =
            parse_with(ChunkLimits::default(), &set_chunk_size_bytes(0x8000_0000)).unwrap_err();
        assert_eq!(err, ChunkError::ChunkSizeHighBit { size: 0x8000_0000 });
        assert_eq!(err.to_string(), "chunk size 0x80000000 has bit 31 set");
        let limits = ChunkLimits {
            max_chunk_size: 65536,
            ..ChunkLimits::default()
        };
        let err = parse_with(limits.clone(), &set_chunk_size_bytes(65537)).unwrap_err();
        assert_eq!(
            err,
            ChunkError::ChunkSizeOutOfRange {
                size: 65537,
                max: 65536
            }
        );
        assert!(parse_with(limits, &set_chunk_size_bytes(65536)).is_ok());
        // Above 0xFFFFFF is legal and means 0xFFFFFF.
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.feed(&set_chunk_size_bytes(0x7fff_ffff));
        read_all(&mut r);
        assert_eq!(r.chunk_size(), 0xff_ffff);
        // A truncated Set Chunk Size payload.
        let bytes = chunk(0, 2, "000000 000002 01 00000000", None, &[0, 1]);
        let err = parse_with(ChunkLimits::default(), &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid protocol control message: Set Chunk Size payload is 2 bytes, needs at least 4"
        );
    }

    #[test]
    fn limit_message_length_before_any_payload() {
        let limits = ChunkLimits {
            max_message_len: 1000,
            ..ChunkLimits::default()
        };
        assert_eq!(
            parse_with(limits.clone(), &hex("03 000000 0003e8 09 01000000"))
                .unwrap()
                .len(),
            0
        );
        let err = parse_with(limits, &hex("03 000000 0003e9 09 01000000")).unwrap_err();
        assert_eq!(
            err,
            ChunkError::MessageTooLong {
                csid: 3,
                len: 1001,
                max: 1000
            }
        );
        assert_eq!(
            err.to_string(),
            "message length 1001 on chunk stream 3 exceeds the limit of 1000 bytes"
        );
    }

    #[test]
    fn limit_chunk_streams() {
        let limits = ChunkLimits {
            max_chunk_streams: 2,
            ..ChunkLimits::default()
        };
        let mut bytes = chunk(0, 3, "000000 000001 08 01000000", None, &[1]);
        bytes.extend(chunk(0, 400, "000000 000001 08 01000000", None, &[2]));
        bytes.extend(chunk(0, 3, "000000 000001 08 01000000", None, &[3]));
        assert_eq!(parse_with(limits.clone(), &bytes).unwrap().len(), 3);
        bytes.extend(chunk(0, 4, "000000 000001 08 01000000", None, &[4]));
        let err = parse_with(limits, &bytes).unwrap_err();
        assert_eq!(err, ChunkError::TooManyChunkStreams { csid: 4, max: 2 });
    }

    #[test]
    fn limit_chunk_streams_counts_every_basic_header_form() {
        // Ids of the 3- and 2-byte forms fill the limit; a 1-byte one is refused.
        let limits = ChunkLimits {
            max_chunk_streams: 2,
            ..ChunkLimits::default()
        };
        let mut bytes = chunk(0, 400, "000000 000001 08 01000000", None, &[1]);
        bytes.extend(chunk(0, 64, "000000 000001 08 01000000", None, &[2]));
        bytes.extend(chunk(0, 63, "000000 000001 08 01000000", None, &[3]));
        let err = parse_with(limits, &bytes).unwrap_err();
        assert_eq!(err, ChunkError::TooManyChunkStreams { csid: 63, max: 2 });
    }

    #[test]
    fn error_after_progress_repeats_and_keeps_the_count() {
        // Two chunks of a 300-byte message are applied, then a chunk on a fresh csid with
        // fmt 2 fails. The applied chunks stay consumed; asking again gives the same error.
        let mut bytes = chunk(0, 5, "000000 00012c 09 01000000", None, &[1; 128]);
        bytes.extend(chunk(3, 5, "", None, &[2; 128]));
        let good = bytes.len();
        bytes.extend(hex("86 000010 aa"));
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.feed(&bytes);
        let want = ChunkError::NoPreviousHeader { csid: 6, fmt: 2 };
        assert_eq!(r.read_message().unwrap_err(), want);
        assert_eq!(r.buf.len(), bytes.len() - good);
        assert_eq!(r.read_message().unwrap_err(), want);
        assert_eq!(r.bytes_received(), bytes.len() as u64);
        let partial = r.streams.get(5).unwrap().partial.as_ref().unwrap();
        assert_eq!(partial.len(), 256);
    }

    #[test]
    fn read_buf_appends_like_feed() {
        let m = msg(9, 40, 1, &[5; 300]);
        let mut out = BytesMut::new();
        ChunkWriter::new().write_message(3, &m, &mut out);
        let mut r = ChunkReader::new(ChunkLimits::default());
        let (head, tail) = out.split_at(200);
        let buf = r.read_buf(4096);
        assert!(buf.capacity() - buf.len() >= 4096);
        buf.extend_from_slice(head);
        assert_eq!(r.bytes_received(), 200);
        assert_eq!(r.read_message().unwrap(), None);
        r.feed(&tail[..50]);
        r.read_buf(0).extend_from_slice(&tail[50..]);
        assert_eq!(r.bytes_received(), out.len() as u64);
        assert_eq!(r.read_message().unwrap(), Some(m));
        assert_eq!(r.read_message().unwrap(), None);
        assert_eq!(r.bytes_received(), out.len() as u64);
    }

    #[test]
    fn continuation_header_forms() {
        let mut buf = [0u8; 7];
        let cases = [
            (3, None, "c3"),
            (63, Some(0x0102_0304), "ff 01020304"),
            (64, None, "c0 00"),
            (319, Some(7), "c0 ff 00000007"),
            (320, None, "c1 00 01"),
            (65599, Some(0x0100_0000), "c1 ff ff 01000000"),
        ];
        for (csid, ext, want) in cases {
            let n = continuation_header(&mut buf, csid, ext);
            assert_eq!(&buf[..n], &hex(want)[..], "csid {csid}");
        }
    }

    #[test]
    fn limit_partial_messages() {
        let limits = ChunkLimits {
            max_partial_messages: 2,
            ..ChunkLimits::default()
        };
        let mut bytes = Vec::new();
        for csid in [3, 4] {
            bytes.extend(chunk(0, csid, "000000 0000c8 09 01000000", None, &[0; 128]));
        }
        // A single-chunk message is no partial message, and is fine.
        bytes.extend(chunk(0, 5, "000000 000010 09 01000000", None, &[0; 16]));
        assert_eq!(parse_with(limits.clone(), &bytes).unwrap().len(), 1);
        bytes.extend(chunk(0, 6, "000000 0000c8 09 01000000", None, &[0; 128]));
        let err = parse_with(limits, &bytes).unwrap_err();
        assert_eq!(err, ChunkError::TooManyPartialMessages { csid: 6, max: 2 });
    }

    #[test]
    fn limit_no_previous_header() {
        for (fmt, bytes) in [
            (2, hex("83 000010 aa")),
            (3, hex("c3 aa")),
            (3, hex("c0 07")),
        ] {
            let err = parse_with(ChunkLimits::default(), &bytes).unwrap_err();
            let csid = if bytes[0] & 0x3f == 0 { 71 } else { 3 };
            assert_eq!(err, ChunkError::NoPreviousHeader { csid, fmt });
        }
        let err = parse_with(ChunkLimits::default(), &hex("c3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fmt 3 chunk on chunk stream 3, which has no previous message header"
        );
    }

    #[test]
    fn limit_header_changes_mid_message() {
        let first = chunk(0, 3, "000000 0000c8 09 01000000", None, &[0; 128]);
        let mut len_change = first.clone();
        len_change.extend(chunk(1, 3, "000000 0000c9 09", None, &[0; 72]));
        assert_eq!(
            parse_with(ChunkLimits::default(), &len_change).unwrap_err(),
            ChunkError::LengthChangedMidMessage {
                csid: 3,
                old: 200,
                new: 201,
                received: 128
            }
        );
        let mut type_change = first.clone();
        type_change.extend(chunk(1, 3, "000000 0000c8 08", None, &[0; 72]));
        assert_eq!(
            parse_with(ChunkLimits::default(), &type_change).unwrap_err(),
            ChunkError::TypeChangedMidMessage {
                csid: 3,
                old: 9,
                new: 8
            }
        );
        let mut sid_change = first.clone();
        sid_change.extend(chunk(0, 3, "000000 0000c8 09 02000000", None, &[0; 72]));
        assert_eq!(
            parse_with(ChunkLimits::default(), &sid_change).unwrap_err(),
            ChunkError::StreamIdChangedMidMessage {
                csid: 3,
                old: 1,
                new: 2
            }
        );
        // Repeating the same values mid-message is accepted as a continuation.
        let mut same = first;
        same.extend(chunk(1, 3, "000000 0000c8 09", None, &[0; 72]));
        assert_eq!(parse(&same)[0].payload.len(), 200);
    }

    #[test]
    fn abort_mid_message() {
        let mut bytes = chunk(0, 4, "000010 0000c8 09 01000000", None, &[1; 128]);
        bytes.extend(chunk(
            0,
            2,
            "000000 000004 02 00000000",
            None,
            &[0, 0, 0, 4],
        ));
        bytes.extend(chunk(0, 4, "000020 00000a 08 01000000", None, &[2; 10]));
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.feed(&bytes);
        let got = read_all(&mut r);
        assert_eq!(Control::parse(&got[0]).unwrap(), Some(Control::Abort(4)));
        assert_eq!(got[1], msg(8, 0x20, 1, &[2; 10]));
        assert_eq!(got.len(), 2);
        assert_eq!(r.partials, 0);
        // Abort of a chunk stream with nothing in progress is harmless.
        r.feed(&chunk(2, 2, "000000", None, &[0, 0, 0, 9]));
        assert_eq!(read_all(&mut r).len(), 1);
    }

    #[test]
    fn hostile_declared_length_allocates_at_most_64k() {
        let limits = ChunkLimits {
            max_message_len: 0xff_ffff,
            ..ChunkLimits::default()
        };
        let mut r = ChunkReader::new(limits);
        r.feed(&chunk(0, 3, "000000 ffffff 09 01000000", None, &[0; 128]));
        assert_eq!(r.read_message().unwrap(), None);
        let partial = r.streams.get(3).unwrap().partial.as_ref().unwrap();
        assert_eq!(partial.len(), 128);
        assert_eq!(partial.capacity(), PARTIAL_INITIAL_CAPACITY);
    }

    #[test]
    fn multi_chunk_buffer_grows_geometrically_up_to_the_declared_length() {
        let len = 300_000;
        let m = msg(
            9,
            1,
            1,
            &(0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        );
        let mut w = ChunkWriter::new();
        w.set_chunk_size(4096);
        let mut out = BytesMut::new();
        let mut ends = Vec::new();
        w.write_message_inner(7, &m, &mut out, Some(&mut ends));
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.feed(&set_chunk_size_bytes(4096));
        read_all(&mut r);
        let mut capacities = Vec::new();
        let mut start = 0;
        let mut got = None;
        for end in ends {
            r.feed(&out[start..end]);
            start = end;
            if let Some(done) = r.read_message().unwrap() {
                got = Some(done);
            } else {
                let cap = r
                    .streams
                    .get(7)
                    .unwrap()
                    .partial
                    .as_ref()
                    .unwrap()
                    .capacity();
                if capacities.last() != Some(&cap) {
                    capacities.push(cap);
                }
            }
        }
        assert_eq!(capacities, vec![65536, 131072, 262144, 300_000]);
        assert_eq!(got.unwrap(), m);
    }

    #[test]
    fn single_chunk_messages_share_the_input_buffer() {
        let mut bytes = chunk(0, 3, "000000 000005 09 01000000", None, b"first");
        bytes.extend(chunk(2, 3, "000001", None, b"again"));
        let got = parse(&bytes);
        let gap = got[1].payload.as_ptr() as usize - got[0].payload.as_ptr() as usize;
        // Second payload sits right after the first one's and its own 4-byte header.
        assert_eq!(gap, 5 + 4);
    }

    // ---- property tests ----

    fn arb_messages() -> impl Strategy<Value = Vec<(u32, Message)>> {
        let item = (
            prop_oneof![3u32..=8, 60u32..=70, 315u32..=325, Just(65599u32)],
            prop_oneof![Just(8u8), Just(9u8), 3u8..=255],
            prop_oneof![Just(1u32), 0u32..3, any::<u32>()],
            prop_oneof![
                4 => 0u32..100,
                1 => Just(0xff_ffffu32),
                1 => 0xff_fff0u32..0x0100_0010,
                1 => any::<u32>(),
            ],
            prop_oneof![2 => Just(10usize), 2 => 0usize..300, 1 => 0usize..3000],
            any::<u8>(),
        );
        (any::<u32>(), proptest::collection::vec(item, 1..25)).prop_map(|(start, items)| {
            let mut clocks: HashMap<u32, u32> = HashMap::new();
            items
                .into_iter()
                .map(|(csid, type_id, stream_id, delta, len, seed)| {
                    let clock = clocks.entry(csid).or_insert(start);
                    *clock = clock.wrapping_add(delta);
                    let payload: Vec<u8> = (0..len)
                        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)))
                        .collect();
                    (csid, msg(type_id, *clock, stream_id, &payload))
                })
                .collect()
        })
    }

    fn arb_chunk_size() -> impl Strategy<Value = u32> {
        prop_oneof![1 => 1u32..=16, 4 => 17u32..=70000]
    }

    /// Writes a Set Chunk Size, then the messages, optionally changing the chunk size again
    /// before message `change.0`. Returns the bytes and every message the reader must yield.
    fn write_stream(
        msgs: &[(u32, Message)],
        size: u32,
        change: Option<(usize, u32)>,
    ) -> (Vec<u8>, Vec<Message>) {
        let mut w = ChunkWriter::new();
        let mut out = BytesMut::new();
        let mut expected = Vec::new();
        let set = |w: &mut ChunkWriter, out: &mut BytesMut, size| {
            let m = Control::SetChunkSize(size).to_message();
            w.write_message(2, &m, out);
            w.set_chunk_size(size);
            m
        };
        expected.push(set(&mut w, &mut out, size));
        for (i, (csid, m)) in msgs.iter().enumerate() {
            if let Some((at, size)) = change
                && at == i
            {
                expected.push(set(&mut w, &mut out, size));
            }
            w.write_message(*csid, m, &mut out);
            expected.push(m.clone());
        }
        (out.to_vec(), expected)
    }

    fn feed_split(bytes: &[u8], splits: &[usize], limits: ChunkLimits) -> Vec<Message> {
        let mut r = ChunkReader::new(limits);
        let mut got = Vec::new();
        let mut pos = 0;
        for step in splits.iter().cycle() {
            if pos >= bytes.len() {
                break;
            }
            let end = (pos + step).min(bytes.len());
            r.feed(&bytes[pos..end]);
            pos = end;
            got.extend(read_all(&mut r));
        }
        assert!(r.buf.is_empty());
        got
    }

    /// Chunks of each message, in message order per csid, plus which chunk ends which
    /// message.
    type ChunkQueues = HashMap<u32, VecDeque<(Bytes, Option<usize>)>>;

    fn chunk_queues(w: &mut ChunkWriter, msgs: &[(u32, Message)]) -> ChunkQueues {
        let mut queues: ChunkQueues = HashMap::new();
        for (i, (csid, m)) in msgs.iter().enumerate() {
            let mut out = BytesMut::new();
            let mut ends = Vec::new();
            w.write_message_inner(*csid, m, &mut out, Some(&mut ends));
            let out = out.freeze();
            let q = queues.entry(*csid).or_default();
            let mut start = 0;
            let last = ends.len() - 1;
            for (k, end) in ends.into_iter().enumerate() {
                q.push_back((out.slice(start..end), (k == last).then_some(i)));
                start = end;
            }
        }
        queues
    }

    proptest! {
        #[test]
        fn round_trip_split_at_random_points(
            msgs in arb_messages(),
            size in arb_chunk_size(),
            change in proptest::option::of((0usize..25, arb_chunk_size())),
            splits in proptest::collection::vec(1usize..4000, 1..20),
        ) {
            let (bytes, expected) = write_stream(&msgs, size, change);
            let got = feed_split(&bytes, &splits, ChunkLimits::default());
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn round_trip_interleaved_chunks(
            msgs in arb_messages(),
            size in arb_chunk_size(),
            picks in proptest::collection::vec(any::<usize>(), 1..64),
            splits in proptest::collection::vec(1usize..4000, 1..20),
        ) {
            let mut w = ChunkWriter::new();
            let mut bytes = BytesMut::new();
            w.write_message(2, &Control::SetChunkSize(size).to_message(), &mut bytes);
            w.set_chunk_size(size);
            let mut queues = chunk_queues(&mut w, &msgs);
            let mut csids: Vec<u32> = queues.keys().copied().collect();
            csids.sort();
            let mut order = Vec::new();
            let mut pick = picks.iter().cycle();
            loop {
                let live: Vec<u32> =
                    csids.iter().copied().filter(|c| !queues[c].is_empty()).collect();
                if live.is_empty() {
                    break;
                }
                let csid = live[pick.next().unwrap() % live.len()];
                let (piece, done) = queues.get_mut(&csid).unwrap().pop_front().unwrap();
                bytes.extend_from_slice(&piece);
                order.extend(done);
            }
            let limits = ChunkLimits { max_partial_messages: 64, ..ChunkLimits::default() };
            let got = feed_split(&bytes, &splits, limits);
            prop_assert_eq!(got.len(), msgs.len() + 1);
            for (g, i) in got[1..].iter().zip(order) {
                prop_assert_eq!(g, &msgs[i].1);
            }
        }

        #[test]
        fn continuations_without_extended_field_parse_the_same(
            msgs in arb_messages(),
            size in arb_chunk_size(),
        ) {
            // Rewrite our 2012-spec output the way librtmp-2012 sends it: no extended field on
            // continuation chunks (first chunks keep theirs).
            let mut w = ChunkWriter::new();
            let mut bytes = BytesMut::new();
            w.write_message(2, &Control::SetChunkSize(size).to_message(), &mut bytes);
            w.set_chunk_size(size);
            let queues = chunk_queues(&mut w, &msgs);
            let mut per_msg: Vec<Vec<Bytes>> = vec![Vec::new(); msgs.len()];
            for q in queues.values() {
                let mut current = Vec::new();
                for (piece, done) in q {
                    current.push(piece.clone());
                    if let Some(i) = done {
                        per_msg[*i] = std::mem::take(&mut current);
                    }
                }
            }
            // The extended field left out of the stream's last continuation, if any.
            let mut dropped: Option<Vec<u8>> = None;
            for ((csid, m), pieces) in msgs.iter().zip(&per_msg) {
                bytes.extend_from_slice(&pieces[0]);
                let basic = basic_header_len(*csid);
                let mut remaining = m.payload.len() - m.payload.len().min(size as usize);
                dropped = None;
                for piece in &pieces[1..] {
                    let body = remaining.min(size as usize);
                    remaining -= body;
                    let ext = piece.len() - basic - body;
                    prop_assert!(ext == 0 || ext == 4);
                    bytes.extend_from_slice(&piece[..basic]);
                    bytes.extend_from_slice(&piece[basic + ext..]);
                    dropped = (ext == 4).then(|| piece[basic..basic + 4].to_vec());
                }
            }
            // A stream that ends on a continuation whose last bytes equal the start of the
            // remembered field cannot be settled yet (the reader rightly waits for four bytes),
            // so a trailer follows, on a chunk stream whose first byte differs from the
            // field's next one: a real peer's next chunk settles it the same way.
            let trailer_csid = match &dropped {
                Some(field) if field[1] & 0x3f == 2 => 9,
                _ => 2,
            };
            let trailer = Control::Acknowledgement(0x0102_0304).to_message();
            let mut tail = BytesMut::new();
            w.write_message(trailer_csid, &trailer, &mut tail);
            if let Some(field) = &dropped {
                prop_assert_ne!(tail[0], field[1]);
            }
            bytes.extend_from_slice(&tail);
            let got = feed_split(&bytes, &[1000], ChunkLimits::default());
            prop_assert_eq!(got.len(), msgs.len() + 2);
            for (g, (_, m)) in got[1..].iter().zip(&msgs) {
                prop_assert_eq!(g, m);
            }
            prop_assert_eq!(got.last(), Some(&trailer));
        }

        #[test]
        fn round_trip_through_read_buf(
            msgs in arb_messages(),
            size in arb_chunk_size(),
            splits in proptest::collection::vec(1usize..4000, 1..20),
        ) {
            let (bytes, expected) = write_stream(&msgs, size, None);
            let mut r = ChunkReader::new(ChunkLimits::default());
            let mut got = Vec::new();
            let mut pos = 0;
            for step in splits.iter().cycle() {
                if pos >= bytes.len() {
                    break;
                }
                let end = (pos + step).min(bytes.len());
                r.read_buf(*step).extend_from_slice(&bytes[pos..end]);
                pos = end;
                got.extend(read_all(&mut r));
            }
            prop_assert_eq!(r.bytes_received(), bytes.len() as u64);
            prop_assert!(r.buf.is_empty());
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut r = ChunkReader::new(ChunkLimits::default());
            r.feed(&bytes);
            while let Ok(Some(_)) = r.read_message() {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn round_trip_byte_by_byte(msgs in arb_messages(), size in arb_chunk_size()) {
            let (bytes, expected) = write_stream(&msgs, size, None);
            prop_assert_eq!(parse_bytewise(&bytes), expected);
        }
    }

    #[test]
    fn decode_message_full_reverses_encode_message_full() {
        for (len, ts, csid) in [
            (0usize, 0u32, 21u32),
            (1, 5, 20),
            (4096, 1000, 22),
            (4097, 1000, 21),
            (10_838, 0xFF_FFFF, 21),
            (75_866, 0x1234_5678, 5),
            (300, 7, 100),
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let m = msg(9, ts, 1, &payload);
            let mut out = BytesMut::new();
            encode_message_full(csid, &m, 4096, &mut out);
            let bytes = out.freeze();
            let back = decode_message_full(&bytes, 4096).expect("decodes");
            assert_eq!(back, m, "len {len} ts {ts:#x} csid {csid}");
            if len <= 4096 {
                // One chunk: no copy.
                let at = back.payload.as_ptr() as usize - bytes.as_ptr() as usize;
                assert!(at < bytes.len() || len == 0);
            }
            // Anything else (cut short, one byte more) is not one message.
            assert_eq!(
                decode_message_full(&bytes.slice(..bytes.len() - 1), 4096),
                None
            );
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert_eq!(decode_message_full(&Bytes::from(longer), 4096), None);
        }
    }

    #[test]
    fn chunk_streams_past_the_short_list_keep_their_state() {
        // Forty streams (past the short list, into the map), each with a first chunk, then a
        // type-3 chunk per stream that must find its header again.
        let mut bytes = Vec::new();
        for csid in 3..43u32 {
            bytes.extend(chunk(
                0,
                csid,
                "000010 000001 08 01000000",
                None,
                &[csid as u8],
            ));
        }
        for csid in 3..43u32 {
            bytes.extend(chunk(3, csid, "", None, &[csid as u8 + 100]));
        }
        let got = parse_with(ChunkLimits::default(), &bytes).unwrap();
        assert_eq!(got.len(), 80);
        for (i, m) in got[40..].iter().enumerate() {
            assert_eq!(m.payload[..], [i as u8 + 103], "message {i}");
            // Type 3 after a type 0 repeats its timestamp as a delta: 0x10 more.
            assert_eq!(m.timestamp, 0x20, "message {i}");
        }
    }
}
