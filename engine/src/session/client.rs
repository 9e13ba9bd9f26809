//! The client side of a connection: publish or play one stream (the rtmp2src / rtmp2sink
//! role, peers.md §1.5, protocol-facts §7.2–7.3).
//!
//! Flow: handshake → Set Chunk Size → `connect` → [`ClientEvent::Connected`]; then, once
//! [`ClientSession::publish`] or [`ClientSession::play`] was called (before or after the
//! connect), the publish path (`releaseStream`, `FCPublish`, `createStream`, `publish`) or the
//! play path (Window Ack Size, `createStream`, optional `FCSubscribe`, `play`,
//! SetBufferLength). A rejected `connect` (auth, bad app) is reported with the server's
//! description and closes the session: every auth step is a new connection.
//!
//! onStatus events: `NetStream.Publish.Start` → [`ClientEvent::PublishStarted`],
//! `NetStream.Play.Start` → [`ClientEvent::PlayStarted`], an error-level status while the
//! stream is being set up → [`ClientEvent::StreamRejected`], everything else →
//! [`ClientEvent::Status`].

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::conn::{Conn, Inbound};
use super::{SessionError, Stats};
use crate::Millis;
use crate::amf0::Value;
use crate::chunk::ChunkLimits;
use crate::command::{self, Command, NetCommand, Status, StatusCode};
use crate::handshake::{ClientHandshake, ClientMode};
use crate::message::{Control, Message, UserControl, msg_type};

const CSID_COMMAND: u32 = 3;
const CSID_DATA: u32 = 4;
const CSID_AUDIO: u32 = 5;
const CSID_VIDEO: u32 = 6;
/// Stream-level commands (publish, play, closeStream) get their own csid, as FFmpeg does, so
/// their headers never compress against NetConnection traffic on another message stream.
const CSID_STREAM_COMMAND: u32 = 8;

/// What the client will do after connecting; it changes the `connect` command object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    Publish,
    Play,
}

/// Client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `app` of the connect command object (with any auth query appended).
    pub app: String,
    /// `tcUrl` (with any auth query appended).
    pub tc_url: String,
    /// `flashVer`; omitted when `None`.
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    pub role: ClientRole,
    pub handshake: ClientMode,
    /// Outgoing chunk size, announced right after the handshake (default 4096).
    pub chunk_size: u32,
    /// Window Ack Size sent on the play path when the server sent no Set Peer Bandwidth.
    pub window_ack_size: u32,
    /// SetBufferLength sent after `play`, in ms (rtmp2: 30000).
    pub buffer_length_ms: u32,
    /// Values appended after the connect command object (librtmp `conn=`).
    pub extra_connect_args: Vec<Value>,
    /// `objectEncoding` in the connect object; omitted when `None`.
    pub object_encoding: Option<f64>,
    pub chunk_limits: ChunkLimits,
    /// C1 time field; defaults to `now` truncated to 32 bits.
    pub c1_time: Option<u32>,
    /// The session closes when the handshake is not done this long after creation.
    pub handshake_timeout_ms: Option<u64>,
    /// Send `FCSubscribe(name)` on the play path (FFmpeg does for live streams).
    pub fc_subscribe: bool,
    /// Enhanced RTMP capabilities announced in `connect` (`fourCcList`, the FourCcInfoMaps,
    /// `capsEx`); `None` sends a legacy connect.
    pub enhanced: Option<super::EnhancedCaps>,
}

impl ClientConfig {
    /// A configuration with the defaults above for `app` and `tc_url`.
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>, role: ClientRole) -> Self {
        Self {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: Some("LNX 10,0,32,18".into()),
            swf_url: None,
            page_url: None,
            role,
            handshake: ClientMode::Plain,
            chunk_size: 4096,
            window_ack_size: super::conn::DEFAULT_WINDOW,
            buffer_length_ms: 30_000,
            extra_connect_args: Vec::new(),
            object_encoding: None,
            chunk_limits: ChunkLimits::default(),
            c1_time: None,
            handshake_timeout_ms: Some(10_000),
            fc_subscribe: false,
            enhanced: None,
        }
    }
}

/// Which kind of media `send_media` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    /// AMF0 data message (type 18), e.g. `onMetaData`.
    Data,
}

/// Which teardown commands [`ClientSession::stop`] sends (rtmp2's `stop-commands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopCommands {
    pub fc_unpublish: bool,
    pub close_stream: bool,
    pub delete_stream: bool,
}

impl Default for StopCommands {
    /// FCUnpublish + deleteStream, like FFmpeg and librtmp.
    fn default() -> Self {
        Self {
            fc_unpublish: true,
            close_stream: false,
            delete_stream: true,
        }
    }
}

/// What the client reports.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// `connect` succeeded. `properties` is the `_result` command object (fmsVer,
    /// capabilities, ...); `info` its status object.
    Connected {
        properties: Vec<(String, Value)>,
        info: Option<Status>,
    },
    /// `connect` got `_error`; the description carries auth challenges (see [`crate::auth`]).
    /// A `Closed` event follows.
    ConnectRejected {
        code: String,
        description: String,
    },
    PublishStarted {
        stream_id: u32,
    },
    PlayStarted {
        stream_id: u32,
    },
    /// An error-level status (BadName, StreamNotFound, ...) or `_error` while setting up the
    /// stream.
    StreamRejected(Status),
    /// Any other onStatus (Play.Reset, PublishNotify, Play.Stop, ...), and failed optional
    /// calls (`_error` to releaseStream / FCPublish / FCSubscribe), on `stream_id`.
    Status {
        stream_id: u32,
        status: Status,
    },
    /// Audio, video or data for the stream being played. Data has `@setDataFrame` stripped.
    Media(Message),
    StreamBegin(u32),
    StreamEof(u32),
    /// A command the session does not act on (RPCs from the server).
    Command {
        stream_id: u32,
        command: Command,
    },
    Closed(Arc<SessionError>),
}

#[derive(Debug, Clone, PartialEq)]
enum Want {
    Publish(String),
    Play { name: String, start: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Txn {
    Connect,
    CreateStream,
    Optional(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connecting,
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    None,
    Creating,
    Pending(u32),
    Active(u32),
}

/// A client connection. See the module docs for the flow.
pub struct ClientSession {
    config: ClientConfig,
    /// Boxed: freed once the handshake is done (see the server's).
    handshake: Option<Box<ClientHandshake>>,
    conn: Conn,
    phase: Phase,
    want: Option<Want>,
    stream: Stream,
    txns: Vec<(f64, Txn)>,
    next_txn: f64,
    events: VecDeque<ClientEvent>,
    closed: Option<Arc<SessionError>>,
    handshake_deadline: Option<Millis>,
    /// What the server's connect `_result` announced (Enhanced RTMP).
    server_caps: Option<super::EnhancedCaps>,
}

impl ClientSession {
    /// The Enhanced RTMP capabilities the server announced in its connect `_result`, once
    /// connected; `None` for a legacy server.
    pub fn server_caps(&self) -> Option<&super::EnhancedCaps> {
        self.server_caps.as_ref()
    }

    /// Starts a session; C0+C1 are ready in `poll_transmit` at once.
    pub fn new(config: ClientConfig, now: Millis, rng: &mut dyn rand::RngCore) -> Self {
        let time = config.c1_time.unwrap_or(now as u32);
        let mut hs = ClientHandshake::new(config.handshake, time, rng);
        let mut conn = Conn::new(config.chunk_limits.clone());
        while let Some(b) = hs.poll_transmit() {
            conn.push_raw(b);
        }
        Self {
            handshake_deadline: config.handshake_timeout_ms.map(|t| now.saturating_add(t)),
            config,
            handshake: Some(Box::new(hs)),
            conn,
            phase: Phase::Handshake,
            want: None,
            stream: Stream::None,
            txns: Vec::new(),
            next_txn: 1.0,
            events: VecDeque::new(),
            closed: None,
            server_caps: None,
        }
    }

    /// Bytes read from the transport.
    pub fn handle_input(&mut self, data: &[u8], _now: Millis) {
        if self.closed.is_some() {
            return;
        }
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
            self.on_handshake_done();
        }
        self.conn.feed(data);
        self.process();
    }

    /// The transport reached end of file.
    pub fn handle_peer_closed(&mut self) {
        self.fail(SessionError::PeerClosed);
    }

    /// Fires deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Millis) {
        if let Some(d) = self.handshake_deadline
            && now >= d
            && self.closed.is_none()
        {
            let timeout_ms = self.config.handshake_timeout_ms.unwrap_or(0);
            self.fail(SessionError::HandshakeTimeout { timeout_ms });
        }
    }

    /// Next bytes to write. Worth polling again after any input or command.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    /// Next event. Worth polling again after any input, timeout or command.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next deadline, if any (only the handshake deadline on the client).
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.closed.is_some() {
            None
        } else {
            self.handshake_deadline
        }
    }

    /// Statistics (rtmp2's fields).
    pub fn stats(&self) -> Stats {
        self.conn.stats
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<Arc<SessionError>> {
        self.closed.clone()
    }

    /// True once connected and not closed.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected && self.closed.is_none()
    }

    /// The stream id once the publish/play was started by the server.
    pub fn active_stream(&self) -> Option<u32> {
        match self.stream {
            Stream::Active(id) => Some(id),
            _ => None,
        }
    }

    /// Closes the session; bytes already queued stay available in `poll_transmit`.
    pub fn close(&mut self) {
        self.fail(SessionError::LocalClose);
    }

    /// Publishes `name` (with any query) as "live"; runs right away when connected, else once
    /// the connect succeeds.
    pub fn publish(&mut self, name: &str) -> Result<(), SessionError> {
        self.start(Want::Publish(name.to_owned()))
    }

    /// Plays `name`; `start` as sent on the wire (−2000 = live or recorded, as FFmpeg does).
    pub fn play(&mut self, name: &str, start: f64) -> Result<(), SessionError> {
        self.start(Want::Play {
            name: name.to_owned(),
            start,
        })
    }

    fn start(&mut self, want: Want) -> Result<(), SessionError> {
        self.check_open()?;
        if self.want.is_some() {
            return Err(SessionError::InvalidState(format!(
                "a stream was already requested ({:?}); one stream per client session",
                self.want
            )));
        }
        self.want = Some(want);
        if self.phase == Phase::Connected {
            self.begin_stream();
        }
        Ok(())
    }

    /// Sends one media message on the published stream. Data payloads that start with a
    /// handler name other than `@setDataFrame` get `@setDataFrame` prepended.
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), SessionError> {
        self.check_open()?;
        let Stream::Active(stream_id) = self.stream else {
            return Err(SessionError::InvalidState(
                "send_media before NetStream.Publish.Start".into(),
            ));
        };
        if !matches!(self.want, Some(Want::Publish(_))) {
            return Err(SessionError::InvalidState(
                "send_media on a playing session".into(),
            ));
        }
        let (type_id, csid, payload) = match kind {
            MediaKind::Audio => (msg_type::AUDIO, CSID_AUDIO, payload),
            MediaKind::Video => (msg_type::VIDEO, CSID_VIDEO, payload),
            MediaKind::Data => (msg_type::DATA_AMF0, CSID_DATA, with_set_data_frame(payload)),
        };
        let msg = Message {
            type_id,
            timestamp,
            stream_id,
            payload,
        };
        self.conn.send(csid, &msg);
        Ok(())
    }

    /// Ends the published or played stream with the chosen commands. The session stays
    /// connected; close it (and the transport) when done.
    pub fn stop(&mut self, commands: StopCommands) -> Result<(), SessionError> {
        self.check_open()?;
        let sid = match self.stream {
            Stream::Active(id) | Stream::Pending(id) => id,
            _ => return Ok(()),
        };
        if commands.fc_unpublish
            && let Some(Want::Publish(name)) = &self.want
        {
            let name = name.clone();
            let t = self.txn(Txn::Optional("FCUnpublish"));
            self.send_cmd(0, &command::fc_unpublish(t, &name));
        }
        if commands.close_stream {
            self.send_cmd(sid, &command::close_stream(0.0));
        }
        if commands.delete_stream {
            self.send_cmd(0, &command::delete_stream(0.0, sid));
        }
        self.stream = Stream::None;
        Ok(())
    }

    // ---- internals --------------------------------------------------------------------------

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
        self.handshake_deadline = None;
        self.events.push_back(ClientEvent::Closed(e));
    }

    fn txn(&mut self, kind: Txn) -> f64 {
        let t = self.next_txn;
        self.next_txn += 1.0;
        self.txns.push((t, kind));
        t
    }

    fn take_txn(&mut self, t: f64) -> Option<Txn> {
        let i = self.txns.iter().position(|(x, _)| *x == t)?;
        Some(self.txns.swap_remove(i).1)
    }

    fn send_cmd(&mut self, stream_id: u32, cmd: &Command) {
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM_COMMAND
        };
        self.conn.send(csid, &cmd.to_message(stream_id));
    }

    fn on_handshake_done(&mut self) {
        self.phase = Phase::Connecting;
        self.conn.set_out_chunk_size(self.config.chunk_size);
        let c = &self.config;
        let mut o: Vec<(String, Value)> = vec![("app".into(), Value::String(c.app.clone()))];
        if c.role == ClientRole::Publish {
            o.push(("type".into(), Value::String("nonprivate".into())));
        }
        if let Some(f) = &c.flash_ver {
            o.push(("flashVer".into(), Value::String(f.clone())));
        }
        if let Some(s) = &c.swf_url {
            o.push(("swfUrl".into(), Value::String(s.clone())));
        }
        o.push(("tcUrl".into(), Value::String(c.tc_url.clone())));
        if c.role == ClientRole::Play {
            o.push(("fpad".into(), Value::Boolean(false)));
            o.push(("capabilities".into(), Value::Number(15.0)));
            o.push(("audioCodecs".into(), Value::Number(4071.0)));
            o.push(("videoCodecs".into(), Value::Number(252.0)));
            o.push(("videoFunction".into(), Value::Number(1.0)));
            if let Some(p) = &c.page_url {
                o.push(("pageUrl".into(), Value::String(p.clone())));
            }
        }
        if let Some(caps) = &c.enhanced {
            o.extend(caps.to_properties());
        }
        if let Some(e) = c.object_encoding {
            o.push(("objectEncoding".into(), Value::Number(e)));
        }
        let extra = c.extra_connect_args.clone();
        let t = self.txn(Txn::Connect);
        self.send_cmd(0, &command::connect(t, o, extra));
    }

    fn begin_stream(&mut self) {
        let Some(want) = self.want.clone() else {
            return;
        };
        if self.stream != Stream::None {
            return;
        }
        match &want {
            Want::Publish(name) => {
                let t = self.txn(Txn::Optional("releaseStream"));
                self.send_cmd(0, &command::release_stream(t, name));
                let t = self.txn(Txn::Optional("FCPublish"));
                self.send_cmd(0, &command::fc_publish(t, name));
            }
            Want::Play { .. } => {
                // When the server sent Set Peer Bandwidth, the connection layer already
                // answered with that window; a second, different value would only confuse.
                if !self.conn.window_ack_sent() {
                    self.conn.send_window_ack(self.config.window_ack_size);
                }
            }
        }
        let t = self.txn(Txn::CreateStream);
        self.send_cmd(0, &command::create_stream(t));
        if let Want::Play { name, .. } = &want
            && self.config.fc_subscribe
        {
            let t = self.txn(Txn::Optional("FCSubscribe"));
            self.send_cmd(0, &command::fc_subscribe(t, name));
        }
        self.stream = Stream::Creating;
    }

    fn process(&mut self) {
        loop {
            if self.closed.is_some() {
                return;
            }
            match self.conn.next() {
                Ok(Some(Inbound::Message(m))) => {
                    if let Err(e) = self.on_message(m) {
                        return self.fail(e);
                    }
                }
                Ok(Some(Inbound::User(u))) => self.on_user(u),
                Ok(None) => break,
                Err(e) => return self.fail(e),
            }
        }
        self.conn.check_ack();
    }

    fn on_user(&mut self, u: UserControl) {
        match u {
            UserControl::StreamBegin(id) => self.events.push_back(ClientEvent::StreamBegin(id)),
            UserControl::StreamEof(id) => self.events.push_back(ClientEvent::StreamEof(id)),
            _ => {}
        }
    }

    fn on_message(&mut self, m: Message) -> Result<(), SessionError> {
        match m.type_id {
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let cmd = Command::parse(&m)?;
                self.on_command(m.stream_id, cmd)
            }
            msg_type::AUDIO | msg_type::VIDEO => {
                if matches!(self.want, Some(Want::Play { .. })) {
                    self.events.push_back(ClientEvent::Media(m));
                }
                Ok(())
            }
            msg_type::DATA_AMF0 => {
                match leading_string(&m.payload) {
                    Some(("|RtmpSampleAccess", _)) | Some(("onStatus", _)) => {}
                    Some(("@setDataFrame", n)) => {
                        let payload = m.payload.slice(n..);
                        self.events
                            .push_back(ClientEvent::Media(Message { payload, ..m }));
                    }
                    _ => self.events.push_back(ClientEvent::Media(m)),
                }
                Ok(())
            }
            msg_type::DATA_AMF3 => {
                self.events.push_back(ClientEvent::Media(m));
                Ok(())
            }
            // Shared objects are not supported; ignoring them keeps the connection usable.
            _ => Ok(()),
        }
    }

    fn on_command(&mut self, stream_id: u32, cmd: Command) -> Result<(), SessionError> {
        match cmd.typed()? {
            NetCommand::Result {
                transaction_id,
                command_object,
                args,
            } => match self.take_txn(transaction_id) {
                Some(Txn::Connect) => {
                    self.phase = Phase::Connected;
                    let properties = command::object_properties(&command_object).to_vec();
                    self.server_caps = super::EnhancedCaps::from_properties(&properties);
                    let info = args.first().and_then(Status::from_value);
                    self.events
                        .push_back(ClientEvent::Connected { properties, info });
                    self.begin_stream();
                }
                Some(Txn::CreateStream) => {
                    let id = args.iter().find_map(command::as_number);
                    let Some(id) = id.filter(|n| *n >= 1.0 && *n <= f64::from(u32::MAX)) else {
                        return Err(SessionError::Protocol(format!(
                            "createStream result without a usable stream id: {args:?}"
                        )));
                    };
                    self.on_stream_created(id as u32);
                }
                _ => {}
            },
            NetCommand::Error {
                transaction_id,
                status,
                ..
            } => {
                let status = status.unwrap_or_else(|| Status {
                    level: "error".into(),
                    code: String::new(),
                    description: String::new(),
                    extra: Vec::new(),
                });
                match self.take_txn(transaction_id) {
                    Some(Txn::Connect) => {
                        self.events.push_back(ClientEvent::ConnectRejected {
                            code: status.code.clone(),
                            description: status.description.clone(),
                        });
                        return Err(SessionError::ConnectRejected {
                            code: status.code,
                            description: status.description,
                        });
                    }
                    Some(Txn::CreateStream) => {
                        self.stream = Stream::None;
                        self.events.push_back(ClientEvent::StreamRejected(status));
                    }
                    // FFmpeg treats these as warnings; so do we.
                    _ => self
                        .events
                        .push_back(ClientEvent::Status { stream_id, status }),
                }
            }
            NetCommand::OnStatus(status) => self.on_status(stream_id, status),
            NetCommand::OnBwDone => {
                let t = self.txn(Txn::Optional("_checkbw"));
                self.send_cmd(0, &command::check_bw(t));
            }
            NetCommand::OnFcPublish(_) | NetCommand::OnFcUnpublish(_) => {}
            NetCommand::Close => return Err(SessionError::ServerClose),
            _ => self.events.push_back(ClientEvent::Command {
                stream_id,
                command: cmd,
            }),
        }
        Ok(())
    }

    fn on_stream_created(&mut self, id: u32) {
        if self.stream != Stream::Creating {
            return;
        }
        self.stream = Stream::Pending(id);
        match self.want.clone() {
            Some(Want::Publish(name)) => {
                // Transaction id 0: FFmpeg and librtmp send publish as a notification too.
                self.send_cmd(id, &command::publish(0.0, &name, "live"));
            }
            Some(Want::Play { name, start }) => {
                self.send_cmd(id, &command::play(0.0, &name, start, None, None));
                self.conn
                    .send_control(Control::UserControl(UserControl::SetBufferLength {
                        stream_id: id,
                        buffer_ms: self.config.buffer_length_ms,
                    }));
            }
            None => {}
        }
    }

    fn on_status(&mut self, stream_id: u32, status: Status) {
        let pending = matches!(self.stream, Stream::Pending(_) | Stream::Creating);
        match status.status_code() {
            Some(StatusCode::PublishStart) if pending => {
                let id = self.stream_id_or(stream_id);
                self.stream = Stream::Active(id);
                self.events
                    .push_back(ClientEvent::PublishStarted { stream_id: id });
            }
            Some(StatusCode::PlayStart) if pending => {
                let id = self.stream_id_or(stream_id);
                self.stream = Stream::Active(id);
                self.events
                    .push_back(ClientEvent::PlayStarted { stream_id: id });
            }
            _ if pending && status.is_error() => {
                self.stream = Stream::None;
                self.events.push_back(ClientEvent::StreamRejected(status));
            }
            _ => self
                .events
                .push_back(ClientEvent::Status { stream_id, status }),
        }
    }

    fn stream_id_or(&self, fallback: u32) -> u32 {
        match self.stream {
            Stream::Pending(id) | Stream::Active(id) => id,
            _ => fallback,
        }
    }
}

/// The AMF0 string at the start of a data payload and the bytes it takes (marker + length +
/// text), without decoding the rest.
pub(crate) fn leading_string(payload: &[u8]) -> Option<(&str, usize)> {
    if payload.len() < 3 || payload[0] != 0x02 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([payload[1], payload[2]]));
    let text = payload.get(3..3 + len)?;
    Some((std::str::from_utf8(text).ok()?, 3 + len))
}

const SET_DATA_FRAME: &str = "@setDataFrame";

/// Prepends the AMF0 string `@setDataFrame` to a data payload that starts with another
/// handler name (FFmpeg's rule: metadata sent by a publisher is stored by the server).
pub(crate) fn with_set_data_frame(payload: Bytes) -> Bytes {
    match leading_string(&payload) {
        Some((name, _)) if name != SET_DATA_FRAME => {
            let mut b = BytesMut::with_capacity(3 + SET_DATA_FRAME.len() + payload.len());
            b.put_u8(0x02);
            b.put_u16(SET_DATA_FRAME.len() as u16);
            b.put_slice(SET_DATA_FRAME.as_bytes());
            b.put_slice(&payload);
            b.freeze()
        }
        _ => payload,
    }
}
