//! The direct-socket player: plain TCP (rtmp, rtmpe) once playing, the session fed from a
//! non-blocking socket polled in place by whichever thread drives the
//! [`Player`](super::Player), so a received message becomes a frame without the runtime's
//! scheduler, timers or a channel. Connecting and reconnecting still run as futures on the
//! player's runtime.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use tokio::sync::mpsc;

use super::follow::Continuity;
use super::open::{CLOSE_GRACE, Ctx, Link, Meter, first_open};
use super::play::{
    PLAY_QUEUE, PlayConfig, PlayEnd, PlayItem, Wake, reconnect_player, session_events,
};
use super::player::{PlayState, play_on};
use super::{ClientError, ProgressKind};
use crate::rtmp::flv::TimestampExtender;
use crate::rtmp::session::ClientSession;

/// The 1 s bitrate tick.
const TICK: Duration = Duration::from_secs(1);

type Opening =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Link, ClientError>> + Send>>;

/// A plain TCP connection read in place.
struct DirectLink {
    session: ClientSession,
    sock: std::net::TcpStream,
    out: VecDeque<Bytes>,
    buf: Vec<u8>,
    eof: bool,
    /// Our side is shut (closing).
    shut: bool,
    epoch: Instant,
}

impl DirectLink {
    /// Takes the socket out of an async link; `Err` (with a reason) if it is not plain TCP.
    fn from_link(link: Link) -> Result<DirectLink, String> {
        let stream = link.reader.unsplit(link.writer);
        let any: Box<dyn std::any::Any + Send> = stream;
        let tcp = any
            .downcast::<tokio::net::TcpStream>()
            .map_err(|_| "the transport is not plain TCP".to_string())?;
        // Still non-blocking, as tokio left it.
        let sock = tcp.into_std().map_err(|e| e.to_string())?;
        Ok(DirectLink {
            session: link.session,
            sock,
            out: link.out,
            buf: link.buf,
            eof: link.eof,
            shut: false,
            epoch: link.epoch,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Back to an async link (on a runtime thread: tokio takes the socket over).
    fn into_link(self) -> io::Result<Link> {
        let tcp = tokio::net::TcpStream::from_std(self.sock)?;
        Ok(Link::resume(
            self.session,
            Box::new(tcp),
            self.out,
            self.buf,
            self.eof,
            self.epoch,
        ))
    }

    /// Writes what the session and the queue hold, until the socket would block.
    fn write_out(&mut self) -> io::Result<()> {
        use std::io::Write;
        while let Some(b) = self.session.poll_transmit() {
            self.out.push_back(b);
        }
        while let Some(front) = self.out.front_mut() {
            match self.sock.write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n == front.len() => {
                    self.out.pop_front();
                }
                Ok(n) => {
                    let _ = front.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One read: bytes to the session (or discarded when `discard`), or the end.
    fn read_in(&mut self, discard: bool) -> io::Result<()> {
        use std::io::Read;
        match self.sock.read(&mut self.buf) {
            Ok(0) => {
                self.eof = true;
                if !discard {
                    self.session.handle_peer_closed();
                }
                Ok(())
            }
            Ok(n) => {
                if !discard {
                    let now = self.now_ms();
                    self.session.handle_input(&self.buf[..n], now);
                }
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// What a [`Direct`] player is doing.
enum Phase {
    /// Connecting (`false`) or reconnecting (`true`): a future on the runtime.
    Opening(Opening, bool),
    Live(DirectLink),
    /// After the end: the polite close, until the server closes or the deadline.
    Closing(DirectLink, Instant),
    /// A ReconnectRequest arrived (its tcUrl): following it takes two connections at once,
    /// which the task player does; the connection goes to one.
    Moving(DirectLink, Option<String>),
    /// The task player plays on from here; its items come through the channel.
    Delegated(mpsc::Receiver<PlayItem>),
    Done,
}

/// The plain-TCP player: the same life as `run_player`, as a state machine driven in place.
pub(super) struct Direct {
    ctx: Arc<Ctx>,
    play: PlayConfig,
    phase: Phase,
    /// Items for `next`, at most [`PLAY_QUEUE`] frames ahead (then reading pauses).
    queue: VecDeque<PlayItem>,
    meter: Meter,
    timestamps: TimestampExtender,
    cont: Continuity,
    last_media: Instant,
    next_tick: Instant,
}

/// Readiness of the socket and the wake pipe after a [`poll`].
struct Ready {
    sock_in: bool,
    sock_out: bool,
}

/// Waits for the socket (`read`/`write` interest), the wake pipe or `deadline`.
fn poll(
    sock: &std::net::TcpStream,
    read: bool,
    write: bool,
    wake: &Wake,
    deadline: Instant,
) -> Ready {
    use gst::glib::ffi::{G_IO_ERR, G_IO_HUP, G_IO_IN, G_IO_OUT, GPollFD, g_poll};
    use std::os::fd::AsRawFd;
    let mut events = 0;
    if read {
        events |= G_IO_IN;
    }
    if write {
        events |= G_IO_OUT;
    }
    let mut fds = [
        GPollFD {
            // Without interest the socket stays out: poll reports a hang-up unasked, and
            // with reading paused that would wake it at once, again and again.
            fd: if events == 0 { -1 } else { sock.as_raw_fd() },
            events: events as u16,
            revents: 0,
        },
        GPollFD {
            fd: wake.rx.as_raw_fd(),
            events: G_IO_IN as u16,
            revents: 0,
        },
    ];
    let wait = deadline.saturating_duration_since(Instant::now());
    // Round up: waking a little early would only spin once more.
    let ms = (wait.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of two initialised GPollFD for the whole call, and both
    // descriptors stay open (owned by `sock` and `wake`, borrowed for the call).
    unsafe { g_poll(fds.as_mut_ptr(), 2, ms) };
    if fds[1].revents != 0 {
        wake.drain();
    }
    let r = fds[0].revents as u32;
    let broken = r & (G_IO_ERR | G_IO_HUP) != 0;
    Ready {
        sock_in: r & G_IO_IN != 0 || (broken && read),
        sock_out: r & G_IO_OUT != 0 || (broken && write),
    }
}

impl Direct {
    /// A player whose first connection is opening.
    pub(super) fn new(ctx: Arc<Ctx>, play: PlayConfig) -> Direct {
        let first: Opening = Box::pin({
            let ctx = ctx.clone();
            async move { first_open(&ctx).await }
        });
        Direct {
            ctx,
            play,
            phase: Phase::Opening(first, false),
            queue: VecDeque::new(),
            meter: Meter::new(),
            timestamps: TimestampExtender::new(),
            cont: Continuity::default(),
            last_media: Instant::now(),
            next_tick: Instant::now() + TICK,
        }
    }

    /// The next item for [`Player::next`](super::Player::next), if one is queued.
    pub(super) fn pop(&mut self) -> Option<PlayItem> {
        self.queue.pop_front()
    }

    /// The connection is over and closed: nothing more will be queued.
    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Drives the connection until an item is queued (when `want`) or `stop()` holds.
    pub(super) fn drive(
        &mut self,
        rt: &tokio::runtime::Runtime,
        wake: &Wake,
        stop: &dyn Fn() -> bool,
        want: bool,
    ) {
        loop {
            if want && !self.queue.is_empty() {
                return;
            }
            if stop() {
                return;
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => {
                    if want {
                        return;
                    }
                    // Nothing left to drive: wait to be stopped.
                    wake.block_on(rt, stop, std::future::pending::<()>());
                }
                Phase::Opening(mut fut, reconnect) => match wake.block_on(rt, stop, &mut fut) {
                    None => self.phase = Phase::Opening(fut, reconnect),
                    Some(Ok(link)) => self.opened(link, reconnect),
                    Some(Err(e)) => {
                        self.ctx.shared.fail(e.clone());
                        self.queue.push_back(PlayItem::Error(e));
                    }
                },
                Phase::Live(link) => self.live(link, wake),
                Phase::Closing(link, deadline) => self.closing(link, deadline, wake),
                Phase::Moving(link, tc_url) => self.delegate(rt, link, tc_url),
                Phase::Delegated(rx) => self.delegated(rt, wake, stop, rx),
            }
        }
    }

    fn opened(&mut self, link: Link, reconnect: bool) {
        let link = match DirectLink::from_link(link) {
            Ok(link) => link,
            Err(reason) => {
                let e = ClientError::Failed {
                    target: self.ctx.target(),
                    stage: "taking over the socket",
                    reason,
                };
                self.ctx.shared.fail(e.clone());
                self.queue.push_back(PlayItem::Error(e));
                return;
            }
        };
        if reconnect {
            self.ctx.shared.update(|s| s.reconnects += 1);
            self.ctx.progress(
                ProgressKind::Complete,
                "reconnect",
                format!(
                    "Playing {:?} from {} again",
                    self.ctx.cfg.url.stream,
                    self.ctx.target()
                ),
            );
            self.queue.push_back(PlayItem::Discont);
        }
        self.last_media = Instant::now();
        self.phase = Phase::Live(link);
    }

    /// One round of a live connection: the session's events, then one wait and its I/O.
    fn live(&mut self, mut link: DirectLink, wake: &Wake) {
        if let Some(end) = self.events(&mut link) {
            return self.end(link, end);
        }
        self.meter
            .publish(&self.ctx.shared, Some(&link.session), None);
        if let Err(e) = link.write_out() {
            return self.end(link, PlayEnd::Lost(e.to_string()));
        }
        let now = Instant::now();
        let idle = self.play.idle_timeout.map(|t| self.last_media + t);
        if idle.is_some_and(|at| now >= at) {
            let secs = self.play.idle_timeout.unwrap_or_default().as_secs();
            return self.end(
                link,
                PlayEnd::Eos(format!("no media for {secs} s (idle-timeout)")),
            );
        }
        if now >= self.next_tick {
            self.meter.tick();
            self.next_tick = now + TICK;
        }
        let session_at = link
            .session
            .poll_timeout()
            .map(|ms| link.epoch + Duration::from_millis(ms));
        if session_at.is_some_and(|at| now >= at) {
            let ms = link.now_ms();
            link.session.handle_timeout(ms);
            self.phase = Phase::Live(link);
            return;
        }
        let deadline = [Some(self.next_tick), idle, session_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_tick);
        // A full queue stops reading: the server then waits on TCP, as with a slow reader.
        let read = !link.eof && self.queue.len() < PLAY_QUEUE;
        let ready = poll(&link.sock, read, !link.out.is_empty(), wake, deadline);
        if ready.sock_in
            && let Err(e) = link.read_in(false)
        {
            return self.end(link, PlayEnd::Lost(e.to_string()));
        }
        if ready.sock_out
            && let Err(e) = link.write_out()
        {
            return self.end(link, PlayEnd::Lost(e.to_string()));
        }
        self.phase = Phase::Live(link);
    }

    /// The session's events: frames queued, or how the connection ended.
    fn events(&mut self, link: &mut DirectLink) -> Option<PlayEnd> {
        let mut frames = Vec::new();
        let end = session_events(
            &self.ctx,
            &mut link.session,
            &mut self.timestamps,
            &mut frames,
        );
        for frame in frames {
            self.last_media = Instant::now();
            if self.cont.admit(&frame) {
                self.meter.count(&frame);
                self.queue.push_back(PlayItem::Frame(frame));
            }
        }
        end
    }

    /// Hands the connection to the task player, which follows the ReconnectRequest and plays
    /// on; this player then only passes its items on.
    fn delegate(&mut self, rt: &tokio::runtime::Runtime, link: DirectLink, tc_url: Option<String>) {
        let (tx, rx) = mpsc::channel(PLAY_QUEUE);
        let ctx = self.ctx.clone();
        let play = self.play.clone();
        let state = PlayState {
            meter: std::mem::replace(&mut self.meter, Meter::new()),
            timestamps: std::mem::take(&mut self.timestamps),
            cont: std::mem::take(&mut self.cont),
        };
        rt.spawn(async move {
            let result = match link.into_link() {
                Ok(link) => play_on(ctx.clone(), &play, link, &tx, state, Some(tc_url)).await,
                Err(e) => Err(ClientError::Lost {
                    target: ctx.target(),
                    reason: format!("cannot hand the socket over: {e}"),
                }),
            };
            if let Err(e) = result {
                ctx.shared.fail(e.clone());
                let _ = tx.send(PlayItem::Error(e)).await;
            }
        });
        self.phase = Phase::Delegated(rx);
    }

    /// Passes the task player's items on, [`PLAY_QUEUE`] at most ahead.
    fn delegated(
        &mut self,
        rt: &tokio::runtime::Runtime,
        wake: &Wake,
        stop: &dyn Fn() -> bool,
        mut rx: mpsc::Receiver<PlayItem>,
    ) {
        if self.queue.len() >= PLAY_QUEUE {
            wake.block_on(rt, stop, std::future::pending::<()>());
            self.phase = Phase::Delegated(rx);
            return;
        }
        match wake.block_on(rt, stop, rx.recv()) {
            None => self.phase = Phase::Delegated(rx),
            Some(Some(item)) => {
                self.queue.push_back(item);
                self.phase = Phase::Delegated(rx);
            }
            // The task ended after its last item.
            Some(None) => {}
        }
    }

    /// What follows the end of a live connection (as in `run_player`).
    fn end(&mut self, mut link: DirectLink, end: PlayEnd) {
        self.meter
            .publish(&self.ctx.shared, Some(&link.session), None);
        let target = self.ctx.target();
        match end {
            PlayEnd::Eos(why) => {
                self.ctx.progress(
                    ProgressKind::Complete,
                    "play",
                    format!("End of stream: {why}"),
                );
                self.queue.push_back(PlayItem::Eos);
                link.session.close();
                self.phase = Phase::Closing(link, Instant::now() + CLOSE_GRACE);
            }
            PlayEnd::Gone => {}
            PlayEnd::Move(tc_url) => self.phase = Phase::Moving(link, tc_url),
            PlayEnd::Lost(reason) => {
                self.cont.reset();
                self.meter.close_link(&link.session);
                drop(link);
                if !self.ctx.cfg.reconnect.enabled {
                    if self.play.no_eof_is_error {
                        let e = ClientError::Lost { target, reason };
                        self.ctx.shared.fail(e.clone());
                        self.queue.push_back(PlayItem::Error(e));
                    } else {
                        self.queue.push_back(PlayItem::Eos);
                    }
                    return;
                }
                self.ctx.warn(format!(
                    "connection to {target} lost ({reason}); reconnecting"
                ));
                let ctx = self.ctx.clone();
                self.phase = Phase::Opening(
                    Box::pin(async move { reconnect_player(&ctx, &reason).await }),
                    true,
                );
            }
        }
    }

    /// The polite close (see [`Link::close`]): queued bytes out, our side shut, the server's
    /// bytes read until it closes.
    fn closing(&mut self, mut link: DirectLink, deadline: Instant, wake: &Wake) {
        if Instant::now() >= deadline || link.eof || link.write_out().is_err() {
            return;
        }
        if link.out.is_empty() && !link.shut {
            let _ = link.sock.shutdown(std::net::Shutdown::Write);
            link.shut = true;
        }
        let ready = poll(&link.sock, true, !link.out.is_empty(), wake, deadline);
        if ready.sock_in && link.read_in(true).is_err() {
            return;
        }
        self.phase = Phase::Closing(link, deadline);
    }
}
