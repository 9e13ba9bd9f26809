//! The publisher: a task on the shared runtime that takes the sink's frames through a bounded
//! channel and publishes them, holding what arrives during an outage (see [`HoldBook`]) and
//! sending it on the next connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use super::hold::HoldBook;
use super::media::{MediaFrame, MediaKind};
use super::open::{
    Ctx, Link, Meter, Shared, failed_attempt, first_open, follow_target, open, reconnect_attempt,
    reconnect_tc_url,
};
use super::{ClientConfig, ClientError, Notice, NoticeFn, ProgressKind, Stats, StopCommands};
use crate::net::runtime;
use crate::rtmp::command::StatusCode;
use crate::rtmp::session::{ClientEvent, ClientRole};

/// Frames the sink may queue ahead of the connection task.
const PUBLISH_QUEUE: usize = 64;
/// Bytes queued for the socket beyond which the publisher takes no new frames.
const OUT_HIGH_WATER: usize = 512 * 1024;

/// What only a publisher needs.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub chunk_size: u32,
    pub stop_commands: StopCommands,
    /// Most stream time held for a reconnect (see [`HoldBook`]).
    pub max_hold: Duration,
}

enum PubCmd {
    Frame(MediaFrame),
    /// End of stream: stop commands, polite close, then the reply.
    Finish(oneshot::Sender<()>),
}

/// The sink's handle on its connection task. Dropping it aborts the task.
pub struct Publisher {
    tx: mpsc::Sender<PubCmd>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    target: String,
}

impl Publisher {
    /// Starts connecting at once, on the shared runtime.
    pub fn start(cfg: ClientConfig, publish: PublishConfig, notice: NoticeFn) -> Publisher {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let ctx = Ctx {
            cfg,
            role: ClientRole::Publish,
            chunk_size: Some(publish.chunk_size),
            notice,
            shared: shared.clone(),
        };
        let target = ctx.target();
        let task = runtime::runtime().spawn(async move {
            let mut rx = rx;
            if let Err(e) = run_publisher(&ctx, &publish, &mut rx).await {
                ctx.shared.fail(e.clone());
                (ctx.notice)(Notice::Error(e));
            }
        });
        Publisher {
            tx,
            shared,
            task,
            target,
        }
    }

    fn gone(&self) -> ClientError {
        self.shared.failure().unwrap_or_else(|| ClientError::Lost {
            target: self.target.clone(),
            reason: "the connection task ended".into(),
        })
    }

    /// Queues a frame if the queue has room; gives it back when the queue is full.
    pub fn try_send(&self, frame: MediaFrame) -> Result<Option<MediaFrame>, ClientError> {
        match self.tx.try_send(PubCmd::Frame(frame)) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(PubCmd::Frame(frame))) => Ok(Some(frame)),
            Err(mpsc::error::TrySendError::Full(_)) => unreachable!("a frame was sent"),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.gone()),
        }
    }

    /// Queues a frame; waits while the queue is full.
    pub async fn send(&self, frame: MediaFrame) -> Result<(), ClientError> {
        self.tx
            .send(PubCmd::Frame(frame))
            .await
            .map_err(|_| self.gone())
    }

    /// Ends the stream after every queued frame: stop commands, then a polite close. Returns
    /// when the connection is closed (or could not be recovered).
    pub async fn finish(&self) -> Result<(), ClientError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(PubCmd::Finish(reply))
            .await
            .map_err(|_| self.gone())?;
        done.await.map_err(|_| self.gone())
    }

    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum LiveEnd {
    Finish(oneshot::Sender<()>),
    Gone,
    Lost(String),
    /// The server sent an Enhanced RTMP ReconnectRequest (its `tcUrl`, if any).
    Move(Option<String>),
}

/// How following a ReconnectRequest ended.
enum Moved {
    /// Publishing on the new connection; the old one is closing.
    Done,
    /// Still publishing on the old connection (the new one could not be opened).
    Stayed,
    /// The old connection broke meanwhile: reconnect (to the new place).
    Lost(String),
    Finish(oneshot::Sender<()>),
    Gone,
}

async fn run_publisher(
    ctx: &Ctx,
    publish: &PublishConfig,
    rx: &mut mpsc::Receiver<PubCmd>,
) -> Result<(), ClientError> {
    let mut book = HoldBook::new(publish.max_hold.as_millis() as u64);
    let mut meter = Meter::new();
    let mut link = first_open(ctx).await?;
    // Where the stream goes after a followed ReconnectRequest.
    let mut moved: Option<Ctx> = None;
    loop {
        let ctx = moved.as_ref().unwrap_or(ctx);
        let target = ctx.target();
        let end = publish_live(ctx, &mut link, rx, &mut book, &mut meter).await;
        meter.publish(&ctx.shared, Some(&link.session), Some(&book));
        match end {
            LiveEnd::Finish(reply) => {
                let _ = link.session.stop(publish.stop_commands);
                link.session.close();
                meter.publish(&ctx.shared, Some(&link.session), Some(&book));
                link.close().await;
                let _ = reply.send(());
                return Ok(());
            }
            LiveEnd::Gone => {
                link.session.close();
                link.close().await;
                return Ok(());
            }
            LiveEnd::Move(tc_url) => {
                let Some(next) = follow_target(ctx, tc_url.as_deref()) else {
                    continue;
                };
                match follow_reconnect(&next, publish, &mut link, rx, &mut book, &mut meter).await {
                    Moved::Done => {
                        ctx.shared.update(|s| s.reconnect_requests += 1);
                        ctx.progress(
                            ProgressKind::Complete,
                            "reconnect",
                            format!(
                                "Publishing {:?} on {} as the server asked (was {target})",
                                next.cfg.url.stream,
                                next.target()
                            ),
                        );
                        moved = Some(next);
                    }
                    Moved::Stayed => {}
                    Moved::Lost(reason) => {
                        // The old connection broke while the new one opened: reconnect where
                        // the server sent us.
                        ctx.warn(format!(
                            "connection to {target} lost ({reason}) while moving"
                        ));
                        link.session.close();
                        moved = Some(next);
                        let ctx = moved.as_ref().expect("just set");
                        meter.close_link(&link.session);
                        let Some((new_link, finish)) =
                            reconnect_publisher(ctx, rx, &mut book, &mut meter, &reason).await?
                        else {
                            return Ok(());
                        };
                        link = new_link;
                        ctx.shared.update(|s| s.reconnects += 1);
                        resume_on(ctx, &mut link, &mut book, &mut meter)?;
                        if let Some(reply) = finish {
                            return finish_on(publish, link, &book, &mut meter, reply, ctx).await;
                        }
                    }
                    Moved::Finish(reply) => {
                        return finish_on(publish, link, &book, &mut meter, reply, ctx).await;
                    }
                    Moved::Gone => {
                        link.session.close();
                        link.close().await;
                        return Ok(());
                    }
                }
            }
            LiveEnd::Lost(reason) => {
                meter.publish(&ctx.shared, Some(&link.session), Some(&book));
                meter.close_link(&link.session);
                if !ctx.cfg.reconnect.enabled {
                    return Err(ClientError::Lost { target, reason });
                }
                ctx.warn(format!(
                    "connection to {target} lost ({reason}); reconnecting"
                ));
                let Some((new_link, finish)) =
                    reconnect_publisher(ctx, rx, &mut book, &mut meter, &reason).await?
                else {
                    return Ok(());
                };
                link = new_link;
                ctx.shared.update(|s| s.reconnects += 1);
                let held = book.held_len();
                for frame in book.resume() {
                    if let Err(e) = link.session.send_media(
                        frame.kind,
                        frame.wire_timestamp(),
                        frame.payload.clone(),
                    ) {
                        return Err(ClientError::Lost {
                            target,
                            reason: e.to_string(),
                        });
                    }
                    meter.count(&frame);
                }
                let dropped = book.take_outage_dropped();
                if dropped > 0 {
                    ctx.warn(format!(
                        "{dropped} frames were dropped during the outage (max-hold-time)"
                    ));
                }
                ctx.progress(
                    ProgressKind::Complete,
                    "reconnect",
                    format!(
                        "Publishing {:?} on {target} again ({held} held frames sent, {dropped} \
                         dropped)",
                        ctx.cfg.url.stream
                    ),
                );
                if let Some(reply) = finish {
                    let _ = link.session.stop(publish.stop_commands);
                    link.session.close();
                    meter.publish(&ctx.shared, Some(&link.session), Some(&book));
                    link.close().await;
                    let _ = reply.send(());
                    return Ok(());
                }
            }
        }
    }
}

/// Publishes frames on a working connection until it ends.
async fn publish_live(
    ctx: &Ctx,
    link: &mut Link,
    rx: &mut mpsc::Receiver<PubCmd>,
    book: &mut HoldBook,
    meter: &mut Meter,
) -> LiveEnd {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Closed(reason) => return LiveEnd::Lost(reason.to_string()),
                // An error while publishing (NetStream.Failed when the server's pipeline
                // stopped taking the stream): the server took the stream away. As FFmpeg does,
                // the publish ends; reconnecting (when on) publishes again.
                ClientEvent::Status {
                    stream_id: 0,
                    status,
                } if status.status_code() == Some(StatusCode::ConnectReconnectRequest) => {
                    return LiveEnd::Move(reconnect_tc_url(&status));
                }
                ClientEvent::Status { status, .. } if status.level == "error" => {
                    return LiveEnd::Lost(format!(
                        "server reports {}: {}",
                        status.code, status.description
                    ));
                }
                _ => {}
            }
        }
        meter.publish(&ctx.shared, Some(&link.session), Some(book));
        let accepting = link.out_len < OUT_HIGH_WATER;
        tokio::select! {
            r = link.step() => {
                if let Err(e) = r {
                    return LiveEnd::Lost(e.to_string());
                }
            }
            cmd = rx.recv(), if accepting => match cmd {
                None => return LiveEnd::Gone,
                Some(PubCmd::Finish(reply)) => return LiveEnd::Finish(reply),
                Some(PubCmd::Frame(frame)) => {
                    if book.on_live(&frame) {
                        meter.count(&frame);
                        if let Err(e) = link.session.send_media(
                            frame.kind,
                            frame.wire_timestamp(),
                            frame.payload.clone(),
                        ) {
                            // The frame never left: keep it for the next connection.
                            let _ = book.hold(frame);
                            return LiveEnd::Lost(e.to_string());
                        }
                    }
                }
            },
            _ = ticker.tick() => meter.tick(),
        }
    }
}

/// Reconnects with backoff while holding the frames that keep arriving. Returns `None` when
/// the element went away, and the pending end-of-stream reply if one came meanwhile.
async fn reconnect_publisher(
    ctx: &Ctx,
    rx: &mut mpsc::Receiver<PubCmd>,
    book: &mut HoldBook,
    meter: &mut Meter,
    reason: &str,
) -> Result<Option<(Link, Option<oneshot::Sender<()>>)>, ClientError> {
    let mut finish = None;
    let mut attempt_no = 0u32;
    loop {
        attempt_no += 1;
        let delay = reconnect_attempt(ctx, attempt_no);
        let opening = async {
            tokio::time::sleep(delay).await;
            open(ctx).await
        };
        tokio::pin!(opening);
        let result = loop {
            tokio::select! {
                r = &mut opening => break r,
                cmd = rx.recv(), if finish.is_none() => match cmd {
                    None => return Ok(None),
                    Some(PubCmd::Frame(frame)) => {
                        if let Some(warning) = book.hold(frame) {
                            ctx.warn(warning);
                        }
                        meter.publish(&ctx.shared, None, Some(book));
                    }
                    // Keep reconnecting: the held frames still deserve delivery.
                    Some(PubCmd::Finish(reply)) => finish = Some(reply),
                },
            }
        };
        match result {
            Ok(link) => return Ok(Some((link, finish))),
            Err(e) => {
                if let Some(end) = failed_attempt(ctx, attempt_no, reason, e) {
                    return Err(end);
                }
            }
        }
    }
}

/// Sends what the book keeps for a new connection (after a reconnect).
fn resume_on(
    ctx: &Ctx,
    link: &mut Link,
    book: &mut HoldBook,
    meter: &mut Meter,
) -> Result<(), ClientError> {
    for frame in book.resume() {
        link.session
            .send_media(frame.kind, frame.wire_timestamp(), frame.payload.clone())
            .map_err(|e| ClientError::Lost {
                target: ctx.target(),
                reason: e.to_string(),
            })?;
        meter.count(&frame);
    }
    Ok(())
}

/// Ends the stream on `link`: stop commands, a polite close, then the reply.
async fn finish_on(
    publish: &PublishConfig,
    mut link: Link,
    book: &HoldBook,
    meter: &mut Meter,
    reply: oneshot::Sender<()>,
    ctx: &Ctx,
) -> Result<(), ClientError> {
    let _ = link.session.stop(publish.stop_commands);
    link.session.close();
    meter.publish(&ctx.shared, Some(&link.session), Some(book));
    link.close().await;
    let _ = reply.send(());
    Ok(())
}

/// Follows a ReconnectRequest, make-before-break: the new connection opens while the old one
/// keeps publishing; the switch happens at the next video key frame (any frame without video):
/// the new connection gets the headers and that frame on, the old one everything before it,
/// then its stop commands and a polite close. No frame is lost or sent twice.
async fn follow_reconnect(
    next: &Ctx,
    publish: &PublishConfig,
    link: &mut Link,
    rx: &mut mpsc::Receiver<PubCmd>,
    book: &mut HoldBook,
    meter: &mut Meter,
) -> Moved {
    let opening = open(next);
    tokio::pin!(opening);
    // Phase 1: keep publishing on the old connection while the new one opens.
    let mut new_link = loop {
        let accepting = link.out_len < OUT_HIGH_WATER;
        tokio::select! {
            r = &mut opening => match r {
                Ok(l) => break l,
                Err(e) => {
                    next.warn(format!("could not follow the reconnect request ({e}); staying"));
                    return Moved::Stayed;
                }
            },
            r = link.step() => {
                if let Err(e) = r {
                    return Moved::Lost(e.to_string());
                }
                if let Some(ClientEvent::Closed(reason)) = link.session.poll_event() {
                    return Moved::Lost(reason.to_string());
                }
            }
            cmd = rx.recv(), if accepting => match cmd {
                None => return Moved::Gone,
                Some(PubCmd::Finish(reply)) => return Moved::Finish(reply),
                Some(PubCmd::Frame(frame)) => {
                    if book.on_live(&frame) {
                        meter.count(&frame);
                        if let Err(e) = link.session.send_media(
                            frame.kind,
                            frame.wire_timestamp(),
                            frame.payload.clone(),
                        ) {
                            let _ = book.hold(frame);
                            return Moved::Lost(e.to_string());
                        }
                    }
                }
            },
        }
    };
    // Phase 2: both connections up; the old one takes frames until the switch point.
    loop {
        let accepting = link.out_len < OUT_HIGH_WATER && new_link.out_len < OUT_HIGH_WATER;
        tokio::select! {
            r = link.step() => {
                if let Err(e) = r {
                    return Moved::Lost(e.to_string());
                }
            }
            r = new_link.step() => {
                if let Err(e) = r {
                    next.warn(format!("the new connection failed ({e}); staying"));
                    return Moved::Stayed;
                }
            }
            cmd = rx.recv(), if accepting => match cmd {
                None => return Moved::Gone,
                Some(PubCmd::Finish(reply)) => return Moved::Finish(reply),
                Some(PubCmd::Frame(frame)) => {
                    let switch = !frame.header
                        && (!book.has_video()
                            || (frame.kind == MediaKind::Video && frame.keyframe));
                    if !book.on_live(&frame) {
                        continue;
                    }
                    meter.count(&frame);
                    let to = if switch { &mut new_link } else { &mut *link };
                    if switch {
                        for h in book.headers_at(frame.timestamp) {
                            let _ = to.session.send_media(h.kind, h.wire_timestamp(), h.payload.clone());
                        }
                    }
                    if let Err(e) =
                        to.session
                            .send_media(frame.kind, frame.wire_timestamp(), frame.payload.clone())
                    {
                        return Moved::Lost(e.to_string());
                    }
                    if switch {
                        break;
                    }
                }
            },
        }
    }
    let mut old = std::mem::replace(link, new_link);
    meter.close_link(&old.session);
    let _ = old.session.stop(publish.stop_commands);
    old.session.close();
    // The old server gets everything before the switch and the stop commands, on its own time.
    runtime::runtime().spawn(async move { old.close().await });
    Moved::Done
}
