//! rsrtmp-engine: the sans-IO RTMP engine under the rsrtmp GStreamer plugin.
//!
//! Everything here is pure protocol code. Bytes and time go in; bytes, events and the next
//! deadline come out. Nothing in this crate opens a socket, spawns a thread, reads a clock or
//! depends on GStreamer, GLib or tokio: time is always a parameter (`now`, milliseconds on a
//! monotonic clock chosen by the caller). That is what lets the same code run under the tokio
//! drivers, the benchmarks, the fuzzers and byte-by-byte scenario tests.
//!
//! Layout:
//! - [`amf0`], [`amf3`]: Action Message Format values and codecs, with depth and size limits.
//! - [`chunk`]: the chunk stream reader and writer, with protocol limits.
//! - [`message`]: message types, protocol control and user control messages, aggregates.
//! - [`handshake`]: plain, FP9 digest and RTMPE handshakes, both roles.
//! - [`command`]: NetConnection / NetStream commands and status codes, typed.
//! - [`session`]: client and server connection state machines.
//! - [`flv`]: FLV header and tag codec and a streaming FLV parser.
//! - [`eflv`]: Enhanced FLV packets: every track of a tag body, parsed and written.
//! - [`legacy`]: what a legacy FLV reader can take of an Enhanced RTMP stream.
//! - [`codecs`]: codec configuration records ↔ stream parameters (hvcC, av1C, vpcC,
//!   OpusHead, FLAC STREAMINFO, AudioSpecificConfig, AC-3/MP3 headers, colorInfo).
//! - [`url`]: RTMP URL parsing for all six schemes.

pub mod amf0;
pub mod amf3;
pub mod auth;
pub mod chunk;
pub mod codecs;
pub mod command;
pub mod eflv;
pub mod flv;
pub mod handshake;
pub mod legacy;
pub mod message;
pub mod session;
pub mod tracks;
pub mod url;

/// Milliseconds on a monotonic clock chosen by the caller. The engine never reads a clock;
/// every method that needs the time takes one of these.
pub type Millis = u64;
