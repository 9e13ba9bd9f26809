//! FLV: file header and tag codec, a streaming parser, audio/video tag header inspection
//! (legacy and Enhanced RTMP) and a 32→64-bit timestamp extender.
//!
//! The sinks get FLV from `flvmux` or straight from `filesrc`, so [`FlvParser`] takes input cut
//! at any byte boundary, with or without the 9-byte file header in front (flvmux may send its
//! stream header separately, and a sink may join mid-stream at a tag boundary). It keeps the
//! pushed [`Bytes`] chunks and hands out tag bodies as slices of them whenever a body lies in one
//! chunk, so a tag pushed in one piece is never copied. Buffered memory is bounded by what the
//! caller pushed; nothing is allocated from a declared size before those bytes have arrived.
//!
//! Real files carry wrong PreviousTagSize fields, so a mismatch is counted, not fatal.
//!
//! The RTMP mapping (protocol-facts §8.1): an RTMP audio/video/data message payload is an FLV tag
//! body and the message timestamp is the tag timestamp, so [`VideoInfo`] and [`AudioInfo`] work
//! on either.

use std::collections::VecDeque;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the FLV file header without PreviousTagSize0.
pub const HEADER_LEN: usize = 9;
/// Length of an FLV tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Length of a PreviousTagSize field.
pub const PREV_TAG_SIZE_LEN: usize = 4;
/// Tag type: audio.
pub const TAG_TYPE_AUDIO: u8 = 8;
/// Tag type: video.
pub const TAG_TYPE_VIDEO: u8 = 9;
/// Tag type: AMF0 script data (`onMetaData`).
pub const TAG_TYPE_SCRIPT: u8 = 18;
/// Tag type: AMF3 script data (Enhanced RTMP).
pub const TAG_TYPE_SCRIPT_AMF3: u8 = 15;
/// The largest DataSize a tag header can express (u24), and the parser's default limit.
pub const MAX_TAG_DATA_SIZE: u32 = 0xFF_FFFF;
/// The largest StreamID a tag header can express (u24).
pub const MAX_STREAM_ID: u32 = 0xFF_FFFF;
/// The largest DataOffset the parser accepts. Real files use 9; anything far above it is a
/// corrupt or hostile header rather than a file with a large extension.
pub const MAX_DATA_OFFSET: u32 = 1 << 20;

const SIGNATURE: &[u8; 3] = b"FLV";

/// Whether `tag_type` (the whole first byte of a tag header) is one the parser accepts: audio,
/// video, AMF0 or AMF3 script, with the Filter (encryption) and reserved bits clear.
pub fn is_valid_tag_type(tag_type: u8) -> bool {
    matches!(
        tag_type,
        TAG_TYPE_AUDIO | TAG_TYPE_VIDEO | TAG_TYPE_SCRIPT | TAG_TYPE_SCRIPT_AMF3
    )
}

/// Errors from the FLV codec and parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The stream does not start with `FLV`.
    #[error("bad FLV signature {0:02x?} (expected 46 4c 56, \"FLV\")")]
    BadSignature([u8; 3]),
    /// DataOffset is below the header size or above [`MAX_DATA_OFFSET`].
    #[error("FLV DataOffset {0} out of range 9..={MAX_DATA_OFFSET}")]
    BadDataOffset(u32),
    /// A tag type byte is not 8, 9, 15 or 18 (or has the Filter/reserved bits set).
    #[error(
        "unknown FLV tag type byte 0x{0:02x} (expected 8 audio, 9 video, 18 script or 15 AMF3 script, with the filter and reserved bits clear)"
    )]
    BadTagType(u8),
    /// A tag declares more data than the configured limit.
    #[error("FLV tag data size {size} exceeds the limit of {max} bytes")]
    TagTooLarge {
        /// The declared DataSize.
        size: u32,
        /// The configured limit.
        max: u32,
    },
    /// A tag to write has more data than a u24 DataSize can hold.
    #[error("FLV tag data of {0} bytes does not fit the 24-bit DataSize (max {MAX_TAG_DATA_SIZE})")]
    DataTooLong(usize),
    /// A tag to write has a StreamID above 24 bits.
    #[error("FLV StreamID {0} does not fit in 24 bits")]
    StreamIdTooLarge(u32),
    /// The input ended inside a header or tag.
    #[error("FLV input ends inside {what}: {have} of {need} bytes present")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A header must come first (see [`FlvParser::require_header`]) but the stream starts
    /// with a tag.
    #[error("FLV stream starts with tag type byte 0x{0:02x}, but an FLV header was required")]
    MissingHeader(u8),
}

/// The 9-byte FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// FLV version; always 1 in practice, any value is accepted.
    pub version: u8,
    /// TypeFlagsAudio (0x04).
    pub has_audio: bool,
    /// TypeFlagsVideo (0x01).
    pub has_video: bool,
    /// Offset of the body from the start of the file; 9 unless the header is extended.
    pub data_offset: u32,
}

impl FlvHeader {
    /// A version-1 header with the default DataOffset of 9.
    pub fn new(has_audio: bool, has_video: bool) -> Self {
        FlvHeader {
            version: 1,
            has_audio,
            has_video,
            data_offset: HEADER_LEN as u32,
        }
    }

    /// The flags byte as written.
    pub fn flags(&self) -> u8 {
        (u8::from(self.has_audio) << 2) | u8::from(self.has_video)
    }

    /// Parses the first 9 bytes of `data`. Reserved flag bits are ignored.
    pub fn parse(data: &[u8]) -> Result<Self, FlvError> {
        let n = data.len().min(3);
        if data[..n] != SIGNATURE[..n] {
            let mut sig = [0; 3];
            sig[..n].copy_from_slice(&data[..n]);
            return Err(FlvError::BadSignature(sig));
        }
        if data.len() < HEADER_LEN {
            return Err(FlvError::Truncated {
                what: "the FLV header",
                have: data.len(),
                need: HEADER_LEN,
            });
        }
        let data_offset = u32::from_be_bytes([data[5], data[6], data[7], data[8]]);
        if !(HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&data_offset) {
            return Err(FlvError::BadDataOffset(data_offset));
        }
        Ok(FlvHeader {
            version: data[3],
            has_audio: data[4] & 0x04 != 0,
            has_video: data[4] & 0x01 != 0,
            data_offset,
        })
    }
}

impl Default for FlvHeader {
    fn default() -> Self {
        FlvHeader::new(true, true)
    }
}

/// Writes `header`, zero padding up to its DataOffset, and PreviousTagSize0 (= 0).
pub fn write_header(header: &FlvHeader, out: &mut BytesMut) {
    // Clamp so a hand-built header never makes us write megabytes of padding.
    let data_offset = header.data_offset.clamp(HEADER_LEN as u32, MAX_DATA_OFFSET);
    out.reserve(data_offset as usize + PREV_TAG_SIZE_LEN);
    out.put_slice(SIGNATURE);
    out.put_u8(header.version);
    out.put_u8(header.flags());
    out.put_u32(data_offset);
    out.put_bytes(0, data_offset as usize - HEADER_LEN);
    out.put_u32(0);
}

/// An FLV tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader {
    /// Tag type byte (8, 9, 15 or 18 once validated).
    pub tag_type: u8,
    /// Length of the tag body.
    pub data_size: u32,
    /// Timestamp in ms: TimestampExtended as the high byte over the 24-bit Timestamp.
    pub timestamp: u32,
    /// StreamID (always 0 in files; kept as read).
    pub stream_id: u32,
}

impl TagHeader {
    /// Decodes 11 bytes without validating the tag type.
    pub fn from_bytes(b: &[u8; TAG_HEADER_LEN]) -> Self {
        TagHeader {
            tag_type: b[0],
            data_size: u32::from_be_bytes([0, b[1], b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[7], b[4], b[5], b[6]]),
            stream_id: u32::from_be_bytes([0, b[8], b[9], b[10]]),
        }
    }

    /// Parses the first 11 bytes of `data`, checking the tag type.
    pub fn parse(data: &[u8]) -> Result<Self, FlvError> {
        let bytes: &[u8; TAG_HEADER_LEN] = data
            .get(..TAG_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(FlvError::Truncated {
                what: "an FLV tag header",
                have: data.len(),
                need: TAG_HEADER_LEN,
            })?;
        let header = TagHeader::from_bytes(bytes);
        if !is_valid_tag_type(header.tag_type) {
            return Err(FlvError::BadTagType(header.tag_type));
        }
        Ok(header)
    }

    /// Encodes the header; fails when a field does not fit its wire width.
    pub fn to_bytes(&self) -> Result<[u8; TAG_HEADER_LEN], FlvError> {
        if self.data_size > MAX_TAG_DATA_SIZE {
            return Err(FlvError::DataTooLong(self.data_size as usize));
        }
        if self.stream_id > MAX_STREAM_ID {
            return Err(FlvError::StreamIdTooLarge(self.stream_id));
        }
        let size = self.data_size.to_be_bytes();
        let ts = self.timestamp.to_be_bytes();
        let sid = self.stream_id.to_be_bytes();
        Ok([
            self.tag_type,
            size[1],
            size[2],
            size[3],
            ts[1],
            ts[2],
            ts[3],
            ts[0],
            sid[1],
            sid[2],
            sid[3],
        ])
    }
}

/// One FLV tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Tag {
    /// Tag type (8 audio, 9 video, 18 script, 15 AMF3 script).
    pub tag_type: u8,
    /// Timestamp (DTS) in ms, 32 bits as on the wire; extend with [`TimestampExtender`].
    pub timestamp: u32,
    /// StreamID; 0 in files.
    pub stream_id: u32,
    /// Tag body: the RTMP message payload.
    pub data: Bytes,
}

impl Tag {
    /// The tag's header.
    pub fn header(&self) -> TagHeader {
        TagHeader {
            tag_type: self.tag_type,
            data_size: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
            timestamp: self.timestamp,
            stream_id: self.stream_id,
        }
    }

    /// Bytes [`write_tag`] produces for this tag: header, body and PreviousTagSize.
    pub fn encoded_len(&self) -> usize {
        TAG_HEADER_LEN + self.data.len() + PREV_TAG_SIZE_LEN
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tag")
            .field("tag_type", &self.tag_type)
            .field("timestamp", &self.timestamp)
            .field("stream_id", &self.stream_id)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Writes `tag` followed by its PreviousTagSize (11 + DataSize). Anything this accepts,
/// [`FlvParser`] reads back: the tag type must be valid, the data at most 16 MiB − 1 and the
/// StreamID at most 24 bits.
pub fn write_tag(tag: &Tag, out: &mut BytesMut) -> Result<(), FlvError> {
    if !is_valid_tag_type(tag.tag_type) {
        return Err(FlvError::BadTagType(tag.tag_type));
    }
    if tag.data.len() > MAX_TAG_DATA_SIZE as usize {
        return Err(FlvError::DataTooLong(tag.data.len()));
    }
    let header = tag.header().to_bytes()?;
    out.reserve(tag.encoded_len());
    out.put_slice(&header);
    out.put_slice(&tag.data);
    out.put_u32((TAG_HEADER_LEN + tag.data.len()) as u32);
    Ok(())
}

/// What [`FlvParser::next_item`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvItem {
    /// An FLV file header (at the start, or again at a tag boundary when a muxer re-sends its
    /// stream header).
    Header(FlvHeader),
    /// A complete tag.
    Tag(Tag),
}

/// Pushed bytes not yet parsed: a queue of chunks, plus a staging buffer that collects slices
/// from [`FlvParser::push`] so that small pushes do not become one chunk each.
#[derive(Default)]
struct ByteQueue {
    chunks: VecDeque<Bytes>,
    staging: BytesMut,
    len: usize,
}

impl ByteQueue {
    fn push_slice(&mut self, data: &[u8]) {
        self.staging.extend_from_slice(data);
        self.len += data.len();
    }

    fn push_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.flush_staging();
        self.len += data.len();
        self.chunks.push_back(data);
    }

    fn flush_staging(&mut self) {
        if !self.staging.is_empty() {
            self.chunks.push_back(self.staging.split().freeze());
        }
    }

    /// Copies the first `out.len()` bytes into `out`, if that many are buffered.
    fn peek(&mut self, out: &mut [u8]) -> bool {
        if self.len < out.len() {
            return false;
        }
        self.flush_staging();
        let mut filled = 0;
        for chunk in &self.chunks {
            let n = chunk.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&chunk[..n]);
            filled += n;
            if filled == out.len() {
                break;
            }
        }
        true
    }

    /// Drops up to `n` bytes; returns how many were dropped.
    fn skip(&mut self, n: usize) -> usize {
        self.flush_staging();
        let mut left = n.min(self.len);
        let dropped = left;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
        self.len -= dropped;
        dropped
    }

    /// Takes `n` bytes (fewer if fewer are buffered; callers check first): a slice of the front
    /// chunk when it holds them all, otherwise one copy into a buffer of exactly `n` bytes.
    fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        self.flush_staging();
        if n == 0 {
            return Bytes::new();
        }
        self.len -= n;
        if let Some(front) = self.chunks.front_mut()
            && front.len() >= n
        {
            let out = front.split_to(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            return out;
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let want = n - out.len();
            if front.len() <= want {
                out.extend_from_slice(front);
                self.chunks.pop_front();
            } else {
                out.extend_from_slice(&front[..want]);
                front.advance(want);
            }
        }
        out.freeze()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing parsed yet.
    Start,
    /// Between tags: a tag header or a repeated FLV header comes next.
    Boundary,
    /// Skipping the bytes between the header and DataOffset.
    HeaderPadding { remaining: u32 },
    /// A PreviousTagSize comes next, expected to hold `expected`.
    PrevTagSize { expected: u32 },
    /// The tag header is parsed; waiting for the body.
    Body(TagHeader),
}

/// A streaming FLV parser: push bytes in any pieces, pull headers and tags.
///
/// Call [`next_item`](Self::next_item) until it returns `Ok(None)` after each push. After an
/// error the parser has lost sync and returns the same error from then on.
pub struct FlvParser {
    queue: ByteQueue,
    state: State,
    failed: Option<FlvError>,
    max_tag_size: u32,
    require_header: bool,
    prev_tag_size_mismatches: u64,
    tags: u64,
}

impl Default for FlvParser {
    fn default() -> Self {
        FlvParser::new()
    }
}

impl FlvParser {
    /// A parser that accepts a stream starting with either the FLV header or a tag, with the
    /// default tag size limit of [`MAX_TAG_DATA_SIZE`].
    pub fn new() -> Self {
        FlvParser {
            queue: ByteQueue::default(),
            state: State::Start,
            failed: None,
            max_tag_size: MAX_TAG_DATA_SIZE,
            require_header: false,
            prev_tag_size_mismatches: 0,
            tags: 0,
        }
    }

    /// Sets the largest accepted tag DataSize; bigger tags are an error.
    pub fn with_max_tag_size(mut self, max: u32) -> Self {
        self.max_tag_size = max.min(MAX_TAG_DATA_SIZE);
        self
    }

    /// When `true`, the stream must start with an FLV header (a file); by default a stream
    /// may also start directly with a tag (flvmux buffers after a separately sent stream
    /// header, or a mid-stream join at a tag boundary).
    pub fn require_header(mut self, require: bool) -> Self {
        self.require_header = require;
        self
    }

    /// Appends bytes (copied into an internal buffer).
    pub fn push(&mut self, data: &[u8]) {
        self.queue.push_slice(data);
    }

    /// Appends a chunk without copying it; tag bodies that lie inside one chunk are returned
    /// as slices of it.
    pub fn push_bytes(&mut self, data: Bytes) {
        self.queue.push_bytes(data);
    }

    /// Bytes pushed but not yet returned or skipped.
    pub fn buffered_len(&self) -> usize {
        self.queue.len
    }

    /// How many PreviousTagSize fields (PreviousTagSize0 included) did not match the preceding
    /// header or tag.
    pub fn prev_tag_size_mismatches(&self) -> u64 {
        self.prev_tag_size_mismatches
    }

    /// Tags returned so far.
    pub fn tags_parsed(&self) -> u64 {
        self.tags
    }

    /// Checks that the input may end here: `Ok` at a tag boundary, also when only the final
    /// PreviousTagSize is missing (harmless: the last tag is complete).
    pub fn finish(&self) -> Result<(), FlvError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let have = self.queue.len;
        let (what, need) = match self.state {
            State::Start | State::Boundary | State::PrevTagSize { .. } if have == 0 => {
                return Ok(());
            }
            State::PrevTagSize { .. } => ("a PreviousTagSize", PREV_TAG_SIZE_LEN),
            State::Start | State::Boundary => ("an FLV tag header", TAG_HEADER_LEN),
            State::HeaderPadding { remaining } => ("the FLV header", remaining as usize),
            State::Body(h) => ("an FLV tag body", h.data_size as usize),
        };
        Err(FlvError::Truncated { what, have, need })
    }

    /// Returns the next header or tag, `Ok(None)` if more input is needed.
    pub fn next_item(&mut self) -> Result<Option<FlvItem>, FlvError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.step();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn step(&mut self) -> Result<Option<FlvItem>, FlvError> {
        loop {
            match self.state {
                State::Start | State::Boundary => {
                    let mut first = [0u8; 1];
                    if !self.queue.peek(&mut first) {
                        return Ok(None);
                    }
                    if first[0] == SIGNATURE[0] {
                        return self.read_header();
                    }
                    if self.state == State::Start && self.require_header {
                        if is_valid_tag_type(first[0]) {
                            return Err(FlvError::MissingHeader(first[0]));
                        }
                        // Wait for all three bytes: the error then shows what the stream
                        // really holds, however it was split.
                        let mut sig = [0u8; 3];
                        if !self.queue.peek(&mut sig) {
                            return Ok(None);
                        }
                        return Err(FlvError::BadSignature(sig));
                    }
                    if !is_valid_tag_type(first[0]) {
                        return Err(FlvError::BadTagType(first[0]));
                    }
                    let mut raw = [0u8; TAG_HEADER_LEN];
                    if !self.queue.peek(&mut raw) {
                        return Ok(None);
                    }
                    let header = TagHeader::from_bytes(&raw);
                    if header.data_size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge {
                            size: header.data_size,
                            max: self.max_tag_size,
                        });
                    }
                    self.queue.skip(TAG_HEADER_LEN);
                    self.state = State::Body(header);
                }
                State::Body(header) => {
                    let size = header.data_size as usize;
                    if self.queue.len < size {
                        return Ok(None);
                    }
                    let data = self.queue.take(size);
                    self.state = State::PrevTagSize {
                        expected: TAG_HEADER_LEN as u32 + header.data_size,
                    };
                    self.tags += 1;
                    return Ok(Some(FlvItem::Tag(Tag {
                        tag_type: header.tag_type,
                        timestamp: header.timestamp,
                        stream_id: header.stream_id,
                        data,
                    })));
                }
                State::HeaderPadding { remaining } => {
                    let skipped = self.queue.skip(remaining as usize) as u32;
                    if skipped < remaining {
                        self.state = State::HeaderPadding {
                            remaining: remaining - skipped,
                        };
                        return Ok(None);
                    }
                    self.state = State::PrevTagSize { expected: 0 };
                }
                State::PrevTagSize { expected } => {
                    let mut raw = [0u8; PREV_TAG_SIZE_LEN];
                    if !self.queue.peek(&mut raw) {
                        return Ok(None);
                    }
                    self.queue.skip(PREV_TAG_SIZE_LEN);
                    if u32::from_be_bytes(raw) != expected {
                        self.prev_tag_size_mismatches += 1;
                    }
                    self.state = State::Boundary;
                }
            }
        }
    }

    /// The first up-to-3 buffered bytes, zero-filled, for a signature error.
    fn read_header(&mut self) -> Result<Option<FlvItem>, FlvError> {
        // Fail on a bad signature as soon as its three bytes are in, not after 9 bytes. Not
        // sooner: with fewer bytes the error would show zeros for bytes not yet received, and
        // differ with how the input was split.
        let mut sig = [0u8; 3];
        if !self.queue.peek(&mut sig) {
            return Ok(None);
        }
        if sig != *SIGNATURE {
            return Err(FlvError::BadSignature(sig));
        }
        let mut raw = [0u8; HEADER_LEN];
        if !self.queue.peek(&mut raw) {
            return Ok(None);
        }
        let header = FlvHeader::parse(&raw)?;
        self.queue.skip(HEADER_LEN);
        self.state = State::HeaderPadding {
            remaining: header.data_offset - HEADER_LEN as u32,
        };
        Ok(Some(FlvItem::Header(header)))
    }
}

/// A FourCC code as used by Enhanced RTMP (big-endian ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    /// AVC / H.264.
    pub const AVC1: FourCc = FourCc(*b"avc1");
    /// HEVC / H.265.
    pub const HVC1: FourCc = FourCc(*b"hvc1");
    /// VVC / H.266.
    pub const VVC1: FourCc = FourCc(*b"vvc1");
    /// AV1.
    pub const AV01: FourCc = FourCc(*b"av01");
    /// VP9.
    pub const VP09: FourCc = FourCc(*b"vp09");
    /// VP8.
    pub const VP08: FourCc = FourCc(*b"vp08");
    /// AAC.
    pub const MP4A: FourCc = FourCc(*b"mp4a");
    /// Opus.
    pub const OPUS: FourCc = FourCc(*b"Opus");
    /// FLAC.
    pub const FLAC: FourCc = FourCc(*b"fLaC");
    /// MP3.
    pub const MP3: FourCc = FourCc(*b".mp3");
    /// AC-3.
    pub const AC3: FourCc = FourCc(*b"ac-3");
    /// E-AC-3.
    pub const EAC3: FourCc = FourCc(*b"ec-3");

    /// The code as a big-endian number, as `onMetaData` codec ids carry it
    /// (`Opus` = 1332770163).
    pub fn as_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    /// Whether coded frames of this codec carry an SI24 composition time (AVC, HEVC, VVC).
    pub fn has_composition_time(self) -> bool {
        matches!(self, FourCc::AVC1 | FourCc::HVC1 | FourCc::VVC1)
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc(\"{self}\")")
    }
}

/// Errors from [`VideoInfo::parse`] and [`AudioInfo::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The body ended before a field.
    #[error("{kind} tag body of {len} bytes ends inside {field}")]
    Truncated {
        /// "audio" or "video".
        kind: &'static str,
        /// Body length.
        len: usize,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A packet type that is reserved (Enhanced RTMP, or legacy AVC/AAC).
    #[error("reserved {kind} packet type {value}")]
    ReservedPacketType {
        /// "audio" or "video".
        kind: &'static str,
        /// The packet type.
        value: u8,
    },
    /// Multitrack or ModEx where the format forbids it.
    #[error("{kind} packet type {value} not allowed inside a multitrack packet")]
    NestedPacketType {
        /// "audio" or "video".
        kind: &'static str,
        /// The packet type.
        value: u8,
    },
    /// A multitrack message with more track entries than a track id can tell apart.
    #[error("{kind} multitrack message carries more than {max} tracks")]
    TooManyTracks {
        /// "audio" or "video".
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// AvMultitrackType above 2.
    #[error("unknown {kind} AvMultitrackType {value} (expected 0, 1 or 2)")]
    BadMultitrackType {
        /// "audio" or "video".
        kind: &'static str,
        /// The value.
        value: u8,
    },
}

/// A video codec: the legacy CodecID or the Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Legacy CodecID (2 H.263, 4 VP6, 7 AVC, 12 HEVC in the wild, …).
    Legacy(u8),
    /// Enhanced RTMP FourCC.
    FourCc(FourCc),
}

impl VideoCodec {
    /// Legacy CodecID for AVC.
    pub const LEGACY_AVC: u8 = 7;
    /// Non-standard legacy CodecID for HEVC (FFmpeg's `X_HEVC`).
    pub const LEGACY_HEVC: u8 = 12;

    /// Whether this is H.264 in either signalling.
    pub fn is_avc(self) -> bool {
        matches!(
            self,
            VideoCodec::Legacy(Self::LEGACY_AVC) | VideoCodec::FourCc(FourCc::AVC1)
        )
    }

    /// Whether this is H.265 in either signalling.
    pub fn is_hevc(self) -> bool {
        matches!(
            self,
            VideoCodec::Legacy(Self::LEGACY_HEVC) | VideoCodec::FourCc(FourCc::HVC1)
        )
    }
}

/// The packet type of a video tag, legacy AVC packet types mapped onto Enhanced RTMP ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoPacketType {
    /// Decoder configuration (AVC packet type 0, E-RTMP SequenceStart).
    SequenceStart,
    /// Coded frames; also every frame of legacy codecs without a packet type.
    CodedFrames,
    /// End of sequence (AVC packet type 2, E-RTMP SequenceEnd).
    SequenceEnd,
    /// Coded frames with implicit composition time 0.
    CodedFramesX,
    /// AMF metadata (`colorInfo`).
    Metadata,
    /// AV1 MPEG-2 TS video descriptor; a sequence header.
    Mpeg2TsSequenceStart,
}

/// The multitrack layout of an Enhanced RTMP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultitrackType {
    /// One track, with a track id.
    OneTrack,
    /// Several tracks of one codec.
    ManyTracks,
    /// Several tracks, each with its own codec.
    ManyTracksManyCodecs,
}

impl MultitrackType {
    fn from_nibble(value: u8, kind: &'static str) -> Result<Self, CodecError> {
        match value {
            0 => Ok(MultitrackType::OneTrack),
            1 => Ok(MultitrackType::ManyTracks),
            2 => Ok(MultitrackType::ManyTracksManyCodecs),
            value => Err(CodecError::BadMultitrackType { kind, value }),
        }
    }
}

/// Reads through a tag body, turning running out of bytes into [`CodecError::Truncated`].
/// Shared by the header inspection here and the whole-tag parser in [`crate::eflv`].
pub(crate) struct Cursor<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) kind: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn u24(&mut self, field: &'static str) -> Result<usize, CodecError> {
        let b = self.take(3, field)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let r = &self.data[self.pos.min(self.data.len())..];
        self.pos = self.data.len();
        r
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        match self.data.get(self.pos..self.pos.saturating_add(n)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(CodecError::Truncated {
                kind: self.kind,
                len: self.data.len(),
                field,
            }),
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn fourcc(&mut self) -> Result<FourCc, CodecError> {
        let b = self.take(4, "the FourCC")?;
        Ok(FourCc([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn si24(&mut self, field: &'static str) -> Result<i32, CodecError> {
        let b = self.take(3, field)?;
        // Sign-extend by placing the 24 bits at the top and shifting back arithmetically.
        Ok(i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8)
    }

    /// Walks ModEx prefixes (E-RTMP §ModEx) until a real packet type, returning it and the
    /// TimestampOffsetNano if one was given. Each round consumes at least two bytes, so the
    /// loop ends with the input.
    pub(crate) fn skip_modex(
        &mut self,
        mut packet_type: u8,
        modex: u8,
    ) -> Result<(u8, u32), CodecError> {
        let mut nanos = 0;
        while packet_type == modex {
            let mut size = usize::from(self.u8("the ModEx size")?) + 1;
            if size == 256 {
                let b = self.take(2, "the ModEx size")?;
                size = usize::from(u16::from_be_bytes([b[0], b[1]])) + 1;
            }
            let data = self.take(size, "the ModEx data")?;
            let next = self.u8("the ModEx type")?;
            if next >> 4 == 0 && data.len() >= 3 {
                // TimestampOffsetNano; values past 999 999 are clamped, not trusted.
                nanos = u32::from_be_bytes([0, data[0], data[1], data[2]]).min(999_999);
            }
            packet_type = next & 0x0f;
        }
        Ok((packet_type, nanos))
    }
}

/// What the first bytes of a video tag body (or RTMP video message) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoInfo {
    /// FrameType: 1 key, 2 inter, 3 disposable inter, 4 generated key, 5 command.
    pub frame_type: u8,
    /// Whether the Enhanced RTMP header (IsExHeader) is used.
    pub is_ex_header: bool,
    /// The codec; `None` only for Enhanced RTMP command frames, which carry no FourCC.
    pub codec: Option<VideoCodec>,
    /// The packet type; legacy codecs without one report [`VideoPacketType::CodedFrames`].
    pub packet_type: VideoPacketType,
    /// Composition time offset in ms (PTS − DTS); 0 where the format has none.
    pub composition_time: i32,
    /// The command byte of a command frame (0 start of seek, 1 end of seek), if present.
    pub command: Option<u8>,
    /// The multitrack layout, for Enhanced RTMP multitrack packets.
    pub multitrack: Option<MultitrackType>,
    /// Track id of the first (or only) track of a multitrack packet; 0 otherwise.
    pub track_id: u8,
    /// ModEx TimestampOffsetNano, in ns (0..999 999), to add to the message timestamp.
    pub timestamp_offset_nanos: u32,
    /// Offset in the body where the codec payload (of the first track) starts.
    pub payload_offset: usize,
}

impl VideoInfo {
    const MODEX: u8 = 7;
    const MULTITRACK: u8 = 6;

    /// Parses the header of a video tag body.
    pub fn parse(data: &[u8]) -> Result<VideoInfo, CodecError> {
        let mut cur = Cursor {
            data,
            pos: 0,
            kind: "video",
        };
        let first = cur.u8("the video header byte")?;
        if first & 0x80 == 0 {
            Self::parse_legacy(first, cur)
        } else {
            Self::parse_ex(first, cur)
        }
    }

    fn parse_legacy(first: u8, mut cur: Cursor<'_>) -> Result<VideoInfo, CodecError> {
        let frame_type = first >> 4;
        let codec_id = first & 0x0f;
        let mut info = VideoInfo {
            frame_type,
            is_ex_header: false,
            codec: Some(VideoCodec::Legacy(codec_id)),
            packet_type: VideoPacketType::CodedFrames,
            composition_time: 0,
            command: None,
            multitrack: None,
            track_id: 0,
            timestamp_offset_nanos: 0,
            payload_offset: 1,
        };
        if frame_type == 5 {
            // The common form is two bytes: header then command.
            info.command = cur.data.get(1).copied();
            return Ok(info);
        }
        if matches!(codec_id, VideoCodec::LEGACY_AVC | VideoCodec::LEGACY_HEVC) {
            info.packet_type = match cur.u8("the AVC packet type")? {
                0 => VideoPacketType::SequenceStart,
                1 => VideoPacketType::CodedFrames,
                2 => VideoPacketType::SequenceEnd,
                value => {
                    return Err(CodecError::ReservedPacketType {
                        kind: "AVC video",
                        value,
                    });
                }
            };
            info.composition_time = cur.si24("the composition time")?;
            if info.packet_type != VideoPacketType::CodedFrames {
                // Only NALU packets carry a meaningful composition time.
                info.composition_time = 0;
            }
        }
        info.payload_offset = cur.pos;
        Ok(info)
    }

    fn parse_ex(first: u8, mut cur: Cursor<'_>) -> Result<VideoInfo, CodecError> {
        let frame_type = (first >> 4) & 0x07;
        let (mut packet_type, nanos) = cur.skip_modex(first & 0x0f, Self::MODEX)?;
        let mut info = VideoInfo {
            frame_type,
            is_ex_header: true,
            codec: None,
            packet_type: VideoPacketType::CodedFrames,
            composition_time: 0,
            command: None,
            multitrack: None,
            track_id: 0,
            timestamp_offset_nanos: nanos,
            payload_offset: 0,
        };
        if frame_type == 5 && packet_type != 4 {
            info.command = Some(cur.u8("the video command")?);
            info.payload_offset = cur.pos;
            return Ok(info);
        }
        let codec = if packet_type == Self::MULTITRACK {
            let b = cur.u8("the multitrack type")?;
            let layout = MultitrackType::from_nibble(b >> 4, "video")?;
            packet_type = b & 0x0f;
            if matches!(packet_type, Self::MULTITRACK | Self::MODEX) {
                return Err(CodecError::NestedPacketType {
                    kind: "video",
                    value: packet_type,
                });
            }
            info.multitrack = Some(layout);
            // Either the FourCC shared by all tracks or, for ManyTracksManyCodecs, the first
            // track's own: four bytes here in both cases.
            let codec = cur.fourcc()?;
            // The first track: its id, then its size unless there is just one.
            info.track_id = cur.u8("the track id")?;
            if layout != MultitrackType::OneTrack {
                cur.take(3, "the track size")?;
            }
            codec
        } else {
            cur.fourcc()?
        };
        info.codec = Some(VideoCodec::FourCc(codec));
        info.packet_type = match packet_type {
            0 => VideoPacketType::SequenceStart,
            1 => VideoPacketType::CodedFrames,
            2 => VideoPacketType::SequenceEnd,
            3 => VideoPacketType::CodedFramesX,
            4 => VideoPacketType::Metadata,
            5 => VideoPacketType::Mpeg2TsSequenceStart,
            value => {
                return Err(CodecError::ReservedPacketType {
                    kind: "video",
                    value,
                });
            }
        };
        if info.packet_type == VideoPacketType::CodedFrames && codec.has_composition_time() {
            info.composition_time = cur.si24("the composition time")?;
        }
        info.payload_offset = cur.pos;
        Ok(info)
    }

    /// A keyframe (FrameType 1), sequence headers included. Metadata packets ignore FrameType,
    /// so they never count.
    pub fn is_keyframe(&self) -> bool {
        self.frame_type == 1 && self.packet_type != VideoPacketType::Metadata
    }

    /// A decoder configuration record: AVC packet type 0, SequenceStart or
    /// MPEG2TSSequenceStart. What a GOP cache keeps for late joiners.
    pub fn is_sequence_header(&self) -> bool {
        matches!(
            self.packet_type,
            VideoPacketType::SequenceStart | VideoPacketType::Mpeg2TsSequenceStart
        )
    }

    /// End of sequence.
    pub fn is_sequence_end(&self) -> bool {
        self.packet_type == VideoPacketType::SequenceEnd
    }

    /// A video info/command frame (FrameType 5).
    pub fn is_command(&self) -> bool {
        self.frame_type == 5
    }

    /// Whether the tag carries coded pictures (not a header, end marker, metadata or command).
    pub fn is_coded_frame(&self) -> bool {
        !self.is_command()
            && matches!(
                self.packet_type,
                VideoPacketType::CodedFrames | VideoPacketType::CodedFramesX
            )
    }
}

/// An audio codec: the legacy SoundFormat or the Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Legacy SoundFormat (2 MP3, 10 AAC, 11 Speex, …).
    Legacy(u8),
    /// Enhanced RTMP FourCC.
    FourCc(FourCc),
}

impl AudioCodec {
    /// Legacy SoundFormat for AAC.
    pub const LEGACY_AAC: u8 = 10;

    /// Whether this is AAC in either signalling.
    pub fn is_aac(self) -> bool {
        matches!(
            self,
            AudioCodec::Legacy(Self::LEGACY_AAC) | AudioCodec::FourCc(FourCc::MP4A)
        )
    }
}

/// The packet type of an audio tag, legacy AAC packet types mapped onto Enhanced RTMP ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioPacketType {
    /// Decoder configuration (AAC packet type 0, E-RTMP SequenceStart).
    SequenceStart,
    /// Coded frames; also every frame of legacy codecs without a packet type.
    CodedFrames,
    /// End of sequence.
    SequenceEnd,
    /// Channel layout.
    MultichannelConfig,
}

/// What the first bytes of an audio tag body (or RTMP audio message) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioInfo {
    /// SoundFormat (bits 7–4); 9 means the Enhanced RTMP header.
    pub sound_format: u8,
    /// The codec.
    pub codec: AudioCodec,
    /// The packet type; legacy codecs other than AAC report [`AudioPacketType::CodedFrames`].
    pub packet_type: AudioPacketType,
    /// Legacy SoundRate (0 5.5, 1 11, 2 22, 3 44 kHz); 0 for Enhanced RTMP.
    pub sound_rate: u8,
    /// Legacy SoundSize: true for 16-bit.
    pub sound_16bit: bool,
    /// Legacy SoundType: true for stereo.
    pub stereo: bool,
    /// The multitrack layout, for Enhanced RTMP multitrack packets.
    pub multitrack: Option<MultitrackType>,
    /// Track id of the first (or only) track of a multitrack packet; 0 otherwise.
    pub track_id: u8,
    /// ModEx TimestampOffsetNano, in ns.
    pub timestamp_offset_nanos: u32,
    /// Offset in the body where the codec payload (of the first track) starts.
    pub payload_offset: usize,
}

impl AudioInfo {
    /// SoundFormat value announcing the Enhanced RTMP audio header.
    pub const EX_HEADER: u8 = 9;
    const MULTITRACK: u8 = 5;
    const MODEX: u8 = 7;

    /// Parses the header of an audio tag body.
    pub fn parse(data: &[u8]) -> Result<AudioInfo, CodecError> {
        let mut cur = Cursor {
            data,
            pos: 0,
            kind: "audio",
        };
        let first = cur.u8("the audio header byte")?;
        let sound_format = first >> 4;
        let mut info = AudioInfo {
            sound_format,
            codec: AudioCodec::Legacy(sound_format),
            packet_type: AudioPacketType::CodedFrames,
            sound_rate: 0,
            sound_16bit: false,
            stereo: false,
            multitrack: None,
            track_id: 0,
            timestamp_offset_nanos: 0,
            payload_offset: 1,
        };
        if sound_format != Self::EX_HEADER {
            info.sound_rate = (first >> 2) & 0x03;
            info.sound_16bit = first & 0x02 != 0;
            info.stereo = first & 0x01 != 0;
            if sound_format == AudioCodec::LEGACY_AAC {
                info.packet_type = match cur.u8("the AAC packet type")? {
                    0 => AudioPacketType::SequenceStart,
                    1 => AudioPacketType::CodedFrames,
                    value => {
                        return Err(CodecError::ReservedPacketType {
                            kind: "AAC audio",
                            value,
                        });
                    }
                };
            }
            info.payload_offset = cur.pos;
            return Ok(info);
        }

        let (mut packet_type, nanos) = cur.skip_modex(first & 0x0f, Self::MODEX)?;
        info.timestamp_offset_nanos = nanos;
        let codec = if packet_type == Self::MULTITRACK {
            let b = cur.u8("the multitrack type")?;
            let layout = MultitrackType::from_nibble(b >> 4, "audio")?;
            packet_type = b & 0x0f;
            if matches!(packet_type, Self::MULTITRACK | Self::MODEX) {
                return Err(CodecError::NestedPacketType {
                    kind: "audio",
                    value: packet_type,
                });
            }
            info.multitrack = Some(layout);
            // Shared, or the first track's for ManyTracksManyCodecs: here either way.
            let codec = cur.fourcc()?;
            info.track_id = cur.u8("the track id")?;
            if layout != MultitrackType::OneTrack {
                cur.take(3, "the track size")?;
            }
            codec
        } else {
            cur.fourcc()?
        };
        info.codec = AudioCodec::FourCc(codec);
        info.packet_type = match packet_type {
            0 => AudioPacketType::SequenceStart,
            1 => AudioPacketType::CodedFrames,
            2 => AudioPacketType::SequenceEnd,
            4 => AudioPacketType::MultichannelConfig,
            value => {
                return Err(CodecError::ReservedPacketType {
                    kind: "audio",
                    value,
                });
            }
        };
        info.payload_offset = cur.pos;
        Ok(info)
    }

    /// A decoder configuration record (AAC packet type 0, E-RTMP SequenceStart).
    pub fn is_sequence_header(&self) -> bool {
        self.packet_type == AudioPacketType::SequenceStart
    }

    /// Whether the Enhanced RTMP header is used.
    pub fn is_ex_header(&self) -> bool {
        self.sound_format == Self::EX_HEADER
    }
}

/// Extends 32-bit millisecond timestamps to 64 bits across the wrap at 2^32 ms (~49.7 days).
///
/// Each timestamp is read as the value nearest the previous one: a step of less than 2^31
/// forwards or backwards is taken as is, so a small backwards jump (B-frame DTS quirks, a
/// restarted encoder) stays backwards, while a drop of more than 2^31 is a wrap. A backwards
/// step that would go below zero is read as a forward jump instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimestampExtender {
    last: Option<u64>,
}

impl TimestampExtender {
    /// An extender that has seen nothing; the first timestamp is taken as is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends `ts` relative to the previous timestamp.
    pub fn extend(&mut self, ts: u32) -> u64 {
        let value = match self.last {
            None => u64::from(ts),
            Some(last) => {
                let delta = i64::from(ts.wrapping_sub(last as u32) as i32);
                match last.checked_add_signed(delta) {
                    Some(value) => value,
                    // Below zero: only possible in the first epoch; take it literally.
                    None => u64::from(ts),
                }
            }
        };
        self.last = Some(value);
        value
    }

    /// The last extended timestamp, if any.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Forgets the history (new stream).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// One continuous timeline for FLV tags read from files that follow one another: a looped file,
/// or a second file after the first (`multifilesrc`, files concatenated).
///
/// Each file's timestamps start again (at 0, or wherever it was cut), which shows as an FLV
/// header that comes again after tags ([`TimelineJoiner::header`]) or as an audio or video tag
/// more than [`TimelineJoiner::MAX_BACKWARDS`] ms behind the latest tag (a script tag out of
/// line, such as a cue point, is no restart). The tags after such a restart are moved to
/// continue the timeline, keeping their distances to each other: the first of them goes one
/// frame interval after the last audio and the last video tag (each track's last step
/// forwards, 1 ms to [`TimelineJoiner::MAX_STEP`]), and after the latest tag of any kind.
/// Smaller steps back (audio and video interleaved a little out of order) stay as they are.
/// Timestamps are extended across the 32-bit wrap as by [`TimestampExtender`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimelineJoiner {
    extender: TimestampExtender,
    /// Added to the extended timestamps of the current file.
    offset: i64,
    /// The latest joined timestamp so far.
    latest: Option<u64>,
    /// Audio, then video: (last joined timestamp, last step forwards).
    tracks: [Option<(u64, u64)>; 2],
    /// A header came after tags: the next tag starts a new file.
    restart: bool,
    restarts: u64,
}

impl TimelineJoiner {
    /// A jump back by more than this (ms) is a restart, not interleaving.
    pub const MAX_BACKWARDS: u64 = 1000;
    /// The frame interval put after a track's last tag at a restart, at most (ms): a gap at the
    /// end of a file does not become a stall.
    pub const MAX_STEP: u64 = 1000;

    /// A joiner that has seen nothing; the first timestamp is taken as is.
    pub fn new() -> Self {
        Self::default()
    }

    /// An FLV file header: if tags came before it, the tags after it belong to the next file.
    pub fn header(&mut self) {
        if self.latest.is_some() {
            self.restart = true;
        }
    }

    /// Places the timestamp `ts` of a tag of `tag_type` on the joined timeline.
    pub fn join(&mut self, tag_type: u8, ts: u32) -> u64 {
        if self.restart {
            self.extender.reset();
        }
        let extended = self.extender.extend(ts);
        let mut value = extended.saturating_add_signed(self.offset);
        let media = matches!(tag_type, TAG_TYPE_AUDIO | TAG_TYPE_VIDEO);
        if let Some(latest) = self.latest
            && (self.restart || (media && value.saturating_add(Self::MAX_BACKWARDS) < latest))
        {
            let target = self
                .tracks
                .iter()
                .flatten()
                .map(|&(last, step)| last + step.clamp(1, Self::MAX_STEP))
                .fold(latest + 1, u64::max);
            self.offset = target as i64 - extended as i64;
            self.restarts += 1;
            value = target;
        }
        self.restart = false;
        self.record(tag_type, value);
        value
    }

    /// Places `ts` on the joined timeline without looking for a restart: for input whose
    /// timestamps are someone else's (a muxer's) to keep.
    pub fn follow(&mut self, tag_type: u8, ts: u32) -> u64 {
        self.restart = false;
        let value = self.extender.extend(ts).saturating_add_signed(self.offset);
        self.record(tag_type, value);
        value
    }

    fn record(&mut self, tag_type: u8, value: u64) {
        self.latest = Some(self.latest.map_or(value, |l| l.max(value)));
        let track = match tag_type {
            TAG_TYPE_AUDIO => &mut self.tracks[0],
            TAG_TYPE_VIDEO => &mut self.tracks[1],
            _ => return,
        };
        *track = Some(match *track {
            Some((last, _)) if value > last => (value, value - last),
            Some((last, step)) => (last.max(value), step),
            None => (value, 0),
        });
    }

    /// How many restarts were joined so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Forgets the history (new stream).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

// ---- classification ----------------------------------------------------------------------------

/// AMF0 `@setDataFrame`, which publishers put before metadata.
pub const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// Skips a leading `@setDataFrame` string, as players want bare `onMetaData`.
pub fn strip_set_data_frame(payload: &Bytes) -> Bytes {
    match payload.strip_prefix(SET_DATA_FRAME) {
        Some(_) => payload.slice(SET_DATA_FRAME.len()..),
        None => payload.clone(),
    }
}

/// Whether a data payload is stream metadata (`onMetaData`, with or without `@setDataFrame`
/// before it).
pub fn is_metadata(payload: &[u8]) -> bool {
    let rest = payload.strip_prefix(SET_DATA_FRAME).unwrap_or(payload);
    rest.starts_with(b"\x02\x00\x0aonMetaData")
}

/// Which decoder configuration a header message holds: one slot per message type, track and
/// packet type, so that every track keeps its own headers (and an Opus multichannel config or
/// an HEVC colorInfo sits next to its sequence start). A newer header replaces only the one
/// in its own slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderKey {
    /// 8 audio, 9 video.
    pub type_id: u8,
    /// The Enhanced RTMP track id (0 for legacy and single-track tags).
    pub track: u8,
    /// The packet type ([`VideoPacketType`] / [`AudioPacketType`] as a number; 0 for a
    /// legacy or Enhanced RTMP sequence header).
    pub packet: u8,
}

impl HeaderKey {
    /// A decoder configuration record (sequence start), not an extra configuration packet.
    pub fn is_sequence_start(&self) -> bool {
        match self.type_id {
            TAG_TYPE_VIDEO => {
                self.packet == VideoPacketType::SequenceStart as u8
                    || self.packet == VideoPacketType::Mpeg2TsSequenceStart as u8
            }
            _ => self.packet == AudioPacketType::SequenceStart as u8,
        }
    }
}

/// What a media message is, as far as storing, serving and resuming go: the one classifier
/// the client and server drivers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClass {
    /// `onMetaData` (AMF0 data).
    Metadata,
    /// Video decoder configuration: a sequence header, or Enhanced RTMP metadata (colorInfo).
    VideoHeader(HeaderKey),
    /// Audio decoder configuration: a sequence header, or an Enhanced RTMP multichannel config.
    AudioHeader(HeaderKey),
    /// A video frame; `composition_time` = PTS − DTS in ms.
    Video {
        keyframe: bool,
        composition_time: i32,
    },
    Audio,
    /// Any other data message.
    Data,
}

/// Classifies an audio (8), video (9) or data (18/15) message or tag body. Bodies the
/// inspectors cannot read are plain non-key frames: the peer decides what to make of them.
pub fn classify(type_id: u8, payload: &[u8]) -> MediaClass {
    let key = |track, packet| HeaderKey {
        type_id,
        track,
        packet,
    };
    match type_id {
        TAG_TYPE_VIDEO => match VideoInfo::parse(payload) {
            Ok(v) if v.is_sequence_header() => {
                MediaClass::VideoHeader(key(v.track_id, v.packet_type as u8))
            }
            Ok(v) if v.is_ex_header && v.packet_type == VideoPacketType::Metadata => {
                MediaClass::VideoHeader(key(v.track_id, v.packet_type as u8))
            }
            Ok(v) => MediaClass::Video {
                keyframe: v.is_keyframe(),
                composition_time: v.composition_time,
            },
            Err(_) => MediaClass::Video {
                keyframe: false,
                composition_time: 0,
            },
        },
        TAG_TYPE_AUDIO => match AudioInfo::parse(payload) {
            Ok(a)
                if a.is_sequence_header()
                    || a.packet_type == AudioPacketType::MultichannelConfig =>
            {
                MediaClass::AudioHeader(key(a.track_id, a.packet_type as u8))
            }
            _ => MediaClass::Audio,
        },
        TAG_TYPE_SCRIPT if is_metadata(payload) => MediaClass::Metadata,
        _ => MediaClass::Data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVC_SEQ: &[u8] = &[0x17, 0, 0, 0, 0, 1, 2, 3];
    const AVC_KEY: &[u8] = &[0x17, 1, 0, 0, 0x28, 9, 9];
    const AAC_SEQ: &[u8] = &[0xAF, 0, 0x12, 0x10];
    const AAC_RAW: &[u8] = &[0xAF, 1, 5, 5];

    #[test]
    fn classifies_headers_and_frames() {
        let legacy = |type_id| HeaderKey {
            type_id,
            track: 0,
            packet: 0,
        };
        assert_eq!(classify(9, AVC_SEQ), MediaClass::VideoHeader(legacy(9)));
        assert_eq!(
            classify(9, AVC_KEY),
            MediaClass::Video {
                keyframe: true,
                composition_time: 40
            }
        );
        assert_eq!(classify(8, AAC_SEQ), MediaClass::AudioHeader(legacy(8)));
        assert_eq!(classify(8, AAC_RAW), MediaClass::Audio);
        assert_eq!(
            classify(18, b"\x02\x00\x0aonMetaData\x08"),
            MediaClass::Metadata
        );
        assert_eq!(classify(18, b"\x02\x00\x06onText"), MediaClass::Data);
        // Enhanced RTMP: HEVC colorInfo metadata and an Opus multichannel config are headers
        // of their own slot; an Opus SequenceStart on track 1 (OneTrack multitrack) too.
        let colour = classify(9, b"\xd4hvc1\x02\x00\x09colorInfo");
        assert!(
            matches!(colour, MediaClass::VideoHeader(k) if k.packet == 4 && !k.is_sequence_start())
        );
        let multichannel = classify(8, b"\x94Opus\x00\x02");
        assert!(matches!(multichannel, MediaClass::AudioHeader(k) if !k.is_sequence_start()));
        let track1 = classify(8, b"\x95\x00Opus\x01\x13");
        assert!(
            matches!(track1, MediaClass::AudioHeader(k) if k.track == 1 && k.is_sequence_start())
        );
        assert_eq!(
            classify(9, &[]),
            MediaClass::Video {
                keyframe: false,
                composition_time: 0
            }
        );
    }

    use proptest::prelude::*;

    fn tag(tag_type: u8, timestamp: u32, data: &[u8]) -> Tag {
        Tag {
            tag_type,
            timestamp,
            stream_id: 0,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn encode(header: Option<FlvHeader>, tags: &[Tag]) -> Vec<u8> {
        let mut out = BytesMut::new();
        if let Some(h) = header {
            write_header(&h, &mut out);
        }
        for t in tags {
            write_tag(t, &mut out).unwrap();
        }
        out.to_vec()
    }

    fn sample_tags() -> Vec<Tag> {
        let big: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        vec![
            tag(
                TAG_TYPE_SCRIPT,
                0,
                b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09",
            ),
            tag(TAG_TYPE_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
            tag(TAG_TYPE_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]),
            tag(TAG_TYPE_VIDEO, 33, &big),
            tag(TAG_TYPE_AUDIO, 0x00ff_ffff, &[]),
            tag(TAG_TYPE_SCRIPT_AMF3, 0x0100_0000, &[0x11, 0x01]),
            Tag {
                tag_type: TAG_TYPE_VIDEO,
                timestamp: 0xfedc_ba98,
                stream_id: 0x00ab_cdef,
                data: Bytes::from_static(&[0x27, 1, 0, 0, 0]),
            },
        ]
    }

    /// Feeds `input` in the pieces given by `cuts` and collects every item.
    fn parse_pieces(
        mut parser: FlvParser,
        input: &[u8],
        cuts: &[usize],
        as_bytes: bool,
    ) -> Result<Vec<FlvItem>, FlvError> {
        let mut items = Vec::new();
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
        bounds.sort_unstable();
        bounds.push(input.len());
        for end in bounds {
            if as_bytes {
                parser.push_bytes(Bytes::copy_from_slice(&input[start..end]));
            } else {
                parser.push(&input[start..end]);
            }
            start = end;
            while let Some(item) = parser.next_item()? {
                items.push(item);
            }
        }
        parser.finish()?;
        Ok(items)
    }

    fn tags_of(items: &[FlvItem]) -> Vec<Tag> {
        items
            .iter()
            .filter_map(|i| match i {
                FlvItem::Tag(t) => Some(t.clone()),
                FlvItem::Header(_) => None,
            })
            .collect()
    }

    #[test]
    fn golden_header() {
        let mut out = BytesMut::new();
        write_header(&FlvHeader::new(true, true), &mut out);
        assert_eq!(&out[..], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        out.clear();
        write_header(&FlvHeader::new(false, true), &mut out);
        assert_eq!(&out[..], b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00");
        out.clear();
        write_header(&FlvHeader::new(true, false), &mut out);
        assert_eq!(out[4], 0x04);

        let h = FlvHeader::parse(b"FLV\x01\x05\x00\x00\x00\x09").unwrap();
        assert_eq!(h, FlvHeader::new(true, true));
        // Reserved flag bits are ignored.
        let h = FlvHeader::parse(b"FLV\x01\xf8\x00\x00\x00\x09").unwrap();
        assert!(!h.has_audio && !h.has_video);
        assert!(matches!(
            FlvHeader::parse(b"FL"),
            Err(FlvError::Truncated {
                have: 2,
                need: 9,
                ..
            })
        ));
        assert_eq!(
            FlvHeader::parse(b"F4"),
            Err(FlvError::BadSignature(*b"F4\0"))
        );
    }

    #[test]
    fn golden_tag() {
        let t = Tag {
            tag_type: TAG_TYPE_VIDEO,
            timestamp: 0x1234_5678,
            stream_id: 0,
            data: Bytes::from_static(&[0x17, 0x00, 0x00, 0x00, 0x00]),
        };
        let mut out = BytesMut::new();
        write_tag(&t, &mut out).unwrap();
        assert_eq!(
            &out[..],
            &[
                0x09, 0x00, 0x00, 0x05, 0x34, 0x56, 0x78, 0x12, 0x00, 0x00, 0x00, // header
                0x17, 0x00, 0x00, 0x00, 0x00, // body
                0x00, 0x00, 0x00, 0x10, // PreviousTagSize = 11 + 5
            ]
        );
        let h = TagHeader::parse(&out).unwrap();
        assert_eq!(
            h,
            TagHeader {
                tag_type: 9,
                data_size: 5,
                timestamp: 0x1234_5678,
                stream_id: 0
            }
        );
        assert_eq!(h.to_bytes().unwrap(), out[..11]);
        assert_eq!(t.encoded_len(), out.len());
    }

    #[test]
    fn write_rejects_what_cannot_be_read_back() {
        let mut out = BytesMut::new();
        let mut t = tag(7, 0, b"x");
        assert_eq!(write_tag(&t, &mut out), Err(FlvError::BadTagType(7)));
        t.tag_type = TAG_TYPE_AUDIO;
        t.stream_id = 0x0100_0000;
        assert_eq!(
            write_tag(&t, &mut out),
            Err(FlvError::StreamIdTooLarge(0x0100_0000))
        );
        t.stream_id = 0;
        t.data = Bytes::from(vec![0; MAX_TAG_DATA_SIZE as usize + 1]);
        let err = write_tag(&t, &mut out).unwrap_err();
        assert_eq!(err, FlvError::DataTooLong(16_777_216));
        assert!(err.to_string().contains("16777216"), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn parses_file_in_one_piece() {
        let tags = sample_tags();
        let input = encode(Some(FlvHeader::new(true, true)), &tags);
        let items =
            parse_pieces(FlvParser::new().require_header(true), &input, &[], false).unwrap();
        assert_eq!(items[0], FlvItem::Header(FlvHeader::new(true, true)));
        assert_eq!(tags_of(&items), tags);
        assert_eq!(items.len(), tags.len() + 1);
    }

    #[test]
    fn every_split_point_gives_the_same_tags() {
        let tags = sample_tags();
        for header in [Some(FlvHeader::new(true, false)), None] {
            let input = encode(header, &tags);
            for cut in 0..=input.len() {
                for as_bytes in [false, true] {
                    let items = parse_pieces(FlvParser::new(), &input, &[cut], as_bytes)
                        .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
                    assert_eq!(tags_of(&items), tags, "cut {cut}");
                    assert_eq!(items.len(), tags.len() + usize::from(header.is_some()));
                }
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let tags = sample_tags();
        let input = encode(Some(FlvHeader::default()), &tags);
        let cuts: Vec<usize> = (0..input.len()).collect();
        for as_bytes in [false, true] {
            let items = parse_pieces(FlvParser::new(), &input, &cuts, as_bytes).unwrap();
            assert_eq!(tags_of(&items), tags);
        }
    }

    #[test]
    fn tag_in_one_chunk_is_not_copied() {
        let tags = sample_tags();
        let input = Bytes::from(encode(Some(FlvHeader::default()), &tags));
        let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
        let mut p = FlvParser::new();
        p.push_bytes(input.clone());
        let mut n = 0;
        while let Some(item) = p.next_item().unwrap() {
            if let FlvItem::Tag(t) = item
                && !t.data.is_empty()
            {
                assert!(range.contains(&(t.data.as_ptr() as usize)));
                n += 1;
            }
        }
        assert_eq!(n, tags.len() - 1);
    }

    #[test]
    fn data_offset_above_nine_is_skipped() {
        let tags = sample_tags();
        let mut input = b"FLV\x01\x05\x00\x00\x00\x0fPADPAD\x00\x00\x00\x00".to_vec();
        input.extend(encode(None, &tags));
        for cut in 0..30 {
            let items = parse_pieces(FlvParser::new(), &input, &[cut], false).unwrap();
            assert_eq!(
                items[0],
                FlvItem::Header(FlvHeader {
                    version: 1,
                    has_audio: true,
                    has_video: true,
                    data_offset: 15
                })
            );
            assert_eq!(tags_of(&items), tags);
        }
        // And written back with the padding.
        let mut out = BytesMut::new();
        write_header(
            &FlvHeader {
                data_offset: 15,
                ..FlvHeader::default()
            },
            &mut out,
        );
        assert_eq!(out.len(), 15 + 4);
    }

    #[test]
    fn repeated_header_at_a_tag_boundary() {
        let tags = sample_tags();
        let mut input = encode(Some(FlvHeader::default()), &tags[..2]);
        input.extend(encode(Some(FlvHeader::new(false, true)), &tags[2..]));
        let items = parse_pieces(FlvParser::new(), &input, &[], false).unwrap();
        assert_eq!(items[3], FlvItem::Header(FlvHeader::new(false, true)));
        assert_eq!(tags_of(&items), tags);
    }

    #[test]
    fn prev_tag_size_mismatch_is_counted_not_fatal() {
        let tags = sample_tags();
        let mut input = encode(Some(FlvHeader::default()), &tags);
        // Corrupt PreviousTagSize0 and the one after the first tag.
        input[12] = 7;
        let first_end = 13 + tags[0].encoded_len();
        input[first_end - 1] ^= 0xff;
        let mut p = FlvParser::new();
        p.push(&input);
        let mut got = Vec::new();
        while let Some(item) = p.next_item().unwrap() {
            got.push(item);
        }
        assert_eq!(tags_of(&got), tags);
        assert_eq!(p.prev_tag_size_mismatches(), 2);
        assert_eq!(p.tags_parsed(), tags.len() as u64);
    }

    #[test]
    fn tag_size_limit() {
        let input = encode(None, &[tag(TAG_TYPE_VIDEO, 0, &[0; 101])]);
        let err =
            parse_pieces(FlvParser::new().with_max_tag_size(100), &input, &[], false).unwrap_err();
        assert_eq!(
            err,
            FlvError::TagTooLarge {
                size: 101,
                max: 100
            }
        );
        assert!(err.to_string().contains("101"), "{err}");
        // Detected from the header alone, before the body arrives.
        let mut p = FlvParser::new().with_max_tag_size(100);
        p.push(&input[..11]);
        assert!(matches!(p.next_item(), Err(FlvError::TagTooLarge { .. })));
        // The default limit admits the largest expressible tag header.
        let mut p = FlvParser::new();
        p.push(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(p.next_item(), Ok(None));
        assert_eq!(p.buffered_len(), 0);
    }

    #[test]
    fn hostile_inputs() {
        let cases: &[(&[u8], FlvError)] = &[
            (b"FLX\x01", FlvError::BadSignature(*b"FLX")),
            (b"FOO", FlvError::BadSignature(*b"FOO")),
            (b"\x07\x00\x00\x00", FlvError::BadTagType(7)),
            (b"\x29\x00\x00\x00", FlvError::BadTagType(0x29)),
            (b"\x00\x00\x00\x00", FlvError::BadTagType(0)),
            (b"FLV\x01\x05\x00\x00\x00\x05", FlvError::BadDataOffset(5)),
            (
                b"FLV\x01\x05\xff\xff\xff\xff",
                FlvError::BadDataOffset(u32::MAX),
            ),
        ];
        for (input, expected) in cases {
            let err = parse_pieces(FlvParser::new(), input, &[], false).unwrap_err();
            assert_eq!(&err, expected, "{input:02x?}");
        }
        let msg = FlvError::BadTagType(0x29).to_string();
        assert!(msg.contains("0x29"), "{msg}");
        let msg = FlvError::BadSignature(*b"FLX").to_string();
        assert!(
            msg.contains("46 4c 58") || msg.contains("46, 4c, 58"),
            "{msg}"
        );

        // A bad signature is reported as soon as its third byte arrives.
        let mut p = FlvParser::new();
        p.push(b"FL");
        assert_eq!(p.next_item(), Ok(None));
        p.push(b"A");
        assert_eq!(p.next_item(), Err(FlvError::BadSignature(*b"FLA")));
        // And the error sticks.
        p.push(&encode(None, &sample_tags()));
        assert_eq!(p.next_item(), Err(FlvError::BadSignature(*b"FLA")));

        // A file was required but a tag came.
        let input = encode(None, &sample_tags());
        let err =
            parse_pieces(FlvParser::new().require_header(true), &input, &[], false).unwrap_err();
        assert_eq!(err, FlvError::MissingHeader(TAG_TYPE_SCRIPT));

        // A bad tag type after a good tag.
        let mut input = encode(None, &sample_tags()[..1]);
        input.push(0x0a);
        let err = parse_pieces(FlvParser::new(), &input, &[], false).unwrap_err();
        assert_eq!(err, FlvError::BadTagType(0x0a));
    }

    #[test]
    fn finish_reports_truncation() {
        let tags = sample_tags();
        let input = encode(Some(FlvHeader::default()), &tags[..2]);
        // Only the final PreviousTagSize missing: fine.
        let mut p = FlvParser::new();
        p.push(&input[..input.len() - 4]);
        while p.next_item().unwrap().is_some() {}
        assert_eq!(p.finish(), Ok(()));
        // Inside the last tag body.
        let mut p = FlvParser::new();
        p.push(&input[..input.len() - 6]);
        while p.next_item().unwrap().is_some() {}
        assert_eq!(
            p.finish(),
            Err(FlvError::Truncated {
                what: "an FLV tag body",
                have: tags[1].data.len() - 2,
                need: tags[1].data.len()
            })
        );
        // Inside a tag header.
        let mut p = FlvParser::new();
        p.push(&input[..13 + 5]);
        assert_eq!(
            p.next_item(),
            Ok(Some(FlvItem::Header(FlvHeader::default())))
        );
        assert_eq!(p.next_item(), Ok(None));
        assert!(matches!(
            p.finish(),
            Err(FlvError::Truncated { have: 5, .. })
        ));
    }

    fn arb_tag() -> impl Strategy<Value = Tag> {
        (
            prop::sample::select(vec![
                TAG_TYPE_AUDIO,
                TAG_TYPE_VIDEO,
                TAG_TYPE_SCRIPT,
                TAG_TYPE_SCRIPT_AMF3,
            ]),
            any::<u32>(),
            0..=MAX_STREAM_ID,
            prop::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(tag_type, timestamp, stream_id, data)| Tag {
                tag_type,
                timestamp,
                stream_id,
                data: Bytes::from(data),
            })
    }

    proptest! {
        #[test]
        fn random_splits_give_the_same_tags(
            tags in prop::collection::vec(arb_tag(), 0..12),
            with_header in any::<bool>(),
            cuts in prop::collection::vec(0usize..3000, 0..20),
            as_bytes in any::<bool>(),
        ) {
            let input = encode(with_header.then(FlvHeader::default), &tags);
            let items = parse_pieces(FlvParser::new(), &input, &cuts, as_bytes).unwrap();
            prop_assert_eq!(tags_of(&items), tags);
        }

        #[test]
        fn garbage_never_panics(
            input in prop::collection::vec(any::<u8>(), 0..300),
            cuts in prop::collection::vec(0usize..300, 0..5),
            header in any::<bool>(),
        ) {
            let mut data = if header { b"FLV\x01\x05\x00\x00\x00\x09".to_vec() } else { Vec::new() };
            data.extend(input);
            let _ = parse_pieces(FlvParser::new().with_max_tag_size(64), &data, &cuts, false);
            let _ = VideoInfo::parse(&data);
            let _ = AudioInfo::parse(&data);
            if data.len() > 9 {
                let _ = VideoInfo::parse(&data[9..]);
                let _ = AudioInfo::parse(&data[9..]);
            }
        }

        #[test]
        fn ex_headers_never_panic(first in 0x80u8..=0xff, rest in prop::collection::vec(any::<u8>(), 0..40)) {
            let mut data = vec![first];
            data.extend(rest);
            let _ = VideoInfo::parse(&data);
            data[0] = 0x90 | (first & 0x0f);
            let _ = AudioInfo::parse(&data);
        }
    }

    #[test]
    fn legacy_avc_headers() {
        // §8.3: sequence header `17 00 00 00 00`.
        let v = VideoInfo::parse(&[0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64]).unwrap();
        assert!(v.is_keyframe() && v.is_sequence_header() && !v.is_ex_header);
        assert_eq!(v.codec, Some(VideoCodec::Legacy(7)));
        assert!(v.codec.unwrap().is_avc());
        assert_eq!(v.payload_offset, 5);
        // Keyframe NALUs `17 01 cc cc cc`, composition time 66.
        let v = VideoInfo::parse(&[0x17, 0x01, 0x00, 0x00, 0x42, 0, 0, 0, 2]).unwrap();
        assert!(v.is_keyframe() && !v.is_sequence_header() && v.is_coded_frame());
        assert_eq!(v.composition_time, 66);
        // Inter `27 01 …` with a negative SI24.
        let v = VideoInfo::parse(&[0x27, 0x01, 0xff, 0xff, 0xfe]).unwrap();
        assert!(!v.is_keyframe());
        assert_eq!(v.frame_type, 2);
        assert_eq!(v.composition_time, -2);
        // End of sequence.
        let v = VideoInfo::parse(&[0x17, 0x02, 0x00, 0x00, 0x00]).unwrap();
        assert!(v.is_sequence_end() && !v.is_coded_frame());
        // HEVC in the legacy header (CodecID 12).
        let v = VideoInfo::parse(&[0x1c, 0x00, 0x00, 0x00, 0x00]).unwrap();
        assert!(v.is_sequence_header() && v.codec.unwrap().is_hevc());
        // A non-AVC legacy codec has no packet type: every tag is a frame.
        let v = VideoInfo::parse(&[0x24, 0x00]).unwrap();
        assert_eq!(v.codec, Some(VideoCodec::Legacy(4)));
        assert_eq!(v.packet_type, VideoPacketType::CodedFrames);
        assert_eq!(v.payload_offset, 1);
        // Command frame: FrameType 5, one command byte.
        let v = VideoInfo::parse(&[0x52, 0x01]).unwrap();
        assert!(v.is_command() && !v.is_coded_frame());
        assert_eq!(v.command, Some(1));
        // Truncated and reserved.
        assert_eq!(
            VideoInfo::parse(&[0x17, 0x01, 0x00]),
            Err(CodecError::Truncated {
                kind: "video",
                len: 3,
                field: "the composition time"
            })
        );
        assert!(matches!(
            VideoInfo::parse(&[]),
            Err(CodecError::Truncated { len: 0, .. })
        ));
        let err = VideoInfo::parse(&[0x17, 0x03, 0, 0, 0]).unwrap_err();
        assert_eq!(err.to_string(), "reserved AVC video packet type 3");
    }

    #[test]
    fn enhanced_video_headers() {
        // §8.4: HEVC key CodedFramesX `93 68 76 63 31 …`.
        let v = VideoInfo::parse(&[0x93, 0x68, 0x76, 0x63, 0x31, 0xaa]).unwrap();
        assert!(v.is_ex_header && v.is_keyframe() && v.is_coded_frame());
        assert_eq!(v.codec, Some(VideoCodec::FourCc(FourCc::HVC1)));
        assert_eq!(v.packet_type, VideoPacketType::CodedFramesX);
        assert_eq!(v.composition_time, 0);
        assert_eq!(v.payload_offset, 5);
        // Key SequenceStart `90 68 76 63 31 <hvcC>`.
        let v = VideoInfo::parse(&[0x90, 0x68, 0x76, 0x63, 0x31, 0x01]).unwrap();
        assert!(v.is_sequence_header() && v.is_keyframe());
        // Inter CodedFrames `A1 68 76 63 31 <SI24> …`.
        let v = VideoInfo::parse(&[0xa1, 0x68, 0x76, 0x63, 0x31, 0x00, 0x01, 0x00, 0xbb]).unwrap();
        assert_eq!(v.frame_type, 2);
        assert!(!v.is_keyframe());
        assert_eq!(v.composition_time, 256);
        assert_eq!(v.payload_offset, 8);
        // AV1 CodedFrames carry no composition time.
        let v = VideoInfo::parse(b"\x91av01\x12\x00").unwrap();
        assert_eq!(v.codec, Some(VideoCodec::FourCc(FourCc::AV01)));
        assert_eq!((v.composition_time, v.payload_offset), (0, 5));
        // MPEG2TSSequenceStart counts as a sequence header; SequenceEnd is an end.
        assert!(VideoInfo::parse(b"\x95av01").unwrap().is_sequence_header());
        assert!(VideoInfo::parse(b"\x92vp09").unwrap().is_sequence_end());
        // Metadata.
        let v = VideoInfo::parse(b"\x94hvc1\x02").unwrap();
        assert_eq!(v.packet_type, VideoPacketType::Metadata);
        assert!(!v.is_keyframe() && !v.is_coded_frame() && !v.is_sequence_header());
        // Command frame: no FourCC.
        let v = VideoInfo::parse(&[0xd1, 0x00]).unwrap();
        assert!(v.is_command());
        assert_eq!((v.codec, v.command), (None, Some(0)));
        // Reserved packet type.
        assert_eq!(
            VideoInfo::parse(b"\x98hvc1"),
            Err(CodecError::ReservedPacketType {
                kind: "video",
                value: 8
            })
        );
        assert!(matches!(
            VideoInfo::parse(b"\x93hv"),
            Err(CodecError::Truncated {
                field: "the FourCC",
                ..
            })
        ));
    }

    #[test]
    fn enhanced_video_modex_and_multitrack() {
        // ModEx TimestampOffsetNano 500 ns, then CodedFrames hvc1, CT 5.
        let data = [
            0x97, 0x02, 0x00, 0x01, 0xf4, 0x01, b'h', b'v', b'c', b'1', 0, 0, 5, 0xcc,
        ];
        let v = VideoInfo::parse(&data).unwrap();
        assert_eq!(v.timestamp_offset_nanos, 500);
        assert_eq!(v.packet_type, VideoPacketType::CodedFrames);
        assert_eq!(v.composition_time, 5);
        assert_eq!(v.payload_offset, 13);
        // ModEx with the 16-bit size escape (256 + 1 bytes of data), unknown ModEx type 3.
        let mut data = vec![0x97, 0xff, 0x01, 0x00];
        data.extend([0u8; 257]);
        data.extend(b"\x33av01");
        let v = VideoInfo::parse(&data).unwrap();
        assert_eq!(v.packet_type, VideoPacketType::CodedFramesX);
        assert_eq!(v.timestamp_offset_nanos, 0);
        assert_eq!(v.codec, Some(VideoCodec::FourCc(FourCc::AV01)));
        // Two ModEx prefixes in a row.
        let v = VideoInfo::parse(b"\x97\x00\x00\x17\x00\x00\x00avc1").unwrap();
        assert_eq!(v.packet_type, VideoPacketType::SequenceStart);
        // Truncated ModEx data.
        assert!(matches!(
            VideoInfo::parse(&[0x97, 0x05, 0x00]),
            Err(CodecError::Truncated {
                field: "the ModEx data",
                ..
            })
        ));

        // Multitrack OneTrack CodedFrames avc1: FourCC, track id, SI24 CT.
        let v = VideoInfo::parse(b"\x96\x01avc1\x00\x00\x00\x21\xee").unwrap();
        assert_eq!(v.multitrack, Some(MultitrackType::OneTrack));
        assert_eq!(v.codec, Some(VideoCodec::FourCc(FourCc::AVC1)));
        assert_eq!(
            (v.track_id, v.composition_time, v.payload_offset),
            (0, 33, 10)
        );
        assert!(v.is_keyframe());
        // ManyTracks SequenceStart: FourCC, then track 1 with a u24 size.
        let v = VideoInfo::parse(b"\x96\x10hvc1\x01\x00\x00\x02\xab\xcd").unwrap();
        assert_eq!(v.multitrack, Some(MultitrackType::ManyTracks));
        assert!(v.is_sequence_header());
        assert_eq!((v.track_id, v.payload_offset), (1, 10));
        // ManyTracksManyCodecs CodedFramesX: the first track's FourCC.
        let v = VideoInfo::parse(b"\x96\x23vp09\x02\x00\x00\x01\x00").unwrap();
        assert_eq!(v.multitrack, Some(MultitrackType::ManyTracksManyCodecs));
        assert_eq!(v.codec, Some(VideoCodec::FourCc(FourCc::VP09)));
        assert_eq!(v.track_id, 2);
        // Multitrack inside multitrack, and a bad layout.
        assert_eq!(
            VideoInfo::parse(b"\x96\x06avc1"),
            Err(CodecError::NestedPacketType {
                kind: "video",
                value: 6
            })
        );
        let err = VideoInfo::parse(b"\x96\x31avc1").unwrap_err();
        assert_eq!(
            err,
            CodecError::BadMultitrackType {
                kind: "video",
                value: 3
            }
        );
        assert!(err.to_string().contains('3'));
    }

    #[test]
    fn audio_headers() {
        // §8.2: AAC sequence header `AF 00 12 10`.
        let a = AudioInfo::parse(&[0xaf, 0x00, 0x12, 0x10]).unwrap();
        assert!(a.is_sequence_header() && !a.is_ex_header());
        assert!(a.codec.is_aac());
        assert_eq!(a.codec, AudioCodec::Legacy(10));
        assert_eq!((a.sound_rate, a.sound_16bit, a.stereo), (3, true, true));
        assert_eq!(a.payload_offset, 2);
        let a = AudioInfo::parse(&[0xaf, 0x01, 0x21]).unwrap();
        assert_eq!(a.packet_type, AudioPacketType::CodedFrames);
        // MP3, Speex: no packet type.
        let a = AudioInfo::parse(&[0x2f, 0xff, 0xfb]).unwrap();
        assert_eq!((a.sound_format, a.payload_offset), (2, 1));
        assert!(!a.is_sequence_header());
        let a = AudioInfo::parse(&[0xb2]).unwrap();
        assert_eq!((a.sound_format, a.sound_rate, a.stereo), (11, 0, false));
        assert_eq!(
            AudioInfo::parse(&[0xaf]),
            Err(CodecError::Truncated {
                kind: "audio",
                len: 1,
                field: "the AAC packet type"
            })
        );
        assert_eq!(
            AudioInfo::parse(&[0xaf, 0x02]).unwrap_err().to_string(),
            "reserved AAC audio packet type 2"
        );

        // §8.5: ExHeader SequenceStart Opus.
        let a = AudioInfo::parse(b"\x90OpusOpusHead").unwrap();
        assert!(a.is_ex_header() && a.is_sequence_header());
        assert_eq!(a.codec, AudioCodec::FourCc(FourCc::OPUS));
        assert_eq!(a.payload_offset, 5);
        let a = AudioInfo::parse(b"\x91fLaC\xff").unwrap();
        assert_eq!(a.packet_type, AudioPacketType::CodedFrames);
        let a = AudioInfo::parse(b"\x94mp4a\x01\x02").unwrap();
        assert_eq!(a.packet_type, AudioPacketType::MultichannelConfig);
        assert!(AudioInfo::parse(b"\x92ac-3").unwrap().packet_type == AudioPacketType::SequenceEnd);
        // Multitrack OneTrack SequenceStart mp4a, track 0.
        let a = AudioInfo::parse(b"\x95\x00mp4a\x00\x12\x10").unwrap();
        assert_eq!(a.multitrack, Some(MultitrackType::OneTrack));
        assert!(a.is_sequence_header() && a.codec.is_aac());
        assert_eq!(a.payload_offset, 7);
        // ManyTracks CodedFrames: track 3 with a u24 size.
        let a = AudioInfo::parse(b"\x95\x11Opus\x03\x00\x00\x01\xaa").unwrap();
        assert_eq!((a.track_id, a.payload_offset), (3, 10));
        // ModEx (1 byte of data) then CodedFrames.
        let a = AudioInfo::parse(b"\x97\x00\x00\x01.mp3").unwrap();
        assert_eq!(a.codec, AudioCodec::FourCc(FourCc::MP3));
        assert_eq!(a.packet_type, AudioPacketType::CodedFrames);
        // Reserved and nested.
        assert_eq!(
            AudioInfo::parse(b"\x93mp4a"),
            Err(CodecError::ReservedPacketType {
                kind: "audio",
                value: 3
            })
        );
        assert_eq!(
            AudioInfo::parse(b"\x95\x05mp4a"),
            Err(CodecError::NestedPacketType {
                kind: "audio",
                value: 5
            })
        );
    }

    #[test]
    fn fourcc_numbers() {
        // onMetaData codec ids from §8.1.
        assert_eq!(FourCc::OPUS.as_u32(), 1_332_770_163);
        assert_eq!(FourCc::AV01.as_u32(), 1_635_135_537);
        assert_eq!(FourCc::HVC1.to_string(), "hvc1");
        assert_eq!(FourCc([b'a', 0, b'c', b'd']).to_string(), "a\\x00cd");
        assert_eq!(format!("{:?}", FourCc::MP4A), "FourCc(\"mp4a\")");
    }

    #[test]
    fn timestamp_extender_across_the_wrap() {
        let mut ext = TimestampExtender::new();
        let fed = [
            0xffff_ff00u32,
            0xffff_fff0,
            0x0000_0010,
            0xffff_fff8, // small step back across the wrap: stays backwards
            0x0000_0100,
            0x0000_00f0, // small step back
            0x8000_0000, // big forward jump, below 2^31
        ];
        let want = [
            0xffff_ff00u64,
            0xffff_fff0,
            0x1_0000_0010,
            0xffff_fff8,
            0x1_0000_0100,
            0x1_0000_00f0,
            0x1_8000_0000,
        ];
        let got: Vec<u64> = fed.iter().map(|&t| ext.extend(t)).collect();
        assert_eq!(got, want);
        assert_eq!(ext.last(), Some(0x1_8000_0000));

        // A drop of more than 2^31 is a wrap; a drop of less is a drop.
        let mut ext = TimestampExtender::new();
        ext.extend(0x8000_0001);
        assert_eq!(ext.extend(0), 0x1_0000_0000);
        let mut ext = TimestampExtender::new();
        ext.extend(0x7fff_ffff);
        assert_eq!(ext.extend(0), 0);

        // Backwards below zero at the very start is read as a jump forward.
        let mut ext = TimestampExtender::new();
        ext.extend(10);
        assert_eq!(ext.extend(0xffff_fff0), 0xffff_fff0);
        ext.reset();
        assert_eq!(ext.last(), None);
        assert_eq!(ext.extend(5), 5);
    }

    /// A 3 s file as (tag type, timestamp): metadata and both sequence headers at 0, then
    /// video every 33 ms and audio every 21 ms, interleaved.
    fn three_second_file() -> Vec<(u8, u32)> {
        let mut tags: Vec<(u8, u32)> = (0..90)
            .map(|i| (TAG_TYPE_VIDEO, i * 33))
            .chain((0..141).map(|i| (TAG_TYPE_AUDIO, i * 21)))
            .collect();
        tags.sort_by_key(|&(_, ts)| ts);
        let mut file = vec![
            (TAG_TYPE_SCRIPT, 0),
            (TAG_TYPE_VIDEO, 0),
            (TAG_TYPE_AUDIO, 0),
        ];
        file.extend(tags);
        file
    }

    #[test]
    fn joiner_continues_a_file_that_starts_again() {
        let file = three_second_file();
        let mut joiner = TimelineJoiner::new();
        joiner.header();
        for &(kind, ts) in &file {
            assert_eq!(joiner.join(kind, ts), u64::from(ts));
        }
        assert_eq!(joiner.restarts(), 0);

        // Read again: the second round starts one video frame after the last video tag of
        // the first (2937 + 33; the audio one at 2940 + 21 comes sooner), nothing in between.
        joiner.header();
        for &(kind, ts) in &file {
            assert_eq!(joiner.join(kind, ts), 2970 + u64::from(ts), "{kind} {ts}");
        }
        assert_eq!(joiner.restarts(), 1);
    }

    #[test]
    fn joiner_restarts_on_a_jump_back_without_a_header() {
        let mut joiner = TimelineJoiner::new();
        for ts in [0, 40, 80, 5000, 5040] {
            joiner.join(TAG_TYPE_VIDEO, ts);
        }
        // Out of order by less than MAX_BACKWARDS: kept as is.
        assert_eq!(joiner.join(TAG_TYPE_AUDIO, 4100), 4100);
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 5080), 5080);
        assert_eq!(joiner.restarts(), 0);
        // A script tag far behind is no restart.
        assert_eq!(joiner.join(TAG_TYPE_SCRIPT, 0), 0);
        assert_eq!(joiner.restarts(), 0);
        // Back to 0: a new file, one video step (40 ms) after the last video tag.
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 0), 5120);
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 40), 5160);
        assert_eq!(joiner.restarts(), 1);
    }

    #[test]
    fn joiner_bounds_the_step_and_takes_any_start_after_a_header() {
        let mut joiner = TimelineJoiner::new();
        // A first file that starts late is taken as is, and a header before any tag is no
        // restart.
        joiner.header();
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 7_000_000), 7_000_000);
        // A 10 s gap at the end of the file becomes a 1 s step, not a 10 s stall.
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 7_010_000), 7_010_000);
        joiner.header();
        // The next file starts far ahead (cut from a recording): joined all the same.
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 3_600_000), 7_011_000);
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 3_600_033), 7_011_033);
        assert_eq!(joiner.restarts(), 1);
        // Only metadata, always at 0: each restart moves on by 1 ms.
        let mut joiner = TimelineJoiner::new();
        joiner.join(TAG_TYPE_SCRIPT, 0);
        joiner.header();
        assert_eq!(joiner.join(TAG_TYPE_SCRIPT, 0), 1);
        joiner.header();
        assert_eq!(joiner.join(TAG_TYPE_SCRIPT, 0), 2);
    }

    #[test]
    fn joiner_extends_across_the_wrap_and_follows_without_joining() {
        let mut joiner = TimelineJoiner::new();
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 0xffff_fff0), 0xffff_fff0);
        assert_eq!(joiner.join(TAG_TYPE_VIDEO, 0x0000_0010), 0x1_0000_0010);
        // `follow` keeps a muxer's timestamps even when they go back, and forgets a header.
        let mut joiner = TimelineJoiner::new();
        joiner.follow(TAG_TYPE_VIDEO, 5000);
        joiner.header();
        assert_eq!(joiner.follow(TAG_TYPE_VIDEO, 0), 0);
        assert_eq!(joiner.follow(TAG_TYPE_VIDEO, 33), 33);
        assert_eq!(joiner.restarts(), 0);
        joiner.reset();
        assert_eq!(joiner, TimelineJoiner::new());
    }

    proptest! {
        #[test]
        fn extender_tracks_a_monotonic_clock(start in 0u64..(1 << 40), steps in prop::collection::vec(0u64..(1 << 30), 1..50)) {
            let mut ext = TimestampExtender::new();
            let mut now = start;
            // The first value is taken as is, so start from its low 32 bits.
            let base = start - u64::from(start as u32);
            prop_assert_eq!(ext.extend(now as u32) + base, now);
            for step in steps {
                now += step;
                prop_assert_eq!(ext.extend(now as u32) + base, now);
            }
        }
    }
}
