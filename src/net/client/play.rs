//! What the two players share: the configuration and the items the source element sees, the
//! queue bound, how a play ends, the wake-up of whoever drives the connection, and the
//! reconnect step. The task player (`player`) and the direct player (`direct`) both use this;
//! neither imports the other's internals beyond the handle owning the direct driver.

use std::io;
use std::time::Duration;

use super::ClientError;
use super::media::MediaFrame;
use super::media::frame_from_message;
use super::open::{Ctx, Link, failed_attempt, open, reconnect_attempt, reconnect_tc_url};
use crate::rtmp::command::StatusCode;
use crate::rtmp::flv::TimestampExtender;
use crate::rtmp::session::{ClientEvent, ClientSession};

/// Frames the source's connection task may queue ahead of `create()`.
pub(super) const PLAY_QUEUE: usize = 256;

/// What only a player needs.
#[derive(Debug, Clone, Default)]
pub struct PlayConfig {
    /// End the stream (EOS) after this long without media.
    pub idle_timeout: Option<Duration>,
    /// A connection that closes without StreamEOF is an error rather than the end.
    pub no_eof_is_error: bool,
}

/// What the source gets from its connection task.
#[derive(Debug, Clone)]
pub enum PlayItem {
    Frame(MediaFrame),
    /// The connection was lost and a new one is up: what follows does not continue what came
    /// before.
    Discont,
    /// The stream ended (StreamEOF, unpublished, idle timeout, or closed without
    /// `no-eof-is-error`).
    Eos,
    /// The connection failed for good; nothing follows.
    Error(ClientError),
}

/// Wakes whoever drives the connection: a counter for waits on the runtime, a socket pair for
/// waits in `poll`.
pub(super) struct Wake {
    seq: tokio::sync::watch::Sender<u64>,
    tx: std::os::unix::net::UnixStream,
    pub(super) rx: std::os::unix::net::UnixStream,
}

impl Wake {
    pub(super) fn new() -> io::Result<Wake> {
        let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Wake {
            seq: tokio::sync::watch::channel(0).0,
            tx,
            rx,
        })
    }

    pub(super) fn raise(&self) {
        use std::io::Write;
        self.seq.send_modify(|n| *n += 1);
        // A full pipe already wakes the poller.
        let _ = (&self.tx).write(&[1]);
    }

    pub(super) fn drain(&self) {
        use std::io::Read;
        let mut sink = [0u8; 64];
        while matches!((&self.rx).read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Runs `fut` on `rt` until it completes (`Some`) or `stop()` holds (`None`), rechecking
    /// `stop` at every [`Wake::raise`].
    pub(super) fn block_on<F: std::future::Future>(
        &self,
        rt: &tokio::runtime::Runtime,
        stop: &dyn Fn() -> bool,
        fut: F,
    ) -> Option<F::Output> {
        let mut seq = self.seq.subscribe();
        rt.block_on(async {
            tokio::pin!(fut);
            loop {
                if stop() {
                    return None;
                }
                tokio::select! {
                    biased;
                    out = &mut fut => return Some(out),
                    _ = seq.changed() => {}
                }
            }
        })
    }
}

pub(super) enum PlayEnd {
    Eos(String),
    Gone,
    Lost(String),
    /// The server sent an Enhanced RTMP ReconnectRequest (its `tcUrl`, if any): not an end,
    /// the stream moves (see `follow`).
    Move(Option<String>),
}

impl PlayEnd {
    pub(super) fn describe(&self) -> String {
        match self {
            PlayEnd::Eos(why) => format!("end of stream: {why}"),
            PlayEnd::Gone => "the element is gone".into(),
            PlayEnd::Lost(why) => format!("connection lost: {why}"),
            PlayEnd::Move(to) => format!("asked to reconnect to {to:?}"),
        }
    }
}

/// The session's events while playing: frames into `frames`, or what ends the play here
/// (the end of the stream, a lost connection, a ReconnectRequest).
pub(super) fn session_events(
    ctx: &Ctx,
    session: &mut ClientSession,
    timestamps: &mut TimestampExtender,
    frames: &mut Vec<MediaFrame>,
) -> Option<PlayEnd> {
    while let Some(event) = session.poll_event() {
        match event {
            ClientEvent::Media(msg) => {
                if let Some(frame) = frame_from_message(&msg, timestamps) {
                    frames.push(frame);
                }
            }
            ClientEvent::StreamEof(id) if session.active_stream().is_none_or(|a| a == id) => {
                return Some(PlayEnd::Eos("StreamEOF".into()));
            }
            ClientEvent::Status {
                stream_id: 0,
                status,
            } if status.status_code() == Some(StatusCode::ConnectReconnectRequest) => {
                return Some(PlayEnd::Move(reconnect_tc_url(&status)));
            }
            ClientEvent::Status { status, .. } => match StatusCode::from_code(&status.code) {
                Some(
                    StatusCode::PlayUnpublishNotify
                    | StatusCode::PlayStop
                    | StatusCode::PlayComplete,
                ) => return Some(PlayEnd::Eos(status.code)),
                _ if status.level == "error" => ctx.warn(format!(
                    "server reports {}: {}",
                    status.code, status.description
                )),
                _ => {}
            },
            ClientEvent::Closed(reason) => return Some(PlayEnd::Lost(reason.to_string())),
            _ => {}
        }
    }
    None
}

pub(super) async fn reconnect_player(ctx: &Ctx, reason: &str) -> Result<Link, ClientError> {
    let mut attempt_no = 0u32;
    loop {
        attempt_no += 1;
        tokio::time::sleep(reconnect_attempt(ctx, attempt_no)).await;
        match open(ctx).await {
            Ok(link) => return Ok(link),
            Err(e) => {
                if let Some(end) = failed_attempt(ctx, attempt_no, reason, e) {
                    return Err(end);
                }
            }
        }
    }
}
