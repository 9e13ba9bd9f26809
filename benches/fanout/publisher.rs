//! The publisher: an engine [`ClientSession`] over tokio TCP sending synthetic media in real
//! time (see [`crate::media`]).
//!
//! It runs on its own thread and runtime so that a saturated player runtime cannot delay the
//! send stamps. Frames are due on a fixed schedule from the moment publishing starts; when the
//! thread falls behind, late frames go out at once (stamped with the real send time) and the
//! worst lateness is reported, so a starved publisher is visible rather than hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsrtmp_engine::session::{ClientConfig, ClientEvent, ClientRole, ClientSession, MediaKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::sleep_until;

use crate::media::{self, FPS, GOP_FRAMES, Sizes, now_ns};

/// Counters the orchestrator samples while the publisher runs.
#[derive(Default)]
pub struct Progress {
    /// Sequence number of the next video frame (= video frames sent).
    pub next_video: AtomicU64,
    /// Sequence number of the next audio frame.
    pub next_audio: AtomicU64,
    /// Bytes written to the socket.
    pub bytes: AtomicU64,
    /// Worst lateness of a frame against its schedule, µs.
    pub max_lag_us: AtomicU64,
}

/// Publishes `stream` on `127.0.0.1:port/app` until `stop`; `ready` fires on
/// `NetStream.Publish.Start` (or with the reason it never came).
pub async fn run(
    port: u16,
    app: String,
    stream: String,
    sizes: Sizes,
    progress: Arc<Progress>,
    ready: oneshot::Sender<Result<(), String>>,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut ready = Some(ready);
    let result = publish(port, &app, &stream, sizes, &progress, &mut ready, stop).await;
    if let (Some(tx), Err(e)) = (ready.take(), &result) {
        let _ = tx.send(Err(e.clone()));
    }
    result
}

struct Link {
    tcp: TcpStream,
    session: ClientSession,
    port: u16,
}

impl Link {
    async fn flush(&mut self, progress: &Progress) -> Result<(), String> {
        while let Some(bytes) = self.session.poll_transmit() {
            self.tcp
                .write_all(&bytes)
                .await
                .map_err(|e| format!("publisher write to 127.0.0.1:{}: {e}", self.port))?;
            progress.bytes.fetch_add(bytes.len() as u64, Relaxed);
        }
        Ok(())
    }

    fn send(&mut self, kind: MediaKind, ts_ms: u64, payload: Bytes) -> Result<(), String> {
        self.session
            .send_media(kind, ts_ms as u32, payload)
            .map_err(|e| format!("publisher send_media: {e}"))
    }

    /// Feeds bytes from the server; true when publishing started with this input.
    fn input(&mut self, data: &[u8]) -> Result<bool, String> {
        if data.is_empty() {
            return Err(format!(
                "127.0.0.1:{} closed the publisher connection",
                self.port
            ));
        }
        self.session.handle_input(data, now_ns() / 1_000_000);
        let mut started = false;
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::PublishStarted { .. } => started = true,
                ClientEvent::ConnectRejected { code, description } => {
                    return Err(format!("publisher connect rejected: {code}: {description}"));
                }
                ClientEvent::StreamRejected(s) => {
                    return Err(format!("publish rejected: {} {}", s.code, s.description));
                }
                ClientEvent::Closed(reason) => {
                    return Err(format!("publisher session closed: {reason}"));
                }
                _ => {}
            }
        }
        Ok(started)
    }
}

async fn publish(
    port: u16,
    app: &str,
    stream: &str,
    sizes: Sizes,
    progress: &Progress,
    ready: &mut Option<oneshot::Sender<Result<(), String>>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("publisher connect to 127.0.0.1:{port}: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY on the publisher socket: {e}"))?;
    let config = ClientConfig::new(
        app,
        format!("rtmp://127.0.0.1:{port}/{app}"),
        ClientRole::Publish,
    );
    let session = ClientSession::new(config, now_ns() / 1_000_000, &mut rand::rng());
    let mut link = Link { tcp, session, port };
    link.session
        .publish(stream)
        .map_err(|e| format!("publish {stream}: {e}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        link.flush(progress).await?;
        let n = tokio::select! {
            r = link.tcp.read(&mut buf) => r.map_err(|e| format!("publisher read: {e}"))?,
            _ = sleep_until(deadline) => {
                return Err(format!("no NetStream.Publish.Start from 127.0.0.1:{port} within 10 s"));
            }
        };
        if link.input(&buf[..n])? {
            break;
        }
    }

    link.send(MediaKind::Video, 0, media::video_sequence_header())?;
    link.send(MediaKind::Audio, 0, media::audio_sequence_header())?;
    link.flush(progress).await?;
    if let Some(tx) = ready.take() {
        let _ = tx.send(Ok(()));
    }

    let start = Instant::now();
    let video_ns = 1_000_000_000 / u64::from(FPS);
    let (mut video, mut audio) = (0u64, 0u64);
    loop {
        let due_video = start + Duration::from_nanos(video * video_ns);
        let due_audio = start + Duration::from_nanos(audio * media::AUDIO_FRAME_NS);
        let due = due_video.min(due_audio);
        tokio::select! {
            _ = sleep_until(due.into()) => {}
            r = link.tcp.read(&mut buf) => {
                let n = r.map_err(|e| format!("publisher read: {e}"))?;
                link.input(&buf[..n])?;
                link.flush(progress).await?;
                continue;
            }
            _ = stop.changed() => return Ok(()),
        }
        let now = Instant::now();
        let lag = now.saturating_duration_since(due).as_micros() as u64;
        progress.max_lag_us.fetch_max(lag, Relaxed);
        if now >= due_video {
            let key = video % u64::from(GOP_FRAMES) == 0;
            let len = if key { sizes.key } else { sizes.inter };
            let ts = video * 1000 / u64::from(FPS);
            link.send(MediaKind::Video, ts, media::video_frame(key, len, video))?;
            video += 1;
            progress.next_video.store(video, Relaxed);
        }
        if now >= due_audio {
            let ts = audio * media::AUDIO_FRAME_NS / 1_000_000;
            link.send(MediaKind::Audio, ts, media::audio_frame(audio))?;
            audio += 1;
            progress.next_audio.store(audio, Relaxed);
        }
        link.flush(progress).await?;
    }
}

/// A publisher running on a thread (and current-thread runtime) of its own.
pub struct Started {
    pub progress: Arc<Progress>,
    /// Send `true` to stop the publisher (and, through `stop_rx`, the players).
    pub stop_tx: watch::Sender<bool>,
    pub stop_rx: watch::Receiver<bool>,
    pub thread: std::thread::JoinHandle<Result<(), String>>,
}

/// Starts [`run`] on its own thread and waits (on `rt`) until it publishes.
pub fn start(
    rt: &tokio::runtime::Runtime,
    port: u16,
    app: &str,
    stream: &str,
    sizes: Sizes,
) -> Result<Started, String> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let progress = Arc::new(Progress::default());
    let (ready_tx, ready_rx) = oneshot::channel();
    let thread = {
        let (app, stream) = (app.to_string(), stream.to_string());
        let (progress, stop) = (progress.clone(), stop_rx.clone());
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || -> Result<(), String> {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("publisher runtime: {e}"))?
                    .block_on(run(port, app, stream, sizes, progress, ready_tx, stop))
            })
            .map_err(|e| format!("spawn the publisher thread: {e}"))?
    };
    let started = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(15), ready_rx)
            .await
            .map_err(|_| "publisher not ready after 15 s".to_string())?
            .map_err(|_| "publisher thread ended without a word".to_string())?
    });
    if let Err(e) = started {
        let _ = stop_tx.send(true);
        let _ = thread.join();
        return Err(e);
    }
    Ok(Started {
        progress,
        stop_tx,
        stop_rx,
        thread,
    })
}
