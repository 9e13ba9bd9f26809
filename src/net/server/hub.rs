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
use std::time::Instant;

use bytes::Bytes;

pub use super::queue::{
    DirectSocket, Flushed, Frame, Item, Kind, PlayerQueue, PlayerStats, Queued,
};
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
    /// Merged writes: each player's messages go out once per window, in one vectored send
    /// (see `merge`). `None`: every message at once.
    pub merge_window: Option<std::time::Duration>,
    /// Age bound of each player's queue: a player whose oldest queued message waited longer
    /// (plus the merge window) loses its queued media and skips to the next sync point. The
    /// same bound on the input: media that reaches the hub later than this behind the stream's
    /// own pace (see `late`) is dropped for everyone up to the next sync point. And at the
    /// send: a player whose turn in a delivery comes after the message is past the bound
    /// skips to the next sync point. `None`: only the byte bound.
    pub queue_time: Option<std::time::Duration>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            gop_cache: true,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            strict: false,
            merge_window: None,
            queue_time: None,
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
    /// How late the input arrives (used with `queue_time`).
    late: late::Lateness,
    /// Dropping late input up to the next sync point.
    late_skip: bool,
    /// Media messages dropped because the input came too late.
    late_drops: u64,
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
    Always(Arc<Frame>, Instant),
    /// Media, dropped for a player that is skipping or over its bounds.
    Media {
        frame: Arc<Frame>,
        sync: bool,
        limit: usize,
        now: Instant,
        max_age: Option<std::time::Duration>,
        /// How late the input brought it (with `queue_time`; see `late`).
        late: std::time::Duration,
        /// What the stream's video needs (see `StreamCache::video_needs`).
        video: Needs,
    },
}

impl Delivery {
    /// Queues it for `p`; a direct player with nothing queued is written at once unless
    /// `defer` (a batch: the player's queue is flushed once after its last message).
    /// `waited`: how long this delivery has been going on before it reached `p`.
    fn to(&self, p: &PlayerQueue, defer: bool, waited: std::time::Duration) {
        match self {
            Delivery::Always(f, now) => {
                if p.accept.as_ref().is_none_or(|a| a.takes(&f.needs)) {
                    p.push_always(f, *now, defer)
                }
            }
            Delivery::Media {
                frame,
                sync,
                limit,
                now,
                max_age,
                late,
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
                // How late it reaches this player: the input's lateness and the sends to the
                // players before it.
                p.push_media(frame, sync, *limit, *now, *max_age, *late + waited, defer)
            }
        }
    }
}

/// What one delivery hands to each player: one message, or several that arrived together.
#[derive(Clone)]
enum Work {
    One(Delivery),
    /// Queued for each player in order, then written in one send (see [`Hub::push_batch`]).
    Batch(Arc<[Delivery]>),
}

impl Work {
    fn to(&self, p: &PlayerQueue, waited: std::time::Duration) {
        match self {
            Work::One(d) => d.to(p, false, waited),
            Work::Batch(ds) => {
                for d in ds.iter() {
                    d.to(p, true, waited);
                }
                // With merged writes the merging thread writes it, in its window.
                if !p.is_merged() {
                    merge::flush(p);
                }
            }
        }
    }
}

/// Players, the index to start from, the work, and the delivery's start (see [`deliver_to`]).
type Job = (Arc<[Arc<PlayerQueue>]>, usize, Work, Option<Instant>);

/// Hands `work` to each of `players`. With `started` (a hub with `queue_time`), each player
/// is told how long the delivery has taken before its turn (a clock read per player, a few
/// tens of ns beside its send).
fn deliver_to(players: &[Arc<PlayerQueue>], work: &Work, started: Option<Instant>) {
    for p in players {
        work.to(
            p,
            started.map_or(std::time::Duration::ZERO, |t| t.elapsed()),
        );
    }
}

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
    /// None when this process may run on one core only (its affinity mask or its cgroup's CPU
    /// quota, as `available_parallelism` reads them): two threads taking turns on one core
    /// finish the last player no sooner and add two thread switches per message.
    fn start() -> Option<Helper> {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return None;
        }
        let (jobs, rx) = mpsc::sync_channel::<Job>(1);
        let (done_tx, done) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("rsrtmp-fanout".into())
            .spawn(move || {
                // Ends when the hub (and with it `jobs`) is gone.
                while let Ok((players, from, delivery, started)) = rx.recv() {
                    deliver_to(&players[from..], &delivery, started);
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
    /// The latest ReconnectRequest for the players (see [`Hub::request_reconnect`]).
    reconnect: tokio::sync::watch::Sender<Option<ReconnectAsk>>,
    /// The flushing thread of merged writes, when `merge_window` is set.
    merger: Option<merge::Merger>,
}

/// An Enhanced RTMP ReconnectRequest for every player that announced capsEx Reconnect: the
/// connections of such players watch for it and send it once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectAsk {
    /// Where the players go (`None`: the same place).
    pub tc_url: Option<String>,
    pub description: String,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        let merger = config.merge_window.and_then(merge::Merger::start);
        Hub {
            merger,
            config,
            state: Mutex::new(HubState::default()),
            helper: OnceLock::new(),
            reconnect: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Asks every player that announced capsEx Reconnect to reconnect to `tc_url` (the same
    /// place when `None`); returns how many were asked. The others are left alone (they would
    /// not understand it).
    pub fn request_reconnect(&self, tc_url: Option<String>, description: String) -> u32 {
        use rsrtmp_engine::session::caps::CAPS_RECONNECT;
        let asked = self
            .stats()
            .iter()
            .filter(|p| p.announced.as_ref().is_some_and(|c| c.has(CAPS_RECONNECT)))
            .count() as u32;
        self.reconnect.send_replace(Some(ReconnectAsk {
            tc_url,
            description,
        }));
        asked
    }

    /// What a player's connection watches for ReconnectRequests; only requests made from now
    /// on count.
    pub fn reconnect_requests(&self) -> tokio::sync::watch::Receiver<Option<ReconnectAsk>> {
        self.reconnect.subscribe()
    }

    /// Hands `delivery` to every player in `players`, split between this thread and the
    /// helper when there are many. `started`: see [`deliver_to`].
    fn deliver(&self, players: &Arc<[Arc<PlayerQueue>]>, delivery: Work, started: Option<Instant>) {
        let n = players.len();
        let helper = if n >= PARALLEL_FROM {
            self.helper.get_or_init(Helper::start).as_ref()
        } else {
            None
        };
        let Some(helper) = helper else {
            deliver_to(players, &delivery, started);
            return;
        };
        let mid = n / 2;
        if helper
            .jobs
            .send((players.clone(), mid, delivery.clone(), started))
            .is_err()
        {
            // The helper is gone (it cannot panic, but be safe): do it all here.
            deliver_to(players, &delivery, started);
            return;
        }
        deliver_to(&players[..mid], &delivery, started);
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
        self.push_at(input, Instant::now());
    }

    /// [`push`](Self::push) at `now`: when the message arrived, for the players' age bound.
    pub fn push_at(&self, input: Input, now: Instant) {
        let mut st = self.lock();
        if let Some(d) = self.admit(&mut st, input, now) {
            self.deliver_timed(&mut st, Work::One(d));
        }
    }

    /// [`deliver`](Self::deliver) to the current players. With `queue_time` it is timed: each
    /// player is told how long the delivery took before it got there, and the whole time goes
    /// into the input lateness (see `late`).
    fn deliver_timed(&self, st: &mut HubState, work: Work) {
        if self.config.queue_time.is_none() {
            self.deliver(&st.players, work, None);
            return;
        }
        let start = Instant::now();
        self.deliver(&st.players, work, Some(start));
        st.late.busy(start.elapsed());
    }

    /// Adds messages that arrived together (a backlog handed over at once): each is cached
    /// and bounded as [`push`](Self::push) would, and each player gets all of them in one
    /// send instead of one send per message. (Until that send, the batch's messages count
    /// toward a player's byte bound.)
    pub fn push_batch(&self, inputs: impl IntoIterator<Item = Input>) {
        let now = Instant::now();
        let mut st = self.lock();
        let deliveries: Vec<Delivery> = inputs
            .into_iter()
            .filter_map(|input| self.admit(&mut st, input, now))
            .collect();
        let work = match deliveries.len() {
            0 => return,
            1 => Work::One(deliveries.into_iter().next().expect("one")),
            _ => Work::Batch(deliveries.into()),
        };
        self.deliver_timed(&mut st, work);
    }

    /// Takes one message into the stream's cache and bounds; what the players get of it,
    /// if anything.
    fn admit(&self, st: &mut HubState, input: Input, now: Instant) -> Option<Delivery> {
        let limit = self.config.queue_limit;
        let max_age = self
            .config
            .queue_time
            .map(|t| t + self.config.merge_window.unwrap_or_default());
        if st.ended {
            st.ended = false;
            st.cache = StreamCache::default();
            st.late.reset();
            st.late_skip = false;
        }
        match input {
            Input::Metadata(b) => {
                st.cache.metadata = Some(b.clone());
                Some(Delivery::Always(b, now))
            }
            Input::Header(key, b) => {
                let cache = &mut st.cache;
                if cache.started {
                    // A configuration that comes after media (a restarted or reconnected
                    // publisher, a changed encoder): the cached frames of its kind may belong
                    // to the old one. Without the video, a joiner waits for the next keyframe.
                    if b.kind == Kind::Video {
                        cache.gop.clear();
                        cache.gop_valid = false;
                    } else {
                        cache.gop.retain(|f| f.kind != b.kind);
                    }
                    cache.gop_bytes = cache.gop.iter().map(|f| f.len()).sum();
                }
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
                Some(Delivery::Always(b, now))
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
                let mut input_late = std::time::Duration::ZERO;
                if let Some(bound) = self.config.queue_time
                    && enc.kind != Kind::Data
                {
                    let kind = usize::from(enc.kind == Kind::Video);
                    let late = st.late.observe(kind, u64::from(enc.time), now);
                    input_late = late;
                    if st.late_skip || late > bound {
                        if !sync {
                            // Behind for everyone: what would cost a send per player goes,
                            // up to the next sync point (headers and data still go).
                            st.late_skip = true;
                            st.late_drops += 1;
                            return None;
                        }
                        st.late_skip = false;
                    }
                }
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
                Some(Delivery::Media {
                    frame: enc,
                    sync,
                    limit,
                    now,
                    max_age,
                    late: input_late,
                    video: st.cache.video_needs,
                })
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
        self.players_changed(&st);
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
        let merged = self.merger.is_some();
        let player = Arc::new(PlayerQueue::new(peer, direct, accept.clone(), merged));
        {
            // The cache counts as queued now: a new player's backlog, not its lag.
            let now = Instant::now();
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
                q.push(Item::Frame(b.clone(), Queued::kept(now)), b.len());
            }
            if self.config.gop_cache && cache.gop_valid && !cache.gop.is_empty() {
                for b in cache.gop.iter().filter(|b| takes(b)) {
                    q.push(Item::Frame(b.clone(), Queued::media(now)), b.len());
                }
            } else {
                q.skipping = cache.started;
            }
        }
        let mut players = st.players.to_vec();
        players.push(player.clone());
        st.set_players(players);
        self.players_changed(&st);
        player
    }

    /// Tells the merging thread who the players are now.
    fn players_changed(&self, st: &HubState) {
        if let Some(m) = &self.merger {
            m.set_players(&st.players);
        }
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
            self.players_changed(&st);
        }
        player.close();
    }

    /// Lets every player go without telling them the stream ended (the element stopped).
    pub fn close_all(&self) {
        let mut st = self.lock();
        for p in st.take_players() {
            p.close();
        }
        self.players_changed(&st);
    }

    pub fn player_count(&self) -> usize {
        self.lock().players.len()
    }

    /// Media messages dropped for every player because the input arrived later than
    /// `queue_time` behind the stream's pace.
    pub fn late_drops(&self) -> u64 {
        self.lock().late_drops
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
mod tests;

mod late;
mod merge;
