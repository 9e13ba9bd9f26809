//! The client connection drivers: one per client element, sole owner of its engine session and
//! its transport. The element holds a handle and never runs protocol code itself.
//!
//! Which file does what:
//! - `open`: opening a connection, for every driver — transport, handshake, `connect`, the
//!   authentication rounds (a new connection each), then publish or play, all within the
//!   configured timeout; and the state a driver keeps around its connections.
//! - `publisher`: [`Publisher`], a task on the shared runtime (`crate::net::runtime`). The
//!   sink sends it frames through a bounded channel, whose bound is the sink's backpressure.
//!   Across a reconnect it keeps the frames [`hold`] describes and sends them again.
//! - `player`: [`Player`], the source's handle, and the task player: the whole connection
//!   as one task on the player's own current-thread runtime (TLS, the tunnel).
//! - `direct`: the direct-socket player for plain TCP (rtmp, rtmpe): once playing, the
//!   session reads a non-blocking socket polled in place, without the runtime per message.
//! - `play`: what both players share — [`PlayConfig`], [`PlayItem`], the queue bound, how a
//!   play ends, the wake-up of whoever drives the connection, and the reconnect loop.
//! - [`media`]: FLV tags and RTMP messages as the frames the client elements exchange with
//!   the drivers (classified once, with the engine's `flv::classify`).
//!
//! Threads: the publisher runs on the shared runtime's threads. A player runs on whichever
//! thread waits in [`Player::next`] (the source's streaming thread), so a received message
//! becomes a buffer without a thread switch; while nobody waits there (starting, paused, past
//! the end) a background thread of the player drives the connection instead.
//!
//! What the elements see: a handle that starts connecting at once, frames in
//! ([`Publisher::send`]) or out ([`Player::next`], as [`PlayItem`]s), [`Stats`] snapshots,
//! and [`Notice`]s (progress, warnings, the publisher's final error) through a callback that
//! the element turns into bus messages. Both roles reconnect after losing a working
//! connection when the [`ReconnectPolicy`] allows.
//!
//! Invariants: the driver is the only owner of the session and the socket; only
//! [`Player::next`] blocks, and only its caller, until a frame or the caller's stop condition
//! (the element's unlock); every wait for the server is bounded by the configured timeout; the
//! element's handles end the connection when dropped, so stopping an element never waits for
//! the network.
//!
//! Dependencies inside the room point one way: the drivers use `open`, which uses the types
//! here, [`hold`] (for the stats) and the transports, and knows no driver; the two players
//! share `play`, and the player handle owns a `direct` driver, which knows nothing of the
//! task player.

use std::sync::Arc;
use std::time::Duration;

use crate::net::transport::TransportError;
use crate::net::transport::tls::TlsConnector;
use crate::rtmp::amf0;
use crate::rtmp::flv::FourCc;
pub use crate::rtmp::session::StopCommands;
use crate::rtmp::session::{ClientRole, EnhancedCaps, caps};
use crate::rtmp::url::RtmpUrl;

mod direct;
mod follow;
pub mod hold;
pub mod media;
mod open;
mod play;
mod player;
mod publisher;

pub use play::{PlayConfig, PlayItem};
pub use player::Player;
pub use publisher::{PublishConfig, Publisher};

/// Why a client connection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Transport(Arc<TransportError>),
    #[error("{target}: no answer within {} ms while {stage}", timeout.as_millis())]
    TimedOut {
        target: String,
        stage: &'static str,
        timeout: Duration,
    },
    #[error("{target}: connection failed while {stage}: {reason}")]
    Failed {
        target: String,
        stage: &'static str,
        reason: String,
    },
    #[error("{target} rejected the connection ({code}): {description}")]
    Rejected {
        target: String,
        code: String,
        description: String,
    },
    #[error("{target}: authentication failed: {reason}")]
    Auth { target: String, reason: String },
    #[error("{target} refused to {action} stream {stream:?} ({code}): {description}")]
    StreamRejected {
        target: String,
        action: &'static str,
        stream: String,
        code: String,
        description: String,
    },
    #[error("{target}: stream {stream:?} not found ({code}): {description}")]
    NotFound {
        target: String,
        stream: String,
        code: String,
        description: String,
    },
    #[error("{target}: connection lost: {reason}")]
    Lost { target: String, reason: String },
    #[error(
        "{target}: connection lost ({reason}); {attempts} reconnect attempts failed, the last with: {last}"
    )]
    ReconnectFailed {
        target: String,
        reason: String,
        attempts: u32,
        last: Box<ClientError>,
    },
}

/// What kind of failure a [`ClientError`] is, for mapping onto GStreamer error domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not open the connection (resolve, refuse, time out, broken handshake).
    Open,
    /// The server refused the credentials, the application or the stream name.
    NotAuthorized,
    /// The stream does not exist.
    NotFound,
    /// A working connection broke.
    Lost,
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Transport(_)
            | ClientError::TimedOut { .. }
            | ClientError::Failed { .. } => ErrorKind::Open,
            ClientError::Rejected { .. }
            | ClientError::Auth { .. }
            | ClientError::StreamRejected { .. } => ErrorKind::NotAuthorized,
            ClientError::NotFound { .. } => ErrorKind::NotFound,
            ClientError::Lost { .. } | ClientError::ReconnectFailed { .. } => ErrorKind::Lost,
        }
    }

    /// The server took the handshake but closed, or went silent, after our `connect`: what a
    /// server that chokes on unknown connect fields does.
    pub(crate) fn failed_at_connect(&self) -> bool {
        matches!(
            self,
            ClientError::Failed { stage, .. } | ClientError::TimedOut { stage, .. }
                if *stage == open::STAGE_CONNECT_RESULT
        )
    }

    /// Failures that another attempt cannot fix: the server decided, not the network.
    fn is_final(&self) -> bool {
        matches!(
            self,
            ClientError::Rejected { .. } | ClientError::Auth { .. }
        )
    }
}

/// GstProgress-like phases of [`Notice::Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    Start,
    Complete,
    Error,
}

/// What the driver tells the element outside the data flow.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Around connecting and reconnecting. `code` is "connect" or "reconnect".
    Progress {
        kind: ProgressKind,
        code: &'static str,
        text: String,
    },
    /// Something went wrong but the connection goes on (or is being retried).
    Warning(String),
    /// The publisher failed for good; no more frames will be taken. (The player reports its
    /// failure in its data flow instead, see [`PlayItem::Error`].)
    Error(ClientError),
}

/// The element's callback for notices. It runs on a runtime thread and must not block.
pub type NoticeFn = Arc<dyn Fn(Notice) + Send + Sync>;

/// Which authentication to answer a `NetConnection.Connect.Rejected` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Never authenticate.
    None,
    /// Use the method the server names in its rejection (Adobe or Limelight).
    #[default]
    Auto,
    /// Adobe (`authmod=adobe`) only.
    Adobe,
    /// Limelight (`authmod=llnw`) only.
    Llnw,
}

/// When and how often to reconnect after a working connection was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub enabled: bool,
    /// `None`: keep trying for ever.
    pub max_attempts: Option<u32>,
    /// Wait before the first attempt; doubled after each failed attempt.
    pub initial_delay: Duration,
    /// The doubling stops here.
    pub max_delay: Duration,
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay.max(self.initial_delay))
    }
}

/// What every client connection needs, whatever it does once connected.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where to connect; `url.username` / `url.password` are the credentials for
    /// authentication (never sent in the clear).
    pub url: RtmpUrl,
    pub authmod: AuthMode,
    /// Bound on opening a connection: DNS, TCP, handshake and the `connect` exchange, and on
    /// each later wait for the server's answer.
    pub timeout: Duration,
    /// `flashVer` in `connect`; omitted when `None`.
    pub flash_version: Option<String>,
    /// Values appended to the `connect` command after the command object.
    pub extra_connect_args: Vec<amf0::Value>,
    pub reconnect: ReconnectPolicy,
    /// TLS for rtmps and rtmpts, built once per element start (loading the roots is slow);
    /// `None` means the defaults (verification on, system roots).
    pub tls: Option<TlsConnector>,
    /// The Enhanced RTMP codecs announced in `connect` (empty: a legacy connect).
    pub enhanced_codecs: Vec<FourCc>,
}

/// Every FourCC the elements carry, as `enhanced-codecs` takes them by default.
pub const DEFAULT_ENHANCED_CODECS: &str = "hvc1,av01,vp09,vp08,avc1,Opus,fLaC,ac-3,ec-3,mp4a,.mp3";

/// Parses `enhanced-codecs`: FourCCs separated by commas (FFmpeg's `-rtmp_enhanced_codecs`
/// spelling, `hvc1,av01,Opus`), each one we know; empty means none.
pub fn parse_enhanced_codecs(text: &str) -> Result<Vec<FourCc>, String> {
    let mut out = Vec::new();
    for code in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let known = caps::VIDEO_FOURCCS
            .iter()
            .chain(caps::AUDIO_FOURCCS)
            .find(|f| f.to_string() == code);
        match known {
            Some(f) if !out.contains(f) => out.push(*f),
            Some(_) => {}
            None => {
                return Err(format!(
                    "enhanced-codecs: {code:?} is not a FourCC we carry (known: {})",
                    caps::VIDEO_FOURCCS
                        .iter()
                        .chain(caps::AUDIO_FOURCCS)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
        }
    }
    Ok(out)
}

/// What a client announces in `connect` for `codecs`: a player can take (decode or forward)
/// them, a publisher can send (encode or forward) them; multitrack, ModEx and the nanosecond
/// offset are read on both sides, and both follow ReconnectRequests (make-before-break).
pub fn enhanced_caps(codecs: &[FourCc], role: ClientRole) -> EnhancedCaps {
    let caps_ex = caps::CAPS_MULTITRACK
        | caps::CAPS_MODEX
        | caps::CAPS_TIMESTAMP_NANO_OFFSET
        | caps::CAPS_RECONNECT;
    let mask = match role {
        ClientRole::Play => caps::CAN_DECODE | caps::CAN_FORWARD,
        ClientRole::Publish => caps::CAN_ENCODE | caps::CAN_FORWARD,
    };
    EnhancedCaps::for_codecs(codecs, mask, caps_ex)
}

/// Connection statistics, as the `stats` property shows them. The first eight fields are
/// rtmp2's; the counters after them are ours. The last snapshot is kept after disconnecting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub in_chunk_size: u32,
    pub out_chunk_size: u32,
    pub in_window_ack_size: u32,
    pub out_window_ack_size: u32,
    pub in_bytes_total: u64,
    pub out_bytes_total: u64,
    pub in_bytes_acked: u64,
    pub out_bytes_acked: u64,
    /// Media bits per second over the last few seconds.
    pub bitrate: u64,
    /// Media messages (audio, video, data) moved to or from the server.
    pub frames: u64,
    /// Media messages dropped (a full hold buffer while reconnecting, unusable input).
    pub drops: u64,
    /// Successful reconnections.
    pub reconnects: u32,
    /// Enhanced RTMP ReconnectRequests followed (make-before-break moves to a new tcUrl).
    pub reconnect_requests: u32,
    /// Publisher: media messages that arrived while no connection was up and were held.
    pub held: u64,
    /// Publisher: media messages sent again after a reconnect (headers and the group of
    /// pictures since the last keyframe) so the new stream starts at a keyframe.
    pub resent: u64,
}

/// Parses rtmp2's `extra-connect-args`: librtmp `conn=` items separated by spaces, each
/// `[conn=]TYPE:VALUE` with TYPE `B` (0 or 1), `N` (number), `S` (string) or `Z` (null).
/// Objects and named values are refused, as rtmp2 does.
pub fn parse_extra_connect_args(text: &str) -> Result<Vec<amf0::Value>, String> {
    let mut values = Vec::new();
    for token in text.split_whitespace() {
        let item = token.strip_prefix("conn=").unwrap_or(token);
        let Some((kind, value)) = item.split_once(':') else {
            return Err(format!(
                "extra connect argument {token:?} is not of the form TYPE:VALUE"
            ));
        };
        let parsed = match kind {
            "B" => match value {
                "0" => amf0::Value::Boolean(false),
                "1" => amf0::Value::Boolean(true),
                other => {
                    return Err(format!(
                        "extra connect argument {token:?}: boolean {other:?} is not 0 or 1"
                    ));
                }
            },
            "N" => amf0::Value::Number(value.parse::<f64>().map_err(|_| {
                format!("extra connect argument {token:?}: {value:?} is not a number")
            })?),
            "S" => amf0::Value::String(value.to_string()),
            "Z" => amf0::Value::Null,
            other => {
                return Err(format!(
                    "extra connect argument {token:?}: type {other:?} is not supported \
                     (B, N, S or Z; objects and named values are not)"
                ));
            }
        };
        values.push(parsed);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_connect_args_parse_the_four_types() {
        let v = parse_extra_connect_args("conn=B:1 conn=N:3.5 S:hello Z: conn=B:0").unwrap();
        assert_eq!(
            v,
            vec![
                amf0::Value::Boolean(true),
                amf0::Value::Number(3.5),
                amf0::Value::String("hello".into()),
                amf0::Value::Null,
                amf0::Value::Boolean(false),
            ]
        );
        assert!(parse_extra_connect_args("").unwrap().is_empty());
    }

    #[test]
    fn extra_connect_args_errors_name_the_item() {
        let e = parse_extra_connect_args("conn=O:1").unwrap_err();
        assert!(e.contains("conn=O:1") && e.contains("\"O\""), "{e}");
        let e = parse_extra_connect_args("conn=N:abc").unwrap_err();
        assert!(e.contains("\"abc\""), "{e}");
        let e = parse_extra_connect_args("conn=B:2").unwrap_err();
        assert!(e.contains("\"2\""), "{e}");
        let e = parse_extra_connect_args("nonsense").unwrap_err();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn reconnect_delay_doubles_up_to_the_cap() {
        let p = ReconnectPolicy {
            enabled: true,
            max_attempts: None,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_millis(3000),
        };
        let ms: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 3000, 3000]);
        assert_eq!(p.delay(1000).as_millis(), 3000);
    }
}
