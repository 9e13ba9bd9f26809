//! NetConnection / NetStream commands (protocol-facts §7), typed.
//!
//! A command message (type 20, or 17 with its format byte) is an AMF0 sequence: name,
//! transaction id, command object (object or null), then arguments. [`Command`] is that
//! sequence with its first three slots named; [`Command::typed`] gives the typed view of the
//! commands the sessions act on, and the builders in this module produce every command and
//! reply the sessions send. Decoding never trusts a field's type: a `publish` whose name is a
//! number is an error that names what was found, not a panic.
//!
//! Commands are always *sent* as AMF0 (type 20): every server and client read in
//! protocol-facts answers AMF3 peers with AMF0 replies, and AMF0 commands are understood by all.

use bytes::Bytes;

use crate::amf0::{self, Value};
use crate::message::{Message, msg_type};

/// Why a command message could not be turned into a [`Command`] or a typed view.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The message is not a command message.
    #[error("message type {0} is not a command (expected 20 or 17)")]
    NotACommand(u8),
    /// The AMF payload did not decode.
    #[error("command payload is not valid AMF: {0}")]
    Amf(String),
    /// The payload held no value at all.
    #[error("command payload is empty")]
    Empty,
    /// The first value was not a string.
    #[error("command name must be a string, found {0}")]
    BadName(String),
    /// A required argument is missing or has the wrong type.
    #[error("{command}: argument {index} ({what}) missing or wrong type: found {found}")]
    BadArgument {
        command: &'static str,
        index: usize,
        what: &'static str,
        found: String,
    },
}

/// A decoded command message: `name, transaction_id, command_object, args...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// 0 for notifications (no reply expected).
    pub transaction_id: f64,
    /// Object or `Null`; `Null` when the message stopped after the transaction id.
    pub command_object: Value,
    pub args: Vec<Value>,
}

impl Command {
    /// Builds a command from its parts.
    pub fn new(
        name: impl Into<String>,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) -> Self {
        Self {
            name: name.into(),
            transaction_id,
            command_object,
            args,
        }
    }

    /// Decodes a command message (type 20, or 17 with its leading format byte).
    pub fn parse(msg: &Message) -> Result<Self, CommandError> {
        if msg.type_id != msg_type::COMMAND_AMF0 && msg.type_id != msg_type::COMMAND_AMF3 {
            return Err(CommandError::NotACommand(msg.type_id));
        }
        let values = amf0::decode_command_payload(msg.type_id, &msg.payload)
            .map_err(|e| CommandError::Amf(e.to_string()))?;
        Self::from_values(values)
    }

    /// Builds a command from an already decoded AMF sequence. AMF3-wrapped values (marker
    /// 0x11) in the name or transaction id slots are unwrapped, since AMF3 peers may send them.
    pub fn from_values(values: Vec<Value>) -> Result<Self, CommandError> {
        let mut it = values.into_iter();
        let name = match it.next().map(unwrap_amf3) {
            None => return Err(CommandError::Empty),
            Some(Value::String(s)) => s,
            Some(other) => return Err(CommandError::BadName(describe(&other))),
        };
        // Some peers omit the transaction id or the null object; tolerate both.
        let transaction_id = it
            .next()
            .map(unwrap_amf3)
            .and_then(|v| as_number(&v))
            .unwrap_or(0.0);
        let command_object = it.next().unwrap_or(Value::Null);
        Ok(Self {
            name,
            transaction_id,
            command_object,
            args: it.collect(),
        })
    }

    /// The AMF0 value sequence of this command.
    pub fn to_values(&self) -> Vec<Value> {
        let mut v = Vec::with_capacity(3 + self.args.len());
        v.push(Value::String(self.name.clone()));
        v.push(Value::Number(self.transaction_id));
        v.push(self.command_object.clone());
        v.extend(self.args.iter().cloned());
        v
    }

    /// AMF0 payload bytes of this command.
    pub fn encode(&self) -> Bytes {
        encode_values(msg_type::COMMAND_AMF0, &self.to_values())
    }

    /// This command as a type-20 message on `stream_id`, timestamp 0.
    pub fn to_message(&self, stream_id: u32) -> Message {
        Message {
            type_id: msg_type::COMMAND_AMF0,
            timestamp: 0,
            stream_id,
            payload: self.encode(),
        }
    }

    /// Argument `i` (0 = first value after the command object).
    pub fn arg(&self, i: usize) -> Option<&Value> {
        self.args.get(i)
    }

    /// The typed view of this command. Unknown names give [`NetCommand::Other`].
    pub fn typed(&self) -> Result<NetCommand, CommandError> {
        let txn = self.transaction_id;
        Ok(match self.name.as_str() {
            "connect" => NetCommand::Connect(Connect::from_command(self)),
            "createStream" => NetCommand::CreateStream {
                transaction_id: txn,
            },
            "publish" => {
                let name = self.str_arg("publish", 0, "stream name")?;
                let kind = self.arg(1).and_then(as_str).unwrap_or("live").to_owned();
                NetCommand::Publish(Publish {
                    transaction_id: txn,
                    name,
                    kind,
                })
            }
            "play" => {
                let name = self.str_arg("play", 0, "stream name")?;
                let num = |i| self.arg(i).and_then(as_number);
                let reset = match self.arg(3) {
                    Some(Value::Boolean(b)) | Some(Value::Amf3(crate::amf3::Value::Boolean(b))) => {
                        Some(*b)
                    }
                    Some(v) => as_number(v).map(|n| n != 0.0),
                    None => None,
                };
                NetCommand::Play(Play {
                    transaction_id: txn,
                    name,
                    start: num(1).unwrap_or(-2000.0),
                    duration: num(2),
                    reset,
                })
            }
            // rtmp2 sends the stream *name* here; the id then comes from the message stream id.
            "deleteStream" => NetCommand::DeleteStream {
                transaction_id: txn,
                stream_id: self.arg(0).and_then(as_number),
            },
            "closeStream" => NetCommand::CloseStream {
                transaction_id: txn,
            },
            "releaseStream" => NetCommand::ReleaseStream {
                transaction_id: txn,
                name: self.str_arg("releaseStream", 0, "stream name")?,
            },
            "FCPublish" => NetCommand::FcPublish {
                transaction_id: txn,
                name: self.str_arg("FCPublish", 0, "stream name")?,
            },
            "FCUnpublish" => NetCommand::FcUnpublish {
                transaction_id: txn,
                name: self.str_arg("FCUnpublish", 0, "stream name")?,
            },
            "FCSubscribe" => NetCommand::FcSubscribe {
                transaction_id: txn,
                name: self.str_arg("FCSubscribe", 0, "stream name")?,
            },
            "_result" => NetCommand::Result {
                transaction_id: txn,
                command_object: self.command_object.clone(),
                args: self.args.clone(),
            },
            "_error" => NetCommand::Error {
                transaction_id: txn,
                command_object: self.command_object.clone(),
                status: self.args.first().and_then(Status::from_value),
            },
            "onStatus" => match self.args.first().and_then(Status::from_value) {
                Some(s) => NetCommand::OnStatus(s),
                None => {
                    return Err(CommandError::BadArgument {
                        command: "onStatus",
                        index: 0,
                        what: "info object with a code",
                        found: self.args.first().map_or("nothing".into(), describe),
                    });
                }
            },
            "onBWDone" => NetCommand::OnBwDone,
            "_checkbw" => NetCommand::CheckBw {
                transaction_id: txn,
            },
            "onFCPublish" => {
                NetCommand::OnFcPublish(self.args.first().and_then(Status::from_value))
            }
            "onFCUnpublish" => {
                NetCommand::OnFcUnpublish(self.args.first().and_then(Status::from_value))
            }
            "close" => NetCommand::Close,
            _ => NetCommand::Other,
        })
    }

    fn str_arg(
        &self,
        command: &'static str,
        index: usize,
        what: &'static str,
    ) -> Result<String, CommandError> {
        let v = self.arg(index);
        v.and_then(as_str)
            .map(str::to_owned)
            .ok_or_else(|| CommandError::BadArgument {
                command,
                index,
                what,
                found: v.map_or("nothing".into(), describe),
            })
    }
}

/// Typed view of the commands the sessions act on.
#[derive(Debug, Clone, PartialEq)]
pub enum NetCommand {
    Connect(Connect),
    CreateStream {
        transaction_id: f64,
    },
    Publish(Publish),
    Play(Play),
    DeleteStream {
        transaction_id: f64,
        /// `None` when the argument is not a number (rtmp2 sends the stream name): the caller
        /// uses the message stream id instead.
        stream_id: Option<f64>,
    },
    CloseStream {
        transaction_id: f64,
    },
    ReleaseStream {
        transaction_id: f64,
        name: String,
    },
    FcPublish {
        transaction_id: f64,
        name: String,
    },
    FcUnpublish {
        transaction_id: f64,
        name: String,
    },
    FcSubscribe {
        transaction_id: f64,
        name: String,
    },
    Result {
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    },
    /// `_error`; `status` is the info object when it carries a code.
    Error {
        transaction_id: f64,
        command_object: Value,
        status: Option<Status>,
    },
    OnStatus(Status),
    OnBwDone,
    CheckBw {
        transaction_id: f64,
    },
    OnFcPublish(Option<Status>),
    OnFcUnpublish(Option<Status>),
    /// The server's `close` RPC (sent after an auth rejection).
    Close,
    /// Any other name; the raw [`Command`] has the details.
    Other,
}

/// The `connect` command object, with the well-known fields pulled out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connect {
    pub transaction_id: f64,
    /// `app`, including any `?query` (auth parameters ride there).
    pub app: String,
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    /// `type` ("nonprivate" from publishers).
    pub kind: Option<String>,
    /// 0 = AMF0, 3 = AMF3.
    pub object_encoding: Option<f64>,
    pub capabilities: Option<f64>,
    pub audio_codecs: Option<f64>,
    pub video_codecs: Option<f64>,
    /// Every property of the command object, in wire order (includes the ones above).
    pub properties: Vec<(String, Value)>,
    /// Values after the command object (user `conn=` arguments).
    pub extra_args: Vec<Value>,
}

impl Connect {
    fn from_command(cmd: &Command) -> Self {
        let props = object_properties(&cmd.command_object).to_vec();
        let s = |k| get(&props, k).and_then(as_str).map(str::to_owned);
        let n = |k| get(&props, k).and_then(as_number);
        Self {
            transaction_id: cmd.transaction_id,
            app: s("app").unwrap_or_default(),
            tc_url: s("tcUrl"),
            flash_ver: s("flashVer"),
            swf_url: s("swfUrl"),
            page_url: s("pageUrl"),
            kind: s("type"),
            object_encoding: n("objectEncoding"),
            capabilities: n("capabilities"),
            audio_codecs: n("audioCodecs"),
            video_codecs: n("videoCodecs"),
            properties: props,
            extra_args: cmd.args.clone(),
        }
    }

    /// `app` split at the first `?`: (application, query without the `?`).
    pub fn app_and_query(&self) -> (&str, Option<&str>) {
        match self.app.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (&self.app, None),
        }
    }
}

/// `publish(name, kind)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub transaction_id: f64,
    /// Stream name including any `?query`.
    pub name: String,
    /// "live", "record" or "append" ("live" when absent).
    pub kind: String,
}

/// `play(name, start, duration, reset)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub transaction_id: f64,
    pub name: String,
    /// As sent: −2000/−2 any, −1000/−1 live, ≥ 0 recorded (protocol-facts Appendix B.11).
    /// −2000 when absent.
    pub start: f64,
    pub duration: Option<f64>,
    pub reset: Option<bool>,
}

impl Play {
    /// What `start` asks for, accepting both the spec's seconds and the clients' milliseconds.
    pub fn start_mode(&self) -> PlayStart {
        let s = self.start;
        if s <= -2000.0 || s == -2.0 {
            PlayStart::Any
        } else if s == -1000.0 || s == -1.0 {
            PlayStart::LiveOnly
        } else if s >= 0.0 {
            PlayStart::Recorded(s)
        } else {
            PlayStart::Any
        }
    }
}

/// Interpretation of the `play` start argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlayStart {
    /// Live if there is one, else recorded.
    Any,
    LiveOnly,
    /// Recorded, from this position (as sent; clients use milliseconds).
    Recorded(f64),
}

/// Level of a status event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Status,
    Warning,
    Error,
}

impl Level {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Status => "status",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// Parses a wire string; unknown strings give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "status" => Some(Level::Status),
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

macro_rules! status_codes {
    ($( $(#[$m:meta])* $variant:ident = $code:literal, $level:ident; )*) => {
        /// Every status code of protocol-facts §7.4, with its level.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StatusCode { $( $(#[$m])* $variant, )* }

        impl StatusCode {
            /// All codes, in table order.
            pub const ALL: &'static [StatusCode] = &[$(StatusCode::$variant),*];

            /// The wire string, e.g. `"NetStream.Publish.Start"`.
            pub fn code(self) -> &'static str {
                match self { $(StatusCode::$variant => $code,)* }
            }

            /// The level this code is sent with.
            pub fn level(self) -> Level {
                match self { $(StatusCode::$variant => Level::$level,)* }
            }

            /// Looks a wire string up.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some(StatusCode::$variant),)* _ => None }
            }
        }
    };
}

status_codes! {
    ConnectSuccess = "NetConnection.Connect.Success", Status;
    ConnectClosed = "NetConnection.Connect.Closed", Status;
    ConnectFailed = "NetConnection.Connect.Failed", Error;
    ConnectRejected = "NetConnection.Connect.Rejected", Error;
    ConnectInvalidApp = "NetConnection.Connect.InvalidApp", Error;
    ConnectAppShutdown = "NetConnection.Connect.AppShutdown", Error;
    /// E-RTMP: the server asks the client to reconnect (optionally to another `tcUrl`).
    ConnectReconnectRequest = "NetConnection.Connect.ReconnectRequest", Status;
    CallFailed = "NetConnection.Call.Failed", Error;
    PublishStart = "NetStream.Publish.Start", Status;
    PublishBadName = "NetStream.Publish.BadName", Error;
    PublishIdle = "NetStream.Publish.Idle", Status;
    UnpublishSuccess = "NetStream.Unpublish.Success", Status;
    PlayStart = "NetStream.Play.Start", Status;
    PlayStop = "NetStream.Play.Stop", Status;
    PlayReset = "NetStream.Play.Reset", Status;
    PlayPublishNotify = "NetStream.Play.PublishNotify", Status;
    PlayUnpublishNotify = "NetStream.Play.UnpublishNotify", Status;
    PlayStreamNotFound = "NetStream.Play.StreamNotFound", Error;
    PlayFailed = "NetStream.Play.Failed", Error;
    PlayInsufficientBw = "NetStream.Play.InsufficientBW", Warning;
    /// Sent via `onPlayStatus` (nginx) with level status.
    PlayComplete = "NetStream.Play.Complete", Status;
    PauseNotify = "NetStream.Pause.Notify", Status;
    UnpauseNotify = "NetStream.Unpause.Notify", Status;
    SeekNotify = "NetStream.Seek.Notify", Status;
    SeekFailed = "NetStream.Seek.Failed", Error;
    RecordStart = "NetStream.Record.Start", Status;
    RecordStop = "NetStream.Record.Stop", Status;
    RecordFailed = "NetStream.Record.Failed", Error;
    RecordNoAccess = "NetStream.Record.NoAccess", Error;
    StreamFailed = "NetStream.Failed", Error;
    /// Sent in a data message (`onStatus`), not a command.
    DataStart = "NetStream.Data.Start", Status;
}

/// An info object: `{level, code, description, ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// As sent (usually "status", "warning" or "error").
    pub level: String,
    pub code: String,
    pub description: String,
    /// Other properties (details, clientid, objectEncoding, ex, ...), in wire order.
    pub extra: Vec<(String, Value)>,
}

impl Status {
    /// A status with a known code, its standard level and `description`.
    pub fn new(code: StatusCode, description: impl Into<String>) -> Self {
        Self {
            level: code.level().as_str().to_owned(),
            code: code.code().to_owned(),
            description: description.into(),
            extra: Vec::new(),
        }
    }

    /// Adds a property after the standard three.
    pub fn with(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.push((key.into(), value));
        self
    }

    /// Reads an info object (object or ECMA array); `None` when it has no string `code`.
    pub fn from_value(v: &Value) -> Option<Self> {
        let props = object_properties(v);
        let code = get(props, "code").and_then(as_str)?.to_owned();
        let level = get(props, "level")
            .and_then(as_str)
            .unwrap_or("")
            .to_owned();
        let description = get(props, "description")
            .and_then(as_str)
            .unwrap_or("")
            .to_owned();
        let extra = props
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "level" | "code" | "description"))
            .cloned()
            .collect();
        Some(Self {
            level,
            code,
            description,
            extra,
        })
    }

    /// The known code, if it is one.
    pub fn status_code(&self) -> Option<StatusCode> {
        StatusCode::from_code(&self.code)
    }

    /// True when the level is "error".
    pub fn is_error(&self) -> bool {
        self.level == "error"
    }

    /// The info object as an AMF0 object.
    pub fn to_value(&self) -> Value {
        let mut props = vec![
            ("level".to_owned(), Value::String(self.level.clone())),
            ("code".to_owned(), Value::String(self.code.clone())),
            (
                "description".to_owned(),
                Value::String(self.description.clone()),
            ),
        ];
        props.extend(self.extra.iter().cloned());
        Value::Object(props)
    }
}

// ---- builders -------------------------------------------------------------------------------

/// `connect(txn, {props...}, extra...)`.
pub fn connect(
    transaction_id: f64,
    properties: Vec<(String, Value)>,
    extra: Vec<Value>,
) -> Command {
    Command::new("connect", transaction_id, Value::Object(properties), extra)
}

/// `createStream(txn, null)`.
pub fn create_stream(transaction_id: f64) -> Command {
    Command::new("createStream", transaction_id, Value::Null, vec![])
}

/// `publish(txn, null, name, kind)`; kind is "live", "record" or "append".
pub fn publish(transaction_id: f64, name: &str, kind: &str) -> Command {
    Command::new(
        "publish",
        transaction_id,
        Value::Null,
        vec![Value::String(name.into()), Value::String(kind.into())],
    )
}

/// `play(txn, null, name, start[, duration[, reset]])`.
pub fn play(
    transaction_id: f64,
    name: &str,
    start: f64,
    duration: Option<f64>,
    reset: Option<bool>,
) -> Command {
    let mut args = vec![Value::String(name.into()), Value::Number(start)];
    if duration.is_some() || reset.is_some() {
        args.push(Value::Number(duration.unwrap_or(-1.0)));
    }
    if let Some(r) = reset {
        args.push(Value::Boolean(r));
    }
    Command::new("play", transaction_id, Value::Null, args)
}

/// `deleteStream(txn, null, stream_id)`.
pub fn delete_stream(transaction_id: f64, stream_id: u32) -> Command {
    Command::new(
        "deleteStream",
        transaction_id,
        Value::Null,
        vec![Value::Number(stream_id.into())],
    )
}

/// `closeStream(txn, null)`; send it on the stream's message stream id.
pub fn close_stream(transaction_id: f64) -> Command {
    Command::new("closeStream", transaction_id, Value::Null, vec![])
}

fn named(cmd: &str, transaction_id: f64, name: &str) -> Command {
    Command::new(
        cmd,
        transaction_id,
        Value::Null,
        vec![Value::String(name.into())],
    )
}

/// `releaseStream(txn, null, name)`.
pub fn release_stream(transaction_id: f64, name: &str) -> Command {
    named("releaseStream", transaction_id, name)
}

/// `FCPublish(txn, null, name)`.
pub fn fc_publish(transaction_id: f64, name: &str) -> Command {
    named("FCPublish", transaction_id, name)
}

/// `FCUnpublish(txn, null, name)`.
pub fn fc_unpublish(transaction_id: f64, name: &str) -> Command {
    named("FCUnpublish", transaction_id, name)
}

/// `FCSubscribe(txn, null, name)`.
pub fn fc_subscribe(transaction_id: f64, name: &str) -> Command {
    named("FCSubscribe", transaction_id, name)
}

/// `_result(txn, command_object, args...)`.
pub fn result(transaction_id: f64, command_object: Value, args: Vec<Value>) -> Command {
    Command::new("_result", transaction_id, command_object, args)
}

/// `_error(txn, null, info)`.
pub fn error(transaction_id: f64, status: &Status) -> Command {
    Command::new(
        "_error",
        transaction_id,
        Value::Null,
        vec![status.to_value()],
    )
}

/// `onStatus(0, null, info)`; send it on the stream's message stream id.
pub fn on_status(status: &Status) -> Command {
    Command::new("onStatus", 0.0, Value::Null, vec![status.to_value()])
}

/// `onBWDone(0, null)`.
pub fn on_bw_done() -> Command {
    Command::new("onBWDone", 0.0, Value::Null, vec![])
}

/// `_checkbw(txn, null)`, the client's answer to `onBWDone`.
pub fn check_bw(transaction_id: f64) -> Command {
    Command::new("_checkbw", transaction_id, Value::Null, vec![])
}

/// `onFCPublish(0, null, info)`.
pub fn on_fc_publish(status: &Status) -> Command {
    Command::new("onFCPublish", 0.0, Value::Null, vec![status.to_value()])
}

/// `onFCUnpublish(0, null, info)`.
pub fn on_fc_unpublish(status: &Status) -> Command {
    Command::new("onFCUnpublish", 0.0, Value::Null, vec![status.to_value()])
}

/// The server's `close(0, null)` RPC.
pub fn close() -> Command {
    Command::new("close", 0.0, Value::Null, vec![])
}

/// A data message (type 18) holding `values`, on `stream_id`.
pub fn data_message(stream_id: u32, timestamp: u32, values: &[Value]) -> Message {
    Message {
        type_id: msg_type::DATA_AMF0,
        timestamp,
        stream_id,
        payload: encode_values(msg_type::DATA_AMF0, values),
    }
}

// ---- small AMF helpers ------------------------------------------------------------------------
// Local on purpose: the session and auth code need only these few, and keeping them here keeps
// the command layer independent of the accessor names the AMF module picks.

fn encode_values(type_id: u8, values: &[Value]) -> Bytes {
    amf0::encode_command_payload(type_id, values)
}

/// Properties of an object, ECMA array or typed object; empty for anything else.
pub fn object_properties(v: &Value) -> &[(String, Value)] {
    match v {
        Value::Object(p) | Value::EcmaArray(p) => p,
        Value::TypedObject { properties, .. } => properties,
        _ => &[],
    }
}

/// First property named `key`.
pub fn get<'a>(props: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The string in a string value (AMF0 or AMF3-wrapped).
pub fn as_str(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Amf3(crate::amf3::Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The number in a number value (AMF0, or AMF3 integer/double).
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Amf3(crate::amf3::Value::Double(n)) => Some(*n),
        Value::Amf3(crate::amf3::Value::Integer(n)) => Some(f64::from(*n)),
        _ => None,
    }
}

fn unwrap_amf3(v: Value) -> Value {
    match v {
        Value::Amf3(crate::amf3::Value::String(s)) => Value::String(s),
        Value::Amf3(crate::amf3::Value::Double(n)) => Value::Number(n),
        Value::Amf3(crate::amf3::Value::Integer(n)) => Value::Number(n.into()),
        other => other,
    }
}

fn describe(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 80 {
        let mut end = 80;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(cmd: &Command) -> Command {
        Command::parse(&cmd.to_message(1)).expect("parse")
    }

    #[test]
    fn status_codes_table() {
        assert_eq!(StatusCode::ALL.len(), 31);
        for c in StatusCode::ALL {
            assert_eq!(StatusCode::from_code(c.code()), Some(*c));
        }
        assert_eq!(StatusCode::PublishBadName.level(), Level::Error);
        assert_eq!(StatusCode::PlayInsufficientBw.level(), Level::Warning);
        assert_eq!(StatusCode::PlayReset.code(), "NetStream.Play.Reset");
        assert_eq!(StatusCode::from_code("NetStream.Nope"), None);
    }

    #[test]
    fn connect_golden_bytes_and_typed_view() {
        let cmd = connect(
            1.0,
            vec![
                ("app".into(), Value::String("live?x=1".into())),
                ("tcUrl".into(), Value::String("rtmp://h/live".into())),
                ("objectEncoding".into(), Value::Number(0.0)),
            ],
            vec![Value::Boolean(true)],
        );
        let bytes = cmd.encode();
        // "connect" string, number 1.0, object header.
        assert_eq!(
            &bytes[..22],
            &[
                0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0x00, 0x3F, 0xF0, 0, 0,
                0, 0, 0, 0, 0x03, 0x00, 0x03
            ]
        );
        let back = roundtrip(&cmd);
        assert_eq!(back, cmd);
        let NetCommand::Connect(c) = back.typed().unwrap() else {
            panic!("not connect")
        };
        assert_eq!(c.app, "live?x=1");
        assert_eq!(c.app_and_query(), ("live", Some("x=1")));
        assert_eq!(c.tc_url.as_deref(), Some("rtmp://h/live"));
        assert_eq!(c.object_encoding, Some(0.0));
        assert_eq!(c.extra_args, vec![Value::Boolean(true)]);
    }

    #[test]
    fn publish_play_typed() {
        let p = roundtrip(&publish(5.0, "s?k=1", "record"));
        assert_eq!(
            p.typed().unwrap(),
            NetCommand::Publish(Publish {
                transaction_id: 5.0,
                name: "s?k=1".into(),
                kind: "record".into()
            })
        );
        let pl = roundtrip(&play(4.0, "s", -2000.0, None, Some(true)));
        let NetCommand::Play(pl) = pl.typed().unwrap() else {
            panic!()
        };
        assert_eq!(pl.start, -2000.0);
        assert_eq!(pl.duration, Some(-1.0));
        assert_eq!(pl.reset, Some(true));
        assert_eq!(pl.start_mode(), PlayStart::Any);
        // play with only a name: defaults.
        let bare = Command::new("play", 0.0, Value::Null, vec![Value::String("x".into())]);
        let NetCommand::Play(b) = bare.typed().unwrap() else {
            panic!()
        };
        assert_eq!((b.start, b.duration, b.reset), (-2000.0, None, None));
        for (s, m) in [
            (-1000.0, PlayStart::LiveOnly),
            (-1.0, PlayStart::LiveOnly),
            (-2.0, PlayStart::Any),
            (1500.0, PlayStart::Recorded(1500.0)),
        ] {
            let p = Play {
                start: s,
                ..pl.clone()
            };
            assert_eq!(p.start_mode(), m);
        }
    }

    #[test]
    fn bad_arguments_are_errors_naming_the_value() {
        let c = Command::new("publish", 2.0, Value::Null, vec![Value::Number(3.0)]);
        let e = c.typed().unwrap_err().to_string();
        assert!(e.contains("publish") && e.contains("Number(3.0)"), "{e}");
        let c = Command::new("play", 2.0, Value::Null, vec![]);
        assert!(c.typed().unwrap_err().to_string().contains("nothing"));
        // rtmp2's deleteStream carries the stream name: typed, with no id.
        let c = Command::new("deleteStream", 0.0, Value::Null, vec!["s".into()]);
        assert!(matches!(
            c.typed().unwrap(),
            NetCommand::DeleteStream {
                stream_id: None,
                ..
            }
        ));
        let e = Command::from_values(vec![Value::Number(1.0)]).unwrap_err();
        assert!(e.to_string().contains("Number(1.0)"), "{e}");
        assert!(matches!(
            Command::from_values(vec![]),
            Err(CommandError::Empty)
        ));
        let msg = Message {
            type_id: 8,
            timestamp: 0,
            stream_id: 0,
            payload: Bytes::new(),
        };
        assert!(matches!(
            Command::parse(&msg),
            Err(CommandError::NotACommand(8))
        ));
    }

    #[test]
    fn status_roundtrip_and_replies() {
        let st = Status::new(StatusCode::PublishStart, "s is now published")
            .with("details", Value::String("s".into()));
        let c = roundtrip(&on_status(&st));
        assert_eq!(c.typed().unwrap(), NetCommand::OnStatus(st.clone()));
        assert_eq!(st.level, "status");
        assert_eq!(st.status_code(), Some(StatusCode::PublishStart));
        let rej = Status::new(StatusCode::ConnectRejected, "nope");
        let NetCommand::Error { status, .. } = roundtrip(&error(1.0, &rej)).typed().unwrap() else {
            panic!()
        };
        assert!(status.unwrap().is_error());
        let r = roundtrip(&result(3.0, Value::Null, vec![Value::Number(1.0)]));
        assert_eq!(
            r.typed().unwrap(),
            NetCommand::Result {
                transaction_id: 3.0,
                command_object: Value::Null,
                args: vec![Value::Number(1.0)]
            }
        );
    }

    #[test]
    fn amf3_command_is_parsed() {
        // Type 17: format byte 0, then AMF0 values.
        let mut payload = vec![0u8];
        payload.extend_from_slice(&publish(7.0, "cam", "live").encode());
        let msg = Message {
            type_id: msg_type::COMMAND_AMF3,
            timestamp: 0,
            stream_id: 1,
            payload: payload.into(),
        };
        let c = Command::parse(&msg).unwrap();
        assert_eq!(c.name, "publish");
        assert_eq!(c.transaction_id, 7.0);
    }

    #[test]
    fn truncated_payloads_never_panic() {
        let full = connect(1.0, vec![("app".into(), Value::String("a".into()))], vec![]).encode();
        for n in 0..full.len() {
            let msg = Message {
                type_id: 20,
                timestamp: 0,
                stream_id: 0,
                payload: full.slice(..n),
            };
            let _ = Command::parse(&msg);
        }
    }
}
