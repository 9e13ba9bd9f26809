//! The RTMP connection driver for the server side: runs a sans-IO [`ServerSession`] over any
//! byte stream, routes connect/publish/play through the listener, feeds a publisher's media to
//! its ingest endpoint and plays a hub out to a player.
//!
//! One task per connection, one loop: drain the session's events and bytes, move the player's
//! queued frames out (shared bytes, vectored writes), then wait for input, queued frames, a
//! deadline, or cancellation. A *direct* player (plain TCP taking the shared bytes, see
//! `fanout`) is written by the hub itself; its task only flushes what the socket did not take,
//! and sends its session's own bytes through the same queue so that they never land inside a
//! message. Writes are awaited in place under the idle deadline: a player that stops reading
//! only stalls its own task (the hub skips it to the next keyframe) until the deadline closes
//! it.
//!
//! Deadlines: until a publish or play is routed, the connection has the listener's handshake
//! timeout in total; after that, the route's idle timeout applies to a publisher's input and
//! to each write.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use rsrtmp_engine::session::{EnhancedCaps, ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::CAT;
use super::port::{
    AuthRequest, ByteStream, ConnSlot, Endpoint, Finishing, Route, Transport, split_query,
};
use crate::net::server::hub::{DirectSocket, Flushed, Hub, Item, PlayerQueue, ReconnectAsk};
use crate::net::server::ingest::{IngestClaim, IngestEvent};
use crate::net::server::playout::{CHUNK_SIZE, MEDIA_CSIDS, PLAY_STREAM_ID};
use crate::net::server::queue::PlayerLabel;
use crate::net::transport::tcp::Tcp;

/// Read buffer of a connection until it publishes: a player reads little more than the
/// handshake and a few commands, and every connection holds its buffer for its whole life.
const READ_BUF_SMALL: usize = 4 * 1024;
/// Read buffer of a publisher, which reads a whole stream.
const READ_BUF: usize = 64 * 1024;
/// Read buffer of a player, which only sends acknowledgements and the odd command.
const READ_BUF_PLAYER: usize = 1024;
/// Most queued frames moved into one round of writes.
const BATCH: usize = 64;
/// Most buffers handed to one vectored write.
const MAX_IOV: usize = 64;
/// Longest wait for a direct player's queue to be written once the hub let it go; also the
/// hang-up wait of a connection without a route.
mod publish;

const LINGER: Duration = Duration::from_secs(5);
/// Between the last frame and the end-of-stream messages.
const END_GRACE: Duration = Duration::from_millis(300);

enum Role {
    None,
    Publisher {
        stream_id: u32,
        claim: IngestClaim,
        route: Arc<Route>,
    },
    Player {
        stream_id: u32,
        queue: Arc<PlayerQueue>,
        hub: Arc<Hub>,
        route: Arc<Route>,
        /// The shared bytes fit this player (stream id, chunk size, csids, no cipher).
        shared: bool,
        /// The hub writes to this player's socket itself (see `fanout`): every write of ours
        /// goes through the queue too.
        direct: bool,
    },
}

impl Role {
    fn route(&self) -> Option<&Arc<Route>> {
        match self {
            Role::None => None,
            Role::Publisher { route, .. } | Role::Player { route, .. } => Some(route),
        }
    }
}

struct Conn {
    slot: ConnSlot,
    peer: SocketAddr,
    transport: Transport,
    /// The plain TCP socket, which a player's hub can write to directly.
    tcp: Option<Tcp>,
    session: ServerSession,
    epoch: Instant,
    app: String,
    role: Role,
    outq: VecDeque<Bytes>,
    /// Bytes in `outq` that are shared media (counted in the session's stats when written).
    shared_pending: usize,
    /// Set when the connection should end once `outq` is written.
    closing: Option<String>,
    /// The hub ended the stream: tell the player once its media is written.
    end_pending: bool,
    /// A player was told the stream ended: hang up after writing.
    ended: bool,
    /// The client ended its publish or play itself: it is tearing the connection down.
    stopped_by_client: bool,
    /// The element stopped (or stopped taking media) while this connection was routed to it.
    element_gone: bool,
    last_input: Instant,
    routed_at: Option<Instant>,
    accepted_at: Instant,
    handshake_timeout: Duration,
    /// After its publish or play ended, how long the connection waits for its peer to hang up
    /// (the route's linger).
    linger: Duration,
    /// Kept from the end of the publish or play until the task returns: the element waits
    /// for these before it lets the port go (see `Finishing`).
    finishing: Option<Finishing>,
    /// A player's queue, kept for as long: the hub counts the players it ended until their
    /// queues are gone.
    ended_queue: Option<Arc<PlayerQueue>>,
    /// A player that announced capsEx Reconnect watches its hub for ReconnectRequests.
    reconnect_asks: Option<tokio::sync::watch::Receiver<Option<ReconnectAsk>>>,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn drain_transmit(&mut self) {
        while let Some(b) = self.session.poll_transmit() {
            self.outq.push_back(b);
        }
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.role.route().and_then(|r| r.idle_timeout)
    }

    /// The next deadline of our own (not the session's).
    fn deadline(&self) -> Option<Instant> {
        match self.routed_at {
            None if matches!(self.role, Role::None) => {
                Some(self.accepted_at + self.handshake_timeout)
            }
            _ => match (&self.role, self.idle_timeout()) {
                (Role::Publisher { .. }, Some(idle)) => Some(self.last_input + idle),
                _ => None,
            },
        }
    }

    async fn run_hook<R: Send + 'static>(
        route: &Arc<Route>,
        f: impl FnOnce(&dyn crate::net::server::RouteHooks) -> R + Send + 'static,
    ) -> Option<R> {
        let hooks = route.hooks.clone();
        if !hooks.has_handlers() {
            // Only the elements' own defaults run: quick, and a join burst would otherwise
            // start a blocking thread per joining player (stacks and malloc arenas in RSS).
            return Some(f(hooks.as_ref()));
        }
        // Signal handlers are application code: keep them off the I/O workers.
        tokio::task::spawn_blocking(move || f(hooks.as_ref()))
            .await
            .ok()
    }

    async fn on_event(&mut self, ev: ServerEvent) {
        match ev {
            ServerEvent::ConnectRequest { app, .. } => {
                if self.slot.shared.has_app(&app) {
                    gst::debug!(CAT, "{}: connect to application {app:?}", self.peer);
                    if let Some(caps) = self.session.client_caps() {
                        gst::debug!(
                            CAT,
                            "{}: announces Enhanced RTMP codecs {:?}, capsEx {:#x}",
                            self.peer,
                            caps.codecs(),
                            caps.caps_ex
                        );
                    }
                    let _ = self.session.accept_connect();
                    self.app = app;
                } else {
                    gst::info!(
                        CAT,
                        "{}: rejecting connect: no application {app:?}",
                        self.peer
                    );
                    let _ = self
                        .session
                        .reject_connect(&format!("application {app:?} not found"));
                }
            }
            ServerEvent::PublishRequest {
                stream_id, name, ..
            } => self.on_publish(stream_id, name).await,
            ServerEvent::PlayRequest { stream_id, play } => {
                self.on_play(stream_id, play.name).await
            }
            ServerEvent::Media { message, .. } => {
                if let Role::Publisher { claim, .. } = &mut self.role
                    && !claim.send(IngestEvent::Message(message)).await
                {
                    self.element_gone = true;
                    self.closing = Some("the element stopped".into());
                }
            }
            ServerEvent::Unpublished { stream_id } | ServerEvent::PlayStopped { stream_id } => {
                self.end_role(stream_id, "stopped by the client").await;
            }
            ServerEvent::StreamDeleted { stream_id } => {
                self.end_role(stream_id, "stream deleted by the client")
                    .await;
            }
            ServerEvent::Command { .. } => {}
            ServerEvent::Closed(reason) => {
                gst::debug!(CAT, "{}: session closed: {reason}", self.peer);
                self.closing.get_or_insert_with(|| reason.to_string());
            }
        }
    }

    /// Why the route does not take this connection's transport, if it does not.
    fn transport_refused(&self, route: &Route) -> Option<String> {
        (!route.transports.contains(self.transport)).then(|| {
            format!(
                "{}/{} does not accept {} (transports={})",
                route.app,
                route.stream,
                self.transport.name(),
                route.transports
            )
        })
    }

    async fn authorize(&self, route: &Arc<Route>, name: &str, query: &str, publish: bool) -> bool {
        let req = AuthRequest {
            peer: self.peer,
            app: self.app.clone(),
            stream: name.to_string(),
            query: query.to_string(),
            publish,
        };
        Self::run_hook(route, move |h| h.authorize(&req))
            .await
            .unwrap_or(false)
    }

    async fn on_play(&mut self, stream_id: u32, full_name: String) {
        let (name, query) = split_query(&full_name);
        let refuse = |this: &mut Conn, why: String| {
            gst::info!(CAT, "{}: refusing play of {full_name:?}: {why}", this.peer);
            let _ = this.session.reject_play(stream_id, &why);
        };
        if !matches!(self.role, Role::None) {
            return refuse(self, "this connection already publishes or plays".into());
        }
        let route = match self.slot.shared.lookup(&self.app, name, false) {
            Ok(r) => r,
            Err(_) => return refuse(self, format!("stream {}/{name} not found", self.app)),
        };
        if let Some(why) = self.transport_refused(&route) {
            refuse(self, why.clone());
            self.closing = Some(why);
            return;
        }
        let Endpoint::Playout(hub) = &route.endpoint else {
            return refuse(self, "route takes publishers, not players".into());
        };
        let hub = hub.clone();
        if !self.authorize(&route, name, query, false).await {
            return refuse(self, "not authorized".into());
        }
        if self.session.accept_play(stream_id).is_err() {
            return;
        }
        let shared = stream_id == PLAY_STREAM_ID
            && self.session.can_take_shared_bytes(stream_id)
            && self.session.chunk_size() == CHUNK_SIZE
            && self.session.media_csids() == MEDIA_CSIDS;
        self.slot.mark_routed();
        self.routed_at = Some(Instant::now());
        let peer = self.peer;
        let direct = self.tcp.clone().filter(|_| shared);
        let queue = match direct {
            Some(sock) => {
                // What the session said so far goes first, then the hub's cache.
                self.drain_transmit();
                let preamble: Vec<Bytes> = self.outq.drain(..).collect();
                hub.add_player_with(
                    peer,
                    Some(Arc::new(sock) as Arc<dyn DirectSocket>),
                    preamble,
                    self.session.client_caps(),
                )
            }
            None => hub.add_player_with(peer, None, Vec::new(), self.session.client_caps()),
        };
        queue.set_label(PlayerLabel {
            transport: self.transport.name(),
            shared_bytes: shared,
            announced: self.session.client_caps().cloned().map(Arc::new),
        });
        let direct = queue.is_direct();
        if self
            .session
            .client_caps()
            .is_some_and(|c| c.has(rsrtmp_engine::session::caps::CAPS_RECONNECT))
        {
            self.reconnect_asks = Some(hub.reconnect_requests());
        }
        self.role = Role::Player {
            stream_id,
            queue,
            hub,
            route: route.clone(),
            shared,
            direct,
        };
        // Said once the player is in the hub: whoever reacts (an application, a test that
        // starts the stream) can count on it getting every frame pushed from now on.
        gst::info!(
            CAT,
            "{}: playing {}/{name} over {} (stream {stream_id}, shared bytes: {shared})",
            self.peer,
            self.app,
            self.transport.name()
        );
        Self::run_hook(&route, move |h| h.client_connected(peer)).await;
    }

    async fn end_role(&mut self, stream_id: u32, why: &str) {
        let role_stream = match &self.role {
            Role::Publisher { stream_id, .. } | Role::Player { stream_id, .. } => *stream_id,
            Role::None => return,
        };
        if role_stream != stream_id {
            return;
        }
        self.stopped_by_client = true;
        self.finish_role(why).await;
    }

    async fn finish_role(&mut self, why: &str) {
        let route = match std::mem::replace(&mut self.role, Role::None) {
            Role::None => return,
            Role::Publisher { claim, route, .. } => {
                // Counted before the element learns of the end, so that it cannot miss us.
                self.finishing = Some(Finishing::new(&route));
                self.linger = route.linger;
                claim.finish(why.to_string()).await;
                route
            }
            Role::Player {
                queue,
                hub,
                route,
                direct,
                ..
            } => {
                self.finishing = Some(Finishing::new(&route));
                self.linger = route.linger;
                self.ended_queue = Some(queue.clone());
                hub.remove_player(&queue);
                if direct {
                    // Our own writes go straight to the socket from now on: first finish
                    // what the hub left queued, so that they cannot land inside a message.
                    let _ = tokio::time::timeout(LINGER, self.flush_direct(&queue)).await;
                }
                route
            }
        };
        gst::info!(CAT, "{}: {why}", self.peer);
        let peer = self.peer;
        Self::run_hook(&route, move |h| h.client_disconnected(peer)).await;
    }

    /// The queue of a direct player.
    fn direct_queue(&self) -> Option<Arc<PlayerQueue>> {
        match &self.role {
            Role::Player {
                queue,
                direct: true,
                ..
            } => Some(queue.clone()),
            _ => None,
        }
    }

    /// Writes a direct player's queue (our own output first joins it) until it is empty,
    /// waiting for room under the idle deadline. False when the hub let the player go.
    async fn flush_direct(&mut self, queue: &PlayerQueue) -> Result<bool, String> {
        for b in self.outq.drain(..) {
            queue.push_own(b);
        }
        let sent = queue.sent();
        loop {
            match queue.flush_direct() {
                Ok(Flushed::Empty) => break,
                Ok(Flushed::End) => {
                    self.end_pending = true;
                    break;
                }
                Ok(Flushed::Full) => {
                    let sock = self.tcp.as_ref().expect("direct players have a socket");
                    match self.idle_timeout() {
                        Some(idle) => {
                            if tokio::time::timeout(idle, sock.writable()).await.is_err() {
                                return Err(format!("no write progress for {idle:?}"));
                            }
                        }
                        None => sock
                            .writable()
                            .await
                            .map_err(|e| format!("write failed: {e}"))?,
                    }
                }
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        let wrote = queue.sent() - sent;
        if wrote > 0 {
            gst::trace!(CAT, "{}: wrote {wrote} bytes", self.peer);
        }
        Ok(!queue.is_finished())
    }

    /// Moves queued frames into `outq`. False when the hub let the player go.
    fn pull_frames(&mut self, batch: &mut Vec<Item>) -> bool {
        let Role::Player {
            stream_id,
            queue,
            shared,
            direct: false,
            ..
        } = &self.role
        else {
            return true;
        };
        let (stream_id, shared, queue) = (*stream_id, *shared, queue.clone());
        let alive = queue.take(batch, BATCH);
        for item in batch.drain(..) {
            match item {
                Item::Frame(f, _) => {
                    if shared {
                        // Shared bytes only go between whole messages of the session's own.
                        self.drain_transmit();
                        self.shared_pending += f.bytes.len();
                        self.outq.push_back(f.bytes.clone());
                    } else {
                        let _ = self.session.send_media(stream_id, &f.message());
                        self.drain_transmit();
                    }
                }
                Item::Own(b) => self.outq.push_back(b),
                Item::End => self.end_pending = true,
            }
        }
        alive
    }
}

/// Writes everything in `outq` with vectored writes; returns the bytes written.
async fn write_all_vectored(
    stream: &mut Box<dyn ByteStream>,
    outq: &mut VecDeque<Bytes>,
) -> std::io::Result<usize> {
    let mut total = 0;
    while !outq.is_empty() {
        let n = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            for b in outq.iter().take(MAX_IOV) {
                iov[k] = IoSlice::new(b);
                k += 1;
            }
            stream.write_vectored(&iov[..k]).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        total += n;
        let mut left = n;
        while left > 0 {
            let front = outq.front_mut().expect("wrote no more than queued");
            if front.len() <= left {
                left -= front.len();
                outq.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    stream.flush().await?;
    Ok(total)
}

/// What the server answers a client announcing Enhanced RTMP: it forwards every FourCC and
/// multitrack, ModEx and nanosecond offsets as they come. (It sends no ReconnectRequest yet.)
fn server_caps() -> EnhancedCaps {
    use rsrtmp_engine::session::caps;
    let all: Vec<_> = caps::VIDEO_FOURCCS
        .iter()
        .chain(caps::AUDIO_FOURCCS)
        .copied()
        .collect();
    EnhancedCaps::for_codecs(
        &all,
        caps::CAN_FORWARD,
        caps::CAPS_MULTITRACK | caps::CAPS_MODEX | caps::CAPS_TIMESTAMP_NANO_OFFSET,
    )
}

/// Serves one accepted connection until it ends.
///
/// `accepted_at` is when the transport accepted it: the handshake timeout counts from there,
/// the transport's own handshake (TLS) included.
pub(crate) async fn serve(
    slot: ConnSlot,
    mut stream: Box<dyn ByteStream>,
    tcp: Option<Tcp>,
    peer: SocketAddr,
    transport: Transport,
    accepted_at: Instant,
) {
    let handshake_timeout = slot.shared.handshake_timeout();
    let epoch = Instant::now();
    let config = ServerConfig {
        chunk_size: CHUNK_SIZE,
        handshake_timeout_ms: Some(handshake_timeout.as_millis() as u64),
        // Idle deadlines are the route's, kept here.
        idle_timeout_ms: None,
        // To clients that announce Enhanced RTMP: every codec and packet form is forwarded.
        enhanced: Some(server_caps()),
        ..ServerConfig::default()
    };
    let session = {
        let mut rng = rand::rng();
        ServerSession::new(config, 0, &mut rng)
    };
    let now = Instant::now();
    let mut c = Conn {
        slot,
        peer,
        transport,
        tcp,
        session,
        epoch,
        app: String::new(),
        role: Role::None,
        outq: VecDeque::new(),
        shared_pending: 0,
        closing: None,
        end_pending: false,
        ended: false,
        stopped_by_client: false,
        element_gone: false,
        last_input: now,
        routed_at: None,
        accepted_at,
        handshake_timeout,
        linger: LINGER,
        finishing: None,
        ended_queue: None,
        reconnect_asks: None,
    };
    let reason = run(&mut c, &mut stream).await;
    if c.routed_at.is_none() {
        // Never published or played: a refusal or a broken client, worth a line of its own.
        gst::info!(
            CAT,
            "{peer}: closing {} connection: {reason}",
            c.transport.name()
        );
    } else {
        gst::debug!(CAT, "{peer}: connection ends: {reason}");
    }
    let failed = c.fail_publisher(&mut stream).await;
    c.finish_role(&format!("disconnected: {reason}")).await;
    if c.ended || c.stopped_by_client || failed {
        // Let the peer hang up first. A player must read the end of the stream: closing a
        // socket with unread input resets it and can throw away what it has not read yet. A
        // publisher that stopped is closing anyway, and some (rtmp2sink) report an error when
        // the server hangs up in the middle of their teardown.
        if c.ended || failed {
            let _ = stream.shutdown().await;
        }
        // On the heap: an array here would make every connection's task 4 KiB larger.
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(c.linger, async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

async fn run(c: &mut Conn, stream: &mut Box<dyn ByteStream>) -> String {
    let mut buf = vec![0u8; READ_BUF_SMALL];
    // Only players that are not direct use it; allocated on first use.
    let mut batch = Vec::new();
    // The waits below live across iterations: a player goes round this loop once per message,
    // and registering a timer and cancellation waiters anew each time costs more than the
    // rest of its round.
    let evicted = c.slot.cancel.clone();
    let evicted = evicted.cancelled();
    tokio::pin!(evicted);
    let timer = tokio::time::sleep_until(Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let mut route_cancel: Option<(
        Arc<Route>,
        Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    )> = None;
    loop {
        while let Some(ev) = c.session.poll_event() {
            c.on_event(ev).await;
        }
        c.drain_transmit();
        let alive = match c.direct_queue() {
            Some(queue) => match c.flush_direct(&queue).await {
                Ok(alive) => alive,
                Err(why) => return why,
            },
            None => c.pull_frames(&mut batch),
        };
        if !alive && !c.end_pending && !c.ended && c.closing.is_none() {
            c.closing = Some("the element stopped serving".into());
        }
        if !c.outq.is_empty() {
            gst::trace!(CAT, "{}: writing {} buffers", c.peer, c.outq.len());
            let idle = c.idle_timeout();
            let write = write_all_vectored(stream, &mut c.outq);
            let result = match idle {
                Some(idle) => match tokio::time::timeout(idle, write).await {
                    Ok(r) => r,
                    Err(_) => return format!("no write progress for {idle:?}"),
                },
                None => write.await,
            };
            match result {
                Ok(n) => {
                    gst::trace!(CAT, "{}: wrote {n} bytes", c.peer);
                    let shared = std::mem::take(&mut c.shared_pending).min(n);
                    c.session.record_shared_output(shared);
                    if let Role::Player { queue, .. } = &c.role {
                        queue.add_sent(n as u64);
                    }
                }
                Err(e) => return format!("write failed: {e}"),
            }
        }
        if c.end_pending && c.closing.is_none() {
            // Every frame is written. Some players (rtmp2src) stop at StreamEOF and drop a
            // frame they have read but not yet passed on: give them a moment first.
            c.end_pending = false;
            tokio::time::sleep(END_GRACE).await;
            if let Role::Player { stream_id, .. } = c.role {
                let _ = c.session.end_stream(stream_id);
            }
            c.drain_transmit();
            c.ended = true;
            continue;
        }
        if c.ended && c.closing.is_none() {
            c.closing = Some("end of stream".into());
        }
        if let Some(why) = c.closing.take() {
            return why;
        }
        if let Role::Player { queue, .. } = &c.role
            && !queue.is_empty()
        {
            // More than one batch was queued: its wake-up is already spent.
            continue;
        }
        let session_deadline = c
            .session
            .poll_timeout()
            .map(|ms| c.epoch + Duration::from_millis(ms));
        let deadline = [session_deadline, c.deadline()].into_iter().flatten().min();
        if let Some(d) = deadline
            && armed != Some(d)
        {
            timer.as_mut().reset(d);
            armed = Some(d);
        }
        let route = c.role.route();
        if route.map(Arc::as_ptr) != route_cancel.as_ref().map(|(r, _)| Arc::as_ptr(r)) {
            route_cancel = route.map(|r| (r.clone(), Box::pin(r.cancel.clone().cancelled_owned())));
        }
        match c.role {
            Role::Publisher { .. } if buf.len() < READ_BUF => buf.resize(READ_BUF, 0),
            Role::Player { .. } if buf.len() > READ_BUF_PLAYER => {
                buf.truncate(READ_BUF_PLAYER);
                buf.shrink_to_fit();
            }
            _ => {}
        }
        let queue = match &c.role {
            Role::Player { queue, .. } => Some(queue.clone()),
            _ => None,
        };
        let ingest = match &c.role {
            Role::Publisher { route, .. } => match &route.endpoint {
                Endpoint::Ingest(ingest) => Some(ingest.clone()),
                _ => None,
            },
            _ => None,
        };
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) => {
                    c.session.handle_peer_closed();
                }
                Ok(n) => {
                    c.last_input = Instant::now();
                    let now = c.now_ms();
                    c.session.handle_input(&buf[..n], now);
                }
                Err(e) => return format!("read failed: {e}"),
            },
            _ = async { queue.as_ref().expect("guarded").wait().await }, if queue.is_some() => {}
            () = &mut timer, if deadline.is_some() => {
                armed = None;
                let now = c.now_ms();
                c.session.handle_timeout(now);
                let t = Instant::now();
                if c.routed_at.is_none() && matches!(c.role, Role::None)
                    && t >= c.accepted_at + c.handshake_timeout
                {
                    return format!("no publish or play within {:?}", c.handshake_timeout);
                }
                if let (Role::Publisher { .. }, Some(idle)) = (&c.role, c.idle_timeout())
                    && t >= c.last_input + idle
                {
                    return format!("publisher sent nothing for {idle:?}");
                }
            }
            () = async { route_cancel.as_mut().expect("guarded").1.as_mut().await }, if route_cancel.is_some() => {
                c.element_gone = true;
                return "the element stopped".into();
            }
            () = async { ingest.as_ref().expect("guarded").reconnect_wake.notified().await }, if ingest.is_some() => {
                if let Some((tc_url, description)) = ingest.as_ref().and_then(|i| i.take_reconnect()) {
                    gst::info!(CAT, "{}: asking the publisher to reconnect to {tc_url:?}", c.peer);
                    let _ = c.session.request_reconnect(tc_url.as_deref(), &description);
                }
            }
            r = async { c.reconnect_asks.as_mut().expect("guarded").changed().await }, if c.reconnect_asks.is_some() => {
                let ask = match r {
                    Ok(()) => c.reconnect_asks.as_mut().and_then(|rx| rx.borrow_and_update().clone()),
                    Err(_) => {
                        c.reconnect_asks = None;
                        None
                    }
                };
                if let Some(ask) = ask.filter(|_| matches!(c.role, Role::Player { .. })) {
                    gst::info!(CAT, "{}: asking the player to reconnect to {:?}", c.peer, ask.tc_url);
                    let _ = c.session.request_reconnect(ask.tc_url.as_deref(), &ask.description);
                }
            }
            () = &mut evicted => return "evicted to make room for a new connection".into(),
        }
    }
}
