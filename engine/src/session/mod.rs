//! Client and server connection state machines, sans-IO (design.md §2).
//!
//! Both sessions follow the quinn-proto / str0m shape: feed bytes with `handle_input(bytes,
//! now)`, tell them about time with `handle_timeout(now)`, call their command methods, then
//! drain `poll_transmit` (bytes to write, in order) and `poll_event` until both return `None`,
//! and sleep until `poll_timeout` or the next input. Nothing here reads a clock or touches a
//! socket.
//!
//! Layering inside a session: handshake bytes first; once the handshake completes, every later
//! byte goes through the RTMPE cipher (when the handshake negotiated one), then the chunk
//! reader. Protocol control (chunk size, window acknowledgement, peer bandwidth, ping) is
//! answered inside the shared [`conn`] layer; commands and media reach the role-specific state
//! machines in [`client`] and [`server`].
//!
//! Invariant: after a fatal error (or `close`) a session is closed for good. It reports
//! `Closed` once with the reason, ignores further input, and keeps only the bytes already
//! queued (so a final `deleteStream` or `_error` can still be flushed).

pub mod caps;
pub mod client;
mod conn;
pub mod server;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use caps::EnhancedCaps;
pub use client::{ClientConfig, ClientEvent, ClientRole, ClientSession, MediaKind, StopCommands};
pub use server::{MediaCsids, ServerConfig, ServerEvent, ServerSession};

/// Why a session closed, or why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("handshake failed: {0}")]
    Handshake(#[from] crate::handshake::HandshakeError),
    #[error("handshake not complete after {timeout_ms} ms")]
    HandshakeTimeout { timeout_ms: u64 },
    #[error("no data from the peer for {idle_ms} ms (limit {timeout_ms} ms)")]
    IdleTimeout { idle_ms: u64, timeout_ms: u64 },
    #[error("chunk stream error: {0}")]
    Chunk(#[from] crate::chunk::ChunkError),
    #[error("bad message: {0}")]
    Message(#[from] crate::message::MessageError),
    #[error("bad command: {0}")]
    Command(#[from] crate::command::CommandError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("connect rejected by the server ({code}): {description}")]
    ConnectRejected { code: String, description: String },
    #[error("connect rejected locally: {0}")]
    RejectedLocally(String),
    #[error("the server closed the connection with a `close` command")]
    ServerClose,
    #[error("the peer closed the transport")]
    PeerClosed,
    #[error("closed by the application")]
    LocalClose,
    /// Returned by a command method called in the wrong state; does not close the session.
    #[error("{0}")]
    InvalidState(String),
    /// The session is already closed (the reason was reported in its `Closed` event).
    #[error("session closed: {0}")]
    Closed(Arc<SessionError>),
}

/// Connection statistics, with rtmp2's eight fields (peers.md §1.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Chunk size the peer uses (set by its Set Chunk Size).
    pub in_chunk_size: u32,
    /// Chunk size this side uses.
    pub out_chunk_size: u32,
    /// Window the peer asked us to acknowledge (its Window Ack Size).
    pub in_window_ack_size: u32,
    /// Window we asked the peer to acknowledge (our Window Ack Size).
    pub out_window_ack_size: u32,
    /// Bytes received, handshake included.
    pub in_bytes_total: u64,
    /// Bytes handed out by `poll_transmit`, handshake included, plus bytes reported with
    /// `record_shared_output`.
    pub out_bytes_total: u64,
    /// Received bytes we have acknowledged (last sequence number sent).
    pub in_bytes_acked: u64,
    /// Sent bytes the peer has acknowledged (last sequence number received).
    pub out_bytes_acked: u64,
}
