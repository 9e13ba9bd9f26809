//! Merged writes (`rtmpserversink merge-window`, SRS's method): with a window set, the hub
//! only queues each message for its players, and one thread per hub flushes every player's
//! queue once per window — everything a player got in the window goes out in one vectored
//! send, in order, keyframes and audio alike. Fewer sends per message (one per player per
//! window instead of one per player per message) for up to a window of added latency.
//!
//! A direct player is flushed by this thread itself (non-blocking); when its socket is full,
//! or for any other player, its task is woken to do the rest, as without merging.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Flushed, PlayerQueue};

type Players = Arc<[Arc<PlayerQueue>]>;

/// The flushing thread of one hub; stops when dropped.
pub(super) struct Merger {
    players: Arc<Mutex<Players>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Merger {
    /// Starts the thread; `None` (merging off, with a warning printed by the caller's log)
    /// when it cannot start.
    pub(super) fn start(window: Duration) -> Option<Merger> {
        let players: Arc<Mutex<Players>> = Arc::new(Mutex::new(Arc::new([])));
        let stop = Arc::new(AtomicBool::new(false));
        let (list, stopped) = (players.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rsrtmp-merge".into())
            .spawn(move || {
                let mut due = Instant::now() + window;
                while !stopped.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now < due {
                        std::thread::park_timeout(due - now);
                        continue;
                    }
                    // A late round does not make the next one come early.
                    due = (due + window).max(now + window / 2);
                    let players = list.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    for p in players.iter() {
                        flush(p);
                    }
                }
            })
            .ok()?;
        Some(Merger {
            players,
            stop,
            thread: Some(thread),
        })
    }

    /// The players to flush from now on.
    pub(super) fn set_players(&self, players: &Players) {
        *self.players.lock().unwrap_or_else(|e| e.into_inner()) = players.clone();
    }
}

impl Drop for Merger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// One player's round: a direct player's queue written now (its task only when the socket is
/// full, the stream ends or a write failed); any other player's task woken when it has
/// something to write.
pub(super) fn flush(p: &PlayerQueue) {
    if p.is_direct() {
        if !matches!(p.flush_direct(), Ok(Flushed::Empty)) {
            p.notify.notify_one();
        }
    } else if !p.is_empty() {
        p.notify.notify_one();
    }
}
