//! The source's handle on its connection ([`Player`]), and the task player: the whole
//! connection as one task on the player's own current-thread runtime, for the transports that
//! cannot be polled in place (TLS, the tunnel). Plain TCP is played by [`Direct`] instead.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::direct::Direct;
use super::follow::{Continuity, Followed, follow_play};
use super::open::{Ctx, Link, Meter, Shared, first_open, follow_target, transport_kind};
use super::play::{
    PLAY_QUEUE, PlayConfig, PlayEnd, PlayItem, Wake, reconnect_player, session_events,
};
use super::{ClientConfig, ClientError, Notice, NoticeFn, ProgressKind, Stats};
use crate::net::transport::TransportKind;
use crate::rtmp::flv::TimestampExtender;
use crate::rtmp::session::ClientRole;

/// The source's handle on its connection. Dropping it ends the connection.
///
/// The connection is driven by whichever thread waits in [`Player::next`], on a current-thread
/// runtime of the player's own: the source's streaming thread reads the socket, runs the
/// session and takes the frame in one go, with no hand-off to another thread per message (that
/// hand-off, two wake-ups per message, was most of the source's CPU). Plain TCP (rtmp, rtmpe)
/// goes further once playing: the session reads a non-blocking socket polled right in `next`
/// ([`Direct`]), without the runtime's scheduler, timers and channel per message; connecting
/// and reconnecting still run as futures on the runtime. The other transports (TLS, the
/// tunnel) run the whole connection as one task on that runtime.
///
/// While nobody waits in `next` (the element is starting, paused, or past the end) a
/// background thread drives the connection instead, so it still answers the server, keeps up
/// to [`PLAY_QUEUE`] frames and completes the polite close; `next` takes over from it.
pub struct Player {
    /// `Some` until dropped.
    rt: Option<Arc<tokio::runtime::Runtime>>,
    mode: Mode,
    /// Raised by [`Player::interrupt`] and to stop the background thread.
    wake: Arc<Wake>,
    /// The thread driving the connection while `next` does not.
    background: Mutex<Option<Background>>,
    shared: Arc<Shared>,
    target: String,
    notice: NoticeFn,
}

enum Mode {
    /// The whole connection is one task; frames come through a channel.
    Task {
        /// Held by whoever drives the connection (see [`Player::hold`]).
        rx: Arc<Mutex<mpsc::Receiver<PlayItem>>>,
        task: tokio::task::JoinHandle<()>,
    },
    /// Plain TCP, driven in place.
    Direct(Arc<Mutex<Direct>>),
}

/// A thread driving the connection until told to stop.
struct Background {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Player {
    /// Starts connecting at once (on a background thread until the first [`Player::next`]).
    pub fn start(cfg: ClientConfig, play: PlayConfig, notice: NoticeFn) -> Player {
        let shared = Arc::new(Shared::default());
        let direct = transport_kind(cfg.url.scheme) == TransportKind::Tcp;
        let ctx = Arc::new(Ctx {
            cfg,
            role: ClientRole::Play,
            chunk_size: None,
            notice: notice.clone(),
            shared: shared.clone(),
        });
        let target = ctx.target();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rsrtmp: cannot start the player's tokio runtime");
        let wake = Arc::new(Wake::new().expect("rsrtmp: cannot create a socket pair"));
        let mode = if direct {
            Mode::Direct(Arc::new(Mutex::new(Direct::new(ctx, play))))
        } else {
            let (tx, rx) = mpsc::channel(PLAY_QUEUE);
            let task = rt.spawn(async move {
                // On success the end of stream was already handed over.
                if let Err(e) = run_player(ctx.clone(), &play, &tx).await {
                    ctx.shared.fail(e.clone());
                    let _ = tx.send(PlayItem::Error(e)).await;
                }
            });
            Mode::Task {
                rx: Arc::new(Mutex::new(rx)),
                task,
            }
        };
        let player = Player {
            rt: Some(Arc::new(rt)),
            mode,
            wake,
            background: Mutex::new(None),
            shared,
            target,
            notice,
        };
        player.drive_in_background();
        player
    }

    fn rt(&self) -> &Arc<tokio::runtime::Runtime> {
        self.rt.as_ref().expect("runtime present until drop")
    }

    /// Makes a waiting [`Player::next`] look at its `stop` condition again.
    pub fn interrupt(&self) {
        self.wake.raise();
    }

    /// Lets a background thread drive the connection until the next [`Player::next`]; for
    /// when the caller stops asking for a while (pause, end of stream). Idempotent.
    pub fn drive_in_background(&self) {
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        if background.is_some() {
            return;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (rt, wake, flag) = (self.rt().clone(), self.wake.clone(), stop.clone());
        let driven = match &self.mode {
            Mode::Direct(d) => Ok(d.clone()),
            Mode::Task { rx, .. } => Err(rx.clone()),
        };
        let spawned = std::thread::Builder::new()
            .name("rsrtmp-player".into())
            .spawn(move || {
                let stopped = || flag.load(std::sync::atomic::Ordering::Acquire);
                match driven {
                    Ok(d) => {
                        let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
                        d.drive(&rt, &wake, &stopped, false);
                    }
                    Err(rx) => {
                        // Held only to show `next` who drives; the task runs on `rt`.
                        let _rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                        wake.block_on(&rt, &stopped, std::future::pending::<()>());
                    }
                }
            });
        match spawned {
            Ok(thread) => *background = Some(Background { stop, thread }),
            // Without the thread the connection waits for the next `next`; only slower.
            Err(e) => (self.notice)(Notice::Warning(format!(
                "cannot start a thread to drive the connection while paused: {e}"
            ))),
        }
    }

    /// Stops the background thread, if any, so the caller can drive the connection.
    ///
    /// The slot stays locked until the thread has ended, so no `drive_in_background` (an
    /// `unlock()` on another thread) starts a second one meanwhile: that one could take the
    /// connection first, and the thread joined here would wait for it forever. There is so
    /// never more than one background thread.
    fn take_over(&self) {
        let mut slot = self.background.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = slot.take() {
            b.stop.store(true, std::sync::atomic::Ordering::Release);
            self.wake.raise();
            let _ = b.thread.join();
        }
    }

    /// Takes the connection over from the background: stops the background thread and locks
    /// what it drives (`lock`, which it holds while driving). An `unlock()` on another thread
    /// may start a new background thread between the two; if that one got `lock` first, it is
    /// stopped too, so the caller never waits on a thread nobody will stop.
    fn hold<'a, T>(&self, lock: &'a Mutex<T>) -> MutexGuard<'a, T> {
        loop {
            self.take_over();
            match lock.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                // Held by a background thread started meanwhile: it is in the slot (it is
                // stored before `drive_in_background` lets go of the slot), so the next
                // `take_over` stops it.
                Err(TryLockError::WouldBlock) => {}
            }
        }
    }

    /// The next item, driving the connection on the calling thread until one is ready or
    /// `stop()` holds (`None`; checked at the start and after every [`Player::interrupt`]).
    /// The caller must not be a runtime thread. After a stop or the last item, the connection
    /// goes on in the background.
    pub fn next(&self, stop: &dyn Fn() -> bool) -> Option<PlayItem> {
        let item = match &self.mode {
            Mode::Task { rx, .. } => {
                let mut rx = self.hold(rx);
                self.wake
                    .block_on(self.rt(), stop, rx.recv())
                    .map(|item| item.unwrap_or_else(|| self.ended()))
            }
            Mode::Direct(d) => {
                let mut d = self.hold(d);
                d.drive(self.rt(), &self.wake, stop, true);
                match d.pop() {
                    Some(item) => Some(item),
                    None if d.is_done() && !stop() => Some(self.ended()),
                    None => None,
                }
            }
        };
        if !matches!(item, Some(PlayItem::Frame(_) | PlayItem::Discont)) {
            self.drive_in_background();
        }
        item
    }

    fn ended(&self) -> PlayItem {
        PlayItem::Error(self.shared.failure().unwrap_or_else(|| ClientError::Lost {
            target: self.target.clone(),
            reason: "the connection task ended".into(),
        }))
    }

    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.take_over();
        if let Mode::Task { task, .. } = &self.mode {
            task.abort();
        }
        if let Some(rt) = self.rt.take() {
            // Never blocks, so a player may be dropped anywhere (even on a runtime thread).
            match Arc::try_unwrap(rt) {
                Ok(rt) => rt.shutdown_background(),
                Err(rt) => drop(rt),
            }
        }
    }
}

/// Plays until the stream ends. `Ok` means the end was handed over as [`PlayItem::Eos`] (or
/// the element is gone); an error is for the caller to hand over.
async fn run_player(
    ctx: Arc<Ctx>,
    play: &PlayConfig,
    tx: &mpsc::Sender<PlayItem>,
) -> Result<(), ClientError> {
    let link = first_open(&ctx).await?;
    let state = PlayState {
        meter: Meter::new(),
        timestamps: TimestampExtender::new(),
        cont: Continuity::default(),
    };
    play_on(ctx, play, link, tx, state, None).await
}

/// What a play carries from one connection to the next.
pub(super) struct PlayState {
    pub(super) meter: Meter,
    pub(super) timestamps: TimestampExtender,
    pub(super) cont: Continuity,
}

/// Plays on `link` (first following the ReconnectRequest `moving`, if one is pending) until
/// the stream ends, reconnecting and following ReconnectRequests on the way.
pub(super) async fn play_on(
    mut ctx: Arc<Ctx>,
    play: &PlayConfig,
    mut link: Link,
    tx: &mpsc::Sender<PlayItem>,
    mut st: PlayState,
    moving: Option<Option<String>>,
) -> Result<(), ClientError> {
    // An end to handle before playing on (a pending move, or how following one ended).
    let mut next_end = moving.map(PlayEnd::Move);
    loop {
        let end = match next_end.take() {
            Some(end) => end,
            None => play_live(&ctx, play, &mut link, tx, &mut st).await,
        };
        // The last events of the connection count too.
        st.meter.publish(&ctx.shared, Some(&link.session), None);
        let target = ctx.target();
        match end {
            PlayEnd::Move(tc_url) => {
                let Some(next) = follow_target(&ctx, tc_url.as_deref()) else {
                    continue;
                };
                let PlayState {
                    meter,
                    timestamps,
                    cont,
                } = &mut st;
                match follow_play(&ctx, &next, &mut link, tx, meter, timestamps, cont).await {
                    Followed::Moved => {
                        ctx = Arc::new(next);
                        ctx.shared.update(|s| s.reconnect_requests += 1);
                        ctx.progress(
                            ProgressKind::Complete,
                            "reconnect",
                            format!("Playing {:?} from {}", ctx.cfg.url.stream, ctx.target()),
                        );
                    }
                    Followed::Stayed => {}
                    Followed::Ended(end) => next_end = Some(end),
                }
            }
            PlayEnd::Eos(why) => {
                ctx.progress(
                    ProgressKind::Complete,
                    "play",
                    format!("End of stream: {why}"),
                );
                // The source may end now; the polite close runs meanwhile.
                let _ = tx.send(PlayItem::Eos).await;
                link.session.close();
                link.close().await;
                return Ok(());
            }
            PlayEnd::Gone => return Ok(()),
            PlayEnd::Lost(reason) => {
                st.meter.publish(&ctx.shared, Some(&link.session), None);
                st.meter.close_link(&link.session);
                if !ctx.cfg.reconnect.enabled {
                    if play.no_eof_is_error {
                        return Err(ClientError::Lost { target, reason });
                    }
                    let _ = tx.send(PlayItem::Eos).await;
                    return Ok(());
                }
                ctx.warn(format!(
                    "connection to {target} lost ({reason}); reconnecting"
                ));
                link = reconnect_player(&ctx, &reason).await?;
                st.cont.reset();
                ctx.shared.update(|s| s.reconnects += 1);
                ctx.progress(
                    ProgressKind::Complete,
                    "reconnect",
                    format!("Playing {:?} from {target} again", ctx.cfg.url.stream),
                );
                if tx.send(PlayItem::Discont).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

async fn play_live(
    ctx: &Ctx,
    play: &PlayConfig,
    link: &mut Link,
    tx: &mpsc::Sender<PlayItem>,
    st: &mut PlayState,
) -> PlayEnd {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_media = tokio::time::Instant::now();
    let far = Duration::from_secs(3600 * 24);
    let mut frames = Vec::new();
    loop {
        let end = session_events(ctx, &mut link.session, &mut st.timestamps, &mut frames);
        for frame in frames.drain(..) {
            last_media = tokio::time::Instant::now();
            if st.cont.admit(&frame) {
                st.meter.count(&frame);
                if tx.send(PlayItem::Frame(frame)).await.is_err() {
                    return PlayEnd::Gone;
                }
            }
        }
        if let Some(end) = end {
            return end;
        }
        st.meter.publish(&ctx.shared, Some(&link.session), None);
        let idle_deadline = last_media + play.idle_timeout.unwrap_or(far);
        tokio::select! {
            r = link.step() => {
                if let Err(e) = r {
                    return PlayEnd::Lost(e.to_string());
                }
            }
            _ = tokio::time::sleep_until(idle_deadline), if play.idle_timeout.is_some() => {
                return PlayEnd::Eos(format!(
                    "no media for {} s (idle-timeout)",
                    play.idle_timeout.unwrap_or_default().as_secs()
                ));
            }
            _ = tx.closed() => return PlayEnd::Gone,
            _ = ticker.tick() => st.meter.tick(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc as std_mpsc;
    use std::time::Duration;

    use super::*;
    use crate::net::client::{AuthMode, ReconnectPolicy};
    use crate::rtmp::url::RtmpUrl;

    /// A player whose server accepts and never answers: the connection stays opening, driven
    /// by whoever holds it.
    fn silent_player(scheme: &str) -> (Player, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = ClientConfig {
            url: RtmpUrl::parse(&format!("{scheme}://127.0.0.1:{port}/live/s")).unwrap(),
            authmod: AuthMode::default(),
            timeout: Duration::from_secs(3600),
            flash_version: None,
            extra_connect_args: Vec::new(),
            reconnect: ReconnectPolicy {
                enabled: false,
                max_attempts: None,
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(100),
            },
            tls: None,
            enhanced_codecs: Vec::new(),
        };
        let notice: NoticeFn = Arc::new(|_| {});
        (Player::start(cfg, PlayConfig::default(), notice), listener)
    }

    /// What a source's `unlock()` does on the application's thread, at varying moments
    /// while its streaming thread enters `next` and takes the connection over from the
    /// background thread: no hand-over may leave a background thread driving the connection
    /// that `next` then waits for (the hang seen with `set_state(Null)` in CI).
    fn handover_race(scheme: &str) {
        let (player, _listener) = silent_player(scheme);
        let player = Arc::new(player);
        let flushing = Arc::new(AtomicBool::new(false));
        let (entering_tx, entering_rx) = std_mpsc::channel::<usize>();
        let (done_tx, done_rx) = std_mpsc::channel();
        let streaming = {
            let (player, flushing) = (player.clone(), flushing.clone());
            std::thread::spawn(move || {
                for round in 0..200 {
                    // unlock_stop(), then create().
                    flushing.store(false, Ordering::SeqCst);
                    entering_tx.send(round).unwrap();
                    // Only the unlock ends the wait: the server never answers.
                    assert!(player.next(&|| flushing.load(Ordering::SeqCst)).is_none());
                }
                let _ = done_tx.send(());
            })
        };
        let unlocker = {
            let (player, flushing) = (player.clone(), flushing.clone());
            std::thread::spawn(move || {
                while let Ok(round) = entering_rx.recv() {
                    // A different point of the hand-over each round.
                    for _ in 0..round % 40 {
                        std::thread::yield_now();
                    }
                    flushing.store(true, Ordering::SeqCst);
                    player.interrupt();
                    player.drive_in_background();
                }
            })
        };
        // Ends a hung test; never a measure of speed.
        let finished = done_rx.recv_timeout(Duration::from_secs(120));
        assert!(finished.is_ok(), "next() hung after an unlock");
        streaming.join().unwrap();
        unlocker.join().unwrap();
    }

    #[test]
    fn an_unlock_during_the_hand_over_never_hangs_next_direct() {
        handover_race("rtmp");
    }

    #[test]
    fn an_unlock_during_the_hand_over_never_hangs_next_task() {
        handover_race("rtmpt");
    }
}
