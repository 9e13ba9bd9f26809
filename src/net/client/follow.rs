//! A player following an Enhanced RTMP ReconnectRequest, make-before-break: the new connection
//! opens and starts playing while the old one still delivers; the stream moves over at a video
//! keyframe of the new connection, and what both connections carry of the same stream goes on
//! exactly once.
//!
//! Both servers normally carry the same stream (an origin's edges, a stream moved within a
//! cluster), with the same timestamps. The new server starts its players at its GOP cache's
//! keyframe K, usually before what the old connection already passed on: the switch is then
//! immediate, and the new connection's frames up to the last one passed on (per kind) are
//! dropped — the decoder goes on from the old connection's frames into the new one's. When K
//! is ahead, the old connection goes on until it reaches K (or falls silent). A new stream
//! whose timestamps are far from the old ones is another timeline: it starts at K after a
//! discontinuity, as after a reconnect.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;

use super::media::{MediaFrame, MediaKind};
use super::open::{Ctx, Link, Meter, open};
use super::play::{PlayEnd, PlayItem, session_events};
use crate::net::runtime;
use crate::rtmp::flv::TimestampExtender;

/// Timestamps further apart than this belong to different timelines.
const TIMELINE_SLACK_MS: u64 = 10_000;
/// How long the old connection may take to reach the new one's keyframe once the new one has
/// it (it may have stopped sending: a server that drains).
const CATCH_UP: Duration = Duration::from_secs(2);
/// Frames of the new connection kept before the switch; past this it happens at once.
const MAX_PENDING: usize = 2048;

/// Where the stream stands: the last timestamp passed on per kind, and after a switch, what
/// the new connection must go past before its frames are passed on.
#[derive(Debug, Default, Clone)]
pub(super) struct Continuity {
    last_video: Option<u64>,
    last_audio: Option<u64>,
    skip_video: Option<u64>,
    skip_audio: Option<u64>,
}

impl Continuity {
    /// Whether `frame` goes on (and if so, it is recorded as passed on). Headers and data
    /// always go on.
    pub(super) fn admit(&mut self, frame: &MediaFrame) -> bool {
        if frame.header {
            return true;
        }
        let (last, skip) = match frame.kind {
            MediaKind::Video => (&mut self.last_video, &mut self.skip_video),
            MediaKind::Audio => (&mut self.last_audio, &mut self.skip_audio),
            MediaKind::Data => return true,
        };
        if let Some(t) = *skip {
            if frame.timestamp <= t {
                return false;
            }
            *skip = None;
        }
        *last = Some(frame.timestamp);
        true
    }

    /// A discontinuity (a reconnect): nothing to skip, no timeline to compare with.
    pub(super) fn reset(&mut self) {
        *self = Continuity::default();
    }
}

/// How following ended.
pub(super) enum Followed {
    /// The stream plays on the new connection (now in `link`); the old one is closing.
    Moved,
    /// The new connection could not be used; the old one plays on.
    Stayed,
    /// The old connection ended and no new one took over.
    Ended(PlayEnd),
}

/// The new connection's side while it opens and until the switch.
struct Incoming {
    timestamps: TimestampExtender,
    pending: VecDeque<MediaFrame>,
    /// Index and timestamp of the frame the switch starts at.
    key: Option<(usize, u64)>,
}

impl Incoming {
    fn take(&mut self, frame: MediaFrame, has_video: bool) {
        let starts = !frame.header
            && match frame.kind {
                MediaKind::Video => frame.keyframe,
                MediaKind::Audio => !has_video,
                MediaKind::Data => false,
            };
        if starts && self.key.is_none() {
            self.key = Some((self.pending.len(), frame.timestamp));
        }
        self.pending.push_back(frame);
    }
}

/// Sends frames of the old connection on, until one reaches `until` (the new connection's
/// keyframe). True when it did: the rest of the old connection's frames are not wanted.
async fn pass_on(
    frames: &mut Vec<MediaFrame>,
    until: Option<u64>,
    cont: &mut Continuity,
    meter: &mut Meter,
    tx: &mpsc::Sender<PlayItem>,
) -> Result<bool, ()> {
    for frame in frames.drain(..) {
        if let Some(k) = until
            && frame.kind == MediaKind::Video
            && !frame.header
            && frame.timestamp >= k
        {
            // The rest of the drained frames are dropped with the iterator.
            return Ok(true);
        }
        if cont.admit(&frame) {
            meter.count(&frame);
            tx.send(PlayItem::Frame(frame)).await.map_err(|_| ())?;
        }
    }
    Ok(false)
}

/// What one step of the old connection leaves: its end, if it ended (a second
/// ReconnectRequest while following one is ignored); its frames go into `frames`.
fn old_step(
    ctx: &Ctx,
    r: std::io::Result<()>,
    link: &mut Link,
    timestamps: &mut TimestampExtender,
    frames: &mut Vec<MediaFrame>,
) -> Option<PlayEnd> {
    match r {
        Err(e) => Some(PlayEnd::Lost(e.to_string())),
        Ok(()) => session_events(ctx, &mut link.session, timestamps, frames)
            .filter(|end| !matches!(end, PlayEnd::Move(_))),
    }
}

/// Follows a ReconnectRequest to `next` (see the module notes). The caller counts it.
pub(super) async fn follow_play(
    ctx: &Ctx,
    next: &Ctx,
    link: &mut Link,
    tx: &mpsc::Sender<PlayItem>,
    meter: &mut Meter,
    timestamps: &mut TimestampExtender,
    cont: &mut Continuity,
) -> Followed {
    let opening = open(next);
    tokio::pin!(opening);
    let mut frames = Vec::new();
    let mut old_end: Option<PlayEnd> = None;
    // While the new connection opens, the old one plays on.
    let mut new_link = loop {
        tokio::select! {
            r = &mut opening => match r {
                Ok(l) => break l,
                Err(e) => {
                    next.warn(format!("could not follow the reconnect request ({e}); staying"));
                    return old_end.map_or(Followed::Stayed, Followed::Ended);
                }
            },
            r = link.step(), if old_end.is_none() => {
                old_end = old_step(ctx, r, link, timestamps, &mut frames);
                if pass_on(&mut frames, None, cont, meter, tx).await.is_err() {
                    return Followed::Ended(PlayEnd::Gone);
                }
            }
            _ = tx.closed() => return Followed::Ended(PlayEnd::Gone),
        }
    };
    let has_video = cont.last_video.is_some();
    let mut incoming = Incoming {
        timestamps: TimestampExtender::new(),
        pending: VecDeque::new(),
        key: None,
    };
    let mut catch_up: Option<tokio::time::Instant> = None;
    let mut reached = false;
    // Both up: the old connection plays until the switch point.
    let (start, same_timeline) = loop {
        if let Some((index, k)) = incoming.key {
            let same = cont
                .last_video
                .or(cont.last_audio)
                .is_none_or(|l| l.abs_diff(k) <= TIMELINE_SLACK_MS);
            let behind = cont.last_video.is_none_or(|l| k <= l);
            let late = catch_up.is_some_and(|t| tokio::time::Instant::now() >= t);
            if !same || behind || reached || late || old_end.is_some() {
                break (index, same);
            }
            catch_up.get_or_insert_with(|| tokio::time::Instant::now() + CATCH_UP);
        } else if incoming.pending.len() >= MAX_PENDING {
            break (0, true);
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            r = link.step(), if old_end.is_none() && !reached => {
                old_end = old_step(ctx, r, link, timestamps, &mut frames);
                let until = incoming.key.map(|(_, k)| k);
                match pass_on(&mut frames, until, cont, meter, tx).await {
                    Ok(r) => reached = r,
                    Err(()) => return Followed::Ended(PlayEnd::Gone),
                }
            }
            r = new_link.step() => {
                let end = match r {
                    Err(e) => Some(PlayEnd::Lost(e.to_string())),
                    Ok(()) => session_events(next, &mut new_link.session, &mut incoming.timestamps, &mut frames),
                };
                for frame in frames.drain(..) {
                    incoming.take(frame, has_video);
                }
                if let Some(end) = end {
                    next.warn(format!("the new connection ended before the switch ({}); staying", end.describe()));
                    new_link.session.close();
                    runtime::runtime().spawn(async move { new_link.close().await });
                    return old_end.map_or(Followed::Stayed, Followed::Ended);
                }
            }
            _ = tokio::time::sleep_until(catch_up.unwrap_or(far)), if catch_up.is_some() => {}
            _ = tx.closed() => return Followed::Ended(PlayEnd::Gone),
        }
    };
    // The switch.
    if same_timeline {
        cont.skip_video = cont.last_video;
        cont.skip_audio = cont.last_audio;
    } else {
        cont.reset();
        if tx.send(PlayItem::Discont).await.is_err() {
            return Followed::Ended(PlayEnd::Gone);
        }
    }
    for (i, frame) in incoming.pending.into_iter().enumerate() {
        // Before the keyframe only the headers can be used.
        if i < start && !frame.header {
            continue;
        }
        if cont.admit(&frame) {
            meter.count(&frame);
            if tx.send(PlayItem::Frame(frame)).await.is_err() {
                return Followed::Ended(PlayEnd::Gone);
            }
        }
    }
    let mut old = std::mem::replace(link, new_link);
    *timestamps = incoming.timestamps;
    meter.close_link(&old.session);
    old.session.close();
    // The old server gets its polite close on its own time.
    runtime::runtime().spawn(async move { old.close().await });
    Followed::Moved
}
