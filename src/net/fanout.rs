//! Fan-out of one stream to many players, each message encoded once.
//!
//! The producer (the serversink's streaming thread) hands the [`Hub`] messages that are already
//! chunk-encoded into one `Bytes` each. The hub keeps what a new player needs to start clean
//! (metadata, sequence headers and, optionally, the group of pictures since the last keyframe)
//! and puts a reference to every message into every player's [`PlayerQueue`]. Nothing is copied
//! per player and nothing here ever waits: a player that does not keep up hits the byte bound
//! of its queue, from then on skips everything up to the next keyframe, and the skipped
//! messages are counted as drops. Player tasks take batches from their queue and write them with
//! vectored writes; a player is woken only when its queue goes from empty to non-empty.
//!
//! Invariants: a player's queue only ever holds a prefix-consistent stream (headers first, then
//! media from a sync point on, gaps only directly before a sync point); the hub lock is never
//! held while anything waits, and the lock order is hub state, then a player queue.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rsrtmp_engine::message::Message;

/// Default byte bound of one player's queue.
pub const DEFAULT_QUEUE_LIMIT: usize = 8 * 1024 * 1024;

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
    /// The message as the players' sessions would send it (for a player that cannot take the
    /// shared bytes, e.g. one on another message stream id).
    pub message: Message,
    /// `message` chunk-encoded with a full header, at the listener's chunk size.
    pub bytes: Bytes,
    pub kind: Kind,
    /// A video keyframe. Audio frames are sync points only in streams without video.
    pub keyframe: bool,
}

impl Frame {
    fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// Something that goes into the stream, as seen by the hub.
#[derive(Debug, Clone)]
pub enum Input {
    /// `onMetaData`: cached for new players and forwarded to current ones.
    Metadata(Arc<Frame>),
    /// AVC/HEVC/... decoder configuration: cached and forwarded, never dropped.
    VideoHeader(Arc<Frame>),
    /// AAC/... decoder configuration: cached and forwarded, never dropped.
    AudioHeader(Arc<Frame>),
    /// A media frame or any other data message.
    Frame(Arc<Frame>),
}

/// One entry of a player's queue.
#[derive(Debug, Clone)]
pub enum Item {
    /// A message to write (its shared bytes, normally).
    Frame(Arc<Frame>),
    /// The stream ended: tell the player and close the connection after what came before.
    End,
}

/// The hub's settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Give new players the frames since the last keyframe, so they start at once.
    pub gop_cache: bool,
    /// Byte bound of each player's queue, and of the cached group of pictures.
    pub queue_limit: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            gop_cache: true,
            queue_limit: DEFAULT_QUEUE_LIMIT,
        }
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
    /// How the player is connected (`rtmp`, `rtmps`, `rtmpt`...), as its connection said.
    pub transport: &'static str,
    /// The player is written the hub's shared bytes (not its own encoding).
    pub shared_bytes: bool,
}

#[derive(Default)]
struct StreamCache {
    metadata: Option<Arc<Frame>>,
    video_header: Option<Arc<Frame>>,
    audio_header: Option<Arc<Frame>>,
    has_video: bool,
    /// Frames since the last sync point; empty when caching is off or the GOP outgrew the bound.
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    gop_valid: bool,
}

#[derive(Default)]
struct HubState {
    cache: StreamCache,
    players: Vec<Arc<PlayerQueue>>,
    /// Set by [`Hub::end_stream`]; the next input starts a fresh stream.
    ended: bool,
}

/// The shared state of one served stream: its cache and its players.
pub struct Hub {
    config: HubConfig,
    state: Mutex<HubState>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            config,
            state: Mutex::new(HubState::default()),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one message to the stream: caches what new players need, queues it for every
    /// current player.
    pub fn push(&self, input: Input) {
        let limit = self.config.queue_limit;
        let mut st = self.lock();
        if st.ended {
            st.ended = false;
            st.cache = StreamCache::default();
        }
        match input {
            Input::Metadata(b) => {
                st.cache.metadata = Some(b.clone());
                for p in &st.players {
                    p.push_always(b.clone());
                }
            }
            Input::VideoHeader(b) => {
                st.cache.video_header = Some(b.clone());
                st.cache.has_video = true;
                for p in &st.players {
                    p.push_always(b.clone());
                }
            }
            Input::AudioHeader(b) => {
                st.cache.audio_header = Some(b.clone());
                for p in &st.players {
                    p.push_always(b.clone());
                }
            }
            Input::Frame(enc) => {
                if enc.kind == Kind::Video {
                    st.cache.has_video = true;
                }
                let sync = is_sync(&enc, st.cache.has_video);
                if self.config.gop_cache {
                    let cache = &mut st.cache;
                    if sync {
                        cache.gop.clear();
                        cache.gop_bytes = 0;
                        cache.gop_valid = true;
                    }
                    if cache.gop_valid {
                        if cache.gop_bytes + enc.len() > limit {
                            // A GOP this large would not fit a player's queue anyway.
                            cache.gop.clear();
                            cache.gop_bytes = 0;
                            cache.gop_valid = false;
                        } else {
                            cache.gop_bytes += enc.len();
                            cache.gop.push(enc.clone());
                        }
                    }
                }
                for p in &st.players {
                    p.push_media(&enc, sync, limit);
                }
            }
        }
    }

    /// Ends the current stream: every player is told and then let go; the cache is dropped so
    /// that the next stream starts fresh.
    pub fn end_stream(&self) {
        let mut st = self.lock();
        for p in st.players.drain(..) {
            p.push_end();
        }
        st.cache = StreamCache::default();
        st.ended = true;
    }

    /// Adds a player. Its queue starts with the cached headers and, when there is a usable
    /// cached GOP, that GOP; otherwise it waits for the next sync point.
    pub fn add_player(&self, peer: SocketAddr) -> Arc<PlayerQueue> {
        let mut st = self.lock();
        let player = Arc::new(PlayerQueue::new(peer));
        {
            let mut q = player.lock();
            let cache = &st.cache;
            for b in [&cache.metadata, &cache.video_header, &cache.audio_header]
                .into_iter()
                .flatten()
            {
                q.push(Item::Frame(b.clone()), b.len());
            }
            if self.config.gop_cache && cache.gop_valid && !cache.gop.is_empty() {
                for b in &cache.gop {
                    q.push(Item::Frame(b.clone()), b.len());
                }
            } else {
                q.skipping = true;
            }
        }
        st.players.push(player.clone());
        player
    }

    /// Forgets a player (its task ended). Safe to call for a player already let go.
    pub fn remove_player(&self, player: &Arc<PlayerQueue>) {
        let mut st = self.lock();
        st.players.retain(|p| !Arc::ptr_eq(p, player));
        player.close();
    }

    /// Lets every player go without telling them the stream ended (the element stopped).
    pub fn close_all(&self) {
        let mut st = self.lock();
        for p in st.players.drain(..) {
            p.close();
        }
    }

    pub fn player_count(&self) -> usize {
        self.lock().players.len()
    }

    pub fn stats(&self) -> Vec<PlayerStats> {
        self.lock().players.iter().map(|p| p.stats()).collect()
    }
}

fn is_sync(enc: &Frame, has_video: bool) -> bool {
    match enc.kind {
        Kind::Video => enc.keyframe,
        Kind::Audio => !has_video,
        Kind::Data => false,
    }
}

struct QueueInner {
    items: VecDeque<Item>,
    bytes: usize,
    /// Dropping media until the next sync point.
    skipping: bool,
    drops: u64,
    /// No more items will come (removed or stream ended).
    closed: bool,
}

impl QueueInner {
    fn push(&mut self, item: Item, len: usize) {
        self.items.push_back(item);
        self.bytes += len;
    }
}

/// One player's bounded queue of shared message bytes.
pub struct PlayerQueue {
    peer: SocketAddr,
    inner: Mutex<QueueInner>,
    notify: tokio::sync::Notify,
    bytes_sent: AtomicU64,
    /// Transport name and whether it takes shared bytes, for the stats.
    label: Mutex<(&'static str, bool)>,
}

impl PlayerQueue {
    fn new(peer: SocketAddr) -> PlayerQueue {
        PlayerQueue {
            peer,
            inner: Mutex::new(QueueInner {
                items: VecDeque::new(),
                bytes: 0,
                skipping: false,
                drops: 0,
                closed: false,
            }),
            notify: tokio::sync::Notify::new(),
            bytes_sent: AtomicU64::new(0),
            label: Mutex::new(("", false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn push_always(&self, b: Arc<Frame>) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        let len = b.len();
        let wake = q.items.is_empty();
        q.push(Item::Frame(b), len);
        drop(q);
        if wake {
            self.notify.notify_one();
        }
    }

    fn push_media(&self, b: &Arc<Frame>, sync: bool, limit: usize) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        // An empty queue takes any frame, so that one frame larger than the bound cannot
        // make a player skip for ever.
        let fits = q.bytes == 0 || q.bytes + b.len() <= limit;
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
        let wake = q.items.is_empty();
        q.push(Item::Frame(b.clone()), b.len());
        drop(q);
        if wake {
            self.notify.notify_one();
        }
    }

    fn push_end(&self) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        q.items.push_back(Item::End);
        q.closed = true;
        drop(q);
        self.notify.notify_one();
    }

    fn close(&self) {
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
            if let Item::Frame(b) = &item {
                q.bytes -= b.len();
            }
            out.push(item);
        }
        !(q.closed && q.items.is_empty() && n == 0)
    }

    /// Waits until something was queued into the empty queue (or the queue closed) since the
    /// last call. Pushes onto a non-empty queue wake nobody: the player drains its queue
    /// before it waits again (see [`take`](Self::take) and [`is_empty`](Self::is_empty)), so
    /// it wakes once per burst, not once per message.
    pub async fn wait(&self) {
        self.notify.notified().await
    }

    /// The player's task reports bytes it wrote.
    pub fn add_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn stats(&self) -> PlayerStats {
        let (transport, shared_bytes) = *self.label.lock().unwrap_or_else(|e| e.into_inner());
        PlayerStats {
            peer: self.peer,
            bytes: self.bytes_sent.load(Ordering::Relaxed),
            drops: self.lock().drops,
            transport,
            shared_bytes,
        }
    }

    /// Records how the player is connected, for [`stats`](Self::stats).
    pub fn set_label(&self, transport: &'static str, shared_bytes: bool) {
        *self.label.lock().unwrap_or_else(|e| e.into_inner()) = (transport, shared_bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn shared(kind: Kind, key: bool, tag: u8, len: usize) -> Arc<Frame> {
        let bytes = Bytes::from(vec![tag; len]);
        Arc::new(Frame {
            message: Message {
                type_id: 9,
                timestamp: 0,
                stream_id: 1,
                payload: bytes.clone(),
            },
            bytes,
            kind,
            keyframe: key,
        })
    }

    fn frame(kind: Kind, key: bool, tag: u8, len: usize) -> Input {
        Input::Frame(shared(kind, key, tag, len))
    }

    fn header(tag: u8) -> Arc<Frame> {
        shared(Kind::Data, false, tag, 1)
    }

    fn drain(p: &PlayerQueue) -> Vec<u8> {
        let mut out = Vec::new();
        p.take(&mut out, usize::MAX);
        out.iter()
            .map(|i| match i {
                Item::Frame(b) => b.bytes[0],
                Item::End => 0xEE,
            })
            .collect()
    }

    #[test]
    fn every_player_shares_the_same_bytes() {
        let hub = Hub::new(HubConfig::default());
        let a = hub.add_player(peer());
        let b = hub.add_player(peer());
        let f = shared(Kind::Video, true, 7, 5);
        let bytes = f.bytes.clone();
        hub.push(Input::Frame(f));
        let (mut qa, mut qb) = (Vec::new(), Vec::new());
        a.take(&mut qa, 10);
        b.take(&mut qb, 10);
        let (Item::Frame(x), Item::Frame(y)) = (&qa[0], &qb[0]) else {
            panic!("expected bytes, got {qa:?} {qb:?}");
        };
        // Same allocation: the payload was not copied per player.
        assert_eq!(x.bytes.as_ptr(), bytes.as_ptr());
        assert_eq!(y.bytes.as_ptr(), bytes.as_ptr());
    }

    #[test]
    fn late_player_gets_headers_then_gop_from_last_keyframe() {
        let hub = Hub::new(HubConfig::default());
        hub.push(Input::Metadata(header(1)));
        hub.push(Input::VideoHeader(header(2)));
        hub.push(Input::AudioHeader(header(3)));
        hub.push(frame(Kind::Video, true, 10, 4));
        hub.push(frame(Kind::Audio, false, 11, 4));
        hub.push(frame(Kind::Video, true, 20, 4));
        hub.push(frame(Kind::Audio, false, 21, 4));
        hub.push(frame(Kind::Video, false, 22, 4));
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Video, false, 23, 4));
        assert_eq!(drain(&p), vec![1, 2, 3, 20, 21, 22, 23]);
    }

    #[test]
    fn without_gop_cache_a_late_player_waits_for_a_keyframe() {
        let hub = Hub::new(HubConfig {
            gop_cache: false,
            ..HubConfig::default()
        });
        hub.push(Input::VideoHeader(header(2)));
        hub.push(frame(Kind::Video, true, 10, 4));
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Audio, false, 11, 4));
        hub.push(frame(Kind::Video, false, 12, 4));
        hub.push(frame(Kind::Video, true, 20, 4));
        hub.push(frame(Kind::Audio, false, 21, 4));
        assert_eq!(drain(&p), vec![2, 20, 21]);
        assert_eq!(p.stats().drops, 2);
    }

    #[test]
    fn audio_only_streams_sync_on_any_audio_frame() {
        let hub = Hub::new(HubConfig {
            gop_cache: false,
            ..HubConfig::default()
        });
        hub.push(Input::AudioHeader(header(3)));
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Audio, false, 11, 4));
        assert_eq!(drain(&p), vec![3, 11]);
    }

    #[test]
    fn slow_player_skips_to_next_keyframe_and_counts_drops() {
        let hub = Hub::new(HubConfig {
            gop_cache: true,
            queue_limit: 10,
        });
        let slow = hub.add_player(peer());
        let fast = hub.add_player(peer());
        hub.push(frame(Kind::Video, true, 10, 4));
        drain(&fast);
        hub.push(frame(Kind::Video, false, 11, 4));
        drain(&fast);
        // 8 bytes queued for the slow one: the next 4 do not fit.
        hub.push(frame(Kind::Video, false, 12, 4));
        drain(&fast);
        hub.push(frame(Kind::Audio, false, 13, 1));
        drain(&fast);
        // The slow player catches up, but must still wait for a keyframe.
        assert_eq!(drain(&slow), vec![10, 11]);
        for (tag, key) in [(14, false), (20, true), (21, false)] {
            hub.push(frame(Kind::Video, key, tag, 4));
            drain(&fast);
        }
        assert_eq!(drain(&slow), vec![20, 21]);
        assert_eq!(slow.stats().drops, 3);
        assert_eq!(fast.stats().drops, 0);
    }

    #[test]
    fn headers_are_never_dropped() {
        let hub = Hub::new(HubConfig {
            gop_cache: true,
            queue_limit: 4,
        });
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Video, true, 10, 4));
        hub.push(frame(Kind::Video, false, 11, 4));
        hub.push(Input::VideoHeader(header(2)));
        assert_eq!(drain(&p), vec![10, 2]);
    }

    #[test]
    fn oversized_gop_is_not_cached() {
        let hub = Hub::new(HubConfig {
            gop_cache: true,
            queue_limit: 6,
        });
        hub.push(frame(Kind::Video, true, 10, 4));
        hub.push(frame(Kind::Video, false, 11, 4));
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Video, false, 12, 4));
        hub.push(frame(Kind::Video, true, 20, 4));
        assert_eq!(drain(&p), vec![20]);
    }

    #[test]
    fn end_stream_tells_players_and_the_next_stream_starts_fresh() {
        let hub = Hub::new(HubConfig::default());
        hub.push(Input::VideoHeader(header(2)));
        hub.push(frame(Kind::Video, true, 10, 4));
        let p = hub.add_player(peer());
        hub.end_stream();
        assert_eq!(drain(&p), vec![2, 10, 0xEE]);
        let mut out = Vec::new();
        assert!(!p.take(&mut out, 10), "an ended queue reports its end");
        assert_eq!(hub.player_count(), 0);
        // A new stream: nothing of the old one is replayed.
        hub.push(Input::VideoHeader(header(5)));
        let q = hub.add_player(peer());
        hub.push(frame(Kind::Video, true, 30, 4));
        assert_eq!(drain(&q), vec![5, 30]);
    }

    #[test]
    fn take_respects_the_batch_size_and_keeps_the_byte_count() {
        let hub = Hub::new(HubConfig::default());
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Audio, false, 1, 3));
        for i in 0..5 {
            hub.push(frame(Kind::Audio, false, i, 3));
        }
        let mut out = Vec::new();
        assert!(p.take(&mut out, 2));
        assert_eq!(out.len(), 2);
        assert_eq!(p.queued_bytes(), 12);
    }
}
