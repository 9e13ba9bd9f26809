//! RTMP messages: the unit the chunk stream carries, the protocol control messages (types
//! 1, 2, 3, 5, 6), user control events (type 4) and aggregate messages (type 22).
//!
//! STUB: the type definitions below are the agreed interface; bodies are filled in by the
//! chunk/message work.

use bytes::Bytes;

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
