//! RTMP messages: the unit the chunk stream carries, the protocol control messages (types
//! 1, 2, 3, 5, 6), user control events (type 4) and aggregate messages (type 22).
//!
//! Everything here is structural: parsing checks lengths and layouts, not policy. Whether a
//! chunk size is acceptable, for instance, is for the chunk reader to decide against its
//! limits. Parsed payload slices ([`UserControl::SwfVerifyResponse`], aggregate sub-messages)
//! share the message's buffer instead of copying it.

use bytes::{BufMut, Bytes, BytesMut};

/// Message type ids (protocol-facts §5.6).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User control event type ids (protocol-facts §5.5).
pub mod user_control_event {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
    pub const SWF_VERIFY_REQUEST: u16 = 26;
    pub const SWF_VERIFY_RESPONSE: u16 = 27;
    pub const BUFFER_EMPTY: u16 = 31;
    pub const BUFFER_READY: u16 = 32;
}

/// One complete RTMP message. `payload` is reference-counted so that a message can be handed
/// to many consumers without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub type_id: u8,
    /// Milliseconds, 32-bit, wrapping (the wire value).
    pub timestamp: u32,
    /// Message stream id (0 for NetConnection traffic).
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Errors from parsing control messages and aggregates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A control message or user control event whose payload is too short for its fields.
    #[error("{what} payload is {len} bytes, needs at least {needed}")]
    ShortPayload {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    /// [`split_aggregate`] was given a message that is not an aggregate.
    #[error("message type {type_id} is not an aggregate (22)")]
    NotAggregate { type_id: u8 },
    /// An aggregate ends in the middle of a sub-message.
    #[error(
        "aggregate truncated in sub-message {index} at offset {offset}: {part} needs {needed} bytes, {available} left"
    )]
    AggregateTruncated {
        index: usize,
        offset: usize,
        part: &'static str,
        needed: usize,
        available: usize,
    },
    /// A sub-message's trailing back pointer does not equal 11 + its data size.
    #[error(
        "aggregate sub-message {index} at offset {offset}: back pointer {found}, expected {expected}"
    )]
    AggregateBackPointer {
        index: usize,
        offset: usize,
        found: u32,
        expected: u32,
    },
}

/// User control events (message type 4, protocol-facts §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded(u32),
    /// Carries the sender's timestamp, echoed back in the response.
    PingRequest(u32),
    PingResponse(u32),
    SwfVerifyRequest(u8),
    /// The event data as received (42 bytes from well-behaved peers; not enforced).
    SwfVerifyResponse(Bytes),
    BufferEmpty(u32),
    BufferReady(u32),
    /// Any other event type, kept so it can be logged or relayed.
    Unknown {
        event_type: u16,
        data: Bytes,
    },
}

/// Protocol control messages (types 1, 2, 3, 5, 6) and user control (type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    SetChunkSize(u32),
    /// The chunk stream id whose partial message is to be discarded.
    Abort(u32),
    /// Sequence number: bytes received so far, modulo 2^32.
    Acknowledgement(u32),
    WindowAckSize(u32),
    /// `limit_type`: 0 hard, 1 soft, 2 dynamic (spec numbering).
    SetPeerBandwidth {
        window: u32,
        limit_type: u8,
    },
    UserControl(UserControl),
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn need(what: &'static str, data: &[u8], needed: usize) -> Result<(), MessageError> {
    if data.len() < needed {
        return Err(MessageError::ShortPayload {
            what,
            len: data.len(),
            needed,
        });
    }
    Ok(())
}

/// Reads the leading u32 of a payload; trailing bytes are ignored, as peers do.
fn leading_u32(what: &'static str, data: &[u8]) -> Result<u32, MessageError> {
    need(what, data, 4)?;
    Ok(read_u32(data, 0))
}

impl UserControl {
    fn event_type(&self) -> u16 {
        use user_control_event as ev;
        match self {
            UserControl::StreamBegin(_) => ev::STREAM_BEGIN,
            UserControl::StreamEof(_) => ev::STREAM_EOF,
            UserControl::StreamDry(_) => ev::STREAM_DRY,
            UserControl::SetBufferLength { .. } => ev::SET_BUFFER_LENGTH,
            UserControl::StreamIsRecorded(_) => ev::STREAM_IS_RECORDED,
            UserControl::PingRequest(_) => ev::PING_REQUEST,
            UserControl::PingResponse(_) => ev::PING_RESPONSE,
            UserControl::SwfVerifyRequest(_) => ev::SWF_VERIFY_REQUEST,
            UserControl::SwfVerifyResponse(_) => ev::SWF_VERIFY_RESPONSE,
            UserControl::BufferEmpty(_) => ev::BUFFER_EMPTY,
            UserControl::BufferReady(_) => ev::BUFFER_READY,
            UserControl::Unknown { event_type, .. } => *event_type,
        }
    }

    /// Parses a type-4 payload (event type + event data).
    pub fn parse(payload: &Bytes) -> Result<UserControl, MessageError> {
        use user_control_event as ev;
        need("User Control", payload, 2)?;
        let event_type = u16::from_be_bytes([payload[0], payload[1]]);
        let data = &payload[2..];
        let event = match event_type {
            ev::STREAM_BEGIN => UserControl::StreamBegin(leading_u32("StreamBegin event", data)?),
            ev::STREAM_EOF => UserControl::StreamEof(leading_u32("StreamEOF event", data)?),
            ev::STREAM_DRY => UserControl::StreamDry(leading_u32("StreamDry event", data)?),
            ev::SET_BUFFER_LENGTH => {
                need("SetBufferLength event", data, 8)?;
                UserControl::SetBufferLength {
                    stream_id: read_u32(data, 0),
                    buffer_ms: read_u32(data, 4),
                }
            }
            ev::STREAM_IS_RECORDED => {
                UserControl::StreamIsRecorded(leading_u32("StreamIsRecorded event", data)?)
            }
            ev::PING_REQUEST => UserControl::PingRequest(leading_u32("PingRequest event", data)?),
            ev::PING_RESPONSE => {
                UserControl::PingResponse(leading_u32("PingResponse event", data)?)
            }
            ev::SWF_VERIFY_REQUEST => {
                need("SWFVerification request event", data, 1)?;
                UserControl::SwfVerifyRequest(data[0])
            }
            ev::SWF_VERIFY_RESPONSE => UserControl::SwfVerifyResponse(payload.slice(2..)),
            ev::BUFFER_EMPTY => UserControl::BufferEmpty(leading_u32("BufferEmpty event", data)?),
            ev::BUFFER_READY => UserControl::BufferReady(leading_u32("BufferReady event", data)?),
            _ => UserControl::Unknown {
                event_type,
                data: payload.slice(2..),
            },
        };
        Ok(event)
    }

    /// Encodes the type-4 payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.event_type());
        match self {
            UserControl::StreamBegin(v)
            | UserControl::StreamEof(v)
            | UserControl::StreamDry(v)
            | UserControl::StreamIsRecorded(v)
            | UserControl::PingRequest(v)
            | UserControl::PingResponse(v)
            | UserControl::BufferEmpty(v)
            | UserControl::BufferReady(v) => out.put_u32(*v),
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                out.put_u32(*stream_id);
                out.put_u32(*buffer_ms);
            }
            UserControl::SwfVerifyRequest(v) => out.put_u8(*v),
            UserControl::SwfVerifyResponse(data) | UserControl::Unknown { data, .. } => {
                out.put_slice(data)
            }
        }
    }
}

impl Control {
    /// Ok(None) when `msg` is not a control message type (1..=6).
    ///
    /// Trailing bytes after the fields are ignored. A 4-byte Set Peer Bandwidth (no limit
    /// type, as some servers send) reads as limit type 2, dynamic.
    pub fn parse(msg: &Message) -> Result<Option<Control>, MessageError> {
        let p = &msg.payload;
        let control = match msg.type_id {
            msg_type::SET_CHUNK_SIZE => Control::SetChunkSize(leading_u32("Set Chunk Size", p)?),
            msg_type::ABORT => Control::Abort(leading_u32("Abort Message", p)?),
            msg_type::ACKNOWLEDGEMENT => {
                Control::Acknowledgement(leading_u32("Acknowledgement", p)?)
            }
            msg_type::USER_CONTROL => Control::UserControl(UserControl::parse(p)?),
            msg_type::WINDOW_ACK_SIZE => {
                Control::WindowAckSize(leading_u32("Window Acknowledgement Size", p)?)
            }
            msg_type::SET_PEER_BANDWIDTH => Control::SetPeerBandwidth {
                window: leading_u32("Set Peer Bandwidth", p)?,
                limit_type: p.get(4).copied().unwrap_or(2),
            },
            _ => return Ok(None),
        };
        Ok(Some(control))
    }

    /// The message type id this control message is sent as.
    pub fn type_id(&self) -> u8 {
        match self {
            Control::SetChunkSize(_) => msg_type::SET_CHUNK_SIZE,
            Control::Abort(_) => msg_type::ABORT,
            Control::Acknowledgement(_) => msg_type::ACKNOWLEDGEMENT,
            Control::WindowAckSize(_) => msg_type::WINDOW_ACK_SIZE,
            Control::SetPeerBandwidth { .. } => msg_type::SET_PEER_BANDWIDTH,
            Control::UserControl(_) => msg_type::USER_CONTROL,
        }
    }

    /// Message on stream 0, timestamp 0 (send it on csid 2).
    pub fn to_message(&self) -> Message {
        let mut out = BytesMut::with_capacity(10);
        match self {
            Control::SetChunkSize(v)
            | Control::Abort(v)
            | Control::Acknowledgement(v)
            | Control::WindowAckSize(v) => out.put_u32(*v),
            Control::SetPeerBandwidth { window, limit_type } => {
                out.put_u32(*window);
                out.put_u8(*limit_type);
            }
            Control::UserControl(event) => event.encode(&mut out),
        }
        Message {
            type_id: self.type_id(),
            timestamp: 0,
            stream_id: 0,
            payload: out.freeze(),
        }
    }
}

/// Size of the FLV-style tag header in front of each aggregate sub-message.
const SUB_HEADER_LEN: usize = 11;

/// Splits an aggregate (type 22) into sub-messages, zero-copy (Bytes slices), timestamps rebased
/// per protocol-facts §5.6, stream id = the aggregate's.
///
/// Sub-headers use the FLV tag layout (Appendix B item 10): type, 24-bit size, 24-bit
/// timestamp low bits, 8-bit timestamp high bits, 24-bit stream id (ignored). Each
/// sub-message's timestamp is `aggregate_ts + (sub_ts - first_sub_ts)`, wrapping, so the
/// aggregate's timestamp wins over whatever clock the sub-headers were stamped with.
pub fn split_aggregate(msg: &Message) -> Result<Vec<Message>, MessageError> {
    if msg.type_id != msg_type::AGGREGATE {
        return Err(MessageError::NotAggregate {
            type_id: msg.type_id,
        });
    }
    let p = &msg.payload;
    let mut out = Vec::new();
    let mut offset = 0;
    let mut first_ts = None;
    while offset < p.len() {
        let index = out.len();
        let truncated = |part, needed, available| MessageError::AggregateTruncated {
            index,
            offset,
            part,
            needed,
            available,
        };
        let rest = &p[offset..];
        if rest.len() < SUB_HEADER_LEN {
            return Err(truncated("sub-header", SUB_HEADER_LEN, rest.len()));
        }
        let type_id = rest[0];
        let size = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        let sub_ts = u32::from_be_bytes([rest[7], rest[4], rest[5], rest[6]]);
        let body = &rest[SUB_HEADER_LEN..];
        if body.len() < size {
            return Err(truncated("data", size, body.len()));
        }
        if body.len() - size < 4 {
            return Err(truncated("back pointer", 4, body.len() - size));
        }
        let back = read_u32(body, size);
        let expected = (SUB_HEADER_LEN + size) as u32;
        if back != expected {
            return Err(MessageError::AggregateBackPointer {
                index,
                offset,
                found: back,
                expected,
            });
        }
        let base = *first_ts.get_or_insert(sub_ts);
        let data_start = offset + SUB_HEADER_LEN;
        out.push(Message {
            type_id,
            timestamp: msg.timestamp.wrapping_add(sub_ts.wrapping_sub(base)),
            stream_id: msg.stream_id,
            payload: p.slice(data_start..data_start + size),
        });
        offset = data_start + size + 4;
    }
    Ok(out)
}

/// Decides when an Acknowledgement is due.
///
/// Acknowledges once at least `window` bytes arrived since the last acknowledgement. A
/// window of 0 disables acknowledgements (no peer asks for that; it avoids acking every
/// read). The caller chooses the cadence by the window it passes: the spec's full window,
/// or half of it as FFmpeg and SRS do.
#[derive(Debug, Clone)]
pub struct AckTracker {
    window: u32,
    last_acked: u64,
}

impl AckTracker {
    pub fn new(window: u32) -> Self {
        AckTracker {
            window,
            last_acked: 0,
        }
    }

    /// Changes the window; bytes already counted since the last acknowledgement still count.
    pub fn set_window(&mut self, window: u32) {
        self.window = window;
    }

    /// `total` = bytes received so far; returns the sequence number to acknowledge when due.
    pub fn on_received(&mut self, total: u64) -> Option<u32> {
        if self.window == 0 || total.saturating_sub(self.last_acked) < u64::from(self.window) {
            return None;
        }
        self.last_acked = total;
        // The sequence number field is 32 bits and wraps after 4 GiB.
        Some(total as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn control_msg(type_id: u8, payload: &[u8]) -> Message {
        Message {
            type_id,
            timestamp: 0,
            stream_id: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn set_chunk_size_golden_payload() {
        let msg = Control::SetChunkSize(4096).to_message();
        assert_eq!(msg.type_id, 1);
        assert_eq!(msg.stream_id, 0);
        assert_eq!(msg.timestamp, 0);
        assert_eq!(&msg.payload[..], &[0x00, 0x00, 0x10, 0x00]);
        assert_eq!(
            Control::parse(&msg).unwrap(),
            Some(Control::SetChunkSize(4096))
        );
    }

    #[test]
    fn golden_user_control_and_bandwidth_payloads() {
        let cases: Vec<(Control, Vec<u8>)> = vec![
            (
                Control::UserControl(UserControl::StreamBegin(1)),
                vec![0, 0, 0, 0, 0, 1],
            ),
            (
                Control::UserControl(UserControl::SetBufferLength {
                    stream_id: 1,
                    buffer_ms: 3000,
                }),
                vec![0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8],
            ),
            (
                Control::UserControl(UserControl::PingResponse(0x01020304)),
                vec![0, 7, 1, 2, 3, 4],
            ),
            (
                Control::SetPeerBandwidth {
                    window: 2_500_000,
                    limit_type: 2,
                },
                vec![0x00, 0x26, 0x25, 0xa0, 0x02],
            ),
            (
                Control::WindowAckSize(5_000_000),
                vec![0x00, 0x4c, 0x4b, 0x40],
            ),
        ];
        for (control, bytes) in cases {
            let msg = control.to_message();
            assert_eq!(&msg.payload[..], &bytes[..], "{control:?}");
            assert_eq!(Control::parse(&msg).unwrap(), Some(control));
        }
    }

    fn all_controls() -> Vec<Control> {
        vec![
            Control::SetChunkSize(0x7fff_ffff),
            Control::Abort(65599),
            Control::Acknowledgement(0xffff_fffe),
            Control::WindowAckSize(2_500_000),
            Control::SetPeerBandwidth {
                window: 1,
                limit_type: 0,
            },
            Control::UserControl(UserControl::StreamBegin(7)),
            Control::UserControl(UserControl::StreamEof(8)),
            Control::UserControl(UserControl::StreamDry(9)),
            Control::UserControl(UserControl::SetBufferLength {
                stream_id: 10,
                buffer_ms: 30000,
            }),
            Control::UserControl(UserControl::StreamIsRecorded(11)),
            Control::UserControl(UserControl::PingRequest(12)),
            Control::UserControl(UserControl::PingResponse(13)),
            Control::UserControl(UserControl::SwfVerifyRequest(0)),
            Control::UserControl(UserControl::SwfVerifyResponse(Bytes::from(vec![0xab; 42]))),
            Control::UserControl(UserControl::BufferEmpty(14)),
            Control::UserControl(UserControl::BufferReady(15)),
            Control::UserControl(UserControl::Unknown {
                event_type: 99,
                data: Bytes::from_static(b"xyz"),
            }),
        ]
    }

    #[test]
    fn every_control_round_trips() {
        for control in all_controls() {
            let msg = control.to_message();
            assert_eq!(msg.stream_id, 0);
            assert_eq!(Control::parse(&msg).unwrap(), Some(control));
        }
    }

    #[test]
    fn every_truncated_control_names_the_event_and_length() {
        for control in all_controls() {
            let full = control.to_message();
            for cut in 0..full.payload.len() {
                let msg = control_msg(full.type_id, &full.payload[..cut]);
                match Control::parse(&msg) {
                    Ok(Some(parsed)) => {
                        // Only variable-length events and the 4-byte peer bandwidth form may
                        // parse from a shorter payload.
                        let fine = matches!(
                            (&control, &parsed),
                            (
                                Control::UserControl(UserControl::SwfVerifyResponse(_)),
                                Control::UserControl(UserControl::SwfVerifyResponse(_))
                            ) | (
                                Control::UserControl(UserControl::Unknown { .. }),
                                Control::UserControl(UserControl::Unknown { .. })
                            ) | (Control::SetPeerBandwidth { .. }, _)
                        );
                        assert!(fine, "{control:?} cut at {cut} parsed as {parsed:?}");
                    }
                    Ok(None) => panic!("control type {} not recognised", full.type_id),
                    Err(MessageError::ShortPayload { what, len, .. }) => {
                        assert_eq!(
                            len,
                            if cut < 2 || full.type_id != 4 {
                                cut
                            } else {
                                cut - 2
                            }
                        );
                        assert!(!what.is_empty());
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
        let err = Control::parse(&control_msg(4, &[0, 3, 0, 0, 0, 1, 0])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SetBufferLength event payload is 5 bytes, needs at least 8"
        );
        let err = Control::parse(&control_msg(1, &[0, 0])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Set Chunk Size payload is 2 bytes, needs at least 4"
        );
    }

    #[test]
    fn four_byte_peer_bandwidth_defaults_to_dynamic() {
        let msg = control_msg(6, &[0, 0, 0x10, 0]);
        assert_eq!(
            Control::parse(&msg).unwrap(),
            Some(Control::SetPeerBandwidth {
                window: 4096,
                limit_type: 2
            })
        );
    }

    #[test]
    fn non_control_types_are_none() {
        for t in [0u8, 7, 8, 9, 18, 20, 22, 255] {
            assert_eq!(Control::parse(&control_msg(t, &[])).unwrap(), None);
        }
    }

    fn sub(out: &mut Vec<u8>, type_id: u8, ts: u32, data: &[u8]) {
        out.push(type_id);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(data);
        out.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
    }

    fn aggregate(ts: u32, body: Vec<u8>) -> Message {
        Message {
            type_id: msg_type::AGGREGATE,
            timestamp: ts,
            stream_id: 5,
            payload: Bytes::from(body),
        }
    }

    #[test]
    fn aggregate_splits_and_rebases() {
        let mut body = Vec::new();
        sub(&mut body, 9, 0x0100_0010, b"video-1");
        sub(&mut body, 8, 0x0100_0020, b"au");
        sub(&mut body, 9, 0x0100_0043, b"");
        let msg = aggregate(1000, body);
        let subs = split_aggregate(&msg).unwrap();
        let got: Vec<_> = subs
            .iter()
            .map(|m| (m.type_id, m.timestamp, m.stream_id, &m.payload[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (9, 1000, 5, &b"video-1"[..]),
                (8, 1016, 5, &b"au"[..]),
                (9, 1051, 5, &b""[..]),
            ]
        );
        // Zero-copy: the first sub-payload points into the aggregate's buffer.
        assert_eq!(subs[0].payload.as_ptr(), msg.payload[11..].as_ptr());
    }

    #[test]
    fn aggregate_timestamps_wrap() {
        let mut body = Vec::new();
        sub(&mut body, 8, 0xffff_fff0, b"a");
        sub(&mut body, 8, 0x0000_0010, b"b");
        let subs = split_aggregate(&aggregate(0xffff_fffa, body)).unwrap();
        assert_eq!(subs[0].timestamp, 0xffff_fffa);
        assert_eq!(subs[1].timestamp, 0x0000_001a);
    }

    #[test]
    fn aggregate_errors() {
        let mut good = Vec::new();
        sub(&mut good, 9, 0, b"hello");
        sub(&mut good, 9, 40, b"world");
        // Truncated at every point inside the second sub-message.
        let first_len = 11 + 5 + 4;
        for cut in first_len + 1..good.len() {
            let err = split_aggregate(&aggregate(0, good[..cut].to_vec())).unwrap_err();
            match err {
                MessageError::AggregateTruncated { index, offset, .. } => {
                    assert_eq!((index, offset), (1, first_len), "cut {cut}");
                }
                other => panic!("cut {cut}: {other}"),
            }
        }
        let err = split_aggregate(&aggregate(0, good[..first_len + 3].to_vec())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "aggregate truncated in sub-message 1 at offset 20: sub-header needs 11 bytes, 3 left"
        );
        let mut bad = good.clone();
        bad[first_len - 1] = 99;
        let err = split_aggregate(&aggregate(0, bad)).unwrap_err();
        assert_eq!(
            err,
            MessageError::AggregateBackPointer {
                index: 0,
                offset: 0,
                found: 99,
                expected: 16
            }
        );
        // A declared size far beyond the payload.
        let mut huge = good.clone();
        huge[1..4].copy_from_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(
            split_aggregate(&aggregate(0, huge)),
            Err(MessageError::AggregateTruncated {
                part: "data",
                needed: 0xff_ffff,
                ..
            })
        ));
        assert_eq!(
            split_aggregate(&control_msg(9, &good)).unwrap_err(),
            MessageError::NotAggregate { type_id: 9 }
        );
        assert_eq!(split_aggregate(&aggregate(0, vec![])).unwrap(), vec![]);
    }

    #[test]
    fn ack_tracker_cadence() {
        let mut ack = AckTracker::new(1000);
        assert_eq!(ack.on_received(999), None);
        assert_eq!(ack.on_received(1000), Some(1000));
        assert_eq!(ack.on_received(1999), None);
        assert_eq!(ack.on_received(2500), Some(2500));
        ack.set_window(100);
        assert_eq!(ack.on_received(2599), None);
        assert_eq!(ack.on_received(2600), Some(2600));
        ack.set_window(0);
        assert_eq!(ack.on_received(1 << 40), None);
    }

    #[test]
    fn ack_sequence_wraps_modulo_2_pow_32() {
        let mut ack = AckTracker::new(2_500_000);
        let total = (1u64 << 32) + 2_600_000;
        assert_eq!(ack.on_received(total), Some(2_600_000));
        assert_eq!(ack.on_received(total + 2_500_000), Some(5_100_000));
    }

    proptest! {
        #[test]
        fn parse_never_panics(type_id in 0u8..8, payload in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = Control::parse(&control_msg(type_id, &payload));
            let _ = split_aggregate(&control_msg(22, &payload));
        }

        #[test]
        fn aggregate_round_trip(
            agg_ts in any::<u32>(),
            subs in proptest::collection::vec((any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
        ) {
            let mut body = Vec::new();
            for (t, ts, data) in &subs {
                sub(&mut body, *t, *ts, data);
            }
            let split = split_aggregate(&aggregate(agg_ts, body)).unwrap();
            prop_assert_eq!(split.len(), subs.len());
            for (m, (t, ts, data)) in split.iter().zip(&subs) {
                prop_assert_eq!(m.type_id, *t);
                prop_assert_eq!(m.timestamp, agg_ts.wrapping_add(ts.wrapping_sub(subs[0].1)));
                prop_assert_eq!(&m.payload[..], &data[..]);
            }
        }
    }
}
