//! One player's queue in a fan-out [`Hub`](super::hub::Hub): references to the shared
//! messages, a byte bound, the skip-to-keyframe state and the drop count, and — for a *direct*
//! player — the socket the hub writes to itself while the queue is empty.
//!
//! Invariants: the queue only ever holds a prefix-consistent stream (headers first, then media
//! from a sync point on, gaps only directly before a sync point); its lock orders every write
//! to a direct player's socket; nothing here waits.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use rsrtmp_engine::chunk::decode_message_full;
use rsrtmp_engine::legacy::{Accept, Needs};
use rsrtmp_engine::message::Message;
use rsrtmp_engine::session::EnhancedCaps;

/// What kind of media a message carries; decides where a sync point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
    Data,
}

/// One message of the stream, chunk-encoded once and shared by every player.
#[derive(Debug)]
pub struct Frame {
    /// The message chunk-encoded with a full header (see [`encode_message_full`]) at
    /// `chunk_size`: the only copy of its payload the hub keeps, GOP cache included.
    pub bytes: Bytes,
    pub chunk_size: u32,
    pub kind: Kind,
    /// A video keyframe. Audio frames are sync points only in streams without video.
    pub keyframe: bool,
    /// The message's timestamp (ms): how late the stream arrives is measured from it.
    pub time: u32,
    /// What a player must understand to take it (the strict policy's filter).
    pub needs: Needs,
}

impl Frame {
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The message itself, for a player that cannot take the shared bytes (its own cipher,
    /// stream id or chunk size): a slice of them when it fits one chunk, else copied out.
    ///
    /// [`encode_message_full`]: rsrtmp_engine::chunk::encode_message_full
    pub fn message(&self) -> Message {
        decode_message_full(&self.bytes, self.chunk_size)
            .expect("a frame's bytes are one message as encode_message_full wrote it")
    }
}

/// A snapshot of one player's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerStats {
    pub peer: SocketAddr,
    /// Bytes written to the player's socket so far.
    pub bytes: u64,
    /// Messages skipped because the player fell behind.
    pub drops: u64,
    /// Writes to the player's socket (one per message without merged writes).
    pub sends: u64,
    /// How the player is connected (`rtmp`, `rtmps`, `rtmpt`...), as its connection said.
    pub transport: &'static str,
    /// The player is written the hub's shared bytes (not its own encoding).
    pub shared_bytes: bool,
    /// The Enhanced RTMP capabilities its `connect` announced.
    pub announced: Option<Arc<EnhancedCaps>>,
}

/// When and as what a message went into a player's queue.
#[derive(Debug, Clone, Copy)]
pub struct Queued {
    pub at: Instant,
    /// Media (dropped when the player falls behind), not a header or metadata.
    pub media: bool,
}

impl Queued {
    pub fn media(at: Instant) -> Queued {
        Queued { at, media: true }
    }

    /// A header or metadata, never dropped.
    pub fn kept(at: Instant) -> Queued {
        Queued { at, media: false }
    }
}

/// One entry of a player's queue.
#[derive(Debug, Clone)]
pub enum Item {
    /// A message to write (its shared bytes, normally).
    Frame(Arc<Frame>, Queued),
    /// The player's own session output (direct players only: their task writes through the
    /// queue too, so that nothing lands inside a message the hub is writing).
    Own(Bytes),
    /// The stream ended: tell the player and close the connection after what came before.
    End,
}

impl Item {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Item::Frame(f, _) => &f.bytes,
            Item::Own(b) => b,
            Item::End => &[],
        }
    }
}

/// A socket the hub may write to without waiting (see the module docs).
pub trait DirectSocket: Send + Sync {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing. The hub's write.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// The same for the player's task, which waits for room after a `WouldBlock`: this one
    /// must leave the socket's readiness so that the wait does not return at once.
    fn try_write_vectored_then_wait(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_write_vectored(bufs)
    }
}

/// What [`PlayerQueue::flush_direct`] got done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is written.
    Empty,
    /// The socket is full: wait until it is writable and flush again.
    Full,
    /// Everything before the end of the stream is written: tell the player it ended.
    End,
}

/// Most buffers handed to one vectored write.
pub(super) const MAX_IOV: usize = 64;
/// Queue capacity (items) an empty queue keeps.
pub(super) const SHRINK_ABOVE: usize = 8;

pub(super) struct QueueInner {
    pub(super) items: VecDeque<Item>,
    /// Bytes of the queued items, counted whole (a partly written front item included).
    pub(super) bytes: usize,
    /// Bytes of the front item already written (direct players).
    pub(super) front_written: usize,
    /// The socket the hub writes to itself, for a direct player.
    pub(super) direct: Option<Arc<dyn DirectSocket>>,
    /// A write to the direct socket failed; the player's task reports it and ends.
    pub(super) failed: Option<io::ErrorKind>,
    /// Dropping media until the next sync point.
    pub(super) skipping: bool,
    pub(super) drops: u64,
    /// No more items will come (removed or stream ended).
    pub(super) closed: bool,
}

impl QueueInner {
    pub(super) fn push(&mut self, item: Item, len: usize) {
        self.items.push_back(item);
        self.bytes += len;
    }

    /// Gives back the room a burst (a new player's cached GOP, a stall) made the empty queue
    /// grow to: a few kilobytes per player otherwise kept for good.
    pub(super) fn shrink(&mut self) {
        if self.items.is_empty() && self.items.capacity() > SHRINK_ABOVE {
            self.items.shrink_to(SHRINK_ABOVE);
        }
    }

    /// How long the oldest message still queued has waited (`None`: no message queued).
    pub(super) fn age(&self, now: Instant) -> Option<Duration> {
        self.items.iter().find_map(|item| match item {
            Item::Frame(_, queued) => Some(now.saturating_duration_since(queued.at)),
            _ => None,
        })
    }

    /// Takes the queued media out, keeping headers, metadata, the player's own output, the
    /// end, and a front item already partly written. Returns how many went.
    pub(super) fn drop_media(&mut self) -> u64 {
        let keep_front = self.front_written > 0;
        let (mut dropped, mut bytes, mut first) = (0, 0, true);
        self.items.retain(|item| {
            let keep = match item {
                Item::Frame(f, queued) if queued.media && !(first && keep_front) => {
                    bytes += f.len();
                    false
                }
                _ => true,
            };
            first = false;
            dropped += u64::from(!keep);
            keep
        });
        self.bytes -= bytes;
        dropped
    }

    pub(super) fn pop_front(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        self.bytes -= item.bytes().len();
        self.front_written = 0;
        Some(item)
    }

    /// For a direct player with nothing queued: writes `bytes` at once. Returns how much the
    /// socket took (all of it, normally); the rest must be queued. Never called with a
    /// backlog, so the bytes cannot overtake anything.
    pub(super) fn write_through(
        &mut self,
        bytes: &[u8],
        sent: &AtomicU64,
        sends: &AtomicU64,
    ) -> usize {
        if !self.items.is_empty() || self.failed.is_some() {
            return 0;
        }
        let Some(sock) = &self.direct else {
            return 0;
        };
        match sock.try_write_vectored(&[IoSlice::new(bytes)]) {
            Ok(n) => {
                sent.fetch_add(n as u64, Ordering::Relaxed);
                sends.fetch_add(1, Ordering::Relaxed);
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                self.failed = Some(e.kind());
                0
            }
        }
    }
}

/// One player's bounded queue of shared message bytes.
pub struct PlayerQueue {
    pub(super) peer: SocketAddr,
    pub(super) inner: Mutex<QueueInner>,
    pub(super) notify: tokio::sync::Notify,
    pub(super) bytes_sent: AtomicU64,
    /// Writes to the socket so far (see [`PlayerStats::sends`]).
    pub(super) sends: AtomicU64,
    /// How the player is connected and what it announced, for the stats.
    pub(super) label: Mutex<PlayerLabel>,
    /// Under the strict policy, what the player takes; `None`: everything.
    pub(super) accept: Option<Accept>,
    /// Merged writes: the hub only queues, its merging thread flushes (see `hub::merge`).
    merged: bool,
}

/// What a player's connection tells about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayerLabel {
    /// `rtmp`, `rtmps`, `rtmpt`...
    pub transport: &'static str,
    /// The player takes the hub's shared bytes.
    pub shared_bytes: bool,
    /// The Enhanced RTMP capabilities its `connect` announced.
    pub announced: Option<Arc<EnhancedCaps>>,
}

impl PlayerQueue {
    pub(super) fn new(
        peer: SocketAddr,
        direct: Option<Arc<dyn DirectSocket>>,
        accept: Option<Accept>,
        merged: bool,
    ) -> PlayerQueue {
        PlayerQueue {
            peer,
            accept,
            merged,
            inner: Mutex::new(QueueInner {
                items: VecDeque::new(),
                bytes: 0,
                front_written: 0,
                direct,
                failed: None,
                skipping: false,
                drops: 0,
                closed: false,
            }),
            notify: tokio::sync::Notify::new(),
            bytes_sent: AtomicU64::new(0),
            sends: AtomicU64::new(0),
            label: Mutex::new(PlayerLabel::default()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub(super) fn push_always(&self, b: &Arc<Frame>, now: Instant, defer: bool) {
        let q = self.lock();
        if q.closed {
            return;
        }
        self.enqueue(q, b, Queued::kept(now), defer);
    }

    /// Merged writes: the hub's merging thread writes this player.
    pub(super) fn is_merged(&self) -> bool {
        self.merged
    }

    /// Writes `f` through for a direct player with an empty queue, and queues what is left
    /// (or all of it, otherwise), waking the task when the queue was empty. The frame is
    /// referenced (a reference count touched) only when it is queued. With merged writes it
    /// is only queued: the merging thread writes it or wakes the task. With `defer` it is
    /// only queued too: the hub flushes the queue after the last message of its batch.
    pub(super) fn enqueue(
        &self,
        mut q: MutexGuard<'_, QueueInner>,
        f: &Arc<Frame>,
        queued: Queued,
        defer: bool,
    ) {
        let len = f.len();
        let only_queue = self.merged || defer;
        let written = if only_queue {
            0
        } else {
            q.write_through(&f.bytes, &self.bytes_sent, &self.sends)
        };
        if written == len {
            return;
        }
        // With merged writes only the merging thread wakes the task, once per window; in a
        // batch, the flush after it.
        let wake = q.items.is_empty() && !only_queue;
        q.push(Item::Frame(f.clone(), queued), len);
        if wake {
            q.front_written = written;
        }
        let failed = q.failed.is_some();
        drop(q);
        if wake || failed {
            self.notify.notify_one();
        }
    }

    /// Queues media under the player's bounds: `limit` bytes, and when `max_age` is set, the
    /// age of its oldest queued message. Over the age bound, the queued media is dropped too
    /// (the player is that far behind: what it still has to read is stale), so the player
    /// starts again at the next sync point with a lag of one bound, not of its whole queue.
    /// `lateness`: how late the message itself reaches this player (its input lateness and
    /// the sends to the players before it, see `Delivery::to`); past the age bound, unless it
    /// is a sync point, the player skips to the next one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push_media(
        &self,
        b: &Arc<Frame>,
        sync: bool,
        limit: usize,
        now: Instant,
        max_age: Option<Duration>,
        lateness: Duration,
        defer: bool,
    ) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        if !sync && max_age.is_some_and(|max| lateness > max) {
            // A sync point still goes: it is what the player starts again from, and without it
            // the players late in the list would never get one.
            q.skipping = true;
            q.drops += 1;
            return;
        }
        let late = |q: &QueueInner| max_age.is_some_and(|max| q.age(now).is_some_and(|a| a > max));
        let mut stale = late(&q);
        if stale {
            let dropped = q.drop_media();
            q.drops += dropped;
            q.skipping = true;
            // Still late: a message it is in the middle of, or a header, has waited that long.
            stale = late(&q);
        }
        // An empty queue takes any frame, so that one frame larger than the bound cannot
        // make a player skip for ever.
        let fits = !stale && (q.bytes == 0 || q.bytes + b.len() <= limit);
        if q.skipping && !(sync && fits) {
            q.drops += 1;
            return;
        }
        if !fits {
            q.skipping = true;
            q.drops += 1;
            return;
        }
        q.skipping = false;
        self.enqueue(q, b, Queued::media(now), defer);
    }

    pub(super) fn push_end(&self) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        q.items.push_back(Item::End);
        q.closed = true;
        drop(q);
        self.notify.notify_one();
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Moves up to `max` queued items into `out`. Returns false when the queue is closed and
    /// drained: the player's task should end.
    pub fn take(&self, out: &mut Vec<Item>, max: usize) -> bool {
        let mut guard = self.lock();
        let q = &mut *guard;
        let n = q.items.len().min(max);
        for item in q.items.drain(..n) {
            q.bytes -= item.bytes().len();
            out.push(item);
        }
        if q.items.is_empty() {
            q.shrink();
        }
        !(q.closed && q.items.is_empty() && n == 0)
    }

    /// A direct player's task queues its session's own output.
    pub fn push_own(&self, b: Bytes) {
        let mut q = self.lock();
        let len = b.len();
        q.push(Item::Own(b), len);
    }

    /// The player is direct (the hub writes to its socket).
    pub fn is_direct(&self) -> bool {
        self.lock().direct.is_some()
    }

    /// A direct player's task writes what is queued, without waiting: until the queue is
    /// empty, the socket is full or the end of the stream is next. A failed write (here or
    /// in the hub) is the error.
    pub fn flush_direct(&self) -> io::Result<Flushed> {
        let mut guard = self.lock();
        let q = &mut *guard;
        let Some(sock) = q.direct.clone() else {
            return Ok(Flushed::Empty);
        };
        loop {
            if let Some(kind) = q.failed {
                return Err(kind.into());
            }
            if matches!(q.items.front(), Some(Item::End)) {
                q.pop_front();
                return Ok(Flushed::End);
            }
            let n = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                for item in q.items.iter().take(MAX_IOV) {
                    let b = item.bytes();
                    if matches!(item, Item::End) {
                        break;
                    }
                    iov[k] = IoSlice::new(if k == 0 { &b[q.front_written..] } else { b });
                    k += 1;
                }
                if k == 0 {
                    q.shrink();
                    return Ok(Flushed::Empty);
                }
                match sock.try_write_vectored_then_wait(&iov[..k]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Full),
                    Err(e) => {
                        q.failed = Some(e.kind());
                        return Err(e);
                    }
                }
            };
            self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            self.sends.fetch_add(1, Ordering::Relaxed);
            let mut left = n;
            while left > 0 {
                let front = q.items.front().expect("wrote no more than queued");
                let rest = front.bytes().len() - q.front_written;
                if rest <= left {
                    left -= rest;
                    q.pop_front();
                } else {
                    q.front_written += left;
                    left = 0;
                }
            }
        }
    }

    /// Bytes written to the player so far.
    pub fn sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Waits until something was queued into the empty queue (or the queue closed) since the
    /// last call. Pushes onto a non-empty queue wake nobody: the player drains its queue
    /// before it waits again (see [`take`](Self::take) and [`is_empty`](Self::is_empty)), so
    /// it wakes once per burst, not once per message.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    /// The player's task reports bytes it wrote, in one write.
    pub fn add_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
        self.sends.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> PlayerStats {
        let label = self.label.lock().unwrap_or_else(|e| e.into_inner()).clone();
        PlayerStats {
            peer: self.peer,
            bytes: self.bytes_sent.load(Ordering::Relaxed),
            drops: self.lock().drops,
            sends: self.sends.load(Ordering::Relaxed),
            transport: label.transport,
            shared_bytes: label.shared_bytes,
            announced: label.announced,
        }
    }

    /// Records how the player is connected, for [`stats`](Self::stats).
    pub fn set_label(&self, label: PlayerLabel) {
        *self.label.lock().unwrap_or_else(|e| e.into_inner()) = label;
    }

    /// The hub let the player go and everything queued was taken or written.
    pub fn is_finished(&self) -> bool {
        let q = self.lock();
        q.closed && q.items.is_empty()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Bytes queued and not yet taken.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}
