//! The part both roles share once the handshake is done: cipher, chunk reader and writer,
//! acknowledgements, protocol control and user control housekeeping, output queue, stats.
//!
//! Outgoing chunk bytes accumulate in plaintext and are encrypted only when handed out, in
//! order, so the RC4 keystream position always matches the byte position on the wire.
//! Handshake bytes bypass the cipher (they are sent before it exists).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{SessionError, Stats};
use crate::chunk::{ChunkLimits, ChunkReader, ChunkWriter};
use crate::handshake::Rc4Pair;
use crate::message::{AckTracker, Control, Message, UserControl, msg_type, split_aggregate};

/// Chunk stream id for protocol control and user control messages (protocol-facts §5.4).
pub(crate) const CSID_CONTROL: u32 = 2;

/// Window used when the peer never sent a Window Ack Size (rtmp2, FFmpeg, librtmp default).
pub(crate) const DEFAULT_WINDOW: u32 = 2_500_000;

/// What the connection layer hands up to a role's state machine.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// Command, data, audio, video (aggregates already split) or shared object message.
    Message(Message),
    /// User control events the roles care about (everything except ping, answered here).
    User(UserControl),
}

pub(crate) struct Conn {
    reader: ChunkReader,
    writer: ChunkWriter,
    ack: Option<AckTracker>,
    /// Boxed: the two RC4 states (~0.5 KiB) only exist on RTMPE connections.
    cipher: Option<Box<Rc4Pair>>,
    pending: BytesMut,
    ready: VecDeque<Bytes>,
    inbound: VecDeque<Inbound>,
    window_sent: Option<u32>,
    pub(crate) stats: Stats,
}

impl Conn {
    pub(crate) fn new(limits: ChunkLimits) -> Self {
        Self {
            reader: ChunkReader::new(limits),
            writer: ChunkWriter::new(),
            ack: None,
            cipher: None,
            pending: BytesMut::new(),
            ready: VecDeque::new(),
            inbound: VecDeque::new(),
            window_sent: None,
            stats: Stats {
                in_chunk_size: 128,
                out_chunk_size: 128,
                ..Stats::default()
            },
        }
    }

    pub(crate) fn set_cipher(&mut self, cipher: Option<Rc4Pair>) {
        self.cipher = cipher.map(Box::new);
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Handshake bytes: go out unencrypted, after anything queued before them.
    pub(crate) fn push_raw(&mut self, b: Bytes) {
        self.flush_pending();
        self.stats.out_bytes_total += b.len() as u64;
        self.ready.push_back(b);
    }

    pub(crate) fn count_handshake_input(&mut self, n: usize) {
        self.stats.in_bytes_total += n as u64;
    }

    /// Chunk-stream bytes from the peer (still encrypted for RTMPE).
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.stats.in_bytes_total += data.len() as u64;
        match &mut self.cipher {
            Some(c) => {
                let mut buf = data.to_vec();
                c.decrypt(&mut buf);
                self.reader.feed(&buf);
            }
            None => self.reader.feed(data),
        }
    }

    pub(crate) fn send(&mut self, csid: u32, msg: &Message) {
        self.writer.write_message(csid, msg, &mut self.pending);
    }

    pub(crate) fn send_control(&mut self, c: Control) {
        let m = c.to_message();
        self.send(CSID_CONTROL, &m);
    }

    /// Sends Set Chunk Size with the old size, then switches the writer.
    pub(crate) fn set_out_chunk_size(&mut self, size: u32) {
        self.send_control(Control::SetChunkSize(size));
        self.writer.set_chunk_size(size);
        self.stats.out_chunk_size = size;
    }

    pub(crate) fn out_chunk_size(&self) -> u32 {
        self.writer.chunk_size()
    }

    /// Sends Window Ack Size unless that very value was the last one sent (rtmp2 1.27.2: some
    /// servers drop clients that repeat it).
    pub(crate) fn send_window_ack(&mut self, window: u32) {
        if self.window_sent != Some(window) {
            self.window_sent = Some(window);
            self.stats.out_window_ack_size = window;
            self.send_control(Control::WindowAckSize(window));
        }
    }

    /// True once any Window Ack Size was sent.
    pub(crate) fn window_ack_sent(&self) -> bool {
        self.window_sent.is_some()
    }

    /// Sends an Acknowledgement when one is due for the bytes received so far.
    pub(crate) fn check_ack(&mut self) {
        let total = self.stats.in_bytes_total;
        if let Some(seq) = self.ack.as_mut().and_then(|a| a.on_received(total)) {
            self.stats.in_bytes_acked = u64::from(seq);
            self.send_control(Control::Acknowledgement(seq));
        }
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut b = self.pending.split();
        if let Some(c) = &mut self.cipher {
            c.encrypt(&mut b);
        }
        self.stats.out_bytes_total += b.len() as u64;
        self.ready.push_back(b.freeze());
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.ready.is_empty() {
            self.flush_pending();
        }
        self.ready.pop_front()
    }

    /// Next message for the role, answering protocol control on the way.
    pub(crate) fn next(&mut self) -> Result<Option<Inbound>, SessionError> {
        loop {
            if let Some(i) = self.inbound.pop_front() {
                return Ok(Some(i));
            }
            let Some(msg) = self.reader.read_message()? else {
                return Ok(None);
            };
            self.stats.in_chunk_size = self.reader.chunk_size();
            if msg.type_id == msg_type::AGGREGATE {
                for m in split_aggregate(&msg)? {
                    // An aggregate only ever carries media and data; anything else inside
                    // is dropped rather than acted on.
                    if matches!(
                        m.type_id,
                        msg_type::AUDIO
                            | msg_type::VIDEO
                            | msg_type::DATA_AMF0
                            | msg_type::DATA_AMF3
                    ) {
                        self.inbound.push_back(Inbound::Message(m));
                    }
                }
                continue;
            }
            match Control::parse(&msg)? {
                None => return Ok(Some(Inbound::Message(msg))),
                Some(c) => {
                    if let Some(u) = self.on_control(c) {
                        return Ok(Some(Inbound::User(u)));
                    }
                }
            }
        }
    }

    fn on_control(&mut self, c: Control) -> Option<UserControl> {
        match c {
            // The reader already applied Set Chunk Size and Abort.
            Control::SetChunkSize(_) | Control::Abort(_) => None,
            Control::Acknowledgement(seq) => {
                self.stats.out_bytes_acked = u64::from(seq);
                None
            }
            Control::WindowAckSize(w) => {
                self.stats.in_window_ack_size = w;
                // Acknowledge at half the window, as FFmpeg and SRS do: a sender that stalls
                // when a full window is unacknowledged never waits on us.
                let cadence = (w / 2).max(1);
                match &mut self.ack {
                    Some(a) => a.set_window(cadence),
                    None => self.ack = Some(AckTracker::new(cadence)),
                }
                None
            }
            Control::SetPeerBandwidth { window, .. } => {
                // All limit types are treated alike: the only observable duty is to answer
                // with our Window Ack Size when the window changed.
                self.send_window_ack(window);
                None
            }
            Control::UserControl(UserControl::PingRequest(t)) => {
                self.send_control(Control::UserControl(UserControl::PingResponse(t)));
                None
            }
            Control::UserControl(u) => Some(u),
        }
    }
}
