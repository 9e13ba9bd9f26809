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
//! A player whose socket can take the shared bytes as they are (plain TCP) is *direct*: the hub
//! writes to its socket itself, without blocking, while its queue is empty, the way an event loop
//! server does. Its task is not woken per message (one send per message per player and nothing
//! else); only what the socket does not take is queued, and the task flushes that when the
//! socket has room. The queue's lock orders every write to a direct player's socket.
//!
//! Invariants: a player's queue only ever holds a prefix-consistent stream (headers first, then
//! media from a sync point on, gaps only directly before a sync point); the hub lock is never
//! held while anything waits, and the lock order is hub state, then a player queue.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak, mpsc};

use bytes::Bytes;

pub use super::queue::{DirectSocket, Flushed, Frame, Item, Kind, PlayerQueue, PlayerStats};
pub use rsrtmp_engine::flv::HeaderKey;
use rsrtmp_engine::legacy::{Accept, Needs};
use rsrtmp_engine::session::EnhancedCaps;

/// Default byte bound of one player's queue.
pub const DEFAULT_QUEUE_LIMIT: usize = 8 * 1024 * 1024;

/// Something that goes into the stream, as seen by the hub.
#[derive(Debug, Clone)]
pub enum Input {
    /// `onMetaData`: cached for new players and forwarded to current ones.
    Metadata(Arc<Frame>),
    /// A track's decoder configuration (AVC/HEVC/AAC/Opus... sequence header, multichannel
    /// config, colorInfo), cached per slot and forwarded, never dropped.
    Header(HeaderKey, Arc<Frame>),
    /// A media frame or any other data message.
    Frame(Arc<Frame>),
}

/// The hub's settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Give new players the frames since the last keyframe, so they start at once.
    pub gop_cache: bool,
    /// Byte bound of each player's queue, and of the cached group of pictures.
    pub queue_limit: usize,
    /// The strict Enhanced RTMP policy: a player gets only the messages its `connect`
    /// announced it understands (FourCCs, multitrack, ModEx); one that announced nothing gets
    /// legacy FLV only. Off: every player gets everything, as the publisher sent it.
    pub strict: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            gop_cache: true,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            strict: false,
        }
    }
}

#[derive(Default)]
struct StreamCache {
    metadata: Option<Arc<Frame>>,
    /// Every track's headers, in the order their slots first appeared.
    headers: Vec<(HeaderKey, Arc<Frame>)>,
    has_video: bool,
    /// What the stream's track-0 video needs of a reader (strict policy: a player that cannot
    /// take it starts at any audio frame).
    video_needs: Needs,
    /// A media frame went out: a player joining now has missed the stream's start.
    started: bool,
    /// Frames since the last sync point; empty when caching is off or the GOP outgrew the bound.
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    gop_valid: bool,
}

#[derive(Default)]
struct HubState {
    cache: StreamCache,
    /// Rebuilt on every join and leave (rare) so that a delivery can share it with the
    /// helper thread for the price of one reference count.
    players: Arc<[Arc<PlayerQueue>]>,
    /// Set by [`Hub::end_stream`]; the next input starts a fresh stream.
    ended: bool,
    /// Players told the stream ended, until their connections let their queues go.
    draining: Vec<Weak<PlayerQueue>>,
}

impl HubState {
    fn set_players(&mut self, players: Vec<Arc<PlayerQueue>>) {
        self.players = players.into();
    }

    fn take_players(&mut self) -> Vec<Arc<PlayerQueue>> {
        let players = self.players.to_vec();
        self.players = Arc::new([]);
        players
    }
}

/// Players from which one message is delivered by two threads (see [`Helper`]).
const PARALLEL_FROM: usize = 128;

/// One message on its way to the players.
#[derive(Clone)]
enum Delivery {
    /// A header or metadata: never dropped.
    Always(Arc<Frame>),
    /// Media, dropped for a player that is skipping or over its bound.
    Media {
        frame: Arc<Frame>,
        sync: bool,
        limit: usize,
        /// What the stream's video needs (see `StreamCache::video_needs`).
        video: Needs,
    },
}

impl Delivery {
    fn to(&self, p: &PlayerQueue) {
        match self {
            Delivery::Always(f) => {
                if p.accept.as_ref().is_none_or(|a| a.takes(&f.needs)) {
                    p.push_always(f)
                }
            }
            Delivery::Media {
                frame,
                sync,
                limit,
                video,
            } => {
                let mut sync = *sync;
                if let Some(a) = &p.accept {
                    if !a.takes(&frame.needs) {
                        return;
                    }
                    // A player that gets none of the stream's video starts at any audio.
                    if frame.kind == Kind::Audio && !a.takes(video) {
                        sync = true;
                    }
                }
                p.push_media(frame, sync, *limit)
            }
        }
    }
}

type Job = (Arc<[Arc<PlayerQueue>]>, usize, Delivery);

/// A thread that delivers a message to the second half of a large hub's players while the
/// producer's thread does the first half: with hundreds of direct players the sends of one
/// message take milliseconds, and the last player's latency is the whole loop. The producer
/// waits for its half before it returns, still holding the hub lock, so a delivery is over
/// before the player list or the cache changes.
struct Helper {
    jobs: mpsc::SyncSender<Job>,
    done: Mutex<mpsc::Receiver<()>>,
}

impl Helper {
    fn start() -> Option<Helper> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(1);
        let (done_tx, done) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("rsrtmp-fanout".into())
            .spawn(move || {
                // Ends when the hub (and with it `jobs`) is gone.
                while let Ok((players, from, delivery)) = rx.recv() {
                    for p in &players[from..] {
                        delivery.to(p);
                    }
                    if done_tx.send(()).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Helper {
            jobs,
            done: Mutex::new(done),
        })
    }
}

/// The shared state of one served stream: its cache and its players.
pub struct Hub {
    config: HubConfig,
    state: Mutex<HubState>,
    /// Started with the first large delivery; `None` inside when the thread could not start.
    helper: OnceLock<Option<Helper>>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            config,
            state: Mutex::new(HubState::default()),
            helper: OnceLock::new(),
        }
    }

    /// Hands `delivery` to every player in `players`, split between this thread and the
    /// helper when there are many.
    fn deliver(&self, players: &Arc<[Arc<PlayerQueue>]>, delivery: Delivery) {
        let n = players.len();
        let helper = if n >= PARALLEL_FROM {
            self.helper.get_or_init(Helper::start).as_ref()
        } else {
            None
        };
        let Some(helper) = helper else {
            for p in players.iter() {
                delivery.to(p);
            }
            return;
        };
        let mid = n / 2;
        if helper
            .jobs
            .send((players.clone(), mid, delivery.clone()))
            .is_err()
        {
            // The helper is gone (it cannot panic, but be safe): do it all here.
            for p in players.iter() {
                delivery.to(p);
            }
            return;
        }
        for p in &players[..mid] {
            delivery.to(p);
        }
        let _ = helper.done.lock().unwrap_or_else(|e| e.into_inner()).recv();
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
                self.deliver(&st.players, Delivery::Always(b));
            }
            Input::Header(key, b) => {
                let cache = &mut st.cache;
                if b.kind == Kind::Video {
                    cache.has_video = true;
                    if key.track == 0 {
                        cache.video_needs = b.needs;
                    }
                }
                match cache.headers.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = b.clone(),
                    None => cache.headers.push((key, b.clone())),
                }
                self.deliver(&st.players, Delivery::Always(b));
            }
            Input::Frame(enc) => {
                if enc.kind == Kind::Video {
                    st.cache.has_video = true;
                    if !enc.needs.multitrack {
                        st.cache.video_needs = enc.needs;
                    }
                }
                st.cache.started = true;
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
                let delivery = Delivery::Media {
                    frame: enc,
                    sync,
                    limit,
                    video: st.cache.video_needs,
                };
                self.deliver(&st.players, delivery);
            }
        }
    }

    /// Ends the current stream: every player is told and then let go; the cache is dropped so
    /// that the next stream starts fresh.
    pub fn end_stream(&self) {
        let mut st = self.lock();
        st.draining.retain(|p| p.strong_count() > 0);
        for p in st.take_players() {
            p.push_end();
            st.draining.push(Arc::downgrade(&p));
        }
        st.cache = StreamCache::default();
        st.ended = true;
    }

    /// Players told the stream ended whose connections still run: they have not collected
    /// everything and hung up yet (their connection keeps the queue until then).
    pub fn draining(&self) -> usize {
        let mut st = self.lock();
        st.draining.retain(|p| p.strong_count() > 0);
        st.draining.len()
    }

    /// Adds a player. Its queue starts with the cached headers and, when there is a usable
    /// cached GOP, that GOP; otherwise it waits for the next sync point — unless no media
    /// went out yet, when it gets the stream from its first frame (audio that comes before
    /// the first keyframe included).
    pub fn add_player(&self, peer: SocketAddr) -> Arc<PlayerQueue> {
        self.add_player_with(peer, None, Vec::new(), None)
    }

    /// Adds a player, direct when `direct` is given (see the module docs): `preamble` (the
    /// session's output so far) goes out first, then the cache, and the hub writes to `direct`
    /// from then on. `announced` is what the player's `connect` said (the strict policy
    /// filters by it).
    pub fn add_player_with(
        &self,
        peer: SocketAddr,
        direct: Option<Arc<dyn DirectSocket>>,
        preamble: Vec<Bytes>,
        announced: Option<&EnhancedCaps>,
    ) -> Arc<PlayerQueue> {
        let mut st = self.lock();
        let accept = self.config.strict.then(|| Accept::from_caps(announced));
        let takes = |f: &Frame| accept.as_ref().is_none_or(|a| a.takes(&f.needs));
        let player = Arc::new(PlayerQueue::new(peer, direct, accept.clone()));
        {
            let mut q = player.lock();
            for b in preamble {
                let len = b.len();
                q.push(Item::Own(b), len);
            }
            let cache = &st.cache;
            for b in cache
                .metadata
                .iter()
                .chain(cache.headers.iter().map(|(_, b)| b))
                .filter(|b| takes(b))
            {
                q.push(Item::Frame(b.clone()), b.len());
            }
            if self.config.gop_cache && cache.gop_valid && !cache.gop.is_empty() {
                for b in cache.gop.iter().filter(|b| takes(b)) {
                    q.push(Item::Frame(b.clone()), b.len());
                }
            } else {
                q.skipping = cache.started;
            }
        }
        let mut players = st.players.to_vec();
        players.push(player.clone());
        st.set_players(players);
        player
    }

    /// Forgets a player (its task ended). Safe to call for a player already let go.
    pub fn remove_player(&self, player: &Arc<PlayerQueue>) {
        let mut st = self.lock();
        if st.players.iter().any(|p| Arc::ptr_eq(p, player)) {
            let players = st
                .players
                .iter()
                .filter(|p| !Arc::ptr_eq(p, player))
                .cloned()
                .collect();
            st.set_players(players);
        }
        player.close();
    }

    /// Lets every player go without telling them the stream ended (the element stopped).
    pub fn close_all(&self) {
        let mut st = self.lock();
        for p in st.take_players() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rsrtmp_engine::flv::FourCc;
    use std::io::{self, IoSlice};
    use std::sync::atomic::Ordering;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    fn shared(kind: Kind, key: bool, tag: u8, len: usize) -> Arc<Frame> {
        // The queue tests look at the first byte only: the tag stands in for encoded bytes.
        Arc::new(Frame {
            bytes: Bytes::from(vec![tag; len]),
            chunk_size: 4096,
            kind,
            keyframe: key,
            needs: Needs::default(),
        })
    }

    fn frame(kind: Kind, key: bool, tag: u8, len: usize) -> Input {
        Input::Frame(shared(kind, key, tag, len))
    }

    fn header(tag: u8) -> Arc<Frame> {
        shared(Kind::Data, false, tag, 1)
    }

    fn track_header(kind: Kind, type_id: u8, track: u8, tag: u8) -> Input {
        let key = HeaderKey {
            type_id,
            track,
            packet: 0,
        };
        Input::Header(key, shared(kind, false, tag, 1))
    }

    fn vheader(tag: u8) -> Input {
        track_header(Kind::Video, 9, 0, tag)
    }

    fn aheader(tag: u8) -> Input {
        track_header(Kind::Audio, 8, 0, tag)
    }

    fn drain(p: &PlayerQueue) -> Vec<u8> {
        let mut out = Vec::new();
        p.take(&mut out, usize::MAX);
        out.iter()
            .map(|i| match i {
                Item::Frame(b) => b.bytes[0],
                Item::Own(b) => b[0],
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
        hub.push(vheader(2));
        hub.push(aheader(3));
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
    fn a_player_there_before_the_first_frame_gets_every_frame() {
        for gop_cache in [true, false] {
            let hub = Hub::new(HubConfig {
                gop_cache,
                ..HubConfig::default()
            });
            let p = hub.add_player(peer());
            hub.push(vheader(2));
            hub.push(aheader(3));
            // Audio ahead of the first keyframe (an encoder with a video delay).
            hub.push(frame(Kind::Audio, false, 10, 4));
            hub.push(frame(Kind::Video, true, 11, 4));
            hub.push(frame(Kind::Audio, false, 12, 4));
            assert_eq!(drain(&p), vec![2, 3, 10, 11, 12], "gop_cache {gop_cache}");
            assert_eq!(p.stats().drops, 0);
        }
    }

    #[test]
    fn a_late_player_gets_the_headers_of_every_track() {
        let hub = Hub::new(HubConfig::default());
        hub.push(Input::Metadata(header(1)));
        hub.push(vheader(2));
        hub.push(track_header(Kind::Audio, 8, 0, 3));
        hub.push(track_header(Kind::Audio, 8, 1, 4));
        hub.push(frame(Kind::Video, true, 10, 4));
        // A new header of track 0 replaces that track's only.
        hub.push(track_header(Kind::Audio, 8, 0, 5));
        let p = hub.add_player(peer());
        assert_eq!(drain(&p), vec![1, 2, 5, 4, 10]);
    }

    #[test]
    fn without_gop_cache_a_late_player_waits_for_a_keyframe() {
        let hub = Hub::new(HubConfig {
            gop_cache: false,
            ..HubConfig::default()
        });
        hub.push(vheader(2));
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
        hub.push(aheader(3));
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Audio, false, 11, 4));
        assert_eq!(drain(&p), vec![3, 11]);
    }

    #[test]
    fn slow_player_skips_to_next_keyframe_and_counts_drops() {
        let hub = Hub::new(HubConfig {
            gop_cache: true,
            queue_limit: 10,
            strict: false,
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
            strict: false,
        });
        let p = hub.add_player(peer());
        hub.push(frame(Kind::Video, true, 10, 4));
        hub.push(frame(Kind::Video, false, 11, 4));
        hub.push(vheader(2));
        assert_eq!(drain(&p), vec![10, 2]);
    }

    #[test]
    fn oversized_gop_is_not_cached() {
        let hub = Hub::new(HubConfig {
            gop_cache: true,
            queue_limit: 6,
            strict: false,
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
        hub.push(vheader(2));
        hub.push(frame(Kind::Video, true, 10, 4));
        let p = hub.add_player(peer());
        hub.end_stream();
        assert_eq!(drain(&p), vec![2, 10, 0xEE]);
        let mut out = Vec::new();
        assert!(!p.take(&mut out, 10), "an ended queue reports its end");
        assert_eq!(hub.player_count(), 0);
        // A new stream: nothing of the old one is replayed.
        hub.push(vheader(5));
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

    /// A socket stand-in that takes at most `room` bytes (then `WouldBlock`) and keeps them.
    fn enhanced(kind: Kind, key: bool, tag: u8, fourcc: FourCc) -> Arc<Frame> {
        Arc::new(Frame {
            bytes: Bytes::from(vec![tag; 4]),
            chunk_size: 4096,
            kind,
            keyframe: key,
            needs: Needs {
                fourcc: Some(fourcc),
                ..Needs::default()
            },
        })
    }

    #[test]
    fn the_strict_policy_gives_each_player_what_it_announced() {
        let hub = Hub::new(HubConfig {
            strict: true,
            ..HubConfig::default()
        });
        let hevc_header = enhanced(Kind::Video, false, 1, FourCc::HVC1);
        let key = HeaderKey {
            type_id: 9,
            track: 0,
            packet: 0,
        };
        hub.push(Input::Header(key, hevc_header));
        hub.push(aheader(2));
        hub.push(Input::Frame(enhanced(Kind::Video, true, 3, FourCc::HVC1)));
        hub.push(frame(Kind::Audio, false, 4, 4));
        // Joining mid-stream: a legacy player, one that announced hvc1.
        let legacy = hub.add_player(peer());
        let caps = EnhancedCaps::for_codecs(&[FourCc::HVC1], 1, 0);
        let modern = hub.add_player_with(peer(), None, Vec::new(), Some(&caps));
        hub.push(frame(Kind::Audio, false, 5, 4));
        hub.push(Input::Frame(enhanced(Kind::Video, false, 6, FourCc::HVC1)));
        hub.push(frame(Kind::Audio, false, 7, 4));
        assert_eq!(
            drain(&legacy),
            vec![2, 4, 5, 7],
            "audio only, from its header on"
        );
        assert_eq!(drain(&modern), vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[derive(Default)]
    struct Sock {
        room: Mutex<usize>,
        got: Mutex<Vec<u8>>,
        broken: std::sync::atomic::AtomicBool,
    }

    impl DirectSocket for Sock {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.broken.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(*room);
                self.got.lock().unwrap().extend_from_slice(&b[..take]);
                *room -= take;
                n += take;
            }
            Ok(n)
        }
    }

    fn direct_player(hub: &Hub, room: usize, preamble: &[u8]) -> (Arc<PlayerQueue>, Arc<Sock>) {
        let sock = Arc::new(Sock::default());
        *sock.room.lock().unwrap() = room;
        let pre = vec![Bytes::copy_from_slice(preamble)];
        let p = hub.add_player_with(
            peer(),
            Some(sock.clone() as Arc<dyn DirectSocket>),
            pre,
            None,
        );
        (p, sock)
    }

    #[test]
    fn a_direct_player_is_written_by_the_hub_while_its_socket_has_room() {
        let hub = Hub::new(HubConfig::default());
        hub.push(vheader(2));
        let (p, sock) = direct_player(&hub, 1 << 20, b"own");
        // The preamble and the cache wait for the task's first flush.
        assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
        assert_eq!(&sock.got.lock().unwrap()[..], b"own\x02");
        hub.push(frame(Kind::Video, true, 10, 3));
        hub.push(frame(Kind::Audio, false, 11, 2));
        // Written through at once: nothing queued for the task.
        assert!(p.is_empty());
        assert_eq!(&sock.got.lock().unwrap()[4..], [10, 10, 10, 11, 11]);
        assert_eq!(p.sent(), 9);
    }

    #[test]
    fn what_a_full_socket_does_not_take_is_queued_in_order() {
        let hub = Hub::new(HubConfig::default());
        let (p, sock) = direct_player(&hub, 2, b"x");
        assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
        // One byte of room left: the frame goes out in part, the rest and the next frame wait.
        hub.push(frame(Kind::Video, true, 10, 3));
        hub.push(frame(Kind::Video, false, 11, 2));
        p.push_own(Bytes::from_static(&[12]));
        assert_eq!(p.queued_bytes(), 6);
        assert_eq!(p.flush_direct().unwrap(), Flushed::Full);
        *sock.room.lock().unwrap() = 100;
        assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
        assert_eq!(&sock.got.lock().unwrap()[..], b"x\x0a\x0a\x0a\x0b\x0b\x0c");
        assert_eq!(p.queued_bytes(), 0);
        // Caught up: written through again.
        hub.push(frame(Kind::Audio, false, 13, 1));
        assert!(p.is_empty());
        assert_eq!(sock.got.lock().unwrap().last(), Some(&13));
    }

    #[test]
    fn a_direct_player_ends_after_everything_before_the_end() {
        let hub = Hub::new(HubConfig::default());
        let (p, sock) = direct_player(&hub, 0, b"x");
        hub.push(frame(Kind::Video, true, 10, 2));
        hub.end_stream();
        assert_eq!(p.flush_direct().unwrap(), Flushed::Full);
        *sock.room.lock().unwrap() = 100;
        assert_eq!(p.flush_direct().unwrap(), Flushed::End);
        assert_eq!(&sock.got.lock().unwrap()[..], b"x\x0a\x0a");
        // The end-of-stream messages still go out after the end.
        p.push_own(Bytes::from_static(b"eos"));
        assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
        assert!(p.is_finished());
    }

    #[test]
    fn a_failed_direct_write_is_reported_to_the_task() {
        let hub = Hub::new(HubConfig::default());
        let (p, sock) = direct_player(&hub, 100, b"x");
        assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
        sock.broken.store(true, Ordering::Relaxed);
        hub.push(frame(Kind::Video, true, 10, 2));
        let err = p.flush_direct().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_large_hub_delivers_through_two_threads_in_order() {
        let hub = Hub::new(HubConfig::default());
        hub.push(vheader(2));
        let n = PARALLEL_FROM * 2 + 1;
        let players: Vec<_> = (0..n).map(|_| hub.add_player(peer())).collect();
        for i in 0..50u8 {
            hub.push(frame(Kind::Video, i % 10 == 0, 10 + i, 3));
        }
        let want: Vec<u8> = std::iter::once(2).chain(10..60).collect();
        for (i, p) in players.iter().enumerate() {
            assert_eq!(drain(p), want, "player {i}");
        }
        // Leaving players are not delivered to, the others still are.
        for p in &players[..n / 2] {
            hub.remove_player(p);
        }
        hub.push(frame(Kind::Audio, false, 99, 1));
        assert!(players[0].is_finished());
        assert_eq!(drain(&players[n - 1]), vec![99]);
    }
}
