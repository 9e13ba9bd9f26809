//! One playing client: an engine [`ClientSession`] over a tokio TCP stream, counting what
//! arrives instead of keeping it.
//!
//! Players are meant to be cheap, so a thousand of them fit on one or two worker threads next
//! to the server under test: one 16 KiB read buffer each, no copies beyond what the engine's
//! chunk reader does, one clock read per socket read (every message completed by that read
//! gets the same receive time), and counters that only look at the stamped header bytes.
//!
//! Only messages whose sequence number falls inside the measurement window are counted; the
//! window is published through [`Shared`] as sequence-number bounds, so a message sent inside
//! the window still counts when it arrives after the window closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use rsrtmp_engine::message::msg_type;
use rsrtmp_engine::session::{ClientConfig, ClientEvent, ClientRole, ClientSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use crate::histogram::Histogram;
use crate::media::{Kind, now_ns, read_stamp};

const READ_BUF: usize = 16 * 1024;

/// Sequence-number bounds `[start, end)` per kind; `end` is `u64::MAX` while open.
pub struct Window {
    start: [AtomicU64; 2],
    end: [AtomicU64; 2],
}

impl Window {
    fn new() -> Self {
        Self {
            start: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            end: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        }
    }

    /// Opens the window at the next sequence numbers `(video, audio)` the publisher sends.
    pub fn open(&self, video: u64, audio: u64) {
        self.start[0].store(video, Relaxed);
        self.start[1].store(audio, Relaxed);
    }

    /// Closes it before `(video, audio)`.
    pub fn close(&self, video: u64, audio: u64) {
        self.end[0].store(video, Relaxed);
        self.end[1].store(audio, Relaxed);
    }

    fn contains(&self, kind: Kind, seq: u64) -> bool {
        let k = kind as usize;
        seq >= self.start[k].load(Relaxed) && seq < self.end[k].load(Relaxed)
    }
}

/// State every player of a scenario shares.
pub struct Shared {
    pub window: Window,
    /// Bytes read by all players (sampled at the window edges for the aggregate rate).
    pub bytes: AtomicU64,
    /// Players that got `NetStream.Play.Start`.
    pub started: AtomicUsize,
    /// Players that gave up before starting.
    pub failed: AtomicUsize,
    /// Stamped messages inside the window, all players (sampled live by the soak tool).
    pub delivered: AtomicU64,
    /// Sequence gaps inside the window, all players.
    pub gaps: AtomicU64,
    /// Players whose session ended with an error, before or after starting.
    pub errors: AtomicUsize,
    /// Bounds how many players are between connect and Play.Start at once, so the join
    /// phase does not look like a SYN flood to the server.
    pub joining: Semaphore,
}

impl Shared {
    pub fn new(concurrent_joins: usize) -> Arc<Self> {
        Arc::new(Self {
            window: Window::new(),
            bytes: AtomicU64::new(0),
            started: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            delivered: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            errors: AtomicUsize::new(0),
            joining: Semaphore::new(concurrent_joins),
        })
    }
}

/// What one player saw inside the window.
#[derive(Default)]
pub struct Report {
    pub started: bool,
    pub error: Option<String>,
    /// Stamped messages inside the window, `[video, audio]`.
    pub delivered: [u64; 2],
    /// Places where a sequence number was not the previous one plus one.
    pub gaps: u64,
    /// Receive time − send time, µs.
    pub latency: Histogram,
}

/// Plays `stream` from `127.0.0.1:port/app` until `stop` turns true.
pub async fn run(
    port: u16,
    app: String,
    stream: String,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) -> Report {
    let mut report = Report::default();
    if let Err(e) = play(port, &app, &stream, &shared, stop, &mut report).await {
        report.error = Some(e);
        shared.errors.fetch_add(1, Relaxed);
        if !report.started {
            shared.failed.fetch_add(1, Relaxed);
        }
    }
    report
}

async fn play(
    port: u16,
    app: &str,
    stream: &str,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
    report: &mut Report,
) -> Result<(), String> {
    let mut permit = Some(
        shared
            .joining
            .acquire()
            .await
            .map_err(|e| format!("join semaphore closed: {e}"))?,
    );
    let mut tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY on 127.0.0.1:{port}: {e}"))?;
    let config = ClientConfig::new(
        app,
        format!("rtmp://127.0.0.1:{port}/{app}"),
        ClientRole::Play,
    );
    let mut session = ClientSession::new(config, now_ns() / 1_000_000, &mut rand::rng());
    session
        .play(stream, -1000.0)
        .map_err(|e| format!("play {stream}: {e}"))?;
    let mut last_seq: [Option<u64>; 2] = [None, None];
    let mut buf = vec![0u8; READ_BUF];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            tcp.write_all(&bytes)
                .await
                .map_err(|e| format!("write to 127.0.0.1:{port}: {e}"))?;
        }
        if *stop.borrow() {
            return Ok(());
        }
        let n = tokio::select! {
            r = tcp.read(&mut buf) => r.map_err(|e| format!("read from 127.0.0.1:{port}: {e}"))?,
            _ = stop.changed() => return Ok(()),
        };
        let now = now_ns();
        shared.bytes.fetch_add(n as u64, Relaxed);
        if n == 0 {
            return Err(format!("127.0.0.1:{port} closed the connection"));
        }
        session.handle_input(&buf[..n], now / 1_000_000);
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::PlayStarted { .. } => {
                    report.started = true;
                    shared.started.fetch_add(1, Relaxed);
                    permit.take();
                }
                ClientEvent::Media(m) => {
                    let kind = match m.type_id {
                        msg_type::VIDEO => Kind::Video,
                        msg_type::AUDIO => Kind::Audio,
                        _ => continue,
                    };
                    let Some((sent, seq)) = read_stamp(kind, &m.payload) else {
                        continue;
                    };
                    let k = kind as usize;
                    if shared.window.contains(kind, seq) {
                        report.delivered[k] += 1;
                        shared.delivered.fetch_add(1, Relaxed);
                        report.latency.record(now.saturating_sub(sent) / 1000);
                        if last_seq[k].is_some_and(|last| seq != last + 1) {
                            report.gaps += 1;
                            shared.gaps.fetch_add(1, Relaxed);
                        }
                    }
                    last_seq[k] = Some(seq);
                }
                ClientEvent::ConnectRejected { code, description } => {
                    return Err(format!("connect rejected: {code}: {description}"));
                }
                ClientEvent::StreamRejected(status) => {
                    return Err(format!(
                        "play rejected: {} {}",
                        status.code, status.description
                    ));
                }
                ClientEvent::Closed(reason) => return Err(format!("session closed: {reason}")),
                _ => {}
            }
        }
    }
}

/// Players connecting at once while joining.
const CONCURRENT_JOINS: usize = 64;

/// Starts `n` players of `app/stream` on `rt` and waits (on this thread) until each has started
/// or given up, the server died, or a deadline that grows with `n` passed.
pub fn join(
    rt: &tokio::runtime::Runtime,
    srv: &mut crate::server::Server,
    app: &str,
    stream: &str,
    n: usize,
    stop: &watch::Receiver<bool>,
) -> (Arc<Shared>, Vec<tokio::task::JoinHandle<Report>>) {
    let shared = Shared::new(CONCURRENT_JOINS);
    let handles = (0..n)
        .map(|_| {
            rt.spawn(run(
                srv.port,
                app.to_string(),
                stream.to_string(),
                shared.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(20)
        + std::time::Duration::from_millis(30 * n as u64);
    loop {
        let done = shared.started.load(Relaxed) + shared.failed.load(Relaxed);
        if done >= n || std::time::Instant::now() > deadline || !srv.alive() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (shared, handles)
}
