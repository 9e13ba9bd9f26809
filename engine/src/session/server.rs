//! The server side of a connection (protocol-facts §7.2–7.3): answers the handshake, reports
//! `connect`, `publish` and `play` as requests the application decides on, and carries media
//! both ways.
//!
//! Decisions are methods: [`ServerSession::accept_connect`] / [`ServerSession::reject_connect`],
//! `accept_publish` / `reject_publish`, `accept_play` / `reject_play`. Housekeeping commands
//! (`releaseStream`, `FCPublish`, `FCUnpublish`, `createStream`, `deleteStream`,
//! `closeStream`) are answered here.
//!
//! Zero-copy fan-out: a relay encodes each media message once with
//! [`crate::chunk::encode_message_full`] on one of [`ServerSession::media_csids`] at
//! [`ServerSession::chunk_size`] and writes the same `Bytes` to every player for which
//! [`ServerSession::can_take_shared_bytes`] is true, after draining that session's
//! `poll_transmit` (so shared bytes only ever land between whole messages). The session's own
//! writer never uses those csids, and shared bytes carry full type-0 headers, so neither side
//! disturbs the other's header compression. Report what was written with
//! [`ServerSession::record_shared_output`] to keep the stats right.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::client::leading_string;
use super::conn::{Conn, Inbound};
use super::{SessionError, Stats};
use crate::Millis;
use crate::amf0::Value;
use crate::chunk::ChunkLimits;
use crate::command::{self, Command, Connect, NetCommand, Play, Status, StatusCode};
use crate::handshake::{ServerHandshake, ServerHandshakeConfig};
use crate::message::{Control, Message, UserControl, msg_type};

mod incoming;

const CSID_COMMAND: u32 = 3;
const CSID_STREAM: u32 = 5;
const CSID_AUDIO: u32 = 6;
const CSID_VIDEO: u32 = 7;
const CSID_DATA: u32 = 8;

/// Chunk stream ids the session's own writer never uses, for media encoded once and shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaCsids {
    pub audio: u32,
    pub video: u32,
    pub data: u32,
}

const SHARED_CSIDS: MediaCsids = MediaCsids {
    audio: 20,
    video: 21,
    data: 22,
};

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub handshake: ServerHandshakeConfig,
    /// Outgoing chunk size, announced on accept_connect (default 4096).
    pub chunk_size: u32,
    /// Window Ack Size and Set Peer Bandwidth window (default 2 500 000).
    pub window_ack_size: u32,
    /// `fmsVer` in the connect `_result` (default "FMS/3,5,7,7009").
    pub fms_ver: String,
    /// `capabilities` in the connect `_result` (default 31).
    pub capabilities: f64,
    pub chunk_limits: ChunkLimits,
    /// Streams a client may create on one connection (default 8).
    pub max_streams: u32,
    /// Close when the handshake is not done this long after creation (default 10 s).
    pub handshake_timeout_ms: Option<u64>,
    /// Send a PingRequest after this long without input (default 60 s, like nginx).
    pub ping_interval_ms: Option<u64>,
    /// Close after this long without input (default 90 s: nginx's 60 s ping + 30 s timeout).
    pub idle_timeout_ms: Option<u64>,
    /// Send the data message `onStatus{NetStream.Data.Start}` on accept_play (default off:
    /// FFmpeg shows an empty data stream for it).
    pub send_data_start: bool,
    /// Enhanced RTMP capabilities put into the connect `_result` for clients that announced
    /// theirs (default `None`: a legacy answer).
    pub enhanced: Option<super::EnhancedCaps>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            handshake: ServerHandshakeConfig::default(),
            chunk_size: 4096,
            window_ack_size: super::conn::DEFAULT_WINDOW,
            fms_ver: "FMS/3,5,7,7009".into(),
            capabilities: 31.0,
            chunk_limits: ChunkLimits::default(),
            max_streams: 8,
            handshake_timeout_ms: Some(10_000),
            ping_interval_ms: Some(60_000),
            idle_timeout_ms: Some(90_000),
            send_data_start: false,
            enhanced: None,
        }
    }
}

/// What the server reports.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// Answer with `accept_connect` or `reject_connect`.
    ConnectRequest {
        /// `app` without its query.
        app: String,
        /// The part of `app` after `?` (auth parameters), without the `?`.
        query: Option<String>,
        tc_url: Option<String>,
        /// The whole connect command, boxed to keep the event small.
        connect: Box<Connect>,
    },
    /// Answer with `accept_publish` or `reject_publish`.
    PublishRequest {
        stream_id: u32,
        /// As sent, including any `?query`.
        name: String,
        kind: String,
    },
    /// Answer with `accept_play` or `reject_play`.
    PlayRequest {
        stream_id: u32,
        play: Play,
    },
    /// Audio, video or data from an accepted publisher. Data has `@setDataFrame` stripped, so
    /// metadata is a plain `onMetaData, value` body ready for players.
    Media {
        stream_id: u32,
        message: Message,
    },
    /// The publisher on `stream_id` stopped (FCUnpublish, closeStream or deleteStream).
    Unpublished {
        stream_id: u32,
    },
    /// A player on `stream_id` stopped (closeStream or deleteStream).
    PlayStopped {
        stream_id: u32,
    },
    StreamDeleted {
        stream_id: u32,
    },
    /// A command the session does not act on.
    Command {
        stream_id: u32,
        command: Command,
    },
    Closed(Arc<SessionError>),
}

#[derive(Debug, Clone, PartialEq)]
enum StreamState {
    Created,
    PublishRequested(String),
    Publishing(String),
    PlayRequested { name: String, reset: bool },
    Playing(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Handshake,
    AwaitConnect,
    ConnectRequested { txn: f64, object_encoding: f64 },
    Connected,
}

/// A server connection. See the module docs.
pub struct ServerSession {
    config: ServerConfig,
    /// Boxed: ~1 KiB that is freed once the handshake is done, not kept in every
    /// connection for its lifetime.
    handshake: Option<Box<ServerHandshake>>,
    conn: Conn,
    phase: Phase,
    streams: Vec<(u32, StreamState)>,
    next_stream: u32,
    events: VecDeque<ServerEvent>,
    closed: Option<Arc<SessionError>>,
    handshake_deadline: Option<Millis>,
    last_input: Millis,
    next_ping: Option<Millis>,
    /// What the client's `connect` announced (Enhanced RTMP).
    client_caps: Option<super::EnhancedCaps>,
    /// Commands that came after the connect while the application had not answered it yet
    /// (a client that does not wait for `_result`, or whose answer a slow application is still
    /// deciding): run once the connect is accepted, at most [`MAX_EARLY_COMMANDS`].
    early: VecDeque<(u32, Command)>,
}

/// Commands kept while a connect waits for its answer; one more is a protocol violation.
const MAX_EARLY_COMMANDS: usize = 16;

impl ServerSession {
    /// The Enhanced RTMP capabilities the client announced in `connect`; `None` for a legacy
    /// client (or before its connect).
    pub fn client_caps(&self) -> Option<&super::EnhancedCaps> {
        self.client_caps.as_ref()
    }

    /// Waits for C0+C1.
    pub fn new(config: ServerConfig, now: Millis, rng: &mut dyn rand::RngCore) -> Self {
        let hs = ServerHandshake::new(config.handshake.clone(), now as u32, rng);
        Self {
            handshake_deadline: config.handshake_timeout_ms.map(|t| now.saturating_add(t)),
            next_ping: config.ping_interval_ms.map(|p| now.saturating_add(p)),
            conn: Conn::new(config.chunk_limits.clone()),
            config,
            handshake: Some(Box::new(hs)),
            phase: Phase::Handshake,
            streams: Vec::new(),
            next_stream: 1,
            events: VecDeque::new(),
            closed: None,
            last_input: now,
            client_caps: None,
            early: VecDeque::new(),
        }
    }

    /// Bytes read from the transport.
    pub fn handle_input(&mut self, data: &[u8], now: Millis) {
        if self.closed.is_some() {
            return;
        }
        self.last_input = now;
        self.next_ping = self.config.ping_interval_ms.map(|p| now.saturating_add(p));
        let mut data = data;
        if let Some(hs) = &mut self.handshake {
            let used = match hs.handle_input(data) {
                Ok(n) => n.min(data.len()),
                Err(e) => return self.fail(e.into()),
            };
            self.conn.count_handshake_input(used);
            data = &data[used..];
            while let Some(b) = hs.poll_transmit() {
                self.conn.push_raw(b);
            }
            if !hs.is_complete() {
                return;
            }
            let outcome = self.handshake.take().expect("checked above").into_outcome();
            self.conn.set_cipher(outcome.cipher);
            self.handshake_deadline = None;
            self.phase = Phase::AwaitConnect;
        }
        self.conn.feed(data);
        self.process();
    }

    /// The transport reached end of file.
    pub fn handle_peer_closed(&mut self) {
        self.fail(SessionError::PeerClosed);
    }

    /// Fires deadlines that have passed: handshake timeout, ping, idle timeout.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.closed.is_some() {
            return;
        }
        if let Some(d) = self.handshake_deadline
            && now >= d
        {
            let timeout_ms = self.config.handshake_timeout_ms.unwrap_or(0);
            return self.fail(SessionError::HandshakeTimeout { timeout_ms });
        }
        if let Some(t) = self.config.idle_timeout_ms
            && now.saturating_sub(self.last_input) >= t
        {
            let idle_ms = now - self.last_input;
            return self.fail(SessionError::IdleTimeout {
                idle_ms,
                timeout_ms: t,
            });
        }
        if let Some(p) = self.next_ping
            && now >= p
            && self.handshake.is_none()
        {
            self.conn
                .send_control(Control::UserControl(UserControl::PingRequest(now as u32)));
            self.next_ping = self.config.ping_interval_ms.map(|i| now.saturating_add(i));
        }
    }

    /// Next bytes to write. Worth polling again after any input, timeout or command.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    /// Next event. Worth polling again after any input or timeout.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Earliest of the handshake deadline, the next ping and the idle deadline.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.closed.is_some() {
            return None;
        }
        let idle = self
            .config
            .idle_timeout_ms
            .map(|t| self.last_input.saturating_add(t));
        let ping = if self.handshake.is_none() {
            self.next_ping
        } else {
            None
        };
        [self.handshake_deadline, idle, ping]
            .into_iter()
            .flatten()
            .min()
    }

    /// Statistics (rtmp2's fields).
    pub fn stats(&self) -> Stats {
        self.conn.stats
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<Arc<SessionError>> {
        self.closed.clone()
    }

    /// Closes the session; bytes already queued stay available in `poll_transmit`.
    pub fn close(&mut self) {
        self.fail(SessionError::LocalClose);
    }

    /// Accepts the pending connect: Window Ack Size, Set Peer Bandwidth, StreamBegin(0), Set
    /// Chunk Size, then `_result` with fmsVer/capabilities and `NetConnection.Connect.Success`.
    ///
    /// On an RTMPE connection Set Chunk Size waits for a play instead (see
    /// [`Self::accept_play`]): FFmpeg (5.1 to 9) publishing over RTMPE echoes the server's Set
    /// Chunk Size back, and its RC4 write encrypts the received message in place before it reads
    /// the value, so it takes a random chunk size for both directions ("Incorrect chunk size"
    /// when negative, misread chunks when positive). A publisher only ever gets small command
    /// messages, for which 128 serves.
    pub fn accept_connect(&mut self) -> Result<(), SessionError> {
        self.check_open()?;
        let Phase::ConnectRequested {
            txn,
            object_encoding,
        } = self.phase
        else {
            return Err(SessionError::InvalidState(
                "accept_connect without a pending connect".into(),
            ));
        };
        let w = self.config.window_ack_size;
        self.conn.send_window_ack(w);
        self.conn.send_control(Control::SetPeerBandwidth {
            window: w,
            limit_type: 2,
        });
        self.conn
            .send_control(Control::UserControl(UserControl::StreamBegin(0)));
        if !self.conn.is_encrypted() {
            self.conn.set_out_chunk_size(self.config.chunk_size);
        }
        let mut props = vec![
            ("fmsVer".into(), Value::String(self.config.fms_ver.clone())),
            (
                "capabilities".into(),
                Value::Number(self.config.capabilities),
            ),
            ("mode".into(), Value::Number(1.0)),
        ];
        // Answered only to a client that announced its own: a legacy client gets the answer
        // it always got.
        if let (Some(ours), Some(_)) = (&self.config.enhanced, &self.client_caps) {
            props.extend(ours.to_properties());
        }
        let props = Value::Object(props);
        let info = Status::new(StatusCode::ConnectSuccess, "Connection succeeded.")
            .with("objectEncoding", Value::Number(object_encoding));
        self.send_cmd(0, &command::result(txn, props, vec![info.to_value()]));
        self.phase = Phase::Connected;
        while let Some((msg_stream, cmd)) = self.early.pop_front() {
            if let Err(e) = self.on_command(msg_stream, cmd) {
                self.fail(e);
                return Ok(());
            }
        }
        // What came after those commands waits behind them.
        self.process();
        Ok(())
    }

    /// Rejects the pending connect with `_error` `NetConnection.Connect.Rejected` carrying
    /// `description` (auth challenges go there), then the `close` RPC; the session closes.
    pub fn reject_connect(&mut self, description: &str) -> Result<(), SessionError> {
        self.check_open()?;
        let Phase::ConnectRequested { txn, .. } = self.phase else {
            return Err(SessionError::InvalidState(
                "reject_connect without a pending connect".into(),
            ));
        };
        let st = Status::new(StatusCode::ConnectRejected, description);
        self.send_cmd(0, &command::error(txn, &st));
        self.send_cmd(0, &command::close());
        self.fail(SessionError::RejectedLocally(description.to_owned()));
        Ok(())
    }

    /// Accepts a publish: StreamBegin, onStatus `NetStream.Publish.Start`, onFCPublish.
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(StreamState::PublishRequested(name)) = self.stream(stream_id).cloned() else {
            return Err(self.no_request("accept_publish", stream_id));
        };
        self.conn
            .send_control(Control::UserControl(UserControl::StreamBegin(stream_id)));
        let st = Status::new(StatusCode::PublishStart, format!("{name} is now published"))
            .with("details", Value::String(name.clone()));
        self.send_cmd(stream_id, &command::on_status(&st));
        self.send_cmd(0, &command::on_fc_publish(&st));
        self.set_stream(stream_id, StreamState::Publishing(name));
        Ok(())
    }

    /// Rejects a publish with onStatus `NetStream.Publish.BadName`.
    pub fn reject_publish(
        &mut self,
        stream_id: u32,
        description: &str,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(StreamState::PublishRequested(_)) = self.stream(stream_id) else {
            return Err(self.no_request("reject_publish", stream_id));
        };
        let st = Status::new(StatusCode::PublishBadName, description);
        self.send_cmd(stream_id, &command::on_status(&st));
        self.set_stream(stream_id, StreamState::Created);
        Ok(())
    }

    /// Ends a publish from the server's side, because what takes the stream failed:
    /// onStatus `NetStream.Failed` (level error) with `description`, which makes FFmpeg and
    /// librtmp stop publishing and report it. Media that still arrives on the stream is
    /// ignored.
    pub fn fail_publish(&mut self, stream_id: u32, description: &str) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(StreamState::Publishing(name)) = self.stream(stream_id).cloned() else {
            return Err(SessionError::InvalidState(format!(
                "fail_publish on stream {stream_id}, which is not publishing"
            )));
        };
        let st =
            Status::new(StatusCode::StreamFailed, description).with("details", Value::String(name));
        self.send_cmd(stream_id, &command::on_status(&st));
        self.set_stream(stream_id, StreamState::Created);
        Ok(())
    }

    /// Asks the client to reconnect (Enhanced RTMP v2): onStatus
    /// `NetConnection.Connect.ReconnectRequest` on the connection (stream 0, transaction 0),
    /// with `tcUrl` when the stream moves elsewhere (absent: the same place). A client that
    /// announced capsEx Reconnect connects there, then leaves this connection.
    pub fn request_reconnect(
        &mut self,
        tc_url: Option<&str>,
        description: &str,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        if self.phase != Phase::Connected {
            return Err(SessionError::InvalidState(
                "request_reconnect before the connect was accepted".into(),
            ));
        }
        let mut st = Status::new(StatusCode::ConnectReconnectRequest, description);
        if let Some(url) = tc_url {
            st = st.with("tcUrl", Value::String(url.to_owned()));
        }
        self.send_cmd(0, &command::on_status(&st));
        Ok(())
    }

    /// Accepts a play: StreamBegin, `NetStream.Play.Reset` (when the client asked or did not
    /// say), `NetStream.Play.Start`, `|RtmpSampleAccess`, and optionally Data.Start. The
    /// stream can then take media, from `send_media` or as shared bytes.
    pub fn accept_play(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(StreamState::PlayRequested { name, reset }) = self.stream(stream_id).cloned()
        else {
            return Err(self.no_request("accept_play", stream_id));
        };
        // Deferred from the connect on RTMPE (see accept_connect).
        if self.conn.out_chunk_size() != self.config.chunk_size {
            self.conn.set_out_chunk_size(self.config.chunk_size);
        }
        self.conn
            .send_control(Control::UserControl(UserControl::StreamBegin(stream_id)));
        let details = Value::String(name.clone());
        if reset {
            let st = Status::new(
                StatusCode::PlayReset,
                format!("Playing and resetting {name}."),
            )
            .with("details", details.clone());
            self.send_cmd(stream_id, &command::on_status(&st));
        }
        let st = Status::new(StatusCode::PlayStart, format!("Started playing {name}."))
            .with("details", details);
        self.send_cmd(stream_id, &command::on_status(&st));
        let access = command::data_message(
            stream_id,
            0,
            &[
                Value::String("|RtmpSampleAccess".into()),
                Value::Boolean(true),
                Value::Boolean(true),
            ],
        );
        self.conn.send(CSID_STREAM, &access);
        if self.config.send_data_start {
            let st = Status::new(StatusCode::DataStart, "");
            let m = command::data_message(
                stream_id,
                0,
                &[Value::String("onStatus".into()), st.to_value()],
            );
            self.conn.send(CSID_STREAM, &m);
        }
        self.set_stream(stream_id, StreamState::Playing(name));
        Ok(())
    }

    /// Rejects a play with onStatus `NetStream.Play.StreamNotFound`.
    pub fn reject_play(&mut self, stream_id: u32, description: &str) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(StreamState::PlayRequested { .. }) = self.stream(stream_id) else {
            return Err(self.no_request("reject_play", stream_id));
        };
        let st = Status::new(StatusCode::PlayStreamNotFound, description);
        self.send_cmd(stream_id, &command::on_status(&st));
        self.set_stream(stream_id, StreamState::Created);
        Ok(())
    }

    /// Sends one media message (audio, video or data) to the player on `stream_id`, through
    /// this session's own writer (its stream id is replaced by `stream_id`).
    pub fn send_media(&mut self, stream_id: u32, message: &Message) -> Result<(), SessionError> {
        self.check_open()?;
        if !matches!(self.stream(stream_id), Some(StreamState::Playing(_))) {
            return Err(SessionError::InvalidState(format!(
                "send_media on stream {stream_id}, which is not playing"
            )));
        }
        let csid = match message.type_id {
            msg_type::AUDIO => CSID_AUDIO,
            msg_type::VIDEO => CSID_VIDEO,
            _ => CSID_DATA,
        };
        let m = Message {
            stream_id,
            ..message.clone()
        };
        self.conn.send(csid, &m);
        Ok(())
    }

    /// Ends playback on `stream_id`: StreamEOF, `NetStream.Play.UnpublishNotify`,
    /// `NetStream.Play.Stop`.
    pub fn end_stream(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(StreamState::Playing(name)) = self.stream(stream_id).cloned() else {
            return Err(SessionError::InvalidState(format!(
                "end_stream on stream {stream_id}, which is not playing"
            )));
        };
        self.conn
            .send_control(Control::UserControl(UserControl::StreamEof(stream_id)));
        let st = Status::new(
            StatusCode::PlayUnpublishNotify,
            format!("{name} is now unpublished."),
        )
        .with("details", Value::String(name.clone()));
        self.send_cmd(stream_id, &command::on_status(&st));
        let st = Status::new(StatusCode::PlayStop, format!("Stopped playing {name}."))
            .with("details", Value::String(name));
        self.send_cmd(stream_id, &command::on_status(&st));
        self.set_stream(stream_id, StreamState::Created);
        Ok(())
    }

    /// Chunk stream ids reserved for shared, pre-encoded media (never used by this session).
    pub fn media_csids(&self) -> MediaCsids {
        SHARED_CSIDS
    }

    /// The chunk size shared bytes must be encoded with: the size this session announced.
    pub fn chunk_size(&self) -> u32 {
        self.conn.out_chunk_size()
    }

    /// True when bytes from [`crate::chunk::encode_message_full`] (at [`Self::chunk_size`], on
    /// a [`Self::media_csids`] csid, with message stream id `stream_id`) may be written
    /// straight to this connection: `stream_id` is playing, the session is open, and the
    /// connection is not RTMPE (whose per-connection cipher rules out shared bytes).
    pub fn can_take_shared_bytes(&self, stream_id: u32) -> bool {
        self.closed.is_none()
            && !self.conn.is_encrypted()
            && matches!(self.stream(stream_id), Some(StreamState::Playing(_)))
    }

    /// Counts bytes the application wrote to this connection outside `poll_transmit`.
    pub fn record_shared_output(&mut self, len: usize) {
        self.conn.stats.out_bytes_total += len as u64;
    }

    // ---- internals --------------------------------------------------------------------------

    fn no_request(&self, what: &str, stream_id: u32) -> SessionError {
        SessionError::InvalidState(format!(
            "{what} on stream {stream_id}, which has no pending request (state {:?})",
            self.stream(stream_id)
        ))
    }

    fn stream(&self, id: u32) -> Option<&StreamState> {
        self.streams.iter().find(|(i, _)| *i == id).map(|(_, s)| s)
    }

    fn set_stream(&mut self, id: u32, st: StreamState) {
        if let Some(s) = self.streams.iter_mut().find(|(i, _)| *i == id) {
            s.1 = st;
        }
    }

    fn check_open(&self) -> Result<(), SessionError> {
        match &self.closed {
            Some(r) => Err(SessionError::Closed(r.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: SessionError) {
        if self.closed.is_some() {
            return;
        }
        let e = Arc::new(e);
        self.closed = Some(e.clone());
        self.events.push_back(ServerEvent::Closed(e));
    }

    fn send_cmd(&mut self, stream_id: u32, cmd: &Command) {
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        self.conn.send(csid, &cmd.to_message(stream_id));
    }
}
