//! The client connection drivers. The engine session and the transport belong to one driver
//! per client element; the element talks to it through a handle and never runs protocol code
//! itself.
//!
//! A [`Publisher`] is a task on the shared runtime: it takes media frames through a bounded
//! channel (the bound is the sink's backpressure) and publishes them. A [`Player`] runs on a
//! current-thread runtime of its own, driven by the thread that asks it for the next frame
//! (the source's streaming thread), so a received message becomes a buffer without a thread
//! switch; over plain TCP its live connection is a socket polled in place (see [`Player`]).
//! Both open their connection the same way ([`open`]: transport, handshake, `connect`,
//! authentication rounds, then publish or play, all within the `timeout`), and both reconnect
//! after losing a working connection when the policy allows. Problems that are not fatal (a
//! lost connection being retried, media dropped) are reported as [`Notice`]s, through a
//! callback the element turns into bus messages.
//!
//! Invariants: the driver is the only owner of the session and the socket; only
//! [`Player::next`] blocks, and only its caller, until a frame or the caller's stop condition
//! (the element's unlock); every wait for the server is bounded by the configured timeout; the
//! element's handles end the connection when dropped, so stopping an element never waits for
//! the network.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use super::hold::HoldBook;
use super::media::{MediaFrame, frame_from_message};
use super::runtime;
use super::tls::TlsConnector;
use super::transport::{self, Stream, TransportError, TransportKind};
use crate::rtmp::amf0;
use crate::rtmp::auth;
use crate::rtmp::command::StatusCode;
use crate::rtmp::flv::TimestampExtender;
use crate::rtmp::handshake::ClientMode;
pub use crate::rtmp::session::StopCommands;
use crate::rtmp::session::{self, ClientEvent, ClientRole, ClientSession, SessionError};
use crate::rtmp::url::{RtmpUrl, Scheme};

/// Frames the sink may queue ahead of the connection task.
const PUBLISH_QUEUE: usize = 64;
/// Frames the source's connection task may queue ahead of `create()`.
const PLAY_QUEUE: usize = 256;
/// Bytes queued for the socket beyond which the publisher takes no new frames.
const OUT_HIGH_WATER: usize = 512 * 1024;
/// Connections one `open` may take for authentication (plain, user, response, and one spare
/// for servers that ask for the method before the user).
const MAX_AUTH_ROUNDS: usize = 4;
/// How long a finished connection waits for the server to close its side.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why a client connection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Transport(Arc<TransportError>),
    #[error("{target}: no answer within {} ms while {stage}", timeout.as_millis())]
    TimedOut {
        target: String,
        stage: &'static str,
        timeout: Duration,
    },
    #[error("{target}: connection failed while {stage}: {reason}")]
    Failed {
        target: String,
        stage: &'static str,
        reason: String,
    },
    #[error("{target} rejected the connection ({code}): {description}")]
    Rejected {
        target: String,
        code: String,
        description: String,
    },
    #[error("{target}: authentication failed: {reason}")]
    Auth { target: String, reason: String },
    #[error("{target} refused to {action} stream {stream:?} ({code}): {description}")]
    StreamRejected {
        target: String,
        action: &'static str,
        stream: String,
        code: String,
        description: String,
    },
    #[error("{target}: stream {stream:?} not found ({code}): {description}")]
    NotFound {
        target: String,
        stream: String,
        code: String,
        description: String,
    },
    #[error("{target}: connection lost: {reason}")]
    Lost { target: String, reason: String },
    #[error(
        "{target}: connection lost ({reason}); {attempts} reconnect attempts failed, the last with: {last}"
    )]
    ReconnectFailed {
        target: String,
        reason: String,
        attempts: u32,
        last: Box<ClientError>,
    },
}

/// What kind of failure a [`ClientError`] is, for mapping onto GStreamer error domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not open the connection (resolve, refuse, time out, broken handshake).
    Open,
    /// The server refused the credentials, the application or the stream name.
    NotAuthorized,
    /// The stream does not exist.
    NotFound,
    /// A working connection broke.
    Lost,
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Transport(_)
            | ClientError::TimedOut { .. }
            | ClientError::Failed { .. } => ErrorKind::Open,
            ClientError::Rejected { .. }
            | ClientError::Auth { .. }
            | ClientError::StreamRejected { .. } => ErrorKind::NotAuthorized,
            ClientError::NotFound { .. } => ErrorKind::NotFound,
            ClientError::Lost { .. } | ClientError::ReconnectFailed { .. } => ErrorKind::Lost,
        }
    }

    /// Failures that another attempt cannot fix: the server decided, not the network.
    fn is_final(&self) -> bool {
        matches!(
            self,
            ClientError::Rejected { .. } | ClientError::Auth { .. }
        )
    }
}

/// GstProgress-like phases of [`Notice::Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressKind {
    Start,
    Complete,
    Error,
}

/// What the driver tells the element outside the data flow.
#[derive(Debug, Clone)]
pub enum Notice {
    /// Around connecting and reconnecting. `code` is "connect" or "reconnect".
    Progress {
        kind: ProgressKind,
        code: &'static str,
        text: String,
    },
    /// Something went wrong but the connection goes on (or is being retried).
    Warning(String),
    /// The publisher failed for good; no more frames will be taken. (The player reports its
    /// failure in its data flow instead, see [`PlayItem::Error`].)
    Error(ClientError),
}

/// The element's callback for notices. It runs on a runtime thread and must not block.
pub type NoticeFn = Arc<dyn Fn(Notice) + Send + Sync>;

/// Everything a connection task needs, shared by both roles.
struct Ctx {
    cfg: ClientConfig,
    role: ClientRole,
    /// Outgoing chunk size, publisher only.
    chunk_size: Option<u32>,
    notice: NoticeFn,
    shared: Arc<Shared>,
}

impl Ctx {
    fn target(&self) -> String {
        let url = &self.cfg.url;
        if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port_or_default())
        } else {
            format!("{}:{}", url.host, url.port_or_default())
        }
    }

    fn progress(&self, kind: ProgressKind, code: &'static str, text: String) {
        (self.notice)(Notice::Progress { kind, code, text });
    }

    fn warn(&self, text: String) {
        (self.notice)(Notice::Warning(text));
    }

    fn action(&self) -> &'static str {
        match self.role {
            ClientRole::Publish => "publish",
            ClientRole::Play => "play",
        }
    }

    /// `base` with the auth query appended (to the app and the tcUrl alike).
    fn with_query(base: &str, query: Option<&str>) -> String {
        match query {
            None => base.to_string(),
            Some(q) if base.contains('?') => format!("{base}&{}", q.trim_start_matches('?')),
            Some(q) => format!("{base}{q}"),
        }
    }

    /// The query for the next connection after a rejected `connect`, or the error to report.
    fn auth_answer(&self, code: &str, description: &str) -> Result<String, ClientError> {
        let target = self.target();
        let rejected = || ClientError::Rejected {
            target: target.clone(),
            code: code.to_string(),
            description: description.to_string(),
        };
        if self.cfg.authmod == AuthMode::None {
            return Err(rejected());
        }
        let rejection = auth::parse_rejection(description);
        let Some(method) = rejection.method else {
            return Err(rejected());
        };
        let allowed = match self.cfg.authmod {
            AuthMode::Auto => true,
            AuthMode::Adobe => method == auth::AuthMethod::Adobe,
            AuthMode::Llnw => method == auth::AuthMethod::Llnw,
            AuthMode::None => false,
        };
        if !allowed {
            return Err(ClientError::Auth {
                target,
                reason: format!(
                    "server asks for {} authentication but authmod is {:?} ({code}: {description})",
                    method.as_str(),
                    self.cfg.authmod
                ),
            });
        }
        let (Some(user), Some(password)) = (&self.cfg.url.username, &self.cfg.url.password) else {
            return Err(ClientError::Auth {
                target,
                reason: format!(
                    "server asks for {} authentication but no username and password are set \
                     ({code}: {description})",
                    method.as_str()
                ),
            });
        };
        let app = self.cfg.url.app.split('?').next().unwrap_or_default();
        auth::next_query(
            description,
            user,
            password,
            app,
            &auth::client_nonce(rand::random()),
        )
        .map_err(|e| ClientError::Auth {
            target,
            reason: format!("{e} ({code}: {description})"),
        })
    }
}

fn transport_kind(scheme: Scheme) -> TransportKind {
    match scheme {
        Scheme::Rtmp | Scheme::Rtmpe => TransportKind::Tcp,
        Scheme::Rtmps => TransportKind::Tls,
        Scheme::Rtmpt | Scheme::Rtmpte => TransportKind::HttpTunnel,
        Scheme::Rtmpts => TransportKind::HttpTunnelTls,
    }
}

/// State shared between the task and the element's handle.
#[derive(Default)]
struct Shared {
    stats: Mutex<Stats>,
    failure: Mutex<Option<ClientError>>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn snapshot(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fail(&self, e: ClientError) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }

    fn failure(&self) -> Option<ClientError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Media counters kept by the task across connections; folded into [`Stats`].
struct Meter {
    /// Byte totals of the connections before the current one.
    base_in: u64,
    base_out: u64,
    frames: u64,
    media_bytes: u64,
    last_tick_bytes: u64,
    last_tick: Instant,
    bitrate: u64,
}

impl Meter {
    fn new() -> Self {
        Meter {
            base_in: 0,
            base_out: 0,
            frames: 0,
            media_bytes: 0,
            last_tick_bytes: 0,
            last_tick: Instant::now(),
            bitrate: 0,
        }
    }

    fn count(&mut self, frame: &MediaFrame) {
        self.frames += 1;
        self.media_bytes += frame.payload.len() as u64;
    }

    fn tick(&mut self) {
        let ms = self.last_tick.elapsed().as_millis().max(1) as u64;
        self.bitrate = (self.media_bytes - self.last_tick_bytes) * 8 * 1000 / ms;
        self.last_tick_bytes = self.media_bytes;
        self.last_tick = Instant::now();
    }

    /// The current connection is over: its totals move into the base.
    fn close_link(&mut self, session: &ClientSession) {
        let s = session.stats();
        self.base_in += s.in_bytes_total;
        self.base_out += s.out_bytes_total;
    }

    fn publish(&self, shared: &Shared, session: Option<&ClientSession>, hold: Option<&HoldBook>) {
        shared.update(|st| {
            if let Some(session) = session {
                let s = session.stats();
                st.in_chunk_size = s.in_chunk_size;
                st.out_chunk_size = s.out_chunk_size;
                st.in_window_ack_size = s.in_window_ack_size;
                st.out_window_ack_size = s.out_window_ack_size;
                st.in_bytes_total = self.base_in + s.in_bytes_total;
                st.out_bytes_total = self.base_out + s.out_bytes_total;
                st.in_bytes_acked = s.in_bytes_acked;
                st.out_bytes_acked = s.out_bytes_acked;
            }
            st.frames = self.frames;
            st.bitrate = self.bitrate;
            if let Some(hold) = hold {
                st.held = hold.counters.held;
                st.resent = hold.counters.resent;
                st.drops = hold.counters.dropped;
            }
        });
    }
}

/// One open connection: the session and the two halves of its transport.
struct Link {
    session: ClientSession,
    reader: ReadHalf<Box<dyn Stream>>,
    writer: WriteHalf<Box<dyn Stream>>,
    out: VecDeque<Bytes>,
    out_len: usize,
    buf: Vec<u8>,
    eof: bool,
    /// Bytes read from the transport, whatever the session made of them.
    received: u64,
    /// The session's clock starts here.
    epoch: Instant,
}

impl Link {
    fn queue_transmit(&mut self) {
        while let Some(b) = self.session.poll_transmit() {
            self.out_len += b.len();
            self.out.push_back(b);
        }
    }

    /// One I/O step: bytes read and fed to the session, or queued bytes written, or the
    /// session's deadline fired. Cancel-safe: dropping it loses nothing.
    async fn step(&mut self) -> io::Result<()> {
        self.queue_transmit();
        let epoch = self.epoch;
        let deadline = self
            .session
            .poll_timeout()
            .map(|ms| tokio::time::Instant::from_std(epoch + Duration::from_millis(ms)));
        let Link {
            session,
            reader,
            writer,
            out,
            out_len,
            buf,
            eof,
            received,
            ..
        } = self;
        let reading = !*eof;
        let writing = !out.is_empty();
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            r = reader.read(buf), if reading => {
                let now = epoch.elapsed().as_millis() as u64;
                match r? {
                    0 => {
                        *eof = true;
                        session.handle_peer_closed();
                    }
                    n => {
                        *received += n as u64;
                        session.handle_input(&buf[..n], now);
                    }
                }
            }
            r = writer.write(out.front().map_or(&[][..], |b| &b[..])), if writing => {
                let n = r?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                *out_len -= n;
                let front = out.front_mut().expect("writing only with queued bytes");
                if n == front.len() {
                    out.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                session.handle_timeout(epoch.elapsed().as_millis() as u64);
            }
            else => std::future::pending::<()>().await,
        }
        Ok(())
    }

    /// Writes everything queued.
    async fn flush(&mut self) -> io::Result<()> {
        self.queue_transmit();
        while let Some(front) = self.out.pop_front() {
            self.out_len -= front.len();
            self.writer.write_all(&front).await?;
        }
        self.writer.flush().await
    }

    /// Ends the connection politely: queued bytes out, our side shut, then the server's
    /// remaining bytes read until it closes too (closing with unread data would reset the
    /// connection, and a reset can make the server drop what it has not read yet).
    async fn close(mut self) {
        let polite = async {
            self.flush().await?;
            self.writer.shutdown().await?;
            let mut sink = [0u8; 4096];
            while self.reader.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, polite).await;
    }
}

enum Attempt {
    /// `connect` was rejected; authentication may answer it.
    Rejected {
        code: String,
        description: String,
    },
    Failed(ClientError),
}

/// One connection: transport, handshake, `connect`, then publish or play, within the timeout.
async fn attempt(ctx: &Ctx, query: Option<&str>) -> Result<Link, Attempt> {
    let cfg = &ctx.cfg;
    let url = &cfg.url;
    let target = ctx.target();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let transport = transport::connect(
        transport_kind(url.scheme),
        &url.host,
        url.port_or_default(),
        cfg.timeout,
        cfg.tls.as_ref(),
    )
    .await
    .map_err(|e| Attempt::Failed(ClientError::Transport(Arc::new(e))))?;

    let mut sc = session::ClientConfig::new(
        Ctx::with_query(&url.app, query),
        Ctx::with_query(&url.tc_url(), query),
        ctx.role,
    );
    sc.flash_ver = cfg.flash_version.clone();
    if url.scheme.is_encrypted() {
        // Type 6 (RC4 only) is what librtmp and FFmpeg send; every RTMPE server takes it.
        sc.handshake = ClientMode::Rtmpe { kind: 6 };
    }
    sc.extra_connect_args = cfg.extra_connect_args.clone();
    // The whole attempt is bounded below; one deadline is enough.
    sc.handshake_timeout_ms = None;
    if let Some(size) = ctx.chunk_size {
        sc.chunk_size = size;
    }
    let epoch = Instant::now();
    let session = ClientSession::new(sc, 0, &mut rand::rng());
    let (reader, writer) = tokio::io::split(transport.stream);
    let mut link = Link {
        session,
        reader,
        writer,
        out: VecDeque::new(),
        out_len: 0,
        buf: vec![0; 64 * 1024],
        eof: false,
        received: 0,
        epoch,
    };
    let started = match ctx.role {
        ClientRole::Publish => link.session.publish(&url.stream),
        ClientRole::Play => link.session.play(&url.stream, -2000.0),
    };
    if let Err(e) = started {
        return Err(Attempt::Failed(ClientError::Failed {
            target,
            stage: "starting",
            reason: e.to_string(),
        }));
    }

    let mut connected = false;
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Connected { .. } => connected = true,
                ClientEvent::PublishStarted { .. } | ClientEvent::PlayStarted { .. } => {
                    return Ok(link);
                }
                ClientEvent::ConnectRejected { code, description } => {
                    return Err(Attempt::Rejected { code, description });
                }
                ClientEvent::StreamRejected(status) => {
                    let not_found =
                        StatusCode::from_code(&status.code) == Some(StatusCode::PlayStreamNotFound);
                    return Err(Attempt::Failed(if not_found {
                        ClientError::NotFound {
                            target,
                            stream: url.stream.clone(),
                            code: status.code,
                            description: status.description,
                        }
                    } else {
                        ClientError::StreamRejected {
                            target,
                            action: ctx.action(),
                            stream: url.stream.clone(),
                            code: status.code,
                            description: status.description,
                        }
                    }));
                }
                ClientEvent::Closed(reason) => {
                    let handshake = matches!(
                        *reason,
                        SessionError::Handshake(_) | SessionError::HandshakeTimeout { .. }
                    );
                    return Err(Attempt::Failed(ClientError::Failed {
                        target,
                        stage: if handshake {
                            "in the handshake"
                        } else {
                            stage(&link, connected, ctx.role)
                        },
                        reason: reason.to_string(),
                    }));
                }
                _ => {}
            }
        }
        match tokio::time::timeout_at(deadline, link.step()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Attempt::Failed(ClientError::Failed {
                    target,
                    stage: stage(&link, connected, ctx.role),
                    reason: e.to_string(),
                }));
            }
            Err(_) => {
                return Err(Attempt::Failed(ClientError::TimedOut {
                    target,
                    stage: stage(&link, connected, ctx.role),
                    timeout: cfg.timeout,
                }));
            }
        }
    }
}

/// What a connection that has not started its stream yet was waiting for.
fn stage(link: &Link, connected: bool, role: ClientRole) -> &'static str {
    let received = link.received;
    if connected {
        match role {
            ClientRole::Publish => "waiting for NetStream.Publish.Start",
            ClientRole::Play => "waiting for NetStream.Play.Start",
        }
    } else if received == 0 {
        "waiting for the handshake (no byte from the server)"
    } else if received < 1 + 2 * 1536 {
        "in the handshake"
    } else {
        "waiting for the connect result"
    }
}

/// Opens a connection, answering authentication challenges with new connections.
async fn open(ctx: &Ctx) -> Result<Link, ClientError> {
    let url = &ctx.cfg.url;
    let mut query = match (ctx.cfg.authmod, &url.username) {
        (AuthMode::Adobe, Some(user)) => Some(auth::initial_query(auth::AuthMethod::Adobe, user)),
        (AuthMode::Llnw, Some(user)) => Some(auth::initial_query(auth::AuthMethod::Llnw, user)),
        _ => None,
    };
    let mut last = String::new();
    for _ in 0..MAX_AUTH_ROUNDS {
        match attempt(ctx, query.as_deref()).await {
            Ok(link) => return Ok(link),
            Err(Attempt::Failed(e)) => return Err(e),
            Err(Attempt::Rejected { code, description }) => {
                query = Some(ctx.auth_answer(&code, &description)?);
                last = format!("{code}: {description}");
            }
        }
    }
    Err(ClientError::Auth {
        target: ctx.target(),
        reason: format!("still rejected after {MAX_AUTH_ROUNDS} connections ({last})"),
    })
}

// ---- publisher ------------------------------------------------------------------------------

/// What only a publisher needs.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub chunk_size: u32,
    pub stop_commands: StopCommands,
    /// Most stream time held for a reconnect (see [`HoldBook`]).
    pub max_hold: Duration,
}

enum PubCmd {
    Frame(MediaFrame),
    /// End of stream: stop commands, polite close, then the reply.
    Finish(oneshot::Sender<()>),
}

/// The sink's handle on its connection task. Dropping it aborts the task.
pub struct Publisher {
    tx: mpsc::Sender<PubCmd>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    target: String,
}

impl Publisher {
    /// Starts connecting at once, on the shared runtime.
    pub fn start(cfg: ClientConfig, publish: PublishConfig, notice: NoticeFn) -> Publisher {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let ctx = Ctx {
            cfg,
            role: ClientRole::Publish,
            chunk_size: Some(publish.chunk_size),
            notice,
            shared: shared.clone(),
        };
        let target = ctx.target();
        let task = runtime::runtime().spawn(async move {
            let mut rx = rx;
            if let Err(e) = run_publisher(&ctx, &publish, &mut rx).await {
                ctx.shared.fail(e.clone());
                (ctx.notice)(Notice::Error(e));
            }
        });
        Publisher {
            tx,
            shared,
            task,
            target,
        }
    }

    fn gone(&self) -> ClientError {
        self.shared.failure().unwrap_or_else(|| ClientError::Lost {
            target: self.target.clone(),
            reason: "the connection task ended".into(),
        })
    }

    /// Queues a frame; waits while the queue is full.
    pub async fn send(&self, frame: MediaFrame) -> Result<(), ClientError> {
        self.tx
            .send(PubCmd::Frame(frame))
            .await
            .map_err(|_| self.gone())
    }

    /// Ends the stream after every queued frame: stop commands, then a polite close. Returns
    /// when the connection is closed (or could not be recovered).
    pub async fn finish(&self) -> Result<(), ClientError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(PubCmd::Finish(reply))
            .await
            .map_err(|_| self.gone())?;
        done.await.map_err(|_| self.gone())
    }

    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum LiveEnd {
    Finish(oneshot::Sender<()>),
    Gone,
    Lost(String),
}

async fn run_publisher(
    ctx: &Ctx,
    publish: &PublishConfig,
    rx: &mut mpsc::Receiver<PubCmd>,
) -> Result<(), ClientError> {
    let target = ctx.target();
    let mut book = HoldBook::new(publish.max_hold.as_millis() as u64);
    let mut meter = Meter::new();
    let mut link = first_open(ctx).await?;
    loop {
        let end = publish_live(ctx, &mut link, rx, &mut book, &mut meter).await;
        meter.publish(&ctx.shared, Some(&link.session), Some(&book));
        match end {
            LiveEnd::Finish(reply) => {
                let _ = link.session.stop(publish.stop_commands);
                link.session.close();
                meter.publish(&ctx.shared, Some(&link.session), Some(&book));
                link.close().await;
                let _ = reply.send(());
                return Ok(());
            }
            LiveEnd::Gone => {
                link.session.close();
                link.close().await;
                return Ok(());
            }
            LiveEnd::Lost(reason) => {
                meter.publish(&ctx.shared, Some(&link.session), Some(&book));
                meter.close_link(&link.session);
                if !ctx.cfg.reconnect.enabled {
                    return Err(ClientError::Lost { target, reason });
                }
                ctx.warn(format!(
                    "connection to {target} lost ({reason}); reconnecting"
                ));
                let Some((new_link, finish)) =
                    reconnect_publisher(ctx, rx, &mut book, &mut meter, &reason).await?
                else {
                    return Ok(());
                };
                link = new_link;
                ctx.shared.update(|s| s.reconnects += 1);
                let held = book.held_len();
                for frame in book.resume() {
                    if let Err(e) = link.session.send_media(
                        frame.kind,
                        frame.wire_timestamp(),
                        frame.payload.clone(),
                    ) {
                        return Err(ClientError::Lost {
                            target,
                            reason: e.to_string(),
                        });
                    }
                    meter.count(&frame);
                }
                let dropped = book.take_outage_dropped();
                if dropped > 0 {
                    ctx.warn(format!(
                        "{dropped} frames were dropped during the outage (max-hold-time)"
                    ));
                }
                ctx.progress(
                    ProgressKind::Complete,
                    "reconnect",
                    format!(
                        "Publishing {:?} on {target} again ({held} held frames sent, {dropped} \
                         dropped)",
                        ctx.cfg.url.stream
                    ),
                );
                if let Some(reply) = finish {
                    let _ = link.session.stop(publish.stop_commands);
                    link.session.close();
                    meter.publish(&ctx.shared, Some(&link.session), Some(&book));
                    link.close().await;
                    let _ = reply.send(());
                    return Ok(());
                }
            }
        }
    }
}

/// Publishes frames on a working connection until it ends.
async fn publish_live(
    ctx: &Ctx,
    link: &mut Link,
    rx: &mut mpsc::Receiver<PubCmd>,
    book: &mut HoldBook,
    meter: &mut Meter,
) -> LiveEnd {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Closed(reason) => return LiveEnd::Lost(reason.to_string()),
                ClientEvent::Status { status, .. } if status.level == "error" => {
                    ctx.warn(format!(
                        "server reports {}: {}",
                        status.code, status.description
                    ));
                }
                _ => {}
            }
        }
        meter.publish(&ctx.shared, Some(&link.session), Some(book));
        let accepting = link.out_len < OUT_HIGH_WATER;
        tokio::select! {
            r = link.step() => {
                if let Err(e) = r {
                    return LiveEnd::Lost(e.to_string());
                }
            }
            cmd = rx.recv(), if accepting => match cmd {
                None => return LiveEnd::Gone,
                Some(PubCmd::Finish(reply)) => return LiveEnd::Finish(reply),
                Some(PubCmd::Frame(frame)) => {
                    if book.on_live(&frame) {
                        meter.count(&frame);
                        if let Err(e) = link.session.send_media(
                            frame.kind,
                            frame.wire_timestamp(),
                            frame.payload.clone(),
                        ) {
                            // The frame never left: keep it for the next connection.
                            let _ = book.hold(frame);
                            return LiveEnd::Lost(e.to_string());
                        }
                    }
                }
            },
            _ = ticker.tick() => meter.tick(),
        }
    }
}

/// Reconnects with backoff while holding the frames that keep arriving. Returns `None` when
/// the element went away, and the pending end-of-stream reply if one came meanwhile.
async fn reconnect_publisher(
    ctx: &Ctx,
    rx: &mut mpsc::Receiver<PubCmd>,
    book: &mut HoldBook,
    meter: &mut Meter,
    reason: &str,
) -> Result<Option<(Link, Option<oneshot::Sender<()>>)>, ClientError> {
    let policy = &ctx.cfg.reconnect;
    let target = ctx.target();
    let mut finish = None;
    let mut attempt_no = 0u32;
    loop {
        attempt_no += 1;
        let delay = policy.delay(attempt_no);
        ctx.progress(
            ProgressKind::Start,
            "reconnect",
            format!(
                "Reconnecting to {target} in {} ms (attempt {attempt_no})",
                delay.as_millis()
            ),
        );
        let opening = async {
            tokio::time::sleep(delay).await;
            open(ctx).await
        };
        tokio::pin!(opening);
        let result = loop {
            tokio::select! {
                r = &mut opening => break r,
                cmd = rx.recv(), if finish.is_none() => match cmd {
                    None => return Ok(None),
                    Some(PubCmd::Frame(frame)) => {
                        if let Some(warning) = book.hold(frame) {
                            ctx.warn(warning);
                        }
                        meter.publish(&ctx.shared, None, Some(book));
                    }
                    // Keep reconnecting: the held frames still deserve delivery.
                    Some(PubCmd::Finish(reply)) => finish = Some(reply),
                },
            }
        };
        match result {
            Ok(link) => return Ok(Some((link, finish))),
            Err(e) if e.is_final() => return Err(e),
            Err(e) => {
                ctx.warn(format!("reconnect attempt {attempt_no} failed: {e}"));
                if policy.max_attempts.is_some_and(|max| attempt_no >= max) {
                    ctx.progress(ProgressKind::Error, "reconnect", e.to_string());
                    return Err(ClientError::ReconnectFailed {
                        target,
                        reason: reason.to_string(),
                        attempts: attempt_no,
                        last: Box::new(e),
                    });
                }
            }
        }
    }
}

// ---- player ---------------------------------------------------------------------------------

/// What only a player needs.
#[derive(Debug, Clone, Default)]
pub struct PlayConfig {
    /// End the stream (EOS) after this long without media.
    pub idle_timeout: Option<Duration>,
    /// A connection that closes without StreamEOF is an error rather than the end.
    pub no_eof_is_error: bool,
}

/// What the source gets from its connection task.
#[derive(Debug, Clone)]
pub enum PlayItem {
    Frame(MediaFrame),
    /// The connection was lost and a new one is up: what follows does not continue what came
    /// before.
    Discont,
    /// The stream ended (StreamEOF, unpublished, idle timeout, or closed without
    /// `no-eof-is-error`).
    Eos,
    /// The connection failed for good; nothing follows.
    Error(ClientError),
}

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
        rx: Mutex<mpsc::Receiver<PlayItem>>,
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

/// Wakes whoever drives the connection: a counter for waits on the runtime, a socket pair for
/// waits in `poll`.
struct Wake {
    seq: tokio::sync::watch::Sender<u64>,
    tx: std::os::unix::net::UnixStream,
    rx: std::os::unix::net::UnixStream,
}

impl Wake {
    fn new() -> io::Result<Wake> {
        let (tx, rx) = std::os::unix::net::UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Wake {
            seq: tokio::sync::watch::channel(0).0,
            tx,
            rx,
        })
    }

    fn raise(&self) {
        use std::io::Write;
        self.seq.send_modify(|n| *n += 1);
        // A full pipe already wakes the poller.
        let _ = (&self.tx).write(&[1]);
    }

    fn drain(&self) {
        use std::io::Read;
        let mut sink = [0u8; 64];
        while matches!((&self.rx).read(&mut sink), Ok(n) if n > 0) {}
    }

    /// Runs `fut` on `rt` until it completes (`Some`) or `stop()` holds (`None`), rechecking
    /// `stop` at every [`Wake::raise`].
    fn block_on<F: std::future::Future>(
        &self,
        rt: &tokio::runtime::Runtime,
        stop: &dyn Fn() -> bool,
        fut: F,
    ) -> Option<F::Output> {
        let mut seq = self.seq.subscribe();
        rt.block_on(async {
            tokio::pin!(fut);
            loop {
                if stop() {
                    return None;
                }
                tokio::select! {
                    biased;
                    out = &mut fut => return Some(out),
                    _ = seq.changed() => {}
                }
            }
        })
    }
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
            let first: Opening = Box::pin({
                let ctx = ctx.clone();
                async move { first_open(&ctx).await }
            });
            Mode::Direct(Arc::new(Mutex::new(Direct {
                ctx,
                play,
                phase: Phase::Opening(first, false),
                queue: VecDeque::new(),
                meter: Meter::new(),
                timestamps: TimestampExtender::new(),
                last_media: Instant::now(),
                next_tick: Instant::now() + TICK,
            })))
        } else {
            let (tx, rx) = mpsc::channel(PLAY_QUEUE);
            let task = rt.spawn(async move {
                // On success the end of stream was already handed over.
                if let Err(e) = run_player(&ctx, &play, &tx).await {
                    ctx.shared.fail(e.clone());
                    let _ = tx.send(PlayItem::Error(e)).await;
                }
            });
            Mode::Task {
                rx: Mutex::new(rx),
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
        let direct = match &self.mode {
            Mode::Direct(d) => Some(d.clone()),
            Mode::Task { .. } => None,
        };
        let spawned = std::thread::Builder::new()
            .name("rsrtmp-player".into())
            .spawn(move || {
                let stopped = || flag.load(std::sync::atomic::Ordering::Acquire);
                match direct {
                    Some(d) => {
                        let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
                        d.drive(&rt, &wake, &stopped, false);
                    }
                    None => {
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
    fn take_over(&self) {
        let background = self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(b) = background {
            b.stop.store(true, std::sync::atomic::Ordering::Release);
            self.wake.raise();
            let _ = b.thread.join();
        }
    }

    /// The next item, driving the connection on the calling thread until one is ready or
    /// `stop()` holds (`None`; checked at the start and after every [`Player::interrupt`]).
    /// The caller must not be a runtime thread. After a stop or the last item, the connection
    /// goes on in the background.
    pub fn next(&self, stop: &dyn Fn() -> bool) -> Option<PlayItem> {
        self.take_over();
        let item = match &self.mode {
            Mode::Task { rx, .. } => {
                let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                self.wake
                    .block_on(self.rt(), stop, rx.recv())
                    .map(|item| item.unwrap_or_else(|| self.ended()))
            }
            Mode::Direct(d) => {
                let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
                d.drive(self.rt(), &self.wake, stop, true);
                match d.queue.pop_front() {
                    Some(item) => Some(item),
                    None if matches!(d.phase, Phase::Done) && !stop() => Some(self.ended()),
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

/// The 1 s bitrate tick.
const TICK: Duration = Duration::from_secs(1);

type Opening =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Link, ClientError>> + Send>>;

/// The first connection, with its progress messages.
/// The first connection, with the progress messages around it ("Publishing"/"Playing" when it
/// worked, the error when not).
async fn first_open(ctx: &Ctx) -> Result<Link, ClientError> {
    let target = ctx.target();
    ctx.progress(
        ProgressKind::Start,
        "connect",
        format!("Connecting to {target}"),
    );
    match open(ctx).await {
        Ok(link) => {
            let stream = &ctx.cfg.url.stream;
            let done = match ctx.role {
                ClientRole::Publish => format!("Publishing {stream:?} on {target}"),
                ClientRole::Play => format!("Playing {stream:?} from {target}"),
            };
            ctx.progress(ProgressKind::Complete, "connect", done);
            Ok(link)
        }
        Err(e) => {
            ctx.progress(ProgressKind::Error, "connect", e.to_string());
            Err(e)
        }
    }
}

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
    Done,
}

/// The plain-TCP player: the same life as [`run_player`], as a state machine driven in place.
struct Direct {
    ctx: Arc<Ctx>,
    play: PlayConfig,
    phase: Phase,
    /// Items for `next`, at most [`PLAY_QUEUE`] frames ahead (then reading pauses).
    queue: VecDeque<PlayItem>,
    meter: Meter,
    timestamps: TimestampExtender,
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
    /// Drives the connection until an item is queued (when `want`) or `stop()` holds.
    fn drive(
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
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Media(msg) => {
                    if let Some(frame) = frame_from_message(&msg, &mut self.timestamps) {
                        self.meter.count(&frame);
                        self.last_media = Instant::now();
                        self.queue.push_back(PlayItem::Frame(frame));
                    }
                }
                ClientEvent::StreamEof(id)
                    if link
                        .session
                        .active_stream()
                        .is_none_or(|active| active == id) =>
                {
                    return Some(PlayEnd::Eos("StreamEOF".into()));
                }
                ClientEvent::Status { status, .. } => match StatusCode::from_code(&status.code) {
                    Some(
                        StatusCode::PlayUnpublishNotify
                        | StatusCode::PlayStop
                        | StatusCode::PlayComplete,
                    ) => return Some(PlayEnd::Eos(status.code)),
                    _ if status.level == "error" => self.ctx.warn(format!(
                        "server reports {}: {}",
                        status.code, status.description
                    )),
                    _ => {}
                },
                ClientEvent::Closed(reason) => return Some(PlayEnd::Lost(reason.to_string())),
                _ => {}
            }
        }
        None
    }

    /// What follows the end of a live connection (as in [`run_player`]).
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
            PlayEnd::Lost(reason) => {
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

enum PlayEnd {
    Eos(String),
    Gone,
    Lost(String),
}

/// Plays until the stream ends. `Ok` means the end was handed over as [`PlayItem::Eos`] (or
/// the element is gone); an error is for the caller to hand over.
async fn run_player(
    ctx: &Ctx,
    play: &PlayConfig,
    tx: &mpsc::Sender<PlayItem>,
) -> Result<(), ClientError> {
    let target = ctx.target();
    let mut meter = Meter::new();
    let mut timestamps = TimestampExtender::new();
    let mut link = first_open(ctx).await?;
    loop {
        let end = play_live(ctx, play, &mut link, tx, &mut meter, &mut timestamps).await;
        // The last events of the connection count too.
        meter.publish(&ctx.shared, Some(&link.session), None);
        match end {
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
                meter.publish(&ctx.shared, Some(&link.session), None);
                meter.close_link(&link.session);
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
                link = reconnect_player(ctx, &reason).await?;
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
    meter: &mut Meter,
    timestamps: &mut TimestampExtender,
) -> PlayEnd {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_media = tokio::time::Instant::now();
    let far = Duration::from_secs(3600 * 24);
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Media(msg) => {
                    if let Some(frame) = frame_from_message(&msg, timestamps) {
                        meter.count(&frame);
                        last_media = tokio::time::Instant::now();
                        if tx.send(PlayItem::Frame(frame)).await.is_err() {
                            return PlayEnd::Gone;
                        }
                    }
                }
                ClientEvent::StreamEof(id)
                    if link
                        .session
                        .active_stream()
                        .is_none_or(|active| active == id) =>
                {
                    return PlayEnd::Eos("StreamEOF".into());
                }
                ClientEvent::Status { status, .. } => match StatusCode::from_code(&status.code) {
                    Some(
                        StatusCode::PlayUnpublishNotify
                        | StatusCode::PlayStop
                        | StatusCode::PlayComplete,
                    ) => return PlayEnd::Eos(status.code),
                    _ if status.level == "error" => ctx.warn(format!(
                        "server reports {}: {}",
                        status.code, status.description
                    )),
                    _ => {}
                },
                ClientEvent::Closed(reason) => return PlayEnd::Lost(reason.to_string()),
                _ => {}
            }
        }
        meter.publish(&ctx.shared, Some(&link.session), None);
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
            _ = ticker.tick() => meter.tick(),
        }
    }
}

async fn reconnect_player(ctx: &Ctx, reason: &str) -> Result<Link, ClientError> {
    let policy = &ctx.cfg.reconnect;
    let target = ctx.target();
    let mut attempt_no = 0u32;
    loop {
        attempt_no += 1;
        let delay = policy.delay(attempt_no);
        ctx.progress(
            ProgressKind::Start,
            "reconnect",
            format!(
                "Reconnecting to {target} in {} ms (attempt {attempt_no})",
                delay.as_millis()
            ),
        );
        tokio::time::sleep(delay).await;
        match open(ctx).await {
            Ok(link) => return Ok(link),
            Err(e) if e.is_final() => return Err(e),
            Err(e) => {
                ctx.warn(format!("reconnect attempt {attempt_no} failed: {e}"));
                if policy.max_attempts.is_some_and(|max| attempt_no >= max) {
                    ctx.progress(ProgressKind::Error, "reconnect", e.to_string());
                    return Err(ClientError::ReconnectFailed {
                        target,
                        reason: reason.to_string(),
                        attempts: attempt_no,
                        last: Box::new(e),
                    });
                }
            }
        }
    }
}

// ---- configuration --------------------------------------------------------------------------

/// Which authentication to answer a `NetConnection.Connect.Rejected` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Never authenticate.
    None,
    /// Use the method the server names in its rejection (Adobe or Limelight).
    #[default]
    Auto,
    /// Adobe (`authmod=adobe`) only.
    Adobe,
    /// Limelight (`authmod=llnw`) only.
    Llnw,
}

/// When and how often to reconnect after a working connection was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub enabled: bool,
    /// `None`: keep trying for ever.
    pub max_attempts: Option<u32>,
    /// Wait before the first attempt; doubled after each failed attempt.
    pub initial_delay: Duration,
    /// The doubling stops here.
    pub max_delay: Duration,
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay.max(self.initial_delay))
    }
}

/// What every client connection needs, whatever it does once connected.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where to connect; `url.username` / `url.password` are the credentials for
    /// authentication (never sent in the clear).
    pub url: RtmpUrl,
    pub authmod: AuthMode,
    /// Bound on opening a connection: DNS, TCP, handshake and the `connect` exchange, and on
    /// each later wait for the server's answer.
    pub timeout: Duration,
    /// `flashVer` in `connect`; omitted when `None`.
    pub flash_version: Option<String>,
    /// Values appended to the `connect` command after the command object.
    pub extra_connect_args: Vec<amf0::Value>,
    pub reconnect: ReconnectPolicy,
    /// TLS for rtmps and rtmpts, built once per element start (loading the roots is slow);
    /// `None` means the defaults (verification on, system roots).
    pub tls: Option<TlsConnector>,
}

/// Connection statistics, as the `stats` property shows them. The first eight fields are
/// rtmp2's; the counters after them are ours. The last snapshot is kept after disconnecting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub in_chunk_size: u32,
    pub out_chunk_size: u32,
    pub in_window_ack_size: u32,
    pub out_window_ack_size: u32,
    pub in_bytes_total: u64,
    pub out_bytes_total: u64,
    pub in_bytes_acked: u64,
    pub out_bytes_acked: u64,
    /// Media bits per second over the last few seconds.
    pub bitrate: u64,
    /// Media messages (audio, video, data) moved to or from the server.
    pub frames: u64,
    /// Media messages dropped (a full hold buffer while reconnecting, unusable input).
    pub drops: u64,
    /// Successful reconnections.
    pub reconnects: u32,
    /// Publisher: media messages that arrived while no connection was up and were held.
    pub held: u64,
    /// Publisher: media messages sent again after a reconnect (headers and the group of
    /// pictures since the last keyframe) so the new stream starts at a keyframe.
    pub resent: u64,
}

/// Parses rtmp2's `extra-connect-args`: librtmp `conn=` items separated by spaces, each
/// `[conn=]TYPE:VALUE` with TYPE `B` (0 or 1), `N` (number), `S` (string) or `Z` (null).
/// Objects and named values are refused, as rtmp2 does.
pub fn parse_extra_connect_args(text: &str) -> Result<Vec<amf0::Value>, String> {
    let mut values = Vec::new();
    for token in text.split_whitespace() {
        let item = token.strip_prefix("conn=").unwrap_or(token);
        let Some((kind, value)) = item.split_once(':') else {
            return Err(format!(
                "extra connect argument {token:?} is not of the form TYPE:VALUE"
            ));
        };
        let parsed = match kind {
            "B" => match value {
                "0" => amf0::Value::Boolean(false),
                "1" => amf0::Value::Boolean(true),
                other => {
                    return Err(format!(
                        "extra connect argument {token:?}: boolean {other:?} is not 0 or 1"
                    ));
                }
            },
            "N" => amf0::Value::Number(value.parse::<f64>().map_err(|_| {
                format!("extra connect argument {token:?}: {value:?} is not a number")
            })?),
            "S" => amf0::Value::String(value.to_string()),
            "Z" => amf0::Value::Null,
            other => {
                return Err(format!(
                    "extra connect argument {token:?}: type {other:?} is not supported \
                     (B, N, S or Z; objects and named values are not)"
                ));
            }
        };
        values.push(parsed);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_connect_args_parse_the_four_types() {
        let v = parse_extra_connect_args("conn=B:1 conn=N:3.5 S:hello Z: conn=B:0").unwrap();
        assert_eq!(
            v,
            vec![
                amf0::Value::Boolean(true),
                amf0::Value::Number(3.5),
                amf0::Value::String("hello".into()),
                amf0::Value::Null,
                amf0::Value::Boolean(false),
            ]
        );
        assert!(parse_extra_connect_args("").unwrap().is_empty());
    }

    #[test]
    fn extra_connect_args_errors_name_the_item() {
        let e = parse_extra_connect_args("conn=O:1").unwrap_err();
        assert!(e.contains("conn=O:1") && e.contains("\"O\""), "{e}");
        let e = parse_extra_connect_args("conn=N:abc").unwrap_err();
        assert!(e.contains("\"abc\""), "{e}");
        let e = parse_extra_connect_args("conn=B:2").unwrap_err();
        assert!(e.contains("\"2\""), "{e}");
        let e = parse_extra_connect_args("nonsense").unwrap_err();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn reconnect_delay_doubles_up_to_the_cap() {
        let p = ReconnectPolicy {
            enabled: true,
            max_attempts: None,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_millis(3000),
        };
        let ms: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 3000, 3000]);
        assert_eq!(p.delay(1000).as_millis(), 3000);
    }
}
